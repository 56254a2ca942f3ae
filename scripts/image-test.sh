#!/usr/bin/env bash
# `make image-test`: boots out/mamori-amd64-test.img in qemu and checks it (tests/image), then checks the
# arm64 root file system under qemu-user if it was built. Installs qemu and OVMF from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/image-lib.sh
need_root
ensure_packages "${IMAGE_TEST_TOOLS[@]}"
t0=$(date +%s)
MAMORI_IMAGE_TEST=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/image "$@"
log "image tests done in $(( $(date +%s) - t0 )) s"
