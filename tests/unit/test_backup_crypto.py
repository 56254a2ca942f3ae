"""The encrypted container: round trip, and every kind of damage refused with the right typed error."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest

from appliance.backup import crypto
from appliance.backup.crypto import MAGIC, EncryptingWriter, decrypt_stream, read_header
from appliance.backup.errors import BackupError, CorruptArchiveError, WrongPassphraseError

PASS = "correct horse battery staple"
WRITE_N = crypto.SCRYPT_N  # the cost new archives get (read before the fixture below lowers it)
PLAIN = os.urandom(5000) + "医療情報".encode() * 100


def seal(plain: bytes = PLAIN, passphrase: str = PASS, chunk_size: int = 1024) -> bytes:
    out = io.BytesIO()
    writer = EncryptingWriter(
        out, passphrase, {"created": "2026-11-26T03:00:00+09:00"}, chunk_size=chunk_size
    )
    for i in range(0, len(plain), 700):
        writer.write(plain[i : i + 700])
    writer.close()
    return out.getvalue()


def open_(blob: bytes, passphrase: str = PASS) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), passphrase, out)
    return out.getvalue()


def header_len(blob: bytes) -> int:
    return len(MAGIC) + 4 + struct.unpack(">I", blob[8:12])[0]


@pytest.fixture(autouse=True)
def cheaper_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lowest scrypt cost a reader accepts, so that the many decryptions here stay fast."""
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 14)


@pytest.fixture
def sealed() -> bytes:
    return seal()


def test_round_trip_over_many_chunks(sealed: bytes) -> None:
    assert open_(sealed) == PLAIN
    assert PLAIN[:64] not in sealed and "医療情報".encode() not in sealed
    # 5000 + 1200 bytes in 1024-byte chunks: 7 chunks, each with a 4-byte length and a 16-byte tag.
    assert len(sealed) == header_len(sealed) + len(PLAIN) + 7 * 20


@pytest.mark.parametrize(
    "plain", [b"", b"x", b"y" * 1024, b"z" * 1025], ids=["empty", "one", "exact", "over"]
)
def test_round_trip_edge_sizes(plain: bytes) -> None:
    assert open_(seal(plain)) == plain


def test_same_input_encrypts_differently() -> None:
    assert seal(b"same") != seal(b"same")


def test_wrong_passphrase_is_told_apart(sealed: bytes) -> None:
    with pytest.raises(WrongPassphraseError) as info:
        open_(sealed, "correct horse battery stapler")
    assert "パスフレーズが違います" in info.value.text("ja")
    assert "wrong passphrase" in info.value.text("en")
    assert info.value.code == "backup.passphrase"


def test_every_flipped_byte_is_refused(sealed: bytes) -> None:
    """Flip bytes all over the file (a stride keeps it quick): no damaged archive ever decrypts."""
    positions = sorted({*range(0, header_len(sealed) + 24, 5), *range(0, len(sealed), 151), len(sealed) - 1})
    for pos in positions:
        damaged = bytearray(sealed)
        damaged[pos] ^= 0x01
        with pytest.raises(BackupError):
            open_(bytes(damaged))


def test_flipped_byte_in_a_chunk_is_reported_as_damage(sealed: bytes) -> None:
    damaged = bytearray(sealed)
    damaged[header_len(sealed) + 2000] ^= 0x80
    with pytest.raises(CorruptArchiveError) as info:
        open_(bytes(damaged))
    assert "壊れているか、改ざん" in info.value.text("ja") and "failed authentication" in info.value.text(
        "en"
    )


@pytest.mark.parametrize("cut", [1, 8, 12, 100, -1, -16, -21, -1045])
def test_truncated_archive_is_refused(sealed: bytes, cut: int) -> None:
    with pytest.raises(CorruptArchiveError):
        open_(sealed[:cut])


