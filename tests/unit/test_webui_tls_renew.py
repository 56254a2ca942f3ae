"""The web UI's certificate over the years: the names it must carry (a pure function of the config, table
below), when the box renews its own one (none, expiring, names changed — never an uploaded one), what the
renewal leaves behind (the files, the audit entry, the dashboard notice), and the server's context that
follows the files. Times are relative to the clock (tests/webui_fixtures.Clock), never fixed dates."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.audit import AuditLog
from appliance.config.load import parse_config
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from tests.webui_fixtures import Clock, box_fixture  # noqa: F401  (fixture)
from webui.tls import (
    CertInfo,
    CertReloader,
    cert_paths,
    ensure_certificate,
    install_certificate,
    make_self_signed,
    read_certificate,
)
from webui.tls_renew import (
    RENEW_DAYS,
    CertificateWorker,
    CertNames,
    decide,
    expiry_warning,
    renewal_notice,
    wanted_names,
)

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0
MGMT = {"name": "lan0.40", "parent": "lan0", "vlan": 40, "zone": "mgmt", "address": "192.168.40.1/24",
        "address6": "fd00:40::1/64"}  # fmt: skip


def config(web_zones: list[str] | None = None, vpn: bool = True, extra: list[dict] | None = None, **lan):
    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"))
    data["interfaces"][1].update(lan)
    data["interfaces"] += extra or []
    if web_zones is not None:
        data.setdefault("web", {})["zones"] = web_zones
    data["vpn"]["enabled"] = vpn
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


@pytest.mark.parametrize(
    ("cfg", "hostname", "dns", "ips"),
    [
        (None, "", ("mamori.local",), ("127.0.0.1",)),
        (None, "Mamori-Box", ("mamori-box", "mamori.local"), ("127.0.0.1",)),
        (None, "localhost", ("mamori.local",), ("127.0.0.1",)),
        (None, "bad_name!", ("mamori.local",), ("127.0.0.1",)),
        # the example clinic: lan (web UI), the VPN portal; never wan, guest or devices
        (config(), "mamori", ("mamori", "mamori.local"), ("10.99.0.1", "127.0.0.1", "192.168.10.1")),
        (config(vpn=False), "", ("mamori.local",), ("127.0.0.1", "192.168.10.1")),
        (config(address="192.168.10.254/24", vpn=False), "", ("mamori.local",), ("127.0.0.1", "192.168.10.254")),
        (config(extra=[MGMT], vpn=False), "", ("mamori.local",),
         ("127.0.0.1", "192.168.10.1", "192.168.40.1", "fd00:40::1")),
        (config(web_zones=["mgmt"], extra=[MGMT], vpn=False), "", ("mamori.local",),
         ("127.0.0.1", "192.168.40.1", "fd00:40::1")),
        (config(web_zones=["lan", "devices"], vpn=False), "", ("mamori.local",),
         ("127.0.0.1", "192.168.10.1", "192.168.30.1")),
    ],
    ids=["no-config", "hostname-lowercased", "localhost-skipped", "invalid-hostname-skipped", "clinic",
         "vpn-off", "lan-moved", "mgmt-vlan-v6", "mgmt-only", "devices-too"],
)  # fmt: skip
def test_wanted_names(cfg, hostname: str, dns: tuple[str, ...], ips: tuple[str, ...]) -> None:
    assert wanted_names(cfg, hostname) == CertNames(dns, ips)


NAMES = CertNames(("mamori.local",), ("127.0.0.1", "192.168.10.1"))


def info(now: float, days_left: float, uploaded: bool = False, names: CertNames = NAMES) -> CertInfo:
    return CertInfo(names.dns, names.ips, "AA", now - 300 * DAY, now + days_left * DAY, uploaded)


@pytest.mark.parametrize(
    ("cert", "reason"),
    [
        (lambda now: None, "missing"),
        (lambda now: info(now, 300), None),
        (lambda now: info(now, RENEW_DAYS + 1), None),
        (lambda now: info(now, RENEW_DAYS), "expiring"),
        (lambda now: info(now, -3), "expiring"),
        (lambda now: info(now, 300, names=CertNames(("mamori.local",), ("127.0.0.1", "192.168.10.254"))), "names"),
        (lambda now: info(now, 300, names=CertNames(("mamori.local",), ("127.0.0.1",))), "names"),
        (lambda now: info(now, 300, names=CertNames(("mamori.local", "old"), NAMES.ips)), "names"),
        (lambda now: info(now, 5, uploaded=True), None),
        (lambda now: info(now, -5, uploaded=True, names=CertNames(("clinic.example",), ())), None),
        (lambda now: CertInfo(NAMES.dns, NAMES.ips, "AA", now + 90 * DAY, now + 487 * DAY, False), "not_yet_valid"),
    ],
    ids=["none", "fresh", "just-above", "at-threshold", "expired", "lan-moved", "name-missing",
         "stale-extra-name", "uploaded-expiring", "uploaded-expired-wrong-names", "made-while-clock-ahead"],
)  # fmt: skip
def test_decide(cert, reason: str | None) -> None:
    now = Clock().now
    assert decide(cert(now), NAMES, now) == reason


def test_decide_unreadable() -> None:
    assert decide(None, NAMES, Clock().now, readable=False) == "unreadable"


def make_ctx(tmp_path: Path) -> Context:
    paths = Paths(config=tmp_path / "config.yaml", state_dir=tmp_path / "state")
    ctx = Context(paths=paths, db=Database(paths.db))
    ctx.db.migrate()
    return ctx


def renewals(ctx: Context) -> list[dict]:
    return [
        e.detail for e in AuditLog(ctx.db).search(text="tls.renewed", limit=100) if e.action == "tls.renewed"
    ]


def test_worker_makes_renews_and_leaves_alone(tmp_path: Path) -> None:
    ctx, clock = make_ctx(tmp_path), Clock()
    worker = CertificateWorker(ctx, config(), hostname=lambda: "mamori", clock=clock)
    first = worker.tick()
    assert first is not None and first.reason == "missing"
    cert = read_certificate(ctx.paths.keys_dir)
    assert cert is not None and not cert.uploaded
    assert set(cert.names) == {"mamori", "mamori.local", "127.0.0.1", "192.168.10.1", "10.99.0.1"}
    assert 396 <= cert.days_left(clock.now) <= 397
    assert worker.tick() is None  # nothing to do: same files, no second audit entry
    assert read_certificate(ctx.paths.keys_dir).fingerprint == cert.fingerprint

    clock.advance((397 - RENEW_DAYS - 1) * DAY)  # 61 days left
    assert worker.tick() is None
    clock.advance(1.5 * DAY)  # 59.5 days left
    second = worker.tick()
    assert second is not None and second.reason == "expiring"
    assert second.old_fingerprint == cert.fingerprint != second.new.fingerprint
    assert 396 <= second.new.days_left(clock.now) <= 397

    made, renewed = reversed(renewals(ctx))  # the log lists the newest first
    assert made["old_fingerprint"] == "" and made["fingerprint"] == cert.fingerprint
    assert renewed["reason"] == "expiring" and renewed["old_fingerprint"] == cert.fingerprint
    assert renewed["fingerprint"] == second.new.fingerprint
    assert AuditLog(ctx.db).verify().ok


def test_a_new_lan_address_renews_at_once(tmp_path: Path) -> None:
    """The daemon restarts area workers with each new revision: the first tick with the new config renews."""
    ctx, clock = make_ctx(tmp_path), Clock()
    CertificateWorker(ctx, config(), hostname=lambda: "mamori", clock=clock).tick()
    moved = CertificateWorker(
        ctx, config(address="192.168.10.254/24"), hostname=lambda: "mamori", clock=clock
    )
    renewal = moved.tick()
    assert renewal is not None and renewal.reason == "names"
    ips = read_certificate(ctx.paths.keys_dir).ips
    assert "192.168.10.254" in ips and "192.168.10.1" not in ips


def test_the_first_boot_certificate_is_renewed_with_the_box_names(tmp_path: Path) -> None:
    """The image's first boot makes one like this (openssl, 397 days, fixed names): ours, so renewed."""
    ctx = make_ctx(tmp_path)
    ensure_certificate(ctx.paths.keys_dir, ("mamori.local", "mamori"), ("192.168.10.1",))
    before = read_certificate(ctx.paths.keys_dir)
    assert before is not None and not before.uploaded
    renewal = CertificateWorker(ctx, config(address="192.168.10.254/24"), hostname=lambda: "box").tick()
    assert renewal is not None and renewal.reason == "names"


