# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-VLAN firewall policy: network_vlan's zones consumed by the firewall's renderer.

The zones are data (network_vlan_zones / network_vlan_zone_roles); the
firewall scopes services to them (firewall_scope_zones) and isolates the VLAN
interfaces in its forward chain. Without VLANs the ruleset must be
byte-identical to the one rendered before zones existed: the hashes below were
taken from the renderer before this feature was added. The output rules for
TCP flows picked up mid-stream (added later, for a first load over SSH) are
left out of that comparison by `_before_midstream`; their own tests are in
test_firewall_midstream.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

import pytest

from ansible.module_utils import airgap_nft as n
from network_vlan_filters import network_vlan_interface_roles, network_vlan_zone_roles, network_vlan_zones

EGRESS = [{"name": "model-mirror", "dest": "10.89.0.10/32", "proto": "tcp", "ports": [80, 443]},
          {"name": "ntp", "dest": "fd00:89::1", "proto": "udp", "ports": [123]},
          {"name": "ping", "dest": "10.89.0.0/24", "proto": "icmp"}]
INGRESS = [{"name": "ssh-mgmt", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22]},
           {"name": "api", "src": "fd00:20::/64", "proto": "tcp", "ports": [8000]}]
FORWARD = [{"name": "f", "src": "10.1.0.0/24", "dest": "10.2.0.0/24", "proto": "tcp", "ports": [80]}]
SERVICES = [{"name": "ssh", "zone": "management", "direction": "ingress", "proto": "tcp", "ports": [22]},
            {"name": "model-api", "zone": "inference", "direction": "ingress", "proto": "tcp", "ports": [8000]},
            {"name": "mirror", "zone": ["mirror", "storage"], "direction": "egress", "proto": "tcp", "ports": [80, 443]}]
VLANS = [{"id": 10, "name": "mgmt", "parent": "eth1", "purpose": "management", "addresses": ["10.10.0.21/24"]},
         {"id": 20, "name": "inference", "parent": "eth1", "purpose": "inference", "addresses": ["10.20.0.21/24"]},
         {"id": 30, "name": "storage", "parent": "eth1", "purpose": "storage", "addresses": ["10.30.0.21/24"]}]

# sha256 of the rendered text before zones existed (same inputs as below).
BEFORE = {
    "plain": "03dd7377f41d42b5b33ad0709ea0ca1b2010d3951fb869c2002b2bfb444537c3",
    "forward_nolog": "a222b8a5e53d4c34b0ab76eaa4fb6bd1a1c1af53c682f04211810425ad65e050",
    "empty": "74cc8db40adc66ae0977fa2dc464fdcfde1c68f5f0def5a6a9f2e66a365977a8",
}


def _sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _before_midstream(text):
    """The text as the renderer wrote it before the mid-stream rules, restamped."""
    kept = "".join(line for line in text.splitlines(True) if "picked up mid-stream" not in line)
    return n.stamp_hash(n._HASH_RE.sub(lambda m: m.group(1) + n.HASH_PLACEHOLDER, kept))


def _render_as_the_role_does(vlans, egress=EGRESS, ingress=INGRESS, extra=None):
    """What roles/firewall/tasks/validate.yml does with firewall_zones' defaults."""
    roles = network_vlan_zone_roles(network_vlan_zones(vlans))
    eg = n.scope_to_zones(n.normalize_egress(egress), SERVICES, roles)
    ing = n.scope_to_zones(n.normalize_ingress(ingress), SERVICES, roles)
    opts = {"interface_roles": roles, "isolate_interfaces": sorted(roles)}
    opts.update(extra or {})
    return n.render(eg, ing, opts), ing, roles


