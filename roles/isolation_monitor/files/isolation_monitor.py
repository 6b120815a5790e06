#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""isolation-monitor: probe forbidden egress every interval; stop the model servers on a breach.

Installed by the isolation_monitor role as /usr/local/lib/airgap/isolation_monitor.py
beside airgap_probe.py (the probes) and airgap_monitor.py (every decision).
This file only does I/O: probing, podman, systemctl, journald, state files.
Standard library only.

Sub-commands:
  run      the service (isolation-monitor.service, Type=notify)
  stopped  the unit's ExecStopPost: an abnormal end raises the alarm
  gate     a serving unit's ExecStartPre: refuses while the alarm is raised or
           the latest round is not recent and clean
  clear    the operator's clear command (isolation-monitor-clear --reason ...)
  status   print the latest round, the alarm and their age as JSON
"""

from __future__ import absolute_import, division, print_function

import argparse
import concurrent.futures
import hashlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import airgap_monitor as mon  # noqa: E402  pylint: disable=wrong-import-position

# airgap_probe is imported by `run` only: the gate, the clear command and the
# ExecStopPost must work even when the prober is missing (that is an alarm).
probe = None  # pylint: disable=invalid-name
HERE = os.path.dirname(os.path.abspath(__file__))
CODE_FILES = [os.path.join(HERE, n) for n in ("isolation_monitor.py", "airgap_monitor.py", "airgap_probe.py")]

DEFAULT_CONFIG = "/etc/isolation-monitor/config.json"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
TOOL_TIMEOUT = 10
# podman ps waits for locks a starting or stopping container holds (seconds
# with vfs storage); kept short so a round stays within its budget.
PODMAN_TIMEOUT = 4


# ---------------------------------------------------------------- files

def load_config(path):
    """Read and check the JSON config; raise ValueError naming every problem."""
    with open(path) as handle:
        config = json.load(handle)
    errors = mon.config_errors(config)
    if errors:
        raise ValueError("; ".join(errors))
    config.setdefault("workers", 16)
    config.setdefault("units", [])
    return config


def state_path(config, name):
    """A file in the state folder: alarm.json, status.json, evidence.jsonl."""
    return os.path.join(config["state_dir"], name)


def read_json(path):
    """A JSON file's content, or None when it does not exist."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def write_json(path, doc):
    """Write atomically, world-readable: the serving units' gate reads these files."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(doc, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def append_evidence(config, record):
    """Append one alert to the evidence file (JSON lines, kept for the auditor)."""
    path = state_path(config, "evidence.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


# ---------------------------------------------------------------- systemd

def journal_send(fields):
    """Send a structured entry to journald; fall back to stderr (which journald also reads)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.sendto(mon.encode_journal(fields), JOURNAL_SOCKET)
        finally:
            sock.close()
    except OSError:
        message = dict(fields).get("MESSAGE", "")
        print("<%s>%s" % (dict(fields).get("PRIORITY", "6"), message), file=sys.stderr, flush=True)


def alert(config, record):
    """Raise an alert: the journal entry (forwarded to syslog) and the evidence line."""
    append_evidence(config, record)
    journal_send(mon.journal_fields(record))


def sd_notify(message):
    """Tell systemd (Type=notify) READY=1, WATCHDOG=1, STATUS=...; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.sendto(message.encode("utf-8"), address)
    except OSError:
        pass  # the watchdog notices a monitor that can no longer talk to systemd
    finally:
        sock.close()


def run_tool(argv, timeout=TOOL_TIMEOUT):
    """Run a helper; return (rc, stdout, stderr). A missing tool or a timeout is rc 127 / 124."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                              universal_newlines=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr.strip()
    except FileNotFoundError as exc:
        return 127, "", "%s: %s" % (argv[0], exc.strerror)
    except PermissionError as exc:
        return 126, "", "%s: %s" % (argv[0], exc.strerror)
    except subprocess.TimeoutExpired:
        return 124, "", "%s did not answer within %d s" % (" ".join(argv[:2]), timeout)


def list_units(config):
    """{unit: active state} for the loaded units matching the glob and the configured ones."""
    rc, out, err = run_tool([config["systemctl"], "list-units", "--all", "--plain", "--no-legend", "--no-pager",
                             "--type=service", config["unit_glob"]] + list(config["units"]))
    if rc != 0:
        raise OSError("systemctl list-units failed (%d): %s" % (rc, err))
    return mon.parse_list_units(out)


