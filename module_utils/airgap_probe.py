# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Egress probing with real packets: TCP, UDP, ICMP/ICMPv6 and DNS, IPv4 and IPv6.

Used by the ``egress_probe`` module (firewall verify step, audit) and, without
Ansible, by the isolation monitor daemon. This file therefore imports only the
Python standard library.

A target is a dict::

    {name?, dest, proto, port?, timeout?, qname?, expect?}

``dest`` is an IPv4 or IPv6 address literal; host names are refused because an
air-gapped host may have no DNS and a probe must not depend on it. ``proto`` is
``tcp``, ``udp``, ``icmp`` (ICMPv6 for an IPv6 dest) or ``dns``. ``port`` is
required for tcp/udp, defaults to 53 for dns and is refused for icmp.
``qname`` (dns only) defaults to ``airgap-probe.invalid.``. ``expect`` is
carried for callers (the module compares it); probing ignores it.

Each result is a dict ``{name, dest, proto, port, family, status, reason,
detail, elapsed_ms}`` with ``family`` ``ipv4``/``ipv6`` and:

======================================  =========  ===========
What happened                           status     reason
======================================  =========  ===========
TCP handshake completed                 reachable  connected
TCP ECONNREFUSED/ECONNRESET (a reset)   reachable  refused
UDP datagram came back                  reachable  replied
UDP ECONNREFUSED (ICMP port unreach.)   reachable  refused
ICMP echo reply, same id/seq/payload    reachable  replied
DNS response with the query's id        reachable  replied
EPERM/EACCES on connect/send            blocked    permission
no answer in time, or ETIMEDOUT         blocked    timeout
EHOSTUNREACH, ENETUNREACH,              blocked    unreachable
EADDRNOTAVAIL, ENETDOWN, EHOSTDOWN
cannot open the socket (no raw socket,  error      permission
no ping socket) or enter the namespace
bad target, bad netns path, or an OS    error      invalid
error with no known meaning
======================================  =========  ===========

Notes that matter to anyone reading these results as isolation evidence:

