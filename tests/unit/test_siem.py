"""The SIEM forwarder's pure parts: message format, escaping of hostile text, event ids, the siem: section's
validation (valid and invalid side by side) and the rsyslog.conf it renders (accepted by rsyslogd -N1)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.clock import wall
from appliance.config.load import parse_config
from appliance.errors import ConfigError
from lab.syslog_collector import make_pki
from siem.events import (
    MAX_LINE,
    clean,
    format_line,
    from_alert,
    from_audit,
    from_incident,
    parse_event_id,
    sd_value,
)
from siem.render import SiemPaths, render_rsyslog, spool_budget_bytes
from siem.subsystem import rsyslog_check
from tests.unit.test_firewall_helpers import example_dict

# RFC 5424 §6 with one SD-ELEMENT: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
SD_VALUE = r'"(?:[^"\\\]]|\\["\\\]])*"'
RFC5424 = re.compile(
    r"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) ([!-~]{1,255}) mamori - ([!-~]{1,32}) "
    rf"\[mamori@32473(?: [a-z_]{{1,32}}={SD_VALUE})+\](?: (.*))?$"
)
HOSTILE = 'evil"] [x@1 a="b"]\\\nsecond line\r\x00\x1b[31m\u2028 ] 終'


def audit_row(**kw: Any) -> dict[str, Any]:
    row = {"id": 1234, "ts": wall(), "actor": "admin", "source": "web", "remote": "192.168.10.20",
           "action": "vpn.user.add", "detail": json.dumps({"name": "yamada"})}  # fmt: skip
    return {**row, **kw}


def alert_row(**kw: Any) -> dict[str, Any]:
    row = {"id": 567, "incident_id": 12, "ts": wall(), "sid": 2100498, "rev": 7, "signature": "GPL ATTACK",
           "category": "Potentially Bad Traffic", "severity": 1, "src_ip": "198.51.100.66", "src_port": 4444,
           "dest_ip": "192.168.10.10", "dest_port": 80, "proto": "TCP"}  # fmt: skip
    return {**row, **kw}


def incident_row(**kw: Any) -> dict[str, Any]:
    row = {"id": 12, "sid": 2100498, "src_ip": "198.51.100.66", "dest_ip": "192.168.10.10", "first_seen": wall(),
           "severity": 2, "signature": "ET SCAN", "category": "Attempted Information Leak"}  # fmt: skip
    return {**row, **kw}


def sd_params(line: str) -> dict[str, str]:
    sd = line[line.index("[mamori@32473") :]
    out, i = {}, len("[mamori@32473")
    while sd[i] == " ":
        m = re.match(rf" ([a-z_]+)=({SD_VALUE})", sd[i:])
        assert m, sd[i:]
        raw = m.group(2)[1:-1]
        out[m.group(1)] = re.sub(r'\\(["\\\]])', r"\1", raw)
        i += m.end()
    return out


@pytest.mark.parametrize(
    ("event", "event_id", "msgid", "pri"),
    [
        (from_audit(audit_row()), "audit-1234", "audit", 13 * 8 + 6),
        (from_audit(audit_row(action="config.apply")), "audit-1234", "apply", 13 * 8 + 6),
        (from_audit(audit_row(action="config.apply_failed")), "audit-1234", "apply", 13 * 8 + 4),
        (from_audit(audit_row(action="ids.rules.update")), "audit-1234", "update", 13 * 8 + 6),
        (from_audit(audit_row(action="update.rolled_back")), "audit-1234", "update", 13 * 8 + 4),
        (from_alert(alert_row()), "alert-567", "alert", 14 * 8 + 2),
        (from_alert(alert_row(severity=3)), "alert-567", "alert", 14 * 8 + 5),
        (from_incident(incident_row()), "incident-12", "incident", 14 * 8 + 4),
    ],
)
def test_every_kind_is_one_rfc5424_line_with_box_and_event_id(event, event_id, msgid, pri) -> None:
    line = format_line(event, "clinic-037")
    m = RFC5424.match(line)
    assert m, line
    assert (int(m.group(1)), m.group(3), m.group(4)) == (pri, "clinic-037", msgid)
    params = sd_params(line)
    assert params["box"] == "clinic-037" and params["event"] == event_id
    assert parse_event_id(line) == (event_id.split("-")[0], int(event_id.split("-")[1]))


def test_timestamp_is_the_events_own_time_in_utc() -> None:
    line = format_line(from_alert(alert_row(ts=1_800_000_000.25)), "b")
    assert " 2027-01-15T08:00:00.250000Z " in line


@pytest.mark.parametrize("field", ["signature", "category", "src_ip", "proto"])
def test_hostile_alert_text_stays_inside_its_value(field: str) -> None:
    line = format_line(from_alert(alert_row(**{field: HOSTILE})), "clinic-037")
    assert "\n" not in line and "\r" not in line and "\x00" not in line and "\u2028" not in line
    assert RFC5424.match(line), line
    params = sd_params(line)
    assert params["event"] == "alert-567" and params["box"] == "clinic-037"
    assert "x@1" not in params  # no parameter or element smuggled in
    assert parse_event_id(line) == ("alert", 567)


def test_hostile_text_cannot_fake_an_event_id() -> None:
    line = format_line(
        from_alert(alert_row(signature='x event="audit-1" y', category='event="audit-2"')), "b"
    )
    assert parse_event_id(line) == ("alert", 567)


def test_escaping_rules() -> None:
    assert sd_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    assert clean("a\nb\tc\x7f") == "a\\x0ab\\x09c\\x7f"
    assert clean("\ud800x") == "?x"  # a lone surrogate (from JSON) never breaks the UTF-8 line


def test_huge_values_are_cut_but_ids_kept() -> None:
    line = format_line(from_alert(alert_row(signature="署" * 50_000, category="]" * 50_000)), "clinic-037")
    assert len(line.encode()) <= MAX_LINE
    assert RFC5424.match(line)
    assert sd_params(line)["event"] == "alert-567"
    line.encode("utf-8")  # never cut inside a character


# -- the siem: section -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    pki = make_pki(tmp_path_factory.mktemp("pki"), names=["siem.example.jp"], client_name="box")
    return pki.ca_cert.read_text()


def config_text(siem: dict[str, Any], **sections: Any) -> str:
    data = copy.deepcopy(example_dict())
    data["siem"] = siem
    data.update(sections)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def issues(siem: dict[str, Any], **sections: Any) -> dict[str, str]:
    try:
        parse_config(config_text(siem, **sections))
    except ConfigError as exc:
        return {i.path: i.message.ja for i in exc.issues}
    return {}


HUB_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
MGMT = {"enabled": True, "hub_endpoint": "hub.example.jp:51820", "hub_public_key": HUB_KEY,
        "network": "10.77.0.0/16", "address": "10.77.0.17", "hub_addresses": ["10.77.0.1"]}  # fmt: skip


def test_off_by_default_renders_nothing() -> None:
    cfg = parse_config(yaml.safe_dump(example_dict(), allow_unicode=True)).model
    assert cfg.siem.enabled is False
    assert render_rsyslog(cfg, SiemPaths(Path("/s"), Path("/k"), Path("/r"))).conf == ""


def test_valid_and_invalid_side_by_side(ca_pem: str) -> None:
    ok = {"enabled": True, "collector": "siem.example.jp", "collector_ca": ca_pem}
    assert issues(ok) == {}
    assert issues({**ok, "via": "mgmt", "collector": "10.77.0.1"}, mgmt=MGMT) == {}
    assert issues({**ok, "box_id": "clinic-037", "min_alert_severity": "medium"}) == {}
    assert "siem" in issues({"enabled": True, "collector": "siem.example.jp"})  # no CA: never unverified
    assert "siem.collector_ca" in issues({**ok, "collector_ca": "not a certificate"})
    assert "siem.collector_ca" in issues({**ok, "collector_ca": ca_pem + "\nextra text"})
    assert "siem.collector" in issues({**ok, "collector": 'x" target="evil'})
    assert "siem.box_id" in issues({**ok, "box_id": "a b"})
    assert "siem.box_id" in issues({**ok, "box_id": 'x"]'})
    assert "siem.queue_mb" in issues({**ok, "queue_mb": 1})
    assert "siem.via" in issues({**ok, "via": "mgmt", "collector": "10.77.0.1"})  # mgmt link off
    assert "siem.collector" in issues({**ok, "via": "mgmt", "collector": "10.77.0.9"}, mgmt=MGMT)
    assert "siem.collector" in issues({**ok, "collector": "192.168.10.10"})  # wan: never into the clinic
    assert "siem.unknown" in issues({**ok, "unknown": 1})


def test_render_verifies_the_collector_and_queues_on_disk(ca_pem: str, tmp_path: Path) -> None:
    cfg = parse_config(config_text({"enabled": True, "collector": "siem.example.jp", "collector_ca": ca_pem,
                                    "queue_mb": 400})).model  # fmt: skip
    sp = SiemPaths(tmp_path / "siem", tmp_path / "keys", tmp_path / "run")
    r = render_rsyslog(cfg, sp)
    conf = r.conf
    for needed in ('StreamDriver="gtls"', 'StreamDriverMode="1"', 'StreamDriverAuthMode="x509/name"',
                   'StreamDriverPermittedPeers="siem.example.jp"', 'TCP_Framing="octet-counted"',
                   'queue.type="Disk"', 'queue.filename="siem-fwd"', 'ResendLastMSGOnReconnect="on"', 'queue.maxDiskSpace="300m"',
                   'queue.saveOnShutdown="on"', 'action.resumeRetryCount="-1"', 'persistStateAfterSubmission="on"',
                   f'defaultNetstreamDriverCAFile="{sp.ca}"'):  # fmt: skip
        assert needed in conf
    for absent in ("imklog", "imjournal", "imuxsock", "imtcp", "imudp", "/etc/rsyslog"):
        assert absent not in conf
    assert r.ca == ca_pem.strip() + "\n" and r.client_cert == ""
    assert spool_budget_bytes(400) == 100 << 20
    rsyslog_check(cfg, r)  # rsyslogd -N1 accepts it


def test_a_new_ca_changes_the_config_text(ca_pem: str, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", names=["x"]).ca_cert.read_text()
    sp = SiemPaths(tmp_path / "siem", tmp_path / "keys", tmp_path / "run")
    confs = {render_rsyslog(parse_config(config_text({"enabled": True, "collector": "siem.example.jp",
                                                      "collector_ca": ca})).model, sp).conf
             for ca in (ca_pem, other)}  # fmt: skip
    assert len(confs) == 2  # the worker restarts rsyslogd for a new certificate


def test_client_certificate_and_mgmt_binding(ca_pem: str, tmp_path: Path) -> None:
    cfg = parse_config(config_text({"enabled": True, "collector": "10.77.0.1", "collector_ca": ca_pem,
                                    "client_cert": ca_pem, "via": "mgmt", "permitted_peer": "hub.example.jp"},
                                   mgmt=MGMT)).model  # fmt: skip
    sp = SiemPaths(tmp_path / "siem", tmp_path / "keys", tmp_path / "run")
    r = render_rsyslog(cfg, sp)
    assert f'defaultNetstreamDriverKeyFile="{sp.keys_dir / "siem-client.key"}"' in r.conf
    # no Address= (UDP-only in rsyslog's omfwd; the route into the link picks the link's address)
    assert "Address=" not in r.conf and 'StreamDriverPermittedPeers="hub.example.jp"' in r.conf