def test_no_vlans_renders_byte_identical_to_before_zones():
    text, _, roles = _render_as_the_role_does([])
    assert roles == {}
    assert _sha(_before_midstream(text)) == BEFORE["plain"]
    text, _, _ = _render_as_the_role_does([], extra={"forward": n.normalize_forward(FORWARD), "log": False})
    assert _sha(_before_midstream(text)) == BEFORE["forward_nolog"]
    assert _sha(n.render([], [], {"interface_roles": {}, "isolate_interfaces": []})) == BEFORE["empty"]


def test_zones_are_data_from_the_vlan_declaration():
    zones = network_vlan_zones(VLANS)
    assert zones["management"]["interfaces"] == ["mgmt"] and zones["storage"]["subnets"] == ["10.30.0.0/24"]
    assert network_vlan_zone_roles(zones) == network_vlan_interface_roles(VLANS) == {
        "mgmt": "management", "inference": "inference", "storage": "storage"}
    # invalid declarations give no zones here; the network_vlan role's validation is where they fail
    assert network_vlan_zones([{"id": 0}]) == {}


def test_ssh_only_on_management_api_only_on_inference_mirror_only_on_storage():
    text, _, _ = _render_as_the_role_does(VLANS)
    assert '"mgmt" . 10.10.0.0/24 . 22' in text
    assert 'iifname . ip saddr . tcp dport @ingress4_tcp_if accept' in text
    assert '"inference" . fd00:20::/64 . 8000' in text
    assert '"storage" . 10.89.0.10 . 80' in text and '"storage" . 10.89.0.10 . 443' in text
    assert 'oifname . ip daddr . tcp dport @egress4_tcp_if accept' in text
    # the unscoped sets no longer hold these services
    assert "set ingress4_tcp {" not in text and "set egress4_tcp {" not in text
    # NTP is no zoned service and stays unscoped
    assert "set egress6_udp {" in text


def test_forwarding_between_vlans_is_dropped_first():
    text, _, _ = _render_as_the_role_does(VLANS, extra={"forward": n.normalize_forward(FORWARD)})
    fwd = text.split("chain forward {", 1)[1]
    first_rule = fwd.splitlines()[2].strip()
    assert first_rule == ('iifname { "inference", "mgmt", "storage" } oifname { "inference", "mgmt", "storage" } '
                          'drop comment "no forwarding between VLANs"')


def test_explicit_zone_field_binds_an_entry():
    ing = n.normalize_ingress([{"name": "metrics", "src": "10.10.0.0/24", "proto": "tcp", "ports": [9100],
                                "zone": "management"}])
    assert ing[0]["purposes"] == ["management"]
    text = n.render([], ing, {"interface_roles": {"mgmt": "management"}})
    assert '"mgmt" . 10.10.0.0/24 . 9100' in text
    with pytest.raises(n.FirewallConfigError):
        n.normalize_ingress([{"name": "x", "src": "10.0.0.0/8", "proto": "tcp", "ports": [1], "zone": "Bad Zone"}])


def test_an_entry_mixing_zoned_and_other_ports_is_refused():
    roles = {"mgmt": "management"}
    with pytest.raises(n.FirewallConfigError) as exc:
        n.scope_to_zones(n.normalize_ingress([{"name": "mixed", "src": "10.10.0.0/24", "proto": "tcp",
                                               "ports": [22, 80]}]), SERVICES, roles)
    assert "firewall_ingress_allow[0] 'mixed': ports 22 belong to the ssh service" in str(exc.value)


def test_a_service_whose_zone_is_not_declared_is_left_alone():
    ing = n.normalize_ingress(INGRESS)
    assert n.scope_to_zones(ing, SERVICES, {"inference": "inference"})[0]["purposes"] == []


def test_lockout_guard_knows_the_interface():
    _, ing, roles = _render_as_the_role_does(VLANS)
    assert n.connection_admitted(ing, "10.10.0.5", 22, "mgmt", roles)
    # the same client over the inference VLAN, or an unknown interface, is not admitted
    assert not n.connection_admitted(ing, "10.10.0.5", 22, "inference", roles)
    assert not n.connection_admitted(ing, "10.10.0.5", 22, None, roles)
