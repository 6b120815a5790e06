# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for module_utils/airgap_probe.py: validation, and classification with real packets.

Everything talks only to 127.0.0.1, ::1, or to two network namespaces this file
creates itself (10.250.0.0/30 and fd00:250::/64 exist only inside them).
"""

import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from ansible.module_utils.airgap_probe import (
    DEFAULT_QNAME,
    ProbeInputError,
    build_dns_query,
    classify_errno,
    normalize_target,
    parse_dns_rcode,
    probe_dns,
    probe_icmp,
    probe_targets,
    probe_tcp,
    probe_udp,
    validate_targets,
)

PROBE_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "module_utils", "airgap_probe.py")
# The monitor runs under the distribution's python3, outside any virtualenv.
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
LOOPBACKS = [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: raw sockets, network namespaces, nftables")
NEED_TOOLS = pytest.mark.skipif(not (shutil.which("ip") and shutil.which("nft")), reason="needs iproute2 and nft")


# ------------------------------------------------------------------ validation

def test_normalize_fills_defaults_and_family():
    t = normalize_target({"dest": "fd00::1", "proto": "dns"})
    assert t == {"name": "dns [fd00::1]:53", "dest": "fd00::1", "proto": "dns", "port": 53,
                 "family": "ipv6", "timeout": None, "qname": DEFAULT_QNAME, "expect": None}
    t = normalize_target({"dest": "10.0.0.1", "proto": "tcp", "port": "443", "timeout": "1.5",
                          "name": "web", "expect": "blocked"})
    assert (t["port"], t["timeout"], t["family"], t["name"], t["expect"]) == (443, 1.5, "ipv4", "web", "blocked")
    assert normalize_target({"dest": "10.0.0.1", "proto": "icmp"})["port"] is None
    assert normalize_target({"dest": "10.0.0.1", "proto": "dns", "qname": "a.b"})["qname"] == "a.b."
    # A normalized target normalizes to itself, so probe_* accept either form.
    assert normalize_target(t) == t


@pytest.mark.parametrize("target, field, words", [
    ({"dest": "example.com", "proto": "tcp", "port": 80}, "dest", "host name"),
    ({"dest": "10.0.0.0/24", "proto": "tcp", "port": 80}, "dest", "network"),
    ({"dest": "10.0.0.300", "proto": "tcp", "port": 80}, "dest", "not an IPv4 or IPv6"),
    ({"dest": "224.0.0.1", "proto": "udp", "port": 80}, "dest", "unicast"),
    ({"dest": "::", "proto": "udp", "port": 80}, "dest", "unicast"),
    ({"proto": "tcp", "port": 80}, "dest", "required"),
    ({"dest": "10.0.0.1", "proto": "sctp", "port": 80}, "proto", "must be one of"),
    ({"dest": "10.0.0.1", "proto": "tcp"}, "port", "required for proto tcp"),
    ({"dest": "10.0.0.1", "proto": "udp", "port": 0}, "port", "1 to 65535"),
    ({"dest": "10.0.0.1", "proto": "udp", "port": True}, "port", "1 to 65535"),
    ({"dest": "10.0.0.1", "proto": "icmp", "port": 7}, "port", "not allowed for proto icmp"),
    ({"dest": "10.0.0.1", "proto": "tcp", "port": 80, "timeout": 0}, "timeout", "greater than 0"),
    ({"dest": "10.0.0.1", "proto": "tcp", "port": 80, "timeout": "soon"}, "timeout", "number of seconds"),
    ({"dest": "10.0.0.1", "proto": "tcp", "port": 80, "qname": "x."}, "qname", "only applies to proto dns"),
    ({"dest": "10.0.0.1", "proto": "dns", "qname": "bad..name"}, "qname", "not a valid DNS name"),
    ({"dest": "10.0.0.1", "proto": "tcp", "port": 80, "expect": "open"}, "expect", "blocked, reachable"),
    ({"dest": "10.0.0.1", "proto": "tcp", "port": 80, "prot": "udp"}, "prot", "not a known key"),
    ({"dest": "10.0.0.1", "proto": "tcp", "port": 80, "family": "ipv6"}, "family", "derived from dest"),
    ("10.0.0.1", "target", "mapping"),
])
def test_normalize_rejects_bad_input_naming_the_field(target, field, words):
    with pytest.raises(ProbeInputError) as info:
        normalize_target(target)
    assert info.value.field == field
    assert "'%s'" % field in str(info.value) and words in str(info.value)


def test_validate_targets_names_index_and_name():
    good = {"dest": "10.0.0.1", "proto": "icmp"}
    with pytest.raises(ProbeInputError) as info:
        validate_targets([good, {"name": "ntp", "dest": "10.0.0.2", "proto": "udp"}])
    assert str(info.value).startswith("targets[1] (ntp): field 'port'")
    with pytest.raises(ProbeInputError, match=r"^targets\[0\]: field 'dest'"):
        validate_targets([{"dest": "ntp.example", "proto": "udp", "port": 123}])


def test_probe_targets_reports_bad_target_as_error_and_rejects_bad_options():
    results = probe_targets([{"dest": "localhost", "proto": "tcp", "port": 1}], timeout=0.5)
    assert (results[0]["status"], results[0]["reason"]) == ("error", "invalid")
    assert "host name" in results[0]["detail"]
    for kwargs, field in (({"timeout": -1}, "timeout"), ({"workers": 0}, "workers"),
                          ({"icmp_mode": "magic"}, "icmp_mode")):
        with pytest.raises(ProbeInputError) as info:
            probe_targets([], **kwargs)
        assert info.value.field == field


@pytest.mark.parametrize("err, expected", [
    (errno.ECONNREFUSED, ("reachable", "refused")),
    (errno.EPERM, ("blocked", "permission")),
    (errno.EACCES, ("blocked", "permission")),
    (errno.EHOSTUNREACH, ("blocked", "unreachable")),
    (errno.ENETUNREACH, ("blocked", "unreachable")),
    (errno.EADDRNOTAVAIL, ("blocked", "unreachable")),
    (errno.ETIMEDOUT, ("blocked", "timeout")),
    (errno.EMSGSIZE, ("error", "invalid")),  # unknown meaning: fail closed
    (None, ("error", "invalid")),
])
def test_classify_errno(err, expected):
    assert classify_errno(err) == expected


def test_dns_query_wire_format():
    query = build_dns_query("a.bc.", 0x1234)
    assert query[:12] == struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    assert query[12:] == b"\x01a\x02bc\x00\x00\x01\x00\x01"
    answer = struct.pack("!HH", 0x1234, 0x8183) + query[4:]
    assert parse_dns_rcode(answer, 0x1234) == 3
    assert parse_dns_rcode(answer, 0x1235) is None
    assert parse_dns_rcode(query, 0x1234) is None  # a query (QR=0) is not a response


# ------------------------------------------------------------------ real sockets on loopback

class UdpServer:
    """A real UDP server thread; ``answer(data)`` returns the reply or None for silence."""

    def __init__(self, host, family, answer):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            self.received += 1
            reply = self.answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


def dns_answer(id_offset=0):
    """Answer a DNS query with NXDOMAIN, using the query's id plus ``id_offset``."""
    def answer(query):
        qid = (struct.unpack("!H", query[:2])[0] + id_offset) & 0xFFFF
        return struct.pack("!HH", qid, 0x8183) + query[4:]
    return answer


