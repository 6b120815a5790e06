# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decision logic of the isolation monitor (module_utils/airgap_monitor.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import struct
import time

from ansible.module_utils import airgap_monitor as mon

CANARY = {"name": "canary tcp/443", "dest": "198.18.0.10", "proto": "tcp", "port": 443}
CONTROL = {"name": "mirror http", "dest": "10.89.0.10", "proto": "tcp", "port": 80}
ALLOW = [{"name": "mirror-http-v4", "dest": "10.89.0.10/32", "proto": "tcp", "ports": [80]},
         {"name": "ntp", "dest": "fd00:89::/64", "proto": "udp", "ports": [123]}]


def res(target, status, reason="timeout"):
    """A probe result as airgap_probe returns it."""
    return dict(target, family="ipv4", status=status, reason=reason, detail="d", elapsed_ms=1.0)


# ---------------------------------------------------------------- settings

def test_valid_settings_have_no_errors():
    assert mon.settings_errors([CANARY], CONTROL, 2, 0.5, ALLOW) == []


def test_empty_forbidden_list_is_refused_naming_the_variable():
    errors = mon.settings_errors([], CONTROL, 2, 0.5, ALLOW)
    assert len(errors) == 1 and errors[0].startswith("isolation_monitor_forbidden must be a non-empty list")


def test_missing_positive_control_is_refused():
    errors = mon.settings_errors([CANARY], None, 2, 0.5)
    assert errors and errors[0].startswith("isolation_monitor_positive_control is required")


def test_interval_below_one_second_is_refused():
    errors = mon.settings_errors([CANARY], CONTROL, 0.5, 0.2)
    assert errors == ["isolation_monitor_interval: 0.5 must be at least 1 and at most 3600 seconds"]


def test_interval_must_be_a_number_and_probe_timeout_shorter_than_it():
    assert mon.settings_errors([CANARY], CONTROL, "often", 0.5)[0].startswith("isolation_monitor_interval: 'often'")
    assert mon.settings_errors([CANARY], CONTROL, True, 0.5)[0].startswith("isolation_monitor_interval: True")
    errors = mon.settings_errors([CANARY], CONTROL, 1, 1)
    assert errors and errors[0].startswith("isolation_monitor_probe_timeout: 1 must be shorter")


def test_forbidden_target_on_the_allowlist_is_a_contradiction():
    errors = mon.settings_errors([CONTROL], {"dest": "10.89.0.11", "proto": "tcp", "port": 80}, 2, 0.5, ALLOW)
    assert len(errors) == 1
    assert errors[0].startswith("isolation_monitor_forbidden[0] (mirror http) is allowed by firewall_egress_allow[0]")


def test_contradiction_compares_proto_port_and_cidr():
    # in the CIDR, wire protocol udp (dns is udp), right port: conflict
    assert mon.allowlist_conflicts([{"dest": "fd00:89::5", "proto": "udp", "port": 123}], ALLOW)
    # other port, other proto, outside the CIDR, other family: no conflict
    for target in ({"dest": "10.89.0.10", "proto": "tcp", "port": 22},
                   {"dest": "10.89.0.10", "proto": "udp", "port": 80},
                   {"dest": "10.89.0.11", "proto": "tcp", "port": 80},
                   {"dest": "fd00:90::5", "proto": "udp", "port": 123}):
        assert mon.allowlist_conflicts([target], ALLOW) == [], target
    # dns defaults to port 53 and travels as udp
    assert mon.allowlist_conflicts([{"dest": "10.0.0.53", "proto": "dns"}],
                                   [{"name": "dns", "dest": "10.0.0.0/24", "proto": "udp", "ports": [53]}])
    # icmp to IPv6 is icmpv6 on the wire; the firewall's "icmp" to a v6 net means icmpv6 too
    assert mon.allowlist_conflicts([{"dest": "fd00::1", "proto": "icmp"}],
                                   [{"name": "ping6", "dest": "fd00::/64", "proto": "icmp"}])
    assert mon.allowlist_conflicts([{"dest": "10.0.0.1", "proto": "icmp"}],
                                   [{"name": "ping6", "dest": "fd00::/64", "proto": "icmpv6"}]) == []


