# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the firewall allowlist filters and the nftables renderer.

Validation tests are pure Python. Rendering is checked by the real nft
(``nft -c -f``) in a network namespace created for the test, and the
rendered rules are exercised with real TCP/UDP packets between two such
namespaces, IPv4 and IPv6: a string that looks right is not evidence.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid

import pytest
from ansible.errors import AnsibleFilterError

from ansible.module_utils.airgap_nft import (
    FirewallConfigError, admitting_entry, check_content_scope, claimed_hash, connection_admitted,
    content_hash, normalize_egress, normalize_forward, normalize_ingress, normalize_options, render,
    verify_content_hash)
import firewall_filters

DESIGN_EGRESS = [
    {"name": "model-mirror", "dest": "10.89.0.10/32", "proto": "tcp", "ports": [443, 80]},
    {"name": "ntp", "dest": "fd00:89::1", "proto": "udp", "ports": [123]},
]
DESIGN_INGRESS = [{"name": "ssh-mgmt", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22]}]


def errors_of(func, *args, **kwargs):
    with pytest.raises(FirewallConfigError) as info:
        func(*args, **kwargs)
    return info.value.errors


# ---------------------------------------------------------------- normalisation

def test_design_example_normalises():
    eg = normalize_egress(DESIGN_EGRESS)
    assert eg[0]["dest"] == "10.89.0.10/32" and eg[0]["family"] == "ip"
    assert eg[0]["ports"] == [80, 443]
    assert eg[1]["dest"] == "fd00:89::1/128" and eg[1]["family"] == "ip6" and eg[1]["proto"] == "udp"
    ing = normalize_ingress(DESIGN_INGRESS)
    assert ing[0]["src"] == "10.10.0.0/24" and ing[0]["addr"] == "10.10.0.0/24"


def test_ports_sorted_unique_and_digit_strings_accepted():
    eg = normalize_egress([{"name": "a", "dest": "10.0.0.1", "proto": "tcp", "ports": ["443", 80, 443, 80]}])
    assert eg[0]["ports"] == [80, 443]


def test_ipv6_canonical_form():
    eg = normalize_egress([{"name": "a", "dest": "FD00:0089:0000::0/64", "proto": "tcp", "ports": [1]}])
    assert eg[0]["dest"] == "fd00:89::/64"


def test_port_outside_range_message_names_variable_index_entry_and_field():
    entries = [{"name": "n%d" % i, "dest": "10.0.0.%d" % i, "proto": "tcp", "ports": [1]} for i in range(3)]
    entries.append({"name": "ntp", "dest": "10.0.0.9", "proto": "udp", "ports": [70000]})
    errs = errors_of(normalize_egress, entries)
    assert errs == ["firewall_egress_allow[3] 'ntp': field 'ports': 70000 is outside 1-65535"]


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_port_bounds(port):
    errs = errors_of(normalize_egress, [{"name": "x", "dest": "10.0.0.1", "proto": "tcp", "ports": [port]}])
    assert "outside 1-65535" in errs[0]


@pytest.mark.parametrize("port", ["http", True, 1.5, None, "80-90"])
def test_port_not_a_number(port):
    errs = errors_of(normalize_egress, [{"name": "x", "dest": "10.0.0.1", "proto": "tcp", "ports": [port]}])
    assert "field 'ports'" in errs[0] and "is not a port number" in errs[0]


def test_boundary_ports_accepted():
    eg = normalize_egress([{"name": "x", "dest": "10.0.0.1", "proto": "udp", "ports": [1, 65535]}])
    assert eg[0]["ports"] == [1, 65535]


@pytest.mark.parametrize("dest", ["10.0.0.256", "10.1", "10.0.0.0/33", "fd00::/129", "host.example",
                                  "10.0.0.1/x", "", "010.0.0.1", "fe80::1%eth0", 42])
def test_invalid_cidr(dest):
    errs = errors_of(normalize_egress, [{"name": "bad", "dest": dest, "proto": "tcp", "ports": [80]}])
    assert errs[0].startswith("firewall_egress_allow[0] 'bad': field 'dest'")


def test_host_bits_set_is_an_error_with_both_suggestions():
    errs = errors_of(normalize_egress, [{"name": "h", "dest": "10.0.0.5/24", "proto": "tcp", "ports": [80]}])
    assert "host bits set" in errs[0]
    assert "10.0.0.0/24" in errs[0] and "10.0.0.5/32" in errs[0]


