#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: how the audit's wall time grows from 1 lab node to 10.

The compliance issue asks that auditing 10 nodes takes less than 3 times as
long as auditing 1. This builds the podman lab with 1 GPU node, converges it
with playbooks/site.yml and times playbooks/audit.yml (median of --repeat
runs); then grows the same lab to 10 nodes (AIRGAP_LAB_NODES=10), converges
the new nodes and times the audit again. The 1-node audit is the baseline;
the result is the ratio, measured in the same run on the same machine.

To explain the ratio, every audit run also records the CPU seconds the whole
machine spent busy (/proc/stat) and those of the controller's processes: the
simulated nodes share the controller's cores, so a run cannot finish before
its CPU work spread over all cores (reported as cpu_floor_ratio). Each size
also gets one more audit run (not in the median)
with Ansible's profile_tasks callback, and its slowest tasks are kept, next
to the forks setting and the machine's CPU count and load.

It uses a spare lab profile (default molecule2, see lab/topology.yml), refuses
to start if that profile's lab already exists (it could be someone's running
Molecule scenario), and removes the lab at the end, also after a failure.
Nothing leaves the lab's own podman networks.

Usage: bench/bench_audit_scale.py [--profile molecule2] [--nodes 10] [--repeat 3]
                                  [--out bench/results/audit_scale.json] [--keep-lab]
"""

from __future__ import print_function

import argparse
import configparser
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_RATIO = 3.0
# profile_tasks summary lines: "Verify the firewall : NET-EGRESS-DENY | Probe ... --- 4.21s"
PROFILE_LINE = re.compile(r"^(?P<task>.+?)\s-+\s+(?P<secs>[0-9.]+)s\s*$")


def ansible_bin(name):
    """The virtualenv's command when there is one (make setup), else the one on PATH."""
    local = os.path.join(ROOT, ".venv", "bin", name)
    return local if os.path.exists(local) else (shutil.which(name) or name)


def lab_env(profile, nodes, extra=None):
    """Environment of every Ansible run: the lab profile, node count and podman config."""
    env = dict(os.environ, AIRGAP_LAB_PROFILE=profile, AIRGAP_LAB_NODES=str(nodes),
               CONTAINERS_CONF=os.path.join(ROOT, "lab", "containers.conf"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env["PATH"] = os.path.dirname(ansible_bin("ansible-playbook")) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def playbook(name, env, args=(), check=True):
    """Run one playbook from the repository root; return (seconds, stdout)."""
    cmd = [ansible_bin("ansible-playbook"), os.path.join("playbooks", name)] + list(args)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:])
        raise RuntimeError("%s failed (rc %d) with AIRGAP_LAB_NODES=%s"
                           % (name, proc.returncode, env.get("AIRGAP_LAB_NODES")))
    return elapsed, proc.stdout


def profile_lab_exists(profile):
    """True when containers of this lab profile exist (lab_env labels them airgap.lab=<profile>)."""
    proc = subprocess.run(["podman", "ps", "-a", "--filter", "label=airgap.lab=%s" % profile, "--format",
                           "{{.Names}}"], env=lab_env(profile, 1), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
    return bool(proc.stdout.strip())


def busy_seconds():
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat), or None."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / float(os.sysconf("SC_CLK_TCK"))


