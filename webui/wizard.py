"""Building the first config from the setup wizard's answers (pure; the view applies it via ConfigService).

Starts from the live config when there is one (a reinstalled box keeps its rules), otherwise from the
smallest valid config; the wizard only sets the clinic name, the interface-to-zone map, the VPN's listen port
(on a MAP-E line, one of the router's usable ports) and the notice address. Everything else keeps Mamori's
secure defaults.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml

from appliance.zones import ZONE_LABELS

# the zone's name (appliance.zones) and, in the wizard's list only, a hint of what is plugged in there
_HINTS = {"wan": "（光回線のルーターへ）", "lan": "（電子カルテ・受付など）", "devices": "（レントゲンなど）"}
ZONE_CHOICES: tuple[tuple[str, str], ...] = (
    ("", "使わない"),
    *((z, ZONE_LABELS[z] + _HINTS.get(z, "")) for z in ("wan", "lan", "guest", "devices", "mgmt")),
)


def build_config_text(base_text: str | None, answers: dict[str, Any]) -> str:
    data: dict[str, Any] = yaml.safe_load(base_text) if base_text else {}
    if not isinstance(data, dict):
        data = {}
    data.setdefault("schema_version", 1)
    clinic = dict(data.get("clinic") or {})
    clinic["name"] = answers.get("clinic_name", "")
    data["clinic"] = clinic
    if answers.get("interfaces"):
        data["interfaces"] = [_interface(i) for i in answers["interfaces"]]
    port = answers.get("listen_port")
    if answers.get("line") == "map-e" and port:
        vpn = dict(data.get("vpn") or {})
        vpn["listen_port"] = int(port)
        data["vpn"] = vpn
    if answers.get("line") == "map-e":  # MAP-E is an IPv6 line: the home gateway advertises the prefix
        for iface in data.get("interfaces") or []:
            if iface.get("zone") == "wan":
                iface["ipv6_auto"] = True
    email = (answers.get("notify_email") or "").strip()
    notifications = dict(data.get("notifications") or {})
    if email:
        notifications["email"] = {
            "host": (answers.get("smtp_host") or "").strip(),
            "sender": (answers.get("smtp_sender") or "").strip() or email,
            "recipients": [email],
        }
        data["notifications"] = notifications
    ordered = {"schema_version": data.pop("schema_version"), "clinic": data.pop("clinic")}
    ordered.update(data)
    return yaml.safe_dump(ordered, allow_unicode=True, sort_keys=False)


def _interface(row: dict[str, str]) -> dict[str, str]:
    out = {"name": row["name"], "zone": row["zone"]}
    address = (row.get("address") or "").strip()
    if address:
        out["address"] = address
    elif row["zone"] == "wan":
        out["address"] = "dhcp"
    gateway = (row.get("gateway") or "").strip()
    if gateway and row["zone"] == "wan":
        out["gateway"] = gateway
    return out


# -- the clinic's line (issue 17.3): which UDP port doctors' VPN packets can come in on -------------------------

LINE_CHOICES: tuple[tuple[str, str], ...] = (
    ("forward", "ひかり電話ルーターなどで、ポート番号を決めて本機へ転送できる（PPPoE など）"),
    ("map-e", "v6プラス・OCN バーチャルコネクトなど（MAP-E）：使えるポート番号が決まっている"),
    ("unknown", "わからない"),
)
LINE_LABELS = dict(LINE_CHOICES)
MAX_RANGES = 64
_RANGE = re.compile(r"^([0-9]{1,5})(?:\s*[-~〜]\s*([0-9]{1,5}))?$")


def parse_port_ranges(text: str) -> list[tuple[int, int]]:
    """「40960-40975, 45056-45071」as the router shows MAP-E ports -> [(40960, 40975), ...]. Full-width digits and
    「〜」 are accepted (NFKC); ports below 1024 are never a VPN port. Raises ValueError with a Japanese message."""
    text = re.sub(r"\s*([-~〜])\s*", r"\1", unicodedata.normalize("NFKC", text[:4000]))
    parts = [p for p in re.split(r"[,、\s]+", text.strip()) if p]
    if not parts:
        raise ValueError("使えるポート番号の範囲を入力してください（例: 40960-40975, 45056-45071）。")
    if len(parts) > MAX_RANGES:
        raise ValueError(f"ポートの範囲は{MAX_RANGES}個までにしてください。")
    out = []
    for part in parts:
        m = _RANGE.match(part.strip())
        if m is None:
            raise ValueError(f"「{part[:20]}」はポートの範囲として読めません（例: 40960-40975）。")
        low, high = int(m.group(1)), int(m.group(2) or m.group(1))
        if low > high:
            low, high = high, low
        if low < 1024 or high > 65535:
            raise ValueError(f"「{part[:20]}」は使えません。ポートは 1024〜65535 の範囲です。")
        out.append((low, high))
    return sorted(out)


def suggest_port(ranges: list[tuple[int, int]]) -> int:
    """A port to use: the first of the first range (any port inside works; this one is easy to read out)."""
    return ranges[0][0]


def check_line(line: str, ranges_text: str, port_text: str, current: int) -> dict[str, Any]:
    """The answers of the line step, checked: {"line", "ranges", "listen_port"}. Raises ValueError (Japanese).
    Only MAP-E changes the port; the others keep `current` (forwarding works with any port)."""
    if line not in LINE_LABELS:
        raise ValueError("回線の種類を選んでください。")
    if line != "map-e":
        return {"line": line, "ranges": "", "listen_port": current}
    ranges = parse_port_ranges(ranges_text)
    shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)
    port_text = unicodedata.normalize("NFKC", port_text).strip()
    if not port_text:
        port = current if any(a <= current <= b for a, b in ranges) else suggest_port(ranges)
        return {"line": line, "ranges": shown, "listen_port": port}
    if not re.fullmatch(r"[0-9]{1,5}", port_text):
        raise ValueError("VPN のポートは数字で入力してください。")
    port = int(port_text)
    if not any(a <= port <= b for a, b in ranges):
        raise ValueError(
            f"{port}番は使えるポート番号の範囲に入っていません。たとえば {suggest_port(ranges)}番にしてください。"
        )
    return {"line": line, "ranges": shown, "listen_port": port}
