#!/usr/bin/env bash
# mmdebstrap --customize-hook: turns the Debian root filesystem in $1 into Mamori's.
#   image-customize.sh ROOT ARCH WHEELS_DIR
# Runs on the build host; commands that must run as the image's own programs go through `in_root` (chroot;
# for arm64 the kernel's binfmt_misc hands them to qemu-user-static).
set -euo pipefail
ROOT=$1 ARCH=$2 WHEELS=$3
REPO=$(cd "$(dirname "$0")/.." && pwd)
SRC=$(dirname "$WHEELS")/src
VENV=/usr/lib/mamori/venv

in_root() {
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root \
    DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}" "$@"
}

install_suricata() {
  # Suricata 7 is in bookworm-backports only; its dependencies come from there where needed.
  in_root apt-get install -y -q --no-install-recommends -t bookworm-backports suricata suricata-update >/dev/null
}

service_accounts() {
  # Suricata parses hostile traffic: the daemon runs it as this system account, never as root
  # (ids/account.py). Same name and options as scripts/setup.sh. If an update gives it another uid, the
  # daemon opens Suricata's directories on the state partition to the new one at the next start.
  if ! in_root getent passwd mamori-ids >/dev/null; then
    in_root useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "Mamori IDS (Suricata)" mamori-ids
  fi
  # The web UI (in mamori-db: it writes the database) and the VPN portal (its own group only); same as
  # scripts/setup.sh and appliance/child_access.py.
  in_root getent group mamori-db >/dev/null || in_root groupadd --system mamori-db
  local account name groups comment
  for account in "mamori-web:mamori-db:Mamori web UI" "mamori-portal::Mamori VPN portal"; do
    IFS=: read -r name groups comment <<<"$account"
    if ! in_root getent passwd "$name" >/dev/null; then
      in_root useradd --system --user-group ${groups:+--groups "$groups"} --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "$comment" "$name"
    fi
  done
}

