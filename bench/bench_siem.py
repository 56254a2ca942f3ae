"""SIEM benchmark: syslog throughput of one box, from its records to a collector, through the box's real rsyslogd.

N_EVENTS high IDS alerts are stored (as the ingestion would, in one transaction), then the SIEM spooler
(siem.worker.SpoolWorker) turns them into RFC 5424 lines and the box's rsyslogd (the rendered config: imfile,
disk queue, omfwd over TLS with x509/name) sends them to a real rsyslog collector on loopback
(lab/syslog_collector.py, a test CA made here). Reported: spooling rate, end-to-end messages per second until
the collector has written every message, and bytes per event (each alert's line; TLS and the octet count add a few percent). The collector is on 127.0.0.1 for the
measurement only (the config model refuses a loopback collector over wan; the bench swaps it in after
validation). The run takes well under 60 s.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "clinic.yaml"
N_EVENTS = int(os.environ.get("MAMORI_BENCH_SIEM_EVENTS", "50000"))
TIMEOUT_S = 45.0
PEER = "siem.bench.test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _store_alerts(ctx, n: int, now: float) -> None:
    rows = [(now + i * 1e-3, 2100000 + i % 50, f"ET BENCH alert {i % 50}", i % 254 + 1) for i in range(n)]
    with ctx.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO ids_alerts(ts, sid, rev, signature, category, severity, src_ip, src_port, dest_ip,"
            " dest_port, proto) VALUES (?, ?, 1, ?, 'Attempted Administrator Privilege Gain', 1,"
            " '198.51.100.' || ?, 4444, '192.168.10.10', 443, 'TCP')",
            rows,
        )


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def run() -> list[tuple[str, str, str]]:
    from appliance.config.load import parse_config
    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context
    from lab.syslog_collector import SyslogCollector, make_pki
    from siem.subsystem import SiemSubsystem
    from siem.worker import RsyslogWorker, SpoolWorker

    tmp = Path(tempfile.mkdtemp(prefix="mamori-bench-siem-"))
    collector = rsyslog = None
    try:
        pki = make_pki(tmp / "pki", names=[PEER], addresses=["127.0.0.1"])
        port = _free_port()
        collector = SyslogCollector(tmp / "collector", pki, port=port, address="127.0.0.1")
        collector.start()
        data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        data["siem"] = {"enabled": True, "collector": "siem.example.jp", "port": port, "permitted_peer": PEER,
                        "collector_ca": pki.ca_cert.read_text(), "box_id": "bench-box"}  # fmt: skip
        cfg = parse_config(yaml.safe_dump(data, allow_unicode=True)).model
        cfg = cfg.model_copy(update={"siem": cfg.siem.model_copy(update={"collector": "127.0.0.1"})})
        paths = Paths(config=tmp / "config.yaml", state_dir=tmp / "state")
        paths.ensure()
        ctx = Context(paths, Database(paths.db))
        ctx.db.migrate()
        sub = SiemSubsystem(ctx)
        planned = sub.render(cfg)
        sub.check(planned)
        sub.apply(planned)
        rsyslog = RsyslogWorker(ctx)
        rsyslog.step()
        spooler = SpoolWorker(ctx, cfg)
        spooler.start()
        _store_alerts(ctx, N_EVENTS, time.time())
        began = time.monotonic()
        deadline = began + TIMEOUT_S
        while spooler.cursors.get("alert", 0) < N_EVENTS and time.monotonic() < deadline:
            spooler.step()
        spooled_s = time.monotonic() - began
        while _lines(collector.received) < N_EVENTS and time.monotonic() < deadline:
            time.sleep(0.05)
        total_s = time.monotonic() - began
        received = _lines(collector.received)
        if received < N_EVENTS:
            raise RuntimeError(f"only {received} of {N_EVENTS} messages arrived in {TIMEOUT_S:.0f} s")
        line_bytes = collector.received.stat().st_size
    finally:
        if rsyslog is not None:
            rsyslog.shutdown()
        if collector is not None:
            collector.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        ("siem events spooled per second (format + fsync'd spool)", f"{N_EVENTS / spooled_s:,.0f}/s", "info"),
        (
            f"siem messages per second to the collector (TLS, {N_EVENTS:,} alerts)",
            f"{N_EVENTS / total_s:,.0f}/s",
            "≥ 1,000/s",
        ),
        (
            "siem bytes per event (the RFC 5424 line as the collector wrote it)",
            f"{line_bytes / N_EVENTS:.0f} B",
            "info",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(*row, sep="  ")
