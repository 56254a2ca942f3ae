"""Revision numbers from a vendor's request that SQLite cannot hold (more than 2**63 - 1) are a clear answer of
the fleet API (400 fleet.body, 404 fleet.no_revision, JSON), never an internal error page."""

from __future__ import annotations

import pytest

from appliance.service import ConfigService
from tests.unit.test_fleet_api import _box, _call


@pytest.fixture(autouse=True)
def no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ConfigService, "_start_confirm_timer", lambda self: None)


@pytest.mark.parametrize("number", [2**63, 2**70, 0, -1])
def test_a_confirm_naming_no_possible_revision_is_a_bad_body(tmp_path, number: int) -> None:
    box, token = _box(tmp_path)
    r = _call(box, "POST", "/api/v1/config/confirm", token, {"revision": number})
    assert r.status_code == 400 and r.is_json and r.json["error"]["code"] == "fleet.body"


def test_a_revision_number_too_large_for_the_database_is_not_found(tmp_path) -> None:
    box, token = _box(tmp_path)
    r = _call(box, "GET", f"/api/v1/revisions/{2**70}", token)
    assert r.status_code == 404 and r.is_json and r.json["error"]["code"] == "fleet.no_revision"
