"""Devices, address allocation, keys and credentials of the VPN (no root needed)."""

from __future__ import annotations

import os
import stat

import pyotp
import pytest

from appliance.storage import Database
from vpn import keys
from vpn.credentials import MAX_FAILED, Credentials
from vpn.store import DeviceError, DeviceStore, ip6_for, pool_hosts

A4, A6 = "10.99.0.1/29", "fd4d:616d:6f72::1/64"


@pytest.fixture()
def db(tmp_path):
    d = Database(tmp_path / "m.db")
    d.migrate()
    return d


@pytest.fixture()
def pub():
    return lambda: keys.generate_keypair()[1]


@pytest.mark.parametrize(
    "text, ok",
    [
        ("obD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4=", True),
        ("obD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4", False),
        ("obD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4==", False),
        ("!bD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4=", False),
        ("", False),
        ("a" * 43 + "=", True),
    ],
)
def test_key_validation_table(text, ok):
    assert keys.is_valid_key(text) is ok


def test_keypair_matches_wg_pubkey():
    priv, pub = keys.generate_keypair()
    assert keys.is_valid_key(priv) and keys.is_valid_key(pub) and priv != pub
    assert keys.public_key(priv) == pub


def test_server_key_is_private_and_stable(tmp_path):
    path, pub = keys.ensure_server_key(tmp_path / "keys")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    path2, pub2 = keys.ensure_server_key(tmp_path / "keys")
    assert (path2, pub2) == (path, pub)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_allocation_skips_box_and_never_reuses_until_full(db, pub):
    store = DeviceStore(db)
    assert [str(h) for h in pool_hosts(A4)] == [f"10.99.0.{i}" for i in range(2, 7)]
    devs = [store.add("yamada", f"pc{i}", pub(), A4, A6) for i in range(3)]
    assert [d.ip4 for d in devs] == ["10.99.0.2", "10.99.0.3", "10.99.0.4"]
    assert devs[1].ip6 == "fd4d:616d:6f72::3"
    store.revoke(devs[0].id)
    d4 = store.add("yamada", "pc3", pub(), A4, A6)
    assert d4.ip4 == "10.99.0.5"  # the revoked .2 is not handed out while fresh ones remain
    store.add("yamada", "pc4", pub(), A4, A6)
    assert store.add("yamada", "pc5", pub(), A4, A6).ip4 == "10.99.0.2"
    with pytest.raises(DeviceError):
        store.add("yamada", "pc6", pub(), A4, A6)


def test_reissue_revokes_old_key(db, pub):
    store = DeviceStore(db)
    old = store.add("yamada", "iphone", pub(), A4, A6)
    new = store.add("yamada", "iphone", pub(), A4, A6)
    assert store.get(old.id).revoked is not None
    assert [d.id for d in store.active("yamada")] == [new.id]
    assert store.by_public_key(old.public_key) is None
    assert store.by_tunnel_ip(new.ip4).id == new.id
    assert store.by_tunnel_ip(old.ip4) is None


@pytest.mark.parametrize("bad", ["not-a-key", "", "a" * 44])
def test_bad_public_key_refused(db, bad):
    with pytest.raises(keys.KeyError_):
        DeviceStore(db).add("yamada", "pc", bad, A4, A6)


def test_same_key_on_two_devices_refused(db, pub):
    store = DeviceStore(db)
    k = pub()
    store.add("yamada", "pc", k, A4, A6)
    with pytest.raises(DeviceError):
        store.add("sato", "pc", k, A4, A6)


@pytest.mark.parametrize(
    ("ip4", "address", "address6", "expected"),
    [
        ("10.99.0.77", "10.99.0.1/24", "fd00:1::1/64", "fd00:1::4d"),
        ("10.99.0.77", "10.99.0.1/24", None, None),
        ("10.99.1.2", "10.99.0.1/16", A6, "fd4d:616d:6f72::102"),
        # the box is .1 in IPv4 but ::5 in IPv6: the device .5 must not get the box's ::5; it gets ::1
        ("10.99.0.5", "10.99.0.1/24", "fd00:1::5/64", "fd00:1::1"),
        ("10.99.0.6", "10.99.0.1/24", "fd00:1::5/64", "fd00:1::6"),
        # a /8: host numbers above 16 bits stay distinct (10.0.0.5 and 10.1.0.5 are not both ::5)
        ("10.0.0.5", "10.0.0.1/8", A6, "fd4d:616d:6f72::5"),
        ("10.1.0.5", "10.0.0.1/8", A6, "fd4d:616d:6f72::1:5"),
        # an IPv6 network too small for the host number: IPv4 only, never an address outside it
        ("10.99.1.2", "10.99.0.1/16", "fd00:1::1/120", None),
    ],
)
def test_ip6_for(ip4, address, address6, expected):
    assert ip6_for(ip4, address, address6) == expected