def test_ipv4_mapped_ipv6_refused():
    errs = errors_of(normalize_egress, [{"name": "m", "dest": "::ffff:10.0.0.1", "proto": "tcp", "ports": [80]}])
    assert "IPv4-mapped" in errs[0] and "10.0.0.1" in errs[0]


@pytest.mark.parametrize("proto", ["sctp", "TCP", "", None, "all"])
def test_unknown_proto(proto):
    errs = errors_of(normalize_egress, [{"name": "p", "dest": "10.0.0.1", "proto": proto, "ports": [80]}])
    assert any("field 'proto'" in e and "is not one of tcp, udp, icmp, icmpv6" in e for e in errs)


def test_ports_on_icmp_are_an_error():
    errs = errors_of(normalize_egress, [{"name": "ping", "dest": "10.0.0.1", "proto": "icmp", "ports": [7]}])
    assert errs == ["firewall_egress_allow[0] 'ping': field 'ports': icmp has no ports; remove 'ports' "
                    "(got [7])"]


def test_tcp_without_ports_is_an_error():
    errs = errors_of(normalize_egress, [{"name": "t", "dest": "10.0.0.1", "proto": "tcp"}])
    assert "needs at least one port" in errs[0]


def test_icmp_on_ipv6_becomes_icmpv6():
    eg = normalize_egress([{"name": "ping6", "dest": "fd00::1", "proto": "icmp"}])
    assert eg[0]["proto"] == "icmpv6" and eg[0]["ports"] == []


def test_icmpv6_on_ipv4_is_an_error():
    errs = errors_of(normalize_egress, [{"name": "p", "dest": "10.0.0.1", "proto": "icmpv6"}])
    assert "icmpv6 needs an IPv6 address" in errs[0]


def test_duplicate_names():
    errs = errors_of(normalize_ingress, [
        {"name": "ssh", "src": "10.0.0.0/24", "proto": "tcp", "ports": [22]},
        {"name": "ssh", "src": "10.0.1.0/24", "proto": "tcp", "ports": [22]}])
    assert errs == ["firewall_ingress_allow[1] 'ssh': duplicate name 'ssh' (also used by "
                    "firewall_ingress_allow[0])"]


def test_unknown_field_and_missing_fields():
    errs = errors_of(normalize_egress, [{"name": "x", "dest": "10.0.0.1", "proto": "tcp", "port": [80]},
                                        {"proto": "tcp", "ports": [1]}])
    assert any("unknown field(s) port" in e for e in errs)
    assert any(e.startswith("firewall_egress_allow[1] (no name): field 'name'") for e in errs)
    assert any(e.startswith("firewall_egress_allow[1] (no name): field 'dest' is required") for e in errs)


def test_all_errors_collected_in_one_exception():
    errs = errors_of(normalize_egress, [
        {"name": "a", "dest": "300.0.0.1", "proto": "tcp", "ports": [80]},
        {"name": "b", "dest": "10.0.0.1", "proto": "tcp", "ports": [0]},
        {"name": "c", "dest": "10.0.0.1", "proto": "gre", "ports": [1]},
        "not a mapping",
    ])
    assert len(errs) == 4
    assert [e.split(":")[0] for e in errs] == [
        "firewall_egress_allow[0] 'a'", "firewall_egress_allow[1] 'b'", "firewall_egress_allow[2] 'c'",
        "firewall_egress_allow[3] (no name)"]


def test_list_itself_must_be_a_list():
    assert "must be a list" in errors_of(normalize_egress, {"name": "x"})[0]
    assert normalize_egress(None) == []


@pytest.mark.parametrize("anyaddr", ["0.0.0.0/0", "::/0"])
def test_any_address_refused_without_allow_any(anyaddr):
    errs = errors_of(normalize_egress, [{"name": "all", "dest": anyaddr, "proto": "tcp", "ports": [443]}])
    assert "matches every address" in errs[0] and "allow_any" in errs[0]


def test_any_address_refused_with_allow_any_but_no_reason():
    errs = errors_of(normalize_egress, [{"name": "all", "dest": "0.0.0.0/0", "proto": "tcp", "ports": [443]}],
                     allow_any=True, allow_any_reason="   ")
    assert any("allow_any_reason is empty" in e for e in errs)
    assert any("matches every address" in e for e in errs)


def test_any_address_reason_must_be_one_line():
    errs = errors_of(normalize_egress, [], allow_any=True, allow_any_reason="ok\nflush ruleset")
    assert "one line" in errs[0]


