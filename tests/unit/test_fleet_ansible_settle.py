"""The Ansible module's settle() against the real fleet API (fleetapi/, Flask test client on a real state
database): a confirmation the box forbids (403 fleet.not_yours: the pending change is another account's)
ends the wait at once with the box's reason, instead of asking again until the confirm deadline."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.test_fleet_api import _box, _pending_by, no_timer  # noqa: F401  (fixture)
from tests.webui_fixtures import Box

MODULE = Path(__file__).resolve().parents[2] / "fleet/ansible/plugins/modules/config.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mamori_ansible_config", MODULE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ThroughClient:
    """The module's Box, with the requests sent through the Flask test client instead of a TLS socket; the
    answers are turned into results and Refused exactly as Box.call does."""

    def __init__(self, mod: ModuleType, box: Box, token: str) -> None:
        self.mod, self.box, self.token, self.timeout, self.calls = mod, box, token, 10, []

    def call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> dict:
        self.calls.append((method, path))
        headers = {"Authorization": f"Bearer {self.token}"}
        r = self.box.client().open("/api/v1" + path, method=method, json=body, headers=headers,
                                   base_url="https://localhost")  # fmt: skip
        if r.status_code != 200:
            raise self.mod.Refused(r.status_code, r.json)
        return r.json


def test_settle_stops_at_once_when_the_pending_change_is_not_ours(tmp_path: Path) -> None:
    mod = _module()
    box, token = _box(tmp_path)
    client = ThroughClient(mod, box, token)
    before = client.call("GET", "/config")["revision"]["id"]
    # the apply's answer was lost (new_rev None); meanwhile the pending change is the administrator's
    admins = _pending_by(box, "admin", "web", "管理者の変更")
    started = time.monotonic()
    with pytest.raises(mod.Refused) as refused:
        mod.settle(client, before, None, started, confirm_within=120, rollback_wait=60)
    assert refused.value.status == 403 and refused.value.code == "fleet.not_yours"
    assert "admin さんの変更" in refused.value.ja
    assert time.monotonic() - started < 30, "no waiting for the deadline"
    assert client.calls == [("GET", "/config"), ("GET", "/config"), ("POST", "/config/confirm")]
    assert _pending_is(client, admins)


def _pending_is(client: ThroughClient, revision: int) -> bool:
    """The administrator's change is still pending: the refusal changed nothing on the box."""
    return (client.call("GET", "/config").get("pending") or {}).get("revision") == revision