@pytest.fixture
def udp_server():
    servers = []

    def make(host, family, answer):
        servers.append(UdpServer(host, family, answer))
        return servers[-1]
    yield make
    for server in servers:
        server.close()


def closed_port(host, family, kind):
    """A port nothing listens on (bound then released)."""
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("host, family", LOOPBACKS)
def test_tcp_listening_is_connected_and_closed_is_refused(host, family):
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        res = probe_tcp({"dest": host, "proto": "tcp", "port": port}, timeout=2)
        assert (res["status"], res["reason"]) == ("reachable", "connected")
        assert res["family"] == ("ipv6" if family == socket.AF_INET6 else "ipv4")
        assert listener.accept()[0] is not None  # the handshake really happened
    res = probe_tcp({"dest": host, "proto": "tcp", "port": closed_port(host, family, socket.SOCK_STREAM)})
    assert (res["status"], res["reason"]) == ("reachable", "refused")
    assert "ECONNREFUSED" in res["detail"]


@pytest.mark.parametrize("host, family", LOOPBACKS)
def test_udp_echo_replied_closed_refused_silent_timeout(host, family, udp_server):
    echo = udp_server(host, family, lambda data: data)
    res = probe_udp({"dest": host, "proto": "udp", "port": echo.port}, timeout=2)
    assert (res["status"], res["reason"]) == ("reachable", "replied")
    assert echo.received == 1
    res = probe_udp({"dest": host, "proto": "udp", "port": closed_port(host, family, socket.SOCK_DGRAM)})
    assert (res["status"], res["reason"]) == ("reachable", "refused")
    silent = udp_server(host, family, lambda data: None)
    res = probe_udp({"dest": host, "proto": "udp", "port": silent.port}, timeout=0.3)
    assert (res["status"], res["reason"]) == ("blocked", "timeout")
    assert silent.received == 1 and res["elapsed_ms"] >= 300


