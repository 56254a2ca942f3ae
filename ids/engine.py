"""Putting a rendered configuration and a rule set on disk, and asking Suricata whether it accepts them.

`materialise` writes the three files Suricata reads (suricata.yaml, threshold.config, the rule file) into
a base directory: a staging directory for `suricata -T`, or the live one. `test_config` runs `suricata -T`
and turns its refusal into an ApplyError that says why (the first error lines), in both languages.

`suricata -T` parses every rule, and rules come from outside (a downloaded or uploaded rule set), so it runs
as the IDS account (ids.account), like the running Suricata, which parses its rules after dropping root:
the staging tree is opened read-only to the account and only its log directories are its own.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from appliance.errors import ApplyError
from appliance.fileio import atomic_write
from appliance.paths import Paths
from ids.account import IdsAccount, lookup, open_tree_read_only
from ids.render import RenderedIds, SuricataPaths
from ids.rules import BuiltRules, Selection, build, load_source
from ids.sources import current_source

log = logging.getLogger(__name__)

SURICATA = shutil.which("suricata") or "/usr/bin/suricata"
CLASSIFICATION = Path("/etc/suricata/classification.config")
REFERENCE = Path("/etc/suricata/reference.config")


def selection_of(rendered: RenderedIds) -> Selection:
    return Selection(
        rendered.profile, rendered.enable_sids, rendered.disable_sids, rendered.disable_categories
    )


def build_rules(paths: Paths, rendered: RenderedIds, source_dir: Path | None = None) -> BuiltRules:
    """Mamori's rules plus the installed (or given) third-party source, selected by the config."""
    src = source_dir if source_dir is not None else current_source(paths)
    return build(load_source(src), selection_of(rendered))


def materialise(live: SuricataPaths, target: SuricataPaths, rendered: RenderedIds, rules_text: str) -> None:
    """Write the files for `target`, rewriting the live paths inside the YAML to the target's."""
    yaml_text = rendered.yaml_text.replace(str(live.base), str(target.base))
    target.rules.parent.mkdir(parents=True, exist_ok=True)
    target.log_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(target.threshold, rendered.threshold_text)
    atomic_write(target.rules, rules_text)
    atomic_write(target.yaml, yaml_text)


def _why(output: str) -> str:
    errors = [line[3:].strip() for line in output.splitlines() if line.startswith("E:")]
    return " / ".join(errors[:3])[:1000] or output.strip()[-500:]


def test_config(yaml_path: Path, timeout: float = 300, account: IdsAccount | None = None) -> float:
    """`suricata -T` on a materialised config, as `account` when given (its files must be readable to it:
    `check_in_staging` sees to that). Returns seconds taken; raises ApplyError saying why."""
    import time

    started = time.monotonic()
    as_account: dict = {}
    if account is not None:
        as_account = {"user": account.uid, "group": account.gid, "extra_groups": []}
    with tempfile.TemporaryDirectory(prefix="mamori-suri-T-") as logdir:
        if account is not None:
            os.chown(logdir, account.uid, account.gid)
        try:
            proc = subprocess.run(
                [SURICATA, "-T", "-c", str(yaml_path), "-l", logdir], capture_output=True, text=True,
                timeout=timeout, check=False, **as_account,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ApplyError(
                f"Suricata の設定確認を実行できません（{exc}）", f"suricata -T could not run ({exc})"
            ) from exc
    if proc.returncode != 0:
        why = _why(proc.stderr + proc.stdout)
        raise ApplyError(
            f"Suricata が新しい設定またはルールを受け付けません。動作中の設定はそのままです。理由: {why}",
            f"Suricata refused the new config or rules; the running one is kept. Reason: {why}",
            code="ids.test_failed",
        )
    return time.monotonic() - started


def check_in_staging(paths: Paths, rendered: RenderedIds, rules_text: str) -> float:
    """Materialise into a temporary directory and run `suricata -T` there, as the IDS account when it
    exists (root on a developer machine without it, as the running Suricata). Changes nothing live."""
    live = SuricataPaths.under(paths.run_dir)
    account = lookup()
    with tempfile.TemporaryDirectory(prefix="mamori-ids-check-") as tmp:
        staging = SuricataPaths(Path(tmp) / "suricata")
        materialise(live, staging, rendered, rules_text)
        if account is not None:
            open_tree_read_only(Path(tmp), account)
            os.chown(staging.log_dir, account.uid, account.gid)  # -T opens its outputs (eve.json) there
        return test_config(staging.yaml, account=account)
