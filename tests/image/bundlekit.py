"""The update bundles the image tests install: made on the host from the built test image with debugfs,
mtools and scripts/image-bundle.sh (about half a minute), before the VM starts, since they are attached to it
as read-only disks."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import OUT, REPO
from test_image_contents import _extract, _partitions

MTOOLS = {"MTOOLS_SKIP_CHECK": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _debugfs_write(fs: Path, *requests: str) -> None:
    script = fs.with_suffix(".cmds")
    script.write_text("\n".join(requests) + "\n")
    subprocess.run(
        ["debugfs", "-w", "-f", str(script), str(fs)], capture_output=True, check=True, timeout=120
    )


def _debugfs_cat(fs: Path, path: str) -> str:
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(fs)], capture_output=True, text=True,
                          check=True, timeout=60).stdout  # fmt: skip


def make_bundles(test_image: Path, tmp: Path) -> dict[str, object]:
    """v2 (the test image's root with a higher IMAGE_VERSION) and v3 (the same, whose /usr/bin/mamori is
    /bin/false), signed with the build's key, and the build's own v1 update ("old"), with v1 itself."""
    parts = _partitions(test_image)
    esp = _extract(test_image, parts["esp"], tmp / "esp.img")
    for name in ("vmlinuz", "initrd.img"):
        subprocess.run(
            ["mcopy", "-i", str(esp), f"::/mamori-a/{name}", str(tmp / name)], check=True, env=MTOOLS
        )
    v1 = _debugfs_cat(
        _extract(test_image, parts["mamori-root-a"], tmp / "root.img"), "/usr/share/mamori/IMAGE_VERSION"
    )
    v1 = v1.strip()
    assert re.fullmatch(r"[0-9.]+", v1), v1
    out: dict[str, object] = {"v1": v1}
    for tag, broken in (("v2", False), ("v3", True)):
        version = f"{v1}.{tag[1]}"
        root = tmp / "root.img"
        if not root.exists():
            _extract(test_image, parts["mamori-root-a"], root)
        (tmp / "IMAGE_VERSION").write_text(version + "\n")
        reqs = ["rm /usr/share/mamori/IMAGE_VERSION",
                f"write {tmp / 'IMAGE_VERSION'} /usr/share/mamori/IMAGE_VERSION"]  # fmt: skip
        if broken:
            reqs += ["rm /usr/bin/mamori", "symlink /usr/bin/mamori /bin/false"]
        _debugfs_write(root, *reqs)
        assert _debugfs_cat(root, "/usr/share/mamori/IMAGE_VERSION").strip() == version
        bundle = tmp / f"{tag}.tar"
        subprocess.run(
            [str(REPO / "scripts/image-bundle.sh"), "--root", str(root), "--kernel", str(tmp / "vmlinuz"),
             "--initrd", str(tmp / "initrd.img"), "--version", version, "--key", str(OUT / "keys/update-signing.key"),
             "--out", str(bundle)],
            check=True, timeout=900,
        )  # fmt: skip
        root.unlink()
        out[tag] = bundle
    out["old"] = OUT / "mamori-amd64-update.tar"  # the build's own update: v1 of the production image
    assert Path(out["old"]).exists(), "make image writes out/mamori-amd64-update.tar"  # type: ignore[arg-type]
    return out