install_mamori() {
  mkdir -p "$ROOT/tmp/mamori-wheels"
  cp "$WHEELS"/*.whl "$ROOT/tmp/mamori-wheels/"
  # --system-site-packages: python3-nftables (libnftables bindings) comes from Debian, not PyPI.
  in_root python3 -m venv --system-site-packages "$VENV"
  in_root "$VENV/bin/pip" install --quiet --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/mamori-wheels mamori
  # Nothing on the box installs Python packages: updates replace the whole root file system.
  in_root "$VENV/bin/pip" uninstall --quiet -y pip setuptools >/dev/null 2>&1 || true
  rm -rf "$ROOT/tmp/mamori-wheels"
  ln -sf "$VENV/bin/mamori" "$ROOT/usr/bin/mamori"
  in_root /usr/bin/mamori --lang en version
  install -d -m 0755 "$ROOT/usr/share/mamori/examples" "$ROOT/usr/share/doc/mamori" "$ROOT/usr/lib/mamori"
  install -m 0644 "$SRC/examples/clinic.yaml" "$ROOT/usr/share/mamori/examples/clinic.yaml"
  install -m 0644 "$SRC/README.md" "$ROOT/usr/share/doc/mamori/README.md"
  in_root "$VENV/bin/python" -c 'import appliance; print(appliance.__version__)' > "$ROOT/usr/share/mamori/VERSION"
  # The boot loader orders entries by this version (newest first): the release plus the commit time.
  echo "$(cat "$ROOT/usr/share/mamori/VERSION").${SOURCE_DATE_EPOCH:-0}" > "$ROOT/usr/share/mamori/IMAGE_VERSION"
  cp "$WHEELS/SOURCE_COMMIT" "$ROOT/usr/share/mamori/SOURCE_COMMIT"
  ls "$WHEELS" | sed -n 's/\.whl$//p' | sort > "$ROOT/usr/share/mamori/python-wheels.txt"
  install -d -m 0750 "$ROOT/etc/mamori" "$ROOT/var/lib/mamori"
}

install_system_files() {
  install -m 0644 "$REPO"/image/systemd/*.service "$ROOT/usr/lib/systemd/system/"
  install -m 0644 "$REPO/image/nftables/fail-closed.nft" "$ROOT/usr/lib/mamori/fail-closed.nft"
  # image/rootfs holds plain files laid over the root file system (journald cap, networkd, sysctl, ...).
  cp -r --no-preserve=ownership "$REPO/image/rootfs/." "$ROOT/"
  install -d -m 0755 "$ROOT/usr/share/mamori/update-keys"
  if [ -n "${MAMORI_UPDATE_PUBKEY:-}" ]; then
    install -m 0644 "$MAMORI_UPDATE_PUBKEY" "$ROOT/usr/share/mamori/update-keys/vendor.pem"
  fi
  local units=(mamori-fail-closed.service mamori.service mamori-firstboot.service mamori-health.service
    mamori-setup-code.service systemd-networkd.service mamori-update-install.path mamori-update-report.service)
  systemctl --root="$ROOT" enable "${units[@]}" >/dev/null 2>&1
  # Mamori starts dnsmasq, Suricata, chronyd, rsyslogd (the SIEM forwarder, siem/, only while siem: is on)
  # and the web UI itself (appliance/webserver.py) with the configs it renders; Debian's stock units would
  # run them with the package defaults (rsyslog's would also copy the journal to /var/log). SSH is off until
  # enabled from the web UI (LAN only, keys only).
  systemctl --root="$ROOT" disable dnsmasq.service suricata.service chrony.service ssh.service \
    nftables.service rsyslog.service >/dev/null 2>&1 || true
  systemctl --root="$ROOT" mask systemd-firstboot.service ssh.socket >/dev/null 2>&1 || true
  # The root file system is read-only and replaced whole by updates: nothing on the box updates packages
  # or backs up dpkg's database (they would only fail on the read-only root).
  systemctl --root="$ROOT" disable apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer >/dev/null 2>&1 || true
  systemctl --root="$ROOT" mask apt-daily.service apt-daily-upgrade.service dpkg-db-backup.service >/dev/null 2>&1 || true
}

# The root is mounted read-only (kernel command line `ro`, no / in fstab). What the system writes goes to
# the data partition (bind mounts made by mamori-data-dirs.service) or to tmpfs.
read_only_root_fstab() {
  local data=$1
  cat > "$ROOT/etc/fstab" <<FSTAB
# Mamori: / is given on the kernel command line (root=PARTUUID of slot A or B) and mounted read-only.
${2:-}
# Mamori's state (database, keys, rules, backups) on its own partition, apart from both system slots.
$data  /var/lib/mamori  ext4  noatime,nofail,x-systemd.device-timeout=90s  0 2
# What the system itself writes, kept on the data partition: logs, systemd's state, the configuration.
/var/lib/mamori/system/log          /var/log          none  bind,nofail,x-systemd.requires=mamori-data-dirs.service  0 0
/var/lib/mamori/system/lib-systemd  /var/lib/systemd  none  bind,nofail,x-systemd.requires=mamori-data-dirs.service  0 0
/var/lib/mamori/system/etc-mamori   /etc/mamori       none  bind,nofail,x-systemd.requires=mamori-data-dirs.service  0 0
tmpfs  /tmp      tmpfs  mode=1777,nosuid,nodev,size=20%  0 0
tmpfs  /var/tmp  tmpfs  mode=1777,nosuid,nodev,size=10%  0 0
FSTAB
}

first_boot_identity() {
  # Every box makes its own on first boot: nothing secret or unique is baked into the image.
  rm -f "$ROOT"/etc/ssh/ssh_host_*
  : > "$ROOT/etc/machine-id"
  rm -f "$ROOT/var/lib/systemd/random-seed"
  # What systemd-tmpfiles would make at boot, made here: the root is read-only on the box.
  mkdir -p "$ROOT/var/lib/dbus"
  ln -sfn /etc/machine-id "$ROOT/var/lib/dbus/machine-id"
  ln -sfn ../proc/self/mounts "$ROOT/etc/mtab"
  # No default password: root is locked; the first administrator is created in the setup wizard.
  # "*": no password matches it. Not "!": sshd (UsePAM no, maintenance SSH) refuses a "!"-locked account
  # even for a valid key.
  in_root usermod -p '*' root
  echo mamori > "$ROOT/etc/hostname"
  # mmdebstrap copied the build host's resolv.conf in for the build; the box asks its own dnsmasq instead
  # (it listens on loopback too, and forwards to dhcp.dns_upstreams). Until the daemon runs dnsmasq, a
  # lookup fails at once instead of waiting on a server that is not there.
  rm -f "$ROOT/etc/resolv.conf"
  printf '# Mamori: the box resolves names through its own dnsmasq (dhcp.dns_upstreams).\nnameserver 127.0.0.1\n' \
    > "$ROOT/etc/resolv.conf"
  chmod 0644 "$ROOT/etc/resolv.conf"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tmamori\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
  ln -sf /usr/share/zoneinfo/Asia/Tokyo "$ROOT/etc/localtime"
  echo Asia/Tokyo > "$ROOT/etc/timezone"
  echo 'LANG=C.UTF-8' > "$ROOT/etc/default/locale"
}

# amd64 disk layout after the first boot: ESP, root A (the image), root B (updates), data (/var/lib/mamori).
partitions_amd64() {
  install -d -m 0755 "$ROOT/usr/lib/repart.d" "$ROOT/efi"
  printf '[Partition]\nType=esp\nSizeMinBytes=%sM\nSizeMaxBytes=%sM\n' "$ESP_MIB" "$ESP_MIB" \
    > "$ROOT/usr/lib/repart.d/10-esp.conf"
  printf '[Partition]\nType=root\nLabel=mamori-root-a\nSizeMinBytes=%sM\nSizeMaxBytes=%sM\n' "$ROOT_MIB" "$ROOT_MIB" \
    > "$ROOT/usr/lib/repart.d/20-root-a.conf"
  printf '[Partition]\nType=root\nLabel=mamori-root-b\nSizeMinBytes=%sM\nSizeMaxBytes=%sM\n' "$ROOT_MIB" "$ROOT_MIB" \
    > "$ROOT/usr/lib/repart.d/21-root-b.conf"
  printf '[Partition]\nType=linux-generic\nLabel=mamori-data\nFormat=ext4\nSizeMinBytes=512M\n' \
    > "$ROOT/usr/lib/repart.d/30-data.conf"
  read_only_root_fstab PARTLABEL=mamori-data "# The EFI system partition: boot entries (updates, boot counting); mounted only when used.
PARTLABEL=esp  /efi  vfat  umask=0077,noatime,nofail,x-systemd.automount,x-systemd.idle-timeout=120  0 2"
  ln -sf /usr/lib/systemd/system/systemd-repart.service "$ROOT/etc/systemd/system/sysinit.target.wants/systemd-repart.service"
}

prune_kernel_modules() {
  # A firewall needs no sound, cameras, GPUs, Wi-Fi or cluster file systems: about 200 MiB less to write
  # to the card and to update. Guest Wi-Fi is an access point on the guest port, not a radio in the box.
  local kdir kver
  for kdir in "$ROOT"/usr/lib/modules/*/; do
    kver=$(basename "$kdir")
    (cd "$kdir/kernel" && rm -rf sound drivers/gpu drivers/media drivers/infiniband drivers/iio \
      drivers/staging drivers/comedi drivers/isdn drivers/net/wireless drivers/bluetooth drivers/target \
      drivers/net/can net/can net/mac80211 net/wireless net/bluetooth drivers/input/joystick \
      drivers/input/touchscreen drivers/input/tablet \
      fs/ocfs2 fs/gfs2 fs/xfs fs/btrfs fs/jfs fs/reiserfs fs/ntfs3 fs/nfs fs/nfsd fs/ceph fs/smb fs/cifs \
      fs/afs fs/coda fs/nilfs2 fs/orangefs fs/ubifs fs/dlm fs/f2fs fs/hfs fs/hfsplus fs/ufs fs/udf fs/9p)
    in_root depmod -a "$kver"
  done
}

