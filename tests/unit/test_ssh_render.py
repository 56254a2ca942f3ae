"""Maintenance SSH: the `ssh:` config section (valid and invalid side by side, messages in Japanese and
English), sshd_config rendering (golden file and a table of lines), sshd's own parser (`sshd -t`) on what we
render and on what it must refuse, and the subsystem's files (written only on change, modes, removed when off).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import ApplyError, ConfigError
from appliance.paths import Paths
from sshsvc.render import listen_addresses, render_authorized_keys, render_sshd

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "sshd_clinic.conf"
PATHS = Paths(config=Path("/etc/mamori/config.yaml"), state_dir=Path("/var/lib/mamori"))

# Real keys made with ssh-keygen (ed25519, ECDSA P-256 without a comment, RSA with a Japanese comment).
KEY_ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN5wu/QZjTMGC+R7UffiRssme6koN7aMXK/fCFNqzKdj vendor-a@example"
)
KEY_ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLZ7O8AlQ+MloCapjrBzBxxtppanUmM7o9oawdLKp+rvjJinMq8mUh9wwUlnQJ66Ymrn8C19eYHln+9VD2/RMhw="
KEY_RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4BNaaOlLF3pFSauW9FlczKg6hntwswEasMIZoWgCKkw14QIBmtNmmpTN42cFQ6LckP9zrR/WQ7Dse+JgY0cyF2kSQqSonIeKAEkkxJhIHpzPwXutF1t1x2S3pgUncGQNMQ9BNEhyVJLYZdFuJMccvRKpIXc8GdQ1PbYN6tGWoVfNu1MEZEV28H9JtG1U4/GKD4vsbkQsnXHmOAe5L9UQciPB/OOjYetqNZbLpn8oaXcWBwmF+qqlxP6iskQuqqlXz+ofaGPIkifj4JLVa0ubzc0WbXoF4xBjOWwR5gfIDri9pg/BKa81Pn3FsfjY4mj8B+b/p0wM5gNIk06swjZHb 保守 山田"
MGMT = {"name": "lan0.40", "parent": "lan0", "vlan": 40, "zone": "mgmt", "address": "192.168.40.1/24"}


def config(ssh: dict | None = None, extra_ifaces: list[dict] | None = None, **iface_changes: dict):
    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"))
    if ssh is not None:
        data["ssh"] = ssh
    for index, change in iface_changes.items():
        data["interfaces"][int(index.removeprefix("i"))].update(change)
    data["interfaces"] += extra_ifaces or []
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


ON = {"enabled": True, "authorized_keys": [KEY_ED25519]}


def test_off_by_default_and_renders_nothing() -> None:
    cfg = config()
    assert cfg.ssh.enabled is False and cfg.ssh.authorized_keys == []
    assert render_sshd(cfg, PATHS) == "" and render_authorized_keys(cfg) == ""
    assert render_sshd(config({"enabled": False, "authorized_keys": [KEY_ED25519]}), PATHS) == ""


def test_golden_clinic_rendering() -> None:
    text = render_sshd(config(ON, i1={"address6": "fd00:10::1/64"}, extra_ifaces=[MGMT]), PATHS)
    if os.environ.get("MAMORI_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("extra", "line", "present"),
    [
        ([], "ListenAddress 192.168.10.1\n", True),  # lan
        ([MGMT], "ListenAddress 192.168.40.1\n", True),  # mgmt
        ([], "ListenAddress 203.0.113.2", False),  # wan: never
        ([], "ListenAddress 192.168.20.1", False),  # guest: never
        ([], "ListenAddress 192.168.30.1", False),  # devices: never
        ([], "ListenAddress 0.0.0.0", False),
        ([], "\nPort 22\n", True),
        ([], "\nPasswordAuthentication no\n", True),
        ([], "\nKbdInteractiveAuthentication no\n", True),
        ([], "\nPermitRootLogin prohibit-password\n", True),
        ([], "\nPubkeyAuthentication yes\n", True),
        ([], '\nAuthorizedKeysFile "/var/lib/mamori/run/ssh/authorized_keys"\n', True),
        ([], '\nHostKey "/var/lib/mamori/keys/ssh/ssh_host_ed25519_key"\n', True),
        ([], '\nPidFile "/var/lib/mamori/run/ssh/sshd.pid"\n', True),
        ([], "\nX11Forwarding no\n", True),
        ([], "\nAllowTcpForwarding no\n", True),
        ([], "\nAllowAgentForwarding no\n", True),
        ([], "\nPermitTunnel no\n", True),
        ([], "\nMaxAuthTries 3\n", True),
        ([], "\nLoginGraceTime 30\n", True),
        ([], "\nClientAliveInterval 300\n", True),
        ([], "\nUsePAM no\n", True),
        ([], "\nLogLevel VERBOSE\n", True),
        ([], "PasswordAuthentication yes", False),
    ],
)  # fmt: skip
def test_rendered_lines(extra: list[dict], line: str, present: bool) -> None:
    assert (line in render_sshd(config(ON, extra_ifaces=extra), PATHS)) is present


def test_listen_addresses_skip_dhcp_and_take_ipv6() -> None:
    """`dhcp` on an internal zone is refused by the reference check; the renderer must still skip it."""
    from appliance.config.model import MamoriConfig

    data = config(ON, i1={"address6": "fd00:10::1/64"}, i0={"address6": "2001:db8::2/64"}).model_dump()
    data["interfaces"].append({**MGMT, "address": "dhcp", "address6": "fd00:40::1/64"})
    assert listen_addresses(MamoriConfig.model_validate(data)) == ["192.168.10.1", "fd00:10::1", "fd00:40::1"]


def test_keys_are_rendered_one_per_line_and_their_change_changes_sshd_config() -> None:
    two = config({"enabled": True, "authorized_keys": [KEY_ED25519, "  " + KEY_ECDSA + "  "]})
    assert render_authorized_keys(two) == f"{KEY_ED25519}\n{KEY_ECDSA}\n"
    assert render_sshd(two, PATHS) != render_sshd(config(ON), PATHS)  # the worker restarts sshd
    assert render_sshd(config(ON), PATHS) == render_sshd(config(ON), PATHS)  # deterministic


VALID_KEYS = [KEY_ED25519, KEY_ECDSA, KEY_RSA, KEY_ED25519.rsplit(" ", 1)[0]]


@pytest.mark.parametrize("key", VALID_KEYS)
def test_valid_keys(key: str) -> None:
    assert config({"enabled": True, "authorized_keys": [key]}).ssh.authorized_keys == [key]


ED_BODY = KEY_ED25519.split()[1]
INVALID = [
    # (case, ssh section, field path, Japanese fragment, English fragment)
    ("enabled without keys", {"enabled": True}, "ssh.authorized_keys", "公開鍵を1つ以上", "no public key"),
    ("empty list", {"enabled": True, "authorized_keys": []}, "ssh.authorized_keys", "公開鍵を1つ以上", "no public key"),
    ("unknown type", {"authorized_keys": [f"ssh-dss {ED_BODY}"]}, "ssh.authorized_keys[0]", "鍵の種類で始めて", "key type"),
    ("options prefix", {"authorized_keys": [f'command="/bin/sh" {KEY_ED25519}']}, "ssh.authorized_keys[0]",
     "オプションは使えません", "options are not allowed"),
    ("from= option", {"authorized_keys": [f"from=\"*\" {KEY_ED25519}"]}, "ssh.authorized_keys[0]", "オプション", "options"),
    ("newline injection", {"authorized_keys": [f"{KEY_ED25519}\nssh-ed25519 {ED_BODY} evil"]}, "ssh.authorized_keys[0]",
     "改行", "line breaks"),
    ("not base64", {"authorized_keys": ["ssh-ed25519 AAAA!!notbase64"]}, "ssh.authorized_keys[0]", "base64", "not base64"),
    ("type mismatch", {"authorized_keys": [f"ssh-rsa {ED_BODY}"]}, "ssh.authorized_keys[0]", "一致しません", "does not match"),
    ("body missing", {"authorized_keys": ["ssh-ed25519"]}, "ssh.authorized_keys[0]", "本体がありません", "missing"),
    ("truncated body", {"authorized_keys": ["ssh-ed25519 AAAAC3Nz"]}, "ssh.authorized_keys[0]", "壊れています", "truncated"),
    ("private key pasted", {"authorized_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]}, "ssh.authorized_keys[0]",
     "鍵の種類", "key type"),
    ("too many", {"authorized_keys": [KEY_ED25519] * 21}, "ssh.authorized_keys", "20 個まで", "at most 20"),
    ("zones not configurable", {"enabled": False, "zones": ["wan"]}, "ssh.zones", "この項目は設定にありません", "unknown field"),
    ("port not configurable", {"port": 2222}, "ssh.port", "この項目は設定にありません", "unknown field"),
    ("enabled not a bool", {"enabled": "maybe"}, "ssh.enabled", "true か false", "true or false"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "ssh", "where", "ja", "en"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_ssh_sections_are_refused(case: str, ssh: dict, where: str, ja: str, en: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(ssh)
    issues = {issue.path: issue for issue in info.value.issues}
    assert where in issues, f"{case}: expected an issue at {where}, got {list(issues)}"
    assert ja in issues[where].message.ja, issues[where].message.ja
    assert en in issues[where].message.en, issues[where].message.en


def test_enabled_without_a_lan_or_mgmt_address_is_refused() -> None:
    """sshd with no ListenAddress would listen everywhere (wan too): the config check refuses it."""
    with pytest.raises(ConfigError) as info:
        config(ON, i1={"address": "dhcp"})
    issue = next(i for i in info.value.issues if i.path == "ssh.enabled")
    assert "固定のアドレス" in issue.message.ja and "static address" in issue.message.en


needs_sshd = pytest.mark.skipif(shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
                                reason="openssh-server is not installed (make setup)")  # fmt: skip
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sshd -t needs /run/sshd, made as root")


@needs_sshd
@needs_root
def test_sshd_accepts_the_rendering_before_the_host_key_exists(tmp_path: Path) -> None:
    from sshsvc.subsystem import sshd_check

    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path)
    sshd_check(render_sshd(config(ON, extra_ifaces=[MGMT]), paths), tmp_path / "keys" / "ssh" / "absent")
    sshd_check("", tmp_path / "absent")  # SSH off: nothing to check
    assert not (tmp_path / "keys").exists()  # the check made nothing under the state directory


@needs_sshd
@needs_root
@pytest.mark.parametrize("bad", ["PasswordAuthentication perhaps\n", "Bogus yes\n", "MaxAuthTries many\n"])
def test_sshd_refuses_broken_text(tmp_path: Path, bad: str) -> None:
    from sshsvc.subsystem import sshd_check

    with pytest.raises(ApplyError) as err:
        sshd_check(render_sshd(config(ON), PATHS) + bad, tmp_path / "absent")
    assert err.value.code == "ssh.check" and "SSH" in err.value.text("ja")


@needs_sshd
def test_subsystem_writes_only_on_change_with_safe_modes_and_removes_when_off(tmp_path: Path) -> None:
    from appliance.storage import Database
    from appliance.subsystem import Context
    from sshsvc.subsystem import SshSubsystem

    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path)
    paths.ensure()
    sub = SshSubsystem(Context(paths, Database(paths.db)))
    rendered = sub.render(config(ON))
    sub.apply(rendered)
    conf, keys, host_key = paths.run_dir / "ssh" / "sshd_config", paths.run_dir / "ssh" / "authorized_keys", \
        paths.keys_dir / "ssh" / "ssh_host_ed25519_key"  # fmt: skip
    assert keys.read_text(encoding="utf-8") == KEY_ED25519 + "\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and stat.S_IMODE(conf.parent.stat().st_mode) == 0o700
    assert host_key.exists() and stat.S_IMODE(host_key.stat().st_mode) == 0o600
    first, key_first = conf.stat().st_mtime_ns, host_key.read_bytes()
    sub.apply(rendered)
    assert conf.stat().st_mtime_ns == first and host_key.read_bytes() == key_first  # unchanged: untouched
    sub.verify(rendered)
    os.chmod(keys, 0o644)
    with pytest.raises(ApplyError):
        sub.verify(rendered)
    sub.apply(sub.render(config({"enabled": False})))
    assert not conf.exists() and not keys.exists() and host_key.exists()  # the box keeps its identity
    sub.verify(sub.render(config()))
