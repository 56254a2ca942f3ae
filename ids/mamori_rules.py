"""Japanese explanations of Mamori's own clinic rules (ids/rules/mamori.rules), one per sid.

tests/unit/test_ids_explain.py checks that every sid in mamori.rules has an entry here and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RULES_FILE = Path(__file__).with_name("rules") / "mamori.rules"
SID_RANGE = range(1990001, 1990100)


@dataclass(frozen=True)
class RuleText:
    title: str
    meaning: str
    action: str


_BLOCKED = "Mamori が送信元を自動で遮断しました。院内の機器に異常がなければ対応は不要です。"
_LATERAL = ("院内の機器がウイルスに感染し、他の機器に広がろうとしている可能性があります。該当機器のLANケーブルを抜き、"
            "電源は切らずに保守業者へすぐ連絡してください。")  # fmt: skip

MAMORI_RULES: dict[int, RuleText] = {
    1990001: RuleText("インターネットからリモートデスクトップ（RDP）への接続の試み",
        "外部の誰かが院内のパソコンやサーバーを遠隔操作しようとしています。ランサムウェアの主な侵入口です。", _BLOCKED),
    1990002: RuleText("インターネットからファイル共有（SMB）への接続の試み",
        "外部から院内の共有フォルダーに入ろうとしています。ウイルスの感染拡大によく使われます。", _BLOCKED),
    1990003: RuleText("インターネットから画面共有（VNC）への接続の試み",
        "外部から院内の画面を遠隔操作しようとしています。", _BLOCKED),
    1990004: RuleText("インターネットからのポートスキャン（下調べ）",
        "外部の誰かがクリニックのどの入口が開いているかを順番に調べています。攻撃の準備段階です。", _BLOCKED),
    1990005: RuleText("院内の機器が多数の機器へリモートデスクトップ（RDP）接続",
        "1台の機器が短時間に多くの機器へ遠隔操作の接続をしています。", _LATERAL),
    1990006: RuleText("院内の機器が多数の機器へファイル共有（SMB）接続",
        "1台の機器が短時間に多くの機器の共有フォルダーへ接続しています。ランサムウェアの拡散の典型です。", _LATERAL),
    1990007: RuleText("医療機器がインターネットと通信",
        "医療機器用のネットワークの機器が外部と通信しました。医療機器は通常インターネットに出ません。",
        "機器の保守業者による遠隔保守の予定がないか確認し、心当たりがなければ保守業者に連絡してください。"),
    1990008: RuleText("FTP でパスワードが暗号化されずに送られました",
        "FTP ではパスワードがそのまま流れるため、盗み見られるおそれがあります。",
        "該当する機器やソフトの設定を、暗号化された方法（SFTP など）に変えるよう保守業者に相談してください。"),
    1990009: RuleText("Telnet による接続（暗号化なしのログイン）",
        "Telnet はパスワードを暗号化せずに送る古い方式です。外部からなら侵入の試みです。",
        "院内で使っていなければ対応は不要です（外部からは自動で遮断されます）。使っている場合は SSH への切り替えを保守業者に相談してください。"),
    1990010: RuleText("インターネットから画像サーバー（DICOM）への接続の試み",
        "外部から医用画像（DICOM）の通信口に接続しようとしています。患者情報の漏えいにつながるおそれがあります。", _BLOCKED),
    1990011: RuleText("院内でのポートスキャン（下調べ）",
        "院内の1台の機器が他の機器を順番に調べています。ウイルス感染か、無許可のツールの可能性があります。", _LATERAL),
    1990012: RuleText("Web のパスワードが暗号化されずに送られました（HTTP Basic 認証）",
        "http:// のページでパスワードが送られ、盗み見られるおそれがあります。",
        "https:// で使えるよう、機器やシステムの設定を保守業者に相談してください。"),
    1990013: RuleText("メール受信（POP3）のパスワードが暗号化されずに送られました",
        "メールのパスワードがそのまま流れています。",
        "メールソフトの設定で SSL/TLS を有効にしてください。"),
    1990014: RuleText("メール（IMAP）のログインが暗号化されていません",
        "メールのパスワードがそのまま流れています。",
        "メールソフトの設定で SSL/TLS を有効にしてください。"),
}  # fmt: skip
