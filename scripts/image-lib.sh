# Functions for scripts/image-build.sh (sourced). Each step is one function so the build reads as a list.
# shellcheck shell=bash

# Debian packages the build host needs (installed by `make image` itself; the main test suite needs none).
IMAGE_BUILD_TOOLS=(mmdebstrap dosfstools mtools fdisk e2fsprogs zstd python3-pip python3-venv git ca-certificates)
IMAGE_BUILD_TOOLS_ARM64=(qemu-user-static binfmt-support arch-test patchelf)
IMAGE_TEST_TOOLS=(qemu-system-x86 qemu-utils ovmf)

# Fixed identifiers: the same build gives the same partition table and file-system UUIDs. Every box gets
# its own machine-id, host keys and TLS certificate on first boot instead (mamori-firstboot.service).
DISK_GUID=6d616d6f-7269-4000-8000-000000000001
ESP_PARTUUID=6d616d6f-7269-4000-8000-0000000000e5
ROOT_A_PARTUUID=6d616d6f-7269-4000-8000-00000000000a
ROOT_FS_UUID=6d616d6f-7269-4000-8000-0000000000f5
ESP_VOLID=4D414D4F
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_TYPE_AMD64=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
# Fixed sizes: an update writes a new root file system into the other slot, so both slots and every
# update's root image have exactly ROOT_MIB. The image stays under 1 GiB; slot B and the data partition
# are added on the first boot by systemd-repart (image/rootfs/usr/lib/systemd/system/systemd-repart.service.d).
ESP_MIB=128
ROOT_MIB=880
# Raspberry Pi: the MBR disk id; partitions are <id>-NN (scripts/image-rpi-layout.sh).
RPI_DISK_ID=0x6d616d6f
export ESP_MIB ROOT_MIB RPI_DISK_ID

log() { printf '[image %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "make image must run as root (mmdebstrap chroots into the new root filesystem)." >&2
    exit 1
  fi
}

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

ensure_packages() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing build prerequisites: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -o Acquire::Retries=3 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

ensure_build_tools() {
  ensure_packages "${IMAGE_BUILD_TOOLS[@]}"
  if [ "$1" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
    ensure_packages "${IMAGE_BUILD_TOOLS_ARM64[@]}"
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    if ! arch-test arm64 >/dev/null 2>&1; then
      echo "this host cannot run arm64 binaries (binfmt_misc + qemu-user-static); arm64 cannot be built here" >&2
      exit 1
    fi
  fi
}

# A wheel of this repository plus every PyPI dependency as a binary wheel for the image's Python (3.11,
# glibc 2.36). pip downloads on the host; the chroot installs with --no-index (no network inside).
stage_wheels() {
  local arch=$1 dest=$2 machine
  case "$arch" in amd64) machine=x86_64 ;; arm64) machine=aarch64 ;; esac
  mkdir -p "$dest"
  # Built from the committed tree (git archive HEAD), not from whatever is half-edited in the work tree;
  # MAMORI_IMAGE_SOURCE=worktree builds the work tree instead (for trying a change before committing it).
  local src=$WORK/src
  rm -rf "$src" && mkdir -p "$src"
  if [ "${MAMORI_IMAGE_SOURCE:-head}" = worktree ] || ! git -C "$REPO" rev-parse HEAD >/dev/null 2>&1; then
    tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./out --exclude='*.egg-info' -cf - . | tar -C "$src" -xf -
  else
    git -C "$REPO" archive HEAD | tar -C "$src" -xf -
  fi
  python3 -m pip wheel --quiet --no-deps --wheel-dir "$dest" "$src"
  local platforms=()
  for tag in manylinux_2_36 manylinux_2_34 manylinux_2_28 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_${machine}")
  done
  python3 -m pip download --quiet --dest "$dest" --only-binary=:all: --python-version 3.11 \
    --implementation cp --abi cp311 --abi abi3 --abi none "${platforms[@]}" \
    --constraint "$REPO/image/python-constraints.txt" "$dest"/mamori-*.whl
  # The tree may not be a git checkout; the image records what it was built from.
  git -C "$REPO" rev-parse HEAD > "$dest/SOURCE_COMMIT" 2>/dev/null || echo unknown > "$dest/SOURCE_COMMIT"
}

