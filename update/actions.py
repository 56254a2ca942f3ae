"""The update steps a person or the schedule takes, each audited and, where the clinic should know, notified:
check the vendor's index and stage what it names (`update.check`, `update.staged`), take an uploaded or local
bundle (`update.staged` / `update.refused`), ask the root side to install (`update.requested`), and report what
the root side did (`update.result`). The CLI, the web UI and the daemon's worker all call these, so a step is
audited the same way whoever takes it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import IO, Any

from appliance.audit import audit_log
from appliance.clock import monotonic, wall
from appliance.config.model import MamoriConfig
from appliance.fileio import create_once
from appliance.subsystem import Context
from update import errors, fetch, stage
from update.box import UpdatePaths, box_info, read_json
from update.index import MAX_INDEX, Release, newest_for, parse_index
from update.manifest import load_keys
from update.model import UpdateConfig

log = logging.getLogger(__name__)

KV_CHECK = "update.last_check"  # {"at": ts, "outcome": ..., "code": ..., "available": {...}}
KV_RESULT_SEEN = "update.result_seen"
KV_INTERRUPTED_SEEN = "update.interrupted_seen"  # its own key: result.json still names an older request
KV_BOOT_SEEN = "update.boot_seen"
KV_ROLLBACKS = "update.rollbacks"  # how many trial boots fell back (a counter for metrics)


def box_id(ctx: Context) -> str:
    """This box's stable random id (made once, kept with the keys): what a release's rollout share hashes."""
    path = ctx.paths.keys_dir / "box-id"
    create_once(path, secrets.token_hex(16) + "\n", mode=0o600)
    return path.read_text(encoding="ascii").strip()


def audit(
    ctx: Context, actor: str, action: str, detail: dict[str, Any], source: str, remote: str = ""
) -> None:
    audit_log(ctx).record(actor, action, detail, source, remote)


def notify(ctx: Context, cfg: MamoriConfig | None, subject: str, body: str, severity: int = 3) -> None:
    """Tell the clinic's channels through the outbox; a notice that cannot be queued never stops an update."""
    if cfg is None:
        return
    try:
        from appliance.notify.channels import channels
        from appliance.notify.message import Message
        from appliance.notify.outbox import enqueue

        names = [c.name for c in channels(cfg, ctx.paths.keys_dir)]
        if names:
            msg = Message(
                subject=f"[{cfg.clinic.name}] {subject}", body=body, severity=severity, kind="notice"
            )
            with ctx.db.transaction() as conn:
                enqueue(conn, msg, names, wall())
    except Exception:
        log.exception("could not queue the update notice %r", subject)


@dataclass(frozen=True)
class CheckOutcome:
    """outcome: up-to-date / held-back (the rollout does not include this box yet) / staged (downloaded and
    verified now) / ready (already staged) / refused (see code)."""

    outcome: str
    version: str = ""
    notes_ja: str = ""
    code: str = ""
    message_ja: str = ""
    message_en: str = ""


def _record_check(ctx: Context, result: CheckOutcome, actor: str, source: str) -> None:
    ctx.db.set_kv(KV_CHECK, json.dumps({"at": wall(), **asdict(result)}, ensure_ascii=False))
    detail = {"outcome": result.outcome, "version": result.version}
    if result.code:
        detail["code"] = result.code
    audit(ctx, actor, "update.check", detail, source)


def last_check(ctx: Context) -> dict | None:
    text = ctx.db.get_kv(KV_CHECK)
    return json.loads(text) if text else None


def _pick(ctx: Context, ucfg: UpdateConfig, upaths: UpdatePaths, keys: list) -> Release | None:
    assert ucfg.source is not None
    data = fetch.get_small(ucfg.source, "index.json", MAX_INDEX, ucfg.ca_file)
    sig = fetch.get_small(ucfg.source, "index.json.sig", 1024, ucfg.ca_file)
    return newest_for(parse_index(data, sig, keys), box_info(upaths).arch, box_id(ctx))


CHECK_LOCK = "check.lock"


