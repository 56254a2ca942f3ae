"""The MHLW 「医療機関におけるサイバーセキュリティ対策チェックリスト」 judged from a Snapshot: pure, no I/O.

Each item keeps the checklist's own wording and number (令和7年度版の番号) and gets a state:
はい / いいえ / 要確認 (the box has evidence but a person must look) / 機器では判定できません (the clinic
answers it itself; the answer and, for いいえ, the target date come from reports.answers).
What the box judges, it judges about itself and what passes through it: the evidence says so, so that
nobody mistakes 「はい」 for a statement about the 電子カルテ server's own settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.clock import show
from reports.snapshot import UNAVAILABLE, Snapshot, WebAccountRow

YES, NO, CHECK, CANNOT = "はい", "いいえ", "要確認", "機器では判定できません"
STATES = (YES, NO, CHECK, CANNOT)
BACKUP_MAX_AGE_DAYS = 7
RESTORE_TEST_MAX_AGE_DAYS = 365


@dataclass(frozen=True)
class Item:
    key: str  # stable identifier (answers are stored under it)
    number: str  # the checklist's number, e.g. "2①"
    wording: str  # the checklist's own words
    state: str
    evidence: str  # short Japanese explanation of the state
    columns: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    box_judges: bool = True
    answer: str = ""
    target_date: str = ""
    note: str = ""


# Items the box cannot judge: (key, number, wording, why not).
CLINIC_ITEMS: tuple[tuple[str, str, str, str], ...] = (
    ("1-1", "1①", "医療情報システム安全管理責任者を設置している。", "院内の体制のため、機器からは分かりません。"),
    ("2-3", "2③", "事業者から製造業者/サービス事業者による医療情報セキュリティ開示書（MDS/SDS）を提出してもらう。",
     "事業者との書類のやり取りのため、機器からは分かりません。"),
    ("2-8", "2⑧", "パスワードの使い回しを禁止している。",
     "本機のアカウントは過去5回と同じパスワードを使えませんが、他の機器との使い回しは本機から分かりません。"),
    ("2-9", "2⑨", "USBストレージ等の外部記録媒体や情報機器に対して接続を制限している。",
     "各端末の設定のため、本機からは分かりません。"),
    ("2-12", "2⑫", "バックグラウンドで動作している不要なソフトウェア及びサービスを停止している。",
     "各サーバ・端末の設定のため、本機からは分かりません。"),
    ("3-1", "3①", "インシデント発生時における組織内と外部関係機関（事業者、厚生労働省、警察等）への連絡体制図がある。",
     "院内の書類のため、機器からは分かりません。"),
    ("3-3", "3③", "サイバー攻撃を想定した事業継続計画（BCP）を策定している。", "院内の書類のため、機器からは分かりません。"),
)  # fmt: skip
CLINIC_KEYS = frozenset(k for k, *_ in CLINIC_ITEMS)


def _date(ts: float | None, tz: str) -> str:
    """The clinic's calendar day of `ts` (Snapshot.timezone), or なし."""
    return show(ts, tz, "%Y-%m-%d", empty="なし")


