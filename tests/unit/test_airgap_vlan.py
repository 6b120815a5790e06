# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for module_utils/airgap_vlan.py: validation, rendering, zones, parsing, NET-VLAN."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils import airgap_vlan as v

MGMT = {"id": 10, "name": "mgmt", "parent": "eth1", "purpose": "management",
        "addresses": ["10.10.0.21/24", "fd00:10::21/64"], "gateway": "10.10.0.1"}
INF = {"id": 20, "name": "inference", "parent": "eth1", "purpose": "inference",
       "addresses": ["10.20.0.21/24"], "mtu": 1400, "routes": [{"to": "10.120.0.0/16", "via": "10.20.0.254"}]}
STOR = {"id": 30, "name": "storage", "parent": "eth1", "purpose": "storage", "addresses": ["fd00:30::21/64"]}


def _errors(entries):
    with pytest.raises(v.VlanConfigError) as exc:
        v.normalize(entries)
    return exc.value.errors


def _one_error(entries, needle):
    errors = _errors(entries)
    assert any(needle in e for e in errors), errors
    return errors


def test_valid_declaration_normalises():
    out = v.normalize([MGMT, INF, STOR])
    assert [x["name"] for x in out] == ["mgmt", "inference", "storage"]
    assert out[0]["ipv4"] == ["10.10.0.21/24"] and out[0]["ipv6"] == ["fd00:10::21/64"]
    assert out[0]["gateway"] == {"4": "10.10.0.1"}
    assert out[1]["subnets"] == ["10.20.0.0/24"] and out[1]["mtu"] == 1400
    assert v.normalize([]) == [] and v.normalize(None) == []


def test_id_strings_from_extra_vars_are_accepted():
    assert v.normalize([dict(MGMT, id="10")])[0]["id"] == 10


@pytest.mark.parametrize("vid", [0, 4095, -1, "x", True, None, 10.5])
def test_vlan_id_out_of_range_is_refused(vid):
    _one_error([dict(MGMT, id=vid)], "network_vlan_interfaces[0] 'mgmt': id")


def test_duplicate_id_on_same_parent_is_refused_but_allowed_on_another_parent():
    _one_error([MGMT, dict(INF, id=10)], "id 10 on parent eth1 is already used by network_vlan_interfaces[0]")
    assert len(v.normalize([MGMT, dict(INF, id=10, parent="eth2")])) == 2


def test_duplicate_name_is_refused():
    _one_error([MGMT, dict(INF, name="mgmt")], "name 'mgmt' is already used")


def test_name_and_parent_rules():
    _one_error([dict(MGMT, name="a-name-longer-than-15")], "name 'a-name-longer-than-15'")
    _one_error([dict(MGMT, name="bad/name")], "name 'bad/name'")
    _one_error([dict(MGMT, parent="mgmt")], "cannot be the VLAN interface itself")
    _one_error([MGMT, dict(INF, parent="mgmt")], "VLANs on VLANs")


@pytest.mark.parametrize("addr,needle", [
    ("10.10.0.300/24", "not a valid"),
    ("10.10.0.21", "prefix length"),
    ("10.10.0.0/24", "network or broadcast"),
    ("10.10.0.255/24", "network or broadcast"),
    ("127.0.0.2/8", "not a usable host address"),
    ("fe80::1/64", "not a usable host address"),
    ("::ffff:10.0.0.1/120", "IPv4-mapped"),
    ("010.10.0.21/24", "not a valid"),
])
def test_bad_addresses_are_refused(addr, needle):
    _one_error([dict(MGMT, addresses=[addr], gateway=None)], needle)


def test_addresses_must_be_a_non_empty_list():
    _one_error([dict(MGMT, addresses=[])], "addresses must be a non-empty list")
    _one_error([dict(MGMT, addresses="10.10.0.21/24")], "addresses must be a non-empty list")


def test_overlapping_subnets_across_vlans_are_refused():
    errors = _one_error([MGMT, dict(INF, addresses=["10.10.0.99/16"], routes=[])], "overlaps 10.10.0.0/24")
    assert "network_vlan_interfaces[1] 'inference'" in " ".join(errors)
    _one_error([MGMT, dict(STOR, addresses=["fd00:10::99/48"])], "overlaps fd00:10::/64")