def test_bad_targets_name_the_index_and_field():
    errors = mon.settings_errors([{"dest": "canary.example", "proto": "tcp", "port": 443},
                                  {"dest": "198.18.0.10", "proto": "sctp", "port": 1},
                                  {"dest": "198.18.0.10", "proto": "tcp"},
                                  {"dest": "198.18.0.10", "proto": "icmp", "port": 1},
                                  {"dest": "198.18.0.10", "proto": "tcp", "port": 70000, "colour": "red"}],
                                 CONTROL, 2, 0.5)
    text = "\n".join(errors)
    assert "isolation_monitor_forbidden[0]: dest 'canary.example' must be an IPv4 or IPv6 address literal" in text
    assert "isolation_monitor_forbidden[1]: proto 'sctp'" in text
    assert "isolation_monitor_forbidden[2]: port is required for proto tcp" in text
    assert "isolation_monitor_forbidden[3]: port 1 is not allowed for proto icmp" in text
    assert "isolation_monitor_forbidden[4]: unknown key(s) colour" in text
    assert "isolation_monitor_forbidden[4]: port 70000" in text


def test_positive_control_may_not_be_forbidden():
    errors = mon.settings_errors([CANARY, dict(CONTROL)], CONTROL, 2, 0.5)
    assert any("is also in isolation_monitor_forbidden" in e for e in errors)


def _config(**over):
    config = {"interval": 2, "probe_timeout": 0.5, "forbidden": [CANARY], "positive_control": CONTROL,
              "netns_positive_control": {"dest": "127.0.0.1", "proto": "tcp", "port": 9},
              "units": ["vllm-demo.service"], "unit_glob": "vllm-*.service",
              "container_label": "airgap.vllm_server.model", "podman": "/usr/bin/podman",
              "systemctl": "/usr/bin/systemctl", "state_dir": "/var/lib/isolation-monitor", "workers": 16}
    config.update(over)
    return config


def test_config_errors():
    assert mon.config_errors(_config()) == []
    errors = mon.config_errors(_config(units=["vllm demo"], podman="podman", extra=1, interval=0.2))
    text = "\n".join(errors)
    assert "config: unknown key 'extra'" in text
    assert "serving unit 'vllm demo' is not a systemd service name" in text
    assert "config podman 'podman' must be an absolute path" in text
    assert "config interval: 0.2 must be at least 1" in text


# ---------------------------------------------------------------- verdict

def test_clean_round():
    verdict = mon.round_verdict([res(CANARY, "blocked")], res(CONTROL, "reachable", "connected"))
    assert verdict == {"verdict": "clean", "reasons": [], "reached": [], "errors": []}


def test_reached_forbidden_target_is_a_breach_even_when_refused():
    verdict = mon.round_verdict([res(CANARY, "reachable", "refused")], res(CONTROL, "reachable", "connected"))
    assert verdict["verdict"] == "breach"
    assert verdict["reached"][0]["where"] == "host" and verdict["reached"][0]["reason"] == "refused"
    assert "forbidden target canary tcp/443 from host was reached (refused)" in verdict["reasons"]


def test_breach_wins_over_errors():
    verdict = mon.round_verdict([res(CANARY, "reachable", "connected"), res(CONTROL, "error", "permission")],
                                res(CONTROL, "blocked"))
    assert verdict["verdict"] == "breach" and len(verdict["errors"]) == 2


def test_probe_error_fails_closed():
    verdict = mon.round_verdict([res(CANARY, "error", "permission")], res(CONTROL, "reachable", "connected"))
    assert verdict["verdict"] == "fail_closed"
    assert verdict["reasons"][0].startswith("cannot probe canary tcp/443 from host")


def test_unreachable_positive_control_fails_closed():
    verdict = mon.round_verdict([res(CANARY, "blocked")], res(CONTROL, "blocked"))
    assert verdict["verdict"] == "fail_closed"
    assert "positive control mirror http from host not reached" in verdict["reasons"][0]


def test_missing_results_fail_closed():
    assert mon.round_verdict([], res(CONTROL, "reachable"))["verdict"] == "fail_closed"
    assert mon.round_verdict([res(CANARY, "blocked")], None)["verdict"] == "fail_closed"