def stop_units(config, units):
    """Stop the serving units at once; an irreversible job, so a racing start cannot cancel it."""
    if not units:
        return 0, ""
    rc, _out, err = run_tool([config["systemctl"], "stop", "--no-block", "--job-mode=replace-irreversibly", "--"]
                             + list(units))
    return rc, err


# ---------------------------------------------------------------- one round

def code_hashes():
    """sha256 of the monitor's own files (None when missing or unreadable)."""
    out = {}
    for path in CODE_FILES:
        try:
            with open(path, "rb") as handle:
                out[path] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            out[path] = None
    return out


def netns_inode(pid):
    """The inode of a process' network namespace (raises OSError)."""
    return os.stat("/proc/%s/ns/net" % pid).st_ino


def unit_namespaces(config, active, seen):
    """Active serving units whose main process is in another network namespace (units without podman)."""
    if not active:
        return []
    rc, out, err = run_tool([config["systemctl"], "show", "-p", "Id", "-p", "MainPID", "--"] + list(active))
    if rc != 0:
        raise OSError("systemctl show failed (%d): %s" % (rc, err))
    found = []
    for unit, pid in sorted(mon.parse_show(out).items()):
        if pid <= 0:
            continue
        try:
            inode = netns_inode(pid)
        except FileNotFoundError:
            continue  # the process ended between the two calls
        if inode not in seen:
            seen.add(inode)
            found.append({"name": unit, "pid": pid})
    return found


def discover(config, active, settling=None):
    """Find the serving containers and their network namespaces (podman ps, and units' main processes).

    settling: active units still starting or stopping, whose own podman
    commands may hold the locks ``podman ps`` waits for.
    """
    podman = config["podman"]
    present = os.access(podman, os.X_OK)
    containers, error = [], None
    if present:
        rc, out, err = run_tool([podman, "ps", "--filter", "label=%s" % config["container_label"],
                                 "--format", "json"], timeout=PODMAN_TIMEOUT)
        if rc != 0:
            error = "podman ps failed (%d): %s" % (rc, err)
        else:
            try:
                containers = mon.parse_podman_ps(out, config["container_label"])
            except ValueError as exc:
                error = "cannot read podman ps output: %s" % exc
    require = config.get("require_podman", True)
    outcome = mon.discovery_outcome(active, present, error, containers, require, settling)
    seen = {netns_inode("self")}
    targets = []
    for cont in containers:
        try:
            inode = netns_inode(cont["pid"]) if cont.get("pid") else None
        except FileNotFoundError:
            continue
        if inode is None or inode not in seen:
            seen.add(inode)
            targets.append(cont)
    if not require:
        try:
            targets += unit_namespaces(config, active, seen)
        except OSError as exc:
            outcome = {"ok": False, "detail": str(exc), "scope": outcome["scope"]}
    return targets, outcome


def probe_host(config, targets, timeout, workers, units, state):
    """Probe from the host in parallel; stop the serving units the moment a forbidden target answers.

    The last target is the positive control. Waiting for the whole round
    would add the slowest probe's timeout (a silently dropped UDP or ICMP
    probe) to every breach; the verdict, alarm and alert still follow the
    round as usual.
    """
    results = [None] * len(targets)
    stopped = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(targets))) as pool:
        futures = {pool.submit(probe.probe_one, t, timeout): i for i, t in enumerate(targets)}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            if not stopped and index < len(targets) - 1 and results[index].get("status") == "reachable":
                stop_units(config, units)
                stopped = True
                raise_early(config, results[index], units, state)
    return results


def raise_early(config, result, units, state):
    """Raise the alarm at once, so the gate refuses a start before the round ends; the round's alarm replaces it."""
    path = state_path(config, "alarm.json")
    if read_json(path) is None:
        early = mon.round_verdict([result], {"status": "reachable"})
        write_json(path, mon.alarm_from_verdict(early, socket.gethostname(), units))
        state["raised_early"] = True


