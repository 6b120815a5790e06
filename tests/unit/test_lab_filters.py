# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for filter_plugins/lab_filters.py (the podman lab's topology rules)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import os

import pytest
import yaml

import lab_filters
from lab_filters import (
    MIRROR_NAME,
    lab_canary_seen,
    lab_canary_targets,
    lab_host_addresses,
    lab_run_args,
    lab_spec_hash,
    lab_topology_errors,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NETWORKS = {
    "airgap-internal": {"internal": True, "ipv4": "10.89.0.0/24", "ipv6": "fd00:89::/64"},
    "airgap-outside": {"internal": True, "ipv4": "203.0.113.0/24", "ipv6": "2001:db8:113::/64"},
}


def _net(name, v4, v6):
    return {"name": name, "ipv4": v4, "ipv6": v6}


def _hostvars():
    """Hostvars shaped like inventories/lab/lab_inventory.py's output for the lab profile."""
    return {
        "mirror": {"lab_container": "airgap-lab-mirror",
                   "lab_networks": [_net("airgap-internal", "10.89.0.10", "fd00:89::a")]},
        "canary": {"lab_container": "airgap-lab-canary",
                   "lab_networks": [_net("airgap-outside", "203.0.113.10", "2001:db8:113::a")]},
        "gpu-node-1": {"lab_container": "airgap-lab-gpu-node-1",
                       "lab_networks": [_net("airgap-internal", "10.89.0.21", "fd00:89::15"),
                                        _net("airgap-outside", "203.0.113.21", "2001:db8:113::15")]},
    }


GROUPS = {"gpu_nodes": ["gpu-node-1"], "mirrors": ["mirror"], "lab_outside": ["canary"]}
HOSTS = ["mirror", "canary", "gpu-node-1"]
IMAGE = "localhost/airgap-lab-base:bookworm"
WWW = "/srv/lab/www"


def _errors(nodes=2, networks=None, hosts=None, hostvars=None, **kwargs):
    return lab_topology_errors(nodes, NETWORKS if networks is None else networks,
                               HOSTS if hosts is None else hosts,
                               _hostvars() if hostvars is None else hostvars, **kwargs)


# --------------------------------------------------------------------------
# lab_topology_errors
# --------------------------------------------------------------------------

def test_valid_topology_has_no_errors():
    assert _errors() == []


@pytest.mark.parametrize("nodes", [1, "1", " 7 ", 50, "50"])
def test_node_counts_in_range_are_accepted(nodes):
    assert _errors(nodes=nodes) == []


@pytest.mark.parametrize("nodes", [0, "0", 51, "51", -1, "abc", "", None, "2.5"])
def test_bad_node_count_is_one_error_naming_the_value(nodes):
    errors = _errors(nodes=nodes)
    assert len(errors) == 1
    assert "GPU node count" in errors[0]
    assert "1 to 50" in errors[0]
    assert repr(nodes) in errors[0]


@pytest.mark.parametrize("name", ["-leading-dash", "has space", "semi;colon", "", "slash/name", ".dot"])
def test_invalid_network_name(name):
    nets = dict(NETWORKS)
    nets[name] = {"ipv4": "10.90.0.0/24", "ipv6": "fd00:90::/64"}
    errors = _errors(networks=nets)
    assert len(errors) == 1
    assert "podman network name %r is not valid" % name in errors[0]


@pytest.mark.parametrize("name", ["a", "airgap_x.y-z", "0net"])
def test_valid_network_names(name):
    nets = {name: {"ipv4": "10.90.0.0/24", "ipv6": "fd00:90::/64"}}
    hv = {"h": {"lab_networks": [_net(name, "10.90.0.2", "fd00:90::2")]}}
    assert lab_topology_errors(1, nets, ["h"], hv) == []


@pytest.mark.parametrize("key,value", [
    ("ipv4", "10.89.0.1/24"),        # host bits set
    ("ipv4", "10.89.0.0/33"),
    ("ipv4", "not-a-subnet"),
    ("ipv4", None),
    ("ipv6", "fd00:89::1/64"),       # host bits set
    ("ipv6", "fd00:zz::/64"),
    ("ipv6", None),
])
def test_bad_subnet_names_network_key_and_value(key, value):
    nets = {"airgap-internal": dict(NETWORKS["airgap-internal"], **{key: value})}
    hv = {"mirror": _hostvars()["mirror"]}
    errors = lab_topology_errors(1, nets, ["mirror"], hv)
    assert len(errors) == 1
    assert errors[0].startswith("network airgap-internal: %s %r is not a valid subnet" % (key, value))


def test_ipv4_subnet_in_ipv6_field():
    nets = {"airgap-internal": {"ipv4": "10.89.0.0/24", "ipv6": "10.90.0.0/24"}}
    errors = lab_topology_errors(1, nets, [], {})
    assert errors == ["network airgap-internal: ipv6 '10.90.0.0/24' is not an IPv6 subnet"]


def test_ipv6_subnet_in_ipv4_field():
    nets = {"airgap-internal": {"ipv4": "fd00:90::/64", "ipv6": "fd00:89::/64"}}
    errors = lab_topology_errors(1, nets, [], {})
    assert errors == ["network airgap-internal: ipv4 'fd00:90::/64' is not an IPv4 subnet"]


def test_overlapping_ipv4_subnets():
    nets = dict(NETWORKS)
    nets["airgap-outside"] = dict(NETWORKS["airgap-outside"], ipv4="10.89.0.128/25")
    errors = _errors(networks=nets)
    assert errors == ["networks airgap-internal and airgap-outside overlap (10.89.0.0/24, 10.89.0.128/25)"]


def test_overlapping_ipv6_subnets():
    nets = dict(NETWORKS)
    nets["airgap-outside"] = dict(NETWORKS["airgap-outside"], ipv6="fd00::/16")
    errors = _errors(networks=nets)
    assert len(errors) == 1
    assert "networks airgap-internal and airgap-outside overlap" in errors[0]
    assert "fd00::/16" in errors[0]


def test_adjacent_subnets_do_not_overlap():
    nets = dict(NETWORKS)
    nets["airgap-outside"] = dict(NETWORKS["airgap-outside"], ipv4="10.89.1.0/24", ipv6="fd00:89:0:1::/64")
    assert _errors(networks=nets) == []


def test_host_attached_to_unknown_network():
    hv = _hostvars()
    hv["gpu-node-1"]["lab_networks"].append(_net("airgap-typo", "10.1.0.2", None))
    errors = _errors(hostvars=hv)
    assert errors == ["host gpu-node-1 is attached to unknown podman network 'airgap-typo' "
                      "(known: airgap-internal, airgap-outside)"]


def test_host_on_network_when_no_networks_are_defined():
    errors = lab_topology_errors(1, {}, ["mirror"], _hostvars())
    assert errors == ["host mirror is attached to unknown podman network 'airgap-internal' (known: none)"]


def test_host_without_lab_networks_is_not_an_error():
    assert lab_topology_errors(1, NETWORKS, ["localhost"], {"localhost": {}}) == []


def test_unknown_profile_is_the_only_error():
    errors = lab_topology_errors("abc", {"bad name": {}}, HOSTS, _hostvars(),
                                 profile_known=False, profile="prod")
    assert errors == ["AIRGAP_LAB_PROFILE='prod' is not a profile in lab/topology.yml"]


def test_several_problems_are_all_reported():
    nets = {"bad name": {"ipv4": "10.89.0.0/24", "ipv6": "fd00:89::/64"},
            "airgap-internal": {"ipv4": "10.89.0.0/24", "ipv6": "fd00:90::/64"}}
    errors = lab_topology_errors(0, nets, ["mirror"], _hostvars())
    assert len(errors) == 3
    assert any("GPU node count" in e for e in errors)
    assert any("'bad name' is not valid" in e for e in errors)
    assert any("overlap" in e for e in errors)


def _load_inventory_module():
    path = os.path.join(ROOT, "inventories", "lab", "lab_inventory.py")
    spec = importlib.util.spec_from_file_location("lab_inventory_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("profile", ["lab", "molecule"])
def test_real_topology_from_the_inventory_is_valid(profile):
    """The inventory and the validation agree on lab/topology.yml as shipped."""
    inv = _load_inventory_module()
    with open(os.path.join(ROOT, "lab", "topology.yml"), encoding="utf-8") as fh:
        topology = yaml.safe_load(fh)
    data = inv.build(topology, profile, None)
    hv = data["_meta"]["hostvars"]
    all_vars = data["all"]["vars"]
    lab_hosts = [h for h in hv if h != "localhost"]
    assert lab_topology_errors(all_vars["lab_nodes_requested"], all_vars["lab_networks_spec"],
                               lab_hosts, hv, all_vars["lab_profile_known"], profile) == []


# --------------------------------------------------------------------------
# lab_run_args
# --------------------------------------------------------------------------

def _args(host, hv=None, groups=None):
    return lab_run_args(host, _hostvars() if hv is None else hv, GROUPS if groups is None else groups,
                        IMAGE, "lab", WWW)


@pytest.mark.parametrize("host", HOSTS)
def test_every_host_gets_common_arguments(host):
    args = _args(host)
    hv = _hostvars()[host]
    assert args[:2] == ["--detach", "--name"]
    assert args[2] == hv["lab_container"]
    assert args[args.index("--hostname") + 1] == host
    assert "--dns=none" in args
    assert "--systemd=always" in args
    labels = [args[i + 1] for i, a in enumerate(args) if a == "--label"]
    assert labels == ["airgap.lab=lab", "airgap.host=%s" % host]
    # image and command come last so podman does not read options as the command.
    assert args[-2:] == [IMAGE, "/sbin/init"]


def test_gpu_node_arguments():
    args = _args("gpu-node-1")
    assert "--privileged" in args
    assert "--cgroupns=host" in args
    assert "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw" in args
    assert "--network=airgap-internal:ip=10.89.0.21,ip6=fd00:89::15" in args
    assert "--network=airgap-outside:ip=203.0.113.21,ip6=2001:db8:113::15" in args
    add_hosts = [a for a in args if a.startswith("--add-host=")]
    assert add_hosts == ["--add-host=%s:10.89.0.10" % MIRROR_NAME,
                         "--add-host=%s:fd00:89::a" % MIRROR_NAME]
    assert not any(a.startswith("--cap-add") for a in args)
    assert not any(a.startswith("--volume=/srv/lab") for a in args)


def test_mirror_arguments():
    args = _args("mirror")
    # The parent of www is mounted, so a rebuilt www (renamed into place) shows at once.
    assert "--volume=/srv/lab:/srv/mirror:ro" in args
    assert "--network=airgap-internal:ip=10.89.0.10,ip6=fd00:89::a" in args
    for forbidden in ("--privileged", "--cgroupns=host", "--cap-add=NET_RAW"):
        assert forbidden not in args
    assert not any(a.startswith("--add-host=") for a in args)
    assert not any("/sys/fs/cgroup" in a for a in args)


def test_canary_arguments():
    args = _args("canary")
    assert "--cap-add=NET_RAW" in args
    assert "--network=airgap-outside:ip=203.0.113.10,ip6=2001:db8:113::a" in args
    for forbidden in ("--privileged", "--cgroupns=host"):
        assert forbidden not in args
    assert not any(a.startswith("--volume") for a in args)
    assert not any(a.startswith("--add-host=") for a in args)


def test_network_without_ipv6_gets_only_ip():
    hv = _hostvars()
    hv["mirror"]["lab_networks"] = [_net("airgap-internal", "10.89.0.10", None)]
    args = _args("mirror", hv=hv)
    assert "--network=airgap-internal:ip=10.89.0.10" in args
    # A mirror without IPv6 gives the GPU nodes an IPv4 --add-host only.
    gpu = _args("gpu-node-1", hv=hv)
    assert [a for a in gpu if a.startswith("--add-host=")] == ["--add-host=%s:10.89.0.10" % MIRROR_NAME]


def test_gpu_node_without_mirrors_gets_no_add_host():
    groups = dict(GROUPS, mirrors=[])
    args = _args("gpu-node-1", groups=groups)
    assert not any(a.startswith("--add-host=") for a in args)
    assert "--privileged" in args


def test_run_args_are_all_strings():
    for host in HOSTS:
        assert all(isinstance(a, str) for a in _args(host))


# --------------------------------------------------------------------------
# lab_spec_hash
# --------------------------------------------------------------------------

def test_spec_hash_is_stable_and_short():
    first = lab_spec_hash(_args("gpu-node-1"))
    again = lab_spec_hash(_args("gpu-node-1"))
    assert first == again
    assert len(first) == 16
    int(first, 16)  # hex


def test_spec_hash_changes_when_args_change():
    base = _args("gpu-node-1")
    assert lab_spec_hash(base) != lab_spec_hash(base + ["--memory=1g"])
    assert lab_spec_hash(base) != lab_spec_hash(_args("mirror"))
    changed = lab_run_args("gpu-node-1", _hostvars(), GROUPS, IMAGE + "-new", "lab", WWW)
    assert lab_spec_hash(base) != lab_spec_hash(changed)


def test_spec_hash_separates_arguments():
    """Two arguments are not the same as their concatenation."""
    assert lab_spec_hash(["ab", "c"]) != lab_spec_hash(["a", "bc"])
    assert lab_spec_hash(["abc"]) != lab_spec_hash(["ab", "c"])


# --------------------------------------------------------------------------
# lab_canary_targets / lab_canary_seen / lab_host_addresses
# --------------------------------------------------------------------------

def _canary_targets():
    return lab_canary_targets(_hostvars()["canary"])


def test_canary_targets_for_one_dual_stack_network():
    targets = _canary_targets()
    assert len(targets) == 10
    for dest in ("203.0.113.10", "2001:db8:113::a"):
        mine = [t for t in targets if t["dest"] == dest]
        assert sorted((t["proto"], t.get("port")) for t in mine) == sorted(
            [("tcp", 80), ("tcp", 443), ("dns", 53), ("udp", 123), ("icmp", None)])
    names = [t["name"] for t in targets]
    assert len(set(names)) == 10
    assert "canary 203.0.113.10 tcp/443" in names
    assert "canary 2001:db8:113::a icmp" in names
    assert "canary 2001:db8:113::a dns/53" in names
    icmp = [t for t in targets if t["proto"] == "icmp"]
    assert all("port" not in t for t in icmp)


def test_canary_targets_do_not_mutate_the_service_table():
    before = [dict(s) for s in lab_filters.CANARY_SERVICES]
    _canary_targets()
    assert [dict(s) for s in lab_filters.CANARY_SERVICES] == before


def test_canary_targets_ipv4_only_and_custom_name():
    targets = lab_canary_targets({"lab_networks": [_net("n", "198.51.100.10", None)]}, canary_name="c2")
    assert len(targets) == 5
    assert all(t["dest"] == "198.51.100.10" and t["name"].startswith("c2 ") for t in targets)


SRC4, SRC6 = "203.0.113.21", "2001:db8:113::15"


def _line(**fields):
    return json.dumps(dict({"family": "ipv4", "ts": 1.0}, **fields))


def test_canary_seen_matches_src_dst_proto_and_port():
    lines = [
        _line(src=SRC4, dst="203.0.113.10", proto="tcp", port=443, sport=40000, flags=2),
        _line(src=SRC4, dst="203.0.113.10", proto="udp", port=53, sport=40001),
        _line(src=SRC6, dst="2001:db8:113::a", proto="udp", port=123, family="ipv6", sport=40002),
        "",
        "   ",
    ]
    out = lab_canary_seen(lines, [SRC4, SRC6], _canary_targets())
    assert sorted(out["seen"]) == sorted(["canary 203.0.113.10 tcp/443", "canary 203.0.113.10 dns/53",
                                          "canary 2001:db8:113::a udp/123"])
    assert len(out["unseen"]) == 7
    assert out["records"] == 3


def test_canary_seen_port_and_proto_must_both_match():
    lines = [
        _line(src=SRC4, dst="203.0.113.10", proto="tcp", port=53),    # dns is UDP
        _line(src=SRC4, dst="203.0.113.10", proto="udp", port=80),    # tcp/80 is TCP
        _line(src=SRC4, dst="203.0.113.10", proto="tcp", port=8080),  # unlisted port
        _line(src=SRC4, dst="203.0.113.99", proto="tcp", port=80),    # other destination
    ]
    out = lab_canary_seen(lines, [SRC4], _canary_targets())
    assert out["seen"] == []
    assert len(out["unseen"]) == 10
    assert out["records"] == 4


def test_canary_seen_icmp_and_icmpv6():
    lines = [
        _line(src=SRC4, dst="203.0.113.10", proto="icmp", type=8),
        _line(src=SRC6, dst="2001:db8:113::a", proto="icmpv6", type=128, family="ipv6"),
    ]
    out = lab_canary_seen(lines, [SRC4, SRC6], _canary_targets())
    assert sorted(out["seen"]) == ["canary 2001:db8:113::a icmp", "canary 203.0.113.10 icmp"]


def test_canary_seen_icmp_record_does_not_count_for_tcp_or_udp():
    lines = [_line(src=SRC4, dst="203.0.113.10", proto="icmp", type=8)]
    out = lab_canary_seen(lines, [SRC4], _canary_targets())
    assert out["seen"] == ["canary 203.0.113.10 icmp"]


def test_canary_seen_ignores_records_from_other_sources():
    lines = [
        _line(src="10.89.0.1", dst="203.0.113.10", proto="tcp", port=80),
        _line(src="203.0.113.22", dst="203.0.113.10", proto="icmp", type=8),
    ]
    out = lab_canary_seen(lines, [SRC4, SRC6], _canary_targets())
    assert out == {"seen": [], "unseen": [t["name"] for t in _canary_targets()], "records": 0}


def test_canary_seen_with_no_records_keeps_target_order():
    targets = _canary_targets()
    out = lab_canary_seen([], [SRC4], targets)
    assert out == {"seen": [], "unseen": [t["name"] for t in targets], "records": 0}


def test_canary_seen_rejects_a_broken_line():
    with pytest.raises(ValueError):
        lab_canary_seen(["{not json"], [SRC4], _canary_targets())


def test_host_addresses():
    assert lab_host_addresses(_hostvars()["gpu-node-1"]) == [
        "10.89.0.21", "fd00:89::15", "203.0.113.21", "2001:db8:113::15"]
    assert lab_host_addresses({"lab_networks": [_net("n", "10.0.0.2", None)]}) == ["10.0.0.2"]
    assert lab_host_addresses({}) == []


def test_filter_module_exposes_every_filter():
    filters = lab_filters.FilterModule().filters()
    assert filters == {
        "lab_topology_errors": lab_topology_errors,
        "lab_subnet_conflicts": lab_filters.lab_subnet_conflicts,
        "lab_run_args": lab_run_args,
        "lab_spec_hash": lab_spec_hash,
        "lab_canary_targets": lab_canary_targets,
        "lab_canary_seen": lab_canary_seen,
        "lab_known_hosts": lab_filters.lab_known_hosts,
        "lab_host_addresses": lab_host_addresses,
    }


# --- lab_subnet_conflicts: a lab bridge must never capture the controller's own traffic ---

SPEC = {"airgap-internal": {"ipv4": "10.89.0.0/24", "ipv6": "fd00:89::/64"},
        "airgap-outside": {"ipv4": "198.18.0.0/24", "ipv6": "2001:db8:113::/64"}}


def test_subnet_conflicts_none_on_a_clean_machine():
    routes = [{"dst": "default", "dev": "eth0"}, {"dst": "192.0.2.0/24", "dev": "eth0"},
              {"dst": "fe80::/64", "dev": "eth0"}]
    assert lab_filters.lab_subnet_conflicts(SPEC, routes, ["10.255.255.53", "203.0.113.80"]) == []


def test_subnet_conflicts_ignore_the_labs_own_bridges():
    routes = [{"dst": "10.89.0.0/24", "dev": "podman1"}, {"dst": "198.18.0.0/24", "dev": "podman2"}]
    assert lab_filters.lab_subnet_conflicts(SPEC, routes, []) == []


def test_subnet_conflicts_route_overlap_is_refused():
    errors = lab_filters.lab_subnet_conflicts(SPEC, [{"dst": "10.89.0.0/16", "dev": "eth1"}], [])
    assert len(errors) == 1 and "airgap-internal" in errors[0] and "10.89.0.0/16" in errors[0] and "eth1" in errors[0]


def test_subnet_conflicts_registry_address_inside_a_lab_subnet_is_refused():
    spec = dict(SPEC, **{"airgap-outside": {"ipv4": "203.0.113.0/24", "ipv6": "2001:db8:113::/64"}})
    errors = lab_filters.lab_subnet_conflicts(spec, [], ["203.0.113.80", "2001:db8:113::5"])
    assert len(errors) == 2
    assert all("airgap-outside" in e for e in errors)


HOSTVARS_KH = {"gpu-node-1": {"lab_networks": [{"name": "i", "ipv4": "10.89.0.21", "ipv6": "fd00:89::15"},
                                                {"name": "o", "ipv4": "198.18.0.21", "ipv6": "2001:db8:113::15"}]},
               "gpu-node-2": {"lab_networks": [{"name": "i", "ipv4": "10.89.0.22", "ipv6": "fd00:89::16"}]}}


def test_known_hosts_names_each_node_by_its_management_addresses_only():
    results = [{"item": "gpu-node-2", "stdout_lines": ["configured=yes", "ssh-ed25519 BBBB root@gpu-node-2"]},
               {"item": "gpu-node-1", "stdout_lines": ["configured=no", "ssh-ed25519 AAAA root@gpu-node-1",
                                                       "ecdsa-sha2-nistp256 CCCC= root@gpu-node-1"]}]
    text = lab_filters.lab_known_hosts(results, HOSTVARS_KH)
    assert text == ("10.89.0.21,fd00:89::15 ecdsa-sha2-nistp256 CCCC=\n"
                    "10.89.0.21,fd00:89::15 ssh-ed25519 AAAA\n"
                    "10.89.0.22,fd00:89::16 ssh-ed25519 BBBB\n")
    assert "198.18.0.21" not in text


def test_known_hosts_refuses_a_node_without_a_host_key():
    with pytest.raises(ValueError, match="gpu-node-1 printed no SSH host key"):
        lab_filters.lab_known_hosts([{"item": "gpu-node-1", "stdout_lines": ["configured=yes", "garbage"]}],
                                    HOSTVARS_KH)