def test_namespace_results_are_judged_and_named():
    ns = [{"name": "vllm-demo", "netns": "/proc/7/ns/net", "results": [res(CANARY, "reachable", "connected")],
           "control": res(CONTROL, "reachable")}]
    verdict = mon.round_verdict([res(CANARY, "blocked")], res(CONTROL, "reachable"), ns)
    assert verdict["verdict"] == "breach" and verdict["reached"][0]["where"] == "container vllm-demo"
    ns[0]["results"] = [res(CANARY, "blocked")]
    ns[0]["control"] = res(CONTROL, "error", "permission")
    assert mon.round_verdict([res(CANARY, "blocked")], res(CONTROL, "reachable"), ns)["verdict"] == "fail_closed"


def test_discovery_failure_overrun_and_code_change_fail_closed():
    ok = ([res(CANARY, "blocked")], res(CONTROL, "reachable"))
    assert mon.round_verdict(*ok, discovery={"ok": False, "detail": "podman failed"})["verdict"] == "fail_closed"
    assert mon.round_verdict(*ok, elapsed=9.0, budget=4.0)["verdict"] == "fail_closed"
    assert mon.round_verdict(*ok, elapsed=3.0, budget=4.0)["verdict"] == "clean"
    assert mon.round_verdict(*ok, problems=["monitor code x is missing"])["verdict"] == "fail_closed"


def test_code_changes():
    assert mon.code_changes({"/a": "1", "/b": "2"}, {"/a": "1", "/b": "2"}) == []
    assert mon.code_changes({"/a": "1", "/b": "2"}, {"/a": None, "/b": "3"}) == [
        "monitor code /a is missing", "monitor code /b changed since the monitor started"]


# ---------------------------------------------------------------- discovery

def test_parse_podman_ps_keeps_labelled_containers():
    text = json.dumps([
        {"Id": "abcdef0123456789", "Names": ["vllm-demo"], "Pid": 4242, "State": "running",
         "Labels": {"airgap.vllm_server.model": "demo"}},
        {"Id": "ffff", "Names": ["other"], "Pid": 1, "Labels": {}},
        {"Id": "eeee", "Names": ["vllm-b"], "Pid": 0, "Labels": {"airgap.vllm_server.model": "b"}},
    ])
    out = mon.parse_podman_ps(text, "airgap.vllm_server.model")
    assert [(c["name"], c["model"], c["pid"]) for c in out] == [("vllm-b", "b", 0), ("vllm-demo", "demo", 4242)]
    assert mon.parse_podman_ps("null", "x") == []


def test_discovery_outcomes():
    assert mon.discovery_outcome([], False)["ok"]
    assert "host only" in mon.discovery_outcome([], False)["detail"]
    assert not mon.discovery_outcome(["vllm-a.service"], False)["ok"]
    assert mon.discovery_outcome(["vllm-a.service"], False, require_podman=False)["ok"]
    assert not mon.discovery_outcome(["vllm-a.service"], True, "exit 125")["ok"]
    assert mon.discovery_outcome([], True, "exit 125")["ok"]
    assert not mon.discovery_outcome(["vllm-a.service"], True, None, [{"name": "vllm-a", "pid": 0}])["ok"]
    assert mon.discovery_outcome(["vllm-a.service"], True, None, [{"name": "vllm-a", "pid": 3}])["scope"] == \
        "host+containers"


def test_podman_busy_only_excused_while_every_active_unit_starts_or_stops():
    busy = "podman ps did not answer within 4 s"
    out = mon.discovery_outcome(["vllm-a.service"], True, busy, units_settling=["vllm-a.service"])
    assert out["ok"] and out["scope"] == "host" and "start or stop" in out["detail"]
    # One unit serving (active, ready) while podman hangs: its container cannot be probed.
    assert not mon.discovery_outcome(["vllm-a.service", "vllm-b.service"], True, busy,
                                     units_settling=["vllm-a.service"])["ok"]
    assert not mon.discovery_outcome(["vllm-a.service"], True, busy, units_settling=[])["ok"]
    # podman missing is never excused by a settling unit.
    assert not mon.discovery_outcome(["vllm-a.service"], False, units_settling=["vllm-a.service"])["ok"]


