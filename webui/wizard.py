"""Building the first config from the setup wizard's answers (pure; the view applies it via ConfigService).

Starts from the live config when there is one (a reinstalled box keeps its rules), otherwise from the
smallest valid config; the wizard only sets the clinic name, the interface-to-zone map and the notice
address. Everything else keeps Mamori's secure defaults.
"""

from __future__ import annotations

from typing import Any

import yaml

ZONE_CHOICES: tuple[tuple[str, str], ...] = (
    ("", "使わない"),
    ("wan", "インターネット側（光回線のルーターへ）"),
    ("lan", "院内（電子カルテ・受付など）"),
    ("guest", "患者さん用Wi-Fi"),
    ("devices", "医療機器（レントゲンなど）"),
    ("mgmt", "管理用"),
)
ZONE_LABELS = dict(ZONE_CHOICES)


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
