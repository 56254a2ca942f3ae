"""Signed update bundles and indexes for tests, made the way scripts/image-bundle.sh makes them (a tar with
an Ed25519-signed manifest), with a key made in the test: no test depends on a key from the build."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def make_key(keys_dir: Path, name: str = "vendor") -> Ed25519PrivateKey:
    """A new signing key; its public half is trusted in `keys_dir` (as /usr/share/mamori/update-keys is)."""
    key = Ed25519PrivateKey.generate()
    keys_dir.mkdir(parents=True, exist_ok=True)
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (keys_dir / f"{name}.pem").write_bytes(pem)
    return key


def system_root(root: Path, version: str | None) -> Path:
    """A fake image root for MAMORI_UPDATE_ROOT: update-keys/ and, unless None, IMAGE_VERSION."""
    share = root / "usr/share/mamori"
    (share / "update-keys").mkdir(parents=True, exist_ok=True)
    if version is not None:
        (share / "IMAGE_VERSION").write_text(version + "\n")
    return root


def manifest_text(version: str, files: dict[str, bytes], **fields: str) -> bytes:
    root = files["root.img.zst"]
    lines = ["mamori-update 1", f"version {version}", f"root-size {len(root)}",
             f"root-sha256 {hashlib.sha256(root).hexdigest()}"]  # fmt: skip
    lines += [f"{k.replace('_', '-')} {v}" for k, v in fields.items()]
    lines += [f"{hashlib.sha256(data).hexdigest()}  {name}" for name, data in files.items()]
    return ("\n".join(lines) + "\n").encode()


def make_bundle(
    out: Path,
    key: Ed25519PrivateKey,
    version: str,
    *,
    arch: str = "amd64",
    notes: str | None = "セキュリティの修正を含みます。",
    tamper: bool = False,
    root_size: int = 4096,
    **fields: str,
) -> Path:
    """A signed bundle; `tamper` changes the root image after signing (the hash no longer matches)."""
    files = {
        "root.img.zst": (b"root:" + version.encode()) * (root_size // 8 + 1),
        "vmlinuz": b"kernel " + version.encode(),
        "initrd.img": b"initrd " + version.encode(),
    }
    if notes is not None:
        files["notes-ja.txt"] = notes.encode()
    manifest = manifest_text(version, files, arch=arch, **fields)
    if tamper:
        files["root.img.zst"] = files["root.img.zst"][:-1] + b"X"
    members = {"manifest": manifest, "manifest.sig": key.sign(manifest), **files}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def make_index(directory: Path, key: Ed25519PrivateKey, bundle: Path, version: str, *, share: int = 100,
               notes: str = "セキュリティの修正を含みます。", arch: str = "amd64") -> Path:  # fmt: skip
    """index.json + index.json.sig naming `bundle` (copied into `directory` beside them)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = bundle.read_bytes()
    (directory / bundle.name).write_bytes(data)
    index = {
        "format": 1,
        "releases": [{
            "version": version, "arch": arch, "file": bundle.name, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "rollout": share, "notes_ja": notes,
            "released": "2026-12-01",
        }],
    }  # fmt: skip
    text = json.dumps(index, ensure_ascii=False, indent=1).encode()
    (directory / "index.json").write_bytes(text)
    (directory / "index.json.sig").write_bytes(key.sign(text))
    return directory / "index.json"


def make_tls(directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for `ip` that is also its own CA (cert, key): the box is given the cert as
    `update.ca_file`, as a vendor gives the CA of its update server."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tests.timetravel import validity_window

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"updates {ip}")])
    not_before, not_after = validity_window()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


# A static HTTPS server (python's http.server with TLS), as a vendor's update directory would be.
SERVER = """
import functools, http.server, ssl, sys
ip, port, root, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer((ip, port), functools.partial(H, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"""


def server_argv(ip: str, port: int, root: Path, cert: Path, key: Path) -> list[str]:
    import sys

    return [sys.executable, "-c", SERVER, ip, str(port), str(root), str(cert), str(key)]
