"""The amd64 test image, booted in qemu: fail-closed before the daemon, Mamori's table after it, first-boot
identity, no default password, SSH off, and the setup wizard on the forwarded HTTPS port.

The test image is the production root file system plus image/test-overlay (serial autologin and a unit
that records the ruleset the daemon starts from); everything checked here is the production behaviour.
The VM (conftest.box) goes on to test_image_update.py, which starts from the configuration applied here.
"""

from __future__ import annotations

import base64
import re
import ssl
import time
import urllib.request

import pytest
from conftest import assert_no_worker_crashed
from serialconsole import SerialConsole
from vm import VM

pytestmark = pytest.mark.timeout(1800)

# What the VM's ports are for the test: enp0s3 reaches the host (loopback forwards only), enp0s4 is isolated.
VM_CONFIG = """\
schema_version: 1
clinic:
  name: イメージ試験クリニック
  timezone: Asia/Tokyo
interfaces:
  - {name: enp0s3, zone: wan, address: dhcp}
  - {name: enp0s4, zone: lan, address: 192.168.10.1/24}
hosts:
  - {name: 電子カルテ, ip: 192.168.10.10}
  - {name: nas, ip: 192.168.10.20}
firewall:
  rules:
    - {src: lan, dst: 電子カルテ, service: HTTPS}
ids:
  enabled: false
ssh:
  enabled: true
  authorized_keys:
    - {key}
"""


def sh(console: SerialConsole, command: str, timeout: float = 120.0) -> str:
    res = console.run(command, timeout=timeout)
    assert res.rc == 0, f"`{command}` failed with {res.rc}:\n{res.out}"
    return res.out


def test_boot_reaches_multi_user(booted: tuple[VM, SerialConsole]) -> None:
    _, console = booted
    state = console.run("systemctl is-system-running --wait", timeout=600).out.strip()
    failed = sh(console, "systemctl --failed --no-legend --plain")
    assert state == "running", f"system state {state}; failed units:\n{failed}"
    # Under software emulation the daemon takes a while to import; wait (bounded) until it reports READY.
    wait = "for i in $(seq 1 120); do systemctl is-active -q mamori.service && break; sleep 2; done"
    sh(console, wait, timeout=300)
    journal = console.run("journalctl -b -u mamori.service --no-pager -n 20").out
    assert sh(console, "systemctl is-active mamori.service").strip() == "active", journal


def test_fail_closed_policy_is_live_before_the_daemon(booted: tuple[VM, SerialConsole]) -> None:
    _, console = booted
    before = sh(console, "cat /run/mamori-test/ruleset-before-daemon.nft")
    assert "table inet mamori" in before
    assert re.search(
        r"chain forward \{\s*type filter hook forward priority filter; policy drop;\s*\}", before
    ), before
    assert re.search(r"chain input \{\s*type filter hook input priority filter; policy drop;", before), before
    assert "tcp dport 443 accept" in before
    assert before.count("table ") == 1, f"only Mamori's table may exist before the daemon:\n{before}"
    order = sh(console, "systemctl show -p ActiveEnterTimestampMonotonic --value mamori-fail-closed.service "
                        "systemd-networkd.service mamori.service")  # fmt: skip
    fail_closed, networkd, daemon = (int(x) for x in order.split())
    assert 0 < fail_closed < networkd and fail_closed < daemon, order


def test_without_a_config_nothing_is_forwarded(booted: tuple[VM, SerialConsole]) -> None:
    _, console = booted
    assert sh(console, "systemctl is-active mamori.service").strip() == "active"
    live = sh(console, "nft list ruleset")
    before = sh(console, "cat /run/mamori-test/ruleset-before-daemon.nft")
    assert live == before, "the daemon must keep the fail-closed policy until a configuration is applied"


