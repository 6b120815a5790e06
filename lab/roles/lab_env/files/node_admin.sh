#!/bin/sh
# Runs inside a lab GPU node (through `podman exec -i`, lab plumbing only):
# the admin account Ansible logs in as, as a hospital would have for its
# automation account (a named user, key only, sudo for root).
# Usage: sh -s -- check|apply USER 'PUBLIC KEY LINE'
#   check: prints "configured=yes|no", then the node's own SSH host keys
#          (for known_hosts); changes nothing.
#   apply: creates or repairs the account, then prints what check prints.
set -eu
mode=$1
user=$2
key=$3
rule="$user ALL=(ALL:ALL) NOPASSWD: ALL"
home=$(getent passwd "$user" | cut -d: -f6 || true)

configured() {
    [ -n "$home" ] || return 1
    [ "$(cat "$home/.ssh/authorized_keys" 2>/dev/null || true)" = "$key" ] || return 1
    [ "$(stat -c '%U %a' "$home/.ssh/authorized_keys" 2>/dev/null || true)" = "$user 600" ] || return 1
    [ "$(cat "/etc/sudoers.d/50-$user" 2>/dev/null || true)" = "$rule" ] || return 1
}

if [ "$mode" = apply ] && ! configured; then
    if [ -z "$home" ]; then
        useradd --create-home --shell /bin/bash --comment "Ansible automation (lab)" "$user"
        home=$(getent passwd "$user" | cut -d: -f6)
    fi
    install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
    printf '%s\n' "$key" > "$home/.ssh/authorized_keys"
    chown "$user:$user" "$home/.ssh/authorized_keys"
    chmod 0600 "$home/.ssh/authorized_keys"
    printf '%s\n' "$rule" > "/etc/sudoers.d/.50-$user.new"
    chmod 0440 "/etc/sudoers.d/.50-$user.new"
    visudo -cqf "/etc/sudoers.d/.50-$user.new"
    mv "/etc/sudoers.d/.50-$user.new" "/etc/sudoers.d/50-$user"
fi
if configured; then echo "configured=yes"; else echo "configured=no"; fi
cat /etc/ssh/ssh_host_*_key.pub
