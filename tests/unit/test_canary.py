# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for lab/canary/airgap-canary.py: frame parsing and the DNS/NTP answers.

The canary is a script (its name has a dash), so it is loaded with importlib.
Frames are built by hand here, byte by byte, so that parse() is checked
against the wire formats, not against itself. Nothing is sent anywhere.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import socket
import struct
import time

import pytest

from ansible.module_utils.airgap_probe import build_dns_query, parse_dns_rcode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CANARY_PATH = os.path.join(ROOT, "lab", "canary", "airgap-canary.py")


@pytest.fixture(scope="module")
def canary():
    spec = importlib.util.spec_from_file_location("airgap_canary_under_test", CANARY_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SRC4, DST4 = "203.0.113.21", "203.0.113.10"
SRC6, DST6 = "2001:db8:113::15", "2001:db8:113::a"
MACS = bytes.fromhex("0242ac1100020242ac110003")


def eth(ethertype, payload):
    return MACS + struct.pack("!H", ethertype) + payload


def ipv4(proto, l4, src=SRC4, dst=DST4, options=b""):
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(l4), 0x1234, 0x4000, 64,
                         proto, 0, socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst))
    return eth(0x0800, header + options + l4)


def ipv6(next_header, l4, src=SRC6, dst=DST6):
    header = struct.pack("!IHBB16s16s", 0x60000000, len(l4), next_header, 64,
                         socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))
    return eth(0x86DD, header + l4)


def tcp(sport, dport, flags=0x02):
    # sport, dport, seq, ack, data offset (5 words), flags, window, checksum, urgent
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 64240, 0, 0)


def udp(sport, dport, payload=b"x"):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(kind, code=0):
    return struct.pack("!BBHHH", kind, code, 0, 0x77, 1) + b"payload"


# --------------------------------------------------------------------------
# parse
# --------------------------------------------------------------------------

def test_parse_ipv4_tcp_syn(canary):
    assert canary.parse(ipv4(6, tcp(40000, 443))) == {
        "family": "ipv4", "src": SRC4, "dst": DST4, "proto": "tcp", "sport": 40000, "port": 443, "flags": 0x02}


def test_parse_ipv6_tcp(canary):
    assert canary.parse(ipv6(6, tcp(51000, 80, flags=0x18))) == {
        "family": "ipv6", "src": SRC6, "dst": DST6, "proto": "tcp", "sport": 51000, "port": 80, "flags": 0x18}


def test_parse_ipv4_udp(canary):
    assert canary.parse(ipv4(17, udp(33333, 53))) == {
        "family": "ipv4", "src": SRC4, "dst": DST4, "proto": "udp", "sport": 33333, "port": 53}


def test_parse_ipv6_udp(canary):
    assert canary.parse(ipv6(17, udp(123, 123))) == {
        "family": "ipv6", "src": SRC6, "dst": DST6, "proto": "udp", "sport": 123, "port": 123}


def test_parse_ipv4_header_with_options(canary):
    """The L4 header starts after IHL words, not at a fixed 20 bytes."""
    entry = canary.parse(ipv4(17, udp(1111, 123), options=b"\x01\x01\x01\x00"))
    assert (entry["sport"], entry["port"]) == (1111, 123)


def test_parse_icmp_echo(canary):
    entry = canary.parse(ipv4(1, icmp(8)))
    assert entry == {"family": "ipv4", "src": SRC4, "dst": DST4, "proto": "icmp", "type": 8}
    assert "port" not in entry


def test_parse_icmpv6_echo(canary):
    assert canary.parse(ipv6(58, icmp(128))) == {
        "family": "ipv6", "src": SRC6, "dst": DST6, "proto": "icmpv6", "type": 128}


@pytest.mark.parametrize("kind", [133, 134, 135, 136, 137, 143])
def test_parse_ignores_neighbour_discovery_and_router_chatter(canary, kind):
    assert canary.parse(ipv6(58, icmp(kind))) is None


