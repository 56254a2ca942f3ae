"""HTTPS from the vendor's static directory: the index, and a bundle downloaded to a resumable temp file.

Only https, also after a redirect; the server's certificate is checked against the system CAs or, when
`update.ca_file` is set, against that CA alone. Every read has a timeout and every download a size limit (the
size the signed index names), so a slow or endless server cannot fill the disk or hang the worker for ever.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from appliance.clock import monotonic
from update import errors

log = logging.getLogger(__name__)

TIMEOUT = 30.0
CHUNK = 1 << 16
MAX_DOWNLOAD_SECONDS = (
    3 * 3600.0
)  # a server that trickles bytes is given up on; the .part file is resumed later


class _HttpsOnly(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme != "https":
            raise errors.fetch(
                "https 以外への転送は受け付けません", f"redirect to a non-https URL refused: {newurl[:80]}"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener(ca_file: str | None) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=ca_file)
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _HttpsOnly())


def _url(source: str, name: str) -> str:
    url = urljoin(source, name)
    if urlsplit(url).scheme != "https":  # the config allows only https; this keeps any other caller honest
        raise errors.fetch("https 以外の確認先は使えません", f"not an https URL: {url[:80]}")
    return url


def _fail(exc: BaseException) -> errors.UpdateRefused:
    if isinstance(exc, urllib.error.HTTPError):
        return errors.fetch(f"応答 {exc.code}", f"HTTP {exc.code}")
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return errors.fetch("証明書を確認できません", f"certificate not trusted: {reason.verify_message}")
    return errors.fetch("接続できません", str(reason)[:200])


def get_small(source: str, name: str, limit: int, ca_file: str | None) -> bytes:
    """GET a small file (the index and its signature) into memory, refusing more than `limit` bytes."""
    try:
        with opener(ca_file).open(_url(source, name), timeout=TIMEOUT) as resp:
            data = resp.read(limit + 1)
    except errors.UpdateRefused:
        raise
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise _fail(exc) from None
    if len(data) > limit:
        raise errors.fmt(f"{name} が大きすぎます", f"{name} too large")
    return data


def download(source: str, name: str, dest: Path, size: int, sha256: str, ca_file: str | None,
             max_seconds: float = MAX_DOWNLOAD_SECONDS) -> Path:  # fmt: skip
    """Download `name` into `dest` (a .part file), continuing a partial one with a Range request; refuses more
    than `size` bytes and checks the sha256 the signed index gave. A file that does not match is removed,
    so the next try starts over instead of resuming a bad one."""
    have = dest.stat().st_size if dest.exists() else 0
    if have > size:
        dest.unlink()
        have = 0
    request = urllib.request.Request(_url(source, name))
    if 0 < have < size:
        request.add_header("Range", f"bytes={have}-")
    try:
        if have < size:
            with opener(ca_file).open(request, timeout=TIMEOUT) as resp:
                append = have > 0 and resp.status == 206
                _copy(resp, dest, append, size, monotonic() + max_seconds)
    except errors.UpdateRefused:
        raise
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise _fail(exc) from None  # the part file stays: the next check resumes it
    digest = hashlib.sha256()
    with open(dest, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if dest.stat().st_size != size or digest.hexdigest() != sha256:
        dest.unlink(missing_ok=True)
        raise errors.hash_mismatch(name)
    return dest


def _copy(resp, dest: Path, append: bool, size: int, deadline: float) -> None:
    with open(dest, "ab" if append else "wb") as out:
        total = out.tell()
        while chunk := resp.read(CHUNK):
            if monotonic() > deadline:
                out.flush()
                raise errors.fetch("時間がかかりすぎたため中断しました（次の確認で続きから受け取ります）",
                                   "download too slow: stopped, resumed at the next check")  # fmt: skip
            total += len(chunk)
            if total > size:
                out.close()
                dest.unlink(missing_ok=True)
                raise errors.fmt(
                    "更新ファイルが index の大きさを超えています", "the bundle is larger than the index says"
                )
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
