"""For the vendor, not the box: write a signed `index.json` for a directory of bundles.

    python -m update.publish DIR --key vendor-key.pem [--rollout 10] [--rollout-for 2026.12.2=100 ...]

Every `*.tar` in DIR is read like the box reads it (its manifest verified against the key's own public half, its
hashes checked), so an index never names a bundle that boxes would refuse for its signature or contents. The
release notes come from the bundle's notes-ja.txt. The key is the Ed25519 private key in PEM that signs the
bundles (`openssl genpkey -algorithm ed25519`); index.json.sig is written beside index.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from appliance.errors import MamoriError
from appliance.fileio import atomic_write
from update.bundle import verify_bundle


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build_index(directory: Path, key: Ed25519PrivateKey, rollout: int, per_version: dict[str, int]) -> bytes:
    releases = []
    for path in sorted(directory.glob("*.tar")):
        bundle = verify_bundle(path, [key.public_key()])
        m = bundle.manifest
        releases.append({
            "version": str(m.version), "arch": m.arch, "file": path.name, "size": path.stat().st_size,
            "sha256": _sha256(path), "rollout": per_version.get(str(m.version), rollout),
            "notes_ja": bundle.notes_ja, "released": m.released,
        })  # fmt: skip
    return json.dumps({"format": 1, "releases": releases}, ensure_ascii=False, indent=1).encode() + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m update.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument(
        "--key", type=Path, required=True, help="Ed25519 private key (PEM) that signs the bundles"
    )
    parser.add_argument("--rollout", type=int, default=100, choices=range(0, 101), metavar="0-100")
    parser.add_argument("--rollout-for", action="append", default=[], metavar="VERSION=PERCENT")
    args = parser.parse_args(argv)
    key = load_pem_private_key(args.key.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        print("the key is not an Ed25519 private key", file=sys.stderr)
        return 2
    per_version = {}
    for item in args.rollout_for:
        version, _, share = item.partition("=")
        if not share.isdigit() or int(share) > 100:
            print(f"--rollout-for {item!r}: VERSION=PERCENT (0-100)", file=sys.stderr)
            return 2
        per_version[version] = int(share)
    try:
        data = build_index(args.directory, key, args.rollout, per_version)
    except MamoriError as exc:
        print(f"refused: {exc.text('en')}", file=sys.stderr)
        return 1
    atomic_write(args.directory / "index.json", data)
    atomic_write(args.directory / "index.json.sig", key.sign(data))
    print(f"index.json: {len(json.loads(data)['releases'])} release(s), signed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
