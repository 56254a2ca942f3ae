"""Web UI response times with a large alert store: dashboard and alert list p95 (target <= 200 ms).

Builds a throw-away state directory with the example clinic, 1,000,000 alerts spread over 180 days
grouped into 20,000 incidents, signs in as an administrator and times the real Flask app in-process
(TLS and the network are not part of this number). Set MAMORI_BENCH_ALERTS to use fewer rows.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyotp

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "clinic.yaml"
TARGET_MS = 200.0


def _fill(db: Database, alerts: int, incidents: int, now: float) -> None:
    rnd = random.Random(7)
    span = 180 * 86400
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO ids_incidents(id, sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category, state) VALUES (?, ?, ?, '192.168.10.10', ?, ?, 50, ?, 'ET SCAN bench', 'Misc Attack', ?)",
            [(i, 2000000 + i % 50, f"198.51.100.{i % 250}", now - span, now - rnd.random() * span, 1 + i % 3,
              "未対応" if i % 10 == 0 else "解決済み") for i in range(1, incidents + 1)],
        )  # fmt: skip
        batch = []
        for n in range(alerts):
            batch.append((1 + n % incidents, now - rnd.random() * span, 2000000 + n % 50, 1 + n % 3))
            if len(batch) == 50000:
                _insert_alerts(conn, batch)
                batch = []
        if batch:
            _insert_alerts(conn, batch)


def _insert_alerts(conn, batch) -> None:  # type: ignore[no-untyped-def]
    conn.executemany(
        "INSERT INTO ids_alerts(incident_id, ts, sid, rev, signature, category, severity, src_ip, src_port,"
        " dest_ip, dest_port, proto, detail) VALUES (?, ?, ?, 1, 'ET SCAN bench', 'Misc Attack', ?,"
        " '198.51.100.66', 40000, '192.168.10.10', 443, 'TCP', '{}')",
        batch,
    )


def _p95(client, path: str, rounds: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return statistics.quantiles(times, n=20)[18]


def run() -> list[tuple[str, str, str]]:
    from webui import create_app
    from webui.accounts import AccountStore

    alerts = int(os.environ.get("MAMORI_BENCH_ALERTS", "1000000"))
    tmp = Path(tempfile.mkdtemp(prefix="mamori-bench-webui-"))
    try:
        paths = Paths(config=tmp / "config.yaml", state_dir=tmp / "state")
        shutil.copy(EXAMPLE, paths.config)
        ctx = Context(paths=paths, db=Database(paths.db))
        app = create_app(ctx, subsystems=[], confirm_seconds=None)
        now = time.time()
        t0 = time.perf_counter()
        _fill(ctx.db, alerts, max(alerts // 50, 1), now)
        fill_s = time.perf_counter() - t0
        secret = pyotp.random_base32()
        AccountStore(ctx.db).create("bench", "Bench-Mark-Password-1", "admin", totp_secret=secret)
        client = app.test_client()
        with client.session_transaction() as sess:
            sess["sid"] = AccountStore(ctx.db).open_session("bench", "127.0.0.1")
        client.get("/")  # warm-up: templates compiled, versions read
        dash = _p95(client, "/", 40)
        listing = _p95(client, "/alerts/", 40)
        filtered = _p95(client, "/alerts/?state=all&severity=1&q=198.51.100.66", 20)
        return [
            (f"webui: store filled ({alerts:,} alerts)", f"{fill_s:.1f} s", "info"),
            ("webui: dashboard p95", f"{dash:.1f} ms", f"<= {TARGET_MS:.0f} ms"),
            ("webui: alert list p95", f"{listing:.1f} ms", f"<= {TARGET_MS:.0f} ms"),
            ("webui: alert search p95", f"{filtered:.1f} ms", f"<= {TARGET_MS:.0f} ms"),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for row in run():
        print(*row, sep="\t")
