"""rsyslog.conf of the box's SIEM forwarder, rendered from the config (pure: no I/O).

What the box's rsyslogd does, and nothing else (it reads only this file, never /etc/rsyslog.conf; no
imklog, imjournal or imuxsock, no listener of any kind):

- imfile reads the spool (SPOOL_GLOB) that the daemon appends to, with its persistent state in the work
  directory (after every batch it hands on), so a restart of rsyslogd or of the daemon neither loses
  nor repeats a line;
- one omfwd action sends each line as it is (the daemon wrote the whole RFC 5424 message) over TLS
  (gtls, StreamDriverMode 1) with octet-counted framing (RFC 5425 §4.3), verifying the collector's
  certificate against the configured CA and name (x509/name);
- the action's queue is a disk queue (queue.type Disk) of up to DISK_SHARE of the budget, retried for
  ever (resumeRetryCount -1) in order. Not LinkedList + disk-assisted, which was the first choice: the lab
  showed that when rsyslogd is stopped while the collector is away, the batch its worker holds in memory
  is cancelled and lost ("need to do hard cancellation"); a disk queue deletes a message from disk only
  once it was sent, and checkpoints its read position every CHECKPOINT messages, so a stop loses nothing
  and a crash at worst sends a few messages twice (recognisable by their event id). It costs disk writes,
  which the benchmark measures (bench/bench_siem.py);
- ResendLastMSGOnReconnect: plain TLS syslog has no acknowledgements, and the first message written after
  the collector died goes into a dead connection; rsyslog sends it again when it reconnects (a collector
  may then see it twice, by event id);
- impstats writes the queue's and the action's counters (JSON) for `mamori siem status` and the metrics.

The CA and client certificates' hashes are written as comments, so that a new certificate changes the
file and the daemon's worker restarts rsyslogd (appliance.adopted).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from appliance.config.model import MamoriConfig
from appliance.paths import Paths

ACTION_NAME = "siem-fwd"
SPOOL_SUFFIX = ".spool"  # not *.log: appliance.logcap truncates *.log files, and the spool is evidence
SPOOL_GLOB = "*" + SPOOL_SUFFIX
CHECKPOINT = 10  # disk queue: its read position is written every CHECKPOINT messages
DISK_SHARE = 0.75  # of siem.queue_mb for rsyslog's queue files; the rest bounds the spool
STATS_INTERVAL_S = 10
MAX_MESSAGE = "16k"  # above siem.events.MAX_LINE
CLIENT_KEY = "siem-client.key"  # in the keys directory, never in the config


@dataclass(frozen=True)
class SiemPaths:
    root: Path
    keys_dir: Path
    run_dir: Path

    @classmethod
    def of(cls, paths: Paths) -> SiemPaths:
        return cls(paths.state_dir / "siem", paths.keys_dir, paths.run_dir)

    @property
    def conf(self) -> Path:
        return self.root / "rsyslog.conf"

    @property
    def ca(self) -> Path:
        return self.root / "collector-ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.root / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.keys_dir / CLIENT_KEY

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"

    @property
    def pid(self) -> Path:
        return self.run_dir / "rsyslogd-siem.pid"

    @property
    def log(self) -> Path:
        return self.run_dir / "rsyslogd-siem.log"


@dataclass(frozen=True)
class Rendered:
    """rsyslog.conf and the certificate files it names; all "" when the forwarder is off."""

    conf: str
    ca: str
    client_cert: str


def _q(value: object) -> str:
    """A RainerScript string: the config model allows no quote or backslash in these values; refuse if one
    slipped in rather than render a config that means something else."""
    text = str(value)
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"refusing to render {text!r} into rsyslog.conf")
    return f'"{text}"'


def spool_budget_bytes(queue_mb: int) -> int:
    """How large the spool may grow before the daemon stops adding to it (it then waits, nothing lost)."""
    return int(queue_mb * (1 - DISK_SHARE)) << 20


def render_rsyslog(cfg: MamoriConfig, sp: SiemPaths) -> Rendered:
    s = cfg.siem
    if not s.enabled:
        return Rendered("", "", "")
    digest = hashlib.sha256((s.collector_ca + "\0" + s.client_cert).encode()).hexdigest()
    tls_files = [f"defaultNetstreamDriverCAFile={_q(sp.ca)}"]
    if s.client_cert:
        tls_files += [f"defaultNetstreamDriverCertFile={_q(sp.client_cert)}",
                      f"defaultNetstreamDriverKeyFile={_q(sp.client_key)}"]  # fmt: skip
    # via mgmt needs no source binding: the collector is one of the hub's addresses, routed only into the
    # link, so the kernel picks the link's own address (omfwd's Address= is UDP-only in rsyslog 8.2302: with
    # protocol tcp, `rsyslogd -N1` refuses the config and the apply failed).
    disk_mb = max(int(s.queue_mb * DISK_SHARE), 1)
    lines = [
        "# Generated by Mamori from the config (siem:); edits here are overwritten.",
        f"# certificates sha256 {digest}",
        f"global(workDirectory={_q(sp.work)} maxMessageSize={_q(MAX_MESSAGE)}",
        f'       defaultNetstreamDriver="gtls" {" ".join(tls_files)})',
        'module(load="imfile" mode="inotify")',
        f'module(load="impstats" interval="{STATS_INTERVAL_S}" format="json" log.syslog="off"'
        f' log.file={_q(sp.stats)} resetCounters="off")',
        'template(name="mamori_raw" type="string" string="%rawmsg%")',
        'ruleset(name="siem") {',
        f'  action(type="omfwd" name="{ACTION_NAME}" target={_q(s.collector)} port="{s.port}" protocol="tcp"',
        '         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"',
        f"         StreamDriverPermittedPeers={_q(s.peer_name)}",
        '         TCP_Framing="octet-counted" template="mamori_raw"',
        f'         queue.type="Disk" queue.filename="{ACTION_NAME}" queue.maxDiskSpace="{disk_mb}m"',
        f'         queue.maxFileSize="8m" queue.checkpointInterval="{CHECKPOINT}" queue.saveOnShutdown="on"',
        '         ResendLastMSGOnReconnect="on" action.resumeRetryCount="-1" action.resumeInterval="5")',
        "}",
        f'input(type="imfile" file={_q(sp.spool / SPOOL_GLOB)} tag="mamori" ruleset="siem"',
        '      persistStateAfterSubmission="on" freshStartTail="off" reopenOnTruncate="off" addMetadata="off")',
    ]
    return Rendered("\n".join(lines) + "\n", s.collector_ca, s.client_cert)


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
