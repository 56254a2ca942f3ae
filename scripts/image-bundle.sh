#!/usr/bin/env bash
# Makes a signed Mamori update bundle (a tar read by image/rootfs/usr/sbin/mamori-update):
#   manifest      version, root image size and SHA-256, and `sha256sum` lines for the files below
#   manifest.sig  Ed25519 signature of the manifest (the box checks it with /usr/share/mamori/update-keys)
#   root.img.zst  the root file system of the new version (exactly one slot in size)
#   vmlinuz, initrd.img
#
#   image-bundle.sh --root ROOT.img --kernel F --initrd F --version V --key KEY.pem --out BUNDLE.tar
set -euo pipefail
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOTIMG=$2 ;; --kernel) KERNEL=$2 ;; --initrd) INITRD=$2 ;;
    --version) VERSION=$2 ;; --key) KEY=$2 ;; --out) OUTPUT=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zstd -q -T2 -9 "$ROOTIMG" -o "$work/root.img.zst"
cp "$KERNEL" "$work/vmlinuz"
cp "$INITRD" "$work/initrd.img"
{
  echo "mamori-update 1"
  echo "version $VERSION"
  echo "root-size $(stat -c %s "$ROOTIMG")"
  echo "root-sha256 $(sha256sum "$ROOTIMG" | cut -d' ' -f1)"
  (cd "$work" && sha256sum root.img.zst vmlinuz initrd.img)
} > "$work/manifest"
openssl pkeyutl -sign -inkey "$KEY" -rawin -in "$work/manifest" -out "$work/manifest.sig"
tar -C "$work" --owner=0 --group=0 --mtime="@${SOURCE_DATE_EPOCH:-0}" -cf "$OUTPUT.partial" \
  manifest manifest.sig root.img.zst vmlinuz initrd.img
mv "$OUTPUT.partial" "$OUTPUT"
echo "bundle: $OUTPUT (version $VERSION, $(( $(stat -c %s "$OUTPUT") / 1048576 )) MiB)"
