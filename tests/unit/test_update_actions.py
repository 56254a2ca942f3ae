"""update/actions and the worker against a static HTTPS server on loopback (python http.server with TLS and a
test CA): check, download, verify, stage, request in the quiet hours, refusals, and the audited results."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.clock import wall, zone
from appliance.config.load import parse_config
from tests.updatekit import make_bundle, make_index, make_key, make_tls, server_argv, system_root
from update import actions, stage
from update.box import UpdatePaths
from update.worker import KV_CHECK_REQUESTED, UpdateWorker, ask_for_check

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vendor(tmp_path, monkeypatch):
    """A box running 2026.12.1 that trusts a test key, and the vendor's HTTPS directory (empty at first)."""
    root = system_root(tmp_path / "root", "2026.12.1")
    monkeypatch.setenv("MAMORI_UPDATE_ROOT", str(root))
    key = make_key(root / "usr/share/mamori/update-keys")
    site = tmp_path / "site"
    site.mkdir()
    cert, tls_key = make_tls(tmp_path / "tls")
    port = _free_port()
    proc = subprocess.Popen(server_argv("127.0.0.1", port, site, cert, tls_key), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        yield key, site, f"https://127.0.0.1:{port}/", cert
    finally:
        proc.kill()
        proc.wait(5)


def _cfg(source: str, ca: Path, auto: str = "notify"):
    text = EXAMPLE + f"\nupdate:\n  source: {source}\n  ca_file: {ca}\n  auto: {auto}\n"
    return parse_config(text).model


def _audit(ctx, action: str) -> list[dict]:
    return [
        e.detail
        for e in AuditLog(ctx.db, ctx.paths.keys_dir / "audit.key").search(action)
        if e.action == action
    ]


def test_check_downloads_verifies_and_stages(ctx, vendor, tmp_path) -> None:
    key, site, url, ca = vendor
    make_index(
        site, key, make_bundle(tmp_path / "b" / "mamori-2026.12.2-amd64.tar", key, "2026.12.2"), "2026.12.2"
    )
    cfg = _cfg(url, ca)
    out = actions.check(ctx, cfg, cfg.update, "admin", "cli")
    assert (out.outcome, out.version) == ("staged", "2026.12.2"), out
    upaths = UpdatePaths.of(ctx.paths)
    assert [p.name for p in upaths.staged.iterdir()] == ["mamori-2026.12.2-amd64.tar"]
    assert list(upaths.incoming.iterdir()) == []
    assert actions.check(ctx, cfg, cfg.update, "admin", "cli").outcome == "ready"  # not downloaded twice
    assert [d["outcome"] for d in _audit(ctx, "update.check")] == ["ready", "staged"]  # newest first
    assert _audit(ctx, "update.staged")[0]["version"] == "2026.12.2"


def test_tampered_and_older_are_refused_and_leave_staged_empty(ctx, vendor, tmp_path) -> None:
    key, site, url, ca = vendor
    cfg = _cfg(url, ca)
    upaths = UpdatePaths.of(ctx.paths)
    bad = make_bundle(tmp_path / "b" / "mamori-2026.12.2-amd64.tar", key, "2026.12.2", tamper=True)
    make_index(
        site, key, bad, "2026.12.2"
    )  # the index names the tampered file's own hash: only the manifest catches it
    out = actions.check(ctx, cfg, cfg.update, "system", "daemon")
    assert (out.outcome, out.code) == ("refused", "update.hash")
    assert list(upaths.staged.iterdir()) == [] and list(upaths.incoming.iterdir()) == []
    older = make_bundle(tmp_path / "b" / "mamori-2026.11.1-amd64.tar", key, "2026.11.1")
    make_index(site, key, older, "2026.11.1")
    assert actions.check(ctx, cfg, cfg.update, "system", "daemon").outcome == "up-to-date"
    assert list(upaths.staged.iterdir()) == []
    # An older one that the index presents as new (a lie the signed manifest cannot tell): still refused.
    make_index(site, key, older, "2026.12.9")
    out = actions.check(ctx, cfg, cfg.update, "system", "daemon")
    assert (out.outcome, out.code) == ("refused", "update.downgrade")
    assert list(upaths.staged.iterdir()) == []


def test_a_second_check_while_one_runs_is_busy_and_downloads_nothing(ctx, vendor, tmp_path) -> None:
    """The daemon's schedule and `mamori update check` from a root shell would otherwise both write the same
    resumable part file: the second is answered busy (not recorded) or, when asked to, waits for the first."""
    key, site, url, ca = vendor
    make_index(site, key, make_bundle(tmp_path / "b" / "x.tar", key, "2026.12.2"), "2026.12.2")
    cfg = _cfg(url, ca)
    upaths = UpdatePaths.of(ctx.paths)
    upaths.ensure()
    with open(upaths.base / actions.CHECK_LOCK, "w") as running:  # another process's check, mid-download
        fcntl.flock(running, fcntl.LOCK_EX)
        out = actions.check(ctx, cfg, cfg.update, "admin", "cli")
        assert (out.outcome, out.code) == ("refused", "update.check_busy"), out
        assert "確認" in out.message_ja
        assert list(upaths.incoming.iterdir()) == [] and list(upaths.staged.iterdir()) == []
        assert actions.last_check(ctx) is None and _audit(ctx, "update.check") == []
        # A person's check waits (bounded) for the running one; here it ends 1 s later, having staged nothing.
        threading.Timer(1.0, fcntl.flock, (running, fcntl.LOCK_UN)).start()
        out = actions.check(ctx, cfg, cfg.update, "admin", "cli", wait=120)  # long: CI runs this at nice 19
    assert (out.outcome, out.version) == ("staged", "2026.12.2"), out


def test_untrusted_server_certificate_is_refused(ctx, vendor, tmp_path) -> None:
    key, site, url, _ = vendor
    make_index(site, key, make_bundle(tmp_path / "b" / "x.tar", key, "2026.12.2"), "2026.12.2")
    other_ca, _ = make_tls(tmp_path / "other")
    cfg = _cfg(url, other_ca)
    out = actions.check(ctx, cfg, cfg.update, "system", "daemon")
    assert (out.outcome, out.code) == ("refused", "update.fetch")
    assert "証明書" in out.message_ja


def test_held_back_by_rollout(ctx, vendor, tmp_path) -> None:
    key, site, url, ca = vendor
    make_index(site, key, make_bundle(tmp_path / "b" / "x.tar", key, "2026.12.2"), "2026.12.2", share=0)
    cfg = _cfg(url, ca)
    assert actions.check(ctx, cfg, cfg.update, "system", "daemon").outcome == "held-back"


def _jst(local: str) -> float:
    return dt.datetime.fromisoformat(local).replace(tzinfo=zone("Asia/Tokyo")).timestamp()


def test_worker_checks_when_asked_and_installs_only_in_quiet_hours(ctx, vendor, tmp_path) -> None:
    key, site, url, ca = vendor
    make_index(site, key, make_bundle(tmp_path / "b" / "x.tar", key, "2026.12.2"), "2026.12.2")
    cfg = _cfg(url, ca, auto="install")
    now = [_jst("2026-12-07T15:00")]
    mono = [1000.0]
    worker = UpdateWorker(ctx, cfg, mono=lambda: mono[0], clock=lambda: now[0], first_delay=3600)
    ask_for_check(ctx, "admin")
    worker.step()
    assert ctx.db.get_kv(KV_CHECK_REQUESTED) is None
    upaths = UpdatePaths.of(ctx.paths)
    assert stage.current_staged(upaths) is not None
    assert not upaths.request.exists()  # 15:00: not in the quiet hours
    now[0] = _jst("2026-12-08T02:10")
    worker.step()
    request = json.loads(upaths.request.read_text())
    assert request["reboot"] == "now" and request["requested_by"] == "system"
    assert _audit(ctx, "update.requested")[0]["version"] == "2026.12.2"
    # The root side takes it and fails: audited once, not requested again for the same bundle.
    upaths.request.rename(upaths.taken)
    upaths.result.write_text(json.dumps({"id": request["id"], "ok": False, "code": "update.space",
                                         "message_ja": "容量不足"}))  # fmt: skip
    worker.step()
    worker.step()
    assert len(_audit(ctx, "update.result")) == 1
    assert not upaths.request.exists()


def test_boot_outcome_is_reported_once(ctx, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAMORI_UPDATE_ROOT", str(system_root(tmp_path / "root", "2026.12.1")))
    upaths = UpdatePaths.of(ctx.paths)
    upaths.ensure()
    upaths.boot.write_text(json.dumps({"running": {"slot": "a", "version": "2026.12.1"},
                                       "fallback": {"slot": "b", "version": "2026.12.2"},
                                       "trial": {"version": "2026.12.2", "outcome": "rolled-back"},
                                       "at": "2026-12-07T17:05:00Z"}))  # fmt: skip
    assert len(actions.observe(ctx, None)) == 1
    assert actions.observe(ctx, None) == []
    # The next boot rewrites boot.json (a new "at") with the same final outcome: not reported again.
    data = json.loads(upaths.boot.read_text())
    upaths.boot.write_text(json.dumps({**data, "at": "2026-12-08T17:05:00Z"}))
    assert actions.observe(ctx, None) == []
    (entry,) = _audit(ctx, "update.result")
    assert entry == {"step": "boot", "outcome": "rolled-back", "version": "2026.12.2"}


def test_an_install_cut_off_by_a_power_cut_is_reported_once_and_not_busy_for_ever(
    ctx, tmp_path, monkeypatch
) -> None:
    """The root side took a request and the box lost power while writing: no result.json will ever name it.
    In a later boot (another boot id) it is not "in progress" (every later install would be refused busy,
    for good), and the clinic is told once; in the boot that took it, it still counts as installing."""
    monkeypatch.setenv("MAMORI_UPDATE_ROOT", str(system_root(tmp_path / "root", "2026.12.1")))
    upaths = UpdatePaths.of(ctx.paths)
    upaths.ensure()
    upaths.result.write_text(
        json.dumps({"id": "0d", "ok": False, "code": "update.downgrade"})
    )  # an older answer
    taken = {"id": "5e", "bundle": "mamori-2026.12.2-amd64.tar", "version": "2026.12.2", "reboot": "now"}
    upaths.taken.write_text(json.dumps({**taken, "boot_id": stage.boot_id()}))  # taken in this boot
    assert stage.in_progress(upaths) is not None and stage.interrupted(upaths) is None
    assert [r["id"] for r in actions.observe(ctx, None)] == ["0d"], "only the older answer, nothing cut off"
    upaths.taken.write_text(json.dumps({**taken, "boot_id": "an-earlier-boot"}))  # the box has rebooted since
    assert stage.in_progress(upaths) is None and stage.interrupted(upaths)["id"] == "5e"
    reported = [r for r in actions.observe(ctx, None) if r.get("code") == "update.interrupted"]
    assert [r["id"] for r in reported] == ["5e"]
    assert actions.observe(ctx, None) == [], "once"
    assert {"step": "install", "id": "5e", "ok": False, "version": "2026.12.2",
            "code": "update.interrupted"} in _audit(ctx, "update.result")  # fmt: skip
    upaths.taken.write_text(json.dumps(taken))  # a request from before boot ids were recorded: left as it was
    assert stage.interrupted(upaths) is None and stage.in_progress(upaths) is not None


def test_metrics_follow_the_update_state(ctx, tmp_path, monkeypatch) -> None:
    from metrics.exposition import exposition
    from tests.unit.test_metrics import value

    monkeypatch.setenv("MAMORI_UPDATE_ROOT", str(system_root(tmp_path / "root", "2026.12.1")))
    text = exposition(ctx).decode()
    assert value(text, "mamori_update_state", state="idle") == 1
    assert value(text, "mamori_update_rollbacks_total") == 0
    upaths = UpdatePaths.of(ctx.paths)
    upaths.ensure()
    upaths.boot.write_text(json.dumps({"running": {"slot": "a", "version": "2026.12.1"}, "fallback": None,
                                       "trial": {"version": "2026.12.2", "outcome": "rolled-back"},
                                       "at": "2026-12-07T17:05:00Z"}))  # fmt: skip
    actions.observe(ctx, None)
    text = exposition(ctx).decode()
    assert value(text, "mamori_update_rollbacks_total") == 1
    assert value(text, "mamori_update_state", state="rolled-back") == 1
    assert value(text, "mamori_update_state", state="idle") == 0


def test_download_limits_and_restart(vendor, tmp_path) -> None:
    import hashlib

    from update import errors, fetch

    key, site, url, ca = vendor
    data = make_bundle(site / "x.tar", key, "2026.12.2").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    part = tmp_path / "x.part"
    # A server sending more than the signed index says: stopped at the limit, nothing kept.
    with pytest.raises(errors.UpdateRefused) as info:
        fetch.download(url, "x.tar", part, len(data) - 100, sha, str(ca))
    assert info.value.code == "update.format" and not part.exists()
    # Too slow: given up, the part file kept for the next check.
    with pytest.raises(errors.UpdateRefused) as info:
        fetch.download(url, "x.tar", part, len(data), sha, str(ca), max_seconds=-1)
    assert info.value.code == "update.fetch" and part.exists()
    # A part file this server cannot continue (no Range support: 200) is written again from the start.
    part.write_bytes(b"garbage")
    assert fetch.download(url, "x.tar", part, len(data), sha, str(ca)).read_bytes() == data
    # The wrong file under the right name: removed, so the next try starts over.
    with pytest.raises(errors.UpdateRefused) as info:
        fetch.download(url, "x.tar", tmp_path / "y.part", len(data), "0" * 64, str(ca))
    assert info.value.code == "update.hash" and not (tmp_path / "y.part").exists()
    # Plain http is refused before anything is sent (the config allows only https; fetch checks again).
    with pytest.raises(errors.UpdateRefused) as info:
        fetch.get_small(url.replace("https", "http"), "index.json", 1000, str(ca))
    assert "https 以外" in info.value.text("ja")


def test_a_restarted_worker_waits_for_the_rest_of_the_interval(ctx, vendor, tmp_path) -> None:
    key, site, url, ca = vendor
    make_index(site, key, make_bundle(tmp_path / "b" / "x.tar", key, "2026.12.2"), "2026.12.2", share=0)
    cfg = _cfg(url, ca)  # check_interval 6h
    now = [wall()]  # the check is recorded at the wall clock's time
    mono = [1000.0]

    def worker() -> UpdateWorker:
        return UpdateWorker(ctx, cfg, mono=lambda: mono[0], clock=lambda: now[0], first_delay=10)

    w = worker()
    mono[0] += 11
    w.step()
    assert actions.last_check(ctx)["outcome"] == "held-back"
    now[0] += 3600  # a config change an hour later restarts the worker: the next check is 5 h away, not 10 s
    w = worker()
    assert w.next_check - mono[0] == pytest.approx(5 * 3600, abs=1)
    now[0] -= 86400  # the clock was stepped back a day: the check is not put off by it
    assert worker().next_check - mono[0] == 10
