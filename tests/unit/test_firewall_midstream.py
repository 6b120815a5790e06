# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The first load over SSH must not stall the controller's open session.

In a network namespace where no rule used conntrack before, loading the
firewall starts tracking while the controller's session is open; the first
packet conntrack sees is often the host's reply, a "new" outbound flow to the
controller's ephemeral port. The renderer adds output rules that admit
exactly the mirror image of the ingress allowlist for such mid-stream
packets (ACK set, SYN clear). The kernel test below opens a TCP session
between two fresh namespaces, loads the table while it is open, and has the
host send first: with the rules the data arrives, without them (the control)
it does not, which is the stall the lab measured (27 s, until the rollback).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from ansible.module_utils import airgap_nft as n

INGRESS = [{"name": "ssh-v4", "src": "10.250.7.1/32", "proto": "tcp", "ports": [2222]},
           {"name": "ssh-v6", "src": "fd00:250:7::1/128", "proto": "tcp", "ports": [2222]},
           {"name": "ntp-in", "src": "10.250.7.0/24", "proto": "udp", "ports": [123]}]
EGRESS = [{"name": "mirror", "dest": "10.250.8.10/32", "proto": "tcp", "ports": [80]}]


def _output_chain(text):
    chain = text.split("chain output {", 1)[1].split("\n\t}", 1)[0]
    return [line.strip() for line in chain.splitlines() if line.strip()]


def _render(ingress=INGRESS, egress=EGRESS, options=None):
    return n.render(n.normalize_egress(egress), n.normalize_ingress(ingress), options)


def test_one_midstream_rule_per_ingress_tcp_set_and_none_for_udp():
    rules = [r for r in _output_chain(_render()) if "mid-stream" in r]
    assert rules == [
        'ip daddr . tcp sport @ingress4_tcp ct state new tcp flags & (syn | ack) == ack accept comment '
        '"host side of an admitted inbound TCP flow picked up mid-stream/IPv4"',
        'ip6 daddr . tcp sport @ingress6_tcp ct state new tcp flags & (syn | ack) == ack accept comment '
        '"host side of an admitted inbound TCP flow picked up mid-stream/IPv6"']


def test_no_ingress_means_no_midstream_rule():
    assert not [r for r in _output_chain(_render(ingress=[])) if "mid-stream" in r]


def test_midstream_rules_sit_after_the_invalid_drop_and_before_the_egress_allowlist():
    rules = _output_chain(_render())
    invalid = rules.index('ct state invalid drop comment "not part of any valid flow"')
    mid = [i for i, r in enumerate(rules) if "mid-stream" in r]
    egress = [i for i, r in enumerate(rules) if "egress allowlist" in r]
    assert invalid < min(mid) and max(mid) < min(egress)


def test_interface_bound_ingress_gets_an_interface_bound_midstream_rule():
    ingress = [{"name": "ssh", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22], "interfaces": ["mgmt"]}]
    rules = [r for r in _output_chain(_render(ingress=ingress)) if "mid-stream" in r]
    assert len(rules) == 1
    assert rules[0].startswith("oifname . ip daddr . tcp sport @ingress4_tcp_if ")


# ---------------------------------------------------------------- the kernel test

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nft and ip to work in private network namespaces")

SERVER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 2222))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
print("accepted", flush=True)
sys.stdin.readline()          # the test loads the table, then says "go"
c.sendall(b"host speaks first")
print("sent", flush=True)
sys.stdin.readline()
"""

CLIENT = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
c = socket.create_connection((sys.argv[1], 2222), timeout=5)
print("connected", flush=True)
c.settimeout(float(sys.argv[2]))
try:
    print("received " + c.recv(100).decode(), flush=True)
except socket.timeout:
    print("stalled", flush=True)
"""


def _ns(name, *cmd):
    return ["ip", "netns", "exec", name] + list(cmd)


@pytest.fixture
def namespace_pair():
    """Two fresh namespaces joined by a veth pair: the controller and the host."""
    tag = uuid.uuid4().hex[:6]
    ctl, host = "mid-ctl-" + tag, "mid-host-" + tag
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ctl)
    run("ip", "netns", "add", host)
    try:
        run("ip", "link", "add", "v-" + tag, "netns", ctl, "type", "veth", "peer", "name", "h-" + tag, "netns", host)
        for ns, dev, v4, v6 in ((ctl, "v-" + tag, "10.250.7.1/24", "fd00:250:7::1/64"),
                                (host, "h-" + tag, "10.250.7.2/24", "fd00:250:7::2/64")):
            run(*_ns(ns, "ip", "addr", "add", v4, "dev", dev))
            run(*_ns(ns, "ip", "addr", "add", v6, "dev", dev, "nodad"))
            run(*_ns(ns, "ip", "link", "set", dev, "up"))
            run(*_ns(ns, "ip", "link", "set", "lo", "up"))
        yield ctl, host
    finally:
        subprocess.run(["ip", "netns", "del", ctl], capture_output=True)
        subprocess.run(["ip", "netns", "del", host], capture_output=True)


def _session_after_first_load(ctl, host, table_text, server_addr, wait):
    """Open a session, load the table in the host, let the host send first; return what the client saw."""
    server = subprocess.Popen(_ns(host, sys.executable, "-c", SERVER, server_addr),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout.readline().strip() == "listening"
        client = subprocess.Popen(_ns(ctl, sys.executable, "-c", CLIENT, server_addr, str(wait)),
                                  stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "connected"
        assert server.stdout.readline().strip() == "accepted"
        # Nothing in this namespace has used conntrack yet: the session is untracked.
        subprocess.run(_ns(host, "nft", "-f", "-"), input=table_text, text=True, check=True)
        server.stdin.write("go\n")
        server.stdin.flush()
        return client.stdout.readline().strip()
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait()


@needs_netns
@pytest.mark.parametrize("server_addr", ["10.250.7.2", "fd00:250:7::2"])
def test_open_session_survives_the_first_load_of_the_table(namespace_pair, server_addr):
    ctl, host = namespace_pair
    seen = _session_after_first_load(ctl, host, _render(), server_addr, wait=5)
    assert seen == "received host speaks first"


@needs_netns
def test_control_without_the_midstream_rules_the_session_stalls(namespace_pair):
    """The positive control: the kernel test can fail, and fails for the reason the rules exist."""
    ctl, host = namespace_pair
    text = "".join(line for line in _render().splitlines(True) if "mid-stream" not in line)
    seen = _session_after_first_load(ctl, host, text, "10.250.7.2", wait=3)
    assert seen == "stalled"