# arm64 only (image-lib.sh's build_rootfs installed the kernel with INITRD=No): the initramfs, made once,
# from the pruned module tree.
make_initramfs() {
  local kdir
  for kdir in "$ROOT"/usr/lib/modules/*/; do
    with_native_file_tools in_root update-initramfs -c -k "$(basename "$kdir")" >/dev/null
  done
}

# Runs "$@" with a few of the image's file tools replaced by the build host's own, when the host is amd64.
# Why: for each of the ~900 modules of MODULES=most, mkinitramfs starts a dozen small programs (readlink,
# realpath, mkdir, cp); under qemu-user each start is emulated, and the initramfs took 7 minutes of CPU,
# the largest part of the arm64 build. These programs only read and copy files (coreutils 9.1 on both
# sides), and none of them is copied into the initramfs; zstd compresses it. The host's copies, their
# interpreter pointed at the host's loader (patchelf), are bind-mounted over the image's in a private mount
# namespace that ends with the command, beside the host's libraries on a directory made for the time. The
# shell, kmod, ldd and everything that goes into the initramfs stay the image's own arm64 programs;
# tests/image/test_image_arm64.py checks that every program in it is arm64.
NATIVE_FILE_TOOLS=(readlink realpath mkdir cp ln zstd)
HOST_LIBDIR=/usr/lib/x86_64-linux-gnu
with_native_file_tools() {
  if [ "$(dpkg --print-architecture)" != amd64 ] || [ "$ARCH" = amd64 ] || ! command -v patchelf >/dev/null; then
    "$@"
    return
  fi
  local tools made_libdir=
  tools=$(mktemp -d)
  if [ ! -e "$ROOT$HOST_LIBDIR" ]; then mkdir "$ROOT$HOST_LIBDIR" && made_libdir=1; fi
  local tool
  for tool in "${NATIVE_FILE_TOOLS[@]}"; do
    patchelf --set-interpreter "$HOST_LIBDIR/ld-linux-x86-64.so.2" --output "$tools/$tool" "/usr/bin/$tool"
  done
  local rc=0
  export -f in_root
  ROOT=$ROOT unshare --mount --propagation private bash -c '
    set -e
    root=$1 tools=$2 libdir=$3; shift 3
    mount --bind "$libdir" "$root$libdir"
    for tool in "$tools"/*; do mount --bind "$tool" "$root/usr/bin/${tool##*/}"; done
    "$@"
  ' with_native_file_tools "$ROOT" "$tools" "$HOST_LIBDIR" "$@" || rc=$?
  rm -rf "$tools"
  if [ -n "$made_libdir" ]; then rmdir "$ROOT$HOST_LIBDIR"; fi
  return "$rc"
}

check_tidy() {
  # A security box carries no compilers: nothing can be built on it if it is broken into.
  local bin
  for bin in gcc cc c++ g++ clang make as ld; do
    if [ -e "$ROOT/usr/bin/$bin" ]; then
      echo "image contains /usr/bin/$bin; a compiler must not be in the image" >&2
      exit 1
    fi
  done
  rm -rf "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/root/.cache
  find "$ROOT/var/log" -type f -name '*.log' -delete
}

install_suricata
service_accounts
install_mamori
install_system_files
if [ "$ARCH" = amd64 ]; then partitions_amd64; else read_only_root_fstab "PARTUUID=${RPI_DISK_ID#0x}-07"; fi
prune_kernel_modules
if [ "$ARCH" = arm64 ]; then make_initramfs; fi
first_boot_identity
check_tidy