def test_first_boot_made_this_box_its_own_keys(booted: tuple[VM, SerialConsole]) -> None:
    _, console = booted
    assert sh(console, "systemctl is-active mamori-firstboot.service").strip() == "active"
    cert = sh(console, "openssl x509 -in /var/lib/mamori/keys/web.crt -noout -subject -ext subjectAltName")
    assert "Mamori" in cert and "DNS:mamori.local" in cert
    # root's; its group is the web UI's account's, which reads it and nothing else of keys/: the daemon
    # hands it over before it starts the web UI (appliance/child_access.py), so wait until that listens.
    sh(console, "for i in $(seq 1 120); do ss -Htln 'sport = :443' | grep -q . && break; sleep 1; done; "
                "ss -Htln 'sport = :443' | grep -q .", timeout=180)  # fmt: skip
    assert sh(console, "stat -c %a:%U:%G /var/lib/mamori/keys/web.key").strip() == "640:root:mamori-web"
    # The root is read-only: no host key in /etc/ssh; the daemon makes its own when SSH is enabled (below).
    assert not [k for k in sh(console, "ls /etc/ssh/").split() if k.startswith("ssh_host_")]
    machine_id = sh(console, "cat /etc/machine-id").strip()
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id)


def test_no_default_password_and_ssh_off(booted: tuple[VM, SerialConsole]) -> None:
    _, console = booted
    assert sh(console, "passwd -S root").split()[1] == "L", "root must be locked"
    assert sh(console, "awk -F: '$2 !~ /^[!*]/ {print $1}' /etc/shadow").strip() == "", (
        "an account has a password"
    )
    assert console.run("systemctl is-active ssh.service").out.strip() != "active"
    assert console.run("systemctl is-enabled ssh.service").out.strip() in {"disabled", "masked"}
    assert console.run("ss -Htln 'sport = :22'").out.strip() == ""


def test_root_is_read_only_and_state_is_on_the_data_partition(booted: tuple[VM, SerialConsole]) -> None:
    """An SD card or SSD survives power cuts: / is mounted read-only, what the system writes lives on the
    data partition (bind mounts) or in tmpfs, and the journal is kept there, capped."""
    _, console = booted
    assert "ro" in sh(console, "findmnt -no OPTIONS /").strip().split(",")
    assert "ro" in sh(console, "cat /proc/cmdline").split()
    res = console.run("touch /etc/x /usr/x")
    assert res.rc != 0 and "Read-only file system" in res.out, res.out
    for path in ("/etc/mamori", "/var/log", "/var/lib/systemd"):
        assert sh(console, f"findmnt -no TARGET {path}").strip() == path, f"{path} is not mounted"
        sh(console, f"touch {path}/.rw-check && rm {path}/.rw-check")
    machine_id = sh(console, "cat /etc/machine-id").strip()
    assert f"systemd.machine_id={machine_id}" in sh(console, "cat /efi/loader/entries/mamori-a*.conf")
    assert sh(console, f"ls -d /var/log/journal/{machine_id}").strip(), "the journal is persistent"


def test_no_compilers_and_journal_capped(booted: tuple[VM, SerialConsole]) -> None:
    _, console = booted
    assert console.run("command -v gcc cc clang make").out.strip() == ""
    conf = sh(console, "systemd-analyze cat-config systemd/journald.conf")
    assert re.search(r"^SystemMaxUse=\d+M", conf, re.M), conf


def test_console_shows_the_one_time_setup_code(booted: tuple[VM, SerialConsole]) -> None:
    """Only someone who can read the box's screen can start the wizard: the banner before the login
    prompt carries the code, the same one `mamori setup-code` gives, kept root-only."""
    vm, console = booted
    shown = re.search(r"setup code: ([A-Z2-9]{4}-[A-Z2-9]{4})", sh(console, "mamori --lang en setup-code"))
    assert shown, "mamori setup-code printed no code"
    banner = vm.serial_log.read_bytes().decode("utf-8", errors="replace")
    assert "enter this setup code" in banner and shown.group(1) in banner, banner[-3000:]
    assert sh(console, "stat -c %a /var/lib/mamori/keys/setup-code").strip() == "600"


