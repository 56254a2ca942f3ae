"""The actions that let the web UI run as `mamori-web` (issue #16 item 7): what it may no longer read or change
itself — backup archives and the restore, the notification test, software updates, the management link's
state, the setup code, the monthly reports — each asked of the daemon by name.

For each: arguments that do not fit are refused, an account without the permission is refused (nothing
changes, no entry of the action), and the happy path does what the page did. The open-file answers travel
through the real socket (SCM_RIGHTS) with a file over the 4 MB a JSON answer may carry. Spooled uploads are
attacker-controlled: a link, a FIFO, a hard link, a file over the limit or a name off the pattern is refused."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from appliance.actions import registry, spool
from appliance.actions.registry import ActionEnv, handle_request_fds
from appliance.actions.server import ActionServer, any_action
from appliance.audit import AuditLog
from appliance.backup import create_backup
from appliance.backup.passphrase import set_passphrase
from appliance.subsystem import Context
from tests.unit.test_actions import TEXT, ask, make_account, refused
from webui.actions import SocketActions

SECRET = "sakura-kaze-yama-umi-2026"
STOP_S = 60


def ask_fd(ctx: Context, request: dict) -> tuple[dict, list[int]]:
    raw, fds = handle_request_fds(ActionEnv(ctx, subsystems=[]), json.dumps(request).encode())
    return json.loads(raw), fds


def read_fd(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def entries(ctx: Context, prefix: str) -> list[str]:
    return [e.action for e in AuditLog(ctx.db).search(limit=100) if e.action.startswith(prefix)]


@pytest.fixture
def people(ctx: Context) -> Context:
    """An administrator `boss` and a viewer `staff` (no backup, update, mgmt, notification or audit rights)."""
    ctx.paths.config.write_text(TEXT, encoding="utf-8")
    make_account(ctx, "boss", "admin")
    make_account(ctx, "staff", "viewer")
    return ctx


@pytest.fixture
def archive(people: Context) -> Path:
    set_passphrase(people.paths, SECRET)
    return Path(create_backup(people, SECRET))


# -- the descriptor on the wire ------------------------------------------------------------------------


def test_a_file_over_the_answer_cap_travels_as_a_descriptor_through_the_socket(tmp_path: Path) -> None:
    """reports.monthly_open over the real socket: the answer is small JSON, the 5 MB report arrives whole
    through the descriptor, and the daemon's copy of it is closed (the client holds the only one)."""
    from appliance.paths import Paths
    from appliance.storage import Database
    from reports.monthly import reports_dir

    paths = Paths(tmp_path / "config.yaml", tmp_path / ("d" * 90) / "state")
    paths.ensure()
    ctx = Context(paths, Database(paths.db))
    ctx.db.migrate()
    make_account(ctx, "boss", "admin")
    make_account(ctx, "staff", "viewer")
    body = os.urandom(registry.MAX_REQUEST + 1024 * 1024)
    reports_dir(ctx).mkdir(parents=True)
    (reports_dir(ctx) / "2026-11.pdf").write_bytes(body)
    server = ActionServer(ctx, subsystems=[], allowed={os.getuid(): any_action})
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert server.ready.wait(STOP_S)
        request = {"action": "reports.monthly_open", "args": {"actor": "boss", "name": "2026-11.pdf"}}
        raw, fds = SocketActions(server.path).send_fds(json.dumps(request).encode())
        assert json.loads(raw) == {"ok": True, "result": {"name": "2026-11.pdf", "fds": 1}}
        assert len(fds) == 1 and read_fd(fds[0]) == body
        raw, fds = SocketActions(server.path).send_fds(json.dumps(request | {"args": {"actor": "staff",
                                                                                      "name": "2026-11.pdf"}}).encode())  # fmt: skip
        assert fds == [] and "lacks" in json.loads(raw)["error"]["en"]
    finally:
        stop.set()
        thread.join(STOP_S)
    assert not thread.is_alive()


# -- backup ---------------------------------------------------------------------------------------------


def test_backup_listing_and_download_are_the_administrator_s(people: Context, archive: Path) -> None:
    answer = ask(people, {"action": "backup.status", "args": {"actor": "boss"}})
    assert answer["ok"], answer
    listed = answer["result"]
    assert listed["has_passphrase"] is True and [a["name"] for a in listed["archives"]] == [archive.name]
    answer, fds = ask_fd(
        people, {"action": "backup.open", "args": {"actor": "boss", "archive": archive.name}}
    )
    assert answer["ok"] and answer["result"]["archive"] == archive.name, answer
    assert read_fd(fds[0]) == archive.read_bytes()
    for action, args in (("backup.status", {}), ("backup.open", {"archive": archive.name})):
        answer, fds = ask_fd(people, {"action": action, "args": {"actor": "staff", **args}})
        assert fds == []
        refused(answer, "lacks backup.manage")
    for name in ("../state.db", "/etc/shadow", archive.name + ".x"):
        answer, fds = ask_fd(people, {"action": "backup.open", "args": {"actor": "boss", "archive": name}})
        assert fds == []
        refused(answer, "no such archive")


