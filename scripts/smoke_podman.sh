#!/usr/bin/env bash
# The last step of `make setup`: start a throwaway container on a dual-stack
# bridge network, as the lab does, and check that it got an IPv4 and an IPv6
# address. If podman cannot, say which package or setting is the likely cause
# and stop, before anything else runs: a missing piece found here costs
# seconds, found in the middle of `make lab` it costs a half-built lab.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/lab/containers.conf}
image=${AIRGAP_LAB_IMAGE:-localhost/airgap-lab-base:bookworm}
podman=${AIRGAP_PODMAN:-podman}
# A name and subnets of its own, outside every lab profile (lab/topology.yml).
net=airgap-smoke-$$
v4=10.254.253.0/24
v6=fd00:254:253::/64

# Map what podman printed to the likely cause (what each one was seen to be on a
# fresh Debian 12 machine of this kind).
hint() {
    local out=$1
    case "$out" in
        *"netavark: No such file or directory"*|*"iptables"*"not found"*)
            echo "netavark runs 'iptables --version' and iptables is missing: apt-get install iptables" ;;
        *"cgroups in hybrid mode"*|*"crun"*)
            echo "the OCI runtime crun does not work here: install runc and use lab/containers.conf (runtime = \"runc\"), CONTAINERS_CONF=$CONTAINERS_CONF" ;;
        *"RLIMIT_NOFILE"*|*"setrlimit"*)
            echo "podman's default ulimits exceed this machine's hard limit: default_ulimits in lab/containers.conf, CONTAINERS_CONF=$CONTAINERS_CONF" ;;
        *"executable file \`runc\` not found"*|*"runc"*"not found"*)
            echo "runc is missing: apt-get install runc" ;;
        *"aardvark"*)
            echo "aardvark-dns is missing: apt-get install aardvark-dns" ;;
        *"image not known"*|*"no such image"*)
            echo "the lab's base image $image is missing: run scripts/build_base_image.sh (make image)" ;;
        *"systemd"*"cgroup"*|*"cgroup_manager"*)
            echo "this machine's PID 1 is not systemd: cgroup_manager = \"cgroupfs\" in lab/containers.conf, CONTAINERS_CONF=$CONTAINERS_CONF" ;;
        *"command not found"*|*"No such file or directory"*)
            echo "podman itself is missing: apt-get install podman" ;;
        *)
            echo "unknown: read podman's message above" ;;
    esac
}

# `smoke_podman.sh --hint MESSAGE` prints the hint alone (for the unit tests).
if [ "${1:-}" = "--hint" ]; then
    hint "${2:-}"
    exit 0
fi

fail() {
    echo "make setup: the podman smoke check failed at: $1" >&2
    echo "$2" | tail -5 | sed 's/^/    podman: /' >&2
    echo "make setup: likely cause: $(hint "$2")" >&2
    exit 1
}

cleanup() { "$podman" network rm -f "$net" >/dev/null 2>&1 || true; }
trap cleanup EXIT

command -v "$podman" >/dev/null 2>&1 || fail "finding podman" "$podman: command not found"
out=$("$podman" network create --internal --ipv6 --subnet "$v4" --subnet "$v6" "$net" 2>&1) \
    || fail "creating a dual-stack network" "$out"
out=$("$podman" run --rm --network "$net" "$image" ip -o addr show scope global 2>&1) \
    || fail "starting a container on it" "$out"
echo "$out" | grep -q ' inet 10\.254\.253\.' || fail "checking the container's IPv4 address" "$out"
echo "$out" | grep -q ' inet6 fd00:254:253:' || fail "checking the container's IPv6 address" "$out"
echo "podman smoke check passed: a container on a dual-stack bridge network got IPv4 and IPv6 addresses"
