#!/usr/bin/env bash
# Makes a signed Mamori update bundle (a tar read by /usr/sbin/mamori-update; format in docs/update.md):
#   manifest      `mamori-update 1`, version, arch, root image size and SHA-256, optional fields
#                 (rollback-allowed, min-from-version, released), and `sha256sum` lines for the files below
#   manifest.sig  Ed25519 signature of the manifest (the box checks it with /usr/share/mamori/update-keys)
#   root.img.zst  the root file system of the new version (at most one slot in size)
#   vmlinuz, initrd.img
#   notes-ja.txt  release notes in Japanese (optional, UTF-8, at most 16 KiB)
#
#   image-bundle.sh --root ROOT.img --kernel F --initrd F --version V --key KEY.pem --out BUNDLE.tar
#                   [--arch amd64|arm64] [--rollback-allowed] [--min-from-version V] [--released YYYY-MM-DD]
#                   [--notes-ja FILE]
# --rollback-allowed is the vendor's signed permission to install this version over a newer one (the box
# refuses any older or equal version otherwise).
set -euo pipefail
ARCH=amd64 ROLLBACK="" MIN_FROM="" RELEASED="" NOTES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rollback-allowed) ROLLBACK=yes; shift; continue ;;
    --root) ROOTIMG=$2 ;; --kernel) KERNEL=$2 ;; --initrd) INITRD=$2 ;;
    --version) VERSION=$2 ;; --key) KEY=$2 ;; --out) OUTPUT=$2 ;; --arch) ARCH=$2 ;;
    --min-from-version) MIN_FROM=$2 ;; --released) RELEASED=$2 ;; --notes-ja) NOTES=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
case "$ARCH" in amd64|arm64) ;; *) echo "--arch must be amd64 or arm64" >&2; exit 2 ;; esac
[[ "$VERSION" =~ ^[0-9]{1,10}(\.[0-9]{1,10}){0,5}$ ]] || { echo "not a version: $VERSION" >&2; exit 2; }
if [ -n "$NOTES" ] && [ "$(stat -c %s "$NOTES")" -gt 16384 ]; then echo "release notes over 16 KiB" >&2; exit 2; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zstd -q -T2 -9 "$ROOTIMG" -o "$work/root.img.zst"
cp "$KERNEL" "$work/vmlinuz"
cp "$INITRD" "$work/initrd.img"
files=(root.img.zst vmlinuz initrd.img)
if [ -n "$NOTES" ]; then cp "$NOTES" "$work/notes-ja.txt"; files+=(notes-ja.txt); fi
{
  echo "mamori-update 1"
  echo "version $VERSION"
  echo "arch $ARCH"
  echo "root-size $(stat -c %s "$ROOTIMG")"
  echo "root-sha256 $(sha256sum "$ROOTIMG" | cut -d' ' -f1)"
  if [ -n "$ROLLBACK" ]; then echo "rollback-allowed yes"; fi
  if [ -n "$MIN_FROM" ]; then echo "min-from-version $MIN_FROM"; fi
  if [ -n "$RELEASED" ]; then echo "released $RELEASED"; fi
  (cd "$work" && sha256sum "${files[@]}")
} > "$work/manifest"
openssl pkeyutl -sign -inkey "$KEY" -rawin -in "$work/manifest" -out "$work/manifest.sig"
tar -C "$work" --owner=0 --group=0 --mtime="@${SOURCE_DATE_EPOCH:-0}" -cf "$OUTPUT.partial" \
  manifest manifest.sig "${files[@]}"
mv "$OUTPUT.partial" "$OUTPUT"
echo "bundle: $OUTPUT (version $VERSION, $ARCH, $(( $(stat -c %s "$OUTPUT") / 1048576 )) MiB)"
