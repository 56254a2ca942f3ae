"""The box's own clock, as chronyd sees it: synchronised or not, offset, stratum, upstream.

Read with `chronyc -n -c` (CSV, no DNS look-ups) through chronyd's unix socket under the run directory;
there is no network command port. Used by `mamori time status`, the web UI and the monthly report.
Parsing is strict: a line that does not have the fields chrony 4 prints is counted, logged and left out,
never guessed at.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from appliance.subsystem import Context
from timesvc.render import conf_path, socket_path

log = logging.getLogger(__name__)

TRACKING_FIELDS = 14
SOURCE_FIELDS = 10
NOT_SYNCED = "Not synchronised"


@dataclass(frozen=True)
class Source:
    name: str
    state: (
        str  # chrony's mark: * selected, + combined, - not combined, ? unreachable, x falseticker, ~ variable
    )
    stratum: int
    reach: int  # the last 8 polls as bits (octal in chronyc's output)

    @property
    def selected(self) -> bool:
        return self.state == "*"


@dataclass(frozen=True)
class ClockState:
    """`offset_s` > 0: the box's clock is ahead of true time. `upstream`: the source the box follows."""

    enabled: bool
    running: bool
    synchronised: bool = False
    stratum: int | None = None
    offset_s: float | None = None
    upstream: str = ""
    leap: str = ""
    sources: list[Source] = field(default_factory=list)
    problem: str = ""  # why the state is unknown (English, for logs); empty when it was read

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ClockState:
        """The state from its dataclasses.asdict form (the action `time.status`, timesvc.web_actions)."""
        return cls(**{**raw, "sources": [Source(**s) for s in raw.get("sources", [])]})

    def summary_ja(self) -> str:
        if not self.enabled:
            return "時刻配信（NTP）は設定で無効です"
        if not self.running:
            return "時刻サーバー（chronyd）が動いていません"
        if not self.synchronised:
            return "本機の時計はまだ上位の時刻サーバーと同期していません"
        return (
            f"同期済み（{self.upstream}、ずれ {format_offset_ja(self.offset_s or 0.0)}、階層 {self.stratum}）"
        )


def format_offset_ja(offset_s: float) -> str:
    ms = abs(offset_s) * 1000
    amount = f"{ms:.3f} ミリ秒" if ms < 1000 else f"{ms / 1000:.3f} 秒"
    return f"{amount}{'進み' if offset_s > 0 else '遅れ'}" if ms >= 0.0005 else "0 ミリ秒"


@dataclass(frozen=True)
class Tracking:
    ref_id: str
    ref_name: str
    stratum: int
    offset_s: float
    leap: str


def parse_tracking(text: str) -> Tracking | None:
    """The one CSV line of `chronyc -c tracking`, or None if it is not one."""
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) != TRACKING_FIELDS:
            log.warning("ntp: unexpected tracking line kept aside (%d fields): %.200r", len(parts), line)
            continue
        try:
            # chronyc's "System time" is the correction (negative when the clock is fast): flip it.
            return Tracking(parts[0], parts[1][:253], int(parts[2]), -float(parts[4]), parts[13][:40])
        except ValueError:
            log.warning("ntp: malformed tracking line kept aside: %.200r", line)
    return None


def parse_sources(text: str) -> tuple[list[Source], int]:
    """`chronyc -c sources` lines; returns the sources and how many lines were malformed."""
    sources: list[Source] = []
    bad = 0
    for line in text.splitlines():
        parts = line.split(",")
        try:
            if len(parts) != SOURCE_FIELDS:
                raise ValueError(f"{len(parts)} fields")
            sources.append(Source(parts[2][:253], parts[1][:1], int(parts[3]), int(parts[5], 8)))
        except ValueError as exc:
            bad += 1
            log.warning("ntp: malformed sources line kept aside (%s): %.200r", exc, line)
    return sources, bad


def _chronyc(ctx: Context, command: str, timeout: float) -> str:
    argv = ["chronyc", "-n", "-c", "-h", str(socket_path(ctx.paths)), command]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise OSError(f"chronyc {command}: {(res.stderr or res.stdout).strip()[:300]}")
    return res.stdout


def clock_state(ctx: Context, timeout: float = 5.0) -> ClockState:
    """The clock's state now; never raises for a stopped or missing chronyd (that is a state, not an error)."""
    if not conf_path(ctx.paths).exists():
        return ClockState(enabled=False, running=False, problem="ntp disabled (no chrony.conf)")
    if shutil.which("chronyc") is None:
        return ClockState(enabled=True, running=False, problem="chrony is not installed")
    if not socket_path(ctx.paths).exists():
        return ClockState(enabled=True, running=False, problem="chronyd is not running (no command socket)")
    try:
        tracking = parse_tracking(_chronyc(ctx, "tracking", timeout))
        sources, _bad = parse_sources(_chronyc(ctx, "sources", timeout))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ClockState(enabled=True, running=False, problem=str(exc))
    if tracking is None:
        return ClockState(
            enabled=True, running=True, sources=sources, problem="tracking output not understood"
        )
    t = tracking
    synced = t.leap != NOT_SYNCED and 0 < t.stratum < 16 and t.ref_id.strip("0") != ""
    selected = next((s.name for s in sources if s.selected), "")
    return ClockState(enabled=True, running=True, synchronised=synced, stratum=t.stratum if synced else None,
                      offset_s=t.offset_s if synced else None, upstream=selected or (t.ref_name if synced else ""),
                      leap=t.leap, sources=sources)  # fmt: skip
