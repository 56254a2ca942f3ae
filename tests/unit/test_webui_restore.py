"""設定 → バックアップ → 復元 with the Flask test client on real archives: the example clinic's backup (ports
wan0, lan0, guest0, dev0) restored onto "this box", whose ports stand in the way tests/unit/test_backup_restore.py
does it (this machine has none of them): a mini PC's enp1s0..enp4s0, or the same names.

The port assignment form instead of a dead end, bad choices refused beside the field with the choices kept,
a good one showing the mapped config's diff, the box byte for byte the same until 「復元する」, then the restore
(audited, the mapped revision live) and, only after the page was sent, SIGHUP to the running daemon (a real
process standing in for it, found by the pid file like `mamori backup restore` finds it)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.backup import create_backup, crypto
from appliance.backup.passphrase import set_passphrase
from appliance.revisions import RevisionStore
from lab.waiting import wait_or_fail
from tests.webui_fixtures import Box, audit_actions, make_box, session_token
from webui.interfaces import Port
from webui.views import settings_restore

SECRET = "sakura-kaze-yama-umi-2026"
EXAMPLE_PORTS = ["wan0", "lan0", "guest0", "dev0"]
MINI_PC = ["enp1s0", "enp2s0", "enp3s0", "enp4s0"]
MAPPING = dict(zip(EXAMPLE_PORTS, MINI_PC, strict=True))
# Bound for the stand-in daemon (a real process): long, as CI runs this at nice 19 beside the integration tests.
WAIT_S = 60


@pytest.fixture(autouse=True)
def cheaper_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 14)


@pytest.fixture(name="box_ports")
def box_ports_fixture(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """This box's ports (the mini PC unless a test changes the list in place), with MAC and link state."""
    names = list(MINI_PC)
    monkeypatch.setattr("appliance.backup.ports.detect_ports", lambda: list(names))
    monkeypatch.setattr(
        "webui.interfaces.detect_ports",
        lambda: [Port(n, f"52:54:00:00:00:0{i}", i == 0, ()) for i, n in enumerate(names)],
    )
    return names


@pytest.fixture(name="bbox")
def bbox_fixture(tmp_path: Path) -> Box:
    b = make_box(tmp_path)
    b.add("admin", "admin")
    b.add("staff", "viewer")
    return b


@pytest.fixture(name="archive")
def archive_fixture(bbox: Box) -> Path:
    return create_backup(bbox.ctx, SECRET)