def test_purpose_must_be_known():
    _one_error([dict(MGMT, purpose="admin")], "purpose 'admin' must be one of management, inference, storage, mirror")


def test_unknown_keys_and_non_mapping_entries():
    _one_error([dict(MGMT, vlan=5)], "unknown key(s) vlan")
    _one_error(["mgmt"], "must be a mapping")
    with pytest.raises(v.VlanConfigError):
        v.normalize({"id": 1})


def test_gateway_must_be_on_link_and_one_per_family():
    _one_error([dict(MGMT, gateway="10.99.0.1")], "gateway 10.99.0.1 is not inside")
    _one_error([dict(MGMT, gateway=["10.10.0.1", "10.10.0.2"])], "more than one IPv4 gateway")
    assert v.normalize([dict(MGMT, gateway=["10.10.0.1", "fd00:10::1"])])[0]["gateway"] == {
        "4": "10.10.0.1", "6": "fd00:10::1"}


def test_routes_are_checked():
    _one_error([dict(INF, routes=[{"to": "10.120.0.1/16", "via": "10.20.0.254"}])], "without host bits")
    _one_error([dict(INF, routes=[{"to": "10.120.0.0/16", "via": "10.99.0.1"}])], "via 10.99.0.1 is not inside")
    _one_error([dict(INF, routes=[{"to": "0.0.0.0/0", "via": "10.20.0.1"}])], "default route")
    _one_error([dict(INF, routes=[{"to": "10.120.0.0/16", "via": "fd00::1"}])], "must be an IPv4 address")


def test_mtu_range_and_ipv6_minimum():
    _one_error([dict(INF, mtu=20)], "mtu 20 must be")
    _one_error([dict(MGMT, mtu=1200)], "below 1280")
    assert v.normalize([dict(INF, mtu="9000")])[0]["mtu"] == 9000


def test_every_problem_is_listed_at_once():
    errors = _errors([dict(MGMT, id=0, purpose="x"), dict(INF, addresses=["bad"])])
    assert len(errors) >= 3


LINKS = {"eth1": {"kind": None, "mtu": 1500}, "eth0": {"kind": None, "mtu": 1500}}


def test_host_checks():
    vlans = v.normalize([MGMT, dict(INF, mtu=1400)])
    assert v.check_against_host(vlans, {"links": LINKS}) == []
    errors = v.check_against_host(v.normalize([dict(MGMT, parent="eth9")]), {"links": LINKS})
    assert "parent 'eth9' is not an interface on this host" in errors[0]
    errors = v.check_against_host(v.normalize([dict(INF, mtu=9000)]), {"links": LINKS})
    assert "mtu 9000 is larger than the MTU 1500 of its parent eth1" in errors[0]
    errors = v.check_against_host(v.normalize([dict(MGMT, name="eth0")]), {"links": LINKS})
    assert "already exists and is not a VLAN" in errors[0]


def test_zones_and_interface_roles():
    vlans = v.normalize([MGMT, INF, STOR])
    zones = v.zones(vlans)
    assert zones["management"] == {"interfaces": ["mgmt"], "subnets": ["10.10.0.0/24", "fd00:10::/64"],
                                   "addresses": ["10.10.0.21", "fd00:10::21"], "vlan_ids": [10]}
    assert sorted(zones) == ["inference", "management", "storage"]
    assert v.zones([]) == {}
    assert v.interface_roles(vlans) == {"mgmt": "management", "inference": "inference", "storage": "storage"}


