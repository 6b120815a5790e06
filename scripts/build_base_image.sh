#!/usr/bin/env bash
# Build the lab's base image from Debian's archive and import it into podman.
# No registry is reachable, so the image is made with debootstrap. The image
# carries a label with the hash of its recipe; it is rebuilt only when the
# recipe (this script, the package list) changes.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
image=${AIRGAP_LAB_IMAGE:-localhost/airgap-lab-base:bookworm}
pkgfile="$here/lab/image/packages.txt"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/lab/containers.conf}

recipe_hash=$(cat "$0" "$pkgfile" | sha256sum | cut -c1-16)
current=$(podman image inspect --format '{{ index .Labels "airgap.recipe" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$recipe_hash" ]; then
    echo "base image $image is up to date (recipe $recipe_hash)"
    exit 0
fi

# The first URIs: line of the Debian sources is the reachable archive; the
# commented snapshot line above it is not (ENVIRONMENT.md).
mirror=${AIRGAP_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
include=$(grep -v '^#' "$pkgfile" | grep -v '^$' | paste -sd, -)

work=$(mktemp -d /var/tmp/airgap-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "building $image from $mirror (recipe $recipe_hash): $include"
debootstrap --variant=minbase --include="$include" bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -30 "$work/debootstrap.log"; exit 1; }

root="$work/root"
# A container has no console or hardware to wait for; these units only slow
# boot or fail inside podman.
for unit in systemd-networkd-wait-online.service getty@tty1.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
    chroot "$root" systemctl mask "$unit" >/dev/null 2>&1 || true
done
# Services that only some lab hosts run are off in the image; lab_up.yml
# turns them on where they belong.
chroot "$root" systemctl disable nginx.service ssh.service >/dev/null 2>&1
# Each container makes its own host keys at first start, never shares the image's.
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/systemd/system/ssh-keygen-once.service" <<'UNIT'
[Unit]
Description=Generate this host's own SSH host keys
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable ssh-keygen-once.service >/dev/null
# The lab image must not know any internet source: the airgap_repos role
# writes the only apt source it may use.
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
echo "airgap-lab" > "$root/etc/hostname"

tar -C "$root" -c . | podman import \
    --change 'CMD ["/sbin/init"]' \
    --change "LABEL airgap.recipe=$recipe_hash" \
    --change 'LABEL org.opencontainers.image.description=airgap lab base image (Debian 12, debootstrap)' \
    - "$image" >/dev/null
echo "imported $image (recipe $recipe_hash)"
