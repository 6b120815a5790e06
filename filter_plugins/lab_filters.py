# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the podman lab (lab only): topology validation and podman run arguments.

Kept in Python so that the lab's rules are unit-tested, not spread over Jinja.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import os
import re

NETWORK_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NODES = 50
MIRROR_NAME = "mirror.lab.internal"


def lab_topology_errors(nodes_requested, networks_spec, hosts, hostvars, profile_known=True, profile=""):
    """Return a list of human-readable errors in the lab topology (empty when valid)."""
    errors = []
    if not profile_known:
        return ["AIRGAP_LAB_PROFILE=%r is not a profile in lab/topology.yml" % profile]
    try:
        count = int(str(nodes_requested).strip())
    except ValueError:
        count = None
    if count is None or not 1 <= count <= MAX_NODES:
        errors.append("the GPU node count (NODES= / AIRGAP_LAB_NODES) must be a whole number from 1 to %d, got %r"
                      % (MAX_NODES, nodes_requested))
    subnets = []
    for name, spec in (networks_spec or {}).items():
        if not NETWORK_NAME_RE.match(name):
            errors.append("podman network name %r is not valid (letters, digits, '_', '.', '-')" % name)
        for key, version in (("ipv4", 4), ("ipv6", 6)):
            value = (spec or {}).get(key)
            try:
                net = ipaddress.ip_network(value, strict=True)
            except (TypeError, ValueError) as exc:
                errors.append("network %s: %s %r is not a valid subnet (%s)" % (name, key, value, exc))
                continue
            if net.version != version:
                errors.append("network %s: %s %r is not an IPv%d subnet" % (name, key, value, version))
                continue
            subnets.append((name, net))
    for i, (name_a, net_a) in enumerate(subnets):
        for name_b, net_b in subnets[i + 1:]:
            if net_a.version == net_b.version and net_a.overlaps(net_b):
                errors.append("networks %s and %s overlap (%s, %s)" % (name_a, name_b, net_a, net_b))
    for host in hosts:
        for net in hostvars[host].get("lab_networks", []):
            if net["name"] not in (networks_spec or {}):
                errors.append("host %s is attached to unknown podman network %r (known: %s)"
                              % (host, net["name"], ", ".join(sorted(networks_spec or {})) or "none"))
    return errors


def lab_subnet_conflicts(networks_spec, routes, protected):
    """Errors for lab subnets that would capture the controller's own traffic.

    routes: `ip -j route` / `ip -6 -j route` entries of the controller;
    protected: addresses the controller itself needs (DNS servers, package
    registries). A lab bridge on an overlapping subnet would hijack them.
    Routes whose destination is exactly a lab subnet are the lab's own bridges
    from an earlier run and are not conflicts.
    """
    errors = []
    lab_nets = []
    for name, spec in (networks_spec or {}).items():
        for key in ("ipv4", "ipv6"):
            try:
                lab_nets.append((name, ipaddress.ip_network((spec or {}).get(key), strict=False)))
            except (TypeError, ValueError):
                continue  # reported by lab_topology_errors
    own = set(str(net) for _, net in lab_nets)
    for route in routes or []:
        dst = route.get("dst")
        if not dst or dst == "default" or dst in own:
            continue
        try:
            rnet = ipaddress.ip_network(dst if "/" in dst else dst + ("/128" if ":" in dst else "/32"), strict=False)
        except ValueError:
            continue
        if rnet.is_link_local or rnet.is_multicast:
            continue
        for name, net in lab_nets:
            if net.version == rnet.version and net.overlaps(rnet):
                errors.append("lab network %s (%s) overlaps the controller's route to %s via %s; choose another subnet "
                              "in lab/topology.yml" % (name, net, dst, route.get("dev", "?")))
    for addr in protected or []:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            continue
        for name, net in lab_nets:
            if ip.version == net.version and ip in net:
                errors.append("lab network %s (%s) contains %s, an address the controller needs (DNS or package "
                              "registry); choose another subnet in lab/topology.yml" % (name, net, addr))
    return errors


def _mirror_entries(hostvars, mirrors):
    entries = []
    for mirror in mirrors:
        for net in hostvars[mirror]["lab_networks"]:
            for key in ("ipv4", "ipv6"):
                if net.get(key):
                    entries.append("--add-host=%s:%s" % (MIRROR_NAME, net[key]))
    return entries


