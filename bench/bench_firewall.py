#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the firewall role's core: rendering, validation, atomic load, per-packet cost.

Everything runs in network namespaces this script creates and removes; no
packet leaves them. Needs root, nft, ip and unshare.

Part 1, for allowlists of 10, 1000 and 10000 entries: time to normalise and
render, to validate with ``nft -c``, to load atomically through the
nft_ruleset engine (first apply, and the no-change re-apply that every
playbook run does), and the bare ``nft -f`` of the transaction.

Part 2, per-packet cost: a client namespace sends UDP packets through its
output chain to a peer namespace, with the allowlist as sets (what the role
renders) of 10, 1000 and 10000 entries, and, for contrast, as one rule per
entry. "miss" packets go to a port no entry allows (they walk every rule and
are dropped); "hit" packets go to the one allowed address/port, which is the
last of the list. Costs are reported per packet and as ratios against the
10-entry set case measured in the same run, and as the firewall's own share
(minus the same loop with no table).

Usage: bench_firewall.py [--sizes 10,1000,10000] [--rounds 3] [--seconds 0.4]
Writes bench/results/firewall.json.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _sub in ("library", "module_utils", "filter_plugins"):
    sys.path.insert(0, os.path.join(ROOT, _sub))
import ansible.module_utils  # noqa: E402

if os.path.join(ROOT, "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(os.path.join(ROOT, "module_utils"))

from ansible.module_utils.airgap_nft import (  # noqa: E402
    normalize_egress, normalize_ingress, render, transaction_text)
from nft_ruleset import NftRuleset, subprocess_runner  # noqa: E402

TARGET = "10.231.0.2"      # the peer namespace's address
CLIENT = "10.231.0.1"
HIT_PORT, MISS_PORT = 5001, 5002

# CPU time (user + system) of the sending process, not wall time: the output
# path, including every nft rule and set lookup, runs in the sender's own
# context, and CPU time does not count the moments another process had the core.
SENDER = textwrap.dedent("""
    import socket, sys, time
    dst = (sys.argv[1], int(sys.argv[2])); budget = float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * 32
    sent = 0; start = time.process_time(); deadline = start + budget
    while True:
        for _ in range(500):
            try:
                s.sendto(payload, dst)
            except OSError:
                pass
        sent += 500
        now = time.process_time()
        if now >= deadline:
            break
    print(sent, now - start)
""")


def sh(*argv, **kwargs):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kwargs)


