"""A vendor API token belongs to the account it was made for, not to its name: when that account is deleted
and a new vendor account gets the same name, the old token does not open it (fleetapi.tokens.authenticate).
Times are relative to appliance.clock.wall(), so the test passes at any date."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from appliance.clock import wall
from appliance.storage import Database
from fleetapi.tokens import TokenStore
from tests.unit.test_fleet_retention import At
from tests.webui_fixtures import PASSWORD
from webui.accounts import AccountStore


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "state.db")
    d.migrate()
    return d


def _vendor(db: Database, at: float) -> None:
    AccountStore(db, clock=At(at)).create(
        "hoshu", PASSWORD, "vendor", totp_secret=pyotp.random_base32(), expires_at=at + 30 * 86400
    )


def test_a_token_opens_its_own_account(db: Database) -> None:
    t0 = wall()
    _vendor(db, t0)
    _, token = TokenStore(db, clock=At(t0 + 60)).create("hoshu", "admin")
    found = TokenStore(db, clock=At(t0 + 120)).authenticate(token)
    assert found is not None and found[1].name == "hoshu"


def test_a_deleted_accounts_token_does_not_open_a_new_account_of_the_same_name(db: Database) -> None:
    t0 = wall()
    _vendor(db, t0)
    _, token = TokenStore(db, clock=At(t0 + 60)).create("hoshu", "admin")
    AccountStore(db).delete("hoshu")
    _vendor(db, t0 + 3600)
    assert TokenStore(db, clock=At(t0 + 3700)).authenticate(token) is None
    _, fresh = TokenStore(db, clock=At(t0 + 3800)).create("hoshu", "admin")
    assert TokenStore(db, clock=At(t0 + 3900)).authenticate(fresh) is not None


def test_a_clock_stepped_back_between_account_and_token_does_not_lock_the_vendor_out(db: Database) -> None:
    t0 = wall()
    _vendor(db, t0 + 3600)  # the account was made while the clock ran an hour ahead
    _, token = TokenStore(db, clock=At(t0)).create("hoshu", "admin")  # NTP stepped it back meanwhile
    assert TokenStore(db, clock=At(t0 + 60)).authenticate(token) is not None
