#!/usr/bin/env python3
"""Lab canary: the stand-in for "the internet" (lab only, never deployed).

It listens on TCP 80 and 443, UDP 53 and 123, on IPv4 and IPv6, answers what
it can (TCP accepts, a DNS response, an NTP response; the kernel answers ICMP
echo), and records every IP packet addressed to it in a JSON-lines file:
one line per packet with time, source, destination, protocol and port. Tests
read that file: it is the judge of whether anything left a GPU node.

The record comes from an AF_PACKET socket, so it sees packets before any
listener does, including TCP SYNs to ports nobody listens on and ICMP echo.
"""
import json
import os
import select
import socket
import struct
import sys
import threading
import time

LOG = os.environ.get("CANARY_LOG", "/var/log/airgap-canary/packets.jsonl")
TCP_PORTS = (80, 443)
UDP_PORTS = (53, 123)
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
# Neighbour discovery and router chatter is link housekeeping, not traffic
# that a firewall decides about; recording it would drown the real probes.
ICMP6_LINK_TYPES = {133, 134, 135, 136, 137, 143}

_lock = threading.Lock()


def record(entry):
    entry["ts"] = time.time()
    line = json.dumps(entry, sort_keys=True)
    with _lock, open(LOG, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def parse(frame):
    """Return a record dict for an IPv4/IPv6 frame, or None to ignore it."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    payload = frame[14:]
    if ethertype == 0x0800 and len(payload) >= 20:
        ihl = (payload[0] & 0x0F) * 4
        proto = payload[9]
        src = socket.inet_ntop(socket.AF_INET, payload[12:16])
        dst = socket.inet_ntop(socket.AF_INET, payload[16:20])
        l4 = payload[ihl:]
        family = "ipv4"
    elif ethertype == 0x86DD and len(payload) >= 40:
        proto = payload[6]
        src = socket.inet_ntop(socket.AF_INET6, payload[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, payload[24:40])
        l4 = payload[40:]
        family = "ipv6"
    else:
        return None
    entry = {"family": family, "src": src, "dst": dst}
    if proto == 6 and len(l4) >= 14:
        entry.update(proto="tcp", sport=struct.unpack("!H", l4[0:2])[0],
                     port=struct.unpack("!H", l4[2:4])[0], flags=l4[13])
    elif proto == 17 and len(l4) >= 4:
        entry.update(proto="udp", sport=struct.unpack("!H", l4[0:2])[0],
                     port=struct.unpack("!H", l4[2:4])[0])
    elif proto == 1 and l4:
        entry.update(proto="icmp", type=l4[0])
    elif proto == 58 and l4:
        if l4[0] in ICMP6_LINK_TYPES:
            return None
        entry.update(proto="icmpv6", type=l4[0])
    else:
        entry.update(proto=str(proto))
    return entry


def sniff(own_addresses):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    while True:
        frame, addr = sock.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING or addr[0] == "lo":
            continue
        entry = parse(frame)
        if entry and entry["dst"] in own_addresses:
            entry["ifname"] = addr[0]
            record(entry)


def own_addresses():
    import subprocess
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
    addrs = set()
    for link in json.loads(out):
        for info in link.get("addr_info", []):
            addrs.add(info["local"])
    return addrs


def dual_stack(kind, port):
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    return sock


# Both answers reply to ANY datagram, well-formed or not: the canary exists to
# make a leak visible to the sender, not to be a correct DNS or NTP server.
def dns_answer(query):
    """Answer with NXDOMAIN and the query's id, so a prober sees a reply."""
    query = query.ljust(12, b"\x00")
    flags = 0x8183  # response, recursion desired+available, NXDOMAIN
    return query[:2] + struct.pack("!H", flags) + query[4:6] + b"\x00\x00\x00\x00\x00\x00" + query[12:]


def ntp_answer(query):
    """Answer with a server-mode NTP packet echoing the client's transmit time."""
    query = query.ljust(48, b"\x00")
    now = time.time() + 2208988800
    ts = struct.pack("!II", int(now), int((now % 1) * 2**32))
    return bytes([0x24, 2, 0, 0xEC]) + b"\x00" * 8 + b"LAB\x00" + ts + query[40:48] + ts + ts


def serve():
    listeners = {}
    for port in TCP_PORTS:
        sock = dual_stack(socket.SOCK_STREAM, port)
        sock.listen(64)
        listeners[sock] = ("tcp", port)
    for port in UDP_PORTS:
        listeners[dual_stack(socket.SOCK_DGRAM, port)] = ("udp", port)
    while True:
        ready, _, _ = select.select(list(listeners), [], [])
        for sock in ready:
            kind, port = listeners[sock]
            if kind == "tcp":
                conn, _ = sock.accept()
                try:
                    conn.sendall(b"airgap-canary: you should not be able to read this\n")
                finally:
                    conn.close()
            else:
                data, peer = sock.recvfrom(4096)
                sock.sendto(dns_answer(data) if port == 53 else ntp_answer(data), peer)


def main():
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    open(LOG, "a").close()
    threading.Thread(target=sniff, args=(own_addresses(),), daemon=True).start()
    serve()


if __name__ == "__main__":
    sys.exit(main())