def test_networkd_rendering_own_parent_file():
    files = v.render_networkd(v.normalize([MGMT, INF]))
    by_path = dict((f["path"], f) for f in files)
    netdev = by_path["/etc/systemd/network/30-airgap-vlan-if-mgmt.netdev"]["content"]
    assert netdev.splitlines()[0] == v.MARKER
    assert "[NetDev]\nName=mgmt\nKind=vlan\n" in netdev and "[VLAN]\nId=10\n" in netdev
    network = by_path["/etc/systemd/network/30-airgap-vlan-if-mgmt.network"]["content"]
    assert "Address=10.10.0.21/24\nAddress=fd00:10::21/64\nGateway=10.10.0.1\n" in network
    assert "LinkLocalAddressing=ipv6" in network and "IPv6AcceptRA=no" in network
    inf = by_path["/etc/systemd/network/30-airgap-vlan-if-inference.network"]["content"]
    assert "[Link]\nMTUBytes=1400\n" in inf and "[Route]\nDestination=10.120.0.0/16\nGateway=10.20.0.254" in inf
    assert "LinkLocalAddressing=no" in inf
    parent = by_path["/etc/systemd/network/30-airgap-vlan-parent-eth1.network"]
    assert "[Match]\nName=eth1\n" in parent["content"]
    assert "VLAN=inference\nVLAN=mgmt\n" in parent["content"]
    assert parent["interfaces"] == ["eth1"]
    assert all(v.owned_file(f["path"], f["content"]) for f in files)


def test_networkd_rendering_drop_in_for_existing_parent_file():
    files = v.render_networkd(v.normalize([MGMT]), {"eth1": "/etc/systemd/network/20-trunk.network"})
    paths = [f["path"] for f in files]
    assert "/etc/systemd/network/20-trunk.network.d/airgap-vlan.conf" in paths
    dropin = [f for f in files if f["kind"] == "parent"][0]["content"]
    assert "[Match]" not in dropin and "[Network]\nVLAN=mgmt\n" in dropin


def test_rendering_is_stable_under_reordering():
    a = v.render_networkd(v.normalize([MGMT, INF]))
    b = v.render_networkd(v.normalize([INF, MGMT]))
    assert sorted((f["path"], f["content"]) for f in a) == sorted((f["path"], f["content"]) for f in b)


def test_networkmanager_keyfiles():
    files = v.render_networkmanager(v.normalize([MGMT, INF, STOR]))
    mg = [f for f in files if f["path"].endswith("airgap-vlan-mgmt.nmconnection")][0]
    assert mg["mode"] == "0600"
    text = mg["content"]
    assert "type=vlan\ninterface-name=mgmt\n" in text and "[vlan]\nid=10\nparent=eth1\n" in text
    assert "uuid=%s" % v.nm_uuid("mgmt") in text
    assert "[ipv4]\nmethod=manual\naddress1=10.10.0.21/24\ngateway=10.10.0.1\n" in text
    assert "[ipv6]\nmethod=manual\naddress1=fd00:10::21/64\nnever-default=true\n" in text
    inf = [f for f in files if "inference" in f["path"]][0]["content"]
    assert "route1=10.120.0.0/16,10.20.0.254" in inf and "[ethernet]\nmtu=1400" in inf
    st = [f for f in files if "storage" in f["path"]][0]["content"]
    assert "[ipv4]\nmethod=disabled" in st
    assert v.nm_uuid("mgmt") == v.nm_uuid("mgmt") != v.nm_uuid("inference")


def test_render_refuses_unknown_provider():
    with pytest.raises(v.VlanConfigError):
        v.render([], "ifupdown")


def test_owned_file_needs_prefix_and_marker():
    assert not v.owned_file("/etc/systemd/network/30-airgap-vlan-if-x.netdev", "[NetDev]\n")
    assert not v.owned_file("/etc/systemd/network/10-admin.network", v.MARKER + "\n")
    assert v.file_interfaces(v.MARKER + "\n" + v.INTERFACES_TAG + " mgmt eth1\n") == ["mgmt", "eth1"]


