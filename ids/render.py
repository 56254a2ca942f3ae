"""Render Suricata's configuration from the Mamori config. Pure: no file is read or written here.

Scope: a complete, self-contained suricata.yaml (Mamori never edits /etc/suricata/suricata.yaml), and the
threshold/suppression file. Capture is af-packet on `ids.interfaces` (IDS mode, not inline: blocking is the
firewall's job, so a Suricata crash never cuts the clinic off). HOME_NET is the internal zones' networks
plus the box's own static WAN address (a scan of the box is a scan of the clinic). Memory limits are sized
for a Raspberry Pi with 2 GB of RAM.
Non-goal: IPS mode (NFQUEUE); tuning beyond what a small clinic needs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from appliance.config.model import MamoriConfig
from appliance.config.references import zone_networks
from appliance.config.types import INTERNAL_ZONES

# Address groups used by ids/rules/mamori.rules. A group with no network gets an address that never
# appears on the wire (TEST-NET-1 broadcast), so the rule loads and never fires.
NEVER = "192.0.2.255/32"
PORT_GROUPS: dict[str, str] = {
    "HTTP_PORTS": "80", "SHELLCODE_PORTS": "!80", "ORACLE_PORTS": "1521", "SSH_PORTS": "22",
    "DNP3_PORTS": "20000", "MODBUS_PORTS": "502", "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
    "FTP_PORTS": "21", "GENEVE_PORTS": "6081", "VXLAN_PORTS": "4789", "TEREDO_PORTS": "3544",
}  # fmt: skip
SERVER_GROUPS: tuple[str, ...] = (
    "HTTP_SERVERS", "SMTP_SERVERS", "SQL_SERVERS", "DNS_SERVERS", "TELNET_SERVERS", "AIM_SERVERS",
    "DC_SERVERS", "DNP3_SERVER", "DNP3_CLIENT", "MODBUS_CLIENT", "MODBUS_SERVER", "ENIP_CLIENT", "ENIP_SERVER",
)  # fmt: skip


@dataclass(frozen=True)
class SuricataPaths:
    """Where Suricata's files live for one state directory (all under run_dir/suricata)."""

    base: Path

    @classmethod
    def under(cls, run_dir: Path) -> SuricataPaths:
        return cls(Path(run_dir) / "suricata")

    @property
    def yaml(self) -> Path:
        return self.base / "suricata.yaml"

    @property
    def threshold(self) -> Path:
        return self.base / "threshold.config"

    @property
    def rules(self) -> Path:
        return self.base / "rules" / "mamori-active.rules"

    @property
    def log_dir(self) -> Path:
        return self.base / "log"

    @property
    def eve(self) -> Path:
        return self.log_dir / "eve.json"

    @property
    def console_log(self) -> Path:
        """Suricata's own output, written through a descriptor the root supervisor opens: in the root-owned base
        directory, never in log/, where Suricata's account could swap it for a link to a root file."""
        return self.base / "suricata.log"

    @property
    def control_dir(self) -> Path:
        """The command socket's directory: besides the logs, the only one Suricata's account may write."""
        return self.base / "control"

    @property
    def socket(self) -> Path:
        return self.control_dir / "suricata.socket"

    @property
    def pidfile(self) -> Path:
        # Written by Suricata while still root: kept where its account cannot plant a symlink.
        return self.base / "suricata.pid"


@dataclass(frozen=True)
class RenderedIds:
    """What the IDS subsystem makes live: the YAML, the threshold file, and the rule selection."""

    enabled: bool
    yaml_text: str
    threshold_text: str
    profile: str
    enable_sids: tuple[int, ...]
    disable_sids: tuple[int, ...]
    disable_categories: tuple[str, ...]
    interfaces: tuple[str, ...]


def address_groups(cfg: MamoriConfig) -> dict[str, str]:
    """HOME_NET, EXTERNAL_NET and one group per internal zone (LAN_NET, DEVICES_NET, ...)."""
    nets = zone_networks(cfg)
    home: list[str] = []
    groups: dict[str, str] = {}
    for zone in INTERNAL_ZONES:
        zone_nets = [str(n) for n in nets.get(zone, [])]
        home.extend(zone_nets)
        groups[f"{zone.upper()}_NET"] = _group(zone_nets)
    for iface in cfg.interfaces_in("wan"):
        for addr in (iface.address, iface.address6):
            if addr and addr != "dhcp":
                ip = ipaddress.ip_interface(addr).ip
                home.append(f"{ip}/{ip.max_prefixlen}")
    groups["HOME_NET"] = _group(home)
    groups["EXTERNAL_NET"] = "!$HOME_NET" if home else "any"
    # Server groups third-party rules (ET Open) refer to: in a clinic every server is at home.
    for name in SERVER_GROUPS:
        groups[name] = "$HOME_NET"
    return groups


def _group(nets: list[str]) -> str:
    return "[" + ",".join(nets) + "]" if nets else f"[{NEVER}]"


def _eve_output(paths: SuricataPaths) -> dict:
    return {
        "eve-log": {
            "enabled": "yes",
            "filetype": "regular",
            "filename": str(paths.eve),
            "community-id": "yes",
            "types": [
                {"alert": {"tagged-packets": "no", "metadata": "yes"}},
                {"anomaly": {"enabled": "yes"}},
                {"http": {"extended": "yes"}},
                {"dns": {"enabled": "yes"}},
                {"tls": {"extended": "yes"}},
                {"flow": {}},
                {"stats": {"totals": "yes", "threads": "no", "deltas": "no"}},
            ],
        }
    }


