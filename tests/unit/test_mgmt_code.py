"""Enrolment codes: what the vendor makes is what the box reads, and a damaged or foreign code is refused
with a Japanese reason before anything is applied; the key fingerprint is what people compare."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from mgmt.code import PREFIX, CodeError, decode_code, fingerprint, make_code
from tests.unit.test_mgmt_config import HUB_KEY

ARGS = ("hub.example.jp:51820", HUB_KEY, "10.77.0.0/16", "10.77.0.17", ["10.77.0.1"])


def _raw(payload: dict) -> str:
    body = json.dumps(payload, separators=(",", ":")).encode()
    raw = body + hashlib.sha256(body).digest()[:4]
    return PREFIX + base64.b32encode(raw).decode().rstrip("=")


def test_round_trip_and_tolerant_of_how_people_copy_it() -> None:
    code = make_code(*ARGS)
    assert code.startswith("MMR1-") and set(code[5:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-")
    e = decode_code(code)
    assert (e.hub_endpoint, e.hub_public_key, e.network, e.address, e.hub_addresses) == (
        "hub.example.jp:51820", HUB_KEY, "10.77.0.0/16", "10.77.0.17", ("10.77.0.1",))  # fmt: skip
    assert decode_code("  " + code.lower().replace("-", " \n") + "\n") == e
    assert e.section(interface="wgx")["interface"] == "wgx" and e.section()["enabled"] is True


def test_fingerprint_is_sha256_of_the_raw_key_in_groups() -> None:
    expected = hashlib.sha256(bytes(range(32))).hexdigest()[:16]
    assert fingerprint(HUB_KEY) == " ".join(expected[i : i + 4] for i in range(0, 16, 4))
    assert decode_code(make_code(*ARGS)).fingerprint == fingerprint(HUB_KEY)


def _flip(code: str) -> str:
    i = next(i for i in range(len(code) // 2, len(code)) if code[i].isalpha())  # a letter, not a dash
    return code[:i] + ("A" if code[i] != "A" else "B") + code[i + 1 :]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "MMR1-"),
        ("MMR2-AAAA", "MMR1-"),
        ("MMR1-", "長さ"),
        ("MMR1-!!!!", "使えない文字"),
        (_flip(make_code(*ARGS)), "打ち間違い"),
        (make_code(*ARGS)[:-7], "打ち間違い"),
        (_raw({"v": 2, "e": "hub.example.jp:51820"}), "知らない版"),
        (
            _raw(
                {
                    "v": 1,
                    "e": "hub.example.jp:51820",
                    "k": "x",
                    "n": "10.77.0.0/16",
                    "a": "10.77.0.17",
                    "h": ["10.77.0.1"],
                }
            ),
            "公開鍵",
        ),
        (
            _raw(
                {
                    "v": 1,
                    "e": "hub.example.jp:51820",
                    "k": HUB_KEY,
                    "n": "10.77.0.0/16",
                    "a": "10.78.0.17",
                    "h": ["10.77.0.1"],
                }
            ),
            "ネットワーク",
        ),
        (
            PREFIX + base64.b32encode(b"not json" + hashlib.sha256(b"not json").digest()[:4]).decode(),
            "読めません",
        ),
    ],
)
def test_bad_codes_are_refused_with_a_reason(text: str, needle: str) -> None:
    with pytest.raises(CodeError) as err:
        decode_code(text)
    assert needle in err.value.text("ja") and "登録コード" in err.value.text("ja")
    assert err.value.text("en").startswith("not a valid enrolment code")


def test_the_vendor_cannot_make_a_code_the_box_would_refuse() -> None:
    with pytest.raises(CodeError):
        make_code("hub.example.jp", HUB_KEY, "10.77.0.0/16", "10.77.0.17", ["10.77.0.1"])


def test_cli_make_code_prints_a_code_the_box_reads_and_the_same_as_a_qr(tmp_path, capsys) -> None:
    import segno

    from appliance.cli import main

    qr = tmp_path / "code.svg"
    argv = ["--config", str(tmp_path / "c.yaml"), "--state-dir", str(tmp_path / "s"), "mgmt", "make-code",
            "--endpoint", "hub.example.jp:51820", "--hub-key", HUB_KEY, "--network", "10.77.0.0/16",
            "--address", "10.77.0.17", "--hub-address", "10.77.0.1", "--qr", str(qr)]  # fmt: skip
    assert main(argv) == 0
    code = capsys.readouterr().out.strip()
    assert decode_code(code).address == "10.77.0.17"
    assert qr.read_text().startswith("<?xml") and segno.make(code, error="m").mode == "alphanumeric"
    bad = [*argv[:-2]]
    bad[bad.index("10.77.0.17")] = "10.78.0.17"
    assert main(bad) == 1
    assert "登録コードが正しくありません" in capsys.readouterr().err
