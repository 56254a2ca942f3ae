"""The fleet API (/api/v1) with the Flask test client on a real state database (fleetapi/): tokens (made by
the administrator only, shown once, stored hashed, revoked, tied to an enabled unexpired vendor account,
failures throttled and audited), the clinic's switch fleet.allow_changes (off by default, admin only; reads
still answer while off, changes are refused in Japanese and English), the authority table, the link guard,
commit-confirm (pending -> confirm, or reverted when unconfirmed) and idempotence.

The confirm timer process is not started here (it would apply to the real engines): the revert is driven
by calling ConfigService.revert_if_unconfirmed past the deadline, which is what the timer calls."""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from appliance import service as service_module
from appliance.audit import AuditLog
from appliance.config.authority import FLEET_MANAGE, NEVER_GRANTABLE, permissions_for
from appliance.config.load import parse_config
from appliance.service import ConfigService
from fleetapi.linkguard import link_cuts
from fleetapi.tokens import TokenStore
from tests.unit.test_mgmt_config import HUB_KEY
from tests.webui_fixtures import EXAMPLE, Box, make_box, session_token

# Bounds for the waits between threads: they end as soon as the other side is there, and are long because CI
# runs these tests at nice 19 beside the integration tests.
WAIT_S = 120

HTTPS = "https://localhost"
MGMT = {"enabled": True, "hub_endpoint": "198.51.100.77:51820", "hub_public_key": HUB_KEY,
        "network": "10.77.0.0/16", "address": "10.77.0.17", "hub_addresses": ["10.77.0.1"]}  # fmt: skip


@pytest.fixture(autouse=True)
def no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ConfigService, "_start_confirm_timer", lambda self: None)


def _base(allow: bool = True) -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["ids"]["enabled"] = False
    data["mgmt"] = dict(MGMT)
    data["fleet"] = {"allow_changes": allow}
    return data


def _box(tmp_path, allow: bool = True) -> tuple[Box, str]:
    box = make_box(tmp_path)
    box.add("admin", "admin")
    box.add("vendor", "vendor", grants=("settings", "firewall", "network"), expires_in=30 * 86400)
    svc = ConfigService(box.ctx, subsystems=[])
    svc.apply(yaml.safe_dump(_base(allow), allow_unicode=True), "root", "cli", "初期設定")
    _, token = TokenStore(box.ctx.db, clock=box.clock).create("vendor", "admin", "ansible")
    return box, token


def _call(box: Box, method: str, path: str, token: str | None, body: Any = None, **kw: Any):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = box.client()
    return client.open(path, method=method, json=body, headers=headers, base_url=kw.get("base_url", HTTPS))


def _desired(change: dict[str, Any] | None = None) -> dict[str, Any]:
    """A vendor's desired state: no mgmt/fleet/ssh sections (kept from the box), plus `change`."""
    data = _base()
    for key in ("mgmt", "fleet", "ssh"):
        data.pop(key, None)
    data.update(change or {})
    return data


def _with_rule(comment: str = "ansible") -> dict[str, Any]:
    data = _desired()
    data["firewall"]["rules"].append({"src": "受付PC", "dst": "PACS", "service": "DICOM", "comment": comment})
    return data


def _actions(box: Box, actor: str) -> list[str]:
    return [e.action for e in AuditLog(box.ctx.db).search(actor=actor, limit=1000)]


# -- tokens -------------------------------------------------------------------------------------------


def test_token_is_shown_once_stored_hashed_and_works_only_while_the_vendor_account_may(tmp_path) -> None:
    box, token = _box(tmp_path)
    assert token.startswith("mamori_")
    with box.ctx.db.connection() as conn:
        stored = conn.execute("SELECT id, secret_hash FROM fleet_tokens").fetchall()
    secret = token.split("_", 2)[2]
    assert [tuple(r) for r in stored] == [(token.split("_")[1], hashlib.sha256(secret.encode()).hexdigest())]
    assert secret not in str([tuple(r) for r in stored])

    r = _call(box, "GET", "/api/v1/config", token)
    assert r.status_code == 200 and r.json["account"] == "vendor" and r.json["allow_changes"] is True
    assert r.json["config"]["clinic"]["name"] and r.json["revision"]["id"] == 1
    # the account disabled or expired: the token stops too
    box.store().update("vendor", disabled=True)
    assert _call(box, "GET", "/api/v1/config", token).status_code == 401
    box.store().update("vendor", disabled=False)
    box.clock.advance(31 * 86400)
    assert _call(box, "GET", "/api/v1/config", token).status_code == 401