def entries(n):
    """n UDP egress entries: n-1 distractors (hosts and /28s in 10.64.0.0/10) plus the target last."""
    out = []
    nets = 0
    for i in range(n - 1):
        if i % 4 == 3:   # every fourth entry a /28, in a range of its own so nothing overlaps
            dest = "10.%d.%d.%d/28" % (96 + nets // 4096, (nets // 16) % 256, (nets % 16) * 16)
            nets += 1
        else:
            dest = "10.%d.%d.%d" % (64 + i // 65536, (i // 256) % 256, i % 256)
        out.append({"name": "e%d" % i, "dest": dest, "proto": "udp", "ports": [53 + i % 7]})
    out.append({"name": "target", "dest": TARGET, "proto": "udp", "ports": [HIT_PORT]})
    return out


def linear_table(n):
    """Contrast only: the same allowlist as one rule per entry (what sets avoid)."""
    lines = ["table inet airgap_firewall {", "\tchain output {",
             "\t\ttype filter hook output priority filter - 10; policy drop;",
             '\t\toif "lo" accept', "\t\tct state established,related accept"]
    for e in normalize_egress(entries(n)):
        for port in e["ports"]:
            lines.append("\t\tip daddr %s udp dport %d accept" % (e["dest"], port))
    lines += ["\t}", "}", ""]
    return "\n".join(lines)


class Namespaces(object):
    """A client and a sink namespace joined by a veth pair; removed on exit."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.client, self.sink, self.scratch = "fwb-c-" + tag, "fwb-s-" + tag, "fwb-x-" + tag

    def __enter__(self):
        try:
            return self._setup()
        except BaseException:
            self.__exit__()
            raise

    def _setup(self):
        for ns in (self.client, self.sink, self.scratch):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "fwbc", "netns", self.client, "type", "veth", "peer", "name", "fwbs",
           "netns", self.sink)
        sh("ip", "-n", self.client, "addr", "add", CLIENT + "/24", "dev", "fwbc")
        sh("ip", "-n", self.sink, "addr", "add", TARGET + "/24", "dev", "fwbs")
        sh("ip", "-n", self.client, "link", "set", "fwbc", "up")
        sh("ip", "-n", self.sink, "link", "set", "fwbs", "up")
        # the sink drops what arrives, so no ICMP replies add noise
        sh("ip", "netns", "exec", self.sink, "nft", "-f", "-",
           input="table inet sink {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n"
                 "\t}\n}\n")
        sh("ip", "-n", self.client, "neigh", "replace", TARGET, "lladdr", "02:00:00:00:00:02",
           "dev", "fwbc", "nud", "permanent")
        return self

    def __exit__(self, *exc):
        for ns in (self.client, self.sink, self.scratch):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def timed(func, repeat):
    samples = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000.0, result


def part1(sizes, spaces, rounds):
    rows = []
    for n in sizes:
        raw = entries(n)
        ing = [{"name": "ssh", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22]}]
        repeat = rounds if n <= 1000 else max(1, rounds - 1)
        t_norm, eg = timed(lambda: normalize_egress(raw), repeat)
        ing_n = normalize_ingress(ing)
        t_render, text = timed(lambda: render(eg, ing_n, {"egress_reject": False}), repeat)
        tmp = tempfile.mkdtemp(prefix="fwbench-")
        engine = NftRuleset(subprocess_runner, nft_cmd=["ip", "netns", "exec", spaces.scratch, "nft"],
                            rollback_dir=os.path.join(tmp, "rb"), persist_path=os.path.join(tmp, "fw.nft"))
        tx = transaction_text("inet", "airgap_firewall", text)
        t_check, _ = timed(lambda: engine.validate(tx, 2), repeat)
        applies, reapplies, loads = [], [], []
        for _ in range(repeat):
            sh("ip", "netns", "exec", spaces.scratch, "nft", "-f", "-",
               input="table inet airgap_firewall {}\ndelete table inet airgap_firewall\n")
            start = time.perf_counter()
            first = engine.apply(text)
            applies.append(time.perf_counter() - start)
            assert first["changed"], "bench: first apply did not change anything"
            start = time.perf_counter()
            again = engine.apply(text)
            reapplies.append(time.perf_counter() - start)
            assert not again["changed"], "bench: re-apply was not idempotent"
            start = time.perf_counter()
            engine.load(tx, 2)
            loads.append(time.perf_counter() - start)
        rows.append({
            "entries": n, "rendered_bytes": len(text),
            "normalize_ms": round(t_norm, 2), "render_ms": round(t_render, 2),
            "nft_check_ms": round(t_check, 1),
            "apply_first_ms": round(statistics.median(applies) * 1000, 1),
            "apply_unchanged_ms": round(statistics.median(reapplies) * 1000, 1),
            "nft_load_ms": round(statistics.median(loads) * 1000, 1),
        })
    return rows


def send(spaces, port, seconds):
    out = sh("ip", "netns", "exec", spaces.client, sys.executable, "-c", SENDER, TARGET, str(port),
             str(seconds)).stdout.split()
    return float(out[1]) / int(out[0]) * 1e9  # ns per packet


def load_client(spaces, text):
    sh("ip", "netns", "exec", spaces.client, "nft", "-f", "-",
       input=transaction_text("inet", "airgap_firewall", text) if text else
       "table inet airgap_firewall {}\ndelete table inet airgap_firewall\n")


def part2(sizes, spaces, rounds, seconds):
    variants = [("none", 0, None)]
    for n in sizes:
        variants.append(("sets", n, render(normalize_egress(entries(n)), [], {"egress_reject": False,
                                                                              "log": False})))
    for n in sizes:
        variants.append(("rules", n, linear_table(n)))
    samples = {(kind, n): {"miss": [], "hit": []} for kind, n, _ in variants}
    for _ in range(rounds):
        for kind, n, text in variants:   # interleaved, so drift in machine load hits every variant
            load_client(spaces, text)
            samples[(kind, n)]["miss"].append(send(spaces, MISS_PORT, seconds))
            samples[(kind, n)]["hit"].append(send(spaces, HIT_PORT, seconds))
    load_client(spaces, None)
    # the minimum over interleaved rounds: interference only ever adds time
    med = {k: {m: min(v[m]) for m in v} for k, v in samples.items()}
    base_key = ("sets", sizes[0])
    rows = []
    for kind, n, _ in variants:
        row = {"variant": kind, "entries": n}
        for m in ("miss", "hit"):
            ns_pkt = med[(kind, n)][m]
            own = ns_pkt - med[("none", 0)][m]
            base_own = med[base_key][m] - med[("none", 0)][m]
            row["%s_ns_per_packet" % m] = round(ns_pkt, 1)
            row["%s_ratio_vs_sets_%d" % (m, sizes[0])] = round(ns_pkt / med[base_key][m], 3)
            row["%s_firewall_ns" % m] = round(own, 1)
            row["%s_firewall_ratio_vs_sets_%d" % (m, sizes[0])] = (
                round(own / base_own, 2) if base_own > 0 else None)
        rows.append(row)
    return rows


def print_table(title, rows, columns):
    print("\n" + title)
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r.get(c)).rjust(w) for c, w in zip(columns, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4, help="send time per sample")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results", "firewall.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_firewall: needs root (network namespaces and nft)")
    sizes = [int(s) for s in args.sizes.split(",")]
    nft_version = sh("nft", "--version").stdout.strip()
    with Namespaces() as spaces:
        load_rows = part1(sizes, spaces, args.rounds)
        packet_rows = part2(sizes, spaces, args.rounds, args.seconds)
    print_table("Normalise, render, validate, load (ms, median of %d)" % args.rounds, load_rows,
                ["entries", "rendered_bytes", "normalize_ms", "render_ms", "nft_check_ms",
                 "apply_first_ms", "apply_unchanged_ms", "nft_load_ms"])
    b = sizes[0]
    print_table("Per-packet cost through the output chain (UDP send, ns/packet; ratios vs sets of %d)" % b,
                packet_rows,
                ["variant", "entries", "miss_ns_per_packet", "miss_ratio_vs_sets_%d" % b, "miss_firewall_ns",
                 "miss_firewall_ratio_vs_sets_%d" % b, "hit_ns_per_packet", "hit_ratio_vs_sets_%d" % b,
                 "hit_firewall_ns"])
    result = {
        "benchmark": "firewall",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": {"kernel": platform.release(), "nft": nft_version, "python": platform.python_version(),
                        "cpus": os.cpu_count()},
        "parameters": {"sizes": sizes, "rounds": args.rounds, "seconds_per_sample": args.seconds},
        "notes": [
            "All traffic stays inside namespaces created by the benchmark.",
            "ratios are against the %d-entry set case measured in the same run" % b,
            "*_firewall_ns subtracts the same send loop with no table loaded (variant 'none')",
            "'rules' is a contrast only (one rule per entry); the role renders 'sets'",
        ],
        "load": load_rows,
        "per_packet": packet_rows,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
    print("\nwrote %s" % args.output)


if __name__ == "__main__":
    main()
