"""A dead box, brought back from its backup: the doctor's tunnel works again with his old config.

Real lab namespaces, real wireguard-go, the real `mamori` command for backup and restore (real scrypt
cost), nothing faked. Also: a damaged or wrongly-encrypted archive is refused while the tunnel keeps
running and the box's files stay exactly as they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config.load import parse_config
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.topology import Lab
from lab.waiting import wait_for
from vpn.client import parse_client_conf, up_client
from vpn.provision import provision
from vpn.subsystem import VpnSubsystem
from vpn.wg import WgInterface

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "clinic.yaml"
MAMORI = Path(sys.executable).parent / "mamori"
PID = os.getpid()
BOX_IF, DOC_IF = f"wbb{PID}", f"wbd{PID}"
PASS = "shinsatsushitsu no kagi wa tsukue"


def mamori(
    ctx: Context, *argv: str, stdin: str = "", netns: str | None = None
) -> subprocess.CompletedProcess[str]:
    inside = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(
        [*inside, str(MAMORI), "--config", str(ctx.paths.config), "--state-dir", str(ctx.paths.state_dir), *argv],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def bring_up_vpn(lab: Lab, ctx: Context) -> VpnSubsystem:
    """What `mamori daemon` does for the VPN at start: render from config + DB, check, apply, verify."""
    cfg = parse_config(ctx.paths.config.read_text(encoding="utf-8")).model
    sub = VpnSubsystem(ctx, ifname=BOX_IF, netns=lab.ns("box"))
    plan = sub.render(cfg)
    sub.check(plan)
    sub.apply(plan)
    sub.verify(plan)
    sub.iface = sub.interface(plan)  # type: ignore[attr-defined]
    return sub


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Context, VpnSubsystem, Path]]:
    tmp = tmp_path_factory.mktemp("backup")
    lab = Lab(f"bk{PID}")
    try:
        lab.up()
        lab.run("box", ["ip", "addr", "add", "203.0.113.2/24", "dev", "wan0"])
        lab.run("box", ["ip", "route", "add", "default", "via", "203.0.113.1"])
        (tmp / "etc").mkdir()
        shutil.copy(EXAMPLE, tmp / "etc" / "config.yaml")
        paths = Paths(config=tmp / "etc" / "config.yaml", state_dir=tmp / "var" / "mamori")
        paths.ensure()
        ctx = Context(paths, Database(paths.db))
        ctx.db.migrate()
        sub = bring_up_vpn(lab, ctx)
        cfg = parse_config(EXAMPLE.read_text(encoding="utf-8")).model
        prov = provision(ctx, cfg, "yamada", "home-pc", iface=sub.iface)  # type: ignore[attr-defined]
        up_client(parse_client_conf(prov.conf), DOC_IF, tmp, netns=lab.ns("doctor"))
        assert wait_for(lambda: lab.ping("doctor", "10.99.0.1"), 15), "no tunnel before the backup"
        yield lab, ctx, sub, tmp
    finally:
        try:
            WgInterface(BOX_IF, run_dir=tmp / "var" / "mamori" / "run", netns=lab.ns("box")).delete()
            WgInterface(DOC_IF, run_dir=tmp, netns=lab.ns("doctor")).delete()
        finally:
            lab.down()


def files_of(ctx: Context) -> dict[str, bytes]:
    out = {"CONFIG": ctx.paths.config.read_bytes()}
    for path in sorted(ctx.paths.state_dir.rglob("*")):
        if path.is_file() and "backups" not in path.parts and not path.name.endswith(("-wal", "-shm")):
            out[str(path.relative_to(ctx.paths.state_dir))] = path.read_bytes()
    return out


def test_bad_archives_are_refused_while_the_box_keeps_running(
    rig: tuple[Lab, Context, VpnSubsystem, Path],
) -> None:
    lab, ctx, _sub, tmp = rig
    assert mamori(ctx, "backup", "set-passphrase", stdin=PASS + "\n").returncode == 0
    made = mamori(ctx, "backup", "create", "--out", str(tmp / "good.mbk"))
    assert made.returncode == 0, made.stderr
    damaged = tmp / "damaged.mbk"
    data = bytearray((tmp / "good.mbk").read_bytes())
    data[len(data) // 3] ^= 0x10
    damaged.write_bytes(bytes(data))
    before = files_of(ctx)
    wrong = mamori(
        ctx, "backup", "restore", "--yes", str(tmp / "good.mbk"), stdin="not the clinic passphrase\n"
    )
    assert wrong.returncode == 1 and "パスフレーズが違います" in wrong.stderr
    bad = mamori(ctx, "--lang", "en", "backup", "restore", "--yes", str(damaged), stdin=PASS + "\n")
    assert bad.returncode == 1 and "damaged or was tampered with" in bad.stderr
    after = files_of(ctx)
    assert {k: v for k, v in after.items() if k != "db/mamori.db"} == {
        k: v for k, v in before.items() if k != "db/mamori.db"
    }
    assert lab.ping("doctor", "10.99.0.1", count=3, wait=1), "the running tunnel was disturbed"
    listed = mamori(ctx, "audit", "list", "--search", "backup.restore_refused")
    assert listed.stdout.count("backup.restore_refused") == 2


def test_restored_box_brings_back_the_doctors_tunnel(rig: tuple[Lab, Context, VpnSubsystem, Path]) -> None:
    lab, ctx, sub, tmp = rig
    iface = sub.iface  # type: ignore[attr-defined]
    state_before = iface.dump()
    peers_before = {k: sorted(p.allowed_ips) for k, p in state_before.peers.items()}
    made = mamori(ctx, "backup", "create")
    assert made.returncode == 0, made.stderr
    archive = next((ctx.paths.state_dir / "backups").glob("mamori-backup-*.mbk"))
    usb = tmp / "usb"
    usb.mkdir()
    assert mamori(ctx, "backup", "export", str(usb)).returncode == 0
    tested = mamori(ctx, "backup", "test", str(usb / archive.name), stdin=PASS + "\n")
    assert tested.returncode == 0 and "復元テスト成功" in tested.stdout

    # The SD card dies: the VPN goes away, the state directory and config are gone.
    iface.delete()
    assert not lab.ping("doctor", "10.99.0.1", count=2, wait=1)
    shutil.rmtree(ctx.paths.state_dir)
    ctx.paths.config.unlink()

    # In the box's namespace: a restore checks that the box has the ports the backup's config names.
    restored = mamori(ctx, "backup", "restore", "--yes", str(usb / archive.name), stdin=PASS + "\n",
                      netns=lab.ns("box"))  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert ctx.paths.config.read_bytes() == EXAMPLE.read_bytes()
    new_sub = bring_up_vpn(lab, ctx)
    state_after = new_sub.iface.dump()  # type: ignore[attr-defined]
    assert state_after.public_key == state_before.public_key
    assert {k: sorted(p.allowed_ips) for k, p in state_after.peers.items()} == peers_before
    # The doctor's client was not touched: same keys, same config as before the wipe.
    assert wait_for(lambda: lab.ping("doctor", "10.99.0.1"), 20), "the old client config no longer works"
    verify = mamori(ctx, "audit", "verify")
    assert verify.returncode == 0, verify.stdout
