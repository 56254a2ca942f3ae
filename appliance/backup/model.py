"""The `backup:` section of the config: when scheduled backups run, how many are kept, and where.

The passphrase is deliberately not here: the config is shown in the web UI, diffed, kept in revisions and
inside the backups themselves. It lives in a 0600 file in the keys directory (`mamori backup
set-passphrase`). This module imports only pydantic, so `appliance.config.model` can import it without a
cycle; errors carry both languages in the same form as `appliance.config.types.mamori_error`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _error(ja: str, en: str) -> PydanticCustomError:
    return PydanticCustomError("mamori", "{en}", {"ja": ja, "en": en})


def _check_time(value: str) -> str:
    if not _HHMM.match(value):
        raise _error(
            f"「{value}」は時刻の形式ではありません（例: 03:00）",
            f"'{value}' is not a time of day (e.g. 03:00)",
        )
    return value


def _check_dir(value: str) -> str:
    if not value.startswith("/") or "\x00" in value or "/../" in f"{value}/":
        raise _error(
            "バックアップの保存先は「/」で始まる絶対パスで指定してください（例: /mnt/usb/mamori）",
            "the backup directory must be an absolute path (e.g. /mnt/usb/mamori)",
        )
    return value


class BackupConfig(BaseModel):
    """Scheduled backups: on by default, daily at 03:00 in the clinic's time zone, seven generations kept."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    enabled: bool = True
    time: Annotated[str, AfterValidator(_check_time)] = "03:00"
    keep: int = Field(default=7, ge=1, le=365)
    dir: Annotated[str, AfterValidator(_check_dir)] | None = None
