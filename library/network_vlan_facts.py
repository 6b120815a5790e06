#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module network_vlan_facts: read the host's links, 802.1Q support and VLAN files (read-only)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: network_vlan_facts
short_description: Read links, addresses, 802.1Q support and the network_vlan role's files (read-only)
description:
  - >-
    Reads the live state the network_vlan role validates against and verifies: every link with its
    kind, VLAN id, protocol, parent, operational state, MTU and addresses (C(ip -j -d link show),
    C(ip -j addr show)), the main routing table, and whether the kernel can have 802.1Q interfaces at
    all (C(/proc/net/vlan), C(/sys/module/8021q), the C(8021q) module under C(/lib/modules/<release>)).
  - >-
    For each parent, the C(.network) file systemd-networkd applies to it (asked with C(networkctl status)
    when networkd runs, else found by the C([Match] Name=) rules of the files in C(/etc), C(/run) and
    C(/usr/lib)), so the role can add its C(VLAN=) lines as a drop-in to that file.
  - >-
    With O(controller_address), the interface the host uses to reach the controller (C(ip -j route get)):
    the one a reload must not cut without confirm-or-rollback.
  - Changes nothing; runs the same in check mode.
version_added: "1.0.0"
author: contributors to this project
options:
  parents:
    description: Parent interfaces whose networkd C(.network) file to look up.
    type: list
    elements: str
    default: []
  controller_address:
    description: The controller's IP address (field 1 of C(SSH_CONNECTION)); empty to skip.
    type: str
    default: ""
  owned_dirs:
    description: Folders searched for the role's own files (project prefix and marker).
    type: list
    elements: path
    default: [/etc/systemd/network, /etc/NetworkManager/system-connections]
attributes:
  check_mode:
    support: full
notes:
  - Needs iproute2 with JSON output (C(ip -j)); Debian 12's has it.
"""

EXAMPLES = r"""
- name: Read the live VLAN state
  network_vlan_facts:
    parents: [eth1]
    controller_address: 10.0.2.2
  register: vlan_facts
"""

RETURN = r"""
links:
  description: Every link by name.
  returned: always
  type: dict
  sample: {mgmt: {kind: vlan, vlan_id: 10, vlan_protocol: 802.1Q, parent: eth1, operstate: UP,
                  flags: [BROADCAST, MULTICAST, UP, LOWER_UP], mtu: 1500, addresses: [10.10.0.21/24]}}
routes:
  description: Main-table routes, IPv4 then IPv6, each C({dst, gateway, dev}).
  returned: always
  type: list
  elements: dict
vlan_support:
  description: C({supported, reason, kernel_release}).
  returned: always
  type: dict
  sample: {supported: false, kernel_release: 6.1.0-40-amd64,
           reason: "kernel 6.1.0-40-amd64 has no 802.1Q support: /proc/net/vlan is absent, ..."}
proc_net_vlan:
  description: The text of C(/proc/net/vlan/config), or null when absent.
  returned: always
  type: str
parent_network_files:
  description: Parent name to the C(.network) file that networkd applies to it (null where none does).
  returned: always
  type: dict
controller_interface:
  description: Interface of the route to O(controller_address); empty when not asked or not found.
  returned: always
  type: str
networkd_active:
  description: Whether C(systemd-networkd.service) is active.
  returned: always
  type: bool
networkmanager_active:
  description: Whether C(NetworkManager.service) is active.
  returned: always
  type: bool
owned_files:
  description: Files under O(owned_dirs) that carry the role's prefix and marker (sorted paths).
  returned: always
  type: list
  elements: str
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_vlan import (
    network_file_for, owned_file, owned_paths, parse_links, parse_routes, vlan_support)

NETWORK_DIRS = ("/etc/systemd/network", "/run/systemd/network", "/usr/lib/systemd/network", "/lib/systemd/network")


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _module_available(release):
    """Is 8021q built in or present as a module for the running kernel?"""
    base = "/lib/modules/%s" % release
    builtin = _read(os.path.join(base, "modules.builtin")) or ""
    if "8021q.ko" in builtin:
        return True
    folder = os.path.join(base, "kernel", "net", "8021q")
    return os.path.isdir(folder) and any(f.startswith("8021q.ko") for f in os.listdir(folder))


def _network_files():
    out = []
    for folder in NETWORK_DIRS:
        if not os.path.isdir(folder):
            continue
        for base in os.listdir(folder):
            if base.endswith(".network"):
                path = os.path.join(folder, base)
                out.append((base, path, _read(path)))
    return out


def _networkctl_file(run, ifname):
    rc, out, _ = run(["networkctl", "status", "--no-pager", "--lines=0", ifname])
    if rc != 0:
        return None
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip() == "Network File":
            value = value.strip()
            return value if value.startswith("/") else None
    return None


def _owned(dirs):
    return owned_paths(dirs, _read)


def _active(run, unit):
    rc, _, _ = run(["systemctl", "is-active", "--quiet", unit])
    return rc == 0


def gather(run, parents, controller_address, owned_dirs):
    """Everything the module returns; ``run`` is argv -> (rc, out, err)."""
    rc, link_json, err = run(["ip", "-j", "-d", "link", "show"])
    if rc != 0:
        raise RuntimeError("ip -j -d link show failed: %s" % err.strip())
    _, addr_json, _ = run(["ip", "-j", "addr", "show"])
    routes = []
    for fam in ("-4", "-6"):
        rc, out, _ = run(["ip", "-j", fam, "route", "show", "table", "main"])
        if rc == 0:
            routes += parse_routes(out)
    release = platform.release()
    proc = _read("/proc/net/vlan/config")
    support = vlan_support(proc is not None, os.path.isdir("/sys/module/8021q"), _module_available(release), release)
    support["kernel_release"] = release
    networkd = _active(run, "systemd-networkd.service")
    files = None
    parent_files = {}
    for parent in parents:
        path = _networkctl_file(run, parent) if networkd else None
        if path is None:
            files = _network_files() if files is None else files
            path = network_file_for(parent, files)
        # A drop-in of the role's own parent file would be the role editing itself.
        if path and owned_file(path, _read(path)):
            path = None
        parent_files[parent] = path
    controller_if = ""
    if controller_address:
        rc, out, _ = run(["ip", "-j", "route", "get", controller_address])
        if rc == 0:
            import json
            got = json.loads(out or "[]")
            controller_if = (got[0].get("dev") if got else "") or ""
    return {
        "links": parse_links(link_json, addr_json or "[]"),
        "routes": routes,
        "vlan_support": support,
        "proc_net_vlan": proc,
        "parent_network_files": parent_files,
        "controller_interface": controller_if,
        "networkd_active": networkd,
        "networkmanager_active": _active(run, "NetworkManager.service"),
        "owned_files": _owned(owned_dirs),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            parents=dict(type="list", elements="str", default=[]),
            controller_address=dict(type="str", default=""),
            owned_dirs=dict(type="list", elements="path",
                            default=["/etc/systemd/network", "/etc/NetworkManager/system-connections"]),
        ),
        supports_check_mode=True,
    )

    def run(argv):
        return module.run_command(list(argv))

    try:
        result = gather(run, module.params["parents"], module.params["controller_address"].strip(),
                        module.params["owned_dirs"])
    except (RuntimeError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
