#!/usr/bin/env bash
# Builds Mamori's bootable disk images from Debian packages only (no prebuilt images or binaries).
#
#   scripts/image-build.sh [amd64|arm64]      -> out/mamori-<arch>.img (+ out/mamori-amd64-test.img)
#
# Why these tools: mmdebstrap builds the root filesystem from the Debian archive in one reproducible step;
# mkfs.ext4 -d, mkfs.vfat + mtools and sfdisk assemble the disk without loop devices or mounts, so the
# build runs unprivileged-mount-free (in a container, in CI). SOURCE_DATE_EPOCH and fixed UUIDs keep the
# inputs of every step deterministic.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ARCH=${1:-amd64}
case "$ARCH" in amd64|arm64) ;; *) echo "usage: $0 [amd64|arm64]" >&2; exit 2 ;; esac
OUT=${MAMORI_IMAGE_OUT:-$REPO/out}
WORK=$OUT/build/$ARCH
SUITE=bookworm
MIRROR=${MAMORI_MIRROR:-http://deb.debian.org/debian}
# The time stamp of the last commit: the same tree gives the same dates inside the image.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)}
export SOURCE_DATE_EPOCH
# shellcheck source=scripts/image-lib.sh
source "$REPO/scripts/image-lib.sh"

t0=$(date +%s)
need_root
ensure_build_tools "$ARCH"
rm -rf "$WORK"
# arm64: the old image goes first, so that while this build runs nothing takes its half-made root file
# system for a finished build (tests/image/test_image_arm64.py runs when the image exists).
if [ "$ARCH" = arm64 ]; then rm -f "$OUT"/mamori-arm64.img "$OUT"/mamori-arm64.img.zst "$OUT"/mamori-arm64-update.tar; fi
mkdir -p "$WORK" "$OUT"

ensure_update_key
log "1/4 Python: a wheel of this repository and its PyPI dependencies for $ARCH (installed offline in the image)"
stage_wheels "$ARCH" "$WORK/wheels"

log "2/4 root filesystem with mmdebstrap ($SUITE + $SUITE-backports for Suricata 7)"
build_rootfs "$ARCH" "$WORK/rootfs"

log "3/4 disk image"
if [ "$ARCH" = amd64 ]; then
  assemble_uefi_disk "$WORK/rootfs" "$WORK" "$OUT/mamori-amd64.img" prod
  # The test image is the same root filesystem plus image/test-overlay (serial autologin and a ruleset
  # snapshot); it is a separate file so that the production image never contains a test hook.
  cp -a "$WORK/rootfs" "$WORK/rootfs-test"
  cp -a "$REPO/image/test-overlay/." "$WORK/rootfs-test/"
  chroot_enable "$WORK/rootfs-test" mamori-test-snapshot.service
  assemble_uefi_disk "$WORK/rootfs-test" "$WORK" "$OUT/mamori-amd64-test.img" test
  rm -rf "$WORK/rootfs-test"
else
  assemble_rpi_disk "$WORK/rootfs" "$WORK" "$OUT/mamori-arm64.img"
  log "checking the arm64 root file system under qemu-user"
  check_rootfs_cli "$WORK/rootfs"
fi

log "4/4 sizes"
report_sizes "$OUT" "$ARCH"
log "done in $(( $(date +%s) - t0 )) s"