@pytest.mark.parametrize("host, family", LOOPBACKS)
def test_dns_matching_id_replied(host, family, udp_server):
    server = udp_server(host, family, dns_answer())
    res = probe_dns({"dest": host, "proto": "dns", "port": server.port}, timeout=2)
    assert (res["status"], res["reason"]) == ("reachable", "replied")
    assert "NXDOMAIN" in res["detail"]


@pytest.mark.parametrize("host, family", LOOPBACKS)
def test_dns_wrong_id_is_not_a_dns_reply_but_still_shows_the_path(host, family, udp_server):
    server = udp_server(host, family, dns_answer(id_offset=1))
    res = probe_dns({"dest": host, "proto": "dns", "port": server.port}, timeout=0.3)
    assert (res["status"], res["reason"]) == ("reachable", "replied")
    assert "none was a DNS response" in res["detail"]
    silent = udp_server(host, family, lambda data: None)
    res = probe_dns({"dest": host, "proto": "dns", "port": silent.port}, timeout=0.3)
    assert (res["status"], res["reason"]) == ("blocked", "timeout")


@ROOT_ONLY
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_icmp_echo_replied_over_raw_socket(host):
    res = probe_icmp({"dest": host, "proto": "icmp"}, timeout=2, mode="raw")
    assert (res["status"], res["reason"]) == ("reachable", "replied")
    assert "raw socket" in res["detail"]


def test_probe_targets_keeps_order_and_runs_in_parallel(udp_server):
    silent = udp_server("127.0.0.1", socket.AF_INET, lambda data: None)
    targets = [{"name": "t%d" % i, "dest": "127.0.0.1", "proto": "udp", "port": silent.port} for i in range(6)]
    started = time.monotonic()
    results = probe_targets(targets, timeout=0.5, workers=6)
    parallel = time.monotonic() - started
    assert [r["name"] for r in results] == ["t%d" % i for i in range(6)]
    assert all(r["status"] == "blocked" for r in results)
    assert parallel < 2.0  # six 0.5 s waits one after the other would take 3 s
    started = time.monotonic()
    probe_targets(targets[:4], timeout=0.4, workers=2)
    assert time.monotonic() - started >= 0.75  # two rounds: the pool is bounded


