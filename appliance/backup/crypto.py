"""The encrypted container a backup lives in: a passphrase, scrypt, and AES-256-GCM in chunks.

Layout (all integers big-endian):

    b"MAMORIBK"  u32 header_len  header (UTF-8 JSON)
    then chunks: u32 ct_len  ciphertext+tag   (the last chunk carries the "final" flag in its nonce)

The key comes from scrypt(passphrase, random salt) and is split in two: 32 bytes for AES-256-GCM and 32 for
a check value kept in the header, so a wrong passphrase is told apart from a damaged archive before any
chunk is touched. Each chunk's nonce is a random 7-byte prefix, a 4-byte counter and a 1-byte final flag
(the STREAM construction), and every chunk is authenticated together with the whole header as associated
data: a re-ordered, dropped, truncated or extended chunk, and a header swapped in from another archive, all
fail authentication. Header values are attacker-controlled and bounded before use (scrypt cost, chunk size).
The scrypt cost is written in each archive's header and read back from it, so raising it for new archives
(N=2^15 until 2026, 2^17 since) leaves every older archive restorable.
Non-goal: hiding the archive's size or creation time (they are in the plaintext header, for `backup list`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.backup.errors import CorruptArchiveError, WrongPassphraseError

log = logging.getLogger(__name__)

MAGIC = b"MAMORIBK"
FORMAT_VERSION = 1
CIPHER = "AES-256-GCM"
CHUNK_SIZE = 1 << 20
TAG_LEN = 16
MAX_HEADER_LEN = 64 * 1024
MAX_CHUNK_SIZE = 16 << 20
# scrypt cost for new archives: N=2^17, r=8 needs 128 MiB and ~0.5 s on a Raspberry Pi 4 per try (an archive
# holds every key of the box: each guess must be expensive). Archives read may have any cost in _N_RANGE.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 17, 8, 1
_N_RANGE = (1 << 14, 1 << 17)
# Memory scrypt needs is about 128 * n * r bytes: bounded to 128 MiB so a hostile header cannot exhaust a
# Pi, and passed as maxmem (OpenSSL's own default limit, 32 MiB, would refuse the cost we write).
_MAX_SCRYPT_MEMORY = 128 << 20
_CHECK_LABEL = b"mamori backup passphrase check v1"


@dataclass(frozen=True)
class ArchiveHeader:
    """The plaintext, authenticated header. `raw` is the exact bytes authenticated with every chunk."""

    fields: dict[str, Any]
    raw: bytes

    @property
    def created(self) -> str:
        return str(self.fields.get("created", ""))

    @property
    def software_version(self) -> str:
        return str(self.fields.get("software_version", ""))

    @property
    def clinic(self) -> str:
        return str(self.fields.get("clinic", ""))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    maxmem = 128 * r * (n + p + 2) + (1 << 20)  # V and B of RFC 7914, and slack for OpenSSL's own use
    material = hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=64)
    return material[:32], hmac.new(material[32:], _CHECK_LABEL, hashlib.sha256).digest()


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if final else b"\x00")


class EncryptingWriter:
    """A write-only file object: what is written is encrypted in chunks to `out`. Call close() to finish.

    `tarfile` writes into it directly, so an archive is never held whole in memory or on disk in clear.
    """

    def __init__(
        self, out: BinaryIO, passphrase: str, meta: dict[str, Any], chunk_size: int = CHUNK_SIZE
    ) -> None:
        salt, prefix = os.urandom(16), os.urandom(7)
        key, check = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        fields = {
            "format": FORMAT_VERSION,
            "cipher": CIPHER,
            "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
            "chunk_size": chunk_size,
            "nonce_prefix": _b64(prefix),
            "check": check.hex(),
            **meta,
        }
        header = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self._aad = MAGIC + struct.pack(">I", len(header)) + header
        self._out, self._aead, self._prefix = out, AESGCM(key), prefix
        self._chunk_size, self._buf, self._counter, self._closed = chunk_size, bytearray(), 0, False
        out.write(self._aad)

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed EncryptingWriter")
        self._buf += data
        while len(self._buf) > self._chunk_size:
            self._emit(bytes(self._buf[: self._chunk_size]), final=False)
            del self._buf[: self._chunk_size]
        return len(data)

    def _emit(self, plain: bytes, final: bool) -> None:
        if self._counter >= 0xFFFFFFFF:
            raise ValueError("archive too large for one nonce prefix")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, final), plain, self._aad)
        self._out.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1

    def close(self) -> None:
        """Emit the last chunk (possibly empty) with the final flag; without it a reader sees truncation."""
        if not self._closed:
            self._emit(bytes(self._buf), final=True)
            self._buf.clear()
            self._closed = True

    def flush(self) -> None:
        """Nothing to do: chunks are emitted as they fill. Present because tarfile may call it."""


def _read_exact(src: BinaryIO, n: int) -> bytes:
    data = src.read(n)
    return data if data is not None else b""


def read_header(src: BinaryIO) -> ArchiveHeader:
    """Parse and bound-check the header. Raises CorruptArchiveError for anything not ours or malformed."""
    if _read_exact(src, len(MAGIC)) != MAGIC:
        raise CorruptArchiveError("Mamori のバックアップ形式ではありません", "not a Mamori backup file")
    raw_len = _read_exact(src, 4)
    if len(raw_len) != 4:
        raise CorruptArchiveError("ヘッダーが途中で切れています", "header truncated")
    (length,) = struct.unpack(">I", raw_len)
    if not 2 <= length <= MAX_HEADER_LEN:
        raise CorruptArchiveError("ヘッダーの長さが不正です", "bad header length")
    header = _read_exact(src, length)
    if len(header) != length:
        raise CorruptArchiveError("ヘッダーが途中で切れています", "header truncated")
    try:
        fields = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptArchiveError("ヘッダーを読めません", "header is not valid JSON") from None
    _check_fields(fields)
    return ArchiveHeader(fields=fields, raw=MAGIC + raw_len + header)


def _check_fields(fields: Any) -> None:
    bad = CorruptArchiveError("ヘッダーの内容が不正です", "header fields are invalid")
    if (
        not isinstance(fields, dict)
        or fields.get("format") != FORMAT_VERSION
        or fields.get("cipher") != CIPHER
    ):
        raise bad
    kdf = fields.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise bad
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(type(v) is int for v in (n, r, p, fields.get("chunk_size"))):
        raise bad
    if not (_N_RANGE[0] <= n <= _N_RANGE[1] and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4):
        raise bad
    if 128 * n * r > _MAX_SCRYPT_MEMORY:
        raise bad
    if not 1024 <= fields["chunk_size"] <= MAX_CHUNK_SIZE:
        raise bad
    try:
        salt = base64.b64decode(kdf.get("salt", ""), validate=True)
        prefix = base64.b64decode(fields.get("nonce_prefix", ""), validate=True)
        check = bytes.fromhex(fields.get("check", ""))
    except (ValueError, TypeError):
        raise bad from None
    if len(salt) < 16 or len(prefix) != 7 or len(check) != 32:
        raise bad


def decrypt_stream(src: BinaryIO, passphrase: str, dst: BinaryIO) -> ArchiveHeader:
    """Decrypt `src` into `dst`, authenticating every chunk. Raises before returning unless all is intact.

    `dst` may have received plaintext of earlier chunks when a later one fails: write it somewhere
    private and throw it away on error (the restore code decrypts into a temp directory for this reason).
    """
    header = read_header(src)
    kdf = header.fields["kdf"]
    key, check = _derive(passphrase, base64.b64decode(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
    if not hmac.compare_digest(check, bytes.fromhex(header.fields["check"])):
        raise WrongPassphraseError()
    aead, prefix = AESGCM(key), base64.b64decode(header.fields["nonce_prefix"])
    limit = header.fields["chunk_size"] + TAG_LEN
    counter = 0
    while True:
        raw_len = _read_exact(src, 4)
        if len(raw_len) != 4:
            raise CorruptArchiveError("ファイルが途中で切れています", "file is truncated")
        (length,) = struct.unpack(">I", raw_len)
        if not TAG_LEN <= length <= limit:
            raise CorruptArchiveError(
                f"{counter + 1} 番目のブロックの長さが不正です", f"block {counter + 1} has a bad length"
            )
        sealed = _read_exact(src, length)
        if len(sealed) != length:
            raise CorruptArchiveError("ファイルが途中で切れています", "file is truncated")
        plain, final = _open_chunk(aead, prefix, counter, sealed, header.raw)
        dst.write(plain)
        counter += 1
        if final:
            break
    if _read_exact(src, 1):
        raise CorruptArchiveError("ファイルの末尾に余分なデータがあります", "unexpected data after the end")
    return header


def _open_chunk(aead: AESGCM, prefix: bytes, counter: int, sealed: bytes, aad: bytes) -> tuple[bytes, bool]:
    """Try the chunk as non-final, then as final: only the writer's choice authenticates."""
    for final in (False, True):
        try:
            return aead.decrypt(_nonce(prefix, counter, final), sealed, aad), final
        except InvalidTag:
            continue
    log.warning("backup chunk %d failed authentication", counter + 1)
    raise CorruptArchiveError(
        f"{counter + 1} 番目のブロックの検証に失敗しました", f"block {counter + 1} failed authentication"
    )