def probe_round(config, state):
    """Probe once from the host and every serving container; return (verdict, status, units)."""
    started_at, t0 = mon.utc_now(), time.monotonic()
    forbidden, control = config["forbidden"], config["positive_control"]
    timeout, workers = float(config["probe_timeout"]), int(config["workers"])
    try:
        units_state = list_units(config)
        listed_error = None
    except OSError as exc:
        units_state, listed_error = {}, str(exc)
    units = mon.serving_units(config["units"], units_state.keys(), config["unit_glob"])
    active = sorted(u for u, s in units_state.items() if s in ("active", "activating", "reloading", "deactivating")
                    and u in units)
    # The host first: a hole in the host firewall is the common case, and
    # judging it before the namespaces keeps breach-to-stop short.
    results = probe_host(config, forbidden + [control], timeout, workers, units, state)
    host_results, control_result = results[:-1], results[-1]
    namespaces, containers, outcome = [], [], {"ok": True, "detail": "host breach: containers not probed",
                                               "scope": "host"}
    if not any(r.get("status") == "reachable" for r in host_results):
        settling = [u for u in active if units_state.get(u) != "active"]
        containers, outcome = discover(config, active, settling)
        ns_control = config.get("netns_positive_control")
        for cont in containers:
            if not cont.get("pid"):
                continue
            netns = "/proc/%d/ns/net" % cont["pid"]
            res = probe.probe_targets(forbidden + ([ns_control] if ns_control else []), timeout=timeout,
                                      workers=workers, netns=netns)
            namespaces.append({"name": cont["name"], "netns": netns,
                               "results": res[:len(forbidden)], "control": res[len(forbidden)] if ns_control else None})
    if listed_error:
        outcome = {"ok": False, "detail": listed_error, "scope": outcome.get("scope", "host")}
    problems = mon.code_changes(state["code"], code_hashes())
    elapsed = time.monotonic() - t0
    verdict = mon.round_verdict(host_results, control_result, namespaces, outcome, elapsed, mon.round_budget(config),
                                problems)
    state["round"] += 1
    status = mon.status_document(config, verdict, outcome["detail"], namespaces, started_at, mon.utc_now(), elapsed,
                                 read_json(state_path(config, "alarm.json")), units, state["round"], control_result)
    status["active_units"] = active
    status["containers"] = [c["name"] for c in containers]
    return verdict, status, units, active


def enforce(config, verdict, status, units, active, host, state):
    """Kill-switch: stop the units on a bad round, and keep them down while the alarm is raised."""
    alarm_path = state_path(config, "alarm.json")
    alarm = read_json(alarm_path)
    early = state.pop("raised_early", False)
    if verdict["verdict"] != "clean":
        rc, err = stop_units(config, units)
        if alarm is None or early:
            alarm = mon.alarm_from_verdict(verdict, host, units)
            if rc != 0:
                alarm["stop_error"] = err
            write_json(alarm_path, alarm)
            alert(config, alarm)
        status["alarm"], status["alarm_event"] = True, alarm["event"]
    elif alarm is not None and active:
        # Someone started a unit past the gate (or the gate was removed): stop it again.
        stop_units(config, active)
        journal_send([("MESSAGE", "alarm raised: stopping serving units that were started: %s" % " ".join(active)),
                      ("PRIORITY", "3"), ("SYSLOG_IDENTIFIER", mon.IDENTIFIER), ("AIRGAP_EVENT", "enforce")])


# ---------------------------------------------------------------- sub-commands

class _Stop(Exception):
    """SIGTERM: end the loop cleanly."""


def _on_term(_signum, _frame):
    raise _Stop()


def cmd_run(args):
    """The service loop."""
    global probe  # pylint: disable=global-statement,invalid-name
    import airgap_probe as probe  # noqa: E402  pylint: disable=import-outside-toplevel,redefined-outer-name
    config = load_config(args.config)
    host = socket.gethostname()
    os.makedirs(config["state_dir"], mode=0o755, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_term)
    state = {"round": 0, "code": code_hashes()}
    interval = float(config["interval"])
    journal_send(mon.journal_fields(mon.alert_record("started", host, [
        "interval %g s, %d forbidden targets, positive control %s" % (
            interval, len(config["forbidden"]), mon.target_label(config["positive_control"]))])))
    next_due = time.monotonic()
    try:
        while True:
            verdict, status, units, active = probe_round(config, state)
            enforce(config, verdict, status, units, active, host, state)
            write_json(state_path(config, "status.json"), status)
            if state["round"] == 1:
                # Serving units are After= this one: they start only now, after a first round.
                sd_notify("READY=1")
            sd_notify("WATCHDOG=1\nSTATUS=round %d %s%s" % (state["round"], verdict["verdict"],
                                                            ", alarm raised" if status["alarm"] else ""))
            next_due += interval
            delay = next_due - time.monotonic()
            if delay < 0:
                next_due = time.monotonic()  # overran: start the next round now, do not pile up
                continue
            time.sleep(delay)
    except _Stop:
        return 0


