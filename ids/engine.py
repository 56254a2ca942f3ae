"""Putting a rendered configuration and a rule set on disk, and asking Suricata whether it accepts them.

`materialise` writes the three files Suricata reads (suricata.yaml, threshold.config, the rule file) into
a base directory: a staging directory for `suricata -T`, or the live one. `test_config` runs `suricata -T`
and turns its refusal into an ApplyError that says why (the first error lines), in both languages.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from appliance.errors import ApplyError
from appliance.fileio import atomic_write
from appliance.paths import Paths
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


def test_config(yaml_path: Path, timeout: float = 300) -> float:
    """`suricata -T` on a materialised config. Returns seconds taken; raises ApplyError saying why."""
    import time

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mamori-suri-T-") as logdir:
        try:
            proc = subprocess.run(
                [SURICATA, "-T", "-c", str(yaml_path), "-l", logdir], capture_output=True, text=True,
                timeout=timeout, check=False,
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
    """Materialise into a temporary directory and run `suricata -T` there. Changes nothing live."""
    live = SuricataPaths.under(paths.run_dir)
    with tempfile.TemporaryDirectory(prefix="mamori-ids-check-") as tmp:
        staging = SuricataPaths(Path(tmp) / "suricata")
        materialise(live, staging, rendered, rules_text)
        return test_config(staging.yaml)
