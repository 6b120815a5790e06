#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the isolation monitor's breach-to-stop latency and its idle CPU use.

The monitor issue asks that, with a staged breach, the serving unit stops
within the probing interval plus 1 s at the 95th percentile. This builds the
podman lab with one GPU node, applies the firewall and converges the
isolation_monitor Molecule scenario (the monitor and vllm-testdouble.service,
a TEST DOUBLE serving unit) with interval 1 s, then stages --breaches breaches:
each inserts an accept for the canary's IPv4 address in the firewall's output
chain (table inet airgap_firewall) and measures, on the node, from the moment
the rule is in to the moment systemd logged the unit as stopped (its
"Stopped" journal entry, microsecond timestamps on the node's clock; the
moment a 20 ms poll saw it inactive if that entry is missing). The hole is closed, a clean round awaited, the alarm
cleared with the documented command and the unit started again. Then the
same at interval 2 s. Reported per interval: p50, p95, max.

Idle CPU: with no breach, the monitor's CPU time over --cpu-window seconds,
extrapolated to one hour. The unit's CPUUsageNSec is used when systemd
accounts it; systemd inside a lab container on a hybrid cgroup host does not,
and then the main process' utime+stime plus its reaped children's (podman,
systemctl) from /proc/<pid>/stat is used. The result says which.

It uses a spare lab profile (default molecule3), refuses to start if that
profile's lab already exists unless --reuse-lab is given (then it leaves the
lab up), and otherwise removes the lab at the end. Nothing leaves the lab's
own podman networks.

Usage: bench/bench_monitor_latency.py [--profile molecule3] [--breaches 20] [--cpu-window 120]
                                      [--out bench/results/monitor_latency.json] [--reuse-lab] [--keep-lab]
"""

from __future__ import print_function

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "molecule", "isolation_monitor")
INTERVALS = (1, 2)
TARGET_SLACK = 1.0  # p95 <= interval + 1 s

# Runs on the node (podman exec -i NODE python3 - ARGS): N staged breaches.
NODE_SCRIPT = r'''
import json, subprocess, sys, time
canary, n, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
unit, state = "vllm-testdouble.service", "/var/lib/isolation-monitor"
COMMENT = "bench_monitor_latency staged breach"

def show(*props):
    out = subprocess.run(["systemctl", "show", unit] + ["-p" + p for p in props],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)

def status():
    try:
        with open(state + "/status.json") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}

def wait(pred, limit, what):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise SystemExit("timed out waiting for " + what)

def close():
    out = subprocess.run(["nft", "-a", "list", "chain", "inet", "airgap_firewall", "output"],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    for line in out.splitlines():
        if COMMENT in line:
            subprocess.run(["nft", "delete", "rule", "inet", "airgap_firewall", "output", "handle",
                            line.rsplit("# handle ", 1)[1].strip()], check=True)

latencies = []
for i in range(n):
    wait(lambda: show("ActiveState")["ActiveState"] == "active", 30, "the unit to be active")
    # Start each breach at a random phase of the probing cycle, as a real one would.
    time.sleep((i * 0.37) % interval)
    subprocess.run(["nft", "insert", "rule", "inet", "airgap_firewall", "output", "ip", "daddr", canary, "accept",
                    "comment", '"%s"' % COMMENT], check=True)
    t0, wall0 = time.monotonic(), time.time()
    try:
        wait(lambda: show("ActiveState")["ActiveState"] in ("inactive", "failed"), 30, "the unit to stop")
        polled = time.monotonic() - t0
    finally:
        close()
    # systemd's own "Stopped" journal entry (MESSAGE_ID of a finished stop job) dates the stop to the
    # microsecond; the unit's InactiveEnterTimestamp is lost when systemd unloads the inactive unit.
    out = subprocess.run(["journalctl", "-u", unit, "MESSAGE_ID=9d1aaa27d60140bd96365438aad20286",
                          "--since=@%d" % int(wall0), "-o", "json", "--no-pager"],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    stops = [int(json.loads(l)["__REALTIME_TIMESTAMP"]) / 1e6 for l in out.splitlines() if l.strip()]
    stops = [t for t in stops if t >= wall0]
    latencies.append(round(min(stops) - wall0, 3) if stops else round(polled, 3))
    closed = time.time()
    after = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(closed)) + ".%03dZ" % int(closed % 1 * 1000)
    wait(lambda: status().get("verdict") == "clean" and status().get("round_started_at", "") > after, 30,
         "a clean round")
    subprocess.run(["/usr/local/sbin/isolation-monitor-clear", "--reason", "bench breach %d" % i], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["systemctl", "start", unit], check=True)
print(json.dumps(latencies))
'''

CPU_SCRIPT = r'''
import json, os, subprocess, sys, time
window = float(sys.argv[1])
def sample():
    props = dict(l.split("=", 1) for l in subprocess.run(
        ["systemctl", "show", "isolation-monitor.service", "-p", "CPUUsageNSec", "-p", "MainPID"],
        stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines() if "=" in l)
    pid = props["MainPID"]
    with open("/proc/%s/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    nsec = props.get("CPUUsageNSec", "")
    return pid, (int(nsec) if nsec.isdigit() else None), ticks / os.sysconf("SC_CLK_TCK")
pid0, ns0, proc0 = sample()
t0 = time.monotonic()
time.sleep(window)
pid1, ns1, proc1 = sample()
elapsed = time.monotonic() - t0
if pid0 != pid1:
    raise SystemExit("the monitor restarted during the window")
if ns0 is not None and ns1 is not None:
    source, used = "CPUUsageNSec", (ns1 - ns0) / 1e9
else:
    source, used = "/proc/<pid>/stat utime+stime+cutime+cstime (CPUUsageNSec not accounted here)", proc1 - proc0
print(json.dumps({"window_seconds": round(elapsed, 1), "cpu_seconds": round(used, 3), "source": source}))
'''


def ansible_bin(name):
    """The virtualenv's command when there is one (make setup), else the one on PATH."""
    local = os.path.join(ROOT, ".venv", "bin", name)
    return local if os.path.exists(local) else (shutil.which(name) or name)


