"""Stale detection rules: ET Open older than `ids.rules_max_age_days` (default 7) is a warning on the dashboard
and in `mamori ids status` (exit code unchanged). Ages are set relative to the clock, never fixed dates."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from appliance.cli import main
from appliance.config.load import parse_config
from appliance.errors import ConfigError
from appliance.paths import Paths
from ids.freshness import rules_age, rules_warning
from ids.sources import SOURCE, sources_dir
from tests.webui_fixtures import box_fixture  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0


def config(**ids):
    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"))
    data["ids"].update(ids)
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


def install_rules(paths: Paths, updated: float) -> None:
    source = sources_dir(paths) / SOURCE
    source.mkdir(parents=True)
    (source / "emerging-scan.rules").write_text(
        'alert tcp any any -> any 22 (msg:"ET SCAN test"; sid:2000001; rev:1;)\n', encoding="utf-8"
    )
    os.utime(source, (updated, updated))


@pytest.mark.parametrize(
    ("ids", "age_days", "warning"),
    [
        ({}, None, None),  # no ET Open installed: not "stale" (the checklist says it is missing)
        ({}, 0.5, None),
        ({}, 7.5, None),  # 7 whole days: the limit, not past it
        ({}, 8.5, "侵入検知のルールが 8 日間更新されていません"),
        ({"rules_max_age_days": 10}, 8.5, None),
        ({"rules_max_age_days": 1}, 2.5, "侵入検知のルールが 2 日間更新されていません"),
        ({"enabled": False}, 30.5, None),  # IDS switched off: nothing to warn about
        ({}, -3.0, None),  # a clock set back: age 0, not negative
    ],
)
def test_rules_warning(tmp_path: Path, ids: dict, age_days: float | None, warning: str | None) -> None:
    paths, now = Paths(tmp_path / "c.yaml", tmp_path / "state"), time.time()
    if age_days is not None:
        install_rules(paths, now - age_days * DAY)
    assert rules_warning(paths, config(**ids), now) == warning


def test_rules_age_without_a_config_uses_the_default(tmp_path: Path) -> None:
    paths, now = Paths(tmp_path / "c.yaml", tmp_path / "state"), time.time()
    install_rules(paths, now - 9.5 * DAY)
    age = rules_age(paths, None, now)
    assert (age.days, age.max_days, age.stale) == (9, 7, True)
    assert age.warning("en") == "the intrusion detection rules have not been updated for 9 days"


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (7, True), (365, True), (0, False), (366, False), ("x", False)]
)
def test_rules_max_age_days_in_the_config(value, ok: bool) -> None:
    if ok:
        assert config(rules_max_age_days=value).ids.rules_max_age_days == value
    else:
        with pytest.raises(ConfigError, match="rules_max_age_days"):
            config(rules_max_age_days=value)


def test_ids_status_says_how_old_the_rules_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(REPO / "examples" / "clinic.yaml", tmp_path / "config.yaml")
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    base = ["--config", str(paths.config), "--state-dir", str(paths.state_dir)]
    assert main([*base, "ids", "status"]) == 0
    assert "ルール: ET Open は入っていません" in capsys.readouterr().out
    install_rules(paths, time.time() - 12.5 * DAY)
    assert main([*base, "ids", "status"]) == 0  # a warning, not a failure
    out = capsys.readouterr().out
    assert "（12 日前）" in out and "注意: 侵入検知のルールが 12 日間更新されていません" in out
    assert main([*base, "--lang", "en", "ids", "status"]) == 0
    assert (
        "warning: the intrusion detection rules have not been updated for 12 days" in capsys.readouterr().out
    )


def test_dashboard_warns_about_stale_rules(box) -> None:
    client = box.client()
    box.login(client, "staff")
    assert "侵入検知のルールが" not in client.get("/").get_data(as_text=True)
    install_rules(box.ctx.paths, box.clock.now - 7.5 * DAY)
    assert "侵入検知のルールが" not in client.get("/").get_data(as_text=True)
    box.clock.advance(DAY)
    box.login(client, "staff")
    assert "侵入検知のルールが 8 日間更新されていません" in client.get("/").get_data(as_text=True)