def test_any_address_accepted_with_reason_and_recorded_in_render():
    eg = normalize_egress([{"name": "all-https", "dest": "0.0.0.0/0", "proto": "tcp", "ports": [443]}],
                          allow_any=True, allow_any_reason="CHG-4711 vendor update window")
    assert eg[0]["any"] is True and eg[0]["dest"] == "0.0.0.0/0"
    text = render(eg, [])
    assert "# allow_any granted to firewall_egress_allow 'all-https': CHG-4711 vendor update window" in text
    assert "0.0.0.0/0 . 443" in text


def test_forward_mixed_families_refused():
    errs = errors_of(normalize_forward, [{"name": "f", "src": "10.0.0.0/24", "dest": "fd00::1",
                                          "proto": "tcp", "ports": [80]}])
    assert "mix IPv4 and IPv6" in errs[0]


def test_interfaces_and_purposes_validated():
    errs = errors_of(normalize_ingress, [{"name": "s", "src": "10.0.0.0/8", "proto": "tcp", "ports": [22],
                                          "interfaces": ["this-name-is-too-long0"], "purposes": ["Bad Purpose"]}])
    assert len(errs) == 2


def test_names_cannot_inject_into_nft_strings():
    errs = errors_of(normalize_egress, [{"name": 'x" accept; #', "dest": "10.0.0.1", "proto": "tcp", "ports": [1]}])
    assert "field 'name'" in errs[0]


def test_filter_plugin_raises_ansible_filter_error_listing_everything():
    filters = firewall_filters.FilterModule().filters()
    with pytest.raises(AnsibleFilterError) as info:
        filters["firewall_normalize_egress"]([{"name": "a", "dest": "x", "proto": "tcp", "ports": [1]},
                                              {"name": "b", "dest": "10.0.0.1", "proto": "tcp", "ports": [99999]}])
    msg = str(info.value)
    assert "2 firewall configuration error(s)" in msg
    assert "firewall_egress_allow[0] 'a'" in msg and "firewall_egress_allow[1] 'b'" in msg


def test_filter_plugin_exports():
    names = set(firewall_filters.FilterModule().filters())
    assert {"firewall_normalize_egress", "firewall_normalize_ingress", "firewall_normalize_forward",
            "firewall_render", "firewall_connection_admitted"} <= names


# ---------------------------------------------------------------- options and render structure

def test_options_validation():
    errs = errors_of(normalize_options, {"priority": -150, "tabel_name": "x", "log_rate": 0, "log": "maybe",
                                         "interface_roles": {"eth0": "Mgmt"}})
    text = "\n".join(errs)
    assert "unknown key(s) tabel_name" in text and "option 'priority'" in text
    assert "option 'log_rate'" in text and "option 'log'" in text and "interface_roles" in text


def test_options_accept_unambiguous_strings_from_extra_vars():
    opts = normalize_options({"log_rate": "5", "priority": "-20", "log": "false", "dhcp_client": "yes"})
    assert (opts["log_rate"], opts["priority"], opts["log"], opts["dhcp_client"]) == (5, -20, False, True)
    assert errors_of(normalize_options, {"log": "maybe"})


def test_render_refuses_unnormalised_input():
    errs = errors_of(render, DESIGN_EGRESS, [])
    assert "firewall_normalize_egress" in errs[0]


def test_render_structure():
    text = render(normalize_egress(DESIGN_EGRESS), normalize_ingress(DESIGN_INGRESS))
    assert text.count("table inet airgap_firewall {") == 1
    for chain in ("input", "output", "forward"):
        assert "type filter hook %s priority filter - 10; policy drop;" % chain in text
    for prefix in ("airgap-fw drop out: ", "airgap-fw drop in: ", "airgap-fw drop fwd: "):
        assert 'log prefix "%s"' % prefix in text
    assert "type ipv4_addr . inet_service" in text and "flags interval" in text
    assert "ip daddr . tcp dport @egress4_tcp accept" in text
    assert "ip6 daddr . udp dport @egress6_udp accept" in text
    assert "ip saddr . tcp dport @ingress4_tcp accept" in text
    assert "flush" not in text and "dhcp" not in text.lower().replace("dhcp_client", "")
    assert "nd-router-advert" not in text  # only with accept_router_advert


def test_one_rule_per_set_regardless_of_size():
    small = render(normalize_egress(_many(10)), [])
    big = render(normalize_egress(_many(2000)), [])
    rules = lambda t: [ln for ln in t.splitlines() if "@egress" in ln]  # noqa: E731
    assert rules(small) == rules(big) and len(rules(big)) == 2  # tcp and udp sets


