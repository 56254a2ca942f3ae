"""Maintenance SSH as an appliance subsystem: render sshd_config and authorized_keys -> check (`sshd -t`,
sshd's own parser) -> apply (host key made once if missing; files written only when they changed) ->
verify (the files on disk are the rendering, with the modes sshd is trusted to rely on).

The subsystem never touches the process: the daemon's SshdWorker restarts sshd when sshd_config changes
(it carries the keys' hash), and stops it when the file is gone.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError
from appliance.fileio import atomic_write
from appliance.subsystem import Context, Subsystem
from sshsvc.render import (
    PRIVSEP_DIR,
    SSHD,
    authorized_keys_path,
    conf_path,
    host_key_path,
    render_authorized_keys,
    render_sshd,
    ssh_run_dir,
)

log = logging.getLogger(__name__)
MISSING = "ssh: sshd is not installed (package openssh-server); maintenance SSH cannot run"


@dataclass(frozen=True)
class SshRendering:
    sshd_config: str  # "" when SSH is off
    authorized_keys: str


def ensure_privsep_dir() -> None:
    """sshd (even `sshd -t`) refuses to run without its privilege separation directory, root-owned 0755.
    Debian's ssh.service would make it; we run sshd ourselves. On the image tmpfiles.d makes it at boot
    (the daemon's sandbox cannot write /run); in the lab we make it here."""
    try:
        st = PRIVSEP_DIR.stat()
        if st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755:
            return  # made at boot (image tmpfiles.d): /run is read-only inside the daemon's sandbox
    except FileNotFoundError:
        pass
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(PRIVSEP_DIR, 0o755)
    except OSError as exc:
        raise ApplyError(f"SSH の準備ができませんでした（{PRIVSEP_DIR}: {exc.strerror}）",
                         f"cannot prepare {PRIVSEP_DIR}: {exc.strerror}", code="ssh.privsep") from exc  # fmt: skip


def ensure_host_key(path: Path) -> None:
    """The box's SSH host key, made on first use: no two boxes share one, and the image carries none."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    res = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mamori", "-f", str(path)],
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()[:500]
        raise ApplyError(
            f"SSH の鍵を作れませんでした: {detail}", f"ssh-keygen failed: {detail}", code="ssh.hostkey"
        )


def sshd_check(text: str, host_key: Path) -> None:
    """`sshd -t -f FILE` parses the file; raises ApplyError with sshd's words. Before the first apply
    the host key does not exist yet: a throwaway one stands in (`-h`), so the check changes nothing."""
    if not text:
        return
    if not Path(SSHD).exists():
        log.error(MISSING)  # like chronyd missing: the firewall must still come up; tcp/22 has no listener
        return
    ensure_privsep_dir()
    with tempfile.TemporaryDirectory(prefix="mamori-sshd-check-") as tmp:
        conf = Path(tmp) / "sshd_config"
        conf.write_text(text, encoding="utf-8")
        argv = [SSHD, "-t", "-f", str(conf)]
        if not host_key.exists():
            ensure_host_key(Path(tmp) / "host_key")
            argv += ["-h", str(Path(tmp) / "host_key")]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()[:1000]
        raise ApplyError(f"遠隔ログイン（SSH）の設定が受け付けられませんでした: {detail}",
                         f"sshd refused its configuration: {detail}", code="ssh.check")  # fmt: skip


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text and (path.stat().st_mode & 0o777) == 0o600:
        return  # unchanged: sshd keeps running untouched
    atomic_write(path, text, mode=0o600)


class SshSubsystem(Subsystem):
    name = "ssh"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def render(self, cfg: MamoriConfig) -> SshRendering:
        return SshRendering(render_sshd(cfg, self.ctx.paths), render_authorized_keys(cfg))

    def check(self, rendered: SshRendering) -> None:
        sshd_check(rendered.sshd_config, host_key_path(self.ctx.paths))

    def apply(self, rendered: SshRendering) -> None:
        paths = self.ctx.paths
        if not rendered.sshd_config:
            self.reset()  # SSH switched off: the worker stops sshd
            return
        ensure_host_key(host_key_path(paths))
        directory = ssh_run_dir(paths)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        # Keys first: sshd is (re)started by the config file's change and must find the new keys.
        _write_if_changed(authorized_keys_path(paths), rendered.authorized_keys)
        _write_if_changed(conf_path(paths), rendered.sshd_config)

    def verify(self, rendered: SshRendering) -> None:
        paths = self.ctx.paths
        for path, text in ((conf_path(paths), rendered.sshd_config),
                           (authorized_keys_path(paths), rendered.authorized_keys)):  # fmt: skip
            live = path.read_text(encoding="utf-8") if path.exists() else ""
            if live != text:
                raise ApplyError(f"遠隔ログイン（SSH）の設定ファイルが書き込めていません（{path.name}）",
                                 f"{path.name} was not written", code="ssh.verify")  # fmt: skip
        if rendered.sshd_config:
            # StrictModes is off (see render): these modes are what makes that safe.
            modes = [(ssh_run_dir(paths), 0o700), (authorized_keys_path(paths), 0o600)]
            for path, mode in modes:
                st = path.stat()
                wrong_owner = os.geteuid() == 0 and st.st_uid != 0  # (unit tests run unprivileged)
                if wrong_owner or (st.st_mode & 0o777) != mode:
                    raise ApplyError(f"遠隔ログイン（SSH）のファイルの権限が正しくありません（{path}）",
                                     f"{path} must be {mode:o} and owned by root", code="ssh.verify")  # fmt: skip

    def reset(self) -> None:
        """No sshd_config, so the worker keeps sshd stopped; the host key is kept (the box's identity)."""
        paths = self.ctx.paths
        conf_path(paths).unlink(missing_ok=True)
        authorized_keys_path(paths).unlink(missing_ok=True)


def subsystems(ctx: Context) -> list[SshSubsystem]:
    return [SshSubsystem(ctx)]
