"""Vendors' API tokens are not kept for ever (fleetapi.retention): a token that stopped working (revoked, its
account expired, its account deleted and the token unused) goes KEEP_DAYS after that; a token that still
works stays however old. Every time is relative to appliance.clock.wall(), so the suite passes at any date."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from appliance import clock
from appliance.retention import AGES_PAUSED_DAYS, Policy, run_once
from appliance.storage import Database
from fleetapi.retention import KEEP_DAYS, retain
from fleetapi.tokens import TokenStore
from tests.unit.test_retention import config
from tests.webui_fixtures import PASSWORD
from webui.accounts import AccountStore

DAY = 86400.0


class At:
    """A clock the test moves: the stores stamp rows with it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "state.db")
    d.migrate()
    return d


def _vendor(db: Database, name: str, expires_at: float) -> None:
    AccountStore(db).create(
        name, PASSWORD, "vendor", totp_secret=pyotp.random_base32(), expires_at=expires_at
    )


def _token(db: Database, account: str, at: float, label: str) -> str:
    info, _ = TokenStore(db, clock=At(at)).create(account, "admin", label)
    return info.id


def _revoke(db: Database, token_id: str, at: float) -> None:
    TokenStore(db, clock=At(at)).revoke(token_id)


def _labels(db: Database) -> set[str]:
    return {t.label for t in TokenStore(db).all()}


def _policy(now: float, records_days: int = 1830) -> Policy:
    return Policy(now, 1 << 20, {"records": records_days, "audit": 1830})


def test_dead_tokens_go_after_keep_days_and_working_ones_stay(db: Database) -> None:
    now = clock.wall()
    long_ago = now - 3 * 365 * DAY
    _vendor(db, "active", now + 30 * DAY)
    _vendor(db, "lapsed", now - (KEEP_DAYS + 1) * DAY)  # expired more than KEEP_DAYS ago
    _vendor(db, "lately", now - 10 * DAY)  # expired, but lately
    _vendor(db, "gone", now + 30 * DAY)
    _token(db, "active", long_ago, "working, three years old")
    _revoke(db, _token(db, "active", long_ago, "revoked long ago"), now - (KEEP_DAYS + 1) * DAY)
    _revoke(db, _token(db, "active", long_ago, "revoked lately"), now - (KEEP_DAYS - 1) * DAY)
    _token(db, "lapsed", long_ago, "account expired long ago")
    _token(db, "lately", long_ago, "account expired lately")
    _token(db, "gone", long_ago, "account deleted, unused since")
    used = _token(db, "gone", long_ago, "account deleted, used lately")
    with db.transaction() as conn:
        conn.execute("UPDATE fleet_tokens SET last_used = ? WHERE id = ?", (now - 100 * DAY, used))
    AccountStore(db).delete("gone")
    AccountStore(db).update("active", disabled=True)  # disabled, not expired: it may be enabled again

    assert retain(db, _policy(now)) == {"fleet_tokens": 3}
    assert _labels(db) == {"working, three years old", "revoked lately", "account expired lately",
                           "account deleted, used lately"}  # fmt: skip
    # a second pass finds nothing more; KEEP_DAYS on, the rest of the dead ones go, the working one stays
    assert retain(db, _policy(now)) == {"fleet_tokens": 0}
    AccountStore(db).update("active", disabled=False)
    assert retain(db, _policy(now + KEEP_DAYS * DAY)) == {"fleet_tokens": 3}
    assert _labels(db) == {"working, three years old"}


def test_nothing_goes_while_ages_are_not_trusted(db: Database) -> None:
    now = clock.wall()
    _vendor(db, "active", now + 30 * DAY)
    _revoke(db, _token(db, "active", now - 900 * DAY, "revoked long ago"), now - 800 * DAY)
    assert retain(db, _policy(now, records_days=AGES_PAUSED_DAYS)) == {"fleet_tokens": 0}
    assert _labels(db) == {"revoked long ago"}


def test_the_coordinator_runs_it(db: Database) -> None:
    now = clock.wall()
    _vendor(db, "active", now + 30 * DAY)
    _revoke(db, _token(db, "active", now - 900 * DAY, "revoked long ago"), now - 800 * DAY)
    _token(db, "active", now - 900 * DAY, "working")
    report = run_once(db, config(), now)
    assert report.deleted["fleet_tokens"] == 1 and _labels(db) == {"working"}
