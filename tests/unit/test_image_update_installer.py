"""The box's update installer (image/rootfs/usr/lib/mamori/mamori_update.py) without a box: versions,
manifests, signatures, the request contract of docs/update.md, and whole installs into slot "devices" that
are plain files (the boot loader is a directory standing for the ESP). The real boots are tests/image."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.clock import utc_now

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "image/rootfs/usr/lib/mamori/mamori_update.py"
BUNDLE_SH = REPO / "scripts/image-bundle.sh"

_spec = importlib.util.spec_from_file_location("mamori_update", SCRIPT)
assert _spec and _spec.loader
mu = importlib.util.module_from_spec(_spec)
sys.modules["mamori_update"] = mu
_spec.loader.exec_module(mu)

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("openssl", "zstd")), reason="openssl and zstd are needed"
)
SLOT = 1 << 20  # a "slot" of 1 MiB


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("2026.12.1", "2026.12.1", 0),
        ("2026.12", "2026.12.0", 0),
        ("2026.12.2", "2026.12.10", -1),
        ("0.1.0.1796577822.1", "0.1.0.1796577822", 1),
        ("1.0", "0.99.99", 1),
        ("10", "9.9", 1),
    ],
)
def test_versions_compare_numerically(a: str, b: str, order: int) -> None:
    assert mu.compare_versions(a, b) == order
    assert mu.compare_versions(b, a) == -order


@pytest.mark.parametrize("bad", ["", "v1", "1..2", "1.2.3.4.5.6.7", "12345678901", "1.-2", "1.2 x", "１.２"])
def test_not_a_version_is_refused(bad: str) -> None:
    with pytest.raises(mu.Refused) as exc:
        mu.compare_versions(bad, "1")
    assert exc.value.code == "update.format"


def _manifest(**fields: str) -> object:
    base = {"version": "2026.12.2", "root-size": "10", "root-sha256": "0" * 64, "arch": "amd64"}
    base.update(fields)
    lines = ["mamori-update 1", *(f"{k} {v}" for k, v in base.items() if v)]
    lines += [f"{'a' * 64}  {n}" for n in ("root.img.zst", "vmlinuz", "initrd.img")]
    return mu.parse_manifest("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("fields", "running", "arch", "code"),
    [
        ({}, "2026.12.1", "amd64", None),
        ({}, "2026.12.2", "amd64", "update.same"),
        ({}, "2026.12.3", "amd64", "update.downgrade"),
        ({"rollback-allowed": "yes"}, "2026.12.3", "amd64", None),
        ({"rollback-allowed": "no"}, "2026.12.3", "amd64", "update.downgrade"),
        ({"rollback-allowed": "yes"}, "2026.12.2", "amd64", "update.same"),
        ({"arch": "arm64"}, "2026.12.1", "amd64", "update.arch"),
        ({"arch": ""}, "2026.12.1", "arm64", "update.arch"),  # no arch: an old amd64 bundle
        ({"min-from-version": "2026.11"}, "2026.10.5", "amd64", "update.min_from"),
        ({"min-from-version": "2026.11"}, "2026.11", "amd64", None),
    ],
)
def test_version_and_arch_rules(fields: dict[str, str], running: str, arch: str, code: str | None) -> None:
    manifest = _manifest(**fields)
    if code is None:
        mu.check_version(manifest, running, arch)
        return
    with pytest.raises(mu.Refused) as exc:
        mu.check_version(manifest, running, arch)
    assert exc.value.code == code
    assert exc.value.message_ja and exc.value.message_en and "?" not in exc.value.message_en


@pytest.mark.parametrize(
    "text",
    [
        "mamori-update 2\nversion 1\n",
        "version 1\n",
        "mamori-update 1\nroot-size 1\nroot-sha256 " + "0" * 64 + "\n",
        "mamori-update 1\nversion 1\nroot-size x\nroot-sha256 " + "0" * 64 + "\n",
        "mamori-update 1\nversion 1\nroot-size 1\nroot-sha256 "
        + "0" * 64
        + "\n"
        + "a" * 64
        + "  ../etc/passwd\n",
        "mamori-update 1\nversion 1\nroot-size 1\nroot-sha256 " + "0" * 64 + "\n",  # no hash lines
    ],
)
def test_bad_manifests_are_refused(text: str) -> None:
    with pytest.raises(mu.Refused) as exc:
        mu.parse_manifest(text)
    assert exc.value.code == "update.format"


def test_autoboot_text_round_trips() -> None:
    text = mu.autoboot_text(2, 3)
    assert text.startswith("[all]\ntryboot_a_b=1\n")
    assert mu.parse_autoboot(text) == {"all": 2, "tryboot": 3}
    assert len(text.encode()) < 512  # the firmware reads at most 512 bytes


# ------------------------------------------------------------------ bundles and whole installs


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    for name in ("vendor", "other"):
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(d / f"{name}.key")], check=True
        )
    pub = d / "trusted"
    pub.mkdir()
    subprocess.run(
        ["openssl", "pkey", "-in", str(d / "vendor.key"), "-pubout", "-out", str(pub / "vendor.pem")],
        check=True,
    )
    return {"vendor": d / "vendor.key", "other": d / "other.key", "trusted": pub}


def make_bundle(tmp: Path, key: Path, version: str, fill: bytes, *extra: str) -> Path:
    """A real bundle made by scripts/image-bundle.sh around a 1 MiB "root file system"."""
    tmp.mkdir(parents=True, exist_ok=True)
    root = tmp / f"root-{version}.img"
    root.write_bytes(fill * (SLOT // len(fill)))
    (tmp / "vmlinuz").write_bytes(b"kernel " + version.encode())
    (tmp / "initrd").write_bytes(b"initrd " + version.encode())
    out = tmp / f"mamori-{version}.tar"
    subprocess.run(
        ["bash", str(BUNDLE_SH), "--root", str(root), "--kernel", str(tmp / "vmlinuz"), "--initrd",
         str(tmp / "initrd"), "--version", version, "--key", str(key), "--out", str(out), *extra],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


class FakeEfi(mu.Efi):
    """The amd64 platform with files for slot devices; blkid is not asked (the test knows the PARTUUIDs)."""

    def __init__(self, base: Path, running: str = "a") -> None:
        super().__init__(
            esp=base / "esp", partlabels=base / "by-partlabel", cmdline=base / "cmdline",
            machine_id_file=base / "machine-id",
        )  # fmt: skip
        self.machine_id_file.write_text("5" * 32 + "\n")
        (self.esp / "loader/entries").mkdir(parents=True)
        self.partlabels.mkdir()
        for slot in ("a", "b"):
            dev = base / f"slot-{slot}"
            dev.write_bytes((b"A" if slot == "a" else b"-") * SLOT)
            (self.partlabels / f"mamori-root-{slot}").symlink_to(dev)
        self.cmdline.write_text(f"initrd=\\x root=PARTUUID=uuid-{running} ro quiet\n")
        (self.esp / "loader/entries/mamori-a.conf").write_text(
            "title Mamori (A)\nsort-key mamori\nversion 2026.12.1\noptions root=PARTUUID=uuid-a ro quiet\n"
        )

    def _partuuid(self, device: Path) -> str:
        return f"uuid-{device.name[-1]}"


@pytest.fixture
def box(tmp_path: Path, keys: dict[str, Path]) -> mu.Installer:
    (tmp_path / "state/staged").mkdir(parents=True)
    (tmp_path / "IMAGE_VERSION").write_text("2026.12.1\n")
    return mu.Installer(
        FakeEfi(tmp_path), state=tmp_path / "state", keys=keys["trusted"], version_file=tmp_path / "IMAGE_VERSION",
        arch="amd64", quiet=True,
    )  # fmt: skip


def install(box: mu.Installer, bundle: Path, tries: int = 3) -> dict:
    fd = os.open(bundle, os.O_RDONLY)
    try:
        return box.install(fd, tries)
    finally:
        os.close(fd)


def _entries(box: mu.Installer) -> list[str]:
    return sorted(p.name for p in (box.platform.esp / "loader/entries").iterdir())


@needs_tools
def test_signed_newer_bundle_goes_to_the_spare_slot_only(
    box: mu.Installer, keys: dict, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "b", keys["vendor"], "2026.12.2", b"v2")
    running_before = (tmp_path / "slot-a").read_bytes()
    res = install(box, bundle)
    assert res["ok"] and res["slot"] == "b" and res["version"] == "2026.12.2"
    assert (tmp_path / "slot-b").read_bytes() == b"v2" * (SLOT // 2)
    assert (tmp_path / "slot-a").read_bytes() == running_before
    assert _entries(box) == ["mamori-a.conf", "mamori-b+3.conf"]
    entry = (box.platform.esp / "loader/entries/mamori-b+3.conf").read_text()
    assert (
        "version 2026.12.2" in entry and "root=PARTUUID=uuid-b ro quiet" in entry and "initrd=" not in entry
    )
    assert (box.platform.esp / "mamori-b/vmlinuz").read_bytes() == b"kernel 2026.12.2"
    progress = [json.loads(line) for line in (box.state / "progress.jsonl").read_text().splitlines()]
    steps = [p["step"] for p in progress]
    assert steps[0] == "verify" and "write" in steps and "verify-readback" in steps and steps[-1] == "done"
    assert [p["percent"] for p in progress] == sorted(p["percent"] for p in progress)
    assert all(p["message_ja"] and p["message_en"] for p in progress)
    pending = json.loads((box.state / "pending.json").read_text())
    assert pending["slot"] == "b" and pending["version"] == "2026.12.2"
    assert not list(box.state.glob("tmp*")), "no copies of the bundle are left behind"


@needs_tools
@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("other-key", "update.signature"),
        ("forged-version", "update.signature"),
        ("swapped-root", "update.hash"),
        ("older", "update.downgrade"),
        ("same", "update.same"),
        ("arm64", "update.arch"),
        ("extra-member", "update.format"),
        ("not-a-tar", "update.format"),
    ],
)
def test_refused_bundles_write_nothing(
    box: mu.Installer, keys: dict, tmp_path: Path, case: str, code: str
) -> None:
    d = tmp_path / "b"
    key = keys["other"] if case == "other-key" else keys["vendor"]
    version = {"older": "2026.11.9", "same": "2026.12.1"}.get(case, "2026.12.2")
    bundle = make_bundle(d, key, version, b"v2", *(["--arch", "arm64"] if case == "arm64" else []))
    if case in ("forged-version", "swapped-root", "extra-member"):
        x = d / "x"
        x.mkdir()
        subprocess.run(["tar", "-C", str(x), "-xf", str(bundle)], check=True)
        if case == "forged-version":
            text = (x / "manifest").read_text().replace("version 2026.12.2", "version 2026.12.9")
            (x / "manifest").write_text(text)
        elif case == "swapped-root":
            subprocess.run(
                ["zstd", "-q", "-f", "-o", str(x / "root.img.zst"), "-"], input=b"evil" * 1000, check=True
            )
        else:
            (x / "run.sh").write_text("#!/bin/sh\n")
        members = sorted(p.name for p in x.iterdir())
        subprocess.run(["tar", "-C", str(x), "-cf", str(bundle), *members], check=True)
    if case == "not-a-tar":
        bundle.write_bytes(b"\0garbage" * 100)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("slot-*")}
    with pytest.raises(mu.Refused) as exc:
        install(box, bundle)
    assert exc.value.code == code, exc.value
    assert {p.name: p.read_bytes() for p in tmp_path.glob("slot-*")} == before, "no slot was written"
    assert _entries(box) == ["mamori-a.conf"], "no boot entry was touched"


@needs_tools
def test_signed_rollback_bundle_is_installed(box: mu.Installer, keys: dict, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", keys["vendor"], "2026.11.9", b"v0", "--rollback-allowed")
    assert install(box, bundle)["version"] == "2026.11.9"


@needs_tools
def test_interrupted_write_leaves_the_running_slot_and_the_next_attempt_starts_over(
    box: mu.Installer, keys: dict, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "b", keys["vendor"], "2026.12.2", b"v2")
    # A stale entry for the spare slot (an older, finished install) must be gone before the slot is written.
    (box.platform.esp / "loader/entries/mamori-b.conf").write_text("version 2026.12.0\n")

    class PowerCut(Exception):
        pass

    real = box.progress

    def cut(step: str, percent: int, ja: str = "", en: str = "") -> None:
        real(step, percent, ja, en)
        if step == "write" and percent > 10:
            raise PowerCut

    box.progress = cut  # type: ignore[method-assign]
    running_before = (tmp_path / "slot-a").read_bytes()
    with pytest.raises(PowerCut):
        install(box, bundle)
    assert _entries(box) == ["mamori-a.conf"], "a half-written slot is never bootable"
    assert (tmp_path / "slot-a").read_bytes() == running_before
    box.progress = real  # type: ignore[method-assign]
    assert install(box, bundle)["ok"]
    assert _entries(box) == ["mamori-a.conf", "mamori-b+3.conf"]


def _request(box: mu.Installer, **fields: object) -> None:
    req = {"id": "0123abcd", "bundle": "v2.tar", "reboot": "now", "requested_by": "admin"}
    req.update(fields)
    (box.state / "request.json").write_text(json.dumps(req))


@needs_tools
def test_request_contract(
    box: mu.Installer, keys: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reboots: list[str] = []
    monkeypatch.setattr(mu, "schedule_reboot", lambda _p, when: reboots.append(when))
    monkeypatch.setattr(mu, "LOCK", tmp_path / "run/lock")
    shutil.copyfile(
        make_bundle(tmp_path / "b", keys["vendor"], "2026.12.2", b"v2"), box.state / "staged/v2.tar"
    )
    at = f"at:{(utc_now() + dt.timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}"  # tomorrow by the test clock
    _request(box, reboot=at)
    assert mu.handle_request(box) == 0
    result = json.loads((box.state / "result.json").read_text())
    assert result["ok"] and result["id"] == "0123abcd" and result["slot"] == "b" and result["code"] == ""
    assert result["reboot"] == at and reboots == [at]
    assert not (box.state / "request.json").exists() and (box.state / "request.taken.json").exists()
    assert all(
        json.loads(x)["id"] == "0123abcd" for x in (box.state / "progress.jsonl").read_text().splitlines()
    )
    assert mu.handle_request(box) == 0 and reboots == [at], "no request, nothing done"


@needs_tools
@pytest.mark.parametrize(
    ("fields", "setup"),
    [
        ({"bundle": "../../../etc/shadow"}, None),
        ({"bundle": "staged/v2.tar"}, None),
        ({"bundle": ".hidden.tar"}, None),
        ({"bundle": "link.tar"}, "symlink"),
        ({"bundle": "dir.tar"}, "dir"),
        ({"bundle": "missing.tar"}, None),
        ({"reboot": "later"}, None),
        ({"reboot": "at:2026-12-07T17:00:00"}, None),  # no zone: refused, not guessed
        ({"id": "x; rm -rf /"}, None),
    ],
)
def test_requests_outside_the_contract_are_refused(
    box: mu.Installer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict, setup: str | None
) -> None:
    monkeypatch.setattr(mu, "schedule_reboot", lambda *_: pytest.fail("must not reboot"))
    monkeypatch.setattr(mu, "LOCK", tmp_path / "run/lock")
    if setup == "symlink":
        (box.state / "staged/link.tar").symlink_to(tmp_path / "slot-a")
    elif setup == "dir":
        (box.state / "staged/dir.tar").mkdir()
    _request(box, **fields)
    assert mu.handle_request(box) == 0, "a refusal is an answer in result.json, not a failed unit"
    result = json.loads((box.state / "result.json").read_text())
    assert not result["ok"] and result["code"] == "update.format" and result["message_ja"], result
    assert _entries(box) == ["mamori-a.conf"]


def test_a_write_that_breaks_fails_the_unit_a_refusal_does_not(
    box: mu.Installer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 0 after a refusal (the answer is result.json; the root unit must not stay "failed"), exit 1 when
    the write itself broke (a disk or ESP problem that needs a person)."""
    monkeypatch.setattr(mu, "schedule_reboot", lambda *_: pytest.fail("must not reboot"))
    monkeypatch.setattr(mu, "LOCK", tmp_path / "run/lock")
    (box.state / "staged/v2.tar").write_bytes(b"not a tar")
    _request(box)
    assert mu.handle_request(box) == 0
    assert json.loads((box.state / "result.json").read_text())["code"] == "update.format"

    def broken(*_: object) -> dict:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(box, "install", broken)
    _request(box, id="0123abce")
    assert mu.handle_request(box) == 1
    result = json.loads((box.state / "result.json").read_text())
    assert result["id"] == "0123abce" and result["code"] == "update.write" and not result["ok"], result


