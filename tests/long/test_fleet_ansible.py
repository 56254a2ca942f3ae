"""Config as code with real Ansible (issue 15): the vendor's controller in the hub namespace runs
`ansible-playbook` (ansible-core from PyPI) with the mamori.clinic collection, built and installed from
fleet/ansible/ by `ansible-galaxy` as a vendor would, against 3 clinic boxes of lab/fleet.py (real daemons,
each behind a NAT router, reached only over its management link). Tokens sit in ansible-vault files.

Each clinic's administrator has made a vendor account (grants 設定, ファイアウォール, ネットワーク), an API token
(`mamori fleet token create`) and switched on fleet.allow_changes. Checks, in order, on one fleet:
the first run changes all 3 (a new revision each, by the vendor, confirmed); a second run changes none;
check mode with --diff shows the diff and changes none; a bad value for one box fails that box alone, with the
box's Japanese and English reason, and it keeps its revision while the other two apply; a change that cuts a
box's link (its wan gateway) is refused unless forced, and forced it cuts the link: the play does not
confirm, the box rolls back by itself, the play fails saying so, and the link answers again with the old
revision live.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.box import EXAMPLE_CONFIG
from lab.fleet import Clinic, Fleet
from lab.fleet_ansible import BIN, COLLECTION, VENDOR, Controller
from tests.integration.test_firewall_helpers import tcp_ok, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),  # the module's fleet is built in the first test's setup (3 boxes, ~1-3 min)
    pytest.mark.skipif(
        shutil.which("prometheus-alertmanager") is None, reason="run make setup (alertmanager)"
    ),
]


def _example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(f"fa{os.getpid()}", tmp_path_factory.mktemp("fleet"), count=3, ids_boxes=frozenset())
    with fleet:
        for clinic in fleet.clinics:
            ok = wait_until(lambda c=clinic: tcp_ok(fleet.core, fleet.hub.key, c.link, 443), timeout=60)
            assert ok is not None, f"{clinic.clinic_id}: the web UI does not answer over the link"
        yield fleet
    left = [n for n in os.listdir("/run/netns") if n.startswith(fleet.prefix)]
    assert left == [], f"namespaces left behind: {left}"


@pytest.fixture(scope="module")
def controller(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Controller:
    ctl = Controller(fleet, tmp_path_factory.mktemp("controller")).setup()
    inv = ctl.inventory({})
    assert all(p.read_text().startswith("$ANSIBLE_VAULT") for p in inv.glob("host_vars/*/vault.yml"))
    return ctl


def history(clinic: Clinic) -> list[list[str]]:
    """`mamori config history` rows as [id, date, time, status, source, author, ...], newest first."""
    return [line.split() for line in clinic.box.mamori("config", "history").stdout.splitlines()]


def live_revision(clinic: Clinic) -> int:
    return next(int(r[0]) for r in history(clinic) if r[3] in ("applied", "pending"))


def firewall_with(*comments: str) -> dict:
    fw = copy.deepcopy(_example()["firewall"])
    for comment in comments:
        fw["rules"].append({"src": "受付PC", "dst": "PACS", "service": "DICOM", "comment": comment})
    return {"firewall": fw}


def api(controller: Controller, clinic: Clinic, path: str) -> dict:
    token = controller.secrets[clinic.clinic_id][0]
    res = controller.fleet.core.run(controller.fleet.hub.key, ["curl", "-sk", "--max-time", "10", "-H",
                                    f"Authorization: Bearer {token}", f"https://{clinic.link}/api/v1{path}"],
                                    check=False)  # fmt: skip
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout else {}


def test_first_run_changes_every_box_and_a_second_run_none(fleet: Fleet, controller: Controller) -> None:
    before = {c.clinic_id: live_revision(c) for c in fleet.clinics}
    inv = controller.inventory(firewall_with("ansible: DICOM 受付→PACS"))
    recap, out = controller.play(inv)
    assert recap == dict.fromkeys(before, (1, 0)), out
    for clinic in fleet.clinics:
        newest = history(clinic)[0]
        assert int(newest[0]) > before[clinic.clinic_id] and newest[3:6] == ["applied", "fleet", VENDOR], (
            newest
        )
        rules = yaml.safe_load(clinic.box.config.read_text(encoding="utf-8"))["firewall"]["rules"]
        assert any(r.get("comment") == "ansible: DICOM 受付→PACS" for r in rules)
        audit = clinic.box.mamori("audit", "list", "--search", "config.confirm").stdout
        assert VENDOR in audit
    applied = {c.clinic_id: live_revision(c) for c in fleet.clinics}

    recap, out = controller.play(inv)
    assert recap == dict.fromkeys(applied, (0, 0)), out
    assert {c.clinic_id: live_revision(c) for c in fleet.clinics} == applied


def test_check_mode_shows_the_diff_and_changes_nothing(fleet: Fleet, controller: Controller) -> None:
    before = {c.clinic_id: live_revision(c) for c in fleet.clinics}
    inv = controller.inventory(firewall_with("ansible: DICOM 受付→PACS", "check mode only"))
    recap, out = controller.play(inv, "--check", "--diff")
    assert recap == dict.fromkeys(before, (1, 0)), out
    assert out.count("check mode only") >= len(before), out  # the YAML diff of each box
    assert {c.clinic_id: live_revision(c) for c in fleet.clinics} == before


def test_a_bad_value_fails_one_box_alone(fleet: Fleet, controller: Controller) -> None:
    before = {c.clinic_id: live_revision(c) for c in fleet.clinics}
    bad = firewall_with("ansible: DICOM 受付→PACS", "second change")
    bad["firewall"]["rules"].append({"src": "存在しない端末", "dst": "PACS", "service": "DICOM"})
    inv = controller.inventory(firewall_with("ansible: DICOM 受付→PACS", "second change"), {"c02": bad},
                               mamori_serial=3)  # fmt: skip
    recap, out = controller.play(inv)
    assert recap == {"c01": (1, 0), "c02": (0, 1), "c03": (1, 0)}, out
    assert "存在しない端末" in out and "設定に誤りがあります" in out and "The configuration is invalid" in out
    after = {c.clinic_id: live_revision(c) for c in fleet.clinics}
    assert after["c02"] == before["c02"]
    assert after["c01"] > before["c01"] and after["c03"] > before["c03"]


def test_a_change_that_cuts_the_link_rolls_back_by_itself(fleet: Fleet, controller: Controller) -> None:
    clinic = fleet.clinics[2]
    before = live_revision(clinic)
    cut = firewall_with("ansible: DICOM 受付→PACS", "second change")
    cut["interfaces"] = _example()["interfaces"]
    cut["interfaces"][0]["gateway"] = "203.0.113.99"  # wan: the way to the hub leads nowhere
    inv = controller.inventory(firewall_with("ansible: DICOM 受付→PACS", "second change"), {"c03": cut},
                               mamori_confirm_within=30)  # fmt: skip
    # unforced: the box refuses it, nothing changes
    recap, out = controller.play(inv, "--limit", "c03")
    assert recap == {"c03": (0, 1)}, out
    assert "管理接続を切るおそれ" in out and "force_link_cut" in out
    assert live_revision(clinic) == before

    inv = controller.inventory(firewall_with("ansible: DICOM 受付→PACS", "second change"), {"c03": cut},
                               mamori_confirm_within=30, mamori_force_link_cut=True)  # fmt: skip
    t0 = time.monotonic()
    recap, out = controller.play(inv, "--limit", "c03", "-e", "mamori_timeout=10")
    took = time.monotonic() - t0
    assert recap == {"c03": (0, 1)}, out  # Ansible counts a failed task as failed only
    assert "rolled it back by itself" in out and "自動で元に戻しました" in out, out
    assert took >= 30, took  # it waited for the box's deadline, it did not confirm
    rows = history(clinic)
    assert rows[0][3] == "reverted" and rows[0][5] == VENDOR, rows[:3]
    assert live_revision(clinic) == before
    # and the link answers again, with the old revision live
    assert wait_until(lambda: bool(api(controller, clinic, "/config")), timeout=60, step=1) is not None
    answer = api(controller, clinic, "/config")["revision"]
    assert answer["id"] == before and answer["status"] == "applied"


@pytest.mark.skipif(
    not (BIN / "ansible-lint").exists(), reason="ansible-lint is not installed (pip install -e .[dev])"
)
def test_the_collection_is_lint_clean(tmp_path: Path) -> None:
    """ansible-lint (production profile) on the collection as a vendor installs it (ansible-galaxy build and
    install), so that the example playbook resolves mamori.clinic.config. Offline: no Galaxy download."""
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home"), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "c"),
           "NO_COLOR": "1"}  # fmt: skip
    galaxy = str(BIN / "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", str(COLLECTION), "--output-path", str(tmp_path)], check=True,
                   capture_output=True, env=env, timeout=120)  # fmt: skip
    subprocess.run([galaxy, "collection", "install", str(tmp_path / "mamori-clinic-1.0.0.tar.gz"), "-p",
                    str(tmp_path / "c")], check=True, capture_output=True, env=env, timeout=120)  # fmt: skip
    installed = tmp_path / "c" / "ansible_collections" / "mamori" / "clinic"
    res = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production"], cwd=installed,
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 failure(s), 0 warning(s)" in res.stdout + res.stderr
