# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One meaning of an allowlist entry (module_utils/airgap_allowlist.py), used by the
firewall's lockout guard, the model server's check and the monitor's contradiction check."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from ansible.module_utils import airgap_allowlist as al
from ansible.module_utils import airgap_monitor as mon
from ansible.module_utils import airgap_nft as nft
from ansible.module_utils import airgap_vllm

SSH = {"name": "ssh-mgmt", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22]}
ROLES = {"mgmt": "management", "infer": "inference"}


def test_an_entry_admits_its_network_protocol_and_port_only():
    assert al.admitting([SSH], "ingress", "10.10.0.5", "tcp", 22) == "ssh-mgmt"
    assert al.admitting([SSH], "ingress", "10.10.1.5", "tcp", 22) is None
    assert al.admitting([SSH], "ingress", "10.10.0.5", "udp", 22) is None
    assert al.admitting([SSH], "ingress", "10.10.0.5", "tcp", 23) is None
    assert al.admitting([SSH], "ingress", "::ffff:10.10.0.5", "tcp", 22) is None  # the caller maps v4-in-v6


def test_icmp_towards_ipv6_is_icmpv6_on_the_wire():
    ping = {"name": "ping6", "dest": "fd00::/64", "proto": "icmp"}
    assert al.admitting([ping], "egress", "fd00::1", "icmpv6", None) == "ping6"
    assert al.admitting([ping], "egress", "fd00::1", "icmp", None) == "ping6"


def test_a_bound_entry_admits_only_on_its_zone_and_never_when_in_doubt():
    bound = dict(SSH, purposes=["management"])
    assert al.admitting([bound], "ingress", "10.10.0.5", "tcp", 22, "mgmt", ROLES) == "ssh-mgmt"
    assert al.admitting([bound], "ingress", "10.10.0.5", "tcp", 22, "infer", ROLES) is None
    assert al.admitting([bound], "ingress", "10.10.0.5", "tcp", 22, None, ROLES) is None


def test_model_clients_must_be_admitted_on_the_inference_zone():
    api = {"name": "api", "src": "10.20.0.0/24", "proto": "tcp", "ports": [8000]}
    assert al.admitting_from_network([api], "ingress", "10.20.0.0/24", "tcp", 8000, zone="inference") == ["api"]
    wrong = dict(api, zone="management")
    assert al.admitting_from_network([wrong], "ingress", "10.20.0.0/24", "tcp", 8000, zone="inference") == []
    right = dict(api, zone="inference")
    assert al.admitting_from_network([right], "ingress", "10.20.0.0/24", "tcp", 8000, zone="inference") == ["api"]


def test_the_model_server_check_no_longer_ignores_zones():
    cfg = {"firewall_ingress_allow": [{"name": "api", "src": "10.20.0.0/24", "proto": "tcp", "ports": [8000],
                                       "zone": "management"}],
           "firewall_egress_allow": [{"name": "b", "dest": "10.213.0.0/24", "proto": "tcp", "ports": [8000]}],
           "container_port": 8000}
    errors = []
    airgap_vllm._validate_firewall(cfg, [{"name": "m", "port": 8000}], ["10.213.0.10"],
                                   [ipaddress.ip_network("10.20.0.0/24")], errors)
    assert len(errors) == 1 and "on the inference zone" in errors[0]


ENTRY = st.fixed_dictionaries({
    "name": st.sampled_from(["a", "b", "c"]),
    "dest": st.sampled_from(["10.0.0.0/8", "10.1.2.3/32", "10.1.0.0/16", "fd00::/8", "fd00::1/128", "192.0.2.0/24"]),
    "proto": st.sampled_from(["tcp", "udp", "icmp"]),
    "ports": st.lists(st.integers(1, 6), max_size=3),
})
TARGET = st.fixed_dictionaries({
    "dest": st.sampled_from(["10.1.2.3", "10.9.9.9", "fd00::1", "fd00::2", "192.0.2.7", "203.0.113.1"]),
    "proto": st.sampled_from(["tcp", "udp", "icmp"]),
    "port": st.integers(1, 6),
})


@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY, max_size=4), st.lists(TARGET, min_size=1, max_size=3))
def test_the_monitor_calls_a_target_a_conflict_exactly_when_the_shared_meaning_admits_it(entries, targets):
    for target in targets:
        if target["proto"] == "icmp":
            target.pop("port")
    problems = mon.allowlist_conflicts(targets, entries)
    for i, target in enumerate(targets):
        addr = ipaddress.ip_address(target["dest"])
        admitted = al.admitting(entries, "egress", addr, mon._wire_proto(target, addr), mon.target_port(target))
        flagged = any(p.startswith("isolation_monitor_forbidden[%d] " % i) for p in problems)
        assert flagged == (admitted is not None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["x", "y"]),
    "src": st.sampled_from(["10.10.0.0/24", "10.10.0.5/32", "fd00:10::/64", "10.0.0.0/8"]),
    "proto": st.sampled_from(["tcp", "udp"]),
    "ports": st.lists(st.sampled_from([22, 2222, 443]), min_size=1, max_size=2, unique=True),
}), max_size=3), st.sampled_from(["10.10.0.5", "10.10.0.6", "fd00:10::5", "::ffff:10.10.0.5"]),
    st.sampled_from([22, 2222]))
def test_the_lockout_guard_and_the_shared_meaning_agree(entries, client, port):
    for index, entry in enumerate(entries):
        entry["name"] = "%s%d" % (entry["name"], index)
    normalised = nft.normalize_ingress(entries)
    guard = nft.admitting_entry(normalised, client, port)
    addr = ipaddress.ip_address(client)
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped  # sshd reports IPv4 clients of a dual-stack socket this way
    assert (guard is not None) == (al.admitting(entries, "ingress", addr, "tcp", port) is not None)


@pytest.mark.parametrize("bad", ["not-an-address", "10.0.0.0/33", None])
def test_entries_that_do_not_parse_admit_nothing(bad):
    assert al.admitting([{"name": "x", "dest": bad, "proto": "tcp", "ports": [1]}], "egress", "10.0.0.1", "tcp", 1) \
        is None
