"""The refusals of an update, each with a stable code (the same codes the root installer writes in
result.json, docs/update.md) and a message in Japanese and English that says what to do."""

from __future__ import annotations

from appliance.errors import MamoriError


class UpdateRefused(MamoriError):
    """An update was refused; nothing was staged, requested or written."""

    code = "update.refused"


def signature() -> UpdateRefused:
    return UpdateRefused(
        "署名を確認できませんでした。この機器が信頼する発行元のものではないか、途中で書き換えられています。"
        "更新は行いません。",
        "the signature does not match any trusted update key: refused",
        code="update.signature",
    )


def fmt(ja: str, en: str) -> UpdateRefused:
    return UpdateRefused(f"更新ファイルの形式が正しくありません（{ja}）。", f"not a Mamori update: {en}",
                         code="update.format")  # fmt: skip


def hash_mismatch(name: str) -> UpdateRefused:
    return UpdateRefused(
        f"更新ファイルの中身（{name}）が署名された内容と一致しません。壊れているか書き換えられています。",
        f"the bundle's {name} does not match its signed manifest",
        code="update.hash",
    )


def downgrade(new: str, running: str) -> UpdateRefused:
    return UpdateRefused(
        f"版 {new} は動いている版 {running} より古いため、更新しません（古い版には直した弱点が残っています）。"
        "戻す必要があるときは、保守業者が署名した「戻し用」の更新ファイルを使ってください。",
        f"version {new} is older than the running {running}: a downgrade is refused unless the bundle is signed"
        " with rollback-allowed",
        code="update.downgrade",
    )


def failed_here(version: str) -> UpdateRefused:
    return UpdateRefused(
        f"版 {version} は、この機器で更新後の確認に失敗して元の版に戻ったため、もう一度は入れません。"
        "保守業者に直した版を依頼してください。",
        f"version {version} failed its health check on this box and was rolled back: it is not installed again"
        " (a fixed release has a new version)",
        code="update.failed_here",
    )


def same(version: str) -> UpdateRefused:
    return UpdateRefused(f"版 {version} はすでに動いています。更新の必要はありません。",
                         f"version {version} is already running", code="update.same")  # fmt: skip


def min_from(needed: str, running: str) -> UpdateRefused:
    return UpdateRefused(
        f"この更新は版 {needed} 以降からしか入れられません（動いている版は {running}）。先に間の版を入れてください。",
        f"this update needs version {needed} or later to be running (running: {running})",
        code="update.min_from",
    )


def arch(bundle: str, box: str) -> UpdateRefused:
    return UpdateRefused(
        f"この更新ファイルは別の種類の機器用です（ファイル: {bundle}、この機器: {box}）。",
        f"the bundle is for {bundle}, this box is {box}",
        code="update.arch",
    )


def not_image(reason_ja: str, reason_en: str) -> UpdateRefused:
    return UpdateRefused(
        f"この機器は Mamori の機器用イメージで動いていないため、更新を入れられません（{reason_ja}）。"
        "確認と保存だけは行えます。",
        f"this is not a Mamori image box ({reason_en}): it cannot install an update (verification and staging"
        " still work)",
        code="update.not_image",
    )


def space(needed: int, free: int) -> UpdateRefused:
    return UpdateRefused(
        f"保存する場所が足りません（必要 {needed // 1048576} MB、空き {free // 1048576} MB）。",
        f"not enough space (needed {needed // 1048576} MiB, free {free // 1048576} MiB)",
        code="update.space",
    )


def too_big(limit: int) -> UpdateRefused:
    return UpdateRefused(
        f"更新ファイルが大きすぎます（上限 {limit // 1048576} MB）。",
        f"the file is larger than the limit ({limit // 1048576} MiB)",
        code="update.space",
    )


def busy() -> UpdateRefused:
    return UpdateRefused(
        "いま別の更新を入れています。終わるまでお待ちください。",
        "an update is being installed: wait until it ends",
        code="update.busy",
    )


def check_busy() -> UpdateRefused:
    return UpdateRefused(
        "いま別の確認（受け取り）が進んでいます。終わってから、もう一度お試しください。",
        "another update check (download) is running: try again when it ends",
        code="update.check_busy",
    )


def fetch(ja: str, en: str) -> UpdateRefused:
    return UpdateRefused(f"更新の確認先に接続できませんでした（{ja}）。", f"could not fetch the update: {en}",
                         code="update.fetch")  # fmt: skip
