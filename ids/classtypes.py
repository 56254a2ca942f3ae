"""Every Suricata classtype, in plain Japanese for clinic staff: a title, what it means, what to do now.

Keys are the classtype short names of /etc/suricata/classification.config (and ET Open's copy); EVE
alerts carry the long English description as `alert.category`, so each entry keeps that too.
tests/unit/test_ids_explain.py checks that every classtype of both files is covered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassText:
    description: str  # the English description Suricata puts in alert.category
    title: str
    meaning: str
    action: str


_WATCH = "当面は様子を見てください。同じ通知が続く場合は保守業者に連絡してください。"
_VENDOR = "保守業者に連絡し、この画面の内容を伝えてください。"
_ISOLATE = "該当する機器のLANケーブルを抜くかWi-Fiを切り、電源は切らずに保守業者へすぐ連絡してください。"
_BLOCKED = "Mamori が送信元を自動で遮断します。院内の機器に異常がなければ対応は不要です。"

CLASSTYPES: dict[str, ClassText] = {
    "not-suspicious": ClassText("Not Suspicious Traffic", "記録のための通信",
        "問題のない通信ですが、記録のために検知しました。", "対応は不要です。"),
    "unknown": ClassText("Unknown Traffic", "種類の分からない通信",
        "分類できない通信を検知しました。危険とは限りません。", _WATCH),
    "bad-unknown": ClassText("Potentially Bad Traffic", "不審な通信",
        "危険な可能性のある通信を検知しました（怪しいサイトへのアクセスなど）。", _WATCH),
    "attempted-recon": ClassText("Attempted Information Leak", "外部からの下調べ（偵察）",
        "誰かがクリニックの機器やサービスを調べようとしています。攻撃の準備段階であることが多いです。", _BLOCKED),
    "successful-recon-limited": ClassText("Information Leak", "情報の漏れ",
        "機器の情報が外部に見えてしまった可能性があります。", _VENDOR),
    "successful-recon-largescale": ClassText("Large Scale Information Leak", "大量の情報の漏れ",
        "多くの情報が外部に出た可能性があります。", _VENDOR),
    "attempted-dos": ClassText("Attempted Denial of Service", "サービス妨害の試み",
        "通信を止めさせようとする攻撃の試みを検知しました。", _BLOCKED),
    "successful-dos": ClassText("Denial of Service", "サービス妨害",
        "通信を止めさせる攻撃を受けている可能性があります。ネットが遅い・つながらない原因かもしれません。", _VENDOR),
    "attempted-user": ClassText("Attempted User Privilege Gain", "利用者の権限を奪う試み",
        "パソコンやサーバーに入り込もうとする攻撃の試みを検知しました。", _BLOCKED),
    "unsuccessful-user": ClassText("Unsuccessful User Privilege Gain", "侵入の試み（失敗）",
        "入り込もうとする攻撃がありましたが、失敗したようです。", _BLOCKED),
    "successful-user": ClassText("Successful User Privilege Gain", "侵入された可能性",
        "攻撃者が利用者の権限で機器に入り込んだ可能性があります。", _ISOLATE),
    "attempted-admin": ClassText("Attempted Administrator Privilege Gain", "管理者権限を奪う試み",
        "機器の管理者権限を奪おうとする攻撃の試みです。ランサムウェアの入口になることがあります。", _BLOCKED),
    "successful-admin": ClassText("Successful Administrator Privilege Gain", "管理者権限を奪われた可能性",
        "攻撃者が機器の管理者権限を得た可能性があります。", _ISOLATE),
    "rpc-portmap-decode": ClassText("Decode of an RPC Query", "機器の調査（RPC）",
        "ネットワーク上のサービスを問い合わせる通信です。調査の一部であることがあります。", _WATCH),
    "shellcode-detect": ClassText("Executable code was detected", "攻撃用プログラムの送り込み",
        "通信の中に機器を乗っ取るためのプログラムの断片が見つかりました。", _ISOLATE),
    "string-detect": ClassText("A suspicious string was detected", "不審な文字列",
        "通信の中に不審な文字列が見つかりました。", _WATCH),
    "suspicious-filename-detect": ClassText("A suspicious filename was detected", "不審なファイル名",
        "危険なファイルのやり取りの可能性があります。", _VENDOR),
    "suspicious-login": ClassText("An attempted login using a suspicious username was detected",
        "不審なユーザー名でのログイン", "よく攻撃に使われるユーザー名でログインしようとしています。", _BLOCKED),
    "system-call-detect": ClassText("A system call was detected", "機器を操作する命令",
        "機器を直接操作する命令が通信の中に見つかりました。", _VENDOR),
    "tcp-connection": ClassText("A TCP connection was detected", "接続の記録",
        "接続があったことの記録です。", "対応は不要です。"),
    "trojan-activity": ClassText("A Network Trojan was detected", "ウイルス感染の疑い",
        "院内の機器がウイルス（マルウェア）に感染している疑いがあります。", _ISOLATE),
    "unusual-client-port-connection": ClassText("A client was using an unusual port", "普段と違う接続",
        "普段使われない方法で接続している機器があります。", _WATCH),
    "network-scan": ClassText("Detection of a Network Scan", "ネットワークの調査（スキャン）",
        "誰かがネットワーク内の機器を順番に調べています。", _BLOCKED),
    "denial-of-service": ClassText("Detection of a Denial of Service Attack", "サービス妨害攻撃",
        "通信を止めさせる攻撃を検知しました。", _VENDOR),
    "non-standard-protocol": ClassText("Detection of a non-standard protocol or event", "普段と違う通信方式",
        "標準的でない方法の通信を検知しました。", _WATCH),
    "protocol-command-decode": ClassText("Generic Protocol Command Decode", "通信の命令の記録",
        "通信の中の命令を記録しました。多くは問題ありません。", _WATCH),
    "web-application-activity": ClassText("access to a potentially vulnerable web application",
        "弱点のあるWebシステムへのアクセス", "弱点が知られているWebシステムへのアクセスを検知しました。", _VENDOR),
    "web-application-attack": ClassText("Web Application Attack", "Webシステムへの攻撃",
        "Webで動くシステム（予約・電子カルテの画面など）への攻撃を検知しました。", _BLOCKED),
    "misc-activity": ClassText("Misc activity", "その他の気になる通信",
        "注意が必要かもしれない通信を記録しました。", _WATCH),
    "misc-attack": ClassText("Misc Attack", "攻撃の検知",
        "攻撃と思われる通信を検知しました。", _BLOCKED),
    "icmp-event": ClassText("Generic ICMP event", "疎通確認（ping など）",
        "機器が動いているかを確かめる通信です。", "対応は不要です。"),
    "inappropriate-content": ClassText("Inappropriate Content was Detected", "不適切なコンテンツ",
        "業務に関係のない不適切なサイトへのアクセスを検知しました。", "院内のインターネット利用ルールを確認してください。"),
    "policy-violation": ClassText("Potential Corporate Privacy Violation", "院内ルール違反の可能性",
        "セキュリティ上好ましくない使い方（暗号化なしのパスワード送信など）を検知しました。",
        "該当する機器の使い方を見直してください。分からない場合は保守業者に相談してください。"),
    "default-login-attempt": ClassText("Attempt to login by a default username and password",
        "初期パスワードでのログインの試み", "工場出荷時のパスワードで機器に入ろうとしています。",
        "機器のパスワードが初期設定のままなら、すぐに変更してください。" + _VENDOR),
    "targeted-activity": ClassText("Targeted Malicious Activity was Detected", "狙いを定めた攻撃",
        "特定の相手を狙う攻撃の通信を検知しました。", _ISOLATE),
    "exploit-kit": ClassText("Exploit Kit Activity Detected", "ウイルスを送り込む仕組みへのアクセス",
        "見ただけで感染させる悪質なサイトに接続した可能性があります。", _ISOLATE),
    "external-ip-check": ClassText("Device Retrieving External IP Address Detected", "外部アドレスの確認",
        "院内の機器が自分のインターネット上のアドレスを調べています。ウイルスがよく行う動作です。", _VENDOR),
    "domain-c2": ClassText("Domain Observed Used for C2 Detected", "攻撃者の指令サーバーへの接続",
        "院内の機器が、ウイルスに指令を出すサーバーの名前を問い合わせました。感染の疑いが強いです。", _ISOLATE),
    "pup-activity": ClassText("Possibly Unwanted Program Detected", "不要なソフトの疑い",
        "広告ソフトなど、入れた覚えのないソフトが動いている可能性があります。", _VENDOR),
    "credential-theft": ClassText("Successful Credential Theft Detected", "パスワードを盗む攻撃",
        "偽のログイン画面などでパスワードを盗もうとする通信を検知しました。",
        "入力してしまった場合はすぐにそのパスワードを変更し、" + _VENDOR),
    "social-engineering": ClassText("Possible Social Engineering Attempted", "だましの手口",
        "偽サイトや偽の警告画面など、人をだます手口の通信を検知しました。",
        "画面の指示に従わず、電話番号にも連絡しないでください。" + _VENDOR),
    "coin-mining": ClassText("Crypto Currency Mining Activity Detected", "仮想通貨の採掘",
        "院内の機器が勝手に仮想通貨の採掘に使われている可能性があります。", _VENDOR),
    "command-and-control": ClassText("Malware Command and Control Activity Detected", "ウイルスの遠隔操作",
        "院内の機器が攻撃者の指令サーバーと通信しています。感染の疑いが強いです。", _ISOLATE),
}  # fmt: skip

BY_DESCRIPTION: dict[str, str] = {c.description.lower(): key for key, c in CLASSTYPES.items()}


def classtype_of(category: str) -> str:
    """The classtype short name for an alert.category (long description) or a short name; 'unknown'."""
    key = category.strip().lower()
    if key in CLASSTYPES:
        return key
    return BY_DESCRIPTION.get(key, "unknown")