* ``refused`` means a remote host (or something on the path) answered, so
  packets leave this host: an isolation check must count it as a leak. A local
  nftables ``reject`` with the default ICMP *port unreachable* or a TCP reset
  reads the same, so a firewall should ``drop`` or reject with
  ``admin-prohibited`` (TCP then reads ``unreachable`` over IPv4 and
  ``permission`` over IPv6, where that ICMPv6 code means EACCES; a
  datagram's send() already fails with EPERM, ``permission``).
* ``unreachable`` can also come from a remote router's ICMP error, i.e. after
  the packet left; it is reported as blocked because the destination itself
  was not reached.
* UDP caveat: a silent UDP service cannot be told from a drop (both time out).
  That is why the lab's canary answers every datagram and logs it.
* A DNS reply from the destination that does not match the query id is
  ignored while waiting; if nothing matching arrives the probe still reports
  ``reachable``/``replied`` (the destination did answer), with a detail saying so.
* ``error`` means the prober itself could not work (``error``/``timeout``:
  the prober in a namespace overran its time budget and was killed). Callers
  such as the isolation monitor must fail closed on it.

``netns`` (``/proc/<pid>/ns/net``, ``/run/netns/<name>``) probes from inside
another network namespace: a forked child enters it with setns(2) and sends the
results back as JSON over a pipe; the calling process never changes namespace.
fork() copies only the calling thread, so call it from a thread that is not
racing other threads for locks (a daemon's main loop, an Ansible module).

CLI: ``python3 airgap_probe.py --json targets.json [--netns PATH]`` prints the
results as JSON; exit 0 when no result is ``error``, 1 when some are, 2 on bad
input.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import concurrent.futures
import ctypes
import errno
import ipaddress
import json
import math
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import time

PROTOS = ("tcp", "udp", "icmp", "dns")
STATUSES = ("reachable", "blocked", "error")
REASONS = ("connected", "replied", "refused", "timeout", "unreachable", "permission", "invalid")
EXPECTS = ("blocked", "reachable")
ICMP_MODES = ("auto", "raw", "dgram")
TARGET_KEYS = ("name", "dest", "proto", "port", "timeout", "qname", "expect", "family")
RESULT_KEYS = ("name", "dest", "proto", "port", "family", "status", "reason", "detail", "elapsed_ms")

DEFAULT_TIMEOUT = 2.0
DEFAULT_WORKERS = 16
DEFAULT_DNS_PORT = 53
DEFAULT_QNAME = "airgap-probe.invalid."
MAX_TIMEOUT = 300.0
MAX_WORKERS = 256

CLONE_NEWNET = 0x40000000

_rng = random.SystemRandom()

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")

# errno -> (status, reason). Anything not listed is an error the classifier
# cannot vouch for, so it reads as status error (fail closed).
_ERRNO_CLASS = {
    errno.ECONNREFUSED: ("reachable", "refused"),
    errno.ECONNRESET: ("reachable", "refused"),
    errno.EPERM: ("blocked", "permission"),
    errno.EACCES: ("blocked", "permission"),
    errno.ETIMEDOUT: ("blocked", "timeout"),
    errno.EHOSTUNREACH: ("blocked", "unreachable"),
    errno.ENETUNREACH: ("blocked", "unreachable"),
    errno.EADDRNOTAVAIL: ("blocked", "unreachable"),
    errno.ENETDOWN: ("blocked", "unreachable"),
    errno.EHOSTDOWN: ("blocked", "unreachable"),
}

_MEANING = {
    "refused": "a host answered (TCP reset or ICMP port unreachable), so packets leave this host",
    "permission": "the local firewall dropped or rejected the packet before it left",
    "unreachable": "no route, or an ICMP unreachable/prohibited came back",
    "timeout": "no answer",
}

_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class ProbeInputError(ValueError):
    """A target or option that does not have the documented shape.

    ``field`` names the offending key so callers can point the user at it.
    """

    def __init__(self, field, message, where=None):
        self.field = field
        self.message = message
        self.where = where
        prefix = "%s: " % where if where else ""
        super(ProbeInputError, self).__init__("%sfield '%s' %s" % (prefix, field, message))


# ---------------------------------------------------------------- validation

def _parse_dest(dest):
    """Return (address text, family) for an address literal, or raise."""
    if dest is None or dest == "":
        raise ProbeInputError("dest", "is required: an IPv4 or IPv6 address literal")
    if not isinstance(dest, str):
        raise ProbeInputError("dest", "must be an address string, got %r" % (dest,))
    text = dest.strip()
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        if "/" in text:
            raise ProbeInputError("dest", "%r is a network; give a single address" % dest)
        if _HOSTNAME_RE.match(text) and not text.replace(".", "").isdigit():
            raise ProbeInputError("dest", "%r is a host name; give an IPv4 or IPv6 address literal "
                                  "(air-gapped hosts may have no DNS and a probe must not depend on it)"
                                  % dest)
        raise ProbeInputError("dest", "%r is not an IPv4 or IPv6 address" % dest)
    if addr.is_multicast or addr.is_unspecified or text == "255.255.255.255":
        raise ProbeInputError("dest", "%r must be a unicast address" % dest)
    return str(addr), "ipv%d" % addr.version


def _parse_port(proto, value):
    """Return the port for ``proto`` (None for icmp), or raise."""
    if proto == "icmp":
        if value is not None:
            raise ProbeInputError("port", "is not allowed for proto icmp (ICMP has no ports), got %r" % (value,))
        return None
    if value is None:
        if proto == "dns":
            return DEFAULT_DNS_PORT
        raise ProbeInputError("port", "is required for proto %s" % proto)
    if isinstance(value, str) and _PORT_RE.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ProbeInputError("port", "must be an integer from 1 to 65535, got %r" % (value,))
    return value


def parse_timeout(value, field="timeout"):
    """Return ``value`` as seconds (0 < t <= 300), or raise naming ``field``."""
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)
    except (TypeError, ValueError):
        raise ProbeInputError(field, "must be a number of seconds, got %r" % (value,))
    if not (0 < seconds <= MAX_TIMEOUT) or math.isnan(seconds):
        raise ProbeInputError(field, "must be greater than 0 and at most %g seconds, got %r" % (MAX_TIMEOUT, value))
    return seconds


def _parse_qname(proto, value):
    """Return the fully qualified query name for dns (None otherwise), or raise."""
    if proto != "dns":
        if value is not None:
            raise ProbeInputError("qname", "only applies to proto dns, not %s" % proto)
        return None
    if value is None:
        return DEFAULT_QNAME
    if not isinstance(value, str) or not value.strip(".").strip():
        raise ProbeInputError("qname", "must be a DNS name such as %r, got %r" % (DEFAULT_QNAME, value))
    name = value.strip().rstrip(".")
    if len(name) > 253 or not all(_LABEL_RE.match(label) for label in name.split(".")):
        raise ProbeInputError("qname", "%r is not a valid DNS name (labels of letters, digits, '-', '_', "
                              "at most 63 characters each)" % value)
    return name + "."


def _default_name(proto, dest, family, port):
    """Return a readable label such as ``tcp [fd00::1]:443``."""
    if port is None:
        return "%s %s" % (proto, dest)
    host = "[%s]" % dest if family == "ipv6" else dest
    return "%s %s:%d" % (proto, host, port)


def normalize_target(target):
    """Validate one target and return it with every key filled in.

    Returns ``{name, dest, proto, port, family, timeout, qname, expect}``
    (timeout None means "use the caller's"). Raises ProbeInputError naming the
    field. Idempotent: a normalized target normalizes to itself.
    """
    if not isinstance(target, dict):
        raise ProbeInputError("target", "must be a mapping with dest and proto, got %s" % type(target).__name__)
    unknown = sorted(str(k) for k in target if k not in TARGET_KEYS)
    if unknown:
        raise ProbeInputError(unknown[0], "is not a known key; allowed: %s" % ", ".join(TARGET_KEYS))
    proto = target.get("proto")
    if proto not in PROTOS:
        raise ProbeInputError("proto", "must be one of %s, got %r" % (", ".join(PROTOS), proto))
    dest, family = _parse_dest(target.get("dest"))
    if target.get("family") not in (None, family):
        raise ProbeInputError("family", "is derived from dest (%s), got %r" % (family, target["family"]))
    port = _parse_port(proto, target.get("port"))
    timeout = target.get("timeout")
    if timeout is not None:
        timeout = parse_timeout(timeout)
    qname = _parse_qname(proto, target.get("qname"))
    expect = target.get("expect")
    if expect is not None and expect not in EXPECTS:
        raise ProbeInputError("expect", "must be one of %s, got %r" % (", ".join(EXPECTS), expect))
    name = target.get("name")
    if name is None or name == "":
        name = _default_name(proto, dest, family, port)
    elif not isinstance(name, str):
        raise ProbeInputError("name", "must be a string, got %r" % (name,))
    return {"name": name, "dest": dest, "proto": proto, "port": port, "family": family,
            "timeout": timeout, "qname": qname, "expect": expect}


def validate_targets(targets):
    """Normalize a list of targets; the error names the index and name of the bad one."""
    if not isinstance(targets, (list, tuple)):
        raise ProbeInputError("targets", "must be a list of targets, got %s" % type(targets).__name__)
    out = []
    for index, target in enumerate(targets):
        try:
            out.append(normalize_target(target))
        except ProbeInputError as exc:
            where = "targets[%d]" % index
            if isinstance(target, dict) and target.get("name"):
                where += " (%s)" % target["name"]
            raise ProbeInputError(exc.field, exc.message, where=where)
    return out


def check_options(timeout, workers, icmp_mode="auto"):
    """Validate probe_targets' options; return (timeout, workers)."""
    timeout = parse_timeout(timeout)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ProbeInputError("workers", "must be an integer from 1 to %d, got %r" % (MAX_WORKERS, workers))
    if icmp_mode not in ICMP_MODES:
        raise ProbeInputError("icmp_mode", "must be one of %s, got %r" % (", ".join(ICMP_MODES), icmp_mode))
    return timeout, workers


# ---------------------------------------------------------------- results

def _result(t, status, reason, detail, started):
    """Build a result dict for normalized target ``t``."""
    return {"name": t["name"], "dest": t["dest"], "proto": t["proto"], "port": t["port"],
            "family": t["family"], "status": status, "reason": reason, "detail": detail,
            "elapsed_ms": round((time.monotonic() - started) * 1000.0, 1) if started else 0.0}


def _raw_result(target, status, reason, detail):
    """A result for a target that may not even be valid: copy what is there."""
    src = target if isinstance(target, dict) else {}
    fields = {k: src.get(k) for k in ("name", "dest", "proto", "port", "family")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, (str, int, float)):
            fields[key] = repr(value)
    fields.update(status=status, reason=reason, detail=detail, elapsed_ms=0.0)
    return fields


def classify_errno(err):
    """Map an errno to (status, reason); unknown errnos are (error, invalid)."""
    return _ERRNO_CLASS.get(err, ("error", "invalid"))


def _errno_text(err):
    """``ECONNREFUSED (Connection refused)``."""
    if err is None:
        return "no errno"
    return "%s (%s)" % (errno.errorcode.get(err, "errno %d" % err), os.strerror(err))


def _from_oserror(t, step, exc, started):
    """Classify an OSError raised by ``step`` (connect, send, recv)."""
    if isinstance(exc, socket.gaierror):
        return _result(t, "error", "invalid", "cannot form a socket address for %s: %s"
                       % (_where(t), exc.strerror), started)
    status, reason = classify_errno(exc.errno)
    meaning = _MEANING.get(reason, "an error the prober cannot interpret")
    detail = "%s %s: %s: %s" % (step, _where(t), _errno_text(exc.errno), meaning)
    return _result(t, status, reason, detail, started)


def _where(t):
    """Human form of the destination."""
    return _default_name(t["proto"], t["dest"], t["family"], t["port"]).split(" ", 1)[1]


def _timeout_result(t, wait, started, what):
    """blocked/timeout with a detail that says what was waited for."""
    return _result(t, "blocked", "timeout", "no %s from %s within %g s" % (what, _where(t), wait), started)


# ---------------------------------------------------------------- sockets

def _sockaddr(t, socktype, proto=0):
    """Resolve the literal to a sockaddr without any name lookup (keeps an IPv6 scope id)."""
    family = socket.AF_INET6 if t["family"] == "ipv6" else socket.AF_INET
    info = socket.getaddrinfo(t["dest"], t["port"] or 0, family, socktype, proto, socket.AI_NUMERICHOST)
    return info[0][4]


def _open(t, socktype, proto, started):
    """Return (socket, None) or (None, error result) when the prober cannot start."""
    family = socket.AF_INET6 if t["family"] == "ipv6" else socket.AF_INET
    try:
        return socket.socket(family, socktype, proto), None
    except OSError as exc:
        reason = "permission" if exc.errno in (errno.EPERM, errno.EACCES) else "invalid"
        return None, _result(t, "error", reason, "cannot open a socket to probe %s: %s"
                             % (_where(t), _errno_text(exc.errno)), started)


def _wait(t, timeout):
    """The target's own timeout wins over the caller's."""
    return t["timeout"] or timeout


def probe_tcp(target, timeout=DEFAULT_TIMEOUT):
    """Try a TCP handshake to ``target``; see the module docstring for outcomes."""
    t = normalize_target(target)
    wait = _wait(t, timeout)
    started = time.monotonic()
    sock, failed = _open(t, socket.SOCK_STREAM, 0, started)
    if failed:
        return failed
    with sock:
        sock.settimeout(wait)
        try:
            sock.connect(_sockaddr(t, socket.SOCK_STREAM))
        except socket.timeout:
            return _timeout_result(t, wait, started, "TCP answer (SYN-ACK or reset)")
        except OSError as exc:
            return _from_oserror(t, "connect to", exc, started)
    return _result(t, "reachable", "connected",
                   "TCP handshake with %s completed: packets leave this host and a service accepted"
                   % _where(t), started)


def _udp_exchange(t, wait, payload, matches, what):
    """Send ``payload`` on a connected UDP socket and wait for a datagram that ``matches``.

    The socket is connected so that an ICMP error coming back surfaces as an
    errno on recv (ECONNREFUSED for port unreachable).
    """
    started = time.monotonic()
    sock, failed = _open(t, socket.SOCK_DGRAM, 0, started)
    if failed:
        return failed
    strays = 0
    with sock:
        try:
            sock.connect(_sockaddr(t, socket.SOCK_DGRAM))
            sock.send(payload)
        except OSError as exc:
            return _from_oserror(t, "send to", exc, started)
        deadline = started + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except socket.timeout:
                break
            except OSError as exc:
                return _from_oserror(t, "recv from", exc, started)
            detail = matches(data)
            if detail:
                return _result(t, "reachable", "replied", "%s from %s: %s" % (what, _where(t), detail), started)
            strays += 1
    if strays:
        # The destination did answer, just not as expected: that still proves packets leave.
        return _result(t, "reachable", "replied", "%d datagram(s) came back from %s but none was a %s"
                       % (strays, _where(t), what), started)
    return _timeout_result(t, wait, started, what)


def probe_udp(target, timeout=DEFAULT_TIMEOUT):
    """Send one UDP datagram and wait for any reply (silent services time out)."""
    t = normalize_target(target)
    payload = b"airgap-probe " + os.urandom(8).hex().encode() + b"\n"
    return _udp_exchange(t, _wait(t, timeout), payload,
                         lambda data: "%d bytes came back" % len(data), "UDP reply")


def build_dns_query(qname, query_id):
    """Return a DNS query for the A record of ``qname`` with recursion desired."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(struct.pack("!B", len(lab)) + lab.encode("ascii")
                      for lab in qname.rstrip(".").split("."))
    return header + labels + b"\x00" + struct.pack("!HH", 1, 1)


def parse_dns_rcode(data, query_id):
    """Return the RCODE of a response to ``query_id``, or None if ``data`` is not one."""
    if len(data) < 12:
        return None
    rid, flags = struct.unpack("!HH", data[:4])
    if rid != query_id or not flags & 0x8000:
        return None
    return flags & 0x000F


def probe_dns(target, timeout=DEFAULT_TIMEOUT):
    """Send a real DNS query (A record, random id) over UDP; a matching response is a reply."""
    t = normalize_target(target)
    query_id = _rng.randrange(0, 0x10000)

    def matches(data):
        rcode = parse_dns_rcode(data, query_id)
        if rcode is None:
            return None
        return "DNS response to query id %d for %s, rcode %s" % (query_id, t["qname"], _RCODES.get(rcode, rcode))

    return _udp_exchange(t, _wait(t, timeout), build_dns_query(t["qname"], query_id), matches, "DNS response")


def _inet_checksum(data):
    """RFC 1071 checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _icmp_socket(t, mode):
    """Open a raw ICMP socket, or a ping socket when raw is not permitted.

    Returns (socket, mode used); raises the last OSError when neither opens.
    """
    family = socket.AF_INET6 if t["family"] == "ipv6" else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if t["family"] == "ipv6" else socket.IPPROTO_ICMP
    last = None
    for kind in (("raw", "dgram") if mode == "auto" else (mode,)):
        try:
            return socket.socket(family, socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM, proto), kind
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES):
                raise
            last = exc
    raise last