def test_cli_runs_with_stdlib_only(tmp_path):
    """-I -S: no site-packages, so importing anything outside the standard library fails."""
    port = closed_port("127.0.0.1", socket.AF_INET, socket.SOCK_STREAM)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"targets": [{"dest": "127.0.0.1", "proto": "tcp", "port": port}]}))
    proc = subprocess.run([SYSTEM_PYTHON, "-I", "-S", PROBE_FILE, "--json", str(good), "--timeout", "1"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [(r["status"], r["reason"]) for r in json.loads(proc.stdout)] == [("reachable", "refused")]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "web", "dest": "web.example", "proto": "tcp", "port": 80}]))
    proc = subprocess.run([SYSTEM_PYTHON, "-I", "-S", PROBE_FILE, "--json", str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "targets[0] (web): field 'dest'" in proc.stderr


# ------------------------------------------------------------------ network namespaces

def test_missing_netns_path_makes_every_result_error():
    targets = [{"dest": "10.250.0.1", "proto": "tcp", "port": 1}, {"dest": "fd00:250::1", "proto": "icmp"}]
    results = probe_targets(targets, netns="/run/netns/airgap-probe-does-not-exist")
    assert [(r["status"], r["reason"]) for r in results] == [("error", "invalid")] * 2
    assert "ENOENT" in results[0]["detail"]


@ROOT_ONLY
def test_non_network_namespace_path_is_error(tmp_path):
    plain = tmp_path / "not-a-namespace"
    plain.write_text("")
    for path in (str(plain), "/proc/self/ns/uts"):
        results = probe_targets([{"dest": "10.250.0.1", "proto": "icmp"}], netns=path)
        assert (results[0]["status"], results[0]["reason"]) == ("error", "invalid")
        assert "not a network namespace" in results[0]["detail"]


LISTENER = r"""
import socket, struct, sys, threading
def serve_tcp(s):
    while True:
        s.accept()[0].close()
def serve_udp(s, dns):
    while True:
        data, peer = s.recvfrom(4096)
        if dns:
            data = data[:2] + struct.pack("!H", 0x8183) + data[4:]
        s.sendto(data, peer)
socks = []
for host, fam in (("10.250.0.1", socket.AF_INET), ("fd00:250::1", socket.AF_INET6)):
    t = socket.socket(fam, socket.SOCK_STREAM); t.bind((host, 8080)); t.listen(16)
    threading.Thread(target=serve_tcp, args=(t,), daemon=True).start()
    for port, dns in ((9999, False), (5353, True)):
        u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((host, port))
        threading.Thread(target=serve_udp, args=(u, dns), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def _ip(*args):
    subprocess.run(("ip",) + args, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def namespaces(request):
    """Two fresh namespaces on a veth pair: srv (listeners, .1/::1) and cli (prober, .2/::2)."""
    tag = "agp%d" % os.getpid()
    srv, cli = tag + "s", tag + "c"
    state = {"created": [], "listener": None}

    def cleanup():
        if state["listener"] is not None:
            state["listener"].kill()
            state["listener"].wait()
        for name in state["created"]:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    request.addfinalizer(cleanup)

    for name in (srv, cli):
        _ip("netns", "add", name)
        state["created"].append(name)
        _ip("-n", name, "link", "set", "lo", "up")
    _ip("link", "add", tag + "a", "netns", srv, "type", "veth", "peer", "name", tag + "b", "netns", cli)
    for name, dev, v4, v6 in ((srv, tag + "a", "10.250.0.1/30", "fd00:250::1/64"),
                              (cli, tag + "b", "10.250.0.2/30", "fd00:250::2/64")):
        _ip("-n", name, "addr", "add", v4, "dev", dev)
        _ip("-n", name, "addr", "add", v6, "dev", dev, "nodad")
        _ip("-n", name, "link", "set", dev, "up")
    listener = subprocess.Popen(["ip", "netns", "exec", srv, "python3", "-I", "-c", LISTENER],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    state["listener"] = listener
    assert listener.stdout.readline().strip() == "ready"
    return {"srv": srv, "cli": cli, "cli_path": "/run/netns/" + cli, "cli_dev": tag + "b",
            "listener_pid": listener.pid}


def _matrix():
    """TCP, UDP, ICMP and DNS to the srv namespace over IPv4 and IPv6."""
    targets = []
    for dest in ("10.250.0.1", "fd00:250::1"):
        targets += [{"dest": dest, "proto": "tcp", "port": 8080},
                    {"dest": dest, "proto": "udp", "port": 9999},
                    {"dest": dest, "proto": "icmp"},
                    {"dest": dest, "proto": "dns", "port": 5353}]
    return targets


# One statement per line: nftables 1.0.6 (Debian 12) rejects a rule followed by '}' on one line.
_OUTPUT_CHAIN = "table inet %s {\n chain out {\n  type filter hook output priority 0;\n  %s\n }\n}\n"


def _nft(ns, ruleset):
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, check=True,
                   capture_output=True, text=True)


def _outcomes(results):
    return {r["name"]: (r["status"], r["reason"]) for r in results}


@ROOT_ONLY
@NEED_TOOLS
def test_netns_positive_control_then_nftables_drop(namespaces):
    own_ns = os.readlink("/proc/self/ns/net")
    targets = _matrix() + [{"name": "closed", "dest": "fd00:250::1", "proto": "tcp", "port": 8081}]
    before = _outcomes(probe_targets(targets, timeout=2, netns=namespaces["cli_path"]))
    expected = {"tcp": "connected", "udp": "replied", "icmp": "replied", "dns": "replied"}
    for target in _matrix():
        name = normalize_target(target)["name"]
        assert before[name] == ("reachable", expected[target["proto"]]), name
    assert before["closed"] == ("reachable", "refused")
    assert os.readlink("/proc/self/ns/net") == own_ns  # only the child entered the namespace

    _nft(namespaces["cli"], _OUTPUT_CHAIN % ("agp_block", 'oifname "%s" drop' % namespaces["cli_dev"]))
    try:
        after = probe_targets(_matrix(), timeout=1, netns=namespaces["cli_path"])
    finally:
        _nft(namespaces["cli"], "delete table inet agp_block")
    for result in after:
        assert result["status"] == "blocked", result
        assert result["reason"] in ("permission", "timeout"), result
        if result["proto"] != "tcp":  # datagrams fail at send(); TCP's SYN is retried until the timeout
            assert result["reason"] == "permission", result
    assert {r["family"] for r in after} == {"ipv4", "ipv6"}


@ROOT_ONLY
@NEED_TOOLS
def test_netns_reject_admin_prohibited_is_unreachable(namespaces):
    targets = [t for t in _matrix() if t["proto"] in ("tcp", "udp")]
    assert all(r["status"] == "reachable" for r in probe_targets(targets, netns=namespaces["cli_path"]))
    _nft(namespaces["cli"], _OUTPUT_CHAIN % ("agp_reject", 'oifname "%s" reject with icmpx type admin-prohibited'
                                             % namespaces["cli_dev"]))
    try:
        # 3 s: the kernel rate-limits ICMPv6 errors, so TCP may only see the reject of its SYN retry.
        after = probe_targets(targets, timeout=3, netns=namespaces["cli_path"])
    finally:
        _nft(namespaces["cli"], "delete table inet agp_reject")
    # TCP gets the ICMP error back: IPv4 "prohibited" is EHOSTUNREACH, ICMPv6 "administratively
    # prohibited" is EACCES. A datagram's send() already fails with EPERM.
    expected = {("tcp", "ipv4"): "unreachable", ("tcp", "ipv6"): "permission",
                ("udp", "ipv4"): "permission", ("udp", "ipv6"): "permission"}
    for result in after:
        assert result["status"] == "blocked", result["detail"]
        assert result["reason"] == expected[(result["proto"], result["family"])], result["detail"]


@ROOT_ONLY
@NEED_TOOLS
def test_netns_by_proc_pid_and_ping_socket_modes(namespaces):
    # /proc/<pid>/ns/net: the listener's namespace (srv), probing its own address.
    srv_path = "/proc/%d/ns/net" % namespaces["listener_pid"]
    res = probe_targets([{"dest": "10.250.0.1", "proto": "tcp", "port": 8080}], netns=srv_path)
    assert (res[0]["status"], res[0]["reason"]) == ("reachable", "connected")
    # A fresh namespace has ping_group_range "1 0": no ping socket even for root -> the prober cannot work.
    res = probe_targets([{"dest": "10.250.0.1", "proto": "icmp"}], netns=srv_path, icmp_mode="dgram")
    assert (res[0]["status"], res[0]["reason"]) == ("error", "permission")
    # Once the group may use ping sockets, the unprivileged path works for ICMP and ICMPv6.
    subprocess.run(["ip", "netns", "exec", namespaces["cli"], "sysctl", "-q", "-w",
                    "net.ipv4.ping_group_range=0 0"], check=True)
    res = probe_targets([{"dest": "10.250.0.1", "proto": "icmp"}, {"dest": "fd00:250::1", "proto": "icmp"}],
                        netns=namespaces["cli_path"], icmp_mode="dgram")
    assert [(r["status"], r["reason"]) for r in res] == [("reachable", "replied")] * 2, res
    assert all("dgram socket" in r["detail"] for r in res)


@ROOT_ONLY
@NEED_TOOLS
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_unprivileged_prober_reports_icmp_error_and_cli_exits_1(namespaces):
    """As nobody in srv (no raw socket, ping sockets not allowed), ICMP must read error, not blocked."""
    targets = [{"dest": "10.250.0.1", "proto": "icmp"}, {"dest": "10.250.0.1", "proto": "tcp", "port": 8080}]
    proc = subprocess.run(["ip", "netns", "exec", namespaces["srv"], "setpriv", "--reuid=65534", "--regid=65534",
                           "--clear-groups", SYSTEM_PYTHON, "-I", "-S", PROBE_FILE, "--json", "-"],
                          input=json.dumps(targets), capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    results = json.loads(proc.stdout)
    assert [(r["status"], r["reason"]) for r in results] == [("error", "permission"), ("reachable", "connected")]
