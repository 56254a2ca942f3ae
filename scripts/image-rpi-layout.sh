#!/usr/bin/env bash
# Puts the Raspberry Pi disk together (MBR), apart from the root file system build so that a unit test can
# make it in a small sparse file (tests/unit/test_image_rpi_layout.py) and read it back:
#   1  MAMORI-CTL  FAT16  autoboot.txt only: [all] boot_partition=2, [tryboot] boot_partition=3
#   2  MAMORI-A    FAT32  boot slot A: firmware, kernel, initrd, config.txt, cmdline.txt (root = 5)
#   3  MAMORI-B    FAT32  boot slot B: empty until an update fills it (root = 6)
#   4  extended
#   5  root A (ext4, the image's root file system, read-only)     6  root B (empty until an update)
#   7  mamori-data (ext4, /var/lib/mamori: state, configuration, logs)
#
#   image-rpi-layout.sh OUT --boot-a DIR --root-a ROOT.img [--disk-id 0x6d616d6f] [--control-mib 16]
#                       [--boot-mib 256] [--root-mib 880] [--data-mib 512]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; shift
DISK_ID=0x6d616d6f CTL_MIB=16 BOOT_MIB=256 ROOT_MIB=880 DATA_MIB=512 BOOT_A="" ROOT_A=""
while [ $# -gt 0 ]; do
  case "$1" in
    --boot-a) BOOT_A=$2 ;; --root-a) ROOT_A=$2 ;; --disk-id) DISK_ID=$2 ;; --control-mib) CTL_MIB=$2 ;;
    --boot-mib) BOOT_MIB=$2 ;; --root-mib) ROOT_MIB=$2 ;; --data-mib) DATA_MIB=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -d "$BOOT_A" ] && [ -f "$ROOT_A" ] || { echo "usage: $0 OUT --boot-a DIR --root-a ROOT.img [...]" >&2; exit 2; }
if [ "$(stat -c %s "$ROOT_A")" -gt $(( ROOT_MIB << 20 )) ]; then
  echo "the root file system is larger than a root slot (${ROOT_MIB} MiB)" >&2; exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MTOOLS_SKIP_CHECK=1
vol() { printf '%08X' $(( ($(printf '%d' "$DISK_ID") + $1) & 0xffffffff )); }

mkfs.vfat -F 16 -n MAMORI-CTL -i "$(vol 1)" -C "$work/ctl.img" $(( CTL_MIB * 1024 )) >/dev/null
python3 "$REPO/image/rootfs/usr/lib/mamori/mamori_update.py" autoboot-text 2 3 > "$work/autoboot.txt"
mcopy -i "$work/ctl.img" "$work/autoboot.txt" ::/autoboot.txt
mkfs.vfat -F 32 -n MAMORI-A -i "$(vol 2)" -C "$work/boot-a.img" $(( BOOT_MIB * 1024 )) >/dev/null
mcopy -s -i "$work/boot-a.img" "$BOOT_A"/* ::/
mkfs.vfat -F 32 -n MAMORI-B -i "$(vol 3)" -C "$work/boot-b.img" $(( BOOT_MIB * 1024 )) >/dev/null
E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-0} mkfs.ext4 -q -F -L mamori-data -m 1 -E root_owner=0:0 \
  "$work/data.img" "${DATA_MIB}M"

mib=2048  # sectors
ctl_start=$mib
a_start=$(( ctl_start + CTL_MIB * mib ))
b_start=$(( a_start + BOOT_MIB * mib ))
ext_start=$(( b_start + BOOT_MIB * mib ))
ra_start=$(( ext_start + mib ))
rb_start=$(( ra_start + ROOT_MIB * mib + mib ))
data_start=$(( rb_start + ROOT_MIB * mib + mib ))
end=$(( data_start + DATA_MIB * mib ))
rm -f "$OUT.partial"
truncate -s $(( end * 512 )) "$OUT.partial"
sfdisk --quiet "$OUT.partial" <<SFDISK
label: dos
label-id: $DISK_ID
unit: sectors
start=$ctl_start, size=$(( CTL_MIB * mib )), type=e, bootable
start=$a_start, size=$(( BOOT_MIB * mib )), type=c
start=$b_start, size=$(( BOOT_MIB * mib )), type=c
start=$ext_start, size=$(( end - ext_start )), type=5
start=$ra_start, size=$(( ROOT_MIB * mib )), type=83
start=$rb_start, size=$(( ROOT_MIB * mib )), type=83
start=$data_start, size=$(( DATA_MIB * mib )), type=83
SFDISK
put() { dd if="$1" of="$OUT.partial" bs=512 seek="$2" conv=notrunc,sparse status=none; }
put "$work/ctl.img" "$ctl_start"
put "$work/boot-a.img" "$a_start"
put "$work/boot-b.img" "$b_start"
put "$ROOT_A" "$ra_start"
put "$work/data.img" "$data_start"
mv "$OUT.partial" "$OUT"
