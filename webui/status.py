"""The dashboard's one traffic light: 正常 / 注意 / 要対応, with the reason in one plain sentence.

Rules, in order: a broken audit chain or an open high-severity incident -> 要対応; a change waiting for
confirmation, an open medium/low incident, a device seen for the first time this week, or the IDS not
available -> 注意; otherwise 正常.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Light:
    level: str  # "ok" | "warn" | "alert"
    label: str
    reason: str
    action: str


def traffic_light(
    open_by_severity: dict[int, int] | None, audit_ok: bool, pending_change: bool, new_devices: int = 0
) -> Light:
    if not audit_ok:
        return Light("alert", "要対応", "操作の記録（監査ログ）に書き換えの跡があります。",
                     "保守業者にすぐ連絡してください。")  # fmt: skip
    high = (open_by_severity or {}).get(1, 0)
    if high:
        return Light("alert", "要対応", f"危険度の高い不審な通信が {high} 件あり、まだ対応が終わっていません。",
                     "「アラート」を開き、表示された対処をしてください。分からなければ保守業者に連絡してください。")  # fmt: skip
    if pending_change:
        return Light("warn", "注意", "設定の変更が確定を待っています。確定しないと自動で元に戻ります。",
                     "「設定」を開いて、問題がなければ「確定」を押してください。")  # fmt: skip
    other = sum(n for sev, n in (open_by_severity or {}).items() if sev != 1)
    if other:
        return Light("warn", "注意", f"確認が必要な通信の記録が {other} 件あります。",
                     "時間のあるときに「アラート」を確認してください。")  # fmt: skip
    if new_devices:
        return Light("warn", "注意", f"この7日間に、初めて見る機器が {new_devices} 台つながりました。",
                     "「機器一覧」で、心当たりのある機器か確認してください。")  # fmt: skip
    if open_by_severity is None:
        return Light("warn", "注意", "侵入検知の機能がまだ動いていないため、不審な通信を見張れていません。",
                     "保守業者に連絡してください。")  # fmt: skip
    return Light(
        "ok",
        "正常",
        "不審な通信は見つかっていません。ネットワークは通常どおりです。",
        "特に操作は必要ありません。",
    )


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Software versions, read once per server process (they change only with an update)."""
    result = {"Mamori": _dist_version("mamori")}
    try:
        out = subprocess.run(
            ["suricata", "-V"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
        found = re.search(r"version (\S+)", out)
        result["Suricata（侵入検知）"] = found.group(1) if found else "不明"
    except (OSError, subprocess.TimeoutExpired):
        result["Suricata（侵入検知）"] = "見つかりません"
    return result


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "開発版"