def _is_echo_reply(t, kind, data, ident, seq, payload):
    """True when ``data`` is the reply to our echo request."""
    if t["family"] == "ipv4" and kind == "raw":
        if len(data) < 20:
            return False
        data = data[(data[0] & 0x0F) * 4:]  # raw IPv4 sockets include the IP header
    if len(data) < 8:
        return False
    kind_type, _code, _sum, rid, rseq = struct.unpack("!BBHHH", data[:8])
    if kind_type != (0 if t["family"] == "ipv4" else 129):
        return False
    # Ping sockets rewrite the id to their own, so only raw sockets can check it.
    return (kind != "raw" or rid == ident) and rseq == seq and data[8:] == payload


def _same_address(a, b):
    """Compare address literals, ignoring an IPv6 scope id."""
    try:
        return ipaddress.ip_address(a.split("%")[0]) == ipaddress.ip_address(b.split("%")[0])
    except ValueError:
        return False


def probe_icmp(target, timeout=DEFAULT_TIMEOUT, mode="auto"):
    """Send one ICMP/ICMPv6 echo request with a random id and wait for its reply.

    ``mode`` is auto (raw socket, else ping socket), raw or dgram (ping socket).
    """
    t = normalize_target(target)
    wait = _wait(t, timeout)
    started = time.monotonic()
    try:
        sock, kind = _icmp_socket(t, mode)
    except OSError as exc:
        reason = "permission" if exc.errno in (errno.EPERM, errno.EACCES) else "invalid"
        return _result(t, "error", reason, "cannot open a raw ICMP socket (needs root or CAP_NET_RAW) or a "
                       "ping socket (needs the group in net.ipv4.ping_group_range): %s"
                       % _errno_text(exc.errno), started)
    ident, seq = _rng.randrange(1, 0x10000), _rng.randrange(0, 0x10000)
    payload = b"airgap-probe " + os.urandom(8).hex().encode()
    head = struct.pack("!BBHHH", 8 if t["family"] == "ipv4" else 128, 0, 0, ident, seq)
    # The kernel computes ICMPv6 checksums itself (and ping sockets fill in theirs).
    csum = _inet_checksum(head + payload) if t["family"] == "ipv4" else 0
    packet = head[:2] + struct.pack("!H", csum) + head[4:] + payload
    with sock:
        try:
            sock.sendto(packet, _sockaddr(t, socket.SOCK_DGRAM))
        except OSError as exc:
            return _from_oserror(t, "send to", exc, started)
        deadline = started + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, addr = sock.recvfrom(65535)
            except socket.timeout:
                break
            except OSError as exc:
                return _from_oserror(t, "recv from", exc, started)
            if _same_address(addr[0], t["dest"]) and _is_echo_reply(t, kind, data, ident, seq, payload):
                return _result(t, "reachable", "replied", "ICMP%s echo reply from %s (id %d, seq %d, %s socket)"
                               % ("v6" if t["family"] == "ipv6" else "", t["dest"], ident, seq, kind), started)
    return _timeout_result(t, wait, started, "ICMP echo reply")


