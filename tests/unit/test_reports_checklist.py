"""The checklist rules, table-driven over snapshots: each case changes one thing of a healthy box and
names the item whose state must change, and the words its evidence must contain."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reports.checklist import CANNOT, CHECK, CLINIC_KEYS, NO, YES, build_checklist, summary
from reports.snapshot import (
    UNAVAILABLE,
    Answer,
    AuditState,
    BackupState,
    ClockInfo,
    HostRow,
    Snapshot,
    SoftwareRow,
    VpnUserRow,
    WebAccountRow,
)

NOW = 1_790_000_000.0
DAY = 86400.0
SYNCED = ClockInfo(
    True, True, True, -0.0004, 2, "ntp.nict.jp", "同期済み（ntp.nict.jp、ずれ 0.400 ミリ秒遅れ、階層 2）"
)
UNSYNCED = ClockInfo(
    True, True, False, None, None, "", "本機の時計はまだ上位の時刻サーバーと同期していません"
)


def vpn_user(name: str = "yamada", role: str = "doctor", **kw: object) -> VpnUserRow:
    base = dict(name=name, role=role, display_name="", access=("電子カルテ (HTTPS)",), broad=(), enabled=True,
                session_hours=8, hours="", devices=1, mfa=True, credential_disabled=False, last_used=NOW - DAY,
                created=NOW - 200 * DAY)  # fmt: skip
    return VpnUserRow(**{**base, **kw})  # type: ignore[arg-type]


def web(name: str = "admin", role: str = "admin", **kw: object) -> WebAccountRow:
    base = dict(name=name, display_name="", role=role, mfa=True, created_at=NOW - 300 * DAY, last_login=NOW - DAY,
                disabled=False, password_changed_at=NOW - 300 * DAY, expires_at=None)  # fmt: skip
    return WebAccountRow(**{**base, **kw})  # type: ignore[arg-type]


def backup(**kw: object) -> BackupState:
    base = dict(last_ok_backup=NOW - DAY, last_backup_ok=True, last_backup_error="", last_backup_ts=NOW - DAY,
                last_ok_test=NOW - 30 * DAY, last_test_ok=True, last_test_error="", last_test_ts=NOW - 30 * DAY,
                enabled=True)  # fmt: skip
    return BackupState(**{**base, **kw})  # type: ignore[arg-type]


def healthy() -> Snapshot:
    return Snapshot(
        now=NOW, clinic="さくら内科クリニック", timezone="Asia/Tokyo", config_revision=3,
        hosts=[HostRow("電子カルテ", "192.168.10.10", "", "lan", "")], discovered=[],
        vpn_users=[vpn_user(), vpn_user("vendor-a", "vendor", access=("電子カルテ (SSH)",))],
        web_accounts=[web(), web("uketsuke", "viewer")], web_password_policy=(13, 8, 5), vpn_password_min=10,
        zone_policy=[("院内", "インターネット", "許可")], allow_rules=[("受付PC", "電子カルテ", "HTTPS", "")],
        port_forwards=[], web_zones=("lan",),
        software=[SoftwareRow("Mamori", "0.1.0", None), SoftwareRow("検知ルール（ET Open）", "導入済み", NOW - 2 * DAY)],
        backup=backup(), audit=AuditState(True, 12, "監査ログは改ざんされていません（12件を確認）"),
    )  # fmt: skip


def item(snapshot: Snapshot, key: str):  # type: ignore[no-untyped-def]
    return next(i for i in build_checklist(snapshot) if i.key == key)


def test_a_healthy_box_answers_yes_to_every_item_it_judges() -> None:
    items = build_checklist(healthy())
    judged = {i.key: i.state for i in items if i.box_judges}
    assert judged == dict.fromkeys(judged, YES), judged
    assert {i.key for i in items if not i.box_judges} == CLINIC_KEYS
    assert summary(items) == {YES: 10, NO: 0, CHECK: 0, CANNOT: len(CLINIC_KEYS)}
    assert [i.number for i in items][:3] == ["1①", "2①", "2②"]  # the checklist's own order


CASES = [
    # (case, change to the healthy snapshot, item, expected state, words in the evidence)
    ("ledger empty", dict(hosts=[]), "2-1", NO, "登録されていません"),
    ("ledger source missing", dict(hosts=None), "2-1", CHECK, UNAVAILABLE),
    ("unknown device on the network", dict(discovered=[HostRow("?", "192.168.10.77", "", "lan", "", "検出")]),
     "2-1", CHECK, "台帳にない機器が 1 台"),
    ("vendor reaches a whole zone", dict(vpn_users=[vpn_user("v", "vendor", access=("院内 全体 (すべて)",),
                                                             broad=("院内 全体 (すべて)",))]), "2-2", CHECK, "ゾーン全体"),
    ("no vendor at all", dict(vpn_users=[vpn_user()]), "2-2", YES, "業者はいません"),
    ("vpn source missing", dict(vpn_users=None), "2-2", CHECK, UNAVAILABLE),
    ("web accounts missing", dict(web_accounts=None), "2-4", CHECK, "管理画面のアカウント"),
    ("doctor reaches a whole zone", dict(vpn_users=[vpn_user(broad=("lan 全体 (すべて)",))]), "2-4", CHECK, "yamada"),
    ("web account unused 100 days", dict(web_accounts=[web(last_login=NOW - 100 * DAY)]), "2-5", NO, "1 件"),
    ("web account never used, created long ago", dict(web_accounts=[web(last_login=None)]), "2-5", NO, "1 件"),
    ("unused but disabled is fine", dict(web_accounts=[web(last_login=NOW - 100 * DAY, disabled=True)]), "2-5", YES,
     "ありません"),
    ("vpn user unused", dict(vpn_users=[vpn_user(last_used=NOW - 91 * DAY)]), "2-5", NO, "90日以上"),
    ("vpn user never signed in, device old", dict(vpn_users=[vpn_user(last_used=None)]), "2-5", NO, "1 件"),
    ("audit chain broken", dict(audit=AuditState(False, 4, "監査ログの 5 番目の記録が書き換えられています")), "2-6", NO,
     "書き換えられています"),
    ("clock not synchronised", dict(clock=UNSYNCED), "2-6", CHECK, "同期していません"),
    ("time service stopped", dict(clock=replace(UNSYNCED, running=False, text="時刻サーバー（chronyd）が動いていません")),
     "2-6", CHECK, "動いていません"),
    ("clock synchronised", dict(clock=SYNCED), "2-6", YES, "監査ログに記録"),
    ("time service not built", dict(clock=None), "2-6", YES, "監査ログに記録"),
    ("audit broken outranks the clock", dict(clock=UNSYNCED, audit=AuditState(False, 4, "5 番目が書き換えられています")),
     "2-6", NO, "書き換えられています"),
    ("password policy unknown", dict(web_password_policy=None), "2-7", CHECK, UNAVAILABLE),
    ("admin without MFA", dict(web_accounts=[web(mfa=False)]), "2-10", NO, "admin"),
    ("disabled account without MFA is fine", dict(web_accounts=[web(), web("old", mfa=False, disabled=True)]),
     "2-10", YES, "すべて"),
    ("vpn user not enrolled is not a missing MFA", dict(vpn_users=[vpn_user(mfa=None)]), "2-10", YES, "すべて"),
    ("rules 30 days old", dict(software=[SoftwareRow("検知ルール（ET Open）", "導入済み", NOW - 30 * DAY)]), "2-11", NO,
     "30 日"),
    ("rules 10 days old, limit 7 (ids.rules_max_age_days)",
     dict(software=[SoftwareRow("検知ルール（ET Open）", "導入済み", NOW - 10 * DAY)]), "2-11", NO, "目安 7 日以内"),
    ("rules 10 days old, limit 14", dict(software=[SoftwareRow("検知ルール（ET Open）", "導入済み", NOW - 10 * DAY)],
     rules_max_age_days=14), "2-11", YES, "更新されています"),
    ("rules not installed", dict(software=[SoftwareRow("検知ルール（ET Open）", "未導入", None)]), "2-11", CHECK,
     "入っていません"),
    ("rule source unknown", dict(software=[SoftwareRow("Mamori", "0.1.0", None)]), "2-11", CHECK, UNAVAILABLE),
    ("port forward from the internet", dict(port_forwards=[("tcp/443", "電子カルテ", "")]), "2-13", CHECK, "1 件"),
    ("no config", dict(zone_policy=None, allow_rules=None), "2-13", CHECK, UNAVAILABLE),
    ("no backup ever", dict(backup=backup(last_ok_backup=None, last_backup_ok=None)), "3-2", NO, "ありません"),
    ("backup 10 days old", dict(backup=backup(last_ok_backup=NOW - 10 * DAY)), "3-2", NO, "10日前"),
    ("no restore test", dict(backup=backup(last_ok_test=None, last_test_ok=None)), "3-2", CHECK, "復元テスト"),
    ("backups not built", dict(backup=None), "3-2", CHECK, UNAVAILABLE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "key", "state", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_item_state_follows_the_evidence(change: dict, key: str, state: str, words: str) -> None:
    got = item(replace(healthy(), **change), key)
    assert (got.state, words in got.evidence) == (state, True), got.evidence


def test_unused_rows_name_the_account_and_its_age() -> None:
    got = item(replace(healthy(), web_accounts=[web("taishoku", last_login=NOW - 120 * DAY)]), "2-5")
    assert got.rows == [("管理画面", "taishoku", got.rows[0][2], "120")]


def test_clinic_items_carry_the_stored_answer_and_target_date() -> None:
    answers = {"3-3": Answer("いいえ", "2027-03-31", "作成中", "院長", NOW)}
    got = item(replace(healthy(), answers=answers), "3-3")
    assert (got.state, got.answer, got.target_date, got.note, got.box_judges) == (CANNOT, "いいえ", "2027-03-31",
                                                                                   "作成中", False)  # fmt: skip
    assert "院長" in got.evidence
    unanswered = item(healthy(), "1-1")
    assert (unanswered.answer, "回答を記入してください" in unanswered.evidence) == ("", True)


@pytest.mark.parametrize(
    ("clock", "row"), [(SYNCED, SYNCED.text), (UNSYNCED, UNSYNCED.text), (None, UNAVAILABLE)]
)
def test_access_log_shows_the_clock(clock: ClockInfo | None, row: str) -> None:
    assert ("本機の時計（NTP）", row) in item(replace(healthy(), clock=clock), "2-6").rows
