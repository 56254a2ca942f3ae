"""The `update:` section of the config: where the box looks for updates and what it does with them.

`source` is the HTTPS URL of a static directory holding index.json, index.json.sig and the bundles.
`auto`: off (never look), notify (look, download and verify, tell the clinic; a person installs), install (also
install within the quiet hours). `quiet_hours` is in clinic time (clinic.timezone) and may cross midnight.
`ca_file` trusts a CA file instead of the system's CAs (a vendor's own CA). Only an administrator may change
this section (appliance.config.authority, UPDATE_MANAGE): where a box takes new code from is never a
vendor's own choice.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from appliance.config.types import Duration, Strict, mamori_error


def _https(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise mamori_error(
            "更新の確認先は https:// で始めてください", "the update source must start with https://"
        )
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        host = None
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise mamori_error("URL の形式が正しくありません（例: https://updates.example.jp/mamori/）",
                           "not a valid URL (e.g. https://updates.example.jp/mamori/)")  # fmt: skip
    return url if url.endswith("/") else url + "/"


_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")


def _quiet(value: str) -> str:
    m = _HOURS.fullmatch(value)
    if not m or m.group(1, 2) == m.group(3, 4):
        raise mamori_error("静かな時間帯は 02:00-04:00 のように書いてください（開始と終了は別の時刻）",
                           "quiet hours look like 02:00-04:00 (start and end differ)")  # fmt: skip
    return value


def _ca_file(value: str) -> str:
    if not value.startswith("/"):
        raise mamori_error(
            "CA ファイルは / から始まる場所で書いてください", "ca_file must be an absolute path"
        )
    return value


class UpdateConfig(Strict):
    source: Annotated[str, AfterValidator(_https)] | None = Field(default=None, max_length=500)
    auto: Literal["off", "notify", "install"] = "notify"
    quiet_hours: Annotated[str, AfterValidator(_quiet)] = "02:00-04:00"
    check_interval: Duration = "6h"
    ca_file: Annotated[str, AfterValidator(_ca_file)] | None = Field(default=None, max_length=300)
    max_bundle_mb: int = Field(default=1024, ge=16, le=8192)
