"""A vendor's fleet in the lab (issue 14.7): one hub watching N clinics, every part real.

    [hub 198.51.100.77, wg 10.77.0.1] ── [internet switch] ─┬─ router c01 (NAT, nothing in) ─ [box c01] ─ lan/guest/devices
     prometheus, alertmanager,                              ├─ router c02 ─ [box c02] ─ ...
     webhook receiver, rsyslog (TLS)                        └─ ... (N clinics)

Each clinic is a Lab of its own (own prefix, own namespaces, own WireGuard names) whose router plugs into
the hub Lab's internet switch (`Internet`) and masquerades the clinic (`nat_clinic`), so the hub can never
open a connection to a box: the box dials the hub over its management link. Each box is the real `mamori`
daemon, enrolled the way a clinic does it (the vendor's code, `mamori mgmt enrol`), then given a metrics
listener on its link address and syslog to the hub's rsyslog through the link (siem.via: mgmt, RFC 5425 with
a test CA; the collector is lab/syslog_collector.py); the hub adds its key as a peer and lists it for
Prometheus (file_sd).
Suricata runs only on the boxes in `ids_boxes` (two cores). Every process is started with `Lab.spawn` and
stopped by PID by `down()`; the clinics are built and started a few at a time, in threads.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from appliance.revisions import RevisionStore
from appliance.storage import Database
from lab.box import EXAMPLE_CONFIG, Box, make_box
from lab.fleet_hub import HubEngines, write_targets
from lab.running import BuiltWhole
from lab.syslog_collector import Pki, SyslogCollector, make_pki
from lab.topology import HOSTS, Hub, Internet, Lab

log = logging.getLogger(__name__)

HUB_ADDRESS = "198.51.100.77/24"
HUB_NETWORK = "10.77.0.0/16"
HUB_TUNNEL = "10.77.0.1"
METRICS_PORT = 9469
SIEM_PEER = "hub.fleet.lab"  # the name in the hub collector's certificate, checked by each box
CLINIC_HOSTS = tuple(h for h in HOSTS if h.switch != "inet")  # a fleet clinic's internet is the hub's segment
CLINIC_NAMES = ("さくら内科", "みどり歯科", "あおば整形外科", "ひかり眼科", "つばさ小児科", "こもれび皮膚科",
                "やまびこ耳鼻科", "なごみ心療内科", "はるかぜ産婦人科", "いずみ泌尿器科")  # fmt: skip
BUILD_THREADS = 4  # a clinic build is mostly waiting for `ip`; more threads only queue on two cores
T = TypeVar("T")


@dataclass
class Clinic:
    """One clinic of the fleet: its Lab (router, box, hosts), its box and what the hub knows of it."""

    index: int
    lab: Lab
    box: Box
    ids: bool
    public_key: str = ""

    @property
    def clinic_id(self) -> str:
        return f"c{self.index + 1:02d}"

    @property
    def name(self) -> str:
        base = CLINIC_NAMES[self.index % len(CLINIC_NAMES)]
        return base if self.index < len(CLINIC_NAMES) else f"{base} {self.index + 1}"

    @property
    def link(self) -> str:
        """The box's address on the management link (10.77.0.11, .12, ...)."""
        return f"10.77.{(self.index + 11) // 256}.{(self.index + 11) % 256}"

    @property
    def target(self) -> str:
        return f"{self.link}:{METRICS_PORT}"

    @property
    def box_id(self) -> str:
        """The id the box puts in every syslog message (siem.box_id)."""
        return f"clinic-{self.index + 1:03d}"