def test_serving_units_and_systemctl_parsing():
    listed = mon.parse_list_units("vllm-a.service loaded active running A\n"
                                  "vllm-b.service not-found inactive dead b\nother.service loaded active running\n")
    assert listed == {"vllm-a.service": "active", "vllm-b.service": "inactive", "other.service": "active"}
    assert mon.serving_units(["vllm-c.service"], listed) == ["vllm-a.service", "vllm-b.service", "vllm-c.service"]
    assert mon.parse_show("MainPID=12\nId=vllm-a.service\n\nId=vllm-b.service\nMainPID=0\n") == {
        "vllm-a.service": 12, "vllm-b.service": 0}


# ---------------------------------------------------------------- alerts

def test_alert_journal_fields_have_the_stable_identifiers():
    verdict = mon.round_verdict([res(CANARY, "reachable", "connected")], res(CONTROL, "reachable"))
    record = mon.alarm_from_verdict(verdict, "gpu-node-1", ["vllm-a.service"], when="2026-01-01T00:00:00.000Z")
    fields = dict(mon.journal_fields(record))
    assert fields["SYSLOG_IDENTIFIER"] == "isolation-monitor"
    assert fields["MESSAGE_ID"] == mon.MESSAGE_IDS["breach"] == "753e517bc81b445eae3a53fdd9de3412"
    assert fields["PRIORITY"] == "2"
    assert fields["MESSAGE"].startswith("EGRESS BREACH")
    assert json.loads(fields["AIRGAP_RECORD"])["units_stopped"] == ["vllm-a.service"]
    assert fields["AIRGAP_REACHED"] == "canary tcp/443 from host"


def test_message_ids_are_distinct_128_bit_ids():
    ids = list(mon.MESSAGE_IDS.values())
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_clean_round_raises_no_alarm():
    try:
        mon.alarm_from_verdict({"verdict": "clean"}, "h", [])
    except ValueError:
        return
    raise AssertionError("a clean round must not raise an alarm")


def test_encode_journal_native_protocol():
    data = mon.encode_journal([("MESSAGE", "one line"), ("AIRGAP_X", "two\nlines")])
    assert data.startswith(b"MESSAGE=one line\n")
    assert data.endswith(b"AIRGAP_X\n" + struct.pack("<Q", 9) + b"two\nlines\n")


def test_died_reason():
    assert mon.died_reason("success", "exited", "0") is None
    assert mon.died_reason("", None, None) is None
    assert "result signal (killed KILL)" in mon.died_reason("signal", "killed", "KILL")
    assert "watchdog" in mon.died_reason("watchdog", "killed", "ABRT")


# ---------------------------------------------------------------- gate and clear

def _status(age, verdict="clean"):
    when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - age))
    return {"last_round_at": when, "verdict": verdict, "reasons": ["r"] if verdict != "clean" else [],
            "interval": 2, "probe_timeout": 0.5}


def test_gate_allows_only_a_recent_clean_round_without_alarm():
    now = time.time()
    assert mon.gate_decision(None, _status(1), now)[0]
    assert not mon.gate_decision({"ts": "t", "event": "breach", "reasons": ["x"]}, _status(1), now)[0]
    assert "not completed a round" in mon.gate_decision(None, None, now)[1]
    assert "stale" in mon.gate_decision(None, _status(60), now)[1]
    assert "latest round is breach" in mon.gate_decision(None, _status(1, "breach"), now)[1]


def test_clear_needs_a_reason_an_alarm_and_a_clean_round():
    now, alarm = time.time(), {"event": "breach"}
    assert mon.clear_decision(alarm, _status(1), now, "fixed the firewall, ticket 42") == (True, "alarm cleared")
    assert not mon.clear_decision(alarm, _status(1), now, " ")[0]
    assert not mon.clear_decision(None, _status(1), now, "because")[0]
    refused = mon.clear_decision(alarm, _status(1, "breach"), now, "because")
    assert not refused[0] and refused[1].startswith("refusing to clear")
    assert not mon.clear_decision(alarm, _status(120), now, "because")[0]
