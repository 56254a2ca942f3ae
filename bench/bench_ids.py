"""IDS benchmark: EVE ingestion rate, alert-to-block latency, Suricata load time and memory per profile.

- Ingestion: 200k real EVE records (the Suricata 7.0.10 fixture, repeated with fresh flow ids) read by
  EveReader into SQLite with alert normalisation and incidents, on one core; compared with json.loads
  of the same lines alone (the floor any reader pays).
- Alert-to-block: in a throw-away namespace with Mamori's real nftables table, EVE alert lines from
  distinct internet addresses are appended at 1,000/s while the real ingest worker and auto-responder
  run; latency is from the line written to the nft transaction adding the address having returned.
- Suricata: `suricata -T` with the rendered config and the clinic vs full selection of ET Open
  (../shared/data/et-open-2024-04), wall time and the child's peak RSS (wait4).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"
ET = REPO.parent / "shared" / "data" / "et-open-2024-04"
N_EVENTS = 200_000
ALERT_RATE = 1000
N_ALERTS = 2000


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ctx(state: Path):
    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context

    paths = Paths(config=state / "config.yaml", state_dir=state)
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    return Context(paths, db)


def _cfg():
    from appliance.config.load import load_config

    return load_config(REPO / "examples" / "clinic.yaml").model


def _eve_lines(n: int) -> list[bytes]:
    base = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    out = []
    for i in range(n):
        rec = dict(base[i % len(base)])
        rec["flow_id"] = 10**12 + i
        out.append(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    return out


def bench_ingest() -> list[tuple[str, str, str]]:
    import orjson

    from ids.daemon import skip_store
    from ids.eve_reader import EveReader
    from ids.ingest import AlertIngest

    lines = _eve_lines(N_EVENTS)
    started = time.process_time()
    for line in lines:
        orjson.loads(line)
    parse_rate = N_EVENTS / (time.process_time() - started)
    with tempfile.TemporaryDirectory(prefix="mamori-bench-ids-") as tmp:
        ctx = _ctx(Path(tmp))
        eve = Path(tmp) / "eve.json"
        eve.write_bytes(b"".join(lines))
        cfg = _cfg()
        ingest = AlertIngest(cfg)
        reader = EveReader(ctx.db, eve, sink=ingest.sink, on_commit=ingest.on_commit, batch_lines=5000,
                           skip_store=skip_store(cfg))  # the daemon's own settings  # fmt: skip
        started_wall, started = time.monotonic(), time.process_time()
        stored = reader.poll(max_batches=10_000)
        cpu = time.process_time() - started
        wall = time.monotonic() - started_wall
    assert stored == N_EVENTS, stored
    rate = N_EVENTS / cpu
    return [
        ("EVE ingestion, one core (events/s, CPU time)", f"{rate:,.0f}", "≥ 100,000"),
        ("EVE ingestion, wall clock (events/s, shared disk)", f"{N_EVENTS / wall:,.0f}", ""),
        (
            "EVE parse alone, orjson (events/s)",
            f"{parse_rate:,.0f}",
            f"ingest/parse = {rate / parse_rate:.2f}",
        ),
    ]


def _alert_line(ip: str, i: int) -> bytes:
    rec = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime()), "event_type": "alert",
           "src_ip": ip, "src_port": 40000 + i % 20000, "dest_ip": "203.0.113.2", "dest_port": 3389,
           "proto": "TCP", "alert": {"action": "allowed", "gid": 1, "signature_id": 1990001, "rev": 1,
           "signature": "MAMORI RDP connection attempt from the internet",
           "category": "Attempted Administrator Privilege Gain", "severity": 1},
           # an attack over an established connection: its source is proven, so the IDS may block it (a SYN
           # alone proves nothing and is never blocked, ids.response)
           "flow": {"pkts_toserver": 4, "pkts_toclient": 3, "bytes_toserver": 400, "bytes_toclient": 300},
           "tcp": {"state": "established"}}  # fmt: skip
    return json.dumps(rec).encode() + b"\n"


def latency_worker() -> None:
    """Runs inside a namespace (see bench_block_latency): prints one JSON object with the latencies."""
    from firewall.sets import FirewallSets
    from firewall.subsystem import FirewallSubsystem
    from ids.daemon import EveIngestWorker
    from ids.render import SuricataPaths
    from ids.response import AutoResponder

    cfg = _cfg()
    with tempfile.TemporaryDirectory(prefix="mamori-bench-blk-") as tmp:
        ctx = _ctx(Path(tmp))
        fw = FirewallSubsystem(ctx)
        fw.apply(fw.render(cfg))
        done: dict[str, float] = {}

        class TimedSets(FirewallSets):
            """The real firewall sets, noting when each address's nft transaction has returned."""

            def block(self, ip, timeout_s, reason, source):
                result = super().block(ip, timeout_s, reason, source)
                done[ip] = time.perf_counter()
                return result

            def block_many(self, items, source):
                ok, refused = super().block_many(items, source)
                t = time.perf_counter()
                done.update((ip, t) for ip in ok)
                return ok, refused

        live = SuricataPaths.under(ctx.paths.run_dir)
        live.log_dir.mkdir(parents=True, exist_ok=True)
        # the rate limit (20 blocks in 10 minutes) would hold almost all of N_ALERTS attackers: lifted here to
        # measure how fast each block lands
        responder = AutoResponder(ctx, cfg, sets=TimedSets(ctx, cfg), max_blocks=N_ALERTS)
        worker = EveIngestWorker(ctx, cfg, responders=[responder])
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        written = _write_alerts(live.eve)
        deadline = time.monotonic() + 30
        while len(done) < N_ALERTS and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=10)
        fw.reset()
    lat = [(done[ip] - t) * 1000 for ip, t in written.items() if ip in done]
    print(
        json.dumps({"n": len(lat), "p50": _p(lat, 0.5), "p99": _p(lat, 0.99), "mean": statistics.mean(lat)})
    )


