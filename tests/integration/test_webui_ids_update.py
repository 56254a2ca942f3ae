"""設定 → IDS → ルールの更新, end to end with real Suricata: an administrator uploads a small archive built at
test time from real ET Open rules (../shared/data/et-open-2024-04, never copied into the repo), `suricata -T`
accepts it, it goes live and the page says how many rules; then a hostile archive (a symlink to
/etc/passwd, a path that climbs out, a broken rule) is refused in Japanese and the previous rules stay live.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from ids import sources
from ids.render import SuricataPaths
from tests.webui_fixtures import Box, audit_actions, make_box, session_token

REPO = Path(__file__).resolve().parents[2]
ET = REPO.parent / "shared" / "data" / "et-open-2024-04"
RULES_TAKEN = 12

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not ET.is_dir(), reason="ET Open snapshot ../shared/data/et-open-2024-04 is absent"),
    pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed"),
    pytest.mark.timeout(300),
]


def small_archive(tmp_path: Path) -> tuple[Path, list[int]]:
    """The ET Open download's layout (rules/*.rules) with the first enabled rules of emerging-scan."""
    lines = [ln for ln in (ET / "emerging-scan.rules").read_text().splitlines() if ln.startswith("alert ")]
    taken = lines[:RULES_TAKEN]
    sids = [int(re.search(r"sid:(\d+);", ln).group(1)) for ln in taken]
    archive = tmp_path / "emerging.rules.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "rules/emerging-scan.rules", ("\n".join(taken) + "\n").encode())
    return archive, sids


def hostile_archive(tmp_path: Path, escape: Path) -> Path:
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("rules/emerging-scan.rules")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        _add(tar, "../" * 12 + str(escape).lstrip("/"),
             b'alert tcp any any -> any any (msg:"broken"; nosuchkeyword:1; sid:2999999; rev:1;)\n')  # fmt: skip
    return archive


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _upload(box: Box, client, archive: Path):
    return client.post(
        "/settings/ids/rules",
        data={
            "csrf_token": session_token(client),
            "archive": (io.BytesIO(archive.read_bytes()), archive.name),
        },
        content_type="multipart/form-data",
    )


def test_admin_uploads_real_rules_then_a_hostile_archive_is_refused(tmp_path: Path) -> None:
    box = make_box(tmp_path)
    box.add("admin", "admin")
    client = box.client()
    box.login(client, "admin")
    archive, sids = small_archive(tmp_path)

    r = _upload(box, client, archive)
    page = r.get_data(as_text=True)
    assert r.status_code == 200, page
    assert f"届いたファイルのルールは {RULES_TAKEN} 件" in page and "ルールを更新しました" in page
    live = SuricataPaths.under(box.ctx.paths.run_dir).rules
    live_text = live.read_text()
    assert all(f"sid:{sid};" in live_text for sid in sids)
    installed = sources.info(sources.current_source(box.ctx.paths))
    assert installed.rules == RULES_TAKEN
    assert "ids.rules.update" in audit_actions(box, "admin")
    enabled = int(re.search(r"含む）は ([\d,]+) 件", page).group(1).replace(",", ""))
    assert enabled > RULES_TAKEN  # Mamori's own clinic rules are always there too
    assert f"使っているルールは {enabled:,} 件" in client.get("/settings/ids").get_data(as_text=True)

    # Lands (by base name) as emerging-scan.rules, a category the clinic profile loads, so -T sees it.
    escape = Path(f"/tmp/mamori-escape-{os.getpid()}/emerging-scan.rules")
    r = _upload(box, client, hostile_archive(tmp_path, escape))
    page = r.get_data(as_text=True)
    assert r.status_code == 400
    assert (
        "ルールを更新できませんでした。ファイルの中に Mamori（Suricata）が読み込めないルールがありました。"
        in page
    )
    assert "nosuchkeyword" in page  # Suricata's reason, folded away for the vendor
    assert "これまでのルールがそのまま使われています" in page
    assert not escape.exists()  # the climbing path was taken by its base name only
    assert live.read_text() == live_text  # the previous rules stay live
    assert sources.info(sources.current_source(box.ctx.paths)).sha256 == installed.sha256
    assert audit_actions(box, "admin")[:2] == ["ids.rules.update_failed", "ids.rules.update"]
    assert [p.name for p in (box.ctx.paths.state_dir / "ids" / "uploads").iterdir()] == [".lock"]