def test_tokens_only_for_vendor_accounts_and_revoked_tokens_fail(tmp_path) -> None:
    box, token = _box(tmp_path)
    store = TokenStore(box.ctx.db, clock=box.clock)
    with pytest.raises(Exception, match="vendor account"):
        store.create("admin", "admin")
    info = store.all()[0]
    store.revoke(info.id)
    r = _call(box, "GET", "/api/v1/config", token)
    assert r.status_code == 401 and r.json["error"]["code"] == "fleet.unauthorized"
    assert "API の鍵が正しくない" in r.json["error"]["ja"]


def test_bad_tokens_are_audited_and_throttled_per_address(tmp_path) -> None:
    box, token = _box(tmp_path)
    codes = [
        _call(box, "GET", "/api/v1/config", f"mamori_000000000000_{'x' * 43}").status_code for _ in range(6)
    ]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    held = _call(box, "GET", "/api/v1/config", token)  # even the right token waits from that address
    assert held.status_code == 429 and int(held.headers["Retry-After"]) > 0
    assert _actions(box, "anonymous").count("fleet.api_denied") == 5


def test_https_only_and_no_cookie_auth(tmp_path) -> None:
    box, token = _box(tmp_path)
    assert _call(box, "GET", "/api/v1/config", token, base_url="http://localhost").status_code == 403
    # a signed-in admin's session cookie is no way in: the API reads only the bearer token
    client = box.client()
    box.login(client, "admin")
    r = client.get("/api/v1/config", base_url=HTTPS)
    assert r.status_code == 401
    r = client.post("/api/v1/config/confirm", json={"revision": 1}, base_url=HTTPS,
                    headers={"X-CSRF-Token": session_token(client)})  # fmt: skip
    assert r.status_code == 401