F2B_FILTER = """[Definition]
failregex = "event_type": "alert", "src_ip": "<HOST>"
datepattern = "timestamp": "%%Y-%%m-%%dT%%H:%%M:%%S\\.%%f%%z
"""
F2B_JAIL = """[DEFAULT]
banaction = nftables-allports
backend = {backend}
[mamori-eve]
enabled = true
filter = mamori-eve
logpath = {eve}
maxretry = 1
findtime = 600
bantime = 3600
action = nftables-allports[name=mamori-eve]
"""


def fail2ban_worker() -> None:
    """Runs inside a namespace: fail2ban (Debian package) with a jail on an EVE file and its nftables action,
    fed the same alert lines at the same rate; latency until the address is in fail2ban's nft set."""
    from firewall.nft import list_json

    with tempfile.TemporaryDirectory(prefix="mamori-bench-f2b-") as tmp:
        conf, eve = Path(tmp) / "conf", Path(tmp) / "eve.json"
        (conf / "filter.d").mkdir(parents=True)
        os.symlink("/etc/fail2ban/action.d", conf / "action.d")
        (conf / "fail2ban.conf").write_text(
            f"[Definition]\nloglevel = WARNING\nlogtarget = STDERR\n"
            f"socket = {tmp}/f2b.sock\npidfile = {tmp}/f2b.pid\ndbfile = :memory:\n"
        )
        (conf / "filter.d" / "mamori-eve.conf").write_text(F2B_FILTER)
        (conf / "jail.conf").write_text(F2B_JAIL.format(backend="polling", eve=eve))
        eve.touch()
        server = subprocess.Popen(["fail2ban-server", "-f", "-x", "-c", str(conf), "-s", f"{tmp}/f2b.sock",
                                   "-p", f"{tmp}/f2b.pid"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                for obj in list_json("list set inet f2b-table addr-set-mamori-eve") or []:
                    for e in obj.get("set", {}).get("elem", []):
                        ip = e["elem"]["val"] if isinstance(e, dict) else e
                        seen.setdefault(str(ip), time.perf_counter())
                time.sleep(0.005)

        try:
            for _ in range(200):  # until the server answers on its socket (the set appears at the first ban)
                if Path(f"{tmp}/f2b.sock").exists():
                    break
                time.sleep(0.1)
            time.sleep(1.0)
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            written = _write_alerts(eve)
            deadline = time.monotonic() + 60
            while len(seen) < N_ALERTS and time.monotonic() < deadline:
                time.sleep(0.1)
            stop.set()
            watcher.join(5)
        finally:
            server.terminate()
            server.wait(30)
    lat = [(seen[ip] - t) * 1000 for ip, t in written.items() if ip in seen]
    out = {"n": len(lat), "p50": _p(lat, 0.5) if lat else None, "p99": _p(lat, 0.99) if lat else None}
    print(json.dumps(out))


def _write_alerts(eve: Path) -> dict[str, float]:
    written: dict[str, float] = {}
    with open(eve, "ab", buffering=0) as fh:
        start = time.perf_counter()
        for i in range(N_ALERTS):
            due = start + i / ALERT_RATE
            while (now := time.perf_counter()) < due:
                time.sleep(min(0.001, due - now))
            ip = f"198.18.{i // 250}.{i % 250 + 1}"
            fh.write(_alert_line(ip, i))
            written[ip] = time.perf_counter()
    return written


def _in_namespace(mode: str) -> dict:
    ns = f"idsb{os.getpid()}{mode[0]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "bench.bench_ids", mode],
                             cwd=REPO, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_block_latency() -> list[tuple[str, str, str]]:
    r = _in_namespace("latency")
    rows = [
        (f"alert→nft block p50 at {ALERT_RATE}/s (ms)", f"{r['p50']:.1f}", ""),
        (
            f"alert→nft block p99 at {ALERT_RATE}/s (ms)",
            f"{r['p99']:.1f}",
            f"≤ 50 ({r['n']}/{N_ALERTS} blocked)",
        ),
    ]
    if shutil.which("fail2ban-server"):
        f = _in_namespace("fail2ban")
        fmt = lambda v: f"{v:.1f}" if v is not None else "-"  # noqa: E731
        rows += [
            (f"fail2ban, same EVE, p50 at {ALERT_RATE}/s (ms)", fmt(f["p50"]), ""),
            (f"fail2ban, same EVE, p99 at {ALERT_RATE}/s (ms)", fmt(f["p99"]),
             f"{f['n']}/{N_ALERTS} blocked within 60 s" + (f"; Mamori p99 is {f['p99'] / r['p99']:.0f}x lower"
                                                           if f["p99"] else "")),
        ]  # fmt: skip
    return rows


def _suricata_T(profile: str) -> tuple[float, int, int]:
    from ids import sources
    from ids.engine import SURICATA, build_rules
    from ids.render import SuricataPaths
    from ids.subsystem import IdsSubsystem

    cfg = _cfg()
    cfg = cfg.model_copy(update={"ids": cfg.ids.model_copy(update={"profile": profile})})
    with tempfile.TemporaryDirectory(prefix="mamori-bench-suri-") as tmp:
        ctx = _ctx(Path(tmp))
        sources.stage(ctx.paths, ET)
        sources.commit_staged(ctx.paths)
        sub = IdsSubsystem(ctx)
        rendered = sub.render(cfg)
        sub.apply(rendered)
        enabled = build_rules(ctx.paths, rendered).enabled
        live = SuricataPaths.under(ctx.paths.run_dir)
        # GNU time forks Suricata from a small process: wait4 on our own child would report the high-water
        # mark of this (large) Python process, which a forked child inherits until exec.
        res = subprocess.run(["/usr/bin/time", "-f", "MAMORI %e %M", SURICATA, "-T", "-c", str(live.yaml), "-l", tmp],
                             capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"suricata -T failed for profile {profile}: {res.stderr[-500:]}")
    line = next(x for x in res.stderr.splitlines() if x.startswith("MAMORI "))
    seconds, kb = float(line.split()[1]), int(line.split()[2])
    return seconds, kb // 1024, enabled


def bench_suricata() -> list[tuple[str, str, str]]:
    if not ET.is_dir():
        return [("Suricata clinic vs full", "skipped", f"{ET} absent")]
    c_s, c_mb, c_n = _suricata_T("clinic")
    f_s, f_mb, f_n = _suricata_T("full")
    return [
        (f"Suricata load, clinic ({c_n} rules) (s)", f"{c_s:.1f}", ""),
        (f"Suricata load, full ({f_n} rules) (s)", f"{f_s:.1f}", f"clinic/full = {c_s / f_s:.2f}"),
        ("Suricata peak RSS, clinic (MB)", f"{c_mb}", ""),
        ("Suricata peak RSS, full (MB)", f"{f_mb}", f"clinic/full = {c_mb / f_mb:.2f} (≤ 0.50)"),
    ]


def run() -> list[tuple[str, str, str]]:
    rows = bench_ingest()
    if os.geteuid() == 0:
        rows += bench_block_latency()
    else:
        rows.append(("alert→nft block latency", "skipped", "needs root (namespace)"))
    rows += bench_suricata()
    return rows


if __name__ == "__main__":
    if sys.argv[1:] == ["latency"]:
        latency_worker()
    elif sys.argv[1:] == ["fail2ban"]:
        fail2ban_worker()
    else:
        for row in run():
            print("  ".join(row))