def test_content_hash_stamped_verifiable_and_sensitive():
    text = render(normalize_egress(DESIGN_EGRESS), normalize_ingress(DESIGN_INGRESS))
    ok, claimed, actual = verify_content_hash(text)
    assert ok and claimed == actual == content_hash(text)
    assert text.count(claimed) == 2  # header line and table comment
    tampered = text.replace("10.89.0.10 . 443", "10.89.0.11 . 443")
    assert tampered != text and not verify_content_hash(tampered)[0]
    other = render(normalize_egress(DESIGN_EGRESS[:1]), normalize_ingress(DESIGN_INGRESS))
    assert claimed_hash(other) != claimed


def test_render_is_independent_of_entry_order():
    a = render(normalize_egress(DESIGN_EGRESS + _many(5)), [])
    b = render(normalize_egress(list(reversed(DESIGN_EGRESS + _many(5)))), [])
    assert a == b  # text and hash: reordering an inventory list is not a change


def test_overlapping_entries_are_merged():
    eg = normalize_egress([
        {"name": "net", "dest": "10.0.0.0/24", "proto": "tcp", "ports": [80]},
        {"name": "host", "dest": "10.0.0.5", "proto": "tcp", "ports": [80, 443]},
        {"name": "neighbour", "dest": "10.0.1.0/24", "proto": "tcp", "ports": [80]},
    ])
    text = render(eg, [])
    assert '10.0.0.0/23 . 80 comment "host,neighbour,net"' in text
    assert '10.0.0.5 . 443 comment "host"' in text


def test_purposes_resolve_through_interface_roles():
    ing = normalize_ingress([{"name": "ssh", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22],
                              "purposes": ["management"]}])
    text = render([], ing, {"interface_roles": {"vlan10": "management", "vlan20": "inference"}})
    assert '"vlan10" . 10.10.0.0/24 . 22' in text and "vlan20" not in text.split("table inet")[1]
    assert "iifname . ip saddr . tcp dport @ingress4_tcp_if accept" in text
    errs = errors_of(render, [], ing, {"interface_roles": {"vlan20": "inference"}})
    assert "no interface in interface_roles has purpose 'management'" in errs[0]


def test_priority_option_and_table_name():
    text = render([], [], {"priority": 5, "table_name": "fw_test"})
    assert "table inet fw_test {" in text and "priority filter + 5; policy drop;" in text


def test_content_scope_check():
    good = render([], [])
    assert check_content_scope(good, "inet", "airgap_firewall") == []
    assert check_content_scope("flush ruleset\n" + good, "inet", "airgap_firewall")
    assert check_content_scope(good + "\ntable inet other {\n}\n", "inet", "airgap_firewall")
    assert check_content_scope(good.replace("airgap_firewall {", "netavark {"), "inet", "airgap_firewall")
    assert check_content_scope('include "/etc/x.nft"\n' + good, "inet", "airgap_firewall")
    assert check_content_scope(good + "\ndelete table inet netavark\n", "inet", "airgap_firewall")
    # a '#' inside a string is not a comment, and a brace in a comment does not count
    assert check_content_scope('table inet airgap_firewall { comment "a # b" } # }', "inet",
                               "airgap_firewall") == []


# ---------------------------------------------------------------- lockout guard

def test_connection_admitted():
    ing = normalize_ingress(DESIGN_INGRESS + [
        {"name": "ssh6-if", "src": "fd00:10::/64", "proto": "tcp", "ports": [22], "interfaces": ["mgmt0"]}])
    assert connection_admitted(ing, "10.10.0.7", 22)
    assert connection_admitted(ing, "::ffff:10.10.0.7", "22")  # dual-stack sshd's notation
    assert admitting_entry(ing, "10.10.0.7", 22) == "ssh-mgmt"
    assert not connection_admitted(ing, "10.10.1.7", 22)
    assert not connection_admitted(ing, "10.10.0.7", 2222)
    assert connection_admitted(ing, "127.0.0.1", 22) and connection_admitted(ing, "::1", 22)
    # interface-bound entries count only when the interface is known to match
    assert not connection_admitted(ing, "fd00:10::5", 22)
    assert connection_admitted(ing, "fd00:10::5", 22, interface="mgmt0")
    assert not connection_admitted(ing, "fd00:10::5", 22, interface="eth1")
    with pytest.raises(FirewallConfigError):
        connection_admitted(ing, "not-an-ip", 22)


