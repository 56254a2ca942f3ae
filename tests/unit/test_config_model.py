"""The config model: valid and invalid cases side by side, with the Japanese (and English) message asserted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appliance.config import parse_config
from appliance.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def with_change(path: str, value: object) -> str:
    """The example config with one value replaced; `path` is dotted, [n] for list items; value DELETE removes."""
    data = example()
    parts = path.replace("[", ".").replace("]", "").split(".")
    target = data
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    key = int(last) if last.isdigit() else last
    if value == "DELETE":
        del target[key]
    else:
        target[key] = value
    return yaml.safe_dump(data, allow_unicode=True)


def test_example_config_is_valid() -> None:
    loaded = parse_config(EXAMPLE.read_text(encoding="utf-8"))
    assert loaded.model.clinic.name == "さくら内科クリニック"
    assert [i.zone for i in loaded.model.interfaces] == ["wan", "lan", "guest", "devices"]
    assert loaded.warnings == []


VALID = [
    ("wan by dhcp", "interfaces[0].address", "dhcp"),
    ("ipv6 on lan", "interfaces[1].address6", "fd00:10::1/64"),
    ("ids full profile", "ids.profile", "full"),
    ("no vpn", "vpn.enabled", False),
    ("mac-only host", "hosts[1]", {"name": "受付PC", "mac": "52-54-00-AA-BB-CC"}),
]


@pytest.mark.parametrize(("case", "path", "value"), VALID, ids=[c[0] for c in VALID])
def test_valid_variants(case: str, path: str, value: object) -> None:
    parse_config(with_change(path, value))


INVALID = [
    # (case, path, value, expected field path, expected Japanese fragment, expected English fragment)
    ("unknown top-level key", "firewal", {}, "firewal", "この項目は設定にありません", "unknown field"),
    ("unknown nested key", "clinic.nmae", "x", "clinic.nmae", "この項目は設定にありません", "unknown field"),
    ("missing clinic", "clinic", "DELETE", "clinic", "必須の項目です", "required"),
    ("bad zone", "interfaces[1].zone", "office", "interfaces[1].zone", "使える値は", "allowed values"),
    ("address without prefix", "interfaces[1].address", "192.168.10.1", "interfaces[1].address",
     "プレフィックス長を付けてください", "prefix length"),
    ("address not an address", "interfaces[1].address", "192.168.300.1/24", "interfaces[1].address",
     "アドレス/プレフィックス長の形式ではありません", "not an address"),
    ("bad interface name", "interfaces[1].name", "lan 0", "interfaces[1].name", "インターフェース名", "interface name"),
    ("bad host ip", "hosts[0].ip", "192.168.10.999", "hosts[0].ip", "IPアドレスではありません", "not an IP"),
    ("bad mac", "hosts[0].mac", "zz:zz", "hosts[0].mac", "MACアドレスではありません", "not a MAC"),
    ("host outside networks", "hosts[0].ip", "10.1.2.3", "hosts[0].ip", "どのネットワークにも属していません",
     "not in any internal network"),
    ("unknown rule host", "firewall.rules[0].src", "CT装置", "firewall.rules[0].src", "「CT装置」という", "no zone, host"),
    ("unknown service", "firewall.rules[0].service", "FTPS", "firewall.rules[0].service", "サービスはありません",
     "no service"),
    ("bad port spec", "services[0].ports", ["tcp/99999"], "services[0].ports[0]", "ポートの形式ではありません",
     "not a port"),
    ("bad duration", "firewall.block_timeout", "forever", "firewall.block_timeout", "期間の形式ではありません",
     "not a duration"),
    ("bad time", "firewall.schedules[0].start", "25:00", "firewall.schedules[0].start", "時刻の形式ではありません",
     "not a time of day"),
    ("web ui on guest", "web.zones", ["lan", "guest"], "web.zones[1]", "管理画面は WAN やゲスト", "never reachable"),
    ("two wans", "interfaces[2].zone", "wan", "interfaces", "ちょうど1つ必要です", "exactly one wan"),
    ("overlapping networks", "interfaces[2].address", "192.168.10.2/25", "interfaces", "重なっています", "overlap"),
    ("dhcp outside zone", "dhcp.ranges[0].end", "192.168.11.5", "dhcp.ranges[0]", "ネットワークの中にありません",
     "not inside"),
    ("vlan without parent", "interfaces[2].vlan", 20, "interfaces[2].vlan", "parent", "needs both parent"),
    ("unknown group member", "groups[0].members", ["電子カルテ", "CT"], "groups[0].members[1]",
     "「CT」という機器は登録されていません", "no host named"),
    ("duplicate host name", "hosts[1].name", "電子カルテ", "hosts[1].name", "既に使われている名前", "already used"),
    ("name with markup", "hosts[0].name", "<b>x</b>", "hosts[0].name", "使えない文字", "may not contain"),
    ("gateway on lan", "interfaces[1].gateway", "192.168.10.254", "interfaces[1].gateway", "WAN 側にだけ",
     "only a wan"),
    ("gateway off-link", "interfaces[0].gateway", "198.51.100.1", "interfaces[0].gateway", "ネットワーク 203.0.113.0/24 の中にありません",
     "not inside"),
    ("vpn endpoint injection", "vpn.endpoint", "host\n[Interface]\nPreUp = id", "vpn.endpoint",
     "ホスト名またはIPアドレスではありません", "not a host name"),
    ("vpn pool ipv6", "vpn.address", "fd00::1/64", "vpn.address", "IPv4 で、/16〜/30", "must be IPv4"),
    ("vpn pool too big", "vpn.address", "10.0.0.1/8", "vpn.address", "IPv4 で、/16〜/30", "must be IPv4"),
    ("vpn port out of range", "vpn.listen_port", 70000, "vpn.listen_port", "65535 以下", "at most 65535"),
    ("schema from the future", "schema_version", 99, "schema_version", "新しい版", "supports up to"),
    ("string for int", "ids.retention_days", "long", "ids.retention_days", "整数で入力してください", "whole number"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "path", "value", "where", "ja", "en"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_cases_name_the_field_in_japanese(
    case: str, path: str, value: object, where: str, ja: str, en: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_change(path, value))
    issues = {issue.path: issue for issue in info.value.issues}
    assert where in issues, f"{case}: expected an issue at {where}, got {list(issues)}"
    assert ja in issues[where].message.ja, issues[where].message.ja
    assert en in issues[where].message.en, issues[where].message.en
    text = info.value.text("ja")
    assert text.startswith("設定に誤りがあります") and where in text


def test_every_issue_is_reported_at_once() -> None:
    data = example()
    data["clinic"]["name"] = ""
    data["interfaces"][1]["zone"] = "office"
    data["firewall"]["rules"][0]["dst"] = "不明"
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(data, allow_unicode=True))
    paths = {i.path for i in info.value.issues}
    assert {"clinic.name", "interfaces[1].zone"} <= paths


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("clinic:\n  name: [unclosed\n")
    assert "YAML の書き方に誤りがあります" in info.value.text("ja")
    assert "行目" in info.value.text("ja")


def test_warnings_for_port_forwards_and_shadowed_rules() -> None:
    data = example()
    data["firewall"]["port_forwards"] = [{"port": "tcp/8443", "to_host": "電子カルテ"}]
    data["firewall"]["rules"] += [
        {"src": "受付PC", "dst": "PACS"},
        {"src": "受付PC", "dst": "PACS", "service": "HTTPS"},
    ]
    loaded = parse_config(yaml.safe_dump(data, allow_unicode=True))
    texts = [w.text("ja") for w in loaded.warnings]
    assert any("インターネットから 電子カルテ の tcp/8443 へ接続できる" in t for t in texts), texts
    assert any("効果がありません" in t for t in texts), texts
