"""The box's IPv6 name follows prefix changes (issue 17.2): the `vpn.ddns` settings, which WAN address is
published, the TSIG secret kept out of the config, and the updater's decisions (publish at start, on a new
prefix, as a refresh; back off and tell the clinic once when it lasts). The real RFC 2136 exchange with a
real bind9 is in tests/long/test_vpn_ddns.py; here the network step is a recorder."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
import yaml

from appliance.audit import AuditLog
from appliance.clock import wall
from appliance.config.load import parse_config
from appliance.config.model import MamoriConfig
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from tests.unit.test_vpn_lines import issues  # {path: Japanese message} of a config text
from vpn import ddns_worker
from vpn.ddns import (
    IFA_F_DEPRECATED,
    IFA_F_PERMANENT,
    IFA_F_TEMPORARY,
    IFA_F_TENTATIVE,
    DdnsError,
    WanAddress,
    check_secret,
    is_global_unicast,
    load_secret,
    pick_address,
    save_secret,
    secret_path,
)
from vpn.ddns_worker import ALERT_AFTER_S, REFRESH_S, DdnsUpdater, load_state
from vpn.render import client_conf
from vpn.store import Device

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
SERVER_KEY = "obD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4="
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="  # base64 of 32 bytes
NAME = "clinic-17.v6.example.jp"
DDNS = {"server": "ns.example.jp", "zone": "v6.example.jp", "tsig_key_name": "clinic-17"}


def config_text(endpoint6: str = NAME, **ddns) -> str:
    data = yaml.safe_load(EXAMPLE)
    data["vpn"].update(endpoint6=endpoint6, path="ipv6", ddns={**DDNS, **ddns})
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def test_the_name_in_the_doctors_conf_is_the_one_the_box_updates():
    c = parse_config(config_text()).model
    assert c.vpn.ddns.tsig_algorithm == "hmac-sha256" and c.vpn.ddns.ttl == 300 and c.vpn.ddns.port == 53
    dev = Device(1, "yamada", "pc1", SERVER_KEY, "10.99.0.2", None, True, 0.0, None)
    conf = client_conf(c, dev, SERVER_KEY)
    assert f"Endpoint = {NAME}:51820" in conf and "IPv6 で直接" in conf


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (config_text(endpoint6="2001:db8:17::2"), "vpn", "名前"),  # an address cannot follow a prefix
        (config_text(endpoint6="clinic.other.jp"), "vpn", "ゾーン v6.example.jp の中にありません"),
        (config_text(endpoint6="v6.example.jp"), "vpn", "ゾーン"),  # the zone apex is not a host's name
        (config_text(tsig_algorithm="hmac-md5"), "vpn.ddns.tsig_algorithm", ""),
        (config_text(ttl=5), "vpn.ddns.ttl", ""),
        (config_text(server="bad name!"), "vpn.ddns.server", "ホスト名"),
        (config_text(interface="wan9"), "vpn.ddns.interface", "wan9"),
        (config_text(tsig_secret=SECRET), "vpn.ddns.tsig_secret", ""),  # secrets never live in the config
    ],
)
def test_ddns_settings_are_checked_in_japanese(text, where, words):
    got = issues(text)
    assert where in got, got
    assert words in got[where]


def test_good_ddns_settings_pass():
    assert issues(config_text(interface="wan0", tsig_algorithm="hmac-sha512", ttl=60, port=5353)) == {}


@pytest.mark.parametrize(
    ("addrs", "want"),
    [
        ([], None),
        (
            [WanAddress("fe80::1"), WanAddress("fd00::2"), WanAddress("::1")],
            None,
        ),  # link-local, ULA, loopback
        ([WanAddress("ff02::1"), WanAddress("::ffff:1.2.3.4")], None),
        ([WanAddress("fe80::1"), WanAddress("2409:10:2020:ab00::2", 0, 600)], "2409:10:2020:ab00::2"),
        # after a renumber: the old prefix deprecated, the new one preferred
        (
            [
                WanAddress("2409:10:2020:ab00::2", IFA_F_DEPRECATED, 0),
                WanAddress("2409:10:99:cd00::2", 0, 600),
            ],
            "2409:10:99:cd00::2",
        ),
        ([WanAddress("2409:10:2020:ab00::9", IFA_F_TEMPORARY, 900)], None),  # privacy addresses rotate
        ([WanAddress("2409:10:2020:ab00::9", IFA_F_TENTATIVE, 900)], None),  # not usable yet
        # both valid: a longer preferred lifetime wins, an address set by hand wins over both
        ([WanAddress("2409::a", 0, 100), WanAddress("2409::b", 0, 200)], "2409::b"),
        ([WanAddress("2409::a", 0, 100), WanAddress("2001:db8:17::2", IFA_F_PERMANENT)], "2001:db8:17::2"),
        (
            [WanAddress("2409:0:0:0::B", 0, 5), WanAddress("2409::a", 0, 5)],
            "2409::a",
        ),  # ties: lowest, canonical
    ],
)
def test_only_a_stable_global_unicast_address_is_published(addrs, want):
    assert pick_address(addrs) == want


def test_global_unicast_is_2000_slash_3():
    assert is_global_unicast("2001:db8::1") and is_global_unicast("3fff::1")
    assert not any(
        map(is_global_unicast, ["fc00::1", "fe80::1", "::", "4000::1", "not an address", "10.0.0.1"])
    )


def test_the_secret_is_base64_kept_0600_and_checked(tmp_path):
    with pytest.raises(DdnsError) as exc:
        check_secret("not base64 !!")
    assert "base64" in exc.value.text("ja")
    with pytest.raises(DdnsError, match="short"):
        check_secret("c2hvcnQ=")
    with pytest.raises(DdnsError) as exc:
        load_secret(tmp_path / "keys")
    assert "set-secret" in exc.value.text("ja")
    save_secret(tmp_path / "keys", f"  {SECRET}\n")
    assert load_secret(tmp_path / "keys") == SECRET
    assert stat.S_IMODE(secret_path(tmp_path / "keys").stat().st_mode) == 0o600


def test_set_secret_works_on_a_box_with_no_config_yet(tmp_path, monkeypatch, capsys):
    """`mamori vpn ddns set-secret` only writes the key file: a new box without a config file or revision
    takes it (the vendor may set the key before the config that names it), and audits it."""
    from appliance.cli import main

    state = tmp_path / "state"
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    argv = ["--config", str(tmp_path / "none.yaml"), "--state-dir", str(state), "vpn", "ddns", "set-secret"]
    assert main(argv) == 0, capsys.readouterr()
    assert "TSIG の鍵を保存しました" in capsys.readouterr().out
    assert load_secret(state / "keys") == SECRET
    entries = AuditLog(Database(state / "db" / "mamori.db")).search(text="vpn.ddns.secret_set")
    assert [(e.action, e.detail) for e in entries] == [("vpn.ddns.secret_set", {"key_name": ""})]
    assert SECRET not in json.dumps([e.detail for e in entries])


# -- the updater (vpn/ddns_worker.py) --------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path):
    c = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    c.paths.ensure()
    c.db.migrate()
    save_secret(c.paths.keys_dir, SECRET)
    return c


class Line:
    """The WAN as the updater sees it, the DNS server it talks to, and the clock: what the test moves."""

    def __init__(self, monkeypatch) -> None:
        self.now = wall()
        self.addrs = [WanAddress("2409:10:2020:ab00::2", 0, 14400)]
        self.sent: list[tuple[str, str, str]] = []
        self.error: DdnsError | None = None
        monkeypatch.setattr(ddns_worker, "wall", lambda: self.now)

    def send(self, d, name: str, address: str, secret: str) -> None:
        self.sent.append((name, address, secret))
        if self.error is not None:
            raise self.error

    def updater(self, ctx: Context, cfg: MamoriConfig) -> DdnsUpdater:
        return DdnsUpdater(
            ctx, cfg, addresses=lambda ifname: self.addrs if ifname == "wan0" else [], send=self.send
        )


def audit_actions(ctx: Context) -> list[tuple[str, dict]]:
    entries = AuditLog(ctx.db, ctx.paths.keys_dir / "audit.key").search("vpn.ddns", limit=50)
    return [(e.action, e.detail) for e in reversed(entries)]


def test_publishes_at_start_on_a_new_prefix_and_as_a_refresh(ctx, monkeypatch):
    cfg = parse_config(config_text()).model
    line = Line(monkeypatch)
    up = line.updater(ctx, cfg)
    st = up.step()
    assert line.sent == [(NAME, "2409:10:2020:ab00::2", SECRET)]
    assert (st.address, st.published_at, st.error_ja) == ("2409:10:2020:ab00::2", line.now, "")
    line.now += 60
    up.step()
    assert len(line.sent) == 1  # nothing changed: nothing sent
    # the home gateway renumbered: the old address deprecated, a new prefix
    line.addrs = [
        WanAddress("2409:10:2020:ab00::2", IFA_F_DEPRECATED, 0),
        WanAddress("2409:10:99:cd00::2", 0, 14400),
    ]
    st = up.step()
    assert line.sent[-1][1] == "2409:10:99:cd00::2" and st.address == "2409:10:99:cd00::2"
    line.now += REFRESH_S + 1
    up.step()
    assert len(line.sent) == 3 and line.sent[-1][1] == "2409:10:99:cd00::2"  # the hourly refresh
    updates = [d for a, d in audit_actions(ctx) if a == "vpn.ddns.updated"]
    assert [(d["address"], d["previous"]) for d in updates] == [
        ("2409:10:2020:ab00::2", ""), ("2409:10:99:cd00::2", "2409:10:2020:ab00::2")]  # fmt: skip
    assert "2409:10:99:cd00::2 を指しています" in st.lines("Asia/Tokyo")[0]


def test_a_lasting_failure_backs_off_is_told_once_and_its_end_too(ctx, monkeypatch):
    cfg = parse_config(config_text()).model
    line = Line(monkeypatch)
    up = line.updater(ctx, cfg)
    line.error = DdnsError("DNS サーバーに断られました：TSIG の鍵が合っていません", "refused: TSIG key")
    st = up.step()
    assert st.failures == 1 and "TSIG の鍵" in st.error_ja and st.failing_since == line.now
    line.now += 10
    up.step()
    assert len(line.sent) == 1  # within the back-off: not tried again
    start = st.failing_since
    for _ in range(20):  # bounded: the back-off doubles to 15 min, so 20 tries span more than the alert delay
        line.now += 901
        st = up.step()
    assert st.alerted and st.failing_since == start and len(line.sent) == 21
    failing = [d for a, d in audit_actions(ctx) if a == "vpn.ddns.failing"]
    assert len(failing) == 1 and "TSIG" in failing[0]["error"] and failing[0]["since"] == start
    assert line.now - start >= ALERT_AFTER_S
    line.error = None
    line.now += 901
    st = up.step()
    assert st.error_ja == "" and not st.alerted and st.address == "2409:10:2020:ab00::2"
    assert [a for a, _ in audit_actions(ctx)][-2:] == ["vpn.ddns.updated", "vpn.ddns.recovered"]


def test_no_ipv6_on_the_wan_is_an_error_not_an_update(ctx, monkeypatch):
    cfg = parse_config(config_text()).model
    line = Line(monkeypatch)
    line.addrs = [WanAddress("fe80::1")]
    st = line.updater(ctx, cfg).step()
    assert line.sent == [] and "IPv6 アドレスがありません" in st.error_ja and st.failures == 1


def test_the_secret_is_never_in_the_state_the_audit_or_the_log(ctx, monkeypatch, caplog):
    cfg = parse_config(config_text()).model
    line = Line(monkeypatch)
    up = line.updater(ctx, cfg)
    up.step()
    line.error = DdnsError("断られました", "refused")
    line.now += 5000
    up.step()
    text = json.dumps([ctx.db.get_kv("vpn.ddns"), audit_actions(ctx)]) + caplog.text
    assert SECRET not in text and line.sent[0][2] == SECRET


def test_the_clinic_is_told_when_the_name_cannot_be_updated():
    from appliance.audit import AuditEntry
    from vpn.notices import compose

    cfg = parse_config(config_text()).model
    entry = AuditEntry(1, wall(), "system", "daemon", "", "vpn.ddns.failing",
                       {"name": NAME, "error": "TSIG の鍵が合っていません", "since": wall() - 1800})  # fmt: skip
    msg = compose(cfg, entry, lambda _: None)
    assert msg is not None and "IPv6 の名前を更新できません" in msg.subject
    assert NAME in msg.body and "TSIG の鍵が合っていません" in msg.body and "保守業者" in msg.body


def test_the_vpn_page_shows_the_name_its_address_and_a_failure(tmp_path):
    from tests.webui_fixtures import make_box

    box = make_box(tmp_path)
    box.ctx.paths.config.write_text(config_text(), encoding="utf-8")
    box.add("admin", "admin")
    client = box.client()
    box.login(client, "admin")
    page = client.get("/vpn/").get_data(as_text=True)
    assert "IPv6 の名前はまだ更新していません" in page
    st = ddns_worker.DdnsState(name=NAME, address="2409:10:99:cd00::2", published_at=wall() - 60,
                               failures=2, failing_since=wall() - 30, error_ja="DNS サーバー ns.example.jp:53 から返事がありません",
                               error_en="no answer")  # fmt: skip
    ddns_worker.save_state(box.ctx, st)
    page = client.get("/vpn/").get_data(as_text=True)
    assert f"IPv6 の名前 {NAME} は 2409:10:99:cd00::2 を指しています" in page
    assert "IPv6 の名前を更新できていません" in page and "返事がありません" in page
    assert load_state(box.ctx).failures == 2