# ---------------------------------------------------------------- real nft

def _many(n):
    out = []
    for i in range(n):
        out.append({"name": "e%d" % i, "dest": "10.%d.%d.0/24" % (100 + i // 256 % 100, i % 256),
                    "proto": "tcp" if i % 3 else "udp", "ports": [443, 8000 + i % 50]})
    return out


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
                                reason="needs root, nft and ip to create network namespaces")


@pytest.fixture
def netns():
    """A fresh, empty network namespace, removed afterwards."""
    made = []

    def make():
        name = "fwt-%s" % uuid.uuid4().hex[:10]
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        made.append(name)
        return name
    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], check=False)


def nft_check(ns, text):
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as handle:
        handle.write(text)
    try:
        return subprocess.run(["ip", "netns", "exec", ns, "nft", "-c", "-f", handle.name],
                              capture_output=True, text=True)
    finally:
        os.unlink(handle.name)


def _full_config():
    eg = normalize_egress(DESIGN_EGRESS + [
        {"name": "ping", "dest": "10.89.0.0/24", "proto": "icmp"},
        {"name": "ping6", "dest": "fd00:89::/64", "proto": "icmp"},
        {"name": "mirror-net", "dest": "10.89.0.0/24", "proto": "tcp", "ports": [80]},
        {"name": "mgmt-dns", "dest": "fd00:10::53", "proto": "udp", "ports": [53], "purposes": ["management"]},
    ])
    ing = normalize_ingress(DESIGN_INGRESS + [
        {"name": "vllm", "src": "10.20.0.0/24", "proto": "tcp", "ports": [8000], "interfaces": ["inf0"]},
        {"name": "ping-in", "src": "fd00:10::/64", "proto": "icmp"}])
    fwd = normalize_forward([
        {"name": "pub", "src": "10.20.0.0/24", "dest": "10.88.0.5", "proto": "tcp", "ports": [8000]},
        {"name": "pub-host", "src": "10.20.0.5", "dest": "10.88.0.0/24", "proto": "tcp", "ports": [8000]},
        {"name": "pub6", "src": "fd00:20::/64", "dest": "fd00:88::5", "proto": "tcp", "ports": [8000]}])
    opts = {"forward": fwd, "interface_roles": {"mgmt0": "management"}, "accept_router_advert": True,
            "dhcp_client": True}
    return eg, ing, opts


@needs_root
@pytest.mark.parametrize("case", ["empty", "design", "full", "any", "large"])
def test_rendered_ruleset_passes_nft_check(netns, case):
    if case == "empty":
        text = render([], [])
    elif case == "design":
        text = render(normalize_egress(DESIGN_EGRESS), normalize_ingress(DESIGN_INGRESS))
    elif case == "full":
        text = render(*_full_config())
    elif case == "any":
        text = render(normalize_egress([{"name": "all", "dest": "::/0", "proto": "tcp", "ports": [443]},
                                        {"name": "h", "dest": "fd00::1", "proto": "tcp", "ports": [443]}],
                                       True, "test"), [])
    else:
        text = render(normalize_egress(_many(1500)), normalize_ingress(DESIGN_INGRESS))
    proc = nft_check(netns(), text)
    assert proc.returncode == 0, proc.stderr


@needs_root
def test_nft_check_catches_a_broken_rendering(netns):
    """Positive control for the test above: nft -c does fail on bad text."""
    text = render(normalize_egress(DESIGN_EGRESS), []).replace("type ipv4_addr . inet_service",
                                                               "type ipv4_addr . inet_servic")
    assert nft_check(netns(), text).returncode != 0


# ---------------------------------------------------------------- real packets

PROBE = textwrap.dedent("""
    import socket, sys
    fam = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
    if sys.argv[1] == "tcp":
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2)
        try:
            s.connect((sys.argv[2], int(sys.argv[3]))); print("open")
        except ConnectionRefusedError:
            print("refused")
        except OSError as exc:
            print("blocked:%s" % exc.__class__.__name__)
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
        try:
            s.sendto(b"ping", (sys.argv[2], int(sys.argv[3]))); s.recv(16); print("open")
        except OSError as exc:
            print("blocked:%s" % exc.__class__.__name__)
""")

