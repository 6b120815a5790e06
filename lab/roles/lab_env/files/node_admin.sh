#!/bin/sh
# Runs inside a lab GPU node (through `podman exec -i`, lab plumbing only):
# creates the admin account Ansible logs in as, as a hospital would for its
# automation account (a named user, key only, sudo for root), and prints
# "changed=0|1" followed by the node's own SSH host keys for known_hosts.
# Usage: sh -s -- USER 'PUBLIC KEY LINE'
set -eu
user=$1
key=$2
changed=0
if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --comment "Ansible automation (lab)" "$user"
    changed=1
fi
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
if [ "$(cat "$home/.ssh/authorized_keys" 2>/dev/null || true)" != "$key" ]; then
    printf '%s\n' "$key" > "$home/.ssh/authorized_keys"
    changed=1
fi
chown "$user:$user" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
rule="$user ALL=(ALL:ALL) NOPASSWD: ALL"
if [ "$(cat "/etc/sudoers.d/50-$user" 2>/dev/null || true)" != "$rule" ]; then
    printf '%s\n' "$rule" > "/etc/sudoers.d/.50-$user.new"
    chmod 0440 "/etc/sudoers.d/.50-$user.new"
    visudo -cqf "/etc/sudoers.d/.50-$user.new"
    mv "/etc/sudoers.d/.50-$user.new" "/etc/sudoers.d/50-$user"
    changed=1
fi
echo "changed=$changed"
cat /etc/ssh/ssh_host_*_key.pub
