"""The SIEM forwarder as an appliance subsystem: render rsyslog.conf and the certificate files -> check
(`rsyslogd -N1`, rsyslog's own parser, on a copy in a temporary directory) -> apply (write the files only
when they changed) -> verify (the files on disk are the rendering).

The subsystem never touches the process: the daemon's RsyslogWorker restarts rsyslogd when rsyslog.conf
changes (a new certificate changes it too: its hash is in the file). Switched off, the files go and the
worker stops rsyslogd; the spool and the queue files stay, so switching on again delivers what was left.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError
from appliance.fileio import atomic_write
from appliance.subsystem import Context, Subsystem
from siem.render import Rendered, SiemPaths, render_rsyslog

log = logging.getLogger(__name__)


def _files(sp: SiemPaths, rendered: Rendered) -> list[tuple[Path, str, int]]:
    return [(sp.ca, rendered.ca, 0o644), (sp.client_cert, rendered.client_cert, 0o644),
            (sp.conf, rendered.conf, 0o640)]  # fmt: skip


def rsyslog_check(cfg: MamoriConfig, rendered: Rendered) -> None:
    """Ask rsyslogd whether it accepts the rendering (written into a temporary copy of the directory)."""
    if not rendered.conf:
        return
    if shutil.which("rsyslogd") is None:
        log.error("siem: rsyslogd is not installed (packages rsyslog, rsyslog-gnutls); logs are not sent")
        return
    with tempfile.TemporaryDirectory(prefix="mamori-siem-check-") as tmp:
        root = Path(tmp)
        sp = SiemPaths(root / "siem", root / "keys", root / "run")
        for d in (sp.root, sp.keys_dir, sp.run_dir, sp.work, sp.spool):
            d.mkdir(parents=True, exist_ok=True)
        copy = render_rsyslog(cfg, sp)
        for path, text, mode in _files(sp, copy):
            if text:
                atomic_write(path, text, mode)
        res = subprocess.run(["rsyslogd", "-N1", "-f", str(sp.conf)], capture_output=True, text=True,
                             timeout=30, check=False)  # fmt: skip
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()[:1000]
        raise ApplyError(f"ログ送信（rsyslog）の設定が受け付けられませんでした: {detail}",
                         f"rsyslogd refused its configuration: {detail}", code="siem.check")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Planned:
    cfg: MamoriConfig
    rendered: Rendered


class SiemSubsystem(Subsystem):
    name = "siem"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sp = SiemPaths.of(ctx.paths)

    def render(self, cfg: MamoriConfig) -> Planned:
        return Planned(cfg, render_rsyslog(cfg, self.sp))

    def check(self, rendered: Planned) -> None:
        rsyslog_check(rendered.cfg, rendered.rendered)

    def apply(self, rendered: Planned) -> None:
        # Certificates first, the config last: the worker restarts rsyslogd on the config's change only.
        for path, text, mode in _files(self.sp, rendered.rendered):
            if not text:
                path.unlink(missing_ok=True)
            elif not path.exists() or path.read_text(encoding="utf-8") != text:
                atomic_write(path, text, mode)

    def verify(self, rendered: Planned) -> None:
        for path, text, _mode in _files(self.sp, rendered.rendered):
            live = path.read_text(encoding="utf-8") if path.exists() else ""
            if live != text:
                raise ApplyError("ログ送信（rsyslog）の設定ファイルが書き込めていません",
                                 f"{path.name} was not written", code="siem.verify")  # fmt: skip

    def reset(self) -> None:
        """Undo a first apply that failed elsewhere: no rsyslog.conf, so the worker keeps rsyslogd stopped."""
        self.sp.conf.unlink(missing_ok=True)


def subsystems(ctx: Context) -> list[SiemSubsystem]:
    return [SiemSubsystem(ctx)]