def _days(now: float, ts: float | None) -> int | None:
    return None if ts is None else int((now - ts) // 86400)


def ago(days: int, ni: bool = False) -> str:
    """「今日」「昨日」「N日前(に)」: what a person says, not "0 日前"."""
    return {0: "今日", 1: "昨日"}.get(days, f"{days}日前" + ("に" if ni else ""))


def ledger(s: Snapshot) -> Item:
    """2① 台帳: the hosts named in the config, plus devices seen on the network that nobody named."""
    cols = ("名前", "IPアドレス", "MACアドレス", "ゾーン", "説明", "出どころ")
    item = Item(
        "2-1", "2①", "サーバ、端末PC、ネットワーク機器の台帳管理を行っている。", CHECK, UNAVAILABLE, cols
    )
    if s.hosts is None:
        return item
    rows = [(h.name, h.ip, h.mac, h.zone, h.description, h.source) for h in s.hosts]
    known = {h.ip for h in s.hosts if h.ip} | {h.mac for h in s.hosts if h.mac}
    unknown = [h for h in (s.discovered or []) if h.ip not in known and h.mac not in known]
    rows += [(h.name, h.ip, h.mac, h.zone, h.description, h.source) for h in unknown]
    if not s.hosts:
        return Item(
            item.key, item.number, item.wording, NO, "本機の機器台帳に機器が登録されていません。", cols, rows
        )
    seen = "" if s.discovered is not None else f" 院内で検出した機器: {UNAVAILABLE}"
    if unknown:
        text = f"台帳にない機器が {len(unknown)} 台ネットワーク上に見つかりました。台帳に追加するか確認してください。"
        return Item(item.key, item.number, item.wording, CHECK, text, cols, rows)
    text = f"本機の機器台帳に {len(s.hosts)} 台が登録されています（台帳として出力できます）。{seen}"
    return Item(item.key, item.number, item.wording, YES, text.strip(), cols, rows)


def remote_maintenance(s: Snapshot) -> Item:
    """2② which systems a vendor can reach through the box's VPN. Other routes (a vendor's own line) are
    invisible to the box, which the evidence says."""
    cols = ("保守業者", "表示名", "接続できる機器", "有効")
    wording = "リモートメンテナンス（保守）を利用している機器の有無を事業者に確認した。"
    if s.vpn_users is None:
        return Item("2-2", "2②", wording, CHECK, UNAVAILABLE, cols)
    vendors = [u for u in s.vpn_users if u.role == "vendor"]
    rows = [
        (u.name, u.display_name, "、".join(u.access) or "なし", "はい" if u.enabled else "いいえ")
        for u in vendors
    ]
    note = "本機を通らない保守回線（事業者が独自に引いた回線など）は事業者に確認してください。"
    broad = [u.name for u in vendors if u.enabled and u.broad]
    if broad:
        text = (
            f"保守業者 {', '.join(broad)} がゾーン全体に接続できます。対象の機器だけに絞ってください。{note}"
        )
        return Item("2-2", "2②", wording, CHECK, text, cols, rows)
    if not vendors:
        return Item(
            "2-2", "2②", wording, YES, f"本機経由でリモート保守できる業者はいません。{note}", cols, rows
        )
    targets = sorted({a for u in vendors for a in u.access})
    text = f"本機経由のリモート保守: 業者 {len(vendors)} 件、対象 {'、'.join(targets) or 'なし'}。{note}"
    return Item("2-2", "2②", wording, YES, text, cols, rows)


WEB_ROLE_RIGHTS = {
    "admin": "管理者: すべての設定の変更・アカウント管理",
    "viewer": "閲覧: 状態と記録の閲覧のみ（設定は変更できません）",
    "vendor": "保守業者: 期限付き、許可された範囲のみ",
}
VPN_ROLE_LABELS = {"doctor": "医師", "staff": "職員", "vendor": "保守業者"}


def access_rights(s: Snapshot) -> Item:
    """2④ rights per role: web UI roles and every VPN user's reachable systems, in one table."""
    cols = ("種類", "アカウント", "役割", "できること・接続できる機器")
    wording = "利用者の職種・担当業務別の情報区分毎のアクセス利用権限を設定している。"
    rows: list[tuple[str, ...]] = []
    for a in s.web_accounts or []:
        rows.append(("管理画面", a.name, a.role, WEB_ROLE_RIGHTS.get(a.role, a.role)))
    for u in s.vpn_users or []:
        rows.append(("VPN", u.name, VPN_ROLE_LABELS.get(u.role, u.role), "、".join(u.access) or "なし"))
    missing = [
        n for n, v in (("管理画面のアカウント", s.web_accounts), ("VPN利用者", s.vpn_users)) if v is None
    ]
    if missing:
        return Item("2-4", "2④", wording, CHECK, f"{'・'.join(missing)}: {UNAVAILABLE}", cols, rows)
    broad = [u.name for u in s.vpn_users or [] if u.enabled and u.broad]
    if broad:
        text = f"VPN利用者 {', '.join(broad)} はゾーン全体に接続できます。業務に必要な機器だけに絞れないか確認してください。"
        return Item("2-4", "2④", wording, CHECK, text, cols, rows)
    text = "役割ごとの権限と、VPN利用者ごとに接続できる機器を本機で設定しています（下表）。"
    return Item("2-4", "2④", wording, YES, text, cols, rows)


def _web_unused(a: WebAccountRow, now: float, days: int) -> bool:
    last = a.last_login or a.created_at
    return not a.disabled and now - last > days * 86400


def unused_accounts(s: Snapshot) -> Item:
    """2⑤ accounts not used for `unused_days` days (never used counts from creation) and still enabled."""
    cols = ("種類", "アカウント", "最後の利用", "経過日数")
    wording = "退職者や使用していないアカウント等、不要なアカウントを削除している。"
    rows: list[tuple[str, ...]] = []
    for a in s.web_accounts or []:
        if _web_unused(a, s.now, s.unused_days):
            rows.append(
                (
                    "管理画面",
                    a.name,
                    _date(a.last_login, s.timezone),
                    str(_days(s.now, a.last_login or a.created_at)),
                )
            )
    for u in s.vpn_users or []:
        since = u.last_used or u.created
        if u.enabled and since is not None and s.now - since > s.unused_days * 86400:
            rows.append(("VPN", u.name, _date(u.last_used, s.timezone), str(_days(s.now, since))))
    missing = [
        n for n, v in (("管理画面のアカウント", s.web_accounts), ("VPN利用者", s.vpn_users)) if v is None
    ]
    if rows:
        text = f"{s.unused_days}日以上使われていない有効なアカウントが {len(rows)} 件あります。不要なら無効にしてください。"
        return Item("2-5", "2⑤", wording, NO, text, cols, rows)
    if missing:
        return Item("2-5", "2⑤", wording, CHECK, f"{'・'.join(missing)}: {UNAVAILABLE}", cols, rows)
    return Item(
        "2-5", "2⑤", wording, YES, f"{s.unused_days}日以上使われていない有効なアカウントはありません。", cols
    )


def _clock_row(s: Snapshot) -> tuple[str, str]:
    return ("本機の時計（NTP）", s.clock.text if s.clock is not None else UNAVAILABLE)


def access_log(s: Snapshot) -> Item:
    """2⑥ the box's own access log (the audit chain) is kept and verified, with times from a synchronised
    clock: a log whose times cannot be trusted is weak evidence, so an unsynchronised clock needs a look."""
    wording = "アクセスログを管理している。"
    cols = ("項目", "結果")
    rows = [
        ("監査ログの改ざん検査", "正常" if s.audit.ok else "異常"),
        ("確認した記録の件数", str(s.audit.checked)),
        _clock_row(s),
    ]
    if not s.audit.ok:
        return Item(
            "2-6",
            "2⑥",
            wording,
            NO,
            f"本機の監査ログ: {s.audit.text}。販売店に連絡してください。",
            cols,
            rows,
        )
    text = f"本機の操作・ログインはすべて監査ログに記録しています。{s.audit.text}。各システムのログは別途確認してください。"
    if s.clock is not None and not s.clock.synchronised:
        text = (f"{text} ただし{s.clock.text}。記録の時刻が正しいとは限りません。上位の時刻サーバーへの通信"
                "（ntp: の設定）を確認するか、販売店に連絡してください。")  # fmt: skip
        return Item("2-6", "2⑥", wording, CHECK, text, cols, rows)
    return Item("2-6", "2⑥", wording, YES, text, cols, rows)


def passwords(s: Snapshot) -> Item:
    """2⑦ the password policy the box enforces for its own accounts (guideline 6.0: 13+ chars, or 8+ with MFA)."""
    wording = "パスワードを適切に設定している。"
    cols = ("アカウントの種類", "本機が求める条件")
    rows: list[tuple[str, ...]] = []
    if s.web_password_policy is not None:
        length, with_mfa, history = s.web_password_policy
        rows.append(("管理画面", f"{length}文字以上（二要素認証ありは{with_mfa}文字以上）、よく使われるパスワード禁止、"
                                 f"過去{history}回と同じものは不可"))  # fmt: skip
    if s.vpn_password_min is not None:
        rows.append(("VPN", f"{s.vpn_password_min}文字以上 ＋ 認証アプリのコード（必須）"))
    if s.web_password_policy is None or s.vpn_password_min is None:
        return Item("2-7", "2⑦", wording, CHECK, f"一部のアカウントの条件: {UNAVAILABLE}", cols, rows)
    text = (
        "本機のアカウントは下表の条件を満たさないパスワードを設定できません。他の機器は別途確認してください。"
    )
    return Item("2-7", "2⑦", wording, YES, text, cols, rows)


def mfa(s: Snapshot) -> Item:
    """2⑩ every enabled account of the box signs in with a second factor."""
    wording = "二要素認証を導入している。"
    cols = ("種類", "アカウント", "役割", "二要素認証")
    rows: list[tuple[str, ...]] = []
    lacking: list[str] = []
    for a in s.web_accounts or []:
        if not a.disabled:
            rows.append(("管理画面", a.name, a.role, "あり" if a.mfa else "なし"))
            lacking += [] if a.mfa else [a.name]
    for u in s.vpn_users or []:
        if u.enabled:
            state = {True: "あり（必須）", False: "なし", None: "未登録（サインインできません）"}[u.mfa]
            rows.append(("VPN", u.name, VPN_ROLE_LABELS.get(u.role, u.role), state))
            lacking += [u.name] if u.mfa is False else []
    if lacking:
        return Item(
            "2-10", "2⑩", wording, NO, f"二要素認証のないアカウント: {', '.join(lacking)}", cols, rows
        )
    if s.web_accounts is None or s.vpn_users is None:
        return Item("2-10", "2⑩", wording, CHECK, f"一部のアカウント: {UNAVAILABLE}", cols, rows)
    return Item(
        "2-10", "2⑩", wording, YES, "本機の有効なアカウントはすべて二要素認証を使っています。", cols, rows
    )


def patches(s: Snapshot) -> Item:
    """2⑪ the box's own software and detection rules, with their age."""
    wording = "セキュリティパッチ（最新ファームウェアや更新プログラム）を適用している。"
    cols = ("ソフトウェア", "版", "更新日", "経過日数")
    rows = [(r.name, r.version, _date(r.updated, s.timezone) if r.updated else "不明",
             f"{_days(s.now, r.updated)}日" if r.updated else "不明") for r in s.software]  # fmt: skip
    rules = [r for r in s.software if r.name.startswith("検知ルール")]
    other = "院内の各機器の更新は別途確認してください。"
    if not rules:
        return Item("2-11", "2⑪", wording, CHECK, f"検知ルールの更新日: {UNAVAILABLE}。{other}", cols, rows)
    if rules[0].updated is None:
        text = f"外部の検知ルール（ET Open）が入っていません。販売店に導入を依頼してください。{other}"
        return Item("2-11", "2⑪", wording, CHECK, text, cols, rows)
    age = _days(s.now, rules[0].updated) or 0
    if age > s.rules_max_age_days:
        text = f"検知ルールが {age} 日更新されていません（目安 {s.rules_max_age_days} 日以内）。{other}"
        return Item("2-11", "2⑪", wording, NO, text, cols, rows)
    text = f"本機の検知ルールは{ago(age, True)}更新されています。{other}"
    return Item("2-11", "2⑪", wording, YES, text, cols, rows)


def source_restriction(s: Snapshot) -> Item:
    """2⑬ 接続元制限: the fixed zone policy, the clinic's allow rules and any inbound forwards, as tables."""
    wording = "接続元制限を実施している。"
    cols = ("接続元", "接続先", "サービス・方針", "説明")
    if s.zone_policy is None or s.allow_rules is None:
        return Item("2-13", "2⑬", wording, CHECK, UNAVAILABLE, cols)
    rows = [(a, b, v, "既定の方針") for a, b, v in s.zone_policy]
    rows += [(a, b, svc or "すべて", c or "許可ルール") for a, b, svc, c in s.allow_rules]
    rows += [("インターネット", to, port, c or "外部からの受け入れ") for port, to, c in s.port_forwards or []]
    if s.port_forwards:
        text = f"インターネットから院内へ {len(s.port_forwards)} 件の受け入れがあります。本当に必要か確認してください。"
        return Item("2-13", "2⑬", wording, CHECK, text, cols, rows)
    zones = "、".join(s.web_zones or ())
    text = f"書かれていない通信はすべて遮断しています。インターネットからの受け入れはありません。管理画面は {zones} からのみ。"
    return Item("2-13", "2⑬", wording, YES, text, cols, rows)


def backups(s: Snapshot) -> Item:
    """3② the box's own backups and the last successful restore test."""
    wording = ("インシデント発生時に診療を継続するために必要な情報を検討し、データやシステムのバックアップの"
               "実施と復旧手順を確認している。")  # fmt: skip
    cols = ("項目", "日付", "結果")
    b = s.backup
    if b is None:
        return Item("3-2", "3②", wording, CHECK, f"本機のバックアップ: {UNAVAILABLE}", cols)
    rows = [("最後に成功したバックアップ", _date(b.last_ok_backup, s.timezone), "成功" if b.last_ok_backup else "なし"),
            ("最新のバックアップ", _date(b.last_backup_ts, s.timezone), {True: "成功", False: f"失敗: {b.last_backup_error}", None: "なし"}[b.last_backup_ok]),
            ("最後に成功した復元テスト", _date(b.last_ok_test, s.timezone), "成功" if b.last_ok_test else "なし"),
            ("最新の復元テスト", _date(b.last_test_ts, s.timezone), {True: "成功", False: f"失敗: {b.last_test_error}", None: "なし"}[b.last_test_ok])]  # fmt: skip
    other = "電子カルテなど各システムのバックアップは別途確認してください。"
    age = _days(s.now, b.last_ok_backup)
    if age is None or age > BACKUP_MAX_AGE_DAYS:
        text = (
            "本機のバックアップがありません。"
            if age is None
            else f"本機の最後のバックアップは{ago(age)}です（目安 {BACKUP_MAX_AGE_DAYS} 日以内）。"
        )
        return Item("3-2", "3②", wording, NO, text + other, cols, rows)
    test_age = _days(s.now, b.last_ok_test)
    if test_age is None or test_age > RESTORE_TEST_MAX_AGE_DAYS:
        text = (
            f"本機のバックアップは{ago(age, True)}成功していますが、1年以内に成功した復元テストがありません。"
        )
        return Item("3-2", "3②", wording, CHECK, text + other, cols, rows)
    text = f"本機のバックアップは{ago(age, True)}、復元テストは{ago(test_age, True)}成功しています。"
    return Item("3-2", "3②", wording, YES, text + other, cols, rows)


def clinic_items(s: Snapshot) -> list[Item]:
    items = []
    for key, number, wording, why in CLINIC_ITEMS:
        a = s.answers.get(key)
        evidence = why + (
            f"（{a.answered_by} が {_date(a.answered_at, s.timezone)} に回答）"
            if a and a.answer
            else " 回答を記入してください。"
        )
        items.append(Item(key, number, wording, CANNOT, evidence, box_judges=False,
                          answer=a.answer if a else "", target_date=a.target_date if a else "",
                          note=a.note if a else ""))  # fmt: skip
    return items


BOX_ITEMS: tuple[Callable[[Snapshot], Item], ...] = (
    ledger,
    remote_maintenance,
    access_rights,
    unused_accounts,
    access_log,
    passwords,
    mfa,
    patches,
    source_restriction,
    backups,
)


def _order(item: Item) -> tuple[int, int]:
    major, minor = item.key.split("-")
    return int(major), int(minor)


def build_checklist(s: Snapshot) -> list[Item]:
    """Every item, in the checklist's order."""
    return sorted([f(s) for f in BOX_ITEMS] + clinic_items(s), key=_order)


def summary(items: list[Item]) -> dict[str, int]:
    """How many items are in each state (for the report's first page)."""
    return {state: sum(1 for i in items if i.state == state) for state in STATES}
