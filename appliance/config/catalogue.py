"""Built-in catalogue of the services a Japanese clinic uses, so that rules read like "受付PC → 電子カルテ : HTTPS".

A clinic may add its own under `services:`; a custom service may not reuse a built-in name.
"""

from __future__ import annotations

from pydantic import Field

from appliance.config.types import Name, PortSpec, Strict


class Service(Strict):
    name: Name
    ports: list[PortSpec] = Field(default_factory=list)
    icmp: bool = False
    description: str = Field(default="", max_length=200)


def _svc(name: str, ports: list[str], description: str, icmp: bool = False) -> Service:
    return Service(name=name, ports=ports, description=description, icmp=icmp)


BUILTIN_SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        _svc("HTTPS", ["tcp/443"], "暗号化されたウェブ（電子カルテの画面など）"),
        _svc("HTTP", ["tcp/80"], "暗号化されていないウェブ"),
        _svc("RDP", ["tcp/3389", "udp/3389"], "Windowsのリモートデスクトップ"),
        _svc("SMB", ["tcp/445", "tcp/139"], "Windowsのファイル共有"),
        _svc("DICOM", ["tcp/104", "tcp/11112"], "医用画像の送受信（レントゲン → PACS）"),
        _svc("HL7", ["tcp/2575"], "医療情報の交換（検査システムなど）"),
        _svc("ORCA", ["tcp/8000"], "日医標準レセプトソフト ORCA"),
        _svc("印刷", ["tcp/9100", "tcp/631", "tcp/515"], "プリンター"),
        _svc("NTP", ["udp/123"], "時刻合わせ"),
        _svc("DNS", ["udp/53", "tcp/53"], "名前解決"),
        _svc("SSH", ["tcp/22"], "保守用の遠隔ログイン"),
        _svc("VNC", ["tcp/5900-5901"], "画面共有による遠隔操作"),
        _svc("SQLServer", ["tcp/1433"], "データベース（Microsoft SQL Server）"),
        _svc("ping", [], "疎通確認（ICMP エコー）", icmp=True),
    )
}