def test_no_device_gets_the_boxs_own_ipv6_address(db, pub):
    store = DeviceStore(db)
    devs = [store.add("yamada", f"pc{i}", pub(), "10.99.0.1/29", "fd00:1::3/64") for i in range(5)]
    ip6s = [d.ip6 for d in devs]
    assert "fd00:1::3" not in ip6s and len(set(ip6s)) == 5 and None not in ip6s


@pytest.mark.timeout(10)
@pytest.mark.parametrize("address", ["10.0.0.1/8", "fd00:1::1/64"])
def test_huge_pools_are_walked_lazily(db, pub, address):
    assert not isinstance(pool_hosts(address), list)
    assert str(next(iter(pool_hosts(address)))).endswith(("0.2", "::2"))
    if address.startswith("10."):
        assert DeviceStore(db).add("yamada", "pc", pub(), address, A6).ip4 == "10.0.0.2"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_password_and_totp(db):
    clock = Clock(1_800_000_000.0)
    creds = Credentials(db, clock)
    secret = creds.set("yamada", "correct horse battery")
    code = pyotp.TOTP(secret).at(clock.t)
    assert not creds.verify("yamada", "wrong password!", code).ok
    assert creds.verify("yamada", "correct horse battery", code).ok
    # the same code a second time is a replay
    assert creds.verify("yamada", "correct horse battery", code).reason == "bad"
    clock.t += 30
    assert creds.verify("yamada", "correct horse battery", pyotp.TOTP(secret).at(clock.t)).ok
    assert creds.verify("nobody", "x" * 12, "123456").reason == "unknown"
    stored = db.connect().execute("SELECT password_hash FROM vpn_credentials").fetchone()[0]
    assert stored.startswith("$argon2id$")


def test_lockout_after_failed_codes(db):
    clock = Clock(1_800_000_000.0)
    creds = Credentials(db, clock)
    secret = creds.set("vendor-a", "correct horse battery")
    verdicts = [creds.verify("vendor-a", "correct horse battery", "000000") for _ in range(MAX_FAILED)]
    assert [v.reason for v in verdicts] == ["bad"] * (MAX_FAILED - 1) + ["locked"]
    assert verdicts[-1].locked_now
    clock.t += 60
    assert (
        creds.verify("vendor-a", "correct horse battery", pyotp.TOTP(secret).at(clock.t)).reason == "locked"
    )
    creds.unlock("vendor-a")
    assert creds.verify("vendor-a", "correct horse battery", pyotp.TOTP(secret).at(clock.t)).ok
    creds.set_disabled("vendor-a", True)
    clock.t += 30
    assert (
        creds.verify("vendor-a", "correct horse battery", pyotp.TOTP(secret).at(clock.t)).reason == "disabled"
    )


def test_short_password_refused(db):
    with pytest.raises(Exception) as exc:
        Credentials(db).set("yamada", "short")
    assert "10" in exc.value.text("ja")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("iPhone", True),
        ("院長のノートPC", True),
        ("home pc-2", True),
        ("x" * 32, True),
        ("", False),
        ("x" * 33, False),
        ("pc\n[Peer]", False),
        ("pc\rx", False),
        ("pc\tx", False),
        ("pc\x00", False),
        ("pc\u2028x", False),  # line separator: str.splitlines() breaks on it
        ("pc\u202ecod.exe", False),  # right-to-left override: hides what the name says
        ("pc\x85", False),
    ],
)
def test_device_name_table(db, pub, name, ok):
    store = DeviceStore(db)
    if ok:
        assert store.add("yamada", name, pub(), A4, A6).device == name
    else:
        with pytest.raises(DeviceError) as exc:
            store.add("yamada", name, pub(), A4, A6)
        assert exc.value.text("ja") and exc.value.text("en") != exc.value.text("ja")
        assert store.active() == []
