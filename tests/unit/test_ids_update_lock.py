"""A rule update is a change to the running system like a config apply: it takes the same apply lock, so
the two never interleave, and it tests and installs the rules with the config that is live once it holds
the lock (not the one its caller read before waiting). Real lock, real `suricata -T` on a one-rule source."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from appliance.apply import apply_lock
from appliance.config.load import load_config
from appliance.revisions import RevisionStore
from appliance.subsystem import Context
from ids import sources
from ids.render import SuricataPaths
from ids.updates import UpdateResult, update_rules

REPO = Path(__file__).resolve().parents[2]
POLICY_RULE = 'alert tcp any any -> any 1 (msg:"policy"; classtype:policy-violation; sid:2000001; rev:1;)\n'

pytestmark = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")


def clinic_text(profile: str) -> str:
    text = (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8")
    assert "  profile: clinic " in text
    return text.replace("  profile: clinic ", f"  profile: {profile} ", 1)


def test_rule_update_waits_for_a_config_apply_and_uses_the_config_it_made_live(ctx: Context, tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "emerging-policy.rules").write_text(POLICY_RULE)  # in the "full" profile only
    caller_cfg = load_config(REPO / "examples" / "clinic.yaml").model  # what the page read: profile clinic
    outcome: dict[str, UpdateResult | BaseException] = {}

    def update() -> None:
        try:
            outcome["result"] = update_rules(ctx, caller_cfg, src=src, actor="test")
        except BaseException as exc:  # reported to the main thread, asserted there
            outcome["result"] = exc

    updater = threading.Thread(target=update)
    with apply_lock(ctx.paths):  # what ConfigService.apply holds while it applies
        updater.start()
        updater.join(1.5)
        assert updater.is_alive(), "the rule update did not wait for the apply in progress"
        assert current_source_or_none(ctx) is None  # nothing staged, swapped or made live meanwhile
        assert not SuricataPaths.under(ctx.paths.run_dir).rules.exists()
        with ctx.db.transaction() as conn:  # the apply records its revision: profile full
            RevisionStore(ctx.db).add(conn, clinic_text("full"), "admin", "cli", "", "", "applied")
    updater.join(60)
    assert not updater.is_alive()
    result = outcome["result"]
    assert isinstance(result, UpdateResult), result
    live_rules = SuricataPaths.under(ctx.paths.run_dir).rules.read_text()
    line = next(x for x in live_rules.splitlines() if "sid:2000001;" in x)
    assert line.startswith("alert "), line  # enabled: the profile of the revision, not the caller's "clinic"


def current_source_or_none(ctx: Context) -> Path | None:
    found = sources.current_source(ctx.paths)
    return found if found is not None and found.exists() else None