@dataclass
class Fleet(BuiltWhole):
    prefix: str  # unique on the machine; every namespace and WireGuard name is made from it
    work: Path  # state of the boxes and the hub's engines
    count: int = 10
    ids_boxes: frozenset[int] = frozenset({0})
    core: Lab | None = None
    hub: Hub | None = None
    engines: HubEngines | None = None
    syslog: SyslogCollector | None = None  # the hub's rsyslog (TLS), fed by every box through its link
    pki: Pki | None = None
    clinics: list[Clinic] = field(default_factory=list)
    _hub_lock: threading.Lock = field(default_factory=threading.Lock)
    _labs_lock: threading.Lock = field(default_factory=threading.Lock)
    _labs: list[Lab] = field(default_factory=list)

    def _build(self) -> None:
        self.core = Lab(f"{self.prefix}h", hosts=(), clinic=False)
        self.core.up()
        self.hub = self.core.add_hub(address=HUB_ADDRESS, tunnel=f"{HUB_TUNNEL}/16")
        self.engines = HubEngines(self.core, self.hub.key, self.work / "hub")
        self.engines.start()
        self.pki = make_pki(self.work / "hub" / "pki", names=[SIEM_PEER], addresses=[HUB_TUNNEL])
        self.syslog = SyslogCollector(self.work / "hub" / "syslog", self.pki, address=HUB_TUNNEL,
                                      netns=self.core.ns(self.hub.key))  # fmt: skip
        self.syslog.start()
        self.clinics = _parallel(self._clinic, range(self.count))
        write_targets(self.engines.targets_dir, [self.target_entry(c) for c in self.clinics])
        # the daemons: Suricata's start is the slow part, so the IDS boxes go first
        ordered = sorted(self.clinics, key=lambda c: not c.ids)
        _parallel(lambda c: c.box.start_daemon(wait=180 if c.ids else 90), ordered)

    def _clinic(self, index: int) -> Clinic:
        lab = Lab(f"{self.prefix}c{index + 1}", hosts=CLINIC_HOSTS,
                  internet=Internet(self.core.ns("sw-inet"), f"198.51.100.{101 + index}/24"))  # fmt: skip
        with self._labs_lock:
            self._labs.append(lab)  # before up(): a half-built clinic is still torn down
        lab.up()
        lab.nat_clinic()
        data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
        ids = index in self.ids_boxes
        data["ids"]["enabled"] = ids
        data["mgmt"] = {"enabled": False}
        box = make_box(lab, self.work / f"box-{index + 1:02d}", yaml.safe_dump(data, allow_unicode=True))
        clinic = Clinic(index, lab, box, ids)
        box.mamori("config", "apply", "-m", "初期設定")
        self._enrol(clinic)
        return clinic

    def _enrol(self, clinic: Clinic) -> None:
        """As a vendor and a clinic do it: the vendor's code, the clinic's `mgmt enrol`, the box's key added
        at the hub as a peer whose only allowed address is the box's; then metrics on the link address."""
        box, hub = clinic.box, self.hub
        code = box.mamori("mgmt", "make-code", "--endpoint", hub.endpoint, "--hub-key", hub.public_key,
                          "--network", HUB_NETWORK, "--address", clinic.link,
                          "--hub-address", hub.address).stdout.strip()  # fmt: skip
        out = box.mamori("--lang", "en", "mgmt", "enrol", code, "--yes").stdout
        key = re.search(r"box public key \(give it to the vendor\): (\S+)", out)
        if key is None or "applied revision" not in out:
            raise RuntimeError(f"enrolment of {clinic.clinic_id} said:\n{out}")
        clinic.public_key = key.group(1)
        with self._hub_lock:
            hub.add_peer(clinic.public_key, [f"{clinic.link}/32"])
        live = yaml.safe_load(RevisionStore(Database(box.state_dir / "db" / "mamori.db")).live().config_text)
        live["metrics"] = {"listen": [clinic.target]}
        live["siem"] = {"enabled": True, "collector": HUB_TUNNEL, "permitted_peer": SIEM_PEER, "via": "mgmt",
                        "collector_ca": self.pki.ca_cert.read_text(), "box_id": clinic.box_id,
                        "min_alert_severity": "high", "queue_mb": 16}  # fmt: skip
        box.config.write_text(yaml.safe_dump(live, allow_unicode=True, sort_keys=False), encoding="utf-8")
        box.mamori("config", "apply", "-m", "監視情報とログを管理接続で保守業者へ")

    @staticmethod
    def target_entry(clinic: Clinic) -> dict:
        return {"targets": [clinic.target], "labels": {"clinic": clinic.name, "clinic_id": clinic.clinic_id}}

    def down(self) -> None:
        """Every clinic (daemons, Suricata, wireguard-go, namespaces), then the hub and its engines, by PID."""
        with self._labs_lock:
            labs = list(self._labs)
            self._labs.clear()
        _parallel(lambda c: c.box.stop_daemon(), self.clinics)
        _parallel(Lab.down, labs)
        if self.syslog is not None:
            self.syslog.stop()
        if self.core is not None:
            self.core.down()
        self.clinics = []

    def __enter__(self) -> Fleet:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _parallel(fn: Callable[..., T], items: Iterable) -> list[T]:
    """fn over items in BUILD_THREADS threads, results in order; the first error is raised after all ended."""
    with ThreadPoolExecutor(BUILD_THREADS) as pool:
        futures = [pool.submit(fn, item) for item in items]
    return [f.result() for f in futures]
