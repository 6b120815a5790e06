# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decision logic of the isolation monitor: settings, round verdicts, alerts, the start gate.

The daemon (roles/isolation_monitor/files/isolation_monitor.py) does the I/O:
it probes with ``airgap_probe``, asks podman for the serving containers and
systemd to stop units. Everything it decides is decided here, so that the
rules a security officer relies on are unit-tested:

* a round is ``clean`` only when the positive control was reached from the
  host, every namespace was entered and every forbidden target was blocked;
* any forbidden target reached (``reachable``, including ``refused``, which
  proves packets leave) is a ``breach``;
* anything that stops the monitor from proving isolation (a probe error, the
  positive control not reached, podman failing or missing while serving units
  exist, a round overrunning its budget) is ``fail_closed``, treated exactly
  like a breach: the serving units stop.

This file imports only the Python standard library: the daemon runs it on
hosts without Ansible, and the role's validation filter imports it too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import fnmatch
import ipaddress
import json
import math
import re
import struct

IDENTIFIER = "isolation-monitor"

# Stable journald MESSAGE_IDs (sd-id128). A SIEM rule matches these; never change them.
MESSAGE_IDS = {
    "breach": "753e517bc81b445eae3a53fdd9de3412",
    "fail_closed": "191935bee53046179693c91698f947b0",
    "monitor_died": "bc74ebeb4f2c4484a529559cd0fd239f",
    "cleared": "a0037cf72ffe44ddb83a27c3ede2e642",
    "started": "6f05b3d59a504ea8bdab590ee5403f45",
    "stopped": "7598e2b95a4a4e20b614afc98660894b",
}
# syslog priorities: 2 crit for what stops the model servers, 5 notice, 6 info.
PRIORITIES = {"breach": 2, "fail_closed": 2, "monitor_died": 2, "cleared": 5, "started": 6, "stopped": 5}
ALARM_KINDS = ("breach", "fail_closed", "monitor_died")
VERDICTS = ("clean", "breach", "fail_closed")