def _capture(cfg: MamoriConfig) -> list[dict]:
    entries: list[dict] = [
        {"interface": name, "cluster-id": 90 + i, "cluster-type": "cluster_flow", "defrag": "yes",
         "use-mmap": "yes", "tpacket-v3": "yes", "ring-size": 2048, "threads": 1}
        for i, name in enumerate(cfg.ids.interfaces)
    ]  # fmt: skip
    entries.append({"interface": "default"})
    return entries


def suricata_document(cfg: MamoriConfig, paths: SuricataPaths, classification: Path, reference: Path) -> dict:
    """The suricata.yaml content as a dict (kept separate from the text so tests can inspect it)."""
    return {
        "vars": {
            "address-groups": address_groups(cfg),
            "port-groups": dict(PORT_GROUPS),
        },
        "default-log-dir": str(paths.log_dir),
        "stats": {"enabled": "yes", "interval": 60},
        "outputs": [_eve_output(paths)],
        "logging": {
            "default-log-level": "notice",
            "outputs": [{"console": {"enabled": "yes"}}],
        },
        "af-packet": _capture(cfg),
        "pcap-file": {"checksum-checks": "auto"},
        "unix-command": {"enabled": "yes", "filename": str(paths.socket)},
        "default-rule-path": str(paths.rules.parent),
        "rule-files": [paths.rules.name],
        "classification-file": str(classification),
        "reference-config-file": str(reference),
        "threshold-file": str(paths.threshold),
        "detect": {"profile": "low", "sgh-mpm-context": "auto", "inspection-recursion-limit": 3000},
        "mpm-algo": "auto",
        "spm-algo": "auto",
        "flow": {"memcap": "32mb", "hash-size": 16384, "prealloc": 2000},
        "stream": {
            "memcap": "64mb",
            "checksum-validation": "no",
            "reassembly": {"memcap": "128mb", "depth": "1mb"},
        },
        "defrag": {"memcap": "16mb"},
        "host-mode": "sniffer-only",
        "runmode": "workers",
        "max-pending-packets": 1024,
        "app-layer": {"protocols": _app_layer()},
    }


def _app_layer() -> dict:
    detect_only = {"enabled": "detection-only"}
    on = {"enabled": "yes"}
    protocols = {name: on for name in (
        "tls", "http", "ftp", "smtp", "ssh", "dns", "smb", "dcerpc", "rdp", "krb5", "ntp", "dhcp", "snmp",
        "sip", "tftp", "rfb", "mqtt", "pgsql", "telnet", "imap",
    )}  # fmt: skip
    protocols["tls"] = {"enabled": "yes", "detection-ports": {"dp": 443}}
    protocols["http"] = {"enabled": "yes", "libhtp": {"default-config": {"personality": "IDS"}}}
    protocols["dns"] = {"tcp": on, "udp": on}
    protocols["imap"] = detect_only
    for name in ("modbus", "dnp3", "enip", "http2", "ike", "nfs", "bittorrent-dht", "quic"):
        protocols[name] = {"enabled": "no"}
    return protocols


def threshold_text(cfg: MamoriConfig) -> str:
    """Suppressions (`ids.suppress`) then thresholds (`ids.thresholds`), one line each, in the config's order."""
    lines = [
        "# Rendered by Mamori from ids.suppress and ids.thresholds. Do not edit: replaced on every change."
    ]
    for s in cfg.ids.suppress:
        if s.track and s.ip:
            lines.append(f"suppress gen_id 1, sig_id {s.sid}, track {s.track}, ip {s.ip}")
        else:
            lines.append(f"suppress gen_id 1, sig_id {s.sid}")
    for t in cfg.ids.thresholds:
        lines.append(f"threshold gen_id 1, sig_id {t.sid}, type {t.type}, track {t.track}, count {t.count}, "
                     f"seconds {t.seconds}")  # fmt: skip
    return "\n".join(lines) + "\n"


def suricata_argv(
    suricata: str, paths: SuricataPaths, user: str | None = None, group: str | None = None
) -> list[str]:
    """The command line the supervisor runs: capture on af-packet, and drop to `user`/`group` once the
    capture sockets are open (no user: Suricata stays root; see ids.account)."""
    argv = [suricata, "-c", str(paths.yaml), "--af-packet", "-l", str(paths.log_dir),
            "--pidfile", str(paths.pidfile), "-k", "none"]  # fmt: skip
    if user:
        argv += ["--user", user, "--group", group or user]
    return argv


def render(cfg: MamoriConfig, run_dir: Path, classification: Path, reference: Path) -> RenderedIds:
    paths = SuricataPaths.under(run_dir)
    doc = suricata_document(cfg, paths, classification, reference)
    text = "%YAML 1.1\n---\n# Rendered by Mamori. Do not edit: it is replaced on every config change.\n"
    text += yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return RenderedIds(
        enabled=cfg.ids.enabled,
        yaml_text=text,
        threshold_text=threshold_text(cfg),
        profile=cfg.ids.profile,
        enable_sids=tuple(cfg.ids.enable_sids),
        disable_sids=tuple(cfg.ids.disable_sids),
        disable_categories=tuple(cfg.ids.disable_categories),
        interfaces=tuple(cfg.ids.interfaces),
    )
