"""The `fleet:` section of the config: whether the box accepts config changes from the vendor's fleet API.

Off by default; only the clinic's administrator may change it (`fleet.manage`, never grantable to a vendor:
appliance.config.authority), so a vendor can never switch his own bulk access on. While off, the API still
answers reads (the vendor may see drift) but refuses validate-and-apply with a reason in Japanese and English.
"""

from __future__ import annotations

from appliance.config.types import Strict


class FleetConfig(Strict):
    # 保守業者による設定の一括変更を許可する
    allow_changes: bool = False