LINK_JSON = json.dumps([
    {"ifname": "lo", "mtu": 65536, "operstate": "UNKNOWN", "flags": ["LOOPBACK", "UP"], "linkinfo": None},
    {"ifname": "eth1", "mtu": 1500, "operstate": "UP", "flags": ["UP", "LOWER_UP"]},
    {"ifname": "mgmt", "link": "eth1", "mtu": 1500, "operstate": "UP", "flags": ["UP", "LOWER_UP"],
     "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 10, "flags": ["REORDER_HDR"]}}},
])
ADDR_JSON = json.dumps([
    {"ifname": "mgmt", "addr_info": [
        {"family": "inet", "local": "10.10.0.21", "prefixlen": 24, "scope": "global"},
        {"family": "inet6", "local": "fd00:10::21", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
])


def test_parse_links():
    links = v.parse_links(LINK_JSON, ADDR_JSON)
    assert links["mgmt"]["kind"] == "vlan" and links["mgmt"]["vlan_id"] == 10 and links["mgmt"]["parent"] == "eth1"
    assert links["mgmt"]["addresses"] == ["10.10.0.21/24", "fd00:10::21/64"]
    assert links["eth1"]["kind"] is None and links["eth1"]["parent"] is None


def test_vlan_support():
    assert v.vlan_support(True, False, False, "6.1")["supported"]
    assert v.vlan_support(False, False, True, "6.1")["supported"]
    no = v.vlan_support(False, False, False, "6.1.0-40-amd64")
    assert not no["supported"] and "no 802.1Q support" in no["reason"]


def test_network_file_for_uses_first_lexical_name_match():
    files = [("20-trunk.network", "/etc/systemd/network/20-trunk.network", "[Match]\nName=eth1 eth2\n"),
             ("10-other.network", "/etc/systemd/network/10-other.network", "[Match]\nName=eth0\n"),
             ("05-kind.network", "/usr/lib/systemd/network/05-kind.network", "[Match]\nName=eth*\nType=ether\n"),
             ("99-all.network", "/etc/systemd/network/99-all.network", "[Match]\nName=e*\n")]
    assert v.network_file_for("eth1", files) == "/etc/systemd/network/20-trunk.network"
    assert v.network_file_for("eth3", files) == "/etc/systemd/network/99-all.network"
    assert v.network_file_for("wlan0", files) is None


def _facts(links=None, supported=True):
    return {"links": links if links is not None else v.parse_links(LINK_JSON, ADDR_JSON),
            "vlan_support": {"supported": supported, "reason": "why"}}


def test_observations_pass_only_when_everything_matches():
    vlans = v.normalize([dict(MGMT, gateway=None)])
    status, ev = v.vlan_observations(vlans, _facts())
    assert status == "pass", ev
    assert ev["vlans"][0]["live"]["vlan_id"] == 10


@pytest.mark.parametrize("change,needle", [
    ({"vlan_id": 11}, "VLAN id is 11"),
    ({"parent": "eth2"}, "parent is eth2"),
    ({"addresses": ["10.10.0.21/24"]}, "missing address(es) fd00:10::21/64"),
    ({"addresses": ["10.10.0.21/24", "fd00:10::21/64", "10.99.0.1/24"]}, "undeclared address(es) 10.99.0.1/24"),
    ({"flags": ["BROADCAST"]}, "administratively down"),
    ({"operstate": "LOWERLAYERDOWN"}, "operational state LOWERLAYERDOWN"),
    ({"kind": "veth"}, "not a VLAN interface"),
])
def test_observations_fail_on_each_difference(change, needle):
    links = v.parse_links(LINK_JSON, ADDR_JSON)
    links["mgmt"].update(change)
    status, ev = v.vlan_observations(v.normalize([MGMT]), _facts(links))
    assert status == "fail"
    assert any(needle in p for p in ev["vlans"][0]["problems"]), ev


def test_observations_missing_interface_fails():
    status, ev = v.vlan_observations(v.normalize([INF]), _facts())
    assert status == "fail" and "does not exist" in ev["vlans"][0]["problems"][0]


def test_no_8021q_is_error_never_pass():
    status, ev = v.vlan_observations(v.normalize([MGMT]), _facts(supported=False))
    assert status == "error" and ev["reason"] == "why"


def test_nothing_declared_is_not_applicable():
    status, ev = v.vlan_observations([], _facts(supported=False))
    assert status == "not_applicable" and "no VLANs declared" in ev["reason"]
