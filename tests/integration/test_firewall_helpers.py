"""Helpers of the firewall integration tests: throwaway namespaces and running our code inside one.

Code under test runs in a forked child that has joined the namespace (setns), so the test process
itself never touches the root namespace's nftables. No tests here.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from appliance.errors import ApplyError, MamoriError

CLONE_NEWNET = 0x40000000


def sh(
    ns: str, *argv: str, check: bool = True, timeout: float = 30, **kw: Any
) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check, capture_output=True, text=True,
                          timeout=timeout, **kw)  # fmt: skip


@contextmanager
def netns(tag: str = "") -> Iterator[str]:
    name = f"fw{os.getpid()}{tag}{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        sh(name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        for pid in subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True
        ).stdout.split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", name], check=False)


def _enter(ns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


def _call(fn: Callable, args: tuple) -> Any:
    try:
        return fn(*args)
    except MamoriError as exc:  # typed errors do not pickle; carry them over as data
        return {"__mamori_error__": exc.code, "ja": exc.text("ja"), "en": exc.text("en")}


def in_ns(ns: str, fn: Callable, *args: Any, timeout: float = 60) -> Any:
    """Run fn(*args) in a child process inside `ns`; a MamoriError there is raised here as ApplyError."""
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_enter, initargs=(ns,)) as pool:
        result = pool.submit(_call, fn, args).result(timeout=timeout)
    if isinstance(result, dict) and "__mamori_error__" in result:
        raise ApplyError(result["ja"], result["en"], code=result["__mamori_error__"])
    return result


def ruleset(ns: str) -> Any:
    """`nft -j list ruleset` without the parts that change by themselves (remaining timeouts)."""
    data = json.loads(sh(ns, "nft", "-j", "list", "ruleset").stdout)
    return _strip(data)


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "expires"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def set_elements(ns: str, name: str) -> list[str]:
    data = json.loads(sh(ns, "nft", "-j", "list", "set", "inet", "mamori", name).stdout)
    out = []
    for obj in data["nftables"]:
        for e in obj.get("set", {}).get("elem", []):
            out.append(e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e)
    return out