# ---------------------------------------------------------------- many targets

def probe_one(target, timeout=DEFAULT_TIMEOUT, icmp_mode="auto"):
    """Probe one target; never raises: bad input and surprises become status error."""
    try:
        t = normalize_target(target)
    except ProbeInputError as exc:
        return _raw_result(target, "error", "invalid", str(exc))
    try:
        if t["proto"] == "tcp":
            return probe_tcp(t, timeout)
        if t["proto"] == "udp":
            return probe_udp(t, timeout)
        if t["proto"] == "dns":
            return probe_dns(t, timeout)
        return probe_icmp(t, timeout, icmp_mode)
    except Exception as exc:  # pylint: disable=broad-except
        # A prober that crashed proves nothing either way: report it, fail closed.
        return _result(t, "error", "invalid", "probe failed unexpectedly: %r" % (exc,), None)


def _probe_here(targets, timeout, workers, icmp_mode):
    """Probe in the current network namespace on a bounded thread pool; keeps order."""
    if not targets:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(targets))) as pool:
        return list(pool.map(lambda tgt: probe_one(tgt, timeout, icmp_mode), targets))


def probe_targets(targets, timeout=DEFAULT_TIMEOUT, workers=DEFAULT_WORKERS, netns=None, icmp_mode="auto"):
    """Probe every target, in parallel, and return one result dict per target, in order.

    ``timeout`` applies to targets without their own. ``netns`` is a network
    namespace path to probe from (see the module docstring). ``icmp_mode``
    forces the raw or ping-socket ICMP path (auto tries raw first). Invalid
    targets give status error, reason invalid; invalid options raise
    ProbeInputError.
    """
    timeout, workers = check_options(timeout, workers, icmp_mode)
    targets = list(targets)
    if netns is None:
        return _probe_here(targets, timeout, workers, icmp_mode)
    return _probe_in_netns(targets, timeout, workers, icmp_mode, netns)