SERVER = textwrap.dedent("""
    import socket, threading, sys, time
    def tcp(fam, addr, port):
        s = socket.socket(fam, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port)); s.listen(16)
        while True:
            c, _ = s.accept(); c.close()
    def udp(fam, addr, port):
        s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((addr, port))
        while True:
            d, peer = s.recvfrom(64); s.sendto(d, peer)
    for fam, addr in ((socket.AF_INET, "10.231.0.2"), (socket.AF_INET6, "fd31::2")):
        for port in (80, 443, 8080):
            threading.Thread(target=tcp, args=(fam, addr, port), daemon=True).start()
        for port in (53, 123):
            threading.Thread(target=udp, args=(fam, addr, port), daemon=True).start()
    print("ready", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def pair(netns):
    """Client and server namespaces joined by a veth pair (10.231.0.0/24, fd31::/64);
    the server listens on TCP 80/443/8080 and UDP 53/123 (echo), IPv4 and IPv6.
    Yields (client, server, probe, load) where probe(proto, addr, port) runs in the client."""
    client, server = netns(), netns()
    veth = "v%s" % uuid.uuid4().hex[:8]
    sh = lambda *a: subprocess.run(list(a), check=True)  # noqa: E731
    sh("ip", "link", "add", veth + "a", "netns", client, "type", "veth", "peer", "name", veth + "b",
       "netns", server)
    for ns, dev, v4, v6 in ((client, veth + "a", "10.231.0.1/24", "fd31::1/64"),
                            (server, veth + "b", "10.231.0.2/24", "fd31::2/64")):
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "addr", "add", v4, "dev", dev)
        sh("ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad")
    srv = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", SERVER],
                           stdout=subprocess.PIPE, text=True)

    def probe(proto, addr, port):
        return subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", PROBE, proto, addr,
                               str(port)], capture_output=True, text=True, check=True).stdout.strip()

    def load(ns, text):
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        yield client, server, probe, load
    finally:
        srv.kill()
        srv.wait()


CASES = [("tcp", "10.231.0.2", 443), ("tcp", "10.231.0.2", 80), ("tcp", "fd31::2", 443),
         ("tcp", "fd31::2", 80), ("udp", "10.231.0.2", 123), ("udp", "10.231.0.2", 53),
         ("udp", "fd31::2", 53), ("udp", "fd31::2", 123)]


def assert_only(probe, allowed):
    got = dict((case, probe(*case)) for case in CASES)
    for case, result in got.items():
        if case in allowed:
            assert result == "open", (case, result)
        else:
            assert result.startswith("blocked"), (case, result)


@needs_root
def test_egress_rules_with_real_packets(pair):
    """The client gets the rendered table: only allowlisted destinations answer,
    over IPv4 and IPv6, TCP and UDP; the same probes without the table reach
    everything (positive control)."""
    client, _, probe, load = pair
    assert [probe(*c) for c in CASES] == ["open"] * len(CASES)
    eg = normalize_egress([
        {"name": "https4", "dest": "10.231.0.2", "proto": "tcp", "ports": [443]},
        {"name": "https6", "dest": "fd31::2", "proto": "tcp", "ports": [443]},
        {"name": "ntp4", "dest": "10.231.0.0/24", "proto": "udp", "ports": [123]},
        {"name": "dns6", "dest": "fd31::/64", "proto": "udp", "ports": [53]},
    ])
    load(client, render(eg, []))
    assert_only(probe, {("tcp", "10.231.0.2", 443), ("tcp", "fd31::2", 443), ("udp", "10.231.0.2", 123),
                        ("udp", "fd31::2", 53)})


@needs_root
def test_ingress_rules_with_real_packets(pair):
    """The server gets the rendered table (ingress only, no egress entries at all):
    only allowlisted sources/ports are admitted, and their replies still leave
    (ct state established), although the server may start no connection itself."""
    _, server, probe, load = pair
    assert [probe(*c) for c in CASES] == ["open"] * len(CASES)
    ing = normalize_ingress([
        {"name": "https-from-client4", "src": "10.231.0.1", "proto": "tcp", "ports": [443]},
        {"name": "http-from-client6", "src": "fd31::/64", "proto": "tcp", "ports": [80]},
        {"name": "dns-from-net4", "src": "10.231.0.0/24", "proto": "udp", "ports": [53]},
        {"name": "other-src", "src": "10.231.0.99", "proto": "udp", "ports": [123]},
    ])
    load(server, render([], ing))
    assert_only(probe, {("tcp", "10.231.0.2", 443), ("tcp", "fd31::2", 80), ("udp", "10.231.0.2", 53)})