def controller_cpu_seconds():
    """CPU seconds of finished children (ansible-playbook, its workers, the podman clients)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def background_busy_rate(seconds=10):
    """Busy cores while the lab idles (its monitors probe on their own): the audit shares them."""
    before = busy_seconds()
    time.sleep(seconds)
    after = busy_seconds()
    return None if before is None else (after - before) / seconds


def audit_times(env, reports, repeat, label):
    """Time audit.yml `repeat` times; every run must change nothing on any node.

    Returns (wall seconds, machine busy CPU seconds, controller CPU seconds) per run.
    """
    times, busy, controller = [], [], []
    for run in range(repeat):
        busy_before, ctl_before = busy_seconds(), controller_cpu_seconds()
        elapsed, out = playbook("audit.yml", env, ["-e", "compliance_report_output_root=%s" % reports])
        busy_after, ctl_after = busy_seconds(), controller_cpu_seconds()
        changed = [int(c) for c in re.findall(r"gpu-node-[0-9]+\s+:\s+ok=[0-9]+\s+changed=([0-9]+)", out)]
        if not changed or sum(changed) != 0:
            raise RuntimeError("audit.yml changed something or audited no node: %s" % changed)
        times.append(elapsed)
        busy.append(None if busy_before is None else busy_after - busy_before)
        controller.append(ctl_after - ctl_before)
        print("  %s audit run %d: %.1f s (%d nodes audited; machine busy %.1f CPU-s, controller %.1f CPU-s)"
              % (label, run + 1, elapsed, len(changed), busy[-1] or 0, controller[-1]))
    return times, busy, controller


def slowest_tasks(env, reports, top=8):
    """One more audit with profile_tasks: its slowest tasks, to show what dominates."""
    extra = dict(env, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all")
    elapsed, out = playbook("audit.yml", extra, ["-e", "compliance_report_output_root=%s" % reports])
    summary = out.split("=" * 20)[-1] if "=" * 20 in out else out
    tasks = []
    for line in summary.splitlines():
        match = PROFILE_LINE.match(line.strip())
        if match:
            tasks.append({"task": match.group("task").strip(), "seconds": float(match.group("secs"))})
    tasks.sort(key=lambda t: -t["seconds"])
    return {"total_seconds": round(elapsed, 2), "slowest_tasks": tasks[:top],
            "sum_of_task_seconds": round(sum(t["seconds"] for t in tasks), 2)}


def forks_setting():
    """forks from ansible.cfg (what the audit runs with)."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "ansible.cfg"))
    return cfg.getint("defaults", "forks", fallback=5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="molecule2", help="spare lab profile (lab/topology.yml)")
    parser.add_argument("--nodes", type=int, default=10, help="node count of the large run")
    parser.add_argument("--repeat", type=int, default=3, help="audit runs per size (the median counts)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "audit_scale.json"))
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.repeat < 1:
        parser.error("--nodes must be at least 2 and --repeat at least 1")
    if profile_lab_exists(args.profile):
        print("A lab of profile %s exists (a Molecule run?). Choose another --profile, or remove it with "
              "AIRGAP_LAB_PROFILE=%s ansible-playbook playbooks/lab_down.yml" % (args.profile, args.profile),
              file=sys.stderr)
        return 2

    reports = tempfile.mkdtemp(prefix="bench-audit-reports-")
    result = {"benchmark": "audit_scale", "profile": args.profile, "repeat": args.repeat,
              "forks": forks_setting(), "cpus": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "target_ratio": TARGET_RATIO, "sizes": {}}
    try:
        for nodes in (1, args.nodes):
            env = lab_env(args.profile, nodes)
            load_before = os.getloadavg()[0]
            up, _ = playbook("lab_up.yml", env)
            site, _ = playbook("site.yml", env)
            print("%d node(s): lab_up %.1f s, site.yml %.1f s" % (nodes, up, site))
            idle_rate = background_busy_rate()
            times, busy, controller = audit_times(env, reports, args.repeat, "%d node(s)" % nodes)
            result["sizes"][str(nodes)] = {
                "nodes": nodes, "audit_seconds": [round(t, 2) for t in times],
                "audit_median_seconds": round(statistics.median(times), 2),
                # CPU the audit needs, all processes of the machine (controller, podman, the
                # nodes' own work, the lab's background): wall time can't go below busy / cores.
                "machine_busy_cpu_seconds": [round(b, 1) for b in busy if b is not None],
                "controller_cpu_seconds": [round(c, 1) for c in controller],
                "idle_lab_busy_cores": round(idle_rate, 2) if idle_rate is not None else None,
                "lab_up_seconds": round(up, 2), "site_seconds": round(site, 2),
                "load_average_1min_before": round(load_before, 2),
                # Not part of the median: one more run with profile_tasks, to show what dominates.
                "profile": slowest_tasks(env, reports)}
    finally:
        if not args.keep_lab:
            playbook("lab_down.yml", lab_env(args.profile, args.nodes), check=False)
        shutil.rmtree(reports, ignore_errors=True)

    base = result["sizes"]["1"]["audit_median_seconds"]
    large = result["sizes"][str(args.nodes)]["audit_median_seconds"]
    result["ratio"] = round(large / base, 2)
    result["within_target"] = result["ratio"] < TARGET_RATIO
    cores = os.cpu_count() or 1
    small, big = result["sizes"]["1"], result["sizes"][str(args.nodes)]
    if small["machine_busy_cpu_seconds"] and big["machine_busy_cpu_seconds"]:
        # Every simulated node runs on this machine's cores, next to the controller:
        # the large audit cannot finish before its CPU work spread over all cores.
        floor = statistics.median(big["machine_busy_cpu_seconds"]) / cores
        result["cpu_floor_seconds_large"] = round(floor, 1)
        result["cpu_floor_ratio"] = round(floor / base, 2)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write("\n")
    print("audit.yml median: 1 node %.1f s, %d nodes %.1f s, ratio %.2f (target < %.0f): %s"
          % (base, args.nodes, large, result["ratio"], TARGET_RATIO,
             "within target" if result["within_target"] else "ABOVE TARGET"))
    if "cpu_floor_ratio" in result:
        print("CPU: the %d-node audit keeps the machine busy for %.0f CPU-s (median): on %d cores it cannot "
              "take less than %.1f s, %.2f times the 1-node audit, however the audit is scheduled"
              % (args.nodes, statistics.median(big["machine_busy_cpu_seconds"]), cores,
                 result["cpu_floor_seconds_large"], result["cpu_floor_ratio"]))
    for size in ("1", str(args.nodes)):
        print("slowest tasks with %s node(s): %s" % (size, ", ".join(
            "%s %.1fs" % (t["task"], t["seconds"]) for t in result["sizes"][size]["profile"]["slowest_tasks"][:4])))
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
