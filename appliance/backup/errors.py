"""Typed errors of the backup area, each with a stable code and a message clinic staff can act on.

They all derive from `appliance.errors.MamoriError`, so the CLI and web UI edges print them in Japanese
(or English) without knowing about backups.
"""

from __future__ import annotations

from appliance.errors import MamoriError


class BackupError(MamoriError):
    """Base of every backup failure. Whatever raised it, the running box was not changed."""

    code = "backup"


class WrongPassphraseError(BackupError):
    code = "backup.passphrase"

    def __init__(self) -> None:
        super().__init__(
            "パスフレーズが違います（またはファイルの先頭が壊れています）。機器は変更していません",
            "wrong passphrase (or the start of the file is damaged); the box was not changed",
        )


class CorruptArchiveError(BackupError):
    code = "backup.corrupt"

    def __init__(self, ja_detail: str, en_detail: str) -> None:
        super().__init__(
            f"バックアップファイルが壊れているか、改ざんされています（{ja_detail}）。機器は変更していません",
            f"the backup file is damaged or was tampered with ({en_detail}); the box was not changed",
        )


class WeakPassphraseError(BackupError):
    code = "backup.weak_passphrase"


class NoPassphraseError(BackupError):
    code = "backup.no_passphrase"

    def __init__(self) -> None:
        super().__init__(
            "バックアップ用パスフレーズが設定されていません。`mamori backup set-passphrase` で設定してください",
            "no backup passphrase is set; set one with `mamori backup set-passphrase`",
        )


class RestoreError(BackupError):
    """Swapping the restored state in failed; the previous state was put back."""

    code = "backup.restore"
