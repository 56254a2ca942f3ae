"""設定 → IDS: a rules archive uploaded by an administrator, handed to `ids.updates.update_rules`.

The upload is untrusted bytes until Suricata has accepted it: the web UI streams it (size-capped) into the
upload spool (appliance.actions.spool) and names it to the daemon's `ids.rules_install`, which copies it into its own
directory here (`upload_dir`, root's), never into the live rules, and removes it afterwards whatever happened.
`ids.updates` stages, tests with `suricata -T`, swaps in and reloads, and keeps the previous rules on any
failure; this module only turns its result or its refusal into one sentence a clinic can read.
Non-goal: checking the archive's contents here — `ids.sources` is the one place that parses archives.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.subsystem import Context

log = logging.getLogger(__name__)

MAX_UPLOAD = 64 * 1024 * 1024  # the ET Open snapshot is ~5 MB compressed; 64 MB leaves room, not abuse
CHUNK = 1024 * 1024
SUFFIXES = (".tar.gz", ".tgz")
KEEP_LIVE = "これまでのルールがそのまま使われています（見張りは止まっていません）。"


class RulesUploadError(MamoriError):
    """The upload was refused before it reached the IDS (wrong type, too large, empty, another update)."""

    code = "webui.rules_upload"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str  # one plain sentence for the clinic
    detail: str = ""  # Suricata's own words, for the vendor


# What a refusal means for the clinic, by the error's stable code; anything else: the error's own text.
REFUSALS = {
    "ids.test_failed": "ファイルの中に Mamori（Suricata）が読み込めないルールがありました。",
    "ids.reload_failed": "新しいルールを見張りに反映できませんでした。",
}
NEXT_STEP = "このファイルのことを保守業者に伝えてください。"


def upload_dir(ctx: Context) -> Path:
    """The daemon's working directory for an upload being installed (and the lock): not the web UI's."""
    d = ctx.paths.state_dir / "ids" / "uploads"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def check_name(filename: str) -> None:
    if not filename.lower().endswith(SUFFIXES):
        raise RulesUploadError(
            "ルールのファイルは .tar.gz の形式で選んでください（保守業者から受け取ったファイルです）。",
            "choose the rules as a .tar.gz archive",
        )


@contextmanager
def one_update_at_a_time(ctx: Context) -> Iterator[None]:
    """Two updates at once would share ids.sources' staging directory: the second is refused, not queued."""
    with open(upload_dir(ctx) / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RulesUploadError(
                "別のルール更新が進行中です。数分待ってからもう一度お試しください。",
                "another rule update is running",
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install(ctx: Context, cfg: MamoriConfig, archive: Path, actor: str) -> Outcome:
    """Run the real update and say in one sentence what happened. `update_rules` audits both outcomes."""
    from ids.updates import update_rules

    try:
        result = update_rules(ctx, cfg, src=archive, actor=actor, origin="web")
    except MamoriError as exc:
        log.warning("rule upload refused: %s", exc.text("en"))
        own = exc.text("ja").replace(str(archive), "アップロードされたファイル")
        reason = REFUSALS.get(exc.code, own.rstrip("。") + "。")
        return Outcome(
            False, f"ルールを更新できませんでした。{reason}{KEEP_LIVE}{NEXT_STEP}",
            detail="" if reason.startswith(own.rstrip("。")) else exc.text("en").replace(str(archive), "(upload)"),
        )  # fmt: skip
    return Outcome(
        True,
        f"ルールを更新しました。届いたファイルのルールは {result.source_rules:,} 件、"
        f"そのうちこの医院の設定で使うルール（Mamori 独自のルールを含む）は {result.enabled:,} 件です。",
    )
