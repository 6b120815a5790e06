# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the isolation_monitor role: input validation, the daemon's config, evidence.

The decisions live in module_utils/airgap_monitor.py (shared with the daemon);
these filters adapt them to the role's variables and build the MON-ACTIVE and
MON-KILLSWITCH records.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import sys

try:
    from ansible.module_utils.airgap_evidence import make_record
    from ansible.module_utils import airgap_monitor as mon
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record  # noqa: E402
    import airgap_monitor as mon  # noqa: E402

ROLE = "isolation_monitor"
SANDBOX = {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes"}


def isolation_monitor_errors(settings):
    """Every input problem, each naming the variable (empty when valid).

    ``settings`` holds the role's variables by name plus firewall_egress_allow
    (declared) and airgap_plan_firewall_egress (derived by the site plan).
    """
    s = dict(settings or {})
    errors = mon.settings_errors(s.get("isolation_monitor_forbidden"), s.get("isolation_monitor_positive_control"),
                                 s.get("isolation_monitor_interval"), s.get("isolation_monitor_probe_timeout"),
                                 s.get("firewall_egress_allow") or [],
                                 s.get("isolation_monitor_netns_positive_control"),
                                 s.get("isolation_monitor_serving_units"))
    derived = s.get("airgap_plan_firewall_egress") or []
    forbidden = s.get("isolation_monitor_forbidden")
    if isinstance(forbidden, list) and isinstance(derived, list):
        # The entries the site plan adds to the firewall (mirror, model backend), named as such.
        errors += mon.allowlist_conflicts(forbidden, derived,
                                          allow_var="the site plan's firewall_egress (from airgap_mirror_addresses "
                                                    "and airgap_models)")
    units = s.get("isolation_monitor_serving_units")
    if not isinstance(units, list):
        errors.append("isolation_monitor_serving_units must be a list of unit names, got %r" % (units,))
    for key in ("isolation_monitor_require_podman", "isolation_monitor_forward_to_syslog"):
        if not isinstance(s.get(key), bool):
            errors.append("%s: %r must be true or false" % (key, s.get(key)))
    workers = s.get("isolation_monitor_workers")
    if isinstance(workers, bool) or not str(workers).isdigit() or not 1 <= int(workers) <= 256:
        errors.append("isolation_monitor_workers: %r must be a whole number from 1 to 256" % (workers,))
    for key in ("isolation_monitor_podman", "isolation_monitor_systemctl", "isolation_monitor_python",
                "isolation_monitor_lib_dir", "isolation_monitor_config_dir", "isolation_monitor_state_dir",
                "isolation_monitor_clear_command"):
        value = s.get(key)
        if not isinstance(value, str) or not mon._PATH_RE.match(value):  # pylint: disable=protected-access
            errors.append("%s: %r must be an absolute path of letters, digits, '.', '_', '+' or '-'" % (key, value))
    return errors


def isolation_monitor_config(settings):
    """The daemon's JSON config (/etc/isolation-monitor/config.json) from the role's variables."""
    s = settings
    interval = float(s["isolation_monitor_interval"])
    config = {
        "interval": int(interval) if interval.is_integer() else interval,
        "probe_timeout": float(s["isolation_monitor_probe_timeout"]),
        "forbidden": [dict((k, v) for k, v in t.items() if v is not None) for t in s["isolation_monitor_forbidden"]],
        "positive_control": s["isolation_monitor_positive_control"],
        "units": sorted(s["isolation_monitor_serving_units"]),
        "unit_glob": s["isolation_monitor_unit_glob"],
        "container_label": s["isolation_monitor_container_label"],
        "podman": s["isolation_monitor_podman"],
        "systemctl": s["isolation_monitor_systemctl"],
        "state_dir": s["isolation_monitor_state_dir"],
        "workers": int(s["isolation_monitor_workers"]),
        "require_podman": bool(s["isolation_monitor_require_podman"]),
    }
    if s.get("isolation_monitor_netns_positive_control"):
        config["netns_positive_control"] = s["isolation_monitor_netns_positive_control"]
    errors = mon.config_errors(config)
    if errors:
        raise ValueError("isolation monitor config: %s" % "; ".join(errors))
    return config


def _props(text):
    """``systemctl show`` output as a dict."""
    return dict(line.split("=", 1) for line in (text or "").splitlines() if "=" in line)


def mon_active_record(unit_show, status_doc, config):
    """MON-ACTIVE: running, last round recent, positive control reached, every forbidden target blocked."""
    unit = _props(unit_show)
    doc = status_doc or {}
    status = doc.get("status") or {}
    age, max_age = doc.get("age_seconds"), doc.get("max_age_seconds")
    control = status.get("positive_control") or {}
    forbidden_total = len(config.get("forbidden") or [])
    problems = []
    if unit.get("ActiveState") != "active" or unit.get("SubState") != "running":
        problems.append("isolation-monitor.service is %s/%s, not active/running"
                        % (unit.get("ActiveState"), unit.get("SubState")))
    if not status:
        problems.append("no round recorded (%s/status.json missing)" % config.get("state_dir"))
    elif age is None or max_age is None or age > max_age:
        problems.append("the last round is stale: %s s old, limit %s s" % (age, max_age))
    if status and control.get("status") != "reachable":
        problems.append("the positive control %s was not reached: %s" % (control.get("name"), control.get("detail")))
    if status and status.get("verdict") != "clean":
        problems.append("the last round is %s: %s" % (status.get("verdict"), "; ".join(status.get("reasons") or [])))
    if status and status.get("forbidden_total") != forbidden_total:
        problems.append("the monitor probes %s forbidden targets, the declaration has %d"
                        % (status.get("forbidden_total"), forbidden_total))
    sandbox = dict((k, unit.get(k)) for k in SANDBOX)
    wrong = sorted(k for k, v in SANDBOX.items() if sandbox.get(k) != v)
    if wrong:
        problems.append("sandboxing differs from the declaration: %s" % ", ".join(
            "%s=%s" % (k, sandbox.get(k)) for k in wrong))
    evidence = {
        "unit": {k: unit.get(k) for k in ("ActiveState", "SubState", "MainPID", "NRestarts", "ExecMainStartTimestamp",
                                          "WatchdogUSec", "User")},
        "sandbox": sandbox,
        "last_round_at": status.get("last_round_at"),
        "last_round_age_seconds": age,
        "max_age_seconds": max_age,
        "round": status.get("round"),
        "round_seconds": status.get("round_seconds"),
        "interval_seconds": status.get("interval"),
        "verdict": status.get("verdict"),
        "positive_control": {k: control.get(k) for k in ("name", "dest", "proto", "port", "status", "reason")},
        "forbidden_total": forbidden_total,
        "forbidden_blocked_from_host": forbidden_total if status.get("verdict") == "clean" else None,
        "scope": status.get("scope"),
        "namespaces": status.get("namespaces"),
        "reached": status.get("reached"),
        "alarm_raised": bool(doc.get("alarm")),
        "problems": problems,
    }
    return make_record("MON-ACTIVE", ROLE, "fail" if problems else "pass", evidence)


def code_hashes(sha256sum_lines, names):
    """{name: sha256 or None} for ``names`` from ``sha256sum`` output lines (any folder).

    A file sha256sum could not read has no line and maps to None, so a record
    taken with it never equals one taken with the file in place.
    """
    found = {}
    for line in sha256sum_lines or []:
        match = re.match(r"^\\?([0-9a-f]{64}) [ *](.+)$", line)
        if match:
            found[match.group(2).rsplit("/", 1)[-1]] = match.group(1)
    return {name: found.get(name) for name in names}


def mon_killswitch_record(units, unit_shows, dropins, alarm, selftest, code_hashes):
    """MON-KILLSWITCH: every serving unit bound to the monitor and gated, and a staged breach passed on this build.

    units: the declared serving units; unit_shows: ``systemctl show -p BindsTo
    -p After -p ExecStartPre -p LoadState`` per unit; dropins: {unit: exists};
    selftest: the record the staged-breach test wrote (or None);
    code_hashes: sha256 of the installed monitor files now.
    """
    problems, bound = [], {}
    for unit, text in zip(units, unit_shows):
        props = _props(text)
        ok = ("isolation-monitor.service" in props.get("BindsTo", "").split()
              and "isolation-monitor.service" in props.get("After", "").split()
              and "isolation_monitor.py" in props.get("ExecStartPre", "") and dropins.get(unit))
        bound[unit] = {"bound": bool(ok), "load_state": props.get("LoadState"), "drop_in": bool(dropins.get(unit))}
        if not ok:
            problems.append("%s is not bound to isolation-monitor.service with the start gate" % unit)
    if alarm:
        problems.append("the alarm is raised (%s at %s): the serving units are held down until it is cleared"
                        % (alarm.get("event"), alarm.get("ts")))
    test = selftest or {}
    if not test:
        problems.append("no staged-breach test recorded on this host (run the role's breach_test.yml)")
    elif not test.get("passed"):
        problems.append("the staged-breach test failed: %s" % "; ".join(test.get("problems") or []))
    elif test.get("code_sha256") != code_hashes:
        problems.append("the staged-breach test ran on another build of the monitor (code hashes differ)")
    evidence = {
        "units": bound,
        "units_total": len(units),
        "alarm": alarm,
        "staged_breach": {k: test.get(k) for k in ("passed", "finished_at", "stop_latency_seconds", "target",
                                                   "alarm_event", "stayed_down_after_close", "code_sha256")},
        "code_sha256": code_hashes,
        "problems": problems,
    }
    return make_record("MON-KILLSWITCH", ROLE, "fail" if problems else "pass", evidence)


class FilterModule(object):
    """isolation_monitor filters."""

    def filters(self):
        return {
            "isolation_monitor_errors": isolation_monitor_errors,
            "isolation_monitor_config": isolation_monitor_config,
            "isolation_monitor_mon_active": mon_active_record,
            "isolation_monitor_mon_killswitch": mon_killswitch_record,
            "isolation_monitor_code_hashes": code_hashes,
        }