def cmd_stopped(args):
    """ExecStopPost: an abnormal end of the monitor raises the alarm (units stop through BindsTo)."""
    config = load_config(args.config)
    host = socket.gethostname()
    reason = mon.died_reason(os.environ.get("SERVICE_RESULT"), os.environ.get("EXIT_CODE"),
                             os.environ.get("EXIT_STATUS"))
    if reason is None:
        journal_send(mon.journal_fields(mon.alert_record("stopped", host, ["stopped cleanly"])))
        return 0
    try:
        units = mon.serving_units(config["units"], list_units(config).keys(), config["unit_glob"])
    except OSError:
        units = list(config["units"])
    stop_units(config, units)
    alarm_path = state_path(config, "alarm.json")
    if read_json(alarm_path) is None:
        record = mon.alert_record("monitor_died", host, [reason], units=units)
        write_json(alarm_path, record)
        alert(config, record)
    else:
        alert(config, mon.alert_record("monitor_died", host, [reason], units=units))
    return 0


def cmd_gate(args):
    """ExecStartPre of a serving unit: exit 0 only with no alarm and a recent clean round."""
    try:
        config = load_config(args.config)
        alarm = read_json(state_path(config, "alarm.json"))
        status = read_json(state_path(config, "status.json"))
    except (OSError, ValueError) as exc:
        print("isolation-monitor gate: refusing to start %s: cannot read the monitor's state: %s"
              % (args.unit, exc), file=sys.stderr)
        return 1
    allowed, message = mon.gate_decision(alarm, status, time.time())
    print("isolation-monitor gate: %s %s: %s" % ("allowing" if allowed else "refusing to start", args.unit, message),
          file=sys.stderr if not allowed else sys.stdout)
    return 0 if allowed else 1


def _operator():
    """Who runs the clear command: the sudo user if any, and the uid."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return {"user": name, "uid": uid, "sudo_user": os.environ.get("SUDO_USER"),
            "login": os.environ.get("LOGNAME") or os.environ.get("USER")}


def cmd_clear(args):
    """The operator's clear command: records who and why, removes the alarm, starts nothing."""
    config = load_config(args.config)
    alarm_path = state_path(config, "alarm.json")
    alarm = read_json(alarm_path)
    status = read_json(state_path(config, "status.json"))
    allowed, message = mon.clear_decision(alarm, status, time.time(), args.reason)
    if not allowed:
        print("isolation-monitor-clear: %s" % message, file=sys.stderr)
        return 1
    record = mon.alert_record("cleared", socket.gethostname(), [args.reason.strip()],
                              extra={"operator": _operator(), "cleared_alarm": alarm})
    alert(config, record)
    os.unlink(alarm_path)
    units = status.get("units") or config["units"]
    # reset-failed: starts the gate refused count against the unit's start limit.
    names = " ".join(units) or "vllm-<model>.service"
    print("alarm cleared (%s). Nothing was started; start the serving units when ready:\n"
          "  systemctl reset-failed %s; systemctl start %s" % (alarm.get("event"), names, names))
    return 0


def cmd_status(args):
    """Print the latest round, the alarm and the status age."""
    config = load_config(args.config)
    status = read_json(state_path(config, "status.json"))
    doc = {"status": status, "alarm": read_json(state_path(config, "alarm.json")),
           "age_seconds": mon.status_age(status, time.time()),
           "max_age_seconds": mon.max_status_age(config["interval"], config["probe_timeout"])}
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="isolation-monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="JSON config (default %(default)s)")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    sub.add_parser("run", help="the service loop")
    sub.add_parser("stopped", help="ExecStopPost of the service")
    gate = sub.add_parser("gate", help="ExecStartPre of a serving unit")
    gate.add_argument("--unit", default="serving unit")
    clear = sub.add_parser("clear", help="clear the alarm (starts nothing)")
    clear.add_argument("--reason", required=True, help="why the alarm may be cleared (recorded)")
    sub.add_parser("status", help="print the latest round and the alarm")
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "stopped": cmd_stopped, "gate": cmd_gate, "clear": cmd_clear, "status": cmd_status}
    try:
        return handlers[args.command](args)
    except (OSError, ValueError) as exc:
        print("isolation-monitor %s: %s" % (args.command, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