image_packages() {
  local arch=$1
  local common=(
    systemd systemd-sysv chrony udev dbus kmod initramfs-tools zstd login passwd tzdata
    iproute2 nftables python3 python3-venv python3-nftables python3-dnspython wireguard-tools dnsmasq conntrack
    e2fsprogs dosfstools
    util-linux  # setpriv (appliance/unprivileged.py); Essential in bookworm, named so it never goes missing
    openssh-server openssl ca-certificates procps
    rsyslog rsyslog-gnutls
    libpango-1.0-0 libpangoft2-1.0-0 fonts-ipaexfont-gothic
  )
  case "$arch" in
    amd64) common+=(linux-image-amd64 systemd-boot) ;;
    arm64) common+=(linux-image-arm64 raspi-firmware) ;;
  esac
  (IFS=,; echo "${common[*]}")
}

build_rootfs() {
  local arch=$1 root=$2 components=main env=()
  # arm64: no initramfs while the packages are installed (INITRD=No stops the kernel's hook); under
  # qemu-user one takes 10-20 minutes, and initramfs-tools' own trigger made it a second time.
  # image-customize.sh makes it once, after the modules were pruned.
  [ "$arch" = arm64 ] && components="main non-free-firmware" && env=(INITRD=No)
  env "${env[@]}" mmdebstrap --variant=apt --arch="$arch" --format=directory \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/ja/*' \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/boot/firmware"' \
    --essential-hook="printf 'MODULES=most\nCOMPRESS=zstd\n' > \"\$1/etc/initramfs-tools/conf.d/mamori.conf\"" \
    --include="$(image_packages "$arch")" \
    --customize-hook="\"$REPO/scripts/image-customize.sh\" \"\$1\" $arch \"$WORK/wheels\"" \
    "$SUITE" "$root" \
    "deb $MIRROR $SUITE $components" \
    "deb $MIRROR $SUITE-updates $components" \
    "deb $MIRROR $SUITE-backports $components" \
    "deb ${MIRROR%/debian}/debian-security $SUITE-security $components"
}

chroot_enable() {
  local root=$1; shift
  systemctl --root="$root" enable "$@" >/dev/null
}

# Size of a file system for a tree: its content plus an eighth and 128 MiB of room, in MiB. The root is
# replaced whole by updates; growing data (database, logs) belongs on the data partition.
fs_size_mib() {
  local used
  used=$(du -s --block-size=1M "$1" | cut -f1)
  echo $(( used + used / 8 + 128 ))
}

build_root_fs() {
  local tree=$1 img=$2 label=$3 mib=${4:-$ROOT_MIB} need
  need=$(fs_size_mib "$tree")
  if [ "$need" -gt "$mib" ]; then
    echo "the root file system needs ${need} MiB but a slot has ${mib} MiB: make the image smaller" >&2
    exit 1
  fi
  rm -f "$img"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -t ext4 -L "$label" -U "$ROOT_FS_UUID" \
    -E "hash_seed=$ROOT_FS_UUID,root_owner=0:0" -m 1 -d "$tree" "$img" "${mib}M"
}

kernel_version() {
  local k
  k=$(cd "$1/boot" && ls vmlinuz-* | sort -V | tail -n1)
  echo "${k#vmlinuz-}"
}

# The EFI system partition: systemd-boot (from the image's own systemd-boot package) at the removable
# path, one kernel + initrd per root slot, and loader entries with boot counting for the update fallback.
build_esp() {
  local root=$1 img=$2 variant=$3 kver
  kver=$(kernel_version "$root")
  rm -f "$img"
  mkfs.vfat -F 32 -n MAMORI-ESP -i "$ESP_VOLID" -C "$img" $(( ESP_MIB * 1024 )) >/dev/null
  export MTOOLS_SKIP_CHECK=1
  mmd -i "$img" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/mamori-a
  mcopy -i "$img" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$img" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/systemd/systemd-bootx64.efi
  mcopy -i "$img" "$root/boot/vmlinuz-$kver" ::/mamori-a/vmlinuz
  mcopy -i "$img" "$root/boot/initrd.img-$kver" ::/mamori-a/initrd.img
  local tmp
  tmp=$(mktemp -d)
  # editor no: nobody at the console can add init=/bin/sh to the kernel command line.
  printf 'default mamori-*\ntimeout 0\neditor no\nconsole-mode keep\n' > "$tmp/loader.conf"
  {
    echo "title Mamori (A)"
    echo "sort-key mamori"
    echo "version $(cat "$root/usr/share/mamori/IMAGE_VERSION")"
    echo "linux /mamori-a/vmlinuz"
    echo "initrd /mamori-a/initrd.img"
    echo "options root=PARTUUID=$ROOT_A_PARTUUID ro console=tty0 console=ttyS0,115200n8 $(kernel_options "$variant")"
  } > "$tmp/mamori-a.conf"
  mcopy -i "$img" "$tmp/loader.conf" ::/loader/loader.conf
  mcopy -i "$img" "$tmp/mamori-a.conf" ::/loader/entries/mamori-a.conf
  rm -rf "$tmp"
}

kernel_options() {
  case "$1" in
    prod) echo "panic=10 quiet" ;;
    test) echo "panic=10 systemd.show_status=1" ;;
  esac
}

assemble_uefi_disk() {
  local root=$1 work=$2 out=$3 variant=$4
  local esp=$work/esp-$variant.img rootimg=$work/root-$variant.img
  build_esp "$root" "$esp" "$variant"
  build_root_fs "$root" "$rootimg" mamori-root-a
  local esp_sectors=$(( ESP_MIB * 2048 )) root_sectors
  root_sectors=$(( $(stat -c %s "$rootimg") / 512 ))
  local root_start=$(( 2048 + esp_sectors ))
  local total=$(( root_start + root_sectors + 2048 ))
  rm -f "$out.partial"
  truncate -s $(( total * 512 )) "$out.partial"
  sfdisk --quiet "$out.partial" <<SFDISK
label: gpt
label-id: $DISK_GUID
unit: sectors
first-lba: 2048
start=2048, size=$esp_sectors, type=$ESP_TYPE, uuid=$ESP_PARTUUID, name="esp"
start=$root_start, size=$root_sectors, type=$ROOT_TYPE_AMD64, uuid=$ROOT_A_PARTUUID, name="mamori-root-a"
SFDISK
  dd if="$esp" of="$out.partial" bs=512 seek=2048 conv=notrunc,sparse status=none
  dd if="$rootimg" of="$out.partial" bs=512 seek="$root_start" conv=notrunc,sparse status=none
  rm -f "$esp"
  mv "$out.partial" "$out"
  if [ "$variant" = prod ]; then
    make_bundle "$root" "$rootimg" "${out%.img}-update.tar"
  fi
  rm -f "$rootimg"
}

# The update signing key: MAMORI_UPDATE_KEY (the vendor's Ed25519 key, PEM) or, for development, a key
# made once in out/keys/. Only its public half goes into the image.
ensure_update_key() {
  UPDATE_KEY=${MAMORI_UPDATE_KEY:-$OUT/keys/update-signing.key}
  MAMORI_UPDATE_PUBKEY=$OUT/keys/update-signing.pub.pem
  mkdir -p "$OUT/keys"
  # Under a lock: CI builds both images at once, and both must sign with the one key they embed.
  (
    flock 9
    if [ ! -s "$UPDATE_KEY" ]; then
      log "no MAMORI_UPDATE_KEY: making a development signing key in $UPDATE_KEY (not for shipping)"
      mkdir -p "$(dirname "$UPDATE_KEY")"
      (umask 077 && openssl genpkey -algorithm ed25519 -out "$UPDATE_KEY.new" && mv "$UPDATE_KEY.new" "$UPDATE_KEY")
    fi
    openssl pkey -in "$UPDATE_KEY" -pubout -out "$MAMORI_UPDATE_PUBKEY.new"
    mv "$MAMORI_UPDATE_PUBKEY.new" "$MAMORI_UPDATE_PUBKEY"
  ) 9>"$OUT/keys/.lock"
  export UPDATE_KEY MAMORI_UPDATE_PUBKEY
}

make_bundle() {
  local root=$1 rootimg=$2 out=$3 arch=${4:-amd64} kver
  kver=$(kernel_version "$root")
  "$REPO/scripts/image-bundle.sh" --root "$rootimg" --kernel "$root/boot/vmlinuz-$kver" \
    --initrd "$root/boot/initrd.img-$kver" --version "$(cat "$root/usr/share/mamori/IMAGE_VERSION")" \
    --arch "$arch" --key "$UPDATE_KEY" --out "$out"
}

report_sizes() {
  local out=$1 arch=$2 img
  for img in "$out"/mamori-"$arch"*.img; do
    [ -e "$img" ] || continue
    zstd -q -f -T2 -9 "$img" -o "$img.zst"
    printf '%s: %s MiB raw, %s MiB allocated, %s MiB zstd\n' "$(basename "$img")" \
      $(( $(stat -c %s "$img") / 1048576 )) "$(du -m "$img" | cut -f1)" $(( $(stat -c %s "$img.zst") / 1048576 ))
  done
}

# Raspberry Pi 4 (arm64): MBR with a control partition (autoboot.txt), two boot partitions and two root
# slots (A/B with the firmware's tryboot) and the data partition; the layout is scripts/image-rpi-layout.sh.
# The firmware files come from Debian's raspi-firmware package, the kernel, initrd and device trees from
# the image's own linux-image-arm64; image/rootfs/usr/lib/mamori/rpi-boot-files lays them out (the same
# script fills the spare boot partition on the box during an update).
# The Pi's root slots are larger than amd64's: the root carries the firmware, every device tree and an
# uncompressed module tree (about 700 MiB used). Both slots are in the image (sparse): 3.1 GiB in all.
RPI_BOOT_MIB=256
RPI_ROOT_MIB=1024
RPI_DATA_MIB=512

assemble_rpi_disk() {
  local root=$1 work=$2 out=$3
  local bootdir=$work/boot-a rootimg=$work/root.img
  rm -rf "$bootdir" && mkdir -p "$bootdir"
  "$REPO/image/rootfs/usr/lib/mamori/rpi-boot-files" "$root" "$bootdir" "${RPI_DISK_ID#0x}-05"
  # raspi-firmware's hooks copied the same files into /boot/firmware: on the Pi that is a FAT partition.
  find "$root/boot/firmware" -mindepth 1 -delete
  build_root_fs "$root" "$rootimg" mamori-root-a "$RPI_ROOT_MIB"
  # The bundle before the disk: the image appears last, when everything of this build is there.
  make_bundle "$root" "$rootimg" "${out%.img}-update.tar" arm64
  "$REPO/scripts/image-rpi-layout.sh" "$out" --boot-a "$bootdir" --root-a "$rootimg" --disk-id "$RPI_DISK_ID" \
    --boot-mib "$RPI_BOOT_MIB" --root-mib "$RPI_ROOT_MIB" --data-mib "$RPI_DATA_MIB"
  rm -rf "$bootdir" "$rootimg"
}

# The arm64 root file system under qemu-user: Mamori's CLI runs and validates the example configuration.
check_rootfs_cli() {
  local root=$1
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    /usr/bin/mamori --lang en config validate --file /usr/share/mamori/examples/clinic.yaml
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    /usr/lib/mamori/venv/bin/python -c 'import nftables, pydantic_core, cryptography, argon2, yaml; print("imports ok")'
}
