"""The IDS as a subsystem of the all-or-nothing apply: render → `suricata -T` → files live → reload.

render: pure (ids.render). check: the rule set is built from the installed sources and the whole thing is
tested with `suricata -T` in a staging directory; nothing live changes. apply: the files are written
atomically; when Suricata runs and only rules or thresholds changed, they go live with `reload-rules`
on its unix socket (capture is not restarted); when the YAML changed, the supervisor in the daemon sees
the new file and restarts Suricata. If the reload fails, the previous files are put back and reloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError, MamoriError
from appliance.fileio import atomic_write
from appliance.subsystem import Context, Subsystem
from ids import suricatasc
from ids.engine import CLASSIFICATION, REFERENCE, build_rules, check_in_staging, materialise
from ids.render import RenderedIds, SuricataPaths, render

log = logging.getLogger(__name__)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def sha(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


def state_file(live: SuricataPaths) -> Path:
    """What the supervisor reads: whether Suricata should run at all."""
    return live.base / "state.json"


def socket_alive(live: SuricataPaths) -> bool:
    if not live.socket.exists():
        return False
    try:
        suricatasc.command(live.socket, "uptime", timeout=5)
    except MamoriError:
        return False
    return True


def reload_rules(live: SuricataPaths) -> None:
    """Live reload; afterwards Suricata must report no failed rule."""
    suricatasc.command(live.socket, "reload-rules", timeout=600)
    stats = suricatasc.command(live.socket, "ruleset-stats", timeout=30)
    failed = sum(int(s.get("rules_failed", 0)) for s in stats) if isinstance(stats, list) else 0
    if failed:
        raise ApplyError(
            f"Suricata がルールの一部（{failed}件）を読み込めませんでした",
            f"Suricata failed to load {failed} rule(s) on reload",
            code="ids.reload_failed",
        )


class IdsSubsystem(Subsystem):
    name = "ids"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.live = SuricataPaths.under(ctx.paths.run_dir)
        self._built: dict[RenderedIds, str] = {}

    def render(self, cfg: MamoriConfig) -> RenderedIds:
        return render(cfg, self.ctx.paths.run_dir, CLASSIFICATION, REFERENCE)

    def _rules_text(self, rendered: RenderedIds) -> str:
        if rendered not in self._built:
            self._built = {rendered: build_rules(self.ctx.paths, rendered).text}
        return self._built[rendered]

    def check(self, rendered: RenderedIds) -> None:
        if not rendered.enabled:
            return
        rules_text = self._rules_text(rendered)
        live = (_read(self.live.yaml), _read(self.live.threshold), _read(self.live.rules))
        if live == (rendered.yaml_text, rendered.threshold_text, rules_text):
            return  # exactly what is live already (a change in another area): no need to wait for -T
        check_in_staging(self.ctx.paths, rendered, rules_text)

    def apply(self, rendered: RenderedIds) -> None:
        rules_text = self._rules_text(rendered) if rendered.enabled else (_read(self.live.rules) or "")
        old = {p: _read(p) for p in (self.live.yaml, self.live.threshold, self.live.rules)}
        yaml_changed = old[self.live.yaml] != rendered.yaml_text
        materialise(self.live, self.live, rendered, rules_text)
        atomic_write(state_file(self.live), json.dumps({"enabled": rendered.enabled}))
        if not rendered.enabled or yaml_changed or not socket_alive(self.live):
            return  # the supervisor (re)starts or stops Suricata with the new files
        if old[self.live.rules] == rules_text and old[self.live.threshold] == rendered.threshold_text:
            return
        try:
            reload_rules(self.live)
        except MamoriError as exc:
            log.error("rule reload failed, restoring the previous rules: %s", exc.text("en"))
            for path, text in old.items():
                if text is not None:
                    atomic_write(path, text)
            try:
                reload_rules(self.live)
            except MamoriError:
                log.exception("reloading the previous rules failed too")
            raise ApplyError(
                f"新しいルールを反映できなかったため、元のルールに戻しました（{exc.text('ja')}）",
                f"the new rules could not be loaded; the previous rules were restored ({exc.text('en')})",
                code="ids.reload_failed",
            ) from exc

    def verify(self, rendered: RenderedIds) -> None:
        if (
            _read(self.live.yaml) != rendered.yaml_text
            or _read(self.live.threshold) != rendered.threshold_text
        ):
            raise ApplyError(
                "Suricata の設定ファイルが書き込んだ内容と違います",
                "Suricata's files on disk differ from what was written",
                code="ids.verify",
            )


def subsystems(ctx: Context) -> list[Subsystem]:
    return [IdsSubsystem(ctx)]