def tree(b: Box) -> dict[str, bytes]:
    """The config and every file of the state dir (the database included), byte for byte."""
    files = {"CONFIG": b.ctx.paths.config.read_bytes()}
    for path in sorted(b.ctx.paths.state_dir.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm")):
            files[str(path.relative_to(b.ctx.paths.state_dir))] = path.read_bytes()
    return files


def admin(b: Box):  # type: ignore[no-untyped-def]
    client = b.client()
    b.login(client, "admin")
    return client


def start(client, archive: Path, passphrase: str = SECRET):  # type: ignore[no-untyped-def]
    return client.post(f"/settings/backup/restore/{archive.name}",
                       data={"csrf_token": session_token(client), "passphrase": passphrase})  # fmt: skip


def selected(page: str, port: str) -> str | None:
    """The option chosen in the select for the backup's `port` ("" for 選んでください)."""
    m = re.search(rf'<select name="port_{port}".*?</select>', page, re.S)
    assert m, f"no select for {port}"
    chosen = re.search(r'<option value="([^"]*)" selected>', m.group(0))
    return chosen.group(1) if chosen else None


def test_other_ports_get_the_assignment_form_and_nothing_changes(
    bbox: Box, archive: Path, box_ports: list[str]
) -> None:
    client = admin(bbox)
    before = tree(bbox)
    assert "この機械に復元" in client.get("/settings/backup").get_data(as_text=True)
    r = start(client, archive)
    assert r.status_code == 302 and "/ports" in r.headers["Location"]
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "このバックアップは別の機種のポート名を使っています。" in page
    assert "それぞれのポートに、この機械のどのポートを使うか選んでください。" in page
    for port in EXAMPLE_PORTS:
        assert f'name="port_{port}"' in page and selected(page, port) is None  # nothing guessed for them
    assert "インターネット" in page and "203.0.113.2/24" in page and "患者さん用Wi-Fi" in page
    assert "enp1s0（MAC 52:54:00:00:00:00・ケーブル: つながっています）" in page
    assert "enp2s0（MAC 52:54:00:00:00:01・ケーブル: つながっていません）" in page
    assert SECRET not in page
    assert tree(bbox) == before


def test_same_names_are_chosen_already(bbox: Box, archive: Path, box_ports: list[str]) -> None:
    box_ports[:] = ["wan0", "lan0", "enp3s0", "enp4s0"]  # two ports named like the backup's, two not
    client = admin(bbox)
    page = client.get(start(client, archive).headers["Location"]).get_data(as_text=True)
    assert [selected(page, p) for p in EXAMPLE_PORTS] == ["wan0", "lan0", None, None]


@pytest.mark.parametrize(
    ("choices", "reasons"),
    [
        ({"wan0": "enp1s0", "lan0": "enp1s0", "guest0": "enp3s0", "dev0": "enp4s0"},
         {"wan0": "enp1s0 は lan0 にも選ばれています", "lan0": "enp1s0 は wan0 にも選ばれています"}),
        ({"wan0": "enp1s0", "lan0": "enp2s0", "guest0": "enp3s0", "dev0": ""},
         {"dev0": "この機械のポートを選んでください。"}),
        ({"wan0": "enp1s0", "lan0": "enp2s0", "guest0": "enp3s0", "dev0": "enp9s0"},
         {"dev0": "この機械にないポートです。"}),
    ],
    ids=["two-onto-one", "missing", "not-on-this-box"],
)  # fmt: skip
def test_bad_choices_come_back_beside_the_field_with_the_choices_kept(
    bbox: Box, archive: Path, box_ports: list[str], choices: dict[str, str], reasons: dict[str, str]
) -> None:
    client = admin(bbox)
    form = start(client, archive).headers["Location"]
    before = tree(bbox)
    data = {"csrf_token": session_token(client)} | {f"port_{k}": v for k, v in choices.items()}
    r = client.post(form, data=data)
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "選び直してほしいポートがあります" in page
    for port in EXAMPLE_PORTS:
        expected = choices[port] if choices[port] in box_ports else None
        assert selected(page, port) == expected, port
        row = re.search(rf'<select name="port_{port}".*?</td>', page, re.S).group(0)  # type: ignore[union-attr]
        if port in reasons:
            assert reasons[port] in row and 'aria-invalid="true"' in row
        else:
            assert 'class="notice error"' not in row
    assert tree(bbox) == before


def test_a_good_mapping_shows_the_diff_then_restores_and_the_daemon_reloads_after_the_page(
    bbox: Box, archive: Path, box_ports: list[str], tmp_path: Path
) -> None:
    client = admin(bbox)
    form = start(client, archive).headers["Location"]
    before = tree(bbox)
    data = {"csrf_token": session_token(client)} | {f"port_{k}": v for k, v in MAPPING.items()}
    page = client.post(form, data=data).get_data(as_text=True)
    assert "復元の確認" in page and "元に戻せません" in page
    assert re.search(r"<td>wan0</td><td><strong>enp1s0</strong></td>", page)
    assert (
        '<span class="del">-- name: wan0</span>' in page
        and '<span class="add">+- name: enp1s0</span>' in page
    )
    assert '<span class="add">+  - enp2s0</span>' in page  # ids.interfaces follows
    assert tree(bbox) == before  # the diff is shown, nothing swapped
    run = re.search(
        r'id="restore-run" action="([^"]+)"|action="([^"]+)" class="inline" id="restore-run"', page
    )
    assert run
    action = run.group(1) or run.group(2)

    daemon, hup = stand_in_daemon(bbox, tmp_path)
    try:
        r = client.post(action, data=data, buffered=True)
        body = r.get_data(as_text=True)
        assert r.status_code == 200 and "設定を反映しました" in body and 'http-equiv="refresh"' in body
        r.close()  # the WSGI server closes the response once it is sent: only then the daemon is told
        wait_or_fail(hup.exists, WAIT_S, "the running daemon was told to reload", step=0.05)
    finally:
        daemon.kill()
        daemon.wait()
    text = bbox.ctx.paths.config.read_text(encoding="utf-8")
    assert "name: enp1s0" in text and "name: wan0" not in text
    live = RevisionStore(bbox.ctx.db).live()
    assert live is not None and live.config_text == text and live.author == "admin" and live.source == "web"
    audit = AuditLog(bbox.ctx.db, bbox.ctx.paths.keys_dir / "audit.key")
    entries = list(reversed(audit.search(limit=1000)))
    assert [e.action for e in entries[-2:]] == ["config.apply", "backup.restore"]
    assert entries[-1].actor == "admin" and entries[-1].source == "web"
    assert entries[-1].detail["ports"] == MAPPING and audit.verify().ok


def test_the_response_goes_out_before_the_reload(bbox: Box, archive: Path, box_ports: list[str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    box_ports[:] = EXAMPLE_PORTS
    client = admin(bbox)
    page = start(client, archive).get_data(as_text=True)
    assert "バックアップと同じ名前のポートがこの機械にあります" in page and '<pre class="diff">' not in page
    action = re.search(r'action="([^"]+/run)"', page).group(1)  # type: ignore[union-attr]
    daemon, hup = stand_in_daemon(bbox, tmp_path)
    try:
        r = client.post(action, data={"csrf_token": session_token(client)}, buffered=False)
        assert "復元しました" in r.get_data(as_text=True)
        time.sleep(0.5)
        assert not hup.exists()  # the page is still being sent: the web UI must not be restarted yet
        r.close()
        wait_or_fail(
            hup.exists, WAIT_S, "the stand-in daemon got its SIGHUP after the page was sent", step=0.05
        )
    finally:
        daemon.kill()
        daemon.wait()
    assert "backup.restore" in audit_actions(bbox, "admin")


def test_wrong_passphrase_is_refused_in_japanese_and_audited(
    bbox: Box, archive: Path, box_ports: list[str]
) -> None:
    client = admin(bbox)
    before = tree(bbox)
    r = start(client, archive, "not-the-passphrase-at-all")
    assert r.status_code == 400 and "パスフレーズ" in r.get_data(as_text=True)
    after = tree(bbox)
    assert after["CONFIG"] == before["CONFIG"]
    assert "backup.restore_refused" in audit_actions(bbox, "admin")


def test_the_stored_passphrase_can_be_used(bbox: Box, archive: Path, box_ports: list[str]) -> None:
    set_passphrase(bbox.ctx.paths, SECRET)
    client = admin(bbox)
    r = client.post(f"/settings/backup/restore/{archive.name}",
                    data={"csrf_token": session_token(client), "use_stored": "1"})  # fmt: skip
    assert r.status_code == 302 and "/ports" in r.headers["Location"]


def test_a_draft_belongs_to_its_account_and_viewers_get_403(
    bbox: Box, archive: Path, box_ports: list[str]
) -> None:
    bbox.add("admin2", "admin")
    form = start(admin(bbox), archive).headers["Location"]
    other = bbox.client()
    bbox.login(other, "admin2")
    r = other.get(form)
    assert r.status_code == 302 and r.headers["Location"].endswith("/settings/backup")
    staff = bbox.client()
    bbox.login(staff, "staff")
    assert staff.get(f"/settings/backup/restore/{archive.name}").status_code == 403
    assert staff.get(form).status_code == 403
    assert (
        admin(bbox).get("/settings/backup/restore/..%2F..%2Fetc%2Fpasswd").status_code == 404
    )  # listed names only


def test_cancel_forgets_the_passphrase(bbox: Box, archive: Path, box_ports: list[str]) -> None:
    client = admin(bbox)
    form = start(client, archive).headers["Location"]
    token = form.split("/draft/")[1].split("/")[0]
    assert token in settings_restore._DRAFTS
    r = client.post(
        f"/settings/backup/restore/draft/{token}/cancel", data={"csrf_token": session_token(client)}
    )
    assert r.status_code == 302 and token not in settings_restore._DRAFTS


# -- a real process standing in for `mamori daemon` ---------------------------------------------------------

HUP_SCRIPT = """
import fcntl, pathlib, signal, sys, time
hup, ready, lock = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), open(sys.argv[4], "a")
fcntl.flock(lock, fcntl.LOCK_EX)  # as the daemon holds run/mamori.lock (appliance.daemonlock)
signal.signal(signal.SIGHUP, lambda *_: hup.write_text("reload"))
ready.write_text("ready")
time.sleep(600)  # killed by the test
"""


def stand_in_daemon(b: Box, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A process holding the daemon's lock (as reload_running_daemon checks), in run/mamori.pid."""
    hup, ready = tmp_path / "hup", tmp_path / "ready"
    b.ctx.paths.run_dir.mkdir(parents=True, exist_ok=True)
    lock = b.ctx.paths.run_dir / "mamori.lock"
    proc = subprocess.Popen([sys.executable, "-c", HUP_SCRIPT, "daemon", str(hup), str(ready), str(lock)])
    wait_or_fail(ready.exists, WAIT_S, "the stand-in daemon holds the lock", step=0.05)
    (b.ctx.paths.run_dir / "mamori.pid").write_text(f"{proc.pid}\n")
    return proc, hup


def test_ports_that_change_after_the_check_stop_the_restore(
    bbox: Box, archive: Path, box_ports: list[str]
) -> None:
    box_ports[:] = EXAMPLE_PORTS
    client = admin(bbox)
    page = start(client, archive).get_data(as_text=True)
    action = re.search(r'action="([^"]+/run)"', page).group(1)  # type: ignore[union-attr]
    before = tree(bbox)
    box_ports[:] = MINI_PC  # e.g. a network card renamed by a driver update between the check and the click
    r = client.post(action, data={"csrf_token": session_token(client)}, follow_redirects=True)
    assert "ポートが確認したときと変わりました" in r.get_data(as_text=True)
    assert tree(bbox) == before
