"""The setup wizard's line step (issue 17.3): the clinic says what kind of line it has; on MAP-E (v6プラス,
OCN バーチャルコネクト) it gives the router's usable ports, and the VPN's listen port must be one of them
(one is suggested). Pure parsing table-driven; the step through Flask's test client."""

from __future__ import annotations

import pytest
import yaml

from appliance.clock import wall
from tests.webui_fixtures import make_box, session_token
from webui.wizard import build_config_text, check_line, parse_port_ranges


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("40960-40975", [(40960, 40975)]),
        ("45056-45071, 40960-40975", [(40960, 40975), (45056, 45071)]),
        ("４０９６０〜４０９７５、 45056 ～ 45071\n49152", [(40960, 40975), (45056, 45071), (49152, 49152)]),
        ("40975-40960", [(40960, 40975)]),  # written backwards: the same range
    ],
)
def test_the_routers_port_list_is_read_as_people_type_it(text, want):
    assert parse_port_ranges(text) == want


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "入力してください"),
        ("よんまん", "読めません"),
        ("80-90", "1024〜65535"),
        ("70000", "1024〜65535"),
        ("40960-", "読めません"),
        (", ".join(["40960"] * 65), "64個"),
    ],
)
def test_a_bad_port_list_is_refused_in_japanese(text, words):
    with pytest.raises(ValueError) as exc:
        parse_port_ranges(text)
    assert words in str(exc.value)


def test_the_listen_port_must_be_inside_the_map_e_ports():
    assert check_line("map-e", "40960-40975", "", 51820)["listen_port"] == 40960  # suggested
    assert check_line("map-e", "40960-40975", "40970", 51820)["listen_port"] == 40970
    assert check_line("map-e", "40960-40975", "", 40965)["listen_port"] == 40965  # the current one fits: kept
    with pytest.raises(ValueError, match="51820番は使えるポート番号の範囲に入っていません。たとえば 40960番"):
        check_line("map-e", "40960-40975", "51820", 51820)
    with pytest.raises(ValueError, match="数字"):
        check_line("map-e", "40960-40975", "abc", 51820)
    assert check_line("forward", "junk", "junk", 51820) == {
        "line": "forward",
        "ranges": "",
        "listen_port": 51820,
    }
    with pytest.raises(ValueError, match="回線の種類"):
        check_line("isdn", "", "", 51820)


def test_only_map_e_changes_the_port_in_the_config():
    text = build_config_text(None, {"clinic_name": "x", "line": "map-e", "listen_port": 40960})
    assert yaml.safe_load(text)["vpn"] == {"listen_port": 40960}
    assert "vpn" not in yaml.safe_load(build_config_text(None, {"clinic_name": "x", "line": "unknown",
                                                                 "listen_port": 51820}))  # fmt: skip


def test_a_map_e_line_takes_ipv6_from_the_home_gateway():
    rows = [{"name": "wan0", "zone": "wan", "address": ""}, {"name": "lan0", "zone": "lan",
                                                              "address": "192.168.10.1/24"}]  # fmt: skip
    data = yaml.safe_load(build_config_text(None, {"clinic_name": "x", "line": "map-e", "interfaces": rows}))
    assert [i.get("ipv6_auto") for i in data["interfaces"]] == [True, None]
    other = yaml.safe_load(
        build_config_text(None, {"clinic_name": "x", "line": "forward", "interfaces": rows})
    )
    assert all("ipv6_auto" not in i for i in other["interfaces"])


@pytest.fixture
def admin(tmp_path):
    box = make_box(tmp_path)
    box.add("admin", "admin")
    client = box.client()
    box.login(client, "admin")
    return box, client


def test_the_line_step_asks_checks_and_shows_the_port_in_the_summary(admin):
    _, client = admin
    page = client.get("/setup/line").get_data(as_text=True)
    assert "医院の回線" in page and "v6プラス" in page and "わからない" in page and "51820番" in page
    token = session_token(client)
    r = client.post("/setup/line", data={"csrf_token": token, "line": "map-e", "ranges": "40960-40975",
                                         "port": "51820"})  # fmt: skip
    body = r.get_data(as_text=True)
    assert (
        r.status_code == 400
        and "51820番は使えるポート番号の範囲に入っていません" in body
        and "40960番" in body
    )
    assert 'value="map-e" checked' in body and "40960-40975" in body  # what was typed stays
    r = client.post("/setup/line", data={"csrf_token": token, "line": "map-e", "ranges": "40960-40975, 45056-45071",
                                         "port": ""})  # fmt: skip
    assert r.status_code == 302 and r.headers["Location"].endswith("/setup/notify")
    client.post("/setup/clinic", data={"csrf_token": token, "clinic_name": "さくら内科クリニック"})
    summary = client.get("/setup/summary").get_data(as_text=True)
    assert "VPN は 40960番" in summary and "40960-40975, 45056-45071" in summary
    r = client.post("/setup/line", data={"csrf_token": token, "line": "rocket"})
    assert r.status_code == 400 and "回線の種類を選んでください" in r.get_data(as_text=True)


def test_the_line_step_says_when_the_port_did_not_get_in(admin):
    box, client = admin
    with box.ctx.db.connection() as conn:  # a probe round ran (link) and IPv4 did not get in
        conn.execute(
            "INSERT INTO vpn_reach (ts, family, handshake_at) VALUES (?, 'link', ?)", (wall(), wall())
        )
    page = client.get("/setup/line").get_data(as_text=True)
    assert "前回の確認では、外から UDP 51820番に届きませんでした" in page


def test_the_line_step_is_for_the_administrator(tmp_path):
    box = make_box(tmp_path)
    box.add("admin", "admin")
    box.add("staff", "viewer")
    client = box.client()
    box.login(client, "staff")
    assert client.get("/setup/line").status_code == 403


def test_the_wizard_says_port_for_one_meaning_only(admin):
    """Step 4 is about the box's sockets (差し込み口, LAN ポート), step 5 about a UDP port number (ポート番号):
    a clinic's staff should never have to guess which 「ポート」 is meant."""
    _, client = admin
    ports = client.get("/setup/ports").get_data(as_text=True)
    line = client.get("/setup/line").get_data(as_text=True)
    assert "<h1>差し込み口（LANポート）の使い道を選びます</h1>" in ports and "<th>差し込み口</th>" in ports
    assert "4. 差し込み口</li>" in line and "ポート番号（UDP）" in line and "使うポート番号" in line
    for page in (ports, line):
        rest = (
            page.split("<main", 1)[-1]
            .replace("LANポート", "")
            .replace("ポート番号", "")
            .replace("レポート", "")
        )
        assert "ポート" not in rest, rest[rest.index("ポート") - 80 : rest.index("ポート") + 20]