def test_webui_shows_the_setup_wizard(booted: tuple[VM, SerialConsole]) -> None:
    vm, console = booted
    # The daemon runs the web UI as its child (appliance/webserver.py), on every address while unconfigured.
    sh(console, "for i in $(seq 1 120); do ss -Htln 'sport = :443' | grep -q . && break; sleep 1; done; "
                "ss -Htln 'sport = :443' | grep -q .", timeout=180)  # fmt: skip
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the box's own self-signed certificate, made on first boot
    with urllib.request.urlopen(f"https://127.0.0.1:{vm.https_port}/", context=ctx, timeout=60) as resp:
        body = resp.read().decode("utf-8", errors="replace")
        final = resp.geturl()
    assert "setup" in final or "初期設定" in body, (final, body[:500])
    assert 'name="setup_code"' in body, "the wizard asks for the setup code first"


def test_daemon_replaces_fail_closed_with_mamoris_table(booted: tuple[VM, SerialConsole]) -> None:
    """A configuration prepared in /etc/mamori is applied by the daemon when it starts."""
    _, console = booted
    # Maintenance SSH switched on with a key made inside the VM (the vendor's laptop, in the test; in /tmp:
    # the root file system, root's home included, is read-only).
    sh(console, "rm -f /tmp/vendor-key* && ssh-keygen -q -t ed25519 -N '' -C vendor -f /tmp/vendor-key")
    key = sh(console, "cat /tmp/vendor-key.pub").strip().splitlines()[-1]
    assert key.startswith("ssh-ed25519 "), key
    encoded = base64.b64encode(VM_CONFIG.replace("{key}", key).encode()).decode()
    sh(console, f"echo {encoded} | base64 -d > /etc/mamori/config.yaml")
    sh(console, "mamori --lang en config validate")
    sh(console, "systemctl restart mamori.service", timeout=300)
    deadline = time.monotonic() + 300
    history = ""
    while time.monotonic() < deadline:
        history = console.run("mamori --lang en config history").out
        if re.search(r"^\s*1\s", history, re.M):
            break
        time.sleep(3)
    journal = console.run("journalctl -u mamori --no-pager -n 30").out
    assert re.search(r"^\s*1\s", history, re.M), f"no revision applied:\n{history}\n{journal}"
    table = sh(console, "nft list table inet mamori")
    assert "set blocked4" in table and "chain fwd_lan_wan" in table, table
    assert "192.168.10.10" in table, "the rule to 電子カルテ is in the live table"
    assert sh(console, "nft list ruleset") != sh(console, "cat /run/mamori-test/ruleset-before-daemon.nft")
    assert sh(console, "systemctl is-active mamori.service").strip() == "active"
    # The box's own lookups go to its dnsmasq (resolv.conf: 127.0.0.1), which knows the clinic's hosts.
    sh(console, "for i in $(seq 1 30); do getent hosts nas.clinic.lan && break; sleep 2; done", timeout=120)
    assert sh(console, "getent hosts nas.clinic.lan").split()[:2] == ["192.168.10.20", "nas.clinic.lan"]

    # sshd, run by the daemon, listens on the lan address only and lets the key in, although root's
    # password stays locked (no password anywhere on the box).
    sh(
        console,
        "for i in $(seq 1 60); do ss -Htln 'sport = :22' | grep -q . && break; sleep 2; done",
        timeout=180,
    )
    listening = sh(console, "ss -Htln 'sport = :22'")
    assert sh(console, "ls /var/lib/mamori/keys/ssh").split().count("ssh_host_ed25519_key") == 1
    assert "192.168.10.1:22" in listening and "0.0.0.0:22" not in listening, listening
    login = console.run("ssh -i /tmp/vendor-key -o BatchMode=yes -o StrictHostKeyChecking=no "
                        "-o UserKnownHostsFile=/dev/null root@192.168.10.1 'echo ssh-$((40+2))'", timeout=120)  # fmt: skip
    assert login.rc == 0 and "ssh-42" in login.out, login.out
    assert sh(console, "passwd -S root").split()[1] == "L"


def test_no_worker_crashed_on_the_image(booted: tuple[VM, SerialConsole]) -> None:
    """Through first boot, the fail-closed start and the configuration above, every worker of the daemon
    kept running under the image's service account setup (no crash-and-restart loop)."""
    _, console = booted
    assert_no_worker_crashed(console)