@contextmanager
def _one_check_at_a_time(upaths: UpdatePaths, wait: float) -> Iterator[bool]:
    """True while this process holds the check lock; False when another check still runs after `wait`
    seconds (the daemon's schedule and `mamori update check` in a root shell would otherwise download into
    the same resumable part file)."""
    upaths.ensure()
    fd = os.open(upaths.base / CHECK_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.5)
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def check(
    ctx: Context, cfg: MamoriConfig | None, ucfg: UpdateConfig, actor: str, source: str, wait: float = 0.0
) -> CheckOutcome:
    """Look at the vendor's index; download, verify and stage a newer release this box is in the rollout of.
    Refusals are returned (and audited), not raised: a scheduled check has nobody to raise to. While another
    check runs, this one waits up to `wait` seconds for it (a person's check then sees what it staged: "ready"),
    else is answered "busy", neither recorded nor audited (the running one will be); the schedule never waits."""
    upaths = UpdatePaths.of(ctx.paths)
    if not ucfg.source:
        raise errors.UpdateRefused("更新の確認先（update.source）が設定されていません。",
                                   "no update source is configured (update.source)", code="update.nosource")  # fmt: skip
    with _one_check_at_a_time(upaths, wait) as mine:
        if not mine:
            busy = errors.check_busy()
            return CheckOutcome(
                "refused", code=busy.code, message_ja=busy.text("ja"), message_en=busy.text("en")
            )
        return _check_locked(ctx, cfg, ucfg, upaths, actor, source)


def _check_locked(ctx: Context, cfg: MamoriConfig | None, ucfg: UpdateConfig, upaths: UpdatePaths,
                  actor: str, source: str) -> CheckOutcome:  # fmt: skip
    try:
        box = box_info(upaths)
        keys = load_keys(upaths.keys_dir)
        release = _pick(ctx, ucfg, upaths, keys)
        if release is None:
            result = CheckOutcome("held-back")
        elif box.version is not None and release.version <= box.version:
            result = CheckOutcome("up-to-date", str(box.version))
        elif (current := stage.current_staged(upaths)) and current.version == str(release.version):
            result = CheckOutcome("ready", current.version, current.notes_ja)
        else:
            stage.ensure_space(upaths, release.size)
            part = stage.incoming_temp(upaths, release.sha256[:32])
            fetch.download(ucfg.source, release.file, part, release.size, release.sha256, ucfg.ca_file)
            staged = stage.stage(upaths, box, part, "download")
            result = CheckOutcome("staged", staged.version, staged.notes_ja or release.notes_ja)
            audit(ctx, actor, "update.staged", {"version": staged.version, "file": staged.name,
                                                "from": "download"}, source)  # fmt: skip
            notify(ctx, cfg, f"新しい版 {staged.version} を受け取りました",
                   f"Mamori の新しい版 {staged.version} を受け取り、署名を確認しました。"
                   + ("静かな時間帯に自動で入れます。" if ucfg.auto == "install"
                      else "管理画面の「ソフトウェア更新」から入れてください。"))  # fmt: skip
    except errors.UpdateRefused as exc:
        result = CheckOutcome("refused", code=exc.code, message_ja=exc.text("ja"), message_en=exc.text("en"))
        if exc.code in ("update.signature", "update.hash"):
            notify(ctx, cfg, "更新ファイルを受け付けませんでした", exc.text("ja"), severity=2)
    _record_check(ctx, result, actor, source)
    return result


def take_file(ctx: Context, src: IO[bytes], actor: str, source: str, remote: str = "",
              limit: int = stage.DEFAULT_LIMIT, origin: str = "upload") -> stage.Staged:  # fmt: skip
    """A bundle from an upload or a file on the box: copied to incoming/, verified, staged; audited either way."""
    upaths = UpdatePaths.of(ctx.paths)
    try:
        tmp = stage.copy_in(upaths, src, limit)
        staged = stage.stage(upaths, box_info(upaths), tmp, origin)
    except errors.UpdateRefused as exc:
        audit(ctx, actor, "update.refused", {"code": exc.code, "from": origin}, source, remote)
        raise
    audit(ctx, actor, "update.staged", {"version": staged.version, "file": staged.name, "from": origin},
          source, remote)  # fmt: skip
    return staged