def _foreign_pair(tmp_path: Path, days_left: float, now: float) -> tuple[bytes, bytes]:
    """A certificate the clinic got elsewhere (its own CA's name, not Mamori's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "utm.sakura-clinic.example")])
    start = dt.datetime.fromtimestamp(now, dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start - dt.timedelta(days=300))
        .not_valid_after(start + dt.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("utm.sakura-clinic.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_an_uploaded_certificate_is_never_replaced_only_warned_about(tmp_path: Path) -> None:
    ctx, clock = make_ctx(tmp_path), Clock()
    worker = CertificateWorker(ctx, config(), hostname=lambda: "mamori", clock=clock)
    worker.tick()
    install_certificate(ctx.paths.keys_dir, *_foreign_pair(tmp_path, 40, clock.now))
    uploaded = read_certificate(ctx.paths.keys_dir)
    assert uploaded is not None and uploaded.uploaded
    assert worker.tick() is None  # wrong names, 40 days left: still not ours to replace
    assert expiry_warning(uploaded, clock.now) is None
    clock.advance(11.5 * DAY)
    assert worker.tick() is None
    warning = expiry_warning(uploaded, clock.now)
    assert warning is not None and warning.level == "warn" and "あと 28 日" in warning.text
    clock.advance(30 * DAY)
    assert worker.tick() is None
    assert "期限が切れています" in expiry_warning(uploaded, clock.now).text
    assert read_certificate(ctx.paths.keys_dir).fingerprint == uploaded.fingerprint
    assert [d["reason"] for d in renewals(ctx)] == ["missing"]


def test_an_upload_made_before_the_marker_existed_is_still_the_clinics(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    cert_pem, key_pem = _foreign_pair(tmp_path, 100, Clock().now)
    ctx.paths.keys_dir.mkdir(parents=True)
    cert_path, key_path = cert_paths(ctx.paths.keys_dir)
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    assert read_certificate(ctx.paths.keys_dir).uploaded
    assert CertificateWorker(ctx, config()).tick() is None


def test_renewal_notice_for_some_days_while_the_certificate_is_in_use(tmp_path: Path) -> None:
    ctx, clock = make_ctx(tmp_path), Clock()
    renewal = CertificateWorker(ctx, config(), hostname=lambda: "mamori", clock=clock).tick()
    current = read_certificate(ctx.paths.keys_dir)
    notice = renewal_notice(ctx, current, clock.now)
    assert notice is not None and renewal.new.fingerprint in notice.text
    assert notice.text.startswith("画面の証明書を新しくしました。ブラウザーに警告が出たら、指紋（SHA-256）が")
    assert renewal_notice(ctx, current, clock.now + 13 * DAY) is not None
    assert renewal_notice(ctx, current, clock.now + 15 * DAY) is None
    install_certificate(ctx.paths.keys_dir, *_foreign_pair(tmp_path, 100, clock.now))
    assert renewal_notice(ctx, read_certificate(ctx.paths.keys_dir), clock.now) is None  # replaced since


def test_reloader_follows_the_files_and_keeps_the_old_pair_when_the_new_one_is_broken(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = make_self_signed(keys)
    reloader = CertReloader(*cert_paths(keys))
    ctx1 = reloader.context()
    assert reloader.context() is ctx1  # unchanged files: the same context, nothing loaded again
    second = make_self_signed(keys, ips=("127.0.0.1", "192.168.10.254"))
    ctx2 = reloader.context()
    assert ctx2 is not ctx1 and first.fingerprint != second.fingerprint
    cert_path, key_path = cert_paths(keys)
    key_path.write_bytes(  # a key that does not belong to the certificate (caught between two renames)
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ssl.SSLError):
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
    assert reloader.context() is ctx2


def test_the_daemon_runs_the_worker(tmp_path: Path) -> None:
    from appliance.daemon import WORKER_MODULES, collect_workers

    assert "webui.tls_renew" in WORKER_MODULES
    workers = collect_workers(make_ctx(tmp_path), config(), modules=("webui.tls_renew",))
    assert len(workers) == 1 and isinstance(workers[0], CertificateWorker)


def test_dashboard_shows_the_renewal_notice_and_the_fingerprint(box) -> None:
    from appliance.config.load import load_config

    renewal = CertificateWorker(box.ctx, load_config(box.ctx.paths.config).model, clock=box.clock).tick()
    client = box.client()
    box.login(client, "staff")
    page = client.get("/").get_data(as_text=True)
    assert "画面の証明書を新しくしました。ブラウザーに警告が出たら、指紋（SHA-256）が" in page
    assert page.count(renewal.new.fingerprint) == 2  # in the notice, and small for the vendor
    box.clock.advance(15 * DAY)
    box.login(client, "staff")
    page = client.get("/").get_data(as_text=True)
    assert "画面の証明書を新しくしました" not in page and renewal.new.fingerprint in page


def test_dashboard_warns_about_an_uploaded_certificate_ending(box, tmp_path: Path) -> None:
    install_certificate(box.ctx.paths.keys_dir, *_foreign_pair(tmp_path, 10.5, box.clock.now))
    client = box.client()
    box.login(client, "admin")
    page = client.get("/").get_data(as_text=True)
    assert "医院で入れた画面の証明書の期限は" in page and "あと 10 日" in page
    assert read_certificate(box.ctx.paths.keys_dir).fingerprint in page