def lab_env(profile):
    """Environment of every Ansible run: the lab profile and podman config."""
    env = dict(os.environ, AIRGAP_LAB_PROFILE=profile, AIRGAP_LAB_NODES="1",
               CONTAINERS_CONF=os.path.join(ROOT, "lab", "containers.conf"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env["PATH"] = os.path.dirname(ansible_bin("ansible-playbook")) + os.pathsep + env.get("PATH", "")
    return env


def playbook(path, env, args=(), check=True):
    """Run one playbook from the repository root; return seconds."""
    cmd = [ansible_bin("ansible-playbook"), "--inventory=%s" % os.path.join(ROOT, "inventories", "lab"), path]
    cmd += list(args)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:])
        raise RuntimeError("%s failed (rc %d)" % (path, proc.returncode))
    return time.perf_counter() - start


def lab_containers(profile, env):
    """Names of this profile's lab containers."""
    proc = subprocess.run(["podman", "ps", "-a", "--filter", "label=airgap.lab=%s" % profile, "--format",
                           "{{.Names}}"], env=env, stdout=subprocess.PIPE, universal_newlines=True, check=True)
    return proc.stdout.split()


def on_node(node, env, script, args):
    """Run a Python script on the lab node; return its parsed JSON output."""
    proc = subprocess.run(["podman", "exec", "-i", node, "python3", "-", *[str(a) for a in args]], input=script,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError("on %s: %s" % (node, proc.stderr[-3000:] or proc.stdout[-3000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def percentile(values, pct):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, int(math.ceil(pct / 100.0 * len(ordered))) - 1)]


def canary_ipv4(profile):
    """The canary's IPv4 address in this profile (from the lab inventory)."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "inventories", "lab", "lab_inventory.py"), "--list"],
                         env=dict(os.environ, AIRGAP_LAB_PROFILE=profile), stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return json.loads(out)["_meta"]["hostvars"]["canary"]["lab_networks"][0]["ipv4"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="molecule3", help="spare lab profile (lab/topology.yml)")
    parser.add_argument("--breaches", type=int, default=20, help="staged breaches per interval (at least 20)")
    parser.add_argument("--cpu-window", type=float, default=120, help="seconds of idle probing measured")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "monitor_latency.json"))
    parser.add_argument("--reuse-lab", action="store_true", help="use this profile's existing lab and leave it up")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args(argv)
    if args.breaches < 20:
        parser.error("--breaches must be at least 20")
    env = lab_env(args.profile)
    existed = bool(lab_containers(args.profile, env))
    if existed and not args.reuse_lab:
        print("A lab of profile %s exists (a Molecule run?). Choose another --profile, pass --reuse-lab, or remove "
              "it with AIRGAP_LAB_PROFILE=%s ansible-playbook playbooks/lab_down.yml" % (args.profile, args.profile),
              file=sys.stderr)
        return 2
    result = {"benchmark": "monitor_latency", "profile": args.profile, "breaches": args.breaches,
              "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
              "serving_unit": "vllm-testdouble.service (test double, no container)",
              "load_average_1min_before": round(os.getloadavg()[0], 2), "intervals": {}}
    try:
        if not existed:
            playbook(os.path.join(ROOT, "playbooks", "lab_up.yml"), env)
            playbook(os.path.join(SCENARIO, "prepare.yml"), env)
        node = [n for n in lab_containers(args.profile, env) if "gpu-node-1" in n][0]
        canary = canary_ipv4(args.profile)
        for interval in INTERVALS:
            playbook(os.path.join(SCENARIO, "converge.yml"), env, ["-e", "isolation_monitor_interval=%d" % interval])
            if interval == INTERVALS[0]:
                result["idle_cpu"] = on_node(node, env, CPU_SCRIPT, [args.cpu_window])
                result["idle_cpu"]["interval_seconds"] = interval
                result["idle_cpu"]["cpu_seconds_per_hour"] = round(
                    result["idle_cpu"]["cpu_seconds"] * 3600.0 / result["idle_cpu"]["window_seconds"], 1)
            lat = on_node(node, env, NODE_SCRIPT, [canary, args.breaches, interval])
            p95 = percentile(lat, 95)
            result["intervals"][str(interval)] = {
                "latencies_seconds": lat, "p50": round(statistics.median(lat), 3), "p95": p95, "max": max(lat),
                "goal_p95_at_most": interval + TARGET_SLACK, "within_goal": p95 <= interval + TARGET_SLACK}
            print("interval %d s: breach-to-stop p50 %.3f s, p95 %.3f s, max %.3f s over %d breaches "
                  "(goal p95 <= %.1f): %s"
                  % (interval, statistics.median(lat), p95, max(lat), len(lat), interval + TARGET_SLACK,
                     "within goal" if p95 <= interval + TARGET_SLACK else "ABOVE GOAL"))
        # Leave the lab as the scenario declares it (interval 1 s).
        playbook(os.path.join(SCENARIO, "converge.yml"), env)
    finally:
        if not (existed or args.keep_lab):
            playbook(os.path.join(ROOT, "playbooks", "lab_down.yml"), env, check=False)
    cpu = result["idle_cpu"]
    print("idle CPU at interval 1 s: %.2f s over %.0f s = %.1f CPU-seconds per hour (%s)"
          % (cpu["cpu_seconds"], cpu["window_seconds"], cpu["cpu_seconds_per_hour"], cpu["source"]))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write("\n")
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