def test_status_reports_a_rolled_back_update(box: mu.Installer) -> None:
    entries = box.platform.esp / "loader/entries"
    (entries / "mamori-b+0-3.conf").write_text("version 2026.12.2\n")
    (box.state / "pending.json").write_text(json.dumps({"id": "1", "version": "2026.12.2", "slot": "b"}))
    report = mu.boot_report(box.platform, box.state, box.version_file)
    assert report["running"] == {"slot": "a", "version": "2026.12.1"}
    assert report["trial"]["outcome"] == "rolled-back" and report["fallback"]["state"] == "bad"
    assert json.loads((box.state / "boot.json").read_text())["trial"]["outcome"] == "rolled-back"
    assert not (box.state / "pending.json").exists(), "a final outcome ends the pending update"


def test_status_reports_a_good_update(box: mu.Installer, tmp_path: Path) -> None:
    box.platform.cmdline.write_text("root=PARTUUID=uuid-b ro\n")
    (box.platform.esp / "loader/entries/mamori-b.conf").write_text("version 2026.12.2\n")
    (box.state / "pending.json").write_text(json.dumps({"id": "1", "version": "2026.12.2", "slot": "b"}))
    report = mu.boot_report(box.platform, box.state, box.version_file)
    assert report["trial"]["outcome"] == "good" and report["fallback"]["slot"] == "a"


