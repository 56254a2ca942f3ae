"""A vendor's Ansible controller in the lab's hub namespace (issue 15), for tests/long/test_fleet_ansible.py and
bench/bench_ansible.py: the mamori.clinic collection built and installed from fleet/ansible/ by `ansible-galaxy`
as a vendor would, an inventory of the fleet's boxes (their link addresses and certificate pins) with each
token in an ansible-vault file, and `ansible-playbook` of the collection's example playbook run inside the hub
namespace, so every request crosses a box's management link.

`clinic_admin_allows` is what each clinic's administrator does once: a vendor account (grants 設定,
ファイアウォール and, by name, ネットワーク: the link-cut check changes the wan gateway), fleet.allow_changes on
(a config change of his own), and an API token for the vendor.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from appliance.clock import wall
from appliance.paths import Paths
from appliance.storage import Database
from lab.box import Box
from lab.fleet import Fleet
from webui.accounts import AccountStore

REPO = Path(__file__).resolve().parent.parent
COLLECTION = REPO / "fleet" / "ansible"
PLAYBOOK = COLLECTION / "examples" / "site.yml"
BIN = Path(sys.executable).parent
VENDOR = "vendor-ops"
VAULT_PASSWORD = "lab-vault-password-only-for-the-lab"
RECAP = re.compile(r"^(c\d\d)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def clinic_admin_allows(box: Box) -> str:
    """A vendor account, the switch on, an API token for the vendor (returned)."""
    store = AccountStore(Database(Paths(config=box.config, state_dir=box.state_dir).db))
    store.create(VENDOR, "Hoshu-Gyosha-Lab-2026!", "vendor", totp_secret="JBSWY3DPEHPK3PXP",
                 expires_at=wall() + 30 * 86400, grants=("settings", "firewall", "network"))  # fmt: skip
    live = yaml.safe_load(box.config.read_text(encoding="utf-8"))
    live["fleet"] = {"allow_changes": True}
    box.config.write_text(yaml.safe_dump(live, allow_unicode=True, sort_keys=False), encoding="utf-8")
    box.mamori("config", "apply", "-m", "保守業者による設定の一括変更を許可する")
    return box.mamori("fleet", "token", "create", VENDOR, "--label", "ansible").stdout.strip()


def cert_sha256(box: Box) -> str:
    """The pin of the box's web UI certificate (what `mamori tls status` shows the clinic)."""
    pem = (box.state_dir / "keys" / "web.crt").read_text(encoding="ascii")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


class Controller:
    """The vendor's repository of desired states (an inventory per call) and `ansible-playbook` in the hub."""

    def __init__(self, fleet: Fleet, work: Path) -> None:
        self.fleet, self.work = fleet, work
        self.env = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                    "ANSIBLE_HOME": str(work / "home"), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"), "ANSIBLE_LOCAL_TEMP": str(work / "tmp")}  # fmt: skip
        self.secrets: dict[str, tuple[str, str]] = {}

    def setup(self) -> Controller:
        """Install the collection; every clinic allows the vendor and hands over its token and certificate pin."""
        galaxy = str(BIN / "ansible-galaxy")
        tarball = self.work / "mamori-clinic-1.0.0.tar.gz"
        for argv in ([galaxy, "collection", "build", "--force", str(COLLECTION), "--output-path", str(self.work)],
                     [galaxy, "collection", "install", "--force", str(tarball), "-p", str(self.work / "collections")]):  # fmt: skip
            subprocess.run(argv, check=True, capture_output=True, text=True, env=self.env, timeout=120)
        (self.work / "vault-pass").write_text(VAULT_PASSWORD, encoding="utf-8")
        self.secrets = {
            c.clinic_id: (clinic_admin_allows(c.box), cert_sha256(c.box)) for c in self.fleet.clinics
        }
        return self

    def inventory(self, common: dict, per_host: dict[str, dict] | None = None, **group: Any) -> Path:
        """A fresh inventory: `common` for every clinic (mamori_common), `per_host` overrides, group vars."""
        inv = self.work / f"inventory-{time.monotonic_ns()}"
        hosts = {c.clinic_id: {"mamori_link_address": c.link, "mamori_cert_sha256": self.secrets[c.clinic_id][1]}
                 for c in self.fleet.clinics}  # fmt: skip
        group_vars = {"ansible_python_interpreter": sys.executable, "mamori_common": common, **group}
        _write(inv / "hosts.yml", {"clinics": {"hosts": hosts, "vars": group_vars}})
        vaults = []
        for clinic in self.fleet.clinics:
            cid = clinic.clinic_id
            _write(inv / "host_vars" / cid / "config.yml", {"mamori_clinic": (per_host or {}).get(cid, {})})
            vaults.append(inv / "host_vars" / cid / "vault.yml")
            _write(vaults[-1], {"mamori_token": self.secrets[cid][0]})
        subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(self.work / "vault-pass"),
                        *map(str, vaults)], check=True, capture_output=True, text=True, env=self.env)  # fmt: skip
        return inv

    def play(self, inv: Path, *args: str) -> tuple[dict[str, tuple[int, int]], str]:
        """Run the example playbook from the hub namespace: ({host: (changed, failed)} from the recap, output)."""
        argv = [str(BIN / "ansible-playbook"), "-i", str(inv), str(PLAYBOOK),
                "--vault-password-file", str(self.work / "vault-pass"), *args]  # fmt: skip
        res = self.fleet.core.run(self.fleet.hub.key, argv, check=False, timeout=900, env=self.env)
        out = res.stdout + res.stderr
        return {m[0]: (int(m[2]), int(m[4])) for m in RECAP.findall(out)}, out
