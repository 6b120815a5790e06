# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the network_vlan role: validation, rendering, firewall zones, NET-VLAN evidence.

The logic lives in module_utils/airgap_vlan.py (standard library only); these
wrappers turn its errors into AnsibleFilterError so that a task fails with
every problem listed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.airgap_vlan import (
        VlanConfigError, check_against_host, interface_roles, normalize, render, vlan_observations, zones)
    from ansible.module_utils.airgap_evidence import make_record
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_vlan import (  # noqa: E402
        VlanConfigError, check_against_host, interface_roles, normalize, render, vlan_observations, zones)
    from airgap_evidence import make_record  # noqa: E402

ROLE = "network_vlan"
CONTROL = "NET-VLAN"


def _norm(entries):
    """Validate the raw declaration (network_vlan_interfaces as written)."""
    try:
        return normalize(entries)
    except VlanConfigError as exc:
        raise AnsibleFilterError(str(exc))


def network_vlan_errors(entries, var="network_vlan_interfaces"):
    """Every validation problem of ``entries`` as a list of messages (empty: valid)."""
    try:
        normalize(entries, var)
    except VlanConfigError as exc:
        return exc.errors
    return []


def network_vlan_normalize(entries):
    """Validated, normalised entries (raises listing every problem)."""
    return _norm(entries)


def network_vlan_host_errors(entries, facts):
    """Problems of the declaration on this host (parents, MTU, names); see check_against_host."""
    return check_against_host(_norm(entries), facts)


def network_vlan_render(entries, provider, parent_files=None):
    """Files [{path, content, mode, interfaces, kind}] for ``provider``."""
    try:
        return render(_norm(entries), provider, parent_files or {})
    except VlanConfigError as exc:
        raise AnsibleFilterError(str(exc))


def network_vlan_recreate(entries, facts):
    """Declared VLANs whose live link has another id, parent or kind: they must be deleted and made anew."""
    links = (facts or {}).get("links") or {}
    out = []
    for v in _norm(entries):
        live = links.get(v["name"])
        if live and live.get("kind") == "vlan" and (live.get("vlan_id") != v["id"] or live.get("parent") != v["parent"]):
            out.append(v["name"])
    return out


def network_vlan_zones(entries):
    """{purpose: {interfaces, subnets, addresses, vlan_ids}}: the firewall role's firewall_zones.

    Invalid input gives {} here: the network_vlan role's own validation is
    where it fails, with messages; the firewall must not fail on its behalf.
    """
    try:
        return zones(normalize(entries or []))
    except VlanConfigError:
        return {}


def network_vlan_interface_roles(entries):
    """{ifname: purpose}; {} for invalid input (see network_vlan_zones)."""
    try:
        return interface_roles(normalize(entries or []))
    except VlanConfigError:
        return {}


def network_vlan_zone_roles(zone_map):
    """{ifname: purpose} from a zones mapping (the firewall's firewall_interface_roles)."""
    out = {}
    for purpose, zone in sorted((zone_map or {}).items()):
        for ifname in (zone or {}).get("interfaces") or []:
            out[ifname] = purpose
    return out


def network_vlan_evidence(entries, facts):
    """The NET-VLAN record for this host from the declaration and network_vlan_facts."""
    status, evidence = vlan_observations(_norm(entries), facts)
    return [make_record(CONTROL, ROLE, status, evidence)]


class FilterModule(object):
    """network_vlan filters."""

    def filters(self):
        return {
            "network_vlan_errors": network_vlan_errors,
            "network_vlan_normalize": network_vlan_normalize,
            "network_vlan_host_errors": network_vlan_host_errors,
            "network_vlan_render": network_vlan_render,
            "network_vlan_recreate": network_vlan_recreate,
            "network_vlan_zones": network_vlan_zones,
            "network_vlan_interface_roles": network_vlan_interface_roles,
            "network_vlan_zone_roles": network_vlan_zone_roles,
            "network_vlan_evidence": network_vlan_evidence,
        }