def test_machine_id_goes_on_the_running_entry_once(box: mu.Installer) -> None:
    assert box.platform.persist_machine_id("0" * 31 + "1")
    text = (box.platform.esp / "loader/entries/mamori-a.conf").read_text()
    assert (
        text.count("systemd.machine_id=" + "0" * 31 + "1") == 1 and "\noptions root=PARTUUID=uuid-a" in text
    )
    assert not box.platform.persist_machine_id("0" * 31 + "2")


def test_status_before_any_update_has_an_empty_fallback(box: mu.Installer, tmp_path: Path) -> None:
    """docs/update.md: fallback is null only when there is no second slot (the control plane refuses then)."""
    assert mu.status(box.platform, box.state, box.version_file)["fallback"] == {
        "slot": "b",
        "version": None,
        "state": "empty",
    }
    (box.platform.partlabels / "mamori-root-b").unlink()
    assert mu.status(box.platform, box.state, box.version_file)["fallback"] is None


@pytest.mark.parametrize("planted", ["progress.jsonl", ".result.json.tmp", "result.json"])
def test_links_the_control_plane_plants_in_the_state_directory_are_not_written_through(
    box: mu.Installer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    """The state directory is the sandboxed control plane's; the root side must not follow a link it left
    there (to a slot's block device, say) when it writes progress.jsonl or result.json."""
    monkeypatch.setattr(mu, "schedule_reboot", lambda *_: pytest.fail("must not reboot"))
    monkeypatch.setattr(mu, "LOCK", tmp_path / "run/lock")
    victim = tmp_path / "slot-a"
    before = victim.read_bytes()
    (box.state / planted).symlink_to(victim)
    _request(box, bundle="missing.tar")
    assert mu.handle_request(box) == 0, "a refusal is an answer in result.json, not a failed unit"
    assert victim.read_bytes() == before, "the running slot was written through a planted link"
    result = json.loads((box.state / "result.json").read_text())
    assert not result["ok"] and result["code"] == "update.format"
    assert not (box.state / ".result.json.tmp").exists()


def test_state_files_that_are_no_plain_files_are_ignored_not_read(box: mu.Installer, tmp_path: Path) -> None:
    """pending.json as a FIFO (would hang the report), or a link to an endless device (would exhaust memory),
    is read as absent."""
    os.mkfifo(box.state / "pending.json")
    assert mu._load_json(box.state / "pending.json") is None
    (box.state / "slots.json").symlink_to("/dev/zero")
    assert mu._load_json(box.state / "slots.json") is None
    (box.state / "big.json").write_text(json.dumps({"x": "y" * 70000}))
    assert mu._load_json(box.state / "big.json") is None
    (box.state / "ok.json").write_text('{"slot": "b"}')
    assert mu._load_json(box.state / "ok.json") == {"slot": "b"}


def test_a_request_that_is_a_fifo_is_refused_not_waited_for(
    box: mu.Installer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mu, "schedule_reboot", lambda *_: pytest.fail("must not reboot"))
    monkeypatch.setattr(mu, "LOCK", tmp_path / "run/lock")
    os.mkfifo(box.state / "request.json")
    assert mu.handle_request(box) == 0, "a refusal is an answer in result.json, not a failed unit"
    assert json.loads((box.state / "result.json").read_text())["code"] == "update.format"


@needs_tools
def test_new_slot_boots_with_the_running_machine_id(box: mu.Installer, keys: dict, tmp_path: Path) -> None:
    """The first boot writes the id into its own entry after the kernel started, so /proc/cmdline may lack
    it when the first update comes: the new entry takes it from the running system, once."""
    install(box, make_bundle(tmp_path / "b", keys["vendor"], "2026.12.2", b"v2"))
    entry = (box.platform.esp / "loader/entries/mamori-b+3.conf").read_text()
    assert entry.count("systemd.machine_id=" + "5" * 32) == 1
    assert (
        mu.with_machine_id("ro systemd.machine_id=" + "6" * 32, box.platform.machine_id_file).count(
            "machine_id"
        )
        == 1
    )
