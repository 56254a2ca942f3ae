"""The IDS's long-running work in `mamori daemon`: Suricata's supervisor and the EVE ingest worker.

The ingest worker follows eve.json (ids.eve_reader), stores alerts and incidents (ids.ingest), blocks
attackers (ids.response), and rotates eve.json itself when it grows past ROTATE_BYTES and has been read
to its end (rename, then Suricata's `reopen-log-files`), so the small disk of a box never fills with an
EVE file that nobody rotates. Retention of the IDS tables is run by the coordinator (appliance.retention,
ids.retention.retain), off the alert-to-block path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.subsystem import Context
from ids import suricatasc
from ids.eve_reader import EveReader
from ids.ingest import AlertIngest
from ids.render import SuricataPaths
from ids.response import AutoResponder
from ids.supervisor import SuricataSupervisor

log = logging.getLogger(__name__)

ROTATE_BYTES = 64 * 1024 * 1024
CHECKPOINT_EVERY = 1.0
IDLE_WAIT = 0.005  # a new alert is seen within ~5 ms (an idle poll is a stat and a 256-byte read)


def skip_store(cfg: MamoriConfig) -> frozenset[str]:
    return frozenset() if cfg.ids.store_flows else frozenset({"flow", "netflow", "stats"})


class EveIngestWorker:
    name = "ids-eve"

    def __init__(self, ctx: Context, cfg: MamoriConfig, responders: list | None = None,
                 rotate_bytes: int = ROTATE_BYTES) -> None:  # fmt: skip
        self.ctx, self.cfg = ctx, cfg
        self.live = SuricataPaths.under(ctx.paths.run_dir)
        if responders is None:
            responders = [AutoResponder(ctx, cfg)] if cfg.ids.auto_block.enabled else []
        self.ingest = AlertIngest(cfg, responders)
        self.rotate_bytes = rotate_bytes
        self.reader = EveReader(
            ctx.db, self.live.eve, max_line=cfg.ids.eve_max_line_kb * 1024,
            sink=self.ingest.sink, on_commit=self.ingest.on_commit, skip_store=skip_store(cfg),
            autocheckpoint=False,
        )  # fmt: skip

    def step(self) -> int:
        n = self.reader.poll()
        if n == 0:
            self._maybe_rotate()
        return n

    def _maybe_rotate(self) -> None:
        pos = self.reader._pos
        try:
            st = os.lstat(self.live.eve)  # a link planted there is never the file the reader has open
        except FileNotFoundError:
            return
        if pos is None or st.st_size < self.rotate_bytes or (st.st_dev, st.st_ino) != (pos.dev, pos.ino):
            return
        if pos.offset < st.st_size or not self.live.socket.exists():
            return
        rotated = self.live.eve.with_name(self.live.eve.name + ".1")
        rotated.unlink(missing_ok=True)  # drained: the reader moved past it before this file was started
        os.rename(self.live.eve, rotated)
        try:
            suricatasc.command(self.live.socket, "reopen-log-files", timeout=10)
        except MamoriError as exc:
            log.warning("could not ask Suricata to reopen eve.json: %s", exc.text("en"))
        log.info("rotated %s (%d bytes)", self.live.eve, st.st_size)

    def _checkpointer(self, stop: threading.Event) -> None:
        """Moves the WAL into the database every CHECKPOINT_EVERY seconds, off the alert-to-block path.
        Its connection also stays open for the worker's life: when the last connection to a WAL database
        closes, SQLite checkpoints and removes the WAL, which made every short transaction cost milliseconds."""
        conn = self.ctx.db.connect()
        try:
            while not stop.wait(CHECKPOINT_EVERY):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError as exc:  # busy: the next round will do it
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def run(self, stop: threading.Event) -> None:
        done = threading.Event()
        checkpointer = threading.Thread(target=self._checkpointer, args=(done,), name="ids-wal", daemon=True)
        checkpointer.start()
        try:
            while not stop.is_set():
                if self.step() == 0:
                    stop.wait(IDLE_WAIT)
        finally:
            done.set()
            checkpointer.join(timeout=10)
            self.reader.close()


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list:
    """Suricata itself (when the IDS is enabled), the EVE ingest (which also drains after disabling), and
    notifications when a channel is configured."""
    from appliance.notify.worker import daemon_workers as notify_workers
    from ids.announce import NEWS

    workers: list = [EveIngestWorker(ctx, cfg), *notify_workers(ctx, cfg, NEWS)]
    if cfg.ids.enabled:
        workers.insert(0, SuricataSupervisor(ctx))
    return workers
