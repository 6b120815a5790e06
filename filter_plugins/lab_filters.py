# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the podman lab (lab only): topology validation and podman run arguments.

Kept in Python so that the lab's rules are unit-tested, not spread over Jinja.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
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
        args += ["--volume=%s:/srv/mirror:ro" % mirror_www]
    else:
        # The canary records packets through an AF_PACKET socket.
        args += ["--cap-add=NET_RAW"]
    args += [image, "/sbin/init"]
    return args


def lab_spec_hash(args):
    """A short hash of a container's run arguments, kept as a label to detect change."""
    return hashlib.sha256("\0".join(args).encode("utf-8")).hexdigest()[:16]


class FilterModule(object):
    """Lab topology filters."""

    def filters(self):
        return {
            "lab_topology_errors": lab_topology_errors,
            "lab_run_args": lab_run_args,
            "lab_spec_hash": lab_spec_hash,
        }
