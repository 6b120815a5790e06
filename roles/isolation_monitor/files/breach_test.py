#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged breach for the isolation monitor (run by tasks/breach_test.yml; a test, not part of the monitor).

Opens a hole for one forbidden address in the firewall's output chain (an
accept inserted before the table's drop), measures how long the serving
units take to stop, closes the hole, and checks that the units stay down and
cannot be started while the alarm is raised. Prints one JSON object.
"""

from __future__ import absolute_import, division, print_function

import argparse
import ipaddress
import json
import os
import re
import subprocess
import sys
import time

COMMENT = "isolation-monitor staged breach test"


def sh(argv, check=True):
    """Run a command; return (rc, stdout)."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), proc.stdout.strip()))
    return proc.returncode, proc.stdout


def states(units):
    """Active state per unit."""
    _rc, out = sh(["systemctl", "show", "-p", "Id", "-p", "ActiveState", "--"] + units, check=False)
    found = {}
    for block in out.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        found[props.get("Id")] = props.get("ActiveState")
    return found


def close_hole(table):
    """Delete every rule this test inserted (found by its comment)."""
    family, name = table.split()
    _rc, out = sh(["nft", "-a", "list", "chain", family, name, "output"])
    for line in out.splitlines():
        if COMMENT in line:
            handle = re.search(r"# handle (\d+)", line).group(1)
            sh(["nft", "delete", "rule", family, name, "output", "handle", handle])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--units", required=True)
    parser.add_argument("--stop-seconds", type=float, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    units = [u for u in args.units.split(",") if u]
    alarm = os.path.join(args.state_dir, "alarm.json")
    out = {"passed": False, "target": args.dest, "units": units, "problems": []}
    if os.path.exists(alarm):
        out["problems"].append("an alarm is already raised; clear it first")
    before = states(units)
    if not units or any(before.get(u) != "active" for u in units):
        out["problems"].append("every serving unit must be active before the test: %s" % before)
    if out["problems"]:
        print(json.dumps(out))
        return 1
    family, name = args.table.split()
    kind = "ip6" if ipaddress.ip_address(args.dest).version == 6 else "ip"
    out["hole_opened_at"] = time.time()
    t0 = time.monotonic()
    try:
        sh(["nft", "insert", "rule", family, name, "output", kind, "daddr", args.dest, "accept",
            "comment", '"%s"' % COMMENT])
        deadline = t0 + args.stop_seconds
        while time.monotonic() < deadline:
            now = states(units)
            if all(s in ("inactive", "failed") for s in now.values()):
                out["stop_latency_seconds"] = round(time.monotonic() - t0, 3)
                break
            time.sleep(0.05)
        else:
            out["problems"].append("serving units still %s %.1f s after the hole opened" % (states(units),
                                                                                             args.stop_seconds))
    finally:
        close_hole(args.table)
        out["hole_closed_at"] = time.time()
    # Two more rounds with the hole closed: the units must stay down and be refused.
    time.sleep(2 * args.interval + 1)
    after = states(units)
    out["stayed_down_after_close"] = all(s in ("inactive", "failed") for s in after.values())
    if not out["stayed_down_after_close"]:
        out["problems"].append("a serving unit came back after the hole closed: %s" % after)
    try:
        with open(alarm) as handle:
            out["alarm_event"] = json.load(handle).get("event")
    except OSError:
        out["problems"].append("no alarm was raised")
    refused = sh(["systemctl", "start", "--", units[0]], check=False)[0]
    out["start_refused"] = refused != 0 and states(units[:1]).get(units[0]) != "active"
    if not out["start_refused"]:
        out["problems"].append("%s could be started while the alarm was raised" % units[0])
    out["passed"] = not out["problems"] and out.get("alarm_event") == "breach"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