def lab_run_args(host, hostvars, groups, image, profile, mirror_www):
    """Return the `podman run` arguments for one lab host.

    GPU nodes run podman themselves (as a real GPU host runs vLLM), which needs
    --privileged and the host's cgroup tree (ENVIRONMENT.md). The mirror and
    the canary get only what they need.
    """
    hv = hostvars[host]
    args = ["--detach", "--name", hv["lab_container"], "--hostname", host,
            "--systemd=always", "--dns=none", "--label", "airgap.lab=%s" % profile,
            "--label", "airgap.host=%s" % host]
    for net in hv["lab_networks"]:
        opts = ["ip=%s" % net["ipv4"]] if net.get("ipv4") else []
        opts += ["ip6=%s" % net["ipv6"]] if net.get("ipv6") else []
        args.append("--network=%s:%s" % (net["name"], ",".join(opts)))
    if host in groups.get("gpu_nodes", []):
        args += ["--privileged", "--cgroupns=host", "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw"]
        args += _mirror_entries(hostvars, groups.get("mirrors", []))
    elif host in groups.get("mirrors", []):
        # The parent folder is mounted, not www itself: build_mirror.sh replaces
        # www with a rename, which a running mirror then sees at once.
        args += ["--volume=%s:/srv/mirror:ro" % os.path.dirname(mirror_www.rstrip("/"))]
    else:
        # The canary records packets through an AF_PACKET socket.
        args += ["--cap-add=NET_RAW"]
    args += [image, "/sbin/init"]
    return args


def lab_spec_hash(args):
    """A short hash of a container's run arguments, kept as a label to detect change."""
    return hashlib.sha256("\0".join(args).encode("utf-8")).hexdigest()[:16]


# The canary's services (lab/canary/airgap-canary.py): what each probe sends.
CANARY_SERVICES = (
    {"proto": "tcp", "port": 80},
    {"proto": "tcp", "port": 443},
    {"proto": "dns", "port": 53},
    {"proto": "udp", "port": 123},
    {"proto": "icmp"},
)


def lab_canary_targets(canary_vars, canary_name="canary"):
    """egress_probe targets for every canary service on every canary address."""
    targets = []
    for net in canary_vars["lab_networks"]:
        for key in ("ipv4", "ipv6"):
            if not net.get(key):
                continue
            for svc in CANARY_SERVICES:
                target = dict(svc, dest=net[key])
                label = svc["proto"] + ("/%d" % svc["port"] if "port" in svc else "")
                target["name"] = "%s %s %s" % (canary_name, net[key], label)
                targets.append(target)
    return targets


def _record_matches(record, target):
    """Does a canary packet record show the probe described by target?"""
    if record.get("dst") != target["dest"]:
        return False
    proto = target["proto"]
    if proto == "icmp":
        return record.get("proto") in ("icmp", "icmpv6")
    wire = "udp" if proto in ("udp", "dns") else "tcp"
    return record.get("proto") == wire and record.get("port") == target.get("port")


def lab_canary_seen(record_lines, sources, targets):
    """Split targets into those the canary recorded from any of `sources` and those it did not.

    record_lines are the canary's JSON lines; sources the probing host's addresses.
    Returns {"seen": [target names], "unseen": [target names], "records": n}.
    """
    import json
    records = []
    for line in record_lines:
        line = line.strip()
        if line:
            rec = json.loads(line)
            if rec.get("src") in sources:
                records.append(rec)
    seen, unseen = [], []
    for target in targets:
        (seen if any(_record_matches(r, target) for r in records) else unseen).append(target["name"])
    return {"seen": seen, "unseen": unseen, "records": len(records)}


def lab_host_addresses(host_vars):
    """Every IPv4 and IPv6 address of a lab host, from its inventory entry."""
    return [net[k] for net in host_vars.get("lab_networks", []) for k in ("ipv4", "ipv6") if net.get(k)]


KEY_LINE_RE = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$")


def lab_known_hosts(results, hostvars):
    """known_hosts text for the GPU nodes, from the lab_env admin task's results.

    Each result's item is a node name and its stdout the node's own host keys
    (after a "configured=" line). Each key is recorded for the node's management
    addresses only, the ones Ansible connects to. Sorted, so an unchanged lab
    writes the same file. A node that printed no key is an error: known_hosts
    without it would make every later SSH connection fail far from the cause.
    """
    lines = []
    for result in results:
        host = result["item"]
        mgmt = hostvars[host]["lab_networks"][0]
        addresses = ",".join(a for a in (mgmt.get("ipv4"), mgmt.get("ipv6")) if a)
        keys = [line.strip() for line in result.get("stdout_lines", []) if KEY_LINE_RE.match(line.strip())]
        if not keys:
            raise ValueError("lab node %s printed no SSH host key" % host)
        for key in keys:
            keytype, blob = key.split()[:2]
            lines.append("%s %s %s" % (addresses, keytype, blob))
    return "\n".join(sorted(lines)) + "\n"


class FilterModule(object):
    """Lab topology filters."""

    def filters(self):
        return {
            "lab_topology_errors": lab_topology_errors,
            "lab_subnet_conflicts": lab_subnet_conflicts,
            "lab_run_args": lab_run_args,
            "lab_spec_hash": lab_spec_hash,
            "lab_canary_targets": lab_canary_targets,
            "lab_canary_seen": lab_canary_seen,
            "lab_host_addresses": lab_host_addresses,
            "lab_known_hosts": lab_known_hosts,
        }