def test_admin_makes_and_revokes_tokens_on_the_page_vendor_cannot(tmp_path) -> None:
    box, _ = _box(tmp_path)
    vendor = box.client()
    box.login(vendor, "vendor")
    assert vendor.get("/settings/fleet/").status_code == 403
    admin = box.client()
    box.login(admin, "admin")
    r = admin.post("/settings/fleet/tokens", data={"csrf_token": session_token(admin), "account": "vendor"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "二度と表示されません" in page
    shown = page.split("<code>mamori_")[1].split("</code>")[0]
    assert _call(box, "GET", "/api/v1/config", "mamori_" + shown).status_code == 200
    assert "mamori_" + shown not in admin.get("/settings/fleet/").get_data(as_text=True)  # shown once
    assert "fleet.token_created" in _actions(box, "admin")


# -- the clinic's switch ------------------------------------------------------------------------------


def test_switch_is_off_by_default_admin_only_and_never_grantable() -> None:
    cfg = parse_config(EXAMPLE.read_text(encoding="utf-8")).model
    assert cfg.fleet.allow_changes is False
    assert FLEET_MANAGE in NEVER_GRANTABLE
    every_grant = ("alerts", "firewall", "vpn", "devices", "settings", "audit", "notifications", "web")
    assert FLEET_MANAGE not in permissions_for("vendor", every_grant)
    assert FLEET_MANAGE in permissions_for("admin")


def test_while_off_reads_answer_and_changes_are_refused_in_both_languages(tmp_path) -> None:
    box, token = _box(tmp_path, allow=False)
    assert _call(box, "GET", "/api/v1/config", token).json["allow_changes"] is False
    assert _call(box, "POST", "/api/v1/config/validate", token, {"config": _with_rule()}).json["valid"]
    diff = _call(box, "POST", "/api/v1/config/diff", token, {"config": _with_rule()}).json
    assert diff["changed"] and diff["refusal"]["code"] == "fleet.not_allowed"
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": _with_rule(), "confirm_within": 60})
    assert r.status_code == 403 and r.json["error"]["code"] == "fleet.not_allowed"
    assert "保守業者による設定の一括変更を許可する" in r.json["error"]["ja"]
    assert "fleet.allow_changes" in r.json["error"]["en"]
    assert ConfigService(box.ctx, subsystems=[]).current().id == 1
    assert "fleet.refused" in _actions(box, "vendor")


def test_vendor_cannot_switch_it_on_through_the_api(tmp_path) -> None:
    box, token = _box(tmp_path, allow=True)
    data = _desired({"fleet": {"allow_changes": False}})
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": data, "confirm_within": 60})
    assert r.status_code == 403 and r.json["error"]["code"] == "config.refused"
    assert "fleet.allow_changes" in r.json["paths"] and "fleet.manage" in r.json["missing"]


def test_admin_switch_goes_through_the_review_page(tmp_path) -> None:
    box, _ = _box(tmp_path, allow=False)
    admin = box.client()
    box.login(admin, "admin")
    r = admin.post("/settings/fleet/allow", data={"csrf_token": session_token(admin), "allow": "on"})
    assert r.status_code == 302 and "/settings/review/" in r.headers["Location"]
    r = admin.post(r.headers["Location"], data={"csrf_token": session_token(admin), "decision": "apply"})
    assert r.status_code == 302
    assert parse_config(box.ctx.paths.config.read_text(encoding="utf-8")).model.fleet.allow_changes is True


# -- changes ---------------------------------------------------------------------------------------


def test_apply_confirm_and_idempotence(tmp_path) -> None:
    box, token = _box(tmp_path)
    body = {"config": _with_rule(), "confirm_within": 60, "comment": "DICOM を追加"}
    r = _call(box, "POST", "/api/v1/config/apply", token, body)
    assert r.status_code == 200, r.json
    rev = r.json["revision"]
    assert (
        r.json["changed"]
        and rev["status"] == "pending"
        and rev["author"] == "vendor"
        and rev["source"] == "fleet"
    )
    # a second change while one is in flight is refused
    again = _call(
        box, "POST", "/api/v1/config/apply", token, {"config": _with_rule("other"), "confirm_within": 60}
    )
    assert again.status_code == 409 and again.json["error"]["code"] == "fleet.pending"
    # confirming a revision that is not the pending one is refused; the right one is confirmed
    assert _call(box, "POST", "/api/v1/config/confirm", token, {"revision": 1}).status_code == 409
    ok = _call(box, "POST", "/api/v1/config/confirm", token, {"revision": rev["id"]})
    assert ok.status_code == 200 and ok.json["revision"]["status"] == "applied"
    # the sections the vendor left out were kept
    live = yaml.safe_load(box.ctx.paths.config.read_text(encoding="utf-8"))
    assert live["mgmt"]["hub_public_key"] == HUB_KEY and live["fleet"]["allow_changes"] is True
    # the same desired state again: nothing to do
    same = _call(box, "POST", "/api/v1/config/apply", token, body)
    assert (
        same.status_code == 200 and same.json["changed"] is False and same.json["revision"]["id"] == rev["id"]
    )
    assert _call(box, "POST", "/api/v1/config/diff", token, body).json["changed"] is False
    acts = _actions(box, "vendor")
    assert {"fleet.api_request", "config.apply", "config.confirm"} <= set(acts)


def test_unconfirmed_change_is_reverted_by_the_box(tmp_path) -> None:
    box, token = _box(tmp_path)
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": _with_rule(), "confirm_within": 30})
    rev = r.json["revision"]["id"]
    svc = ConfigService(box.ctx, subsystems=[])
    assert svc.revert_if_unconfirmed(now=r.json["deadline"] + 1)
    state = _call(box, "GET", f"/api/v1/revisions/{rev}", token).json
    assert state["revision"]["status"] == "reverted" and state["live"]["id"] == 1
    late = _call(box, "POST", "/api/v1/config/confirm", token, {"revision": rev})
    assert late.status_code == 409 and "reverted" in late.json["error"]["en"]


def _pending_by(box: Box, author: str, source: str, comment: str) -> int:
    """A change someone else applied outside the API (the admin in the web UI), waiting for confirmation."""
    data = _base()
    data["firewall"]["rules"].append({"src": "受付PC", "dst": "PACS", "service": "DICOM", "comment": comment})
    text = yaml.safe_dump(data, allow_unicode=True)
    return ConfigService(box.ctx, subsystems=[]).apply(text, author, source, comment, confirm_seconds=60).id


def test_a_vendor_confirms_only_a_change_his_own_account_started(tmp_path) -> None:
    box, token = _box(tmp_path)
    box.add("vendor2", "vendor", grants=("settings", "firewall"), expires_in=30 * 86400)
    _, token2 = TokenStore(box.ctx.db, clock=box.clock).create("vendor2", "admin", "other")
    admins = _pending_by(box, "admin", "web", "管理者の変更")
    r = _call(box, "POST", "/api/v1/config/confirm", token, {"revision": admins})
    assert r.status_code == 403 and r.json["error"]["code"] == "fleet.not_yours", r.json
    assert "admin さんの変更" in r.json["error"]["ja"] and "only the account" in r.json["error"]["en"]
    svc = ConfigService(box.ctx, subsystems=[])
    assert svc.pending()["revision"] == admins and svc.revisions.get(admins).status == "pending"
    refused = [
        e for e in AuditLog(box.ctx.db).search(actor="vendor", limit=100) if e.action == "fleet.refused"
    ]
    assert [(e.detail["reason"], e.detail["revision"]) for e in refused] == [("fleet.not_yours", admins)]
    # the web UI's rules are unchanged: the administrator confirms his own change (any pending one)
    assert svc.confirm("admin", "web").id == admins
    # one vendor's change is not another vendor's to confirm either; its own account confirms it
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": _with_rule(), "confirm_within": 60})
    mine = r.json["revision"]["id"]
    other = _call(box, "POST", "/api/v1/config/confirm", token2, {"revision": mine})
    assert other.status_code == 403 and other.json["error"]["code"] == "fleet.not_yours"
    ok = _call(box, "POST", "/api/v1/config/confirm", token, {"revision": mine})
    assert ok.status_code == 200 and ok.json["revision"]["status"] == "applied"
    bad = _call(box, "POST", "/api/v1/config/confirm", token, {"revision": "2"})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "fleet.body"


def test_confirm_checks_the_named_revision_at_the_moment_it_confirms(tmp_path, monkeypatch) -> None:
    """The race: the vendor's revision is pending when his confirm arrives, but before the confirmation
    takes the apply lock the box reverts it (deadline) and the administrator applies a change of his own.
    The confirm must not land on the administrator's change."""
    box, token = _box(tmp_path)
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": _with_rule(), "confirm_within": 60})
    vendors, deadline = r.json["revision"]["id"], r.json["deadline"]
    real_lock = service_module.apply_lock
    waiting, go = threading.Event(), threading.Event()
    confirming = {"thread": None}

    @contextmanager
    def slow_lock(paths):  # the confirm thread waits here, as if another apply held the lock
        if threading.current_thread() is confirming["thread"]:
            waiting.set()
            # Bounded, but long: the main thread reverts and applies the administrator's change meanwhile
            # (on a loaded CI machine that took longer than 10 s, and the confirm then answered 500).
            assert go.wait(WAIT_S), f"the main thread did not let the confirm go within {WAIT_S} s"
        with real_lock(paths):
            yield

    monkeypatch.setattr(service_module, "apply_lock", slow_lock)
    answer: dict[str, Any] = {}

    def vendor_confirms() -> None:
        res = _call(box, "POST", "/api/v1/config/confirm", token, {"revision": vendors})
        answer.update(status=res.status_code, body=res.json)

    confirming["thread"] = threading.Thread(target=vendor_confirms)
    confirming["thread"].start()
    try:
        assert waiting.wait(WAIT_S), f"the confirm did not reach the apply lock within {WAIT_S} s"
        svc = ConfigService(box.ctx, subsystems=[])
        assert svc.revert_if_unconfirmed(now=deadline + 1)
        admins = _pending_by(box, "admin", "web", "管理者の変更")
    finally:
        go.set()
        confirming["thread"].join(WAIT_S)
    assert not confirming["thread"].is_alive(), f"the confirm did not answer within {WAIT_S} s"
    assert answer["status"] == 409 and answer["body"]["error"]["code"] == "fleet.not_pending", answer
    assert (
        "確定待ちではありません" in answer["body"]["error"]["ja"]
        and "reverted" in answer["body"]["error"]["en"]
    )
    assert svc.pending()["revision"] == admins and svc.revisions.get(admins).status == "pending"
    assert svc.revisions.get(vendors).status == "reverted"


def test_invalid_config_names_each_problem_in_both_languages(tmp_path) -> None:
    box, token = _box(tmp_path)
    data = _desired()
    data["web"] = {"port": 70000}
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": data, "confirm_within": 60})
    assert r.status_code == 422 and r.json["error"]["code"] == "config.invalid"
    assert any(i["path"].startswith("web.port") and i["ja"] and i["en"] for i in r.json["issues"])
    assert ConfigService(box.ctx, subsystems=[]).current().id == 1


def test_confirm_within_is_required_and_bounded(tmp_path) -> None:
    box, token = _box(tmp_path)
    for value in (None, 5, 10_000, True, "60"):
        r = _call(
            box, "POST", "/api/v1/config/apply", token, {"config": _with_rule(), "confirm_within": value}
        )
        assert r.status_code == 400 and r.json["error"]["code"] == "fleet.confirm_within"


def test_authority_table_applies_to_the_api(tmp_path) -> None:
    box, token = _box(tmp_path)  # grants: settings, firewall, network; not notifications, vpn users, web
    data = _desired({"notifications": {"syslog": {"host": "siem.example.jp"}}})
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": data, "confirm_within": 60})
    assert r.status_code == 403 and "notifications" in r.json["error"]["en"]
    assert "お知らせの送り先" in r.json["error"]["ja"]
    assert ConfigService(box.ctx, subsystems=[]).current().id == 1


# -- the link guard ---------------------------------------------------------------------------------


def test_link_cutting_change_is_refused_unless_forced(tmp_path) -> None:
    box, token = _box(tmp_path)
    data = _desired()
    data["interfaces"][0]["gateway"] = "203.0.113.99"  # the wan gateway: the way to the hub
    r = _call(box, "POST", "/api/v1/config/apply", token, {"config": data, "confirm_within": 60})
    assert r.status_code == 409 and r.json["error"]["code"] == "fleet.link_cut"
    assert "管理接続を切るおそれ" in r.json["error"]["ja"] and "force_link_cut" in r.json["error"]["en"]
    assert [c["path"] for c in r.json["link_cuts"]] == ["interfaces"]
    forced = {"config": data, "confirm_within": 60, "force_link_cut": True}
    r = _call(box, "POST", "/api/v1/config/apply", token, forced)
    assert r.status_code == 200 and r.json["revision"]["status"] == "pending"
    assert "fleet.link_cut_forced" in _actions(box, "vendor")


@pytest.mark.parametrize(
    ("change", "paths"),
    [
        (lambda d: d["web"].update(port=8443), ["web.port"]),
        (lambda d: d["interfaces"][0].update(address="203.0.113.5/24"), ["interfaces"]),
        (
            lambda d: d["interfaces"].append({"name": "lan1", "zone": "lan", "address": "198.51.100.1/24"}),
            ["interfaces"],
        ),  # holds the hub
        (lambda d: d["mgmt"].update(keepalive=60), ["mgmt"]),
        (lambda d: d["web"].update(zones=["lan"]), []),  # the web UI always listens on the link address
        (lambda d: d["firewall"]["rules"].pop(), []),
    ],
)
def test_link_guard_table(change, paths) -> None:
    old = _base()
    new = yaml.safe_load(yaml.safe_dump(old, allow_unicode=True))
    new.setdefault("web", {"port": 443, "zones": ["lan", "mgmt"]})
    old.setdefault("web", {"port": 443, "zones": ["lan", "mgmt"]})
    change(new)
    before = parse_config(yaml.safe_dump(old, allow_unicode=True)).model
    after = parse_config(yaml.safe_dump(new, allow_unicode=True)).model
    assert [c.path for c in link_cuts(before, after)] == paths


def test_no_link_no_cut() -> None:
    old = _base()
    old["mgmt"] = {"enabled": False}
    new = yaml.safe_load(yaml.safe_dump(old, allow_unicode=True))
    new["interfaces"][0]["gateway"] = "203.0.113.99"
    dump = lambda d: parse_config(yaml.safe_dump(d, allow_unicode=True)).model  # noqa: E731
    assert link_cuts(dump(old), dump(new)) == []
