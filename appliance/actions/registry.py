"""The allow-list: every action the web UI may ask the daemon for, its argument record and its handler.

An action's arguments are a frozen dataclass whose fields are all the action takes. `parse_args` builds it
from the JSON object of a request and refuses, naming the field: a field the record does not have, a field
missing, a value of another type (a bool is not an int; an int is not a str), a string or list longer than
its limit. Nothing from the request reaches a handler without passing here.

A request and its answer are one JSON object each (`handle_request`): the same bytes in-process (tests) and
over the socket (appliance.actions.server), so a unit test exercises exactly what the daemon checks.
Errors travel as their code and both languages; the few the web UI looks into (a refused or invalid
config, a refused confirmation) are rebuilt as their own types on the other side (`error_from_wire`).
Reading: the web UI reads the database, the config and its own keys itself; what only root may read (the
backup archives, the update state, the keys of other areas) comes through an action too. A handler may hand
back one open file (`FD_KEY` in its result, a descriptor it owns): over the socket it travels beside the
answer as SCM_RIGHTS and is closed on the daemon's side; in-process the caller gets the descriptor itself.
That is how a backup archive larger than a request's 4 MB reaches the browser without a copy.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.clock import wall
from appliance.config.model import MamoriConfig
from appliance.errors import ConfigError, FieldIssue, MamoriError, Message, NotFoundError
from appliance.subsystem import Context, Subsystem

log = logging.getLogger(__name__)

MAX_REQUEST = 4 * 1024 * 1024  # a config text is the largest argument (the web UI caps a form at 2 MB)
MAX_STR = 64 * 1024  # a string argument unless its field says otherwise (metadata {"max": n})
MAX_LIST = 256
FD_KEY = "_fd"  # a handler's result may carry one open file descriptor under this key (handed over, not JSON)


class ActionError(MamoriError):
    """A request the allow-list refuses: nothing ran."""

    code = "action.refused"


@dataclass(frozen=True)
class ActionEnv:
    """What a handler runs with: the daemon's context, the engines (None: every area's), who asked, and the
    clock (the product's wall clock; a test's web app passes its own to the in-process registry)."""

    ctx: Context
    subsystems: Sequence[Subsystem] | None = None
    peer_uid: int = 0
    clock: Callable[[], float] = wall

    def config(self) -> MamoriConfig | None:
        """The config the pages showed: the live revision's, else the config file (a box before its first
        apply; the web UI reads the same, webui.core.live_config); None if neither parses."""
        from appliance.revisions import config_in_force

        try:
            return config_in_force(self.ctx.db, self.ctx.paths.config)
        except ConfigError:
            return None


@dataclass(frozen=True)
class Action:
    name: str
    args: type
    handler: Callable[[ActionEnv, Any], dict[str, Any]]
    doc: str = ""


ACTIONS: dict[str, Action] = {}


def action(name: str, args: type) -> Callable[[Callable[[ActionEnv, Any], dict[str, Any]]], Any]:
    """Register a handler under `name`; its request is parsed into `args` (a frozen dataclass)."""
    if not dataclasses.is_dataclass(args):
        raise TypeError(f"{name}: arguments must be a dataclass")

    def register(handler: Callable[[ActionEnv, Any], dict[str, Any]]) -> Callable[..., Any]:
        if name in ACTIONS:
            raise ValueError(f"action {name} registered twice")
        ACTIONS[name] = Action(name, args, handler, (handler.__doc__ or "").strip().split("\n")[0])
        return handler

    return register


def _refuse(ja: str, en: str) -> ActionError:
    return ActionError(ja, en)


def _check(field: str, value: Any, hint: Any, limit: int) -> Any:
    """`value` if it has type `hint` exactly (JSON's types: str, int, bool, list[str], X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _check(field, value, inner, limit)
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise _refuse(f"引数 {field} はリストではありません", f"argument {field} must be a list")
        if len(value) > MAX_LIST:
            raise _refuse(f"引数 {field} の要素が多すぎます", f"argument {field} has too many items")
        return tuple(_check(field, v, inner, limit) for v in value)
    ok = {
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
    }.get(hint)
    if ok is None:
        raise TypeError(f"argument {field}: type {hint!r} is not one an action may take")
    if not ok:
        raise _refuse(
            f"引数 {field} の型が違います（{hint.__name__} が必要です）",
            f"argument {field} must be of type {hint.__name__}",
        )
    if isinstance(value, str) and (len(value) > limit or "\x00" in value):
        raise _refuse(
            f"引数 {field} が長すぎるか、使えない文字を含みます", f"argument {field} is too long or has a NUL"
        )
    return value


def parse_args(cls: type, raw: Any) -> Any:
    """`cls(**raw)` after checking every field strictly; an ActionError names the first problem."""
    if not isinstance(raw, dict):
        raise _refuse("引数はオブジェクトで渡してください", "arguments must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise _refuse(f"知らない引数です: {', '.join(unknown)}", f"unknown argument(s): {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _refuse(f"引数 {name} がありません", f"missing argument {name}")
            continue
        values[name] = _check(name, raw[name], hints[name], int(f.metadata.get("max", MAX_STR)))
    return cls(**values)


def dispatch(
    env: ActionEnv, name: Any, raw_args: Any, may: Callable[[str], bool] = lambda name: True
) -> dict[str, Any]:
    """Run one allowed action; an ActionError when `name` is not on the list, or not one the peer `may` ask
    for (appliance.actions.server.peers), or its arguments do not fit."""
    _load_actions()
    act = ACTIONS.get(name) if isinstance(name, str) and may(name) else None
    if act is None:
        shown = str(name)[:64]
        raise _refuse(f"許可されていない操作です: {shown}", f"action not allowed: {shown}")
    args = parse_args(act.args, raw_args)
    return act.handler(env, args)


# -- the wire ------------------------------------------------------------------------------------------


def error_to_wire(exc: MamoriError) -> dict[str, Any]:
    out: dict[str, Any] = {"code": exc.code, "ja": exc.text("ja"), "en": exc.text("en")}
    from appliance.config.authority import ConfigRefused
    from appliance.service import ConfirmRefused

    if isinstance(exc, ConfigRefused):
        out["kind"] = "config_refused"
        out["missing"] = [[m.path, m.permission] for m in exc.missing]
    elif isinstance(exc, ConfirmRefused):
        out["kind"] = "confirm_refused"
        out["revision"], out["status"] = exc.revision, exc.status
    elif isinstance(exc, ConfigError):
        out["kind"] = "config_invalid"
        out["issues"] = [[i.path, i.message.ja, i.message.en] for i in exc.issues]
    elif isinstance(exc, NotFoundError):
        out["kind"] = "not_found"
    return out


def error_from_wire(err: dict[str, Any]) -> MamoriError:
    """The error the handler raised, as its own type where a caller looks into it; else a MamoriError with
    the same code and messages."""
    from appliance.config.authority import ConfigRefused, Missing
    from appliance.service import ConfirmRefused

    kind = err.get("kind")
    ja, en, code = str(err.get("ja", "")), str(err.get("en", "")), str(err.get("code", "mamori"))
    if kind == "config_refused":
        return ConfigRefused([Missing(str(p), str(m)) for p, m in err.get("missing", [])])
    if kind == "confirm_refused":
        return ConfirmRefused(ja, en, code, int(err["revision"]), str(err["status"]))
    if kind == "config_invalid":
        return ConfigError([FieldIssue(str(p), Message(str(j), str(e))) for p, j, e in err.get("issues", [])])
    if kind == "not_found":
        return NotFoundError(ja, en)
    if code == ActionError.code:
        return ActionError(ja, en)
    return MamoriError(ja, en, code=code)


def handle_request(env: ActionEnv, data: bytes) -> bytes:
    """One request (a JSON object) in, one answer out: {"ok": true, "result": {...}} or
    {"ok": false, "error": {...}}. A bug in a handler answers a plain error and is logged here.
    A descriptor the handler handed back is closed (this path has nowhere to send it)."""
    import os

    answer, fds = handle_request_fds(env, data)
    for fd in fds:
        os.close(fd)
    return answer


def handle_request_fds(
    env: ActionEnv, data: bytes, may: Callable[[str], bool] = lambda name: True
) -> tuple[bytes, list[int]]:
    """`handle_request`, and the descriptor the handler handed back (FD_KEY), which the caller now owns;
    `may`: which actions this peer may ask for."""
    fds: list[int] = []
    try:
        if len(data) > MAX_REQUEST:
            raise _refuse("要求が大きすぎます", "request too large")
        try:
            request = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise _refuse("要求を読めません（JSON ではありません）", "request is not JSON") from None
        if not isinstance(request, dict) or set(request) - {"action", "args"}:
            raise _refuse("要求の形が違います", 'a request is {"action": ..., "args": {...}}')
        result = dispatch(env, request.get("action"), request.get("args", {}), may)
        if FD_KEY in result:
            result = dict(result)
            fds.append(int(result.pop(FD_KEY)))
            result["fds"] = 1
        answer: dict[str, Any] = {"ok": True, "result": result}
    except MamoriError as exc:
        answer = {"ok": False, "error": error_to_wire(exc)}
    except Exception:
        log.exception("action failed unexpectedly")
        answer = {"ok": False, "error": {"code": "action.failed", "ja": "本体で処理できませんでした",
                                         "en": "the daemon could not carry out the action"}}  # fmt: skip
    return json.dumps(answer, ensure_ascii=False).encode(), fds


_LOADED: list[bool] = []


def action_modules() -> list[str]:
    """Every area's action modules (appliance.areas; the config actions are the web UI area's)."""
    from appliance.areas import hooks

    return hooks("actions")


def _load_actions() -> None:
    """Import the modules that register actions, once, on first use."""
    if not _LOADED:
        import importlib

        for name in action_modules():
            importlib.import_module(name)
        _LOADED.append(True)
