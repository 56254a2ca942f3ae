"""Rule parsing, profile selection, enable/disable, and installing an offline rule source safely."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from appliance.paths import Paths
from ids.rules import CLINIC_CATEGORIES, Selection, build, category_of, load_source, mamori_rules, parse_rules
from ids.sources import RuleSourceError, commit_staged, current_source, rollback, stage

ET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "et-open-2024-04"
SAMPLE = """\
# a comment, not a rule
alert tcp any any -> any 1 (msg:"A \\"quoted\\" one"; classtype:attempted-recon; sid:100; rev:1;)
# alert tcp any any -> any 2 (msg:"B disabled"; sid:101; rev:2;)
alert tcp any any -> any 3 (msg:"C no sid"; rev:1;)

#alert udp any any -> any 4 (msg:"D"; classtype:misc-activity; sid:102; rev:1;)
"""


def test_parse_rules() -> None:
    rules = parse_rules(SAMPLE, "scan")
    assert [(r.sid, r.enabled) for r in rules] == [(100, True), (101, False), (102, False)]
    assert rules[0].msg == 'A \\"quoted\\" one' and rules[0].classtype == "attempted-recon"
    assert rules[2].text.startswith("alert udp") and rules[1].classtype == "unknown"


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("emerging-scan.rules", "scan"),
        ("botcc.rules", "botcc"),
        ("/x/emerging-web_client.rules", "web_client"),
    ],
)
def test_category_of(name: str, category: str) -> None:
    assert category_of(name) == category


def _third() -> list:
    return parse_rules(SAMPLE, "scan") + parse_rules(
        'alert tcp any any -> any 5 (msg:"P"; sid:200; rev:1;)\n', "policy"
    )


@pytest.mark.parametrize(
    ("selection", "enabled_sids", "commented_sids", "unknown"),
    [
        (Selection("clinic"), {100}, {101, 102}, []),
        (Selection("full"), {100, 200}, {101, 102}, []),
        (Selection("full", enable_sids=(101,), disable_sids=(100,)), {101, 200}, {100, 102}, []),
        (Selection("full", disable_categories=("emerging-policy",)), {100}, {101, 102, 200}, []),
        (Selection("clinic", enable_sids=(200, 999)), {100}, {101, 102}, [200, 999]),
    ],
)
def test_build_selection(selection, enabled_sids, commented_sids, unknown) -> None:
    built = build(_third(), selection)
    own = {r.sid for r in mamori_rules()}
    lines = built.text.splitlines()[1:]
    on = {int(line.split("sid:")[1].split(";")[0]) for line in lines if not line.startswith("#")}
    off = {int(line.split("sid:")[1].split(";")[0]) for line in lines if line.startswith("# ")}
    assert on == own | enabled_sids
    assert off == commented_sids
    assert built.enabled == len(on) and built.unknown_sids == unknown


def test_mamori_rules_can_be_disabled_by_sid_but_never_dropped() -> None:
    built = build([], Selection("clinic", disable_sids=(1990007,)))
    assert "# alert ip $DEVICES_NET" in built.text
    assert built.total == len(mamori_rules())


@pytest.mark.skipif(not ET.is_dir(), reason="ET Open snapshot ../shared/data/et-open-2024-04 is absent")
def test_et_open_profiles_counts() -> None:
    rules = load_source(ET)
    clinic, full = build(rules, Selection("clinic")), build(rules, Selection("full"))
    assert full.enabled > 20_000
    assert 3_000 < clinic.enabled < full.enabled / 2
    assert set(clinic.by_category) - {"mamori"} <= CLINIC_CATEGORIES
    assert "info" in full.by_category and "info" not in clinic.by_category


def _tar(path: Path, members: dict[str, bytes], extra=None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            extra(tar)
    return path


def test_offline_archive_install_and_rollback(tmp_path: Path) -> None:
    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path / "state")
    rule = b'alert tcp any any -> any 1 (msg:"X"; sid:300; rev:1;)\n'

    def hostile(tar: tarfile.TarFile) -> None:
        link = tarfile.TarInfo("rules/evil.rules")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)

    a1 = _tar(
        tmp_path / "one.tar.gz", {"rules/emerging-scan.rules": rule, "../../escape.rules": rule}, hostile
    )
    stage(paths, a1)
    info1 = commit_staged(paths)
    assert sorted(p.name for p in current_source(paths).iterdir()) == ["emerging-scan.rules", "escape.rules"]
    assert not (tmp_path / "escape.rules").exists() and info1.rules == 2
    a2 = _tar(tmp_path / "two.tar.gz", {"rules/emerging-scan.rules": rule + rule.replace(b"300", b"301")})
    stage(paths, a2)
    info2 = commit_staged(paths)
    assert (info2.files, info2.rules) == (1, 2)
    assert rollback(paths).sha256 == info1.sha256


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: _tar(d / "empty.tar.gz", {"README.md": b"hi"}), "no rules found"),
        (lambda d: (d / "junk.tar.gz").write_bytes(b"not gzip") and d / "junk.tar.gz", "cannot read"),
        (lambda d: d / "missing-dir", "neither"),
    ],
)
def test_bad_sources_are_refused(tmp_path: Path, make, message: str) -> None:
    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path / "state")
    with pytest.raises(RuleSourceError) as err:
        stage(paths, make(tmp_path))
    assert message in err.value.text("en") and err.value.text("ja") != err.value.text("en")
    assert current_source(paths) is None


def test_rollback_without_previous_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleSourceError):
        rollback(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path / "s"))
