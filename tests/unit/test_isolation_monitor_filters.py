# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the isolation_monitor role: validation, the daemon's config, MON-ACTIVE / MON-KILLSWITCH records."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from isolation_monitor_filters import (code_hashes, isolation_monitor_config, isolation_monitor_errors, mon_active_record,
                                       mon_killswitch_record)

SETTINGS = {
    "isolation_monitor_forbidden": [{"name": "canary", "dest": "198.18.0.10", "proto": "tcp", "port": 443}],
    "isolation_monitor_positive_control": {"name": "mirror", "dest": "10.89.0.10", "proto": "tcp", "port": 80},
    "isolation_monitor_netns_positive_control": {"dest": "127.0.0.1", "proto": "tcp", "port": 9},
    "isolation_monitor_interval": 2, "isolation_monitor_probe_timeout": 0.5, "isolation_monitor_workers": 16,
    "isolation_monitor_serving_units": ["vllm-demo.service"], "isolation_monitor_unit_glob": "vllm-*.service",
    "isolation_monitor_container_label": "airgap.vllm_server.model", "isolation_monitor_require_podman": True,
    "isolation_monitor_forward_to_syslog": True, "isolation_monitor_podman": "/usr/bin/podman",
    "isolation_monitor_systemctl": "/usr/bin/systemctl", "isolation_monitor_python": "/usr/bin/python3",
    "isolation_monitor_lib_dir": "/usr/local/lib/airgap", "isolation_monitor_config_dir": "/etc/isolation-monitor",
    "isolation_monitor_state_dir": "/var/lib/isolation-monitor",
    "isolation_monitor_clear_command": "/usr/local/sbin/isolation-monitor-clear",
    "firewall_egress_allow": [{"name": "mirror", "dest": "10.89.0.10/32", "proto": "tcp", "ports": [80]}],
}
UNIT = ("ActiveState=active\nSubState=running\nMainPID=42\nNRestarts=0\nUser=root\nProtectSystem=strict\n"
        "ProtectHome=yes\nPrivateTmp=yes\nNoNewPrivileges=yes\n")
BOUND = ("BindsTo=isolation-monitor.service\nAfter=isolation-monitor.service basic.target\nLoadState=loaded\n"
         "ExecStartPre={ path=/usr/bin/python3 ; argv[]=/usr/bin/python3 /usr/local/lib/airgap/isolation_monitor.py "
         "gate --unit vllm-demo.service }\n")
CODE = {"isolation_monitor.py": "a", "airgap_monitor.py": "b", "airgap_probe.py": "c"}


def settings(**over):
    out = copy.deepcopy(SETTINGS)
    out.update(over)
    return out


def status_doc(verdict="clean", age=0.5, control="reachable", forbidden_total=1):
    return {"status": {"verdict": verdict, "reasons": [] if verdict == "clean" else ["x"], "round": 9,
                       "last_round_at": "t", "forbidden_total": forbidden_total, "interval": 2,
                       "positive_control": {"name": "mirror", "status": control, "detail": "d"}},
            "alarm": None, "age_seconds": age, "max_age_seconds": 12.0}


def test_valid_settings_and_config():
    assert isolation_monitor_errors(settings()) == []
    config = isolation_monitor_config(settings())
    assert config["interval"] == 2 and isinstance(config["interval"], int)
    assert config["units"] == ["vllm-demo.service"] and config["require_podman"] is True


@pytest.mark.parametrize("over, expected", [
    ({"isolation_monitor_forbidden": []}, "isolation_monitor_forbidden must be a non-empty list"),
    ({"isolation_monitor_forbidden": [{"name": "m", "dest": "10.89.0.10", "proto": "tcp", "port": 80}]},
     "isolation_monitor_forbidden[0] (m) is allowed by firewall_egress_allow[0]"),
    ({"isolation_monitor_positive_control": {}}, "isolation_monitor_positive_control is required"),
    ({"isolation_monitor_interval": 0.5}, "isolation_monitor_interval: 0.5 must be at least 1"),
    ({"isolation_monitor_require_podman": "yes"}, "isolation_monitor_require_podman: 'yes' must be true or false"),
    ({"isolation_monitor_state_dir": "var/lib"}, "isolation_monitor_state_dir: 'var/lib' must be an absolute path"),
])
def test_bad_input_names_the_variable(over, expected):
    errors = isolation_monitor_errors(settings(**over))
    assert any(e.startswith(expected) for e in errors), errors


def test_mon_active_pass_and_each_failure():
    config = isolation_monitor_config(settings())
    assert mon_active_record(UNIT, status_doc(), config)["status"] == "pass"
    cases = [
        (UNIT.replace("SubState=running", "SubState=dead"), status_doc(), "not active/running"),
        (UNIT, {}, "no round recorded"),
        (UNIT, status_doc(age=60), "stale"),
        (UNIT, status_doc(control="blocked"), "positive control mirror was not reached"),
        (UNIT, status_doc(verdict="breach"), "the last round is breach"),
        (UNIT, status_doc(forbidden_total=3), "probes 3 forbidden targets, the declaration has 1"),
        (UNIT.replace("ProtectSystem=strict", "ProtectSystem=no"), status_doc(), "sandboxing differs"),
    ]
    for unit, doc, problem in cases:
        record = mon_active_record(unit, doc, config)
        assert record["status"] == "fail", problem
        assert any(problem in p for p in record["evidence"]["problems"]), record["evidence"]["problems"]


def test_mon_killswitch_needs_binding_and_a_staged_breach_on_this_build():
    units = ["vllm-demo.service"]
    test = {"passed": True, "code_sha256": CODE, "stop_latency_seconds": 1.2}
    assert mon_killswitch_record(units, [BOUND], {"vllm-demo.service": True}, None, test, CODE)["status"] == "pass"
    cases = [
        ([BOUND.replace("BindsTo=isolation-monitor.service", "BindsTo=")], True, None, test, "is not bound"),
        ([BOUND], False, None, test, "is not bound"),
        ([BOUND], True, {"event": "breach", "ts": "t"}, test, "the alarm is raised"),
        ([BOUND], True, None, {}, "no staged-breach test recorded"),
        ([BOUND], True, None, dict(test, passed=False, problems=["slow"]), "the staged-breach test failed: slow"),
        ([BOUND], True, None, dict(test, code_sha256=dict(CODE, **{"airgap_probe.py": "z"})), "another build"),
    ]
    for shows, dropin, alarm, selftest, problem in cases:
        record = mon_killswitch_record(units, shows, {"vllm-demo.service": dropin}, alarm, selftest, CODE)
        assert record["status"] == "fail", problem
        assert any(problem in p for p in record["evidence"]["problems"]), record["evidence"]["problems"]


def test_code_hashes_names_each_file_and_marks_a_missing_one():
    a, b = "a" * 64, "0123456789abcdef" * 4
    lines = ["%s  /usr/local/lib/airgap/isolation_monitor.py" % a,
             "\\%s  /usr/local/lib/airgap/odd\\nname.py" % b,
             "sha256sum: /usr/local/lib/airgap/airgap_probe.py: No such file or directory"]
    names = ["isolation_monitor.py", "airgap_monitor.py", "airgap_probe.py"]
    got = code_hashes(lines, names)
    assert got == {"isolation_monitor.py": a, "airgap_monitor.py": None, "airgap_probe.py": None}
    # the form breach_test.yml records: equal hashes compare equal, a missing file never does
    full = ["%s  /x/%s" % (a, n) for n in names]
    assert code_hashes(full, names) == dict.fromkeys(names, a)
    assert code_hashes(full[:2], names) != dict.fromkeys(names, a)