def _all_error(targets, reason, detail):
    """Every target gets the same error (the prober could not run at all)."""
    out = []
    for target in targets:
        try:
            out.append(_result(normalize_target(target), "error", reason, detail, None))
        except ProbeInputError as exc:
            out.append(_raw_result(target, "error", "invalid", str(exc)))
    return out


def _setns(fd):
    """Enter the network namespace open on ``fd`` (this thread only)."""
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _child(fd, wfd, targets, timeout, workers, icmp_mode):
    """Forked child: enter the namespace, probe, write JSON, exit without cleanup."""
    try:
        try:
            _setns(fd)
            payload = {"results": _probe_here(targets, timeout, workers, icmp_mode)}
        except OSError as exc:
            payload = {"errno": exc.errno, "error": "cannot enter the network namespace: %s" % _errno_text(exc.errno)}
        except BaseException as exc:  # pylint: disable=broad-except
            payload = {"errno": None, "error": "prober in the namespace failed: %r" % (exc,)}
        data = json.dumps(payload, default=repr).encode()
        while data:
            data = data[os.write(wfd, data):]
    finally:
        # Never return into the caller's code, never run its atexit handlers.
        os._exit(0)


def _read_child(rfd, pid, budget):
    """Read the child's output until EOF; kill it when it overruns ``budget`` seconds."""
    chunks = []
    deadline = time.monotonic() + budget
    while True:
        left = deadline - time.monotonic()
        ready = select.select([rfd], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    return b"".join(chunks)


def _probe_in_netns(targets, timeout, workers, icmp_mode, netns):
    """Fork a child that enters ``netns`` and probes there; this process stays where it is."""
    if not isinstance(netns, str) or not netns:
        return _all_error(targets, "invalid", "netns must be a path such as /run/netns/NAME, got %r" % (netns,))
    try:
        fd = os.open(netns, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        reason = "permission" if exc.errno in (errno.EPERM, errno.EACCES) else "invalid"
        return _all_error(targets, reason, "cannot open network namespace %s: %s" % (netns, _errno_text(exc.errno)))
    waits = [t.get("timeout") for t in targets if isinstance(t, dict)]
    longest = max([parse_timeout(w) for w in waits if _is_timeout(w)] + [timeout])
    budget = longest * (math.ceil(len(targets) / float(workers)) + 1) + 10
    try:
        rfd, wfd = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(rfd)
            os.close(wfd)
            return _all_error(targets, "invalid", "cannot fork a prober for %s: %s" % (netns, _errno_text(exc.errno)))
        if pid == 0:
            os.close(rfd)
            _child(fd, wfd, targets, timeout, workers, icmp_mode)
        os.close(wfd)
        try:
            data = _read_child(rfd, pid, budget)
        finally:
            os.close(rfd)
    finally:
        os.close(fd)
    if data is None:
        return _all_error(targets, "timeout", "prober in network namespace %s did not finish within %g s"
                          % (netns, budget))
    try:
        payload = json.loads(data.decode())
    except ValueError:
        return _all_error(targets, "invalid", "prober in network namespace %s died without results" % netns)
    if "results" in payload:
        return payload["results"]
    reason = "permission" if payload.get("errno") == errno.EPERM else "invalid"
    if payload.get("errno") == errno.EINVAL:
        payload["error"] += " (%s is not a network namespace)" % netns
    return _all_error(targets, reason, "%s: %s" % (netns, payload["error"]))


def _is_timeout(value):
    """True when ``value`` is a valid timeout (invalid ones are reported per target)."""
    try:
        parse_timeout(value)
        return True
    except ProbeInputError:
        return False


# ---------------------------------------------------------------- CLI

def _load_targets(path):
    """Read a JSON list of targets, or an object with a ``targets`` list."""
    if path == "-":
        doc = json.load(sys.stdin)
    else:
        with open(path) as handle:
            doc = json.load(handle)
    if isinstance(doc, dict):
        doc = doc.get("targets")
    return doc


def main(argv=None):
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="airgap_probe.py",
                                     description="Probe egress with real packets and print JSON results.")
    parser.add_argument("--json", required=True, metavar="FILE",
                        help='targets: a JSON list, or {"targets": [...]}; "-" reads stdin')
    parser.add_argument("--netns", metavar="PATH", help="probe from this network namespace (/run/netns/NAME)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per probe")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="parallel probes")
    args = parser.parse_args(argv)
    try:
        targets = _load_targets(args.json)
        validate_targets(targets)
        check_options(args.timeout, args.workers)
    except (OSError, ValueError) as exc:
        print("airgap_probe: %s" % exc, file=sys.stderr)
        return 2
    results = probe_targets(targets, timeout=args.timeout, workers=args.workers, netns=args.netns)
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if any(r["status"] == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
