"""fleet/prometheus/: the scrape config and alert rules a vendor installs, checked and unit-tested by the real
promtool (Debian's prometheus package): every alert fires on the box in trouble and stays quiet on the others
(mamori-alerts.test.yml). And every mamori_ series the rules use is one the box exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "fleet" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: run make setup (package prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL or "promtool", *args], cwd=FLEET, capture_output=True, text=True, timeout=120
    )


@needs_promtool
@pytest.mark.parametrize(
    "args",
    [("check", "rules", "mamori-alerts.yml"), ("check", "config", "prometheus.yml"),
     ("test", "rules", "mamori-alerts.test.yml")],
)  # fmt: skip
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    res = _promtool(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


@needs_promtool
def test_promtool_test_fails_when_a_rule_is_wrong(tmp_path: Path) -> None:
    """The rule tests can fail: a rule with the threshold moved makes them fail."""
    for name in ("mamori-alerts.yml", "mamori-alerts.test.yml"):
        shutil.copy(FLEET / name, tmp_path / name)
    rules = tmp_path / "mamori-alerts.yml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("> 0.9", "> 0.99"), encoding="utf-8")
    res = subprocess.run([PROMTOOL or "promtool", "test", "rules", "mamori-alerts.test.yml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode != 0 and "MamoriDiskAlmostFull" in res.stdout + res.stderr


def test_every_alert_is_tested_and_every_series_is_exposed() -> None:
    rules = (FLEET / "mamori-alerts.yml").read_text(encoding="utf-8")
    tests = (FLEET / "mamori-alerts.test.yml").read_text(encoding="utf-8")
    alerts = re.findall(r"- alert: (\w+)", rules)
    assert len(alerts) == 10
    for alert in alerts:
        assert f"alertname: {alert}" in tests, alert
    collector = (REPO / "metrics" / "collect.py").read_text(encoding="utf-8")
    for name in set(re.findall(r"\bmamori_\w+", rules)):
        base = name.removesuffix("_total")
        assert f'"{base}"' in collector, f"{name} is used by a rule but not exposed"
