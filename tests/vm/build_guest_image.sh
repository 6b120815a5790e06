#!/usr/bin/env bash
# Build the Debian 12 guest image for the VLAN VM test (tests/vm/run_vlan_vm_test.sh).
#
# The podman lab has no 802.1Q (ENVIRONMENT.md: CONFIG_VLAN_8021Q unset, no
# module loading), so VLANs are proven in QEMU guests with their own kernel.
# No image can be downloaded: the root file system is made with debootstrap
# from the Debian archive named on the URIs: line of
# /etc/apt/sources.list.d/debian.sources (the commented snapshot line above
# it is not reachable), as scripts/build_base_image.sh does for the lab.
#
# Output, cached under build/vm/ and rebuilt only when this script changes:
#   guest-<recipe>.img       ext4 root file system (raw), used read-only as a backing file
#   vmlinuz-<recipe>, initrd-<recipe>   for direct kernel boot
#   id_ed25519(.pub)         the key Ansible logs in with (root, key only)
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
out=${AIRGAP_VM_DIR:-$here/build/vm}
mkdir -p "$out"
recipe=$(sha256sum "$0" | cut -c1-12)
img="$out/guest-$recipe.img"
if [ -s "$img" ] && [ -s "$out/vmlinuz-$recipe" ] && [ -s "$out/initrd-$recipe" ]; then
    echo "guest image $img is up to date"
    exit 0
fi

mirror=${AIRGAP_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
[ -s "$out/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C airgap-vlan-vm-test -f "$out/id_ed25519"

work=$(mktemp -d /var/tmp/airgap-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
# udev and kmod: the kernel loads virtio and 8021q modules on demand; python3-apt
# lets the firewall role check its package offline; tcpdump
# shows the 802.1Q tags; netcat probes the per-VLAN firewall policy.
include=systemd,systemd-sysv,dbus,udev,kmod,python3,python3-apt,iproute2,nftables,procps,openssh-server,tcpdump,iputils-ping,netcat-openbsd,linux-image-amd64,initramfs-tools
echo "debootstrap bookworm from $mirror: $include"
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -30 "$work/debootstrap.log"; exit 1; }

echo "/dev/vda / ext4 rw,relatime 0 1" > "$root/etc/fstab"
# Ansible's own interface: QEMU user networking (hostfwd, restrict=on), a
# static address in slirp's default subnet. eth1 is the VLAN trunk; it has
# an administrator's .network of its own, so the role must use a drop-in.
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/10-controller.network" <<'NET'
[Match]
Name=eth0

[Network]
Address=10.0.2.15/24
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
cat > "$root/etc/systemd/network/20-trunk.network" <<'NET'
[Match]
Name=eth1

[Network]
LinkLocalAddressing=no
IPv6AcceptRA=no
ConfigureWithoutCarrier=yes
NET
chroot "$root" systemctl enable systemd-networkd.service ssh.service >/dev/null 2>&1
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
            e2scrub_all.timer fstrim.timer man-db.timer systemd-timesyncd.service getty@tty1.service; do
    chroot "$root" systemctl mask "$unit" >/dev/null 2>&1 || true
done
mkdir -p "$root/root/.ssh"
install -m 0600 "$out/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
chmod 0700 "$root/root/.ssh"
echo 'UseDNS no' > "$root/etc/ssh/sshd_config.d/airgap-vm.conf"
# No internet source inside the guest either.
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
echo airgap-vm > "$root/etc/hostname"

cp "$(ls "$root"/boot/vmlinuz-* | head -1)" "$out/vmlinuz-$recipe.tmp"
cp "$(ls "$root"/boot/initrd.img-* | head -1)" "$out/initrd-$recipe.tmp"
mkfs.ext4 -q -F -L airgap-vm -d "$root" "$img.tmp" 2G
mv "$out/vmlinuz-$recipe.tmp" "$out/vmlinuz-$recipe"
mv "$out/initrd-$recipe.tmp" "$out/initrd-$recipe"
mv "$img.tmp" "$img"
echo "built $img"