def request(ctx: Context, cfg: MamoriConfig | None, reboot: str, actor: str, source: str,
            remote: str = "") -> dict:  # fmt: skip
    """Ask the root side to install the staged bundle; audited (refusals too) and notified."""
    upaths = UpdatePaths.of(ctx.paths)
    try:
        req = stage.request_install(upaths, box_info(upaths), reboot, actor)
    except errors.UpdateRefused as exc:
        audit(ctx, actor, "update.refused", {"code": exc.code, "step": "request"}, source, remote)
        raise
    audit(ctx, actor, "update.requested", {k: req[k] for k in ("id", "version", "bundle", "reboot")}, source,
          remote)  # fmt: skip
    when = "すぐに再起動します" if reboot == "now" else "静かな時間帯に再起動します"
    notify(ctx, cfg, f"版 {req['version']} への更新を始めます", f"{actor} が版 {req['version']} への更新を始めました。{when}。"
           "再起動の間（数分）、インターネットと院内ネットワークの間の通信が止まります。")  # fmt: skip
    return req


def cancel(ctx: Context, actor: str, source: str, remote: str = "") -> dict:
    """Withdraw a waiting install request (audited); refused once the root side has taken it."""
    req = stage.cancel_request(UpdatePaths.of(ctx.paths))
    audit(
        ctx, actor, "update.cancelled", {"id": req.get("id"), "version": req.get("version")}, source, remote
    )
    return req


def observe(ctx: Context, cfg: MamoriConfig | None) -> list[dict]:
    """Audit and notify, once each, what the root side reported: the installer's result.json and, after a
    reboot, boot.json's trial outcome (good, or rolled back). Returns the new reports."""
    upaths = UpdatePaths.of(ctx.paths)
    new = []
    result = read_json(upaths.result)
    if result and result.get("id") and result.get("id") != ctx.db.get_kv(KV_RESULT_SEEN):
        ctx.db.set_kv(KV_RESULT_SEEN, str(result["id"]))
        detail = {k: result.get(k) for k in ("id", "ok", "version", "code")}
        audit(ctx, "system", "update.result", {"step": "install", **detail}, "daemon")
        if not result.get("ok"):
            notify(
                ctx, cfg, "更新を入れられませんでした", str(result.get("message_ja") or "")[:500], severity=2
            )
        new.append(result)
    cut = stage.interrupted(upaths)
    if cut and cut.get("id") and cut.get("id") != ctx.db.get_kv(KV_INTERRUPTED_SEEN):
        ctx.db.set_kv(KV_INTERRUPTED_SEEN, str(cut["id"]))
        audit(ctx, "system", "update.result", {"step": "install", "id": cut.get("id"), "ok": False,
                                               "version": cut.get("version"), "code": "update.interrupted"}, "daemon")  # fmt: skip
        notify(ctx, cfg, "更新が途中で止まりました",
               f"版 {cut.get('version')} を書き込んでいる途中で、電源が切れたか再起動しました。いまの版のまま正常に"
               "動いています。もう一度「ソフトウェア更新」から入れてください。", severity=2)  # fmt: skip
        new.append({**cut, "ok": False, "code": "update.interrupted"})
    boot = read_json(upaths.boot)
    trial = (boot or {}).get("trial")
    # boot.json is rewritten at every boot (a new "at"), with the same trial until its outcome is final:
    # one report per update and outcome, not per boot.
    seen = (
        f"{trial.get('id') or trial.get('version')}:{trial.get('outcome')}" if isinstance(trial, dict) else ""
    )
    if boot and isinstance(trial, dict) and seen != ctx.db.get_kv(KV_BOOT_SEEN):
        ctx.db.set_kv(KV_BOOT_SEEN, seen)
        outcome, version = str(trial.get("outcome")), str(trial.get("version"))
        audit(
            ctx, "system", "update.result", {"step": "boot", "outcome": outcome, "version": version}, "daemon"
        )
        if outcome == "good":
            notify(ctx, cfg, f"版 {version} に更新しました", f"Mamori は版 {version} で正常に動いています。")
        elif outcome == "rolled-back":
            ctx.db.set_kv(KV_ROLLBACKS, str(int(ctx.db.get_kv(KV_ROLLBACKS) or 0) + 1))
            notify(ctx, cfg, "更新を取り消し、元の版に戻しました",
                   f"新しい版 {version} が確認に失敗したため、元の版に戻しました。機器は元の版で動いています。"
                   "保守業者に連絡してください。", severity=2)  # fmt: skip
        new.append(boot)
    return new
