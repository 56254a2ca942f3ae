"""`mamori tls status | renew`: what the vendor reads at the console, the exit code a check relies on, and
that an uploaded certificate is replaced only on purpose (--force), audited as the CLI user."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.cli import main
from appliance.paths import Paths
from appliance.revisions import RevisionStore
from appliance.storage import Database
from tests.unit.test_webui_tls_renew import _foreign_pair
from tests.webui_fixtures import EXAMPLE
from webui.tls import install_certificate, make_self_signed, read_certificate

DAY = 86400.0


@pytest.fixture(name="paths")
def paths_fixture(tmp_path: Path) -> Paths:
    """A box whose live revision is the example clinic (LAN 192.168.10.1, VPN 10.99.0.1)."""
    paths = Paths(tmp_path / "none.yaml", tmp_path / "state")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    with db.transaction() as conn:
        RevisionStore(db).add(conn, EXAMPLE.read_text(encoding="utf-8"), "院長", "cli", "", "", "applied")
    return paths


def run(paths: Paths, *argv: str, lang: str = "en") -> int:
    return main(["--config", str(paths.config), "--state-dir", str(paths.state_dir), "--lang", lang, *argv])


def test_new_box_without_a_certificate_fails_the_check(
    paths: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(paths, "tls", "status", lang="ja") == 1
    assert "画面の証明書はまだありません" in capsys.readouterr().out


def test_renew_then_status(paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(paths, "--author", "vendor-a", "tls", "renew") == 0
    out = capsys.readouterr().out
    info = read_certificate(paths.keys_dir)
    assert info is not None and f"SHA-256: {info.fingerprint}" in out
    assert {"192.168.10.1", "10.99.0.1", "127.0.0.1", "mamori.local"} <= set(info.names)
    [entry] = [
        e for e in AuditLog(Database(paths.db)).search(text="tls.renewed") if e.action == "tls.renewed"
    ]
    assert (entry.actor, entry.source, entry.detail["reason"]) == ("vendor-a", "cli", "manual")
    assert entry.detail["fingerprint"] == info.fingerprint

    assert run(paths, "tls", "status") == 0
    out = capsys.readouterr().out
    assert "self-signed by Mamori" in out and info.fingerprint in out and "day(s) left" in out
    assert "192.168.10.1" in out and "missing" not in out
    assert run(paths, "tls", "status", lang="ja") == 0
    out = capsys.readouterr().out
    assert "Mamori の自己署名" in out and "有効期限: " in out and "（あと 39" in out  # 396 or 397 days
    assert run(paths, "tls", "status", "--json") == 0
    state = json.loads(capsys.readouterr().out)
    assert state["ok"] is True and state["uploaded"] is False and state["missing"] == []


def test_status_fails_when_expired_or_a_name_is_missing(
    paths: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    host = socket.gethostname().lower()
    names = ("mamori.local", host), ("127.0.0.1", "10.99.0.1", "192.168.10.1")
    make_self_signed(paths.keys_dir, *names, now=time.time() - 400 * DAY)
    assert run(paths, "tls", "status") == 1
    assert "expired" in capsys.readouterr().out
    make_self_signed(paths.keys_dir, names[0], ("127.0.0.1",))
    assert run(paths, "tls", "status") == 1
    out = capsys.readouterr().out
    assert "missing names: 10.99.0.1, 192.168.10.1" in out and "mamori tls renew" in out


def test_an_uploaded_certificate_is_replaced_only_with_force(
    paths: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_certificate(paths.keys_dir, *_foreign_pair(tmp_path, 20.5, time.time()))
    uploaded = read_certificate(paths.keys_dir)
    assert run(paths, "tls", "status") == 1  # 192.168.10.1 is not in it
    out = capsys.readouterr().out
    assert "uploaded by the clinic" in out and "ends soon" in out
    assert run(paths, "tls", "renew") == 1
    assert "uploaded by the clinic and is not replaced; add --force" in capsys.readouterr().err
    assert run(paths, "tls", "renew", lang="ja") == 1
    assert "医院で入れた証明書を使っているため、作り直しません" in capsys.readouterr().err
    assert read_certificate(paths.keys_dir).fingerprint == uploaded.fingerprint
    assert run(paths, "--author", "vendor-a", "tls", "renew", "--force") == 0
    now = read_certificate(paths.keys_dir)
    assert not now.uploaded and now.fingerprint != uploaded.fingerprint
    [entry] = [
        e for e in AuditLog(Database(paths.db)).search(text="tls.renewed") if e.action == "tls.renewed"
    ]
    assert entry.detail["reason"] == "forced" and entry.detail["old_fingerprint"] == uploaded.fingerprint
