"""The vendor hub's engines in the lab (issue 14.7): Debian's real `prometheus` and `prometheus-alertmanager`,
a webhook receiver that records what Alertmanager sent, and the hub's rsyslog. All run in the hub's namespace,
listen on that namespace's loopback only (the boxes' side of the hub never reaches them; a person on the host
gets there through `ip netns exec` or the loopback forwards of `make fleet-demo`), are started with
`Lab.spawn` and so stopped by PID.

The configs are rendered copies of what a vendor installs, fleet/prometheus/: the same alert rules, the
same file_sd layout, with lab-only changes (short scrape and evaluation intervals, absolute paths) made
here, never in fleet/. The webhook receiver is the test's observer, not a part of the product.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.topology import Lab

REPO = Path(__file__).resolve().parent.parent
FLEET = REPO / "fleet" / "prometheus"
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
WEBHOOK_PORT = 9199
SCRAPE_INTERVAL = "2s"  # the lab's; fleet/prometheus/prometheus.yml keeps 30 s for a real fleet

_RECEIVER = """
import http.server, json, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"at": time.time(), "path": self.path, "body": json.loads(body or b"null")},
                               ensure_ascii=False) + "\\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def render_prometheus(work: Path, targets_dir: Path) -> Path:
    """fleet/prometheus/prometheus.yml with the lab's intervals and absolute paths; the rules copied unchanged."""
    cfg = yaml.safe_load((FLEET / "prometheus.yml").read_text(encoding="utf-8"))
    cfg["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL)
    rules = work / "mamori-alerts.yml"
    rules.write_text((FLEET / "mamori-alerts.yml").read_text(encoding="utf-8"), encoding="utf-8")
    cfg["rule_files"] = [str(rules)]
    cfg["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{ALERTMANAGER_PORT}"]}]}]
    (job,) = cfg["scrape_configs"]
    job["scrape_timeout"] = "1500ms"
    job["file_sd_configs"] = [{"files": [str(targets_dir / "*.yml")], "refresh_interval": "5s"}]
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def render_alertmanager(work: Path) -> Path:
    """One route to the lab's webhook receiver, grouped per alert and box, sent at once (group_wait 1 s)."""
    cfg = {
        "route": {"receiver": "lab-webhook", "group_by": ["alertname", "instance"], "group_wait": "1s",
                  "group_interval": "5s", "repeat_interval": "1h"},
        "receivers": [{"name": "lab-webhook", "webhook_configs": [
            {"url": f"http://127.0.0.1:{WEBHOOK_PORT}/alerts", "send_resolved": True}]}],
    }  # fmt: skip
    path = work / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def write_targets(targets_dir: Path, entries: list[dict[str, Any]]) -> None:
    """The file_sd list (one entry per box, as fleet/prometheus/targets/clinics.yml), written aside and renamed
    so that Prometheus never reads half a file."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    tmp = targets_dir / ".clinics.yml.tmp"
    tmp.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.rename(targets_dir / "clinics.yml")


@dataclass
class HubEngines:
    """The engines running in one hub namespace, and the questions a test asks them (their HTTP APIs)."""

    lab: Lab
    key: str  # the hub's namespace key in `lab`
    work: Path

    @property
    def targets_dir(self) -> Path:
        return self.work / "targets"

    @property
    def webhook_log(self) -> Path:
        return self.work / "webhook.jsonl"

    def start(self) -> None:
        """Receiver, Alertmanager, then Prometheus (so its first alerts find Alertmanager), each waited for."""
        self.work.mkdir(parents=True, exist_ok=True)
        write_targets(self.targets_dir, [])
        self.lab.spawn(self.key, ["python3", "-c", _RECEIVER, str(WEBHOOK_PORT), str(self.webhook_log)],
                       log_path=self.work / "webhook.log")  # fmt: skip
        am = self.lab.spawn(self.key, [
            "prometheus-alertmanager", f"--config.file={render_alertmanager(self.work)}",
            f"--storage.path={self.work / 'alertmanager'}", f"--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}",
            "--cluster.listen-address=",  # one Alertmanager: no gossip port
        ], log_path=self.work / "alertmanager.log")  # fmt: skip
        self._wait_ready(am, ALERTMANAGER_PORT, "alertmanager")
        prom = self.lab.spawn(self.key, [
            "prometheus", f"--config.file={render_prometheus(self.work, self.targets_dir)}",
            f"--storage.tsdb.path={self.work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
            "--storage.tsdb.retention.time=1d",
        ], log_path=self.work / "prometheus.log")  # fmt: skip
        self._wait_ready(prom, PROMETHEUS_PORT, "prometheus")

    def _wait_ready(self, proc: subprocess.Popen, port: int, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = (self.work / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log}")
            if self._get(port, "/-/ready") is not None:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready within {timeout:.0f} s")

    def _get(self, port: int, path: str) -> str | None:
        res = self.lab.run(self.key, ["curl", "-sf", "--max-time", "5", f"http://127.0.0.1:{port}{path}"],
                           check=False, timeout=15)  # fmt: skip
        return res.stdout if res.returncode == 0 else None

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Prometheus' instant query API: the result vector ([] when Prometheus does not answer)."""
        res = self.lab.run(self.key, ["curl", "-sf", "--max-time", "5", "-G", "--data-urlencode",
                                      f"query={expr}", f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query"],
                           check=False, timeout=15)  # fmt: skip
        if res.returncode != 0:
            return []
        return json.loads(res.stdout)["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        """Prometheus' active targets (labels, health, last error)."""
        out = self._get(PROMETHEUS_PORT, "/api/v1/targets?state=active")
        return json.loads(out)["data"]["activeTargets"] if out else []

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now (its v2 API)."""
        out = self._get(ALERTMANAGER_PORT, "/api/v2/alerts")
        return json.loads(out) if out else []

    def webhook_alerts(self) -> list[dict[str, Any]]:
        """Every alert the receiver got from Alertmanager, in order (each with the notification's status)."""
        if not self.webhook_log.exists():
            return []
        out = []
        for line in self.webhook_log.read_text(encoding="utf-8").splitlines():
            body = json.loads(line)["body"] or {}
            out.extend(body.get("alerts", []))
        return out
