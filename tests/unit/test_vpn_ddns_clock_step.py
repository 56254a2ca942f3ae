"""The IPv6 name's updater after the wall clock steps back (vpn/ddns_worker.py). A box whose clock ran ahead is
refused by the DNS server (TSIG BADTIME); once the clock is set right (a step back, maybe by months) the
updater tries again at its usual pace instead of waiting until the clock reaches the failed try's time, and
still tells the clinic when the failure lasts. Times are relative to appliance.clock.wall()."""

from __future__ import annotations

from appliance.config.load import parse_config
from tests.unit.test_vpn_ddns import Line, audit_actions, config_text, ctx  # noqa: F401  (ctx: a fixture)
from vpn.ddns import DdnsError
from vpn.ddns_worker import ALERT_AFTER_S, RETRY_MAX_S

DAY = 86400.0


def test_a_failure_before_the_clock_stepped_back_is_retried_at_the_usual_pace(ctx, monkeypatch):  # noqa: F811
    cfg = parse_config(config_text()).model
    line = Line(monkeypatch)
    up = line.updater(ctx, cfg)
    line.error = DdnsError("本機の時計がずれています", "the box's clock is off (TSIG BADTIME)")
    line.now += 90 * DAY  # the clock ran three months ahead
    assert up.step().failures == 1
    line.now -= 90 * DAY  # then set right
    line.error = None
    line.now += RETRY_MAX_S + 1  # longer than any back-off
    st = up.step()
    assert len(line.sent) == 2 and st.error_ja == "" and st.address == "2409:10:2020:ab00::2"


def test_a_lasting_failure_across_a_step_back_is_still_told(ctx, monkeypatch):  # noqa: F811
    cfg = parse_config(config_text()).model
    line = Line(monkeypatch)
    up = line.updater(ctx, cfg)
    line.error = DdnsError("DNS サーバーに断られました", "refused")
    line.now += 90 * DAY
    up.step()
    line.now -= 90 * DAY
    for _ in range(10):  # bounded: 10 tries at most 15 min apart span more than the alert delay
        line.now += RETRY_MAX_S + 1
        st = up.step()
    assert len(line.sent) == 11 and st.alerted and line.now - st.failing_since >= ALERT_AFTER_S
    assert [a for a, _ in audit_actions(ctx)].count("vpn.ddns.failing") == 1
