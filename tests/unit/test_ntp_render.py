"""chrony.conf rendering and the `ntp:` config section: table-driven, valid and invalid side by side, a
golden file, and chrony's own parser (`chronyd -p`) on what we render and on what it must refuse."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import ApplyError, ConfigError
from appliance.paths import Paths
from timesvc.render import chrony_dir, render_chrony, served_networks, sets_clock
from timesvc.subsystem import ChronySubsystem, chrony_parse_check

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "ntp_clinic.conf"
PATHS = Paths(config=Path("/etc/mamori/config.yaml"), state_dir=Path("/var/lib/mamori"))
CHRONY = "/run/mamori/chrony-" + hashlib.sha256(b"/var/lib/mamori").hexdigest()[:12]


def config(ntp: dict | None = None, extra_ifaces: list[dict] | None = None):
    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"))
    if ntp is not None:
        data["ntp"] = ntp
    data["interfaces"] += extra_ifaces or []
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


def test_golden_clinic_rendering() -> None:
    text = render_chrony(config({"servers": ["198.51.100.10"]}), PATHS)
    assert text == GOLDEN.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("ntp", "extra", "line", "present"),
    [
        ({}, [], "server ntp.nict.jp iburst", True),  # Japanese public defaults
        ({}, [], "server ntp.jst.mfeed.ad.jp iburst", True),
        ({"servers": ["198.51.100.10"]}, [], "server ntp.nict.jp iburst", False),
        ({}, [], "allow 192.168.10.0/24", True),  # lan
        ({}, [], "allow 192.168.30.0/24", True),  # devices
        ({}, [], "allow 192.168.20.0/24", False),  # guest: the policy table gives guests no NTP
        ({}, [], "allow 203.0.113.0/24", False),  # wan: never
        ({}, [{"name": "lan0.40", "parent": "lan0", "vlan": 40, "zone": "mgmt", "address": "192.168.40.1/24"}],
         "allow 192.168.40.0/24", True),  # mgmt
        ({}, [], "cmdport 0", True),  # no network command port
        ({}, [], f"bindcmdaddress {CHRONY}/chronyd.sock", True),
        ({}, [], f"pidfile {CHRONY}/chronyd.pid", True),
        ({}, [], "\nallow all", False),
        ({}, [], "\nlocal ", False),  # never serve an unsynchronised clock
    ],
)  # fmt: skip
def test_rendered_lines(ntp: dict, extra: list[dict], line: str, present: bool) -> None:
    assert (line in render_chrony(config(ntp, extra), PATHS)) is present


@pytest.mark.parametrize(
    ("ntp", "message"),
    [
        ({"servers": []}, "at least 1"),
        ({"servers": [""]}, "empty"),
        ({"servers": ["ntp.nict.jp\nallow all"]}, "not a host name"),  # directive injection
        ({"servers": ["ntp nict jp"]}, "not a host name"),
        ({"servers": ["x"] * 9}, "at most 8"),
        ({"enabled": "perhaps"}, "true or false"),
        ({"pool": "ntp.nict.jp"}, "unknown field"),  # unknown keys are errors
    ],
)
def test_invalid_ntp_sections_are_refused(ntp: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(ntp)
    texts = [i.text("en") for i in err.value.issues]
    assert any(i.path.startswith("ntp") for i in err.value.issues), texts
    assert any(message.lower() in t.lower() for t in texts), texts


def test_disabled_renders_nothing_and_set_clock_is_carried() -> None:
    assert render_chrony(config({"enabled": False}), PATHS) == ""
    assert sets_clock(render_chrony(config({}), PATHS))
    assert not sets_clock(render_chrony(config({"set_clock": False}), PATHS))


def test_served_networks_follow_the_policy_table() -> None:
    assert served_networks(config({})) == ["192.168.10.0/24", "192.168.30.0/24"]


def test_deterministic_and_one_chrony_dir_per_state_dir() -> None:
    assert render_chrony(config({}), PATHS) == render_chrony(config({}), PATHS)
    other = Paths(config=PATHS.config, state_dir=Path("/tmp/box2"))
    assert chrony_dir(other) != chrony_dir(PATHS) and chrony_dir(other).parent == Path("/run/mamori")


needs_chronyd = pytest.mark.skipif(
    shutil.which("chronyd") is None, reason="chrony is not installed (make setup)"
)


@needs_chronyd
def test_chronyd_accepts_the_rendering() -> None:
    chrony_parse_check(render_chrony(config({}), PATHS))
    chrony_parse_check("")  # NTP off: nothing to check


@needs_chronyd
@pytest.mark.parametrize("bad", ["allow 999.1.1.1/8\n", "serverr ntp.nict.jp\n", "makestep one 3\n"])
def test_chronyd_refuses_broken_text(bad: str) -> None:
    with pytest.raises(ApplyError) as err:
        chrony_parse_check(render_chrony(config({}), PATHS) + bad)
    assert err.value.code == "ntp.check" and "chrony" in err.value.text("ja")


def test_subsystem_writes_only_on_change_and_removes_when_off(tmp_path: Path) -> None:
    from appliance.storage import Database
    from appliance.subsystem import Context

    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path)
    sub = ChronySubsystem(Context(paths, Database(paths.db)))
    text = sub.render(config({}))
    sub.apply(text)
    conf = paths.run_dir / "chrony.conf"
    first = conf.stat().st_mtime_ns
    sub.apply(text)
    assert conf.stat().st_mtime_ns == first  # unchanged: not rewritten, chronyd not restarted
    sub.verify(text)
    with pytest.raises(ApplyError):
        sub.verify(text + "# tampered\n")
    sub.apply(sub.render(config({"enabled": False})))
    assert not conf.exists()
    sub.verify("")