def test_truncation_exactly_at_a_chunk_boundary_is_refused(sealed: bytes) -> None:
    """Dropping whole trailing chunks leaves only valid chunks: the missing final flag gives it away."""
    pos, boundaries = header_len(sealed), []
    while pos < len(sealed):
        boundaries.append(pos)
        pos += 4 + struct.unpack(">I", sealed[pos : pos + 4])[0]
    assert len(boundaries) == 7
    for boundary in boundaries[1:]:
        with pytest.raises(CorruptArchiveError, match="truncated"):
            open_(sealed[:boundary])


def test_reordered_chunks_are_refused(sealed: bytes) -> None:
    start = header_len(sealed)
    size = 4 + 1024 + 16
    first, second = sealed[start : start + size], sealed[start + size : start + 2 * size]
    swapped = sealed[:start] + second + first + sealed[start + 2 * size :]
    with pytest.raises(CorruptArchiveError, match="block 1"):
        open_(swapped)


def test_appended_data_is_refused(sealed: bytes) -> None:
    with pytest.raises(CorruptArchiveError, match="after the end"):
        open_(sealed + b"\x00")


def test_header_swapped_from_another_archive_is_refused(sealed: bytes) -> None:
    other = seal(b"other contents")
    spliced = other[: header_len(other)] + sealed[header_len(sealed) :]
    with pytest.raises(CorruptArchiveError):
        open_(spliced)


def test_header_edited_to_say_something_else_is_refused(sealed: bytes) -> None:
    n = header_len(sealed)
    fields = json.loads(sealed[12:n])
    fields["created"] = "2020-01-01T00:00:00+09:00"
    header = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()
    forged = MAGIC + struct.pack(">I", len(header)) + header + sealed[n:]
    assert read_header(io.BytesIO(forged)).created.startswith("2020")
    with pytest.raises(CorruptArchiveError):
        open_(forged)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 1 << 30),  # would make scrypt allocate 1 TiB: refused before deriving anything
        ("n", 1 << 18),  # 256 MiB: more than a Pi can give
        ("n", 1000),
        ("r", 0),
        ("p", 99),
        ("name", "pbkdf2"),
    ],
)
def test_hostile_kdf_parameters_are_refused_before_use(sealed: bytes, field: str, value: object) -> None:
    n = header_len(sealed)
    fields = json.loads(sealed[12:n])
    fields["kdf"][field] = value
    header = json.dumps(fields).encode()
    with pytest.raises(CorruptArchiveError, match="header fields"):
        open_(MAGIC + struct.pack(">I", len(header)) + header + sealed[n:])


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"", "not a Mamori backup"),
        (b"PK\x03\x04 a zip file", "not a Mamori backup"),
        (MAGIC + struct.pack(">I", 10 << 20), "bad header length"),
        (MAGIC + struct.pack(">I", 5) + b"{nope", "not valid JSON"),
        (MAGIC + struct.pack(">I", 2) + b"[]", "header fields"),
    ],
)
def test_not_an_archive_is_refused(blob: bytes, match: str) -> None:
    with pytest.raises(CorruptArchiveError, match=match):
        open_(blob)


def test_new_archives_cost_scrypt_2_17_and_archives_of_the_old_cost_still_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 18 item 10: a copy of an archive can be attacked offline, each guess must cost 128 MiB of
    memory; the cost is read from each archive's header, so the archives made before (2^15) restore."""
    monkeypatch.setattr(crypto, "SCRYPT_N", WRITE_N)
    new = seal(b"every key of the box")
    kdf = json.loads(new[12 : header_len(new)])["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", 1 << 17, 8, 1)
    assert open_(new) == b"every key of the box"
    with pytest.raises(WrongPassphraseError):
        open_(new, "correct horse battery stapler")
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 15)  # what Mamori wrote until issue 18
    old = seal(b"an archive of 2026")
    assert json.loads(old[12 : header_len(old)])["kdf"]["n"] == 1 << 15
    monkeypatch.setattr(crypto, "SCRYPT_N", WRITE_N)
    assert open_(old) == b"an archive of 2026"
