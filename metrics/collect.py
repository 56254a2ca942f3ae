"""The Prometheus collector: on each scrape, asks every area for its current state and yields metric families.

Nothing is kept between scrapes (a custom `prometheus_client` Collector whose `collect()` reads the state
database, /proc and /sys afresh). metrics/ never reads another area's tables: it calls that area's query
functions (ids/queries.py, vpn/queries.py, firewall/queries.py, appliance/queries.py, backup records,
timesvc status, webui.tls, notify outbox, clockwatch). Names follow Prometheus conventions: `mamori_`
prefix, `_total` for counters, base units (seconds, bytes, celsius), timestamps as `_timestamp_seconds`.
The meaning of each metric is in docs/fleet-metrics.md.

A section that fails (a bug, a locked or damaged table) is logged and shown as
`mamori_metrics_section_ok{section="..."} 0`; the other sections are still served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance import __version__, clock
from appliance.config.load import parse_config
from appliance.config.model import MamoriConfig
from appliance.revisions import RevisionStore
from appliance.subsystem import Context
from metrics import system

log = logging.getLogger(__name__)

Section = Callable[[], Iterator[Metric]]


def _gauge(
    name: str, doc: str, value: float | None, labels: dict[str, str] | None = None
) -> Iterator[Metric]:
    if value is None:
        return
    g = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
    g.add_metric(list(labels.values()) if labels else [], float(value))
    yield g


def _counter(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is None:
        return
    yield CounterMetricFamily(name, doc, value=float(value))


class MamoriCollector(Collector):
    """`cfg`: the live config when the caller has it (the daemon worker is restarted with each revision);
    None reads the live revision from the database (the CLI)."""

    def __init__(self, ctx: Context, cfg: MamoriConfig | None = None, now: Callable[[], float] = clock.wall,
                 root: Any = system.ROOT) -> None:  # fmt: skip
        self.ctx, self.cfg, self.now, self.root = ctx, cfg, now, root

    def describe(self) -> list[Metric]:
        return []  # no describe-time scrape when registered: collect() only runs on a real scrape

    def collect(self) -> Iterator[Metric]:
        now = self.now()
        live = RevisionStore(self.ctx.db).live()
        cfg = self.cfg
        if cfg is None and live is not None:
            cfg = parse_config(live.config_text).model
        sections: list[tuple[str, Section]] = [
            ("box", lambda: self._box(live)),
            ("ids", lambda: self._ids(cfg, now)),
            ("firewall", lambda: self._firewall(now)),
            ("vpn", lambda: self._vpn(now)),
            ("system", lambda: self._system()),
            ("backup", lambda: self._backup(cfg)),
            ("ntp", lambda: self._ntp()),
            ("tls", lambda: self._tls(now)),
            ("notify", lambda: self._notify(now)),
            ("clock", lambda: self._clock()),
            ("update", lambda: self._update()),
            ("siem", lambda: self._siem(cfg)),
        ]
        ok = GaugeMetricFamily(
            "mamori_metrics_section_ok", "1 when this scrape could read the section, 0 when it failed (see the log)",
            labels=["section"],
        )  # fmt: skip
        for name, section in sections:
            try:
                families = list(section())
            except Exception:  # one area's failure must not cost the vendor every other metric
                log.exception("metrics section %s failed", name)
                ok.add_metric([name], 0.0)
                continue
            ok.add_metric([name], 1.0)
            yield from families
        yield ok

    # -- sections -------------------------------------------------------------------------------------
    def _box(self, live: Any) -> Iterator[Metric]:
        from appliance.queries import first_revision_time

        yield from _gauge("mamori_up", "1: the box's daemon answered this scrape", 1)
        info = InfoMetricFamily("mamori_build", "The Mamori version running")
        info.add_metric([], {"version": __version__})
        yield info
        yield from _gauge(
            "mamori_uptime_seconds", "Seconds since the machine booted", system.uptime_seconds(self.root)
        )
        yield from _gauge("mamori_config_revision", "The live config revision", live.id if live else None)
        yield from _gauge(
            "mamori_config_pending", "1 while an applied revision waits for confirmation (apply --confirm)",
            (1 if live.status == "pending" else 0) if live else None,
        )  # fmt: skip
        yield from _gauge("mamori_box_configured_timestamp_seconds", "When the first config revision was recorded",
                          first_revision_time(self.ctx.db))  # fmt: skip

    def _ids(self, cfg: MamoriConfig | None, now: float) -> Iterator[Metric]:
        from ids.freshness import rules_age
        from ids.queries import alert_totals, engine_state, open_incidents

        enabled = bool(cfg and cfg.ids.enabled)
        engine = engine_state(self.ctx)
        yield from _gauge("mamori_ids_enabled", "1 when the IDS is switched on in the config", int(enabled))
        yield from _gauge("mamori_ids_running", "1 when Suricata is running", int(engine.running))
        yield from _counter(
            "mamori_ids_restarts", "Suricata restarts after it stopped by itself", engine.restarts
        )
        yield from _counter("mamori_ids_capture_packets", "Packets Suricata captured (its own count)",
                            engine.kernel_packets)  # fmt: skip
        yield from _counter("mamori_ids_capture_drops", "Packets the kernel dropped before Suricata saw them",
                            engine.kernel_drops)  # fmt: skip
        age = rules_age(self.ctx.paths, cfg, now)
        if age.updated_at is not None:
            yield from _gauge("mamori_ids_rules_age_seconds", "Seconds since the ET Open rules were updated",
                              max(0.0, now - age.updated_at))  # fmt: skip
        alerts = CounterMetricFamily(
            "mamori_ids_alerts", "IDS alerts stored, by severity", labels=["severity"]
        )
        for severity, count in alert_totals(self.ctx.db).items():
            alerts.add_metric([severity], float(count))
        yield alerts
        opened = GaugeMetricFamily("mamori_ids_incidents_open", "Incidents not yet handled (未対応), by severity",
                                   labels=["severity"])  # fmt: skip
        oldest = GaugeMetricFamily(
            "mamori_ids_incident_oldest_open_timestamp_seconds",
            "When the oldest incident still open (未対応) of this severity began", labels=["severity"],
        )  # fmt: skip
        for severity, state in open_incidents(self.ctx.db).items():
            opened.add_metric([severity], float(state.count))
            if state.oldest_first_seen is not None:
                oldest.add_metric([severity], state.oldest_first_seen)
        yield opened
        yield oldest

    def _firewall(self, now: float) -> Iterator[Metric]:
        from firewall.queries import held_entries

        held = held_entries(self.ctx.db, now)
        yield from _gauge("mamori_firewall_blocked_addresses", "Addresses blocked now (automatic and manual)",
                          held["block"])  # fmt: skip
        yield from _gauge("mamori_firewall_quarantined_addresses", "Clinic devices in quarantine now",
                          held["quarantine"])  # fmt: skip

    def _vpn(self, now: float) -> Iterator[Metric]:
        from vpn.queries import access_counts, signin_failures

        counts = access_counts(self.ctx.db, now)
        yield from _gauge("mamori_vpn_peers", "VPN devices with a valid key", counts.peers)
        yield from _gauge("mamori_vpn_sessions_open", "VPN sessions signed in now", counts.sessions_open)
        yield from _gauge("mamori_vpn_vendor_windows_open", "Vendor maintenance windows open now",
                          counts.vendor_windows_open)  # fmt: skip
        failures = CounterMetricFamily("mamori_vpn_signin_failures", "Refused VPN sign-ins, by reason",
                                       labels=["reason"])  # fmt: skip
        for reason, count in signin_failures(self.ctx.db).items():
            failures.add_metric([reason], float(count))
        yield failures

    def _system(self) -> Iterator[Metric]:
        from appliance.disk import disk_state

        disk = disk_state(self.ctx.paths.state_dir)
        yield from _gauge(
            "mamori_state_disk_size_bytes", "Size of the file system holding the state", disk.total
        )
        yield from _gauge("mamori_state_disk_free_bytes", "Bytes still free for the state", disk.free)
        memory = system.memory_bytes(self.root)
        if memory is not None:
            yield from _gauge("mamori_memory_total_bytes", "Memory of the machine", memory[0])
            yield from _gauge("mamori_memory_available_bytes", "Memory available without swapping", memory[1])
        temps = system.temperatures_celsius(self.root)
        if temps:
            g = GaugeMetricFamily("mamori_cpu_temperature_celsius", "Temperature of each thermal zone",
                                  labels=["zone", "type"])  # fmt: skip
            for zone, kind, value in temps:
                g.add_metric([zone, kind], value)
            yield g

    def _backup(self, cfg: MamoriConfig | None) -> Iterator[Metric]:
        from appliance.backup.records import backup_status

        status = backup_status(self.ctx.db)
        yield from _gauge(
            "mamori_backup_enabled", "1 when scheduled backups are on", int(bool(cfg and cfg.backup.enabled))
        )
        if status.last_ok_backup is not None:
            yield from _gauge("mamori_backup_last_success_timestamp_seconds", "When the last good backup was made",
                              status.last_ok_backup.ts)  # fmt: skip
        if status.last_backup is not None:
            yield from _gauge("mamori_backup_last_run_timestamp_seconds", "When the last backup was tried",
                              status.last_backup.ts)  # fmt: skip
            yield from _gauge("mamori_backup_last_run_success", "1 when the last backup tried succeeded",
                              int(status.last_backup.ok))  # fmt: skip

    def _ntp(self) -> Iterator[Metric]:
        from timesvc.status import clock_state

        state = clock_state(self.ctx, timeout=2.0)
        yield from _gauge("mamori_ntp_enabled", "1 when the box keeps its time by NTP", int(state.enabled))
        yield from _gauge(
            "mamori_ntp_synchronised", "1 when the clock follows an NTP server", int(state.synchronised)
        )
        yield from _gauge("mamori_ntp_offset_seconds", "Offset of the clock from true time (positive: ahead)",
                          state.offset_s)  # fmt: skip

    def _tls(self, now: float) -> Iterator[Metric]:
        from webui.tls import read_certificate

        cert = read_certificate(self.ctx.paths.keys_dir)
        if cert is None:
            return
        yield from _gauge("mamori_tls_certificate_not_after_timestamp_seconds", "When the web certificate ends",
                          cert.not_after)  # fmt: skip
        yield from _gauge("mamori_tls_certificate_seconds_left", "Seconds until the web certificate ends",
                          cert.not_after - now)  # fmt: skip
        yield from _gauge("mamori_tls_certificate_uploaded", "1 for a certificate the clinic uploaded (not renewed "
                          "by the box)", int(cert.uploaded))  # fmt: skip

    def _notify(self, now: float) -> Iterator[Metric]:
        from appliance.notify.outbox import troubles

        failing = troubles(self.ctx.db, now)
        yield from _gauge("mamori_notify_channels_failing", "Notification channels that have not delivered for a while",
                          len(failing))  # fmt: skip
        if failing:
            g = GaugeMetricFamily("mamori_notify_channel_failing_since_timestamp_seconds",
                                  "Since when a failing channel has not delivered", labels=["channel"])  # fmt: skip
            for t in failing:
                g.add_metric([t.channel], t.since)
            yield g

    def _clock(self) -> Iterator[Metric]:
        from appliance.queries import audit_count

        yield from _counter("mamori_clock_steps", "Steps of the wall clock the box noticed (audited as clock.step)",
                            audit_count(self.ctx.db, "clock.step"))  # fmt: skip

    def _siem(self, cfg: MamoriConfig | None) -> Iterator[Metric]:
        enabled = bool(cfg and cfg.siem.enabled)
        yield from _gauge("mamori_siem_enabled", "1 when logs are sent to a SIEM (siem:)", int(enabled))
        if not enabled or cfg is None:
            return
        from siem.status import siem_state

        st = siem_state(self.ctx, cfg, probe_timeout=0)  # no connection to the collector on a scrape
        yield from _gauge(
            "mamori_siem_running", "1 when the box's rsyslogd for the SIEM runs", int(st.running)
        )
        yield from _gauge("mamori_siem_queue_messages", "Messages waiting in rsyslogd's queue for the collector",
                          st.queued)  # fmt: skip
        yield from _gauge(
            "mamori_siem_queue_disk_bytes", "Bytes of rsyslogd's queue files", st.queue_disk_bytes
        )
        yield from _gauge("mamori_siem_spool_unread_bytes", "Bytes handed over to rsyslogd and not yet read by it",
                          st.spool_unread_bytes)  # fmt: skip
        yield from _gauge("mamori_siem_last_delivery_timestamp_seconds", "When rsyslogd last sent a message",
                          st.last_delivered)  # fmt: skip

    def _update(self) -> Iterator[Metric]:
        from update.queries import STATES, update_metrics

        m = update_metrics(self.ctx)
        yield from _counter("mamori_update_rollbacks", "Updates whose trial boot failed its health check and "
                            "fell back to the previous system by itself", m.rollbacks)  # fmt: skip
        state = GaugeMetricFamily("mamori_update_state", "1 for the update state the box is in (idle, available: "
                                  "a verified newer version is staged, installing, failed, rolled-back)",
                                  labels=["state"])  # fmt: skip
        for name in STATES:
            state.add_metric([name], 1.0 if name == m.state else 0.0)
        yield state
        yield from _gauge("mamori_update_last_check_timestamp_seconds", "When the box last checked the vendor's "
                          "update index", m.last_check)  # fmt: skip
        if m.check_ok is not None:
            yield from _gauge("mamori_update_last_check_ok", "1 when the last check ended without a refusal",
                              int(m.check_ok))  # fmt: skip
