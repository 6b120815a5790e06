# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filters for the firewall role: allowlist validation and nftables rendering.

The logic lives in module_utils/airgap_nft.py (netaddr-based); these are thin
wrappers that turn its FirewallConfigError (which lists *every* problem, each
naming the variable, index, entry name and field) into one AnsibleFilterError,
so a bad inventory fails in the role's validate step before any host changes.

Typical use in a role::

    _fw_egress: "{{ firewall_egress_allow | firewall_normalize_egress(firewall_allow_any,
                    firewall_allow_any_reason) }}"
    _fw_ingress: "{{ firewall_ingress_allow | firewall_normalize_ingress }}"
    _fw_content: "{{ _fw_egress | firewall_render(_fw_ingress, {'priority': -10}) }}"
    _fw_admitted: "{{ _fw_ingress | firewall_connection_admitted(client_ip, server_port) }}"
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.airgap_nft import (
        FirewallConfigError, admitting_entry, connection_admitted, content_hash,
        normalize_egress, normalize_forward, normalize_ingress, render, scope_to_zones, verify_content_hash)
except ImportError:  # run outside Ansible's plugin loader (plain python, docs tools)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "module_utils"))
    from airgap_nft import (  # noqa: E402
        FirewallConfigError, admitting_entry, connection_admitted, content_hash,
        normalize_egress, normalize_forward, normalize_ingress, render, scope_to_zones, verify_content_hash)


def _wrap(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except FirewallConfigError as exc:
        raise AnsibleFilterError(str(exc))


def firewall_normalize_egress(entries, allow_any=False, allow_any_reason="", var="firewall_egress_allow"):
    """Validate and normalise firewall_egress_allow (see airgap_nft.normalize_egress)."""
    return _wrap(normalize_egress, entries, allow_any, allow_any_reason, var)


def firewall_normalize_ingress(entries, allow_any=False, allow_any_reason="", var="firewall_ingress_allow"):
    """Validate and normalise firewall_ingress_allow (see airgap_nft.normalize_ingress)."""
    return _wrap(normalize_ingress, entries, allow_any, allow_any_reason, var)


def firewall_normalize_forward(entries, allow_any=False, allow_any_reason="", var="firewall_forward_allow"):
    """Validate and normalise routed-traffic allow entries {name, src, dest, proto, ports}."""
    return _wrap(normalize_forward, entries, allow_any, allow_any_reason, var)


def firewall_scope_zones(entries_norm, services, interface_roles):
    """Bind entries of zone-scoped services (SSH, model API, mirror) to their VLAN zone (see scope_to_zones)."""
    return _wrap(scope_to_zones, entries_norm, services, interface_roles)


def firewall_render(egress_norm, ingress_norm, options=None):
    """Render the full nftables table text from normalised lists and options."""
    return _wrap(render, egress_norm, ingress_norm, options)


def firewall_connection_admitted(ingress_norm, client_ip, server_port, interface=None, interface_roles=None):
    """Lockout guard: does the ingress allowlist admit a new TCP connection client_ip -> server_port?"""
    return _wrap(connection_admitted, ingress_norm, client_ip, server_port, interface, interface_roles)


def firewall_admitting_entry(ingress_norm, client_ip, server_port, interface=None, interface_roles=None):
    """Name of the ingress entry admitting the connection ('loopback' for loopback), or None."""
    return _wrap(admitting_entry, ingress_norm, client_ip, server_port, interface, interface_roles)


def firewall_content_hash(text):
    """Recompute the content-sha256 of a rendered ruleset text."""
    return content_hash(text)


def firewall_content_hash_ok(text):
    """True if the text's content-sha256 stamp matches its content."""
    return verify_content_hash(text)[0]


class FilterModule(object):
    """Firewall allowlist filters."""

    def filters(self):
        return {
            "firewall_normalize_egress": firewall_normalize_egress,
            "firewall_normalize_ingress": firewall_normalize_ingress,
            "firewall_normalize_forward": firewall_normalize_forward,
            "firewall_scope_zones": firewall_scope_zones,
            "firewall_render": firewall_render,
            "firewall_connection_admitted": firewall_connection_admitted,
            "firewall_admitting_entry": firewall_admitting_entry,
            "firewall_content_hash": firewall_content_hash,
            "firewall_content_hash_ok": firewall_content_hash_ok,
        }
