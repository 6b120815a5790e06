#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: how report building scales with the number of hosts.

Builds the full report (catalogue load, merge, waivers, hosts/*.json,
fleet.json, junit.xml, index.html, SHA256SUMS, latest link) for 1, 10 and 100
synthetic hosts, each with one evidence record per catalogue control (the
real catalogue, 17 controls) plus a second observation for two controls so
the merge path runs too. A few controls fail and one is waived, as in a real
fleet. The 1-host run is the baseline; results are ratios against it,
measured in the same run on the same machine, so they are comparable across
machines where absolute times are not.

Usage: bench/bench_report.py [--repeat N] [--out bench/results/report.json]
"""

from __future__ import print_function

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "module_utils"))

import airgap_report as rep  # noqa: E402  (plain import: no Ansible needed)
from airgap_evidence import make_record  # noqa: E402

CONTROLS = os.path.join(ROOT, "controls")
SIZES = (1, 10, 100)


def synthetic_hosts(count, catalogue):
    """``count`` hosts of evidence; every 7th host fails one control, every 5th has no GPU."""
    hosts = {}
    ids = list(catalogue)
    for n in range(1, count + 1):
        records = []
        for i, cid in enumerate(ids):
            entry = catalogue[cid]
            status = "pass"
            if n % 7 == 0 and i == n % len(ids):
                status = "fail"
            if n % 5 == 0 and cid in ("GPU-HEALTH", "GPU-DRIVER-PINNED"):
                status = "not_applicable"
            records.append(make_record(cid, entry["role"], status, {
                "probe": "synthetic %s on host %d" % (cid, n),
                "targets": [{"dest": "203.0.113.%d" % (j + 1), "proto": "tcp", "port": 443, "reached": False}
                            for j in range(3)],
                "result": status}, checked_at="2026-11-22T22:44:00Z"))
        for cid in ("NET-EGRESS-DENY", "VLLM-OFFLINE"):
            records.append(make_record(cid, catalogue[cid]["role"], "pass",
                                       {"probe": "second observation", "from": "container"},
                                       checked_at="2026-11-22T22:44:01Z"))
        hosts["gpu-node-%d" % n] = records
    return hosts


def build_once(root, hosts, index):
    start = time.perf_counter()
    result = rep.write_report(
        output_root=root, hosts=hosts, catalogue_dir=CONTROLS, timestamp="20261122T2245%02dZ" % (index % 60),
        today="2026-11-22",
        waivers=[{"control": "HOST-SYSCTL", "justification": "bench", "approver": "bench",
                  "expires": "2027-01-31"}])
    elapsed = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(dirpath, f))
               for dirpath, _, files in os.walk(result["report_dir"]) for f in files)
    return elapsed, size, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per size (median is reported)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "report.json"))
    args = parser.parse_args(argv)

    catalogue = rep.load_catalogue(CONTROLS)
    results = {}
    work = tempfile.mkdtemp(prefix="bench-report-")
    try:
        for size in SIZES:
            hosts = synthetic_hosts(size, catalogue)
            times = []
            # One discarded warm-up run: first-use costs (imports, page cache) are not scaling.
            build_once(os.path.join(work, "warmup-%d" % size), hosts, 0)
            for run in range(args.repeat):
                # A fresh folder per run: reports are never overwritten, and the
                # latest-link scan should not grow with earlier runs.
                root = os.path.join(work, "%d-%d" % (size, run))
                elapsed, nbytes, result = build_once(root, hosts, run)
                times.append(elapsed)
                shutil.rmtree(root)
            results[size] = {
                "hosts": size,
                "controls_per_host": len(catalogue),
                "records_per_host": len(hosts["gpu-node-1"]),
                "results_total": sum(result["counts"].values()),
                "seconds_median": statistics.median(times),
                "seconds_min": min(times),
                "seconds_all": times,
                "report_bytes": nbytes,
                "verdict": result["verdict"],
            }
            print("%4d hosts: median %.4f s, min %.4f s, %d bytes"
                  % (size, results[size]["seconds_median"], min(times), nbytes))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = results[SIZES[0]]["seconds_median"]
    for size in SIZES:
        results[size]["ratio_vs_1_host"] = results[size]["seconds_median"] / base
        results[size]["ms_per_host"] = 1000.0 * results[size]["seconds_median"] / size
    doc = {
        "benchmark": "compliance report build time vs number of hosts",
        "baseline": "1 host, same run, same machine",
        "repeat": args.repeat,
        "tool_version": rep.TOOL_VERSION,
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "results": [results[s] for s in SIZES],
        "note": ("Linear scaling would give ratios of about 10 and 100; lower ratios mean the "
                 "fixed cost (catalogue load, hashing, the latest link) dominates small fleets."),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2)
        handle.write("\n")
    for size in SIZES:
        print("%4d hosts: %.1fx the 1-host time (%.1f ms per host)"
              % (size, results[size]["ratio_vs_1_host"], results[size]["ms_per_host"]))
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