def test_parse_keeps_other_icmpv6(canary):
    # Destination unreachable (1) is traffic the host sent, not link housekeeping.
    assert canary.parse(ipv6(58, icmp(1)))["proto"] == "icmpv6"


def test_parse_other_protocol_is_recorded_by_number(canary):
    entry = canary.parse(ipv4(47, b"\x00" * 8))
    assert entry == {"family": "ipv4", "src": SRC4, "dst": DST4, "proto": "47"}


def test_parse_truncated_tcp_header_is_recorded_without_port(canary):
    entry = canary.parse(ipv4(6, tcp(40000, 443)[:10]))
    assert entry["proto"] == "6"
    assert "port" not in entry


@pytest.mark.parametrize("frame", [
    b"",
    b"\x00" * 13,
    eth(0x0806, b"\x00" * 28),                 # ARP
    eth(0x0800, b"\x45" + b"\x00" * 10),       # IPv4 header cut short
    eth(0x86DD, b"\x60" + b"\x00" * 30),       # IPv6 header cut short
])
def test_parse_ignores_non_ip_and_short_frames(canary, frame):
    assert canary.parse(frame) is None


# --------------------------------------------------------------------------
# dns_answer
# --------------------------------------------------------------------------

def test_dns_answer_keeps_id_and_sets_response_bit(canary):
    query = build_dns_query("example.org", 0xBEEF)
    answer = canary.dns_answer(query)
    rid, flags, qdcount, ancount, nscount, arcount = struct.unpack("!HHHHHH", answer[:12])
    assert rid == 0xBEEF
    assert flags & 0x8000
    assert flags & 0x000F == 3  # NXDOMAIN
    assert (qdcount, ancount, nscount, arcount) == (1, 0, 0, 0)
    assert answer[12:] == query[12:]  # the question is echoed
    # The project's own prober accepts it as the response to its query.
    assert parse_dns_rcode(answer, 0xBEEF) == 3
    assert parse_dns_rcode(answer, 0xBEEE) is None


@pytest.mark.parametrize("query", [b"", b"\x12", b"\x12\x34\x01"])
def test_dns_answer_to_short_garbage(canary, query):
    answer = canary.dns_answer(query)
    assert len(answer) == 12
    assert answer[:2] == query[:2].ljust(2, b"\x00")
    assert struct.unpack("!H", answer[2:4])[0] & 0x8000


# --------------------------------------------------------------------------
# ntp_answer
# --------------------------------------------------------------------------

NTP_EPOCH_OFFSET = 2208988800


def _client_request(transmit):
    # LI 0, version 4, mode 3 (client); transmit timestamp in the last 8 bytes.
    return bytes([0x23]) + b"\x00" * 39 + transmit


def _check_server_packet(answer):
    assert len(answer) == 48
    assert answer[0] & 0x07 == 4            # mode: server
    assert (answer[0] >> 3) & 0x07 == 4     # version 4
    assert answer[0] >> 6 == 0              # no leap warning
    assert 1 <= answer[1] <= 15             # a synchronised stratum


def test_ntp_answer_is_server_mode_and_echoes_transmit_time(canary):
    transmit = struct.pack("!II", 3900000000, 0x12345678)
    before = time.time() + NTP_EPOCH_OFFSET
    answer = canary.ntp_answer(_client_request(transmit))
    after = time.time() + NTP_EPOCH_OFFSET
    _check_server_packet(answer)
    # Originate timestamp = the client's transmit timestamp.
    assert answer[24:32] == transmit
    # Receive and transmit timestamps are "now".
    for offset in (32, 40):
        seconds = struct.unpack("!I", answer[offset:offset + 4])[0]
        assert int(before) <= seconds <= int(after) + 1


@pytest.mark.parametrize("query", [b"", b"\x23", b"x" * 47])
def test_ntp_answer_to_a_short_input(canary, query):
    answer = canary.ntp_answer(query)
    _check_server_packet(answer)
    assert answer[24:32] == query[40:48].ljust(8, b"\x00")