MIN_INTERVAL = 1.0
MAX_INTERVAL = 3600.0
PROBE_PROTOS = ("tcp", "udp", "icmp", "dns")
TARGET_KEYS = ("name", "dest", "proto", "port", "timeout", "qname")
CONFIG_KEYS = ("interval", "probe_timeout", "forbidden", "positive_control", "netns_positive_control",
               "units", "unit_glob", "container_label", "podman", "systemctl", "state_dir", "workers",
               "max_round_seconds", "require_podman")
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@-]+\.service$")
_GLOB_RE = re.compile(r"^[A-Za-z0-9:_.@*?-]+\.service$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PATH_RE = re.compile(r"^(/[A-Za-z0-9_.+-]+)+$")


# ---------------------------------------------------------------- settings

def _address(dest):
    """Return an ip_address for a literal, or None."""
    try:
        return ipaddress.ip_address(str(dest).strip())
    except ValueError:
        return None


def target_problems(target, where):
    """Problems with one probe target ``{name?, dest, proto, port?, timeout?, qname?}``.

    The daemon probes these with airgap_probe, which checks them again; this
    check runs first so that the role refuses bad input before any change.
    """
    if not isinstance(target, dict):
        return ["%s: must be a mapping {dest, proto, port}, got %r" % (where, target)]
    problems = []
    unknown = sorted(str(k) for k in target if k not in TARGET_KEYS)
    if unknown:
        problems.append("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(unknown), ", ".join(TARGET_KEYS)))
    addr = _address(target.get("dest"))
    if addr is None:
        problems.append("%s: dest %r must be an IPv4 or IPv6 address literal (no host names, no networks)"
                        % (where, target.get("dest")))
    elif addr.is_multicast or addr.is_unspecified:
        problems.append("%s: dest %r must be a unicast address" % (where, target.get("dest")))
    proto = target.get("proto")
    if proto not in PROBE_PROTOS:
        problems.append("%s: proto %r must be one of %s" % (where, proto, ", ".join(PROBE_PROTOS)))
    port = target.get("port")
    if proto == "icmp" and port is not None:
        problems.append("%s: port %r is not allowed for proto icmp" % (where, port))
    elif proto in ("tcp", "udp") and port is None:
        problems.append("%s: port is required for proto %s" % (where, proto))
    elif port is not None and (isinstance(port, bool) or not str(port).isdigit() or not 1 <= int(port) <= 65535):
        problems.append("%s: port %r must be a whole number from 1 to 65535" % (where, port))
    return problems


def target_port(target):
    """The destination port a probe uses (dns defaults to 53; icmp has none)."""
    if target.get("proto") == "icmp":
        return None
    if target.get("port") is None:
        return 53
    return int(target["port"])


def target_label(target):
    """A readable name for a target: its own name, else ``proto dest:port``."""
    if target.get("name"):
        return str(target["name"])
    port = target_port(target)
    return "%s %s%s" % (target.get("proto"), target.get("dest"), "" if port is None else ":%d" % port)


def _wire_proto(target, addr):
    """The firewall protocol a probe travels as: dns is udp, icmp to IPv6 is icmpv6."""
    proto = target.get("proto")
    if proto == "dns":
        return "udp"
    if proto == "icmp":
        return "icmpv6" if addr.version == 6 else "icmp"
    return proto


def allowlist_conflicts(forbidden, allow, forbidden_var="isolation_monitor_forbidden",
                        allow_var="firewall_egress_allow"):
    """Forbidden targets that the firewall's egress allowlist admits (a contradiction).

    Such a target would be reachable by design, so the monitor would stop
    the servers every round. What "admits" means is airgap_allowlist's, the
    same module the firewall's lockout guard and the model server's check
    use. Imported here, on the controller only: the daemon on the host calls
    this with no allowlist and never needs it.
    """
    if not allow:
        return []
    try:
        from ansible.module_utils import airgap_allowlist as allowlist
    except ImportError:  # pytest and controller-side plugins import module_utils from its folder
        import airgap_allowlist as allowlist
    return allowlist.conflicts(forbidden, allow, forbidden_var, allow_var, _wire_proto, target_port, target_label)


def _number(value):
    """A float from a number or numeric string, else None (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def settings_errors(forbidden, positive_control, interval, probe_timeout, egress_allow=None,
                    netns_positive_control=None, units=None):
    """Every problem with the monitor's settings, each naming the variable (empty when valid)."""
    errors = []
    if not isinstance(forbidden, list) or not forbidden:
        errors.append("isolation_monitor_forbidden must be a non-empty list of targets {dest, proto, port}: "
                      "a monitor that probes nothing proves nothing (got %r)" % (forbidden,))
    else:
        for i, target in enumerate(forbidden):
            errors += target_problems(target, "isolation_monitor_forbidden[%d]" % i)
        errors += allowlist_conflicts(forbidden, egress_allow if isinstance(egress_allow, list) else [])
    if positive_control in (None, {}, ""):
        errors.append("isolation_monitor_positive_control is required: a target {dest, proto, port} that must be "
                      "reachable every round (e.g. the mirror's HTTP port), proving the prober would see a leak")
    else:
        errors += target_problems(positive_control, "isolation_monitor_positive_control")
        if isinstance(positive_control, dict) and isinstance(forbidden, list) and any(
                isinstance(t, dict) and _address(t.get("dest")) is not None
                and _address(t.get("dest")) == _address(positive_control.get("dest"))
                and t.get("proto") == positive_control.get("proto")
                and target_port(t) == target_port(positive_control) for t in forbidden):
            errors.append("isolation_monitor_positive_control %s is also in isolation_monitor_forbidden"
                          % target_label(positive_control))
    if netns_positive_control not in (None, {}, ""):
        errors += target_problems(netns_positive_control, "isolation_monitor_netns_positive_control")
    seconds = _number(interval)
    if seconds is None:
        errors.append("isolation_monitor_interval: %r must be a number of seconds" % (interval,))
    elif not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        errors.append("isolation_monitor_interval: %r must be at least %g and at most %g seconds"
                      % (interval, MIN_INTERVAL, MAX_INTERVAL))
    wait = _number(probe_timeout)
    if wait is None or wait <= 0:
        errors.append("isolation_monitor_probe_timeout: %r must be a positive number of seconds" % (probe_timeout,))
    elif seconds is not None and wait >= seconds:
        errors.append("isolation_monitor_probe_timeout: %r must be shorter than isolation_monitor_interval (%r), "
                      "or a round could not finish before the next one is due" % (probe_timeout, interval))
    for unit in units or []:
        if not isinstance(unit, str) or not _UNIT_RE.match(unit):
            errors.append("serving unit %r is not a systemd service name" % (unit,))
    return errors


def config_errors(config):
    """Problems with the daemon's JSON config (the role writes it; a hand edit is checked too)."""
    if not isinstance(config, dict):
        return ["config must be a JSON object"]
    errors = ["config: unknown key %r" % k for k in sorted(config) if k not in CONFIG_KEYS]
    errors += [e.replace("isolation_monitor_", "config ") for e in settings_errors(
        config.get("forbidden"), config.get("positive_control"), config.get("interval"),
        config.get("probe_timeout"), None, config.get("netns_positive_control"), config.get("units"))]
    if not isinstance(config.get("units", []), list):
        errors.append("config units must be a list of unit names")
    if not isinstance(config.get("unit_glob"), str) or not _GLOB_RE.match(config.get("unit_glob", "")):
        errors.append("config unit_glob %r must be a systemd service name pattern" % (config.get("unit_glob"),))
    if not isinstance(config.get("container_label"), str) or not _LABEL_RE.match(config.get("container_label", "")):
        errors.append("config container_label %r must be a label key" % (config.get("container_label"),))
    for key in ("podman", "systemctl", "state_dir"):
        if not isinstance(config.get(key), str) or not _PATH_RE.match(config.get(key, "")):
            errors.append("config %s %r must be an absolute path" % (key, config.get(key)))
    workers = config.get("workers", 16)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        errors.append("config workers %r must be a whole number from 1 to 256" % (workers,))
    return errors


def round_budget(config):
    """Seconds a round may take before it counts as overrun (fail closed)."""
    if config.get("max_round_seconds"):
        return float(config["max_round_seconds"])
    return float(config["interval"]) + 2 * float(config["probe_timeout"]) + 5.0


# ---------------------------------------------------------------- discovery

def parse_podman_ps(text, label):
    """Serving containers from ``podman ps --format json``: [{id, name, model, pid}].

    Only running containers that carry ``label`` are kept; a container
    without a PID (not running) cannot be probed and is listed with pid 0,
    which the verdict reports.
    """
    doc = json.loads(text or "[]")
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        raise ValueError("podman ps did not return a JSON list")
    out = []
    for item in doc:
        labels = item.get("Labels") or {}
        if label not in labels:
            continue
        names = item.get("Names") or []
        out.append({"id": str(item.get("Id", ""))[:12],
                    "name": names[0] if names else str(item.get("Id", ""))[:12],
                    "model": labels.get(label),
                    "pid": int(item.get("Pid") or 0),
                    "state": str(item.get("State", ""))})
    return sorted(out, key=lambda c: c["name"])


def serving_units(configured, listed, glob="vllm-*.service"):
    """The units the kill-switch acts on: the configured ones plus every loaded unit matching ``glob``."""
    units = set(u for u in configured or [])
    units.update(u for u in listed or [] if fnmatch.fnmatchcase(u, glob))
    return sorted(units)


def parse_list_units(text):
    """Unit names and active states from ``systemctl list-units --all --plain --no-legend``."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith(".service"):
            out[parts[0]] = parts[2]
    return out


# ---------------------------------------------------------------- verdict

def round_verdict(host_results, control_result, namespaces=None, discovery=None, elapsed=None, budget=None,
                  problems=None):
    """Judge one probing round.

    host_results: airgap_probe results for the forbidden targets from the host.
    control_result: the positive control's result (host), which must be reachable.
    namespaces: [{name, netns, results, control}] per serving container; each
      ``results`` are the forbidden targets probed from inside it and
      ``control`` its own positive control (may be None when none is set).
    discovery: {ok, detail, scope} from finding the containers.
    problems: further reasons the prober cannot be trusted (its code changed).
    Returns {verdict, reasons, reached, errors}: reasons are sentences.
    """
    reached, errors, reasons = [], [], []

    def judge(results, where):
        for res in results or []:
            label = "%s from %s" % (res.get("name") or target_label(res), where)
            if res.get("status") == "reachable":
                reached.append({"target": res.get("name"), "dest": res.get("dest"), "proto": res.get("proto"),
                                "port": res.get("port"), "where": where, "reason": res.get("reason"),
                                "detail": res.get("detail")})
                reasons.append("forbidden target %s was reached (%s)" % (label, res.get("reason")))
            elif res.get("status") != "blocked":
                errors.append({"target": res.get("name"), "where": where, "reason": res.get("reason"),
                               "detail": res.get("detail")})
                reasons.append("cannot probe %s: %s" % (label, res.get("detail") or res.get("reason")))

    def control(res, where):
        if res is None:
            return
        if res.get("status") != "reachable":
            errors.append({"target": res.get("name"), "where": where, "reason": "positive control " +
                           str(res.get("reason")), "detail": res.get("detail")})
            reasons.append("positive control %s from %s not reached (%s): the prober cannot prove it would see "
                           "a leak" % (res.get("name") or target_label(res), where,
                                       res.get("detail") or res.get("reason")))

    if not host_results:
        errors.append({"target": None, "where": "host", "reason": "no results", "detail": "no forbidden target probed"})
        reasons.append("no forbidden target was probed from the host")
    judge(host_results, "host")
    if control_result is None:
        errors.append({"target": None, "where": "host", "reason": "no positive control", "detail": None})
        reasons.append("no positive control result from the host")
    control(control_result, "host")
    for ns in namespaces or []:
        where = "container %s" % ns.get("name")
        judge(ns.get("results"), where)
        control(ns.get("control"), where)
    if discovery is not None and not discovery.get("ok", True):
        errors.append({"target": None, "where": "discovery", "reason": "discovery", "detail": discovery.get("detail")})
        reasons.append("cannot find the serving containers' network namespaces: %s" % discovery.get("detail"))
    if elapsed is not None and budget is not None and elapsed > budget:
        errors.append({"target": None, "where": "host", "reason": "overrun",
                       "detail": "round took %.1f s, budget %.1f s" % (elapsed, budget)})
        reasons.append("the round took %.1f s, more than its budget of %.1f s" % (elapsed, budget))
    for problem in problems or []:
        errors.append({"target": None, "where": "host", "reason": "integrity", "detail": problem})
        reasons.append(problem)
    verdict = "breach" if reached else ("fail_closed" if errors else "clean")
    return {"verdict": verdict, "reasons": reasons, "reached": reached, "errors": errors}


def parse_show(text):
    """Blocks of ``systemctl show -p Id -p MainPID u1 u2`` as {Id: MainPID}."""
    out = {}
    for block in (text or "").strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            try:
                out[props["Id"]] = int(props.get("MainPID") or 0)
            except ValueError:
                out[props["Id"]] = 0
    return out


def discovery_outcome(units_active, podman_present, podman_error=None, containers=None, require_podman=True,
                      units_settling=None):
    """Whether the serving containers' namespaces could be found, and what the status says.

    Without active serving units there is nothing to probe but the host (ok).
    Active units whose containers cannot be looked into (podman missing or
    failing) are a reason to fail closed, unless ``require_podman`` is off
    (units that run no container, such as the lab's test double: their main
    process' namespace is probed instead).

    units_settling: the active units that are still starting or stopping
    (activating/deactivating). ``podman run`` and ``podman stop``/``rm`` hold
    podman's locks, so a ``podman ps`` beside them can time out; when every
    active unit is settling, podman failing is not a reason to fail closed
    (the host is still probed; a unit that has reported ready is not settling).
    Without this, a model server on slow storage is stopped by its own start.
    """
    containers = containers or []
    settling = sorted(set(units_settling or []) & set(units_active))
    if podman_present and podman_error and units_active and settling == sorted(set(units_active)):
        return {"ok": True, "detail": "podman busy (%s) while serving units start or stop: %s; probing from the host "
                "only this round" % (podman_error, ", ".join(settling)), "scope": "host"}
    if not podman_present or podman_error:
        why = "podman failed (%s)" % podman_error if podman_present else "podman is not installed"
        if units_active and require_podman:
            return {"ok": False, "detail": "%s but serving units are active: %s" % (why, ", ".join(units_active)),
                    "scope": "host"}
        if units_active:
            return {"ok": True, "detail": "%s; serving units run no container (require_podman off): probing from the "
                    "host and their main processes' namespaces" % why, "scope": "host+units"}
        return {"ok": True, "detail": "%s and no serving unit is active: probing from the host only" % why,
                "scope": "host"}
    unprobed = [c["name"] for c in containers if not c.get("pid")]
    if unprobed:
        return {"ok": False, "detail": "serving container(s) without a PID to probe from: %s" % ", ".join(unprobed),
                "scope": "host"}
    if not containers:
        return {"ok": True, "detail": "no serving container is running: probing from the host only", "scope": "host"}
    return {"ok": True, "detail": "probing from the host and %d serving container(s)" % len(containers),
            "scope": "host+containers"}


def code_changes(expected, actual):
    """Problems when the monitor's own code files differ from what it loaded at start.

    ``expected`` and ``actual`` map path to sha256 (None: missing). A missing
    or altered prober cannot be trusted to report a leak.
    """
    problems = []
    for path in sorted(expected):
        if actual.get(path) is None:
            problems.append("monitor code %s is missing" % path)
        elif actual[path] != expected[path]:
            problems.append("monitor code %s changed since the monitor started" % path)
    return problems


# ---------------------------------------------------------------- alarm, alerts, gate

def utc_now():
    """Current UTC time as ISO 8601 with a Z suffix, millisecond precision."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def alert_record(kind, host, reasons, reached=None, errors=None, units=None, extra=None, when=None):
    """One alert: the JSON line of the evidence file and the data of the journal entry."""
    if kind not in MESSAGE_IDS:
        raise ValueError("unknown alert kind %r" % (kind,))
    record = {
        "ts": when or utc_now(),
        "event": kind,
        "message_id": MESSAGE_IDS[kind],
        "host": host,
        "reasons": list(reasons or []),
        "reached": list(reached or []),
        "errors": list(errors or []),
        "units_stopped": list(units or []),
    }
    if extra:
        record.update(extra)
    return record


def alert_message(record):
    """The one-line MESSAGE of a journal entry for ``record``."""
    head = {
        "breach": "EGRESS BREACH: forbidden destination reachable; serving units stopped",
        "fail_closed": "FAIL CLOSED: the monitor cannot prove isolation; serving units stopped",
        "monitor_died": "MONITOR DIED: the isolation monitor ended abnormally; serving units stopped",
        "cleared": "alarm cleared by an operator",
        "started": "isolation monitor started",
        "stopped": "isolation monitor stopped",
    }[record["event"]]
    tail = "; ".join(record.get("reasons") or [])
    return "%s%s" % (head, (": " + tail) if tail else "")


def journal_fields(record):
    """Journal fields for an alert: stable identifier and MESSAGE_ID plus AIRGAP_* details."""
    fields = [
        ("MESSAGE", alert_message(record)),
        ("MESSAGE_ID", record["message_id"]),
        ("PRIORITY", str(PRIORITIES[record["event"]])),
        ("SYSLOG_IDENTIFIER", IDENTIFIER),
        ("AIRGAP_EVENT", record["event"]),
        ("AIRGAP_HOST", str(record.get("host", ""))),
        ("AIRGAP_RECORD", json.dumps(record, sort_keys=True)),
    ]
    if record.get("reached"):
        fields.append(("AIRGAP_REACHED", ", ".join("%s from %s" % (r.get("target"), r.get("where"))
                                                   for r in record["reached"])))
    if record.get("units_stopped"):
        fields.append(("AIRGAP_UNITS", " ".join(record["units_stopped"])))
    return fields


def encode_journal(fields):
    """Encode fields in journald's native protocol (a value with a newline gets the binary form)."""
    out = b""
    for key, value in fields:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if b"\n" in data:
            out += key.encode("ascii") + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode("ascii") + b"=" + data + b"\n"
    return out


def alarm_from_verdict(verdict, host, units, when=None):
    """The alarm file's content for a breach or fail-closed round."""
    kind = verdict["verdict"]
    if kind not in ("breach", "fail_closed"):
        raise ValueError("a %s round raises no alarm" % kind)
    return alert_record(kind, host, verdict["reasons"], verdict["reached"], verdict["errors"], units, when=when)


def died_reason(service_result, exit_code, exit_status):
    """Why the monitor's main process ended, from systemd's ExecStopPost environment; None when clean.

    systemd sets SERVICE_RESULT=success for a clean stop (``systemctl stop``,
    exit 0); anything else (signal, core-dump, watchdog, exit-code, timeout)
    means the monitor did not end on purpose.
    """
    if service_result in (None, "", "success"):
        return None
    return "isolation-monitor.service ended with result %s (%s %s)" % (service_result, exit_code or "?",
                                                                       exit_status or "?")


def _parse_ts(text):
    """Seconds since the epoch for one of our timestamps, else None."""
    try:
        text = str(text).rstrip("Z")
        fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
        return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def status_age(status, now):
    """Seconds since the status' last round ended, or None when unknown."""
    ts = _parse_ts((status or {}).get("last_round_at"))
    return None if ts is None else max(0.0, now - ts)


def max_status_age(interval, probe_timeout):
    """A status older than this means the monitor is not running rounds."""
    return 3 * float(interval) + 2 * float(probe_timeout) + 5.0


def gate_decision(alarm, status, now):
    """May a serving unit start? Returns (allowed, message).

    Allowed only when no alarm is raised and the monitor's latest round is
    recent and clean: a model never serves before the monitor has proven
    isolation once.
    """
    if alarm is not None:
        return False, ("isolation alarm raised at %s (%s): %s; an operator must clear it with "
                       "isolation-monitor-clear --reason ..." % (alarm.get("ts"), alarm.get("event"),
                                                                 "; ".join(alarm.get("reasons") or []) or "no detail"))
    if not status:
        return False, "the isolation monitor has not completed a round yet"
    age = status_age(status, now)
    limit = max_status_age(status.get("interval", 2), status.get("probe_timeout", 1))
    if age is None or age > limit:
        return False, "the isolation monitor's latest round is stale (%s s old, limit %.0f s)" % (
            "unknown" if age is None else "%.0f" % age, limit)
    if status.get("verdict") != "clean":
        return False, "the isolation monitor's latest round is %s: %s" % (
            status.get("verdict"), "; ".join(status.get("reasons") or []))
    return True, "isolation monitor: latest round clean %.1f s ago, no alarm" % age


def clear_decision(alarm, status, now, reason):
    """May the alarm be cleared? Returns (allowed, message).

    Clearing needs a reason and a recent clean round: clearing while the hole
    is still open would only let a unit start until the next round.
    """
    if not isinstance(reason, str) or len(reason.strip()) < 3:
        return False, "--reason is required: say why the alarm may be cleared (it is recorded)"
    if alarm is None:
        return False, "no alarm is raised; nothing to clear"
    ok, message = gate_decision(None, status, now)
    if not ok:
        return False, "refusing to clear: %s" % message
    return True, "alarm cleared"


def status_document(config, verdict, scope_detail, namespaces, started_at, finished_at, elapsed, alarm, units,
                    round_no, control_result):
    """The last-round status JSON the audit (MON-ACTIVE) and the gate read."""
    return {
        "last_round_at": finished_at,
        "round_started_at": started_at,
        "round": round_no,
        "round_seconds": round(elapsed, 3),
        "interval": config["interval"],
        "probe_timeout": config["probe_timeout"],
        "verdict": verdict["verdict"],
        "reasons": verdict["reasons"],
        "reached": verdict["reached"],
        "errors": verdict["errors"],
        "positive_control": control_result,
        "forbidden_total": len(config["forbidden"]),
        "scope": scope_detail,
        "namespaces": [{"name": ns["name"], "netns": ns["netns"],
                        "blocked": sum(1 for r in ns["results"] if r.get("status") == "blocked"),
                        "probed": len(ns["results"]),
                        "control": (ns.get("control") or {}).get("status")} for ns in namespaces],
        "alarm": alarm is not None,
        "alarm_event": (alarm or {}).get("event"),
        "units": units,
    }