def test_restore_check_and_restore_refuse_before_touching_anything(people: Context, archive: Path) -> None:
    base = {"actor": "boss", "archive": archive.name}
    refused(
        ask(people, {"action": "backup.restore_check", "args": {**base, "ports": ["wan0"]}}), "not old=new"
    )
    refused(ask(people, {"action": "backup.restore_check", "args": {**base, "ports": "wan0=eth0"}}), "list")
    refused(ask(people, {"action": "backup.restore_check", "args": base}), "no passphrase given")
    refused(ask(people, {"action": "backup.restore", "args": {**base, "actor": "staff", "use_stored": True}}),
            "lacks backup.manage")  # fmt: skip
    refused(ask(people, {"action": "backup.restore", "args": {**base, "archive": "x.mbk", "use_stored": True}}),
            "no such archive")  # fmt: skip
    wrong = ask(
        people, {"action": "backup.restore_check", "args": {**base, "passphrase": "not-the-one-at-all"}}
    )
    assert wrong["ok"] is False and wrong["error"]["code"].startswith("backup"), wrong
    assert "backup.restore" not in entries(people, "backup.")
    refused(ask(people, {"action": "backup.restore_reload", "args": {"actor": "boss"}}), "no restore")


def test_restore_with_the_stored_passphrase_then_one_reload(
    people: Context, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web UI never sees the stored passphrase: it asks for "the stored one". After the restore one reload
    is allowed (no daemon runs here: nothing to signal), and only one."""
    from appliance.backup import ports as ports_mod
    from appliance.backup.ports import config_ports
    from appliance.config import parse_config

    monkeypatch.setattr(ports_mod, "detect_ports", lambda: config_ports(parse_config(TEXT).model))
    args = {"actor": "boss", "archive": archive.name, "use_stored": True}
    check = ask(people, {"action": "backup.restore_check", "args": args})
    assert check["ok"] and check["result"]["plan"]["renames"] == [], check
    done = ask(people, {"action": "backup.restore", "args": args})
    assert done["ok"] and done["result"]["created_ts"] > 0, done
    assert "backup.restore" in entries(people, "backup.")
    assert ask(people, {"action": "backup.restore_reload", "args": {"actor": "boss"}})["result"] == {
        "reloaded": False
    }
    refused(ask(people, {"action": "backup.restore_reload", "args": {"actor": "boss"}}), "no restore")


# -- notifications --------------------------------------------------------------------------------------


def test_the_notification_test_sends_from_the_daemon(people: Context) -> None:
    assert ask(people, {"action": "notifications.test", "args": {"actor": "boss"}})["result"] == {
        "results": []
    }
    refused(ask(people, {"action": "notifications.test", "args": {"actor": "staff"}}), "lacks")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        port = rx.getsockname()[1]
        text = TEXT.replace(
            "notifications:\n", f"notifications:\n  syslog: {{host: 127.0.0.1, port: {port}}}\n"
        )
        people.paths.config.write_text(text, encoding="utf-8")
        answer = ask(people, {"action": "notifications.test", "args": {"actor": "boss"}})
        assert answer["result"] == {"results": [["syslog", True, ""]]}, answer
        assert "テスト送信".encode() in rx.recv(65536)


# -- software updates ----------------------------------------------------------------------------------


def _spooled(ctx: Context, kind: str, data: bytes) -> str:
    name = f"{kind}-{'a' * 22}{spool.KINDS[kind]}"
    (spool.spool_dir(ctx) / name).write_bytes(data)
    return name


def test_update_changes_need_update_install_and_a_known_when(people: Context) -> None:
    status = ask(people, {"action": "update.status", "args": {"actor": "staff"}})  # dashboard.view suffices
    assert status["ok"] and status["result"]["status"]["in_progress"] is None, status
    for action, args in (("update.install", {"when": "now"}), ("update.cancel", {}), ("update.check", {}),
                         ("update.upload", {"upload": _spooled(people, "update", b"x")})):  # fmt: skip
        refused(ask(people, {"action": action, "args": {"actor": "staff", **args}}), "lacks update.install")
    refused(ask(people, {"action": "update.install", "args": {"actor": "boss", "when": "at:2000-01-01"}}),
            "when must be now or quiet")  # fmt: skip
    nothing = ask(people, {"action": "update.install", "args": {"actor": "boss", "when": "now"}})
    assert nothing["ok"] is False and nothing["error"]["code"].startswith("update"), nothing
    assert ask(people, {"action": "update.check", "args": {"actor": "boss"}})["ok"]
    from update.worker import KV_CHECK_REQUESTED

    assert people.db.get_kv(KV_CHECK_REQUESTED) == "boss"


def test_a_spooled_upload_is_opened_only_as_a_plain_file_of_its_own(people: Context, tmp_path: Path) -> None:
    d = spool.spool_dir(people)
    secret = tmp_path / "secret"
    secret.write_bytes(b"root only")
    link, hard, fifo = (f"update-{c * 22}.bundle" for c in "lhf")
    (d / link).symlink_to(secret)
    os.link(secret, d / hard)
    os.mkfifo(d / fifo)
    for name, words in (("../../secret", "not the name"), ("update-x.bundle", "not the name"),
                        (f"update-{'n' * 22}.bundle", "not there"), (link, "cannot be opened"),
                        (hard, "other links"), (fifo, "not a regular file")):  # fmt: skip
        refused(ask(people, {"action": "update.upload", "args": {"actor": "boss", "upload": name}}), words)
    with pytest.raises(registry.ActionError, match="size limit"):
        spool.open_spooled(people, "update", _spooled(people, "update", b"12345"), limit=4)
    assert not entries(people, "update.")


def test_an_uploaded_bundle_that_is_not_one_is_refused_and_audited(people: Context) -> None:
    answer = ask(people, {"action": "update.upload", "args": {"actor": "boss",
                                                                "upload": _spooled(people, "update", b"junk")}})  # fmt: skip
    assert answer["ok"] is False and answer["error"]["code"].startswith("update"), answer
    assert "update.refused" in entries(people, "update.")


def test_the_web_ui_s_spool_writes_under_a_limit_and_always_cleans_up(people: Context) -> None:
    with spool.spool_upload(people, "rules", io.BytesIO(b"abc"), limit=10) as name:
        assert spool.name_pattern("rules").match(name)
        with spool.open_spooled(people, "rules", name, limit=10) as fh:
            assert fh.read() == b"abc"
    assert not (spool.spool_dir(people) / name).exists()
    with (
        pytest.raises(spool.SpoolError),
        spool.spool_upload(people, "rules", io.BytesIO(b"x" * 11), limit=10),
    ):
        pass
    assert [p for p in spool.spool_dir(people).iterdir() if p.name.startswith("rules-")] == []


# -- management link, setup code, reports --------------------------------------------------------------


def test_the_management_link_state_is_the_administrator_s(people: Context) -> None:
    answer = ask(people, {"action": "mgmt.status", "args": {"actor": "boss"}})
    assert answer["ok"] and answer["result"]["state"]["enabled"] is False, answer
    refused(ask(people, {"action": "mgmt.status", "args": {"actor": "staff"}}), "lacks mgmt.manage")


def test_the_setup_code_is_made_checked_and_discarded_by_the_daemon(ctx: Context) -> None:
    from webui.setup_code import code_path, read_setup_code

    assert ask(ctx, {"action": "web.setup_code_check", "args": {}})["result"] == {
        "ok": False,
        "locked": False,
    }
    code = read_setup_code(ctx.paths.keys_dir)
    assert code
    refused(ask(ctx, {"action": "web.setup_code_discard", "args": {}}), "setup is not done")
    assert (
        ask(ctx, {"action": "web.setup_code_check", "args": {"entered": "ZZZZ-ZZZ2"}})["result"]["ok"]
        is False
    )
    assert (
        ask(ctx, {"action": "web.setup_code_check", "args": {"entered": code.lower()}})["result"]["ok"]
        is True
    )
    refused(
        ask(ctx, {"action": "web.setup_code_check", "args": {"entered": 12345678}}), "must be of type str"
    )
    make_account(ctx, "boss", "admin")  # an administrator who can sign in
    refused(ask(ctx, {"action": "web.setup_code_check", "args": {"entered": code}}), "setup is done")
    assert ask(ctx, {"action": "web.setup_code_discard", "args": {}})["ok"]
    assert not code_path(ctx.paths.keys_dir).exists()


def test_monthly_reports_are_listed_and_opened_by_name_only(people: Context, tmp_path: Path) -> None:
    from reports.monthly import reports_dir

    reports_dir(people).mkdir(parents=True)
    (reports_dir(people) / "2026-10.html").write_text("<p>report</p>", encoding="utf-8")
    (reports_dir(people) / "notes.txt").write_text("not a report", encoding="utf-8")
    (tmp_path / "secret").write_text("root only", encoding="utf-8")
    (reports_dir(people) / "2026-09.html").symlink_to(tmp_path / "secret")
    listed = ask(people, {"action": "reports.monthly_list", "args": {"actor": "boss"}})["result"]["reports"]
    assert [n for n, _ in listed] == ["2026-10.html"]
    answer, fds = ask_fd(
        people, {"action": "reports.monthly_open", "args": {"actor": "boss", "name": "2026-10.html"}}
    )
    assert answer["ok"] and read_fd(fds[0]) == b"<p>report</p>"
    for name in ("2026-09.html", "../state.db", "notes.txt"):
        answer, fds = ask_fd(
            people, {"action": "reports.monthly_open", "args": {"actor": "boss", "name": name}}
        )
        assert fds == []
        refused(answer, "no such monthly report")
    refused(ask(people, {"action": "reports.monthly_list", "args": {"actor": "staff"}}), "lacks audit.view")


def test_the_clock_state_is_read_by_the_daemon(people: Context) -> None:
    """chronyd's socket is root's and _chrony's: the page asks. Here no chronyd runs: said as it is."""
    state = ask(people, {"action": "time.status", "args": {"actor": "boss"}})["result"]["state"]
    assert state["synchronised"] is False and state["problem"], state
    refused(ask(people, {"action": "time.status", "args": {"actor": "staff"}}), "lacks settings.view")
