# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for filter_plugins/firewall_verify.py (the firewall role's verify step).

Allowlist entries are normalised by the real firewall_normalize_egress /
firewall_normalize_ingress filters, and registered probe results are built by
egress_probe's own compare() from fake per-target outcomes, so the records
given to firewall_evidence have the shape the real modules return.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

import egress_probe
import firewall_verify
from ansible.module_utils.airgap_evidence import validate_record
from ansible.module_utils.airgap_probe import validate_targets
from firewall_filters import firewall_normalize_egress, firewall_normalize_ingress
from firewall_verify import (
    airgap_is_ip,
    airgap_managed_file_drift,
    firewall_allowlist_probes,
    firewall_evidence,
    firewall_ingress_probes,
)

# --------------------------------------------------------------------------
# airgap_is_ip
# --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["10.89.0.10", "203.0.113.10", "fd00:89::1", "::1", "2001:db8:113::a"])
def test_is_ip_true(value):
    assert airgap_is_ip(value) is True


@pytest.mark.parametrize("value", ["", "10.89.0.0/24", "fd00:89::/64", "mirror.lab.internal", "10.89.0",
                                   "10.89.0.256", None, " 10.89.0.10x", "localhost"])
def test_is_ip_false(value):
    assert airgap_is_ip(value) is False


# --------------------------------------------------------------------------
# firewall_allowlist_probes
# --------------------------------------------------------------------------

EGRESS = [
    {"name": "model-mirror", "dest": "10.89.0.10/32", "proto": "tcp", "ports": [80, 443]},
    {"name": "mirror-v6", "dest": "fd00:89::a", "proto": "tcp", "ports": [443]},
    {"name": "storage-net", "dest": "10.30.0.0/24", "proto": "tcp", "ports": [2049]},
    {"name": "ntp", "dest": "fd00:89::1", "proto": "udp", "ports": [123]},
    {"name": "ping-gw", "dest": "10.89.0.1", "proto": "icmp"},
]


def test_allowlist_probes_for_tcp_hosts_only():
    out = firewall_allowlist_probes(firewall_normalize_egress(EGRESS))
    assert out["unprobed"] == ["storage-net", "ntp", "ping-gw"]
    assert out["probes"] == [
        {"name": "model-mirror tcp/80 allowed", "dest": "10.89.0.10", "proto": "tcp", "port": 80,
         "expect": "reachable"},
        {"name": "model-mirror tcp/443 allowed", "dest": "10.89.0.10", "proto": "tcp", "port": 443,
         "expect": "reachable"},
        {"name": "model-mirror tcp/9 not allowed", "dest": "10.89.0.10", "proto": "tcp", "port": 9,
         "expect": "blocked"},
        {"name": "mirror-v6 tcp/443 allowed", "dest": "fd00:89::a", "proto": "tcp", "port": 443,
         "expect": "reachable"},
        {"name": "mirror-v6 tcp/9 not allowed", "dest": "fd00:89::a", "proto": "tcp", "port": 9,
         "expect": "blocked"},
    ]


def test_allowlist_probes_are_valid_egress_probe_targets():
    probes = firewall_allowlist_probes(firewall_normalize_egress(EGRESS))["probes"]
    normalised = validate_targets(probes)
    assert [t["expect"] for t in normalised] == ["reachable", "reachable", "blocked", "reachable", "blocked"]


@pytest.mark.parametrize("ports,closed", [([9], 8000), ([9, 8000], 65001), ([8000], 9), ([9, 65001], 8000)])
def test_closed_port_is_never_an_allowed_one(ports, closed):
    norm = firewall_normalize_egress([{"name": "x", "dest": "10.89.0.10", "proto": "tcp", "ports": ports}])
    probes = firewall_allowlist_probes(norm)["probes"]
    blocked = [p for p in probes if p["expect"] == "blocked"]
    assert [p["port"] for p in blocked] == [closed]
    assert sorted(p["port"] for p in probes if p["expect"] == "reachable") == sorted(ports)


def test_closed_port_when_all_candidates_are_allowlisted():
    norm = firewall_normalize_egress([{"name": "x", "dest": "10.89.0.10", "proto": "tcp",
                                       "ports": [9, 8000, 65001]}])
    probes = firewall_allowlist_probes(norm)["probes"]
    blocked = [p for p in probes if p["expect"] == "blocked"]
    assert len(blocked) == 1 and blocked[0]["port"] not in (9, 8000, 65001)


def test_allowlist_probes_empty():
    assert firewall_allowlist_probes(firewall_normalize_egress([])) == {"probes": [], "unprobed": []}


# --------------------------------------------------------------------------
# firewall_ingress_probes
# --------------------------------------------------------------------------

INGRESS = [
    {"name": "ssh-from-controller", "src": "10.89.0.0/24", "proto": "tcp", "ports": [22]},
    {"name": "metrics-udp", "src": "10.89.0.0/24", "proto": "udp", "ports": [9090]},
    {"name": "vllm-v6", "src": "fd00:89::/64", "proto": "tcp", "ports": [8000]},
]


def _ports(probes):
    return [p["port"] for p in probes]


def test_ingress_probes_without_address_are_empty():
    assert firewall_ingress_probes("", firewall_normalize_ingress(INGRESS), "10.89.0.1") == []
    assert firewall_ingress_probes(None, firewall_normalize_ingress(INGRESS), "10.89.0.1") == []


def test_ingress_probes_all_ports_when_nothing_admits_the_controller():
    probes = firewall_ingress_probes("10.89.0.21", firewall_normalize_ingress([]), "10.89.0.1")
    assert probes == [
        {"name": "10.89.0.21 tcp/%d from controller" % p, "dest": "10.89.0.21", "proto": "tcp",
         "port": p, "expect": "blocked"} for p in (22, 8000, 9090)]
    validate_targets(probes)


def test_ingress_probes_skip_ports_admitted_to_the_controller():
    probes = firewall_ingress_probes("10.89.0.21", firewall_normalize_ingress(INGRESS), "10.89.0.1")
    # 22 is admitted by TCP from the controller's subnet; the UDP entry admits no TCP port,
    # and the IPv6 entry does not contain an IPv4 controller.
    assert _ports(probes) == [8000, 9090]
    assert all(p["expect"] == "blocked" for p in probes)


def test_ingress_probes_ipv6_controller():
    probes = firewall_ingress_probes("fd00:89::15", firewall_normalize_ingress(INGRESS), "fd00:89::1")
    assert _ports(probes) == [22, 9090]
    assert all(p["dest"] == "fd00:89::15" for p in probes)


def test_ingress_probes_controller_outside_allowed_sources():
    probes = firewall_ingress_probes("10.89.0.21", firewall_normalize_ingress(INGRESS), "10.99.0.1")
    assert _ports(probes) == [22, 8000, 9090]


@pytest.mark.parametrize("controller", ["", "controller.lab.internal", None])
def test_ingress_probes_unknown_controller_skips_nothing(controller):
    probes = firewall_ingress_probes("10.89.0.21", firewall_normalize_ingress(INGRESS), controller)
    assert _ports(probes) == [22, 8000, 9090]


# --------------------------------------------------------------------------
# firewall_evidence
# --------------------------------------------------------------------------

def _registered_probe(targets, outcomes, expect=None):
    """A fake egress_probe task result: real compare() over invented per-target outcomes.

    outcomes: one (status, reason) per target, as the module's probes would report.
    """
    normalised = validate_targets(targets)
    fake_results = [{"name": t["name"], "dest": t["dest"], "proto": t["proto"], "port": t["port"],
                     "family": t["family"], "status": status, "reason": reason,
                     "detail": "fake outcome for the test", "elapsed_ms": 0.1}
                    for t, (status, reason) in zip(normalised, outcomes)]
    results, summary, unexpected = egress_probe.compare(fake_results, normalised, expect)
    return {"changed": False, "failed": False, "results": results, "summary": summary,
            "unexpected": unexpected, "as_expected": not unexpected}


FORBIDDEN = [
    {"name": "canary tcp/443", "dest": "203.0.113.10", "proto": "tcp", "port": 443},
    {"name": "canary dns", "dest": "2001:db8:113::a", "proto": "dns", "port": 53},
    {"name": "canary icmp", "dest": "203.0.113.10", "proto": "icmp"},
]
BLOCKED = ("blocked", "permission")


def _forbidden(outcomes=None):
    return _registered_probe(FORBIDDEN, outcomes or [BLOCKED] * len(FORBIDDEN), expect="blocked")


def _allowed(outcomes=None):
    probes = firewall_allowlist_probes(firewall_normalize_egress(EGRESS[:1]))["probes"]
    default = [("reachable", "connected"), ("reachable", "connected"), ("blocked", "permission")]
    return _registered_probe(probes, outcomes or default)


def _ingress(outcomes=None):
    probes = firewall_ingress_probes("10.89.0.21", firewall_normalize_ingress(INGRESS), "10.89.0.1")
    return _registered_probe(probes, outcomes or [("blocked", "timeout")] * len(probes))


def _drift(drift=False, table_present=True):
    """A fake nft_ruleset action=check result."""
    diff = "--- live\n+++ desired\n@@ -1 +1 @@\n-old\n+new\n" if drift else ""
    return {"changed": False, "drift": drift, "persist_drift": False, "unified_diff": diff,
            "diff": [], "table_present": table_present, "live_sha256": None, "desired_sha256": None,
            "compare_method": "scratch_netns", "rollback_scheduled": False, "rollback_pending": False,
            "rollback_unit": "airgap-firewall-rollback"}


def _observed(**overrides):
    observed = {"forbidden": _forbidden(), "drift": _drift(), "allowed": _allowed(), "ingress": _ingress(),
                "unprobed": ["storage-net"], "table": "inet airgap_firewall"}
    observed.update(overrides)
    return observed


def _by_id(records):
    assert [r["id"] for r in records] == ["NET-EGRESS-DENY", "NET-EGRESS-ALLOWLIST", "NET-INGRESS-RESTRICT"]
    for record in records:
        validate_record(record)
        assert record["role"] == "firewall"
        assert "checked_at" in record["evidence"]
    return {r["id"]: r for r in records}


def _statuses(records):
    return {k: v["status"] for k, v in _by_id(records).items()}


def test_evidence_all_pass():
    recs = _by_id(firewall_evidence(_observed()))
    assert {k: v["status"] for k, v in recs.items()} == {
        "NET-EGRESS-DENY": "pass", "NET-EGRESS-ALLOWLIST": "pass", "NET-INGRESS-RESTRICT": "pass"}
    deny = recs["NET-EGRESS-DENY"]["evidence"]
    assert deny["result"] == "every forbidden destination was blocked"
    assert deny["probes"]["summary"] == {"reachable": 0, "blocked": 3, "error": 0}
    assert deny["probes"]["unexpected"] == []
    assert [p["name"] for p in deny["probes"]["probes"]] == [t["name"] for t in FORBIDDEN]
    assert deny["table"] == {"table": "inet airgap_firewall", "table_present": True, "drift": False,
                             "compare_method": "scratch_netns"}
    allow = recs["NET-EGRESS-ALLOWLIST"]["evidence"]
    assert allow["unprobed_entries"] == ["storage-net"]
    assert len(allow["probes"]["probes"]) == 3
    ingress = recs["NET-INGRESS-RESTRICT"]["evidence"]
    assert [p["port"] for p in ingress["probes"]["probes"]] == [8000, 9090]


def test_evidence_probe_entries_keep_only_the_auditor_fields():
    recs = _by_id(firewall_evidence(_observed(forbidden=_forbidden([("reachable", "connected"), BLOCKED,
                                                                    BLOCKED]))))
    probes = recs["NET-EGRESS-DENY"]["evidence"]["probes"]
    assert set(probes["probes"][0]) == {"name", "dest", "proto", "port", "status", "reason"}
    assert set(probes["unexpected"][0]) == {"name", "dest", "proto", "port", "status", "reason", "expect"}


def test_evidence_drift_fails_allowlist_and_ingress():
    recs = _by_id(firewall_evidence(_observed(drift=_drift(drift=True))))
    assert recs["NET-EGRESS-ALLOWLIST"]["status"] == "fail"
    assert "drift" in recs["NET-EGRESS-ALLOWLIST"]["evidence"]["result"]
    assert recs["NET-INGRESS-RESTRICT"]["status"] == "fail"
    # Egress denial is proven by packets: every forbidden probe was blocked.
    assert recs["NET-EGRESS-DENY"]["status"] == "pass"
    for record in recs.values():
        assert record["evidence"]["table"]["drift"] is True
        assert record["evidence"]["table"]["diff"].startswith("--- live")


def test_evidence_without_drift_has_no_diff():
    recs = _by_id(firewall_evidence(_observed()))
    assert all("diff" not in r["evidence"]["table"] for r in recs.values())


def test_evidence_missing_table_fails_all_three():
    statuses = _statuses(firewall_evidence(_observed(drift=_drift(table_present=False))))
    assert statuses == {"NET-EGRESS-DENY": "fail", "NET-EGRESS-ALLOWLIST": "fail", "NET-INGRESS-RESTRICT": "fail"}


def test_evidence_reachable_forbidden_target_fails_deny():
    observed = _observed(forbidden=_forbidden([BLOCKED, ("reachable", "replied"), BLOCKED]))
    recs = _by_id(firewall_evidence(observed))
    deny = recs["NET-EGRESS-DENY"]
    assert deny["status"] == "fail"
    assert deny["evidence"]["result"].startswith("1 forbidden destination(s)")
    assert [u["name"] for u in deny["evidence"]["probes"]["unexpected"]] == ["canary dns"]
    assert deny["evidence"]["probes"]["unexpected"][0]["expect"] == "blocked"
    assert recs["NET-EGRESS-ALLOWLIST"]["status"] == "pass"


def test_evidence_forbidden_probe_error_fails_deny():
    observed = _observed(forbidden=_forbidden([BLOCKED, BLOCKED, ("error", "invalid")]))
    assert _statuses(firewall_evidence(observed))["NET-EGRESS-DENY"] == "fail"


@pytest.mark.parametrize("forbidden", [
    {"skipped": True, "changed": False, "skip_reason": "Conditional result was False"}, None, {}])
def test_evidence_nothing_probed_for_deny_is_an_error(forbidden):
    recs = _by_id(firewall_evidence(_observed(forbidden=forbidden)))
    assert recs["NET-EGRESS-DENY"]["status"] == "error"
    assert "no forbidden destination was probed" in recs["NET-EGRESS-DENY"]["evidence"]["result"]
    assert recs["NET-EGRESS-DENY"]["evidence"]["probes"] is None


def test_evidence_deny_error_beats_missing_table():
    observed = _observed(forbidden={"skipped": True}, drift=_drift(table_present=False))
    assert _statuses(firewall_evidence(observed))["NET-EGRESS-DENY"] == "error"


def test_evidence_allowlist_probe_not_as_declared_fails():
    # The allowed port is blocked and the unlisted one answers.
    observed = _observed(allowed=_allowed([("reachable", "connected"), ("blocked", "timeout"),
                                           ("reachable", "refused")]))
    recs = _by_id(firewall_evidence(observed))
    allow = recs["NET-EGRESS-ALLOWLIST"]
    assert allow["status"] == "fail"
    assert allow["evidence"]["result"] == "2 allowlist probe(s) not as declared"
    assert [u["port"] for u in allow["evidence"]["probes"]["unexpected"]] == [443, 9]


def test_evidence_allowlist_problems_are_all_listed():
    observed = _observed(drift=_drift(drift=True, table_present=False),
                         allowed=_allowed([("blocked", "timeout")] * 3))
    result = _by_id(firewall_evidence(observed))["NET-EGRESS-ALLOWLIST"]["evidence"]["result"]
    assert result == ("the firewall table is not loaded; the live table differs from the declared one (drift); "
                      "2 allowlist probe(s) not as declared")


def test_evidence_allowlist_without_probeable_entries_rests_on_the_drift_check():
    observed = _observed(allowed={"skipped": True}, unprobed=["ntp", "ping-gw"])
    allow = _by_id(firewall_evidence(observed))["NET-EGRESS-ALLOWLIST"]
    assert allow["status"] == "pass"
    assert allow["evidence"]["probes"] is None
    assert allow["evidence"]["unprobed_entries"] == ["ntp", "ping-gw"]
    observed["drift"] = _drift(drift=True)
    assert _by_id(firewall_evidence(observed))["NET-EGRESS-ALLOWLIST"]["status"] == "fail"


@pytest.mark.parametrize("drift", [{"skipped": True}, None])
def test_evidence_missing_drift_check_never_passes(drift):
    statuses = _statuses(firewall_evidence(_observed(drift=drift)))
    assert "pass" not in statuses.values()


def test_evidence_ingress_port_answering_fails():
    observed = _observed(ingress=_ingress([("blocked", "timeout"), ("reachable", "refused")]))
    ingress = _by_id(firewall_evidence(observed))["NET-INGRESS-RESTRICT"]
    assert ingress["status"] == "fail"
    assert ingress["evidence"]["result"].startswith("1 port(s) answered the controller")
    assert [u["port"] for u in ingress["evidence"]["probes"]["unexpected"]] == [9090]


@pytest.mark.parametrize("ingress", [{"skipped": True, "changed": False}, None])
def test_evidence_no_ingress_address_is_an_error(ingress):
    recs = _by_id(firewall_evidence(_observed(ingress=ingress)))
    assert recs["NET-INGRESS-RESTRICT"]["status"] == "error"
    assert "firewall_verify_ingress_address" in recs["NET-INGRESS-RESTRICT"]["evidence"]["result"]
    assert recs["NET-EGRESS-DENY"]["status"] == "pass"


def test_evidence_unprobed_defaults_to_empty_list():
    observed = _observed()
    del observed["unprobed"]
    assert _by_id(firewall_evidence(observed))["NET-EGRESS-ALLOWLIST"]["evidence"]["unprobed_entries"] == []


def test_filter_module_exposes_every_filter():
    assert firewall_verify.FilterModule().filters() == {
        "airgap_is_ip": airgap_is_ip,
        "firewall_allowlist_probes": firewall_allowlist_probes,
        "firewall_ingress_probes": firewall_ingress_probes,
        "firewall_evidence": firewall_evidence,
        "airgap_managed_file_drift": airgap_managed_file_drift,
    }



# --------------------------------------------------------------------------
# airgap_managed_file_drift (hand-edited managed files)
# --------------------------------------------------------------------------
# The shapes below are what ansible-core 2.19's template module returns with
# check_mode: true, diff: true and changed_when: false (recorded from real
# runs); test_managed_file_drift_with_the_real_template_module below produces
# them with the real module.

_UNIT = "/etc/systemd/system/airgap-firewall.service"
_ITEM = {"control": "NET-EGRESS-DENY", "src": "airgap-firewall.service.j2", "dest": _UNIT, "mode": "0644"}
_RENDERED = "[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.d/airgap_firewall.nft\n"


def _same():
    return {"changed": False, "failed": False, "item": dict(_ITEM), "dest": _UNIT, "path": _UNIT,
            "diff": {"before": {"path": _UNIT}, "after": {"path": _UNIT}}}


def _edited(before):
    return {"changed": False, "failed": False, "item": dict(_ITEM),
            "diff": [{"before": before, "after": _RENDERED, "before_header": _UNIT,
                      "after_header": "/root/.ansible/tmp/x/airgap-firewall.service.j2"}]}


def _registered(*results):
    return {"changed": False, "msg": "All items completed", "results": list(results)}


def test_managed_file_matching_passes():
    records = airgap_managed_file_drift(_registered(_same()), "firewall")
    assert len(records) == 1
    rec = validate_record(records[0])
    assert (rec["id"], rec["role"], rec["status"]) == ("NET-EGRESS-DENY", "firewall", "pass")
    assert rec["evidence"]["files"] == [{"path": _UNIT, "state": "matches"}]
    assert "every managed file matches" in rec["evidence"]["result"]


def test_managed_file_hand_edited_fails_with_a_unified_diff():
    edited = _RENDERED.replace("nft -f", "true #")
    rec = airgap_managed_file_drift(_registered(_edited(edited)), "firewall")[0]
    assert rec["status"] == "fail"
    entry = rec["evidence"]["files"][0]
    assert entry["state"] == "differs" and entry["path"] == _UNIT
    diff = entry["diff"].splitlines()
    assert diff[0] == "--- %s (on the host)" % _UNIT
    assert diff[1] == "+++ %s (as the role renders it)" % _UNIT
    assert "-ExecStart=/usr/sbin/true # /etc/nftables.d/airgap_firewall.nft" in diff
    assert "+ExecStart=/usr/sbin/nft -f /etc/nftables.d/airgap_firewall.nft" in diff
    assert _UNIT in rec["evidence"]["result"]
    # The controller's temporary file name is noise for an auditor.
    assert "ansible/tmp" not in entry["diff"]


def test_managed_file_removed_fails_as_missing():
    missing = {"changed": False, "failed": False, "item": dict(_ITEM),
               "diff": [{"before": "", "after": _RENDERED, "after_header": "/root/.ansible/tmp/x/t.j2"}]}
    rec = airgap_managed_file_drift(_registered(missing), "firewall")[0]
    assert rec["status"] == "fail"
    assert rec["evidence"]["files"][0]["state"] == "missing"


def test_managed_file_emptied_is_a_difference_not_a_missing_file():
    rec = airgap_managed_file_drift(_registered(_edited("")), "firewall")[0]
    assert rec["status"] == "fail"
    assert rec["evidence"]["files"][0]["state"] == "differs"
    assert "+[Service]" in rec["evidence"]["files"][0]["diff"]


def test_managed_file_other_mode_fails_with_both_values():
    result = _same()
    result["diff"] = {"before": {"path": _UNIT, "mode": "0666"}, "after": {"path": _UNIT, "mode": "0644"}}
    rec = airgap_managed_file_drift(_registered(result), "firewall")[0]
    assert rec["status"] == "fail"
    assert rec["evidence"]["files"][0]["attributes"] == {"mode": {"on_host": "0666", "declared": "0644"}}


def test_managed_file_binary_content_fails_without_showing_it():
    result = {"changed": False, "item": dict(_ITEM), "diff": [{"dst_binary": 1, "before_header": _UNIT}]}
    rec = airgap_managed_file_drift(_registered(result), "firewall")[0]
    assert rec["status"] == "fail"
    assert "binary" in rec["evidence"]["files"][0]["diff"]


@pytest.mark.parametrize("result", [
    {"changed": False, "failed": False, "item": dict(_ITEM), "msg": "Failed to get information on remote file"},
    {"changed": False, "skipped": True, "item": dict(_ITEM), "skip_reason": "Conditional result was False"},
])
def test_managed_file_not_compared_is_an_error_never_a_pass(result):
    rec = airgap_managed_file_drift(_registered(result), "firewall")[0]
    assert rec["status"] == "error"
    assert rec["evidence"]["files"][0]["state"] == "not_checked"
    assert rec["evidence"]["files"][0]["reason"]


def test_managed_file_drift_one_record_per_control_worst_status_wins():
    other = dict(_ITEM, control="NET-INGRESS-RESTRICT", dest="/etc/other.conf")
    edited = _edited("x\n")
    edited["item"] = other
    broken = {"changed": False, "item": dict(_ITEM, dest="/etc/third"), "msg": "boom"}
    records = airgap_managed_file_drift(_registered(_same(), edited, broken), "firewall")
    assert [(r["id"], r["status"]) for r in records] == [("NET-EGRESS-DENY", "error"), ("NET-INGRESS-RESTRICT", "fail")]
    assert [f["state"] for f in records[0]["evidence"]["files"]] == ["matches", "not_checked"]


def test_managed_file_long_diff_is_cut():
    rec = airgap_managed_file_drift(_registered(_edited("junk line\n" * 5000)), "firewall")[0]
    assert len(rec["evidence"]["files"][0]["diff"]) < 21000
    assert rec["evidence"]["files"][0]["diff"].endswith("(diff cut at 20000 characters)\n")


def test_managed_file_item_without_control_is_refused():
    result = _same()
    del result["item"]["control"]
    with pytest.raises(ValueError, match="control"):
        airgap_managed_file_drift(_registered(result), "firewall")


def test_managed_file_drift_with_the_real_template_module(tmp_path):
    """The real template module, in check mode on local files, gives the shapes the filter expects."""
    playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(playbook_bin):
        pytest.skip("ansible-playbook is not next to this Python")
    (tmp_path / "unit.j2").write_text("[Service]\nExecStart=/usr/sbin/nft -f {{ path }}\n")
    rendered = "[Service]\nExecStart=/usr/sbin/nft -f /etc/x.nft\n"
    for name, content, mode in (("same", rendered, 0o644), ("edited", rendered.replace("nft -f", "true"), 0o644),
                                ("mode", rendered, 0o666)):
        (tmp_path / name).write_text(content)
        os.chmod(str(tmp_path / name), mode)
    out = tmp_path / "registered.json"
    (tmp_path / "play.yml").write_text("""
- hosts: localhost
  connection: local
  gather_facts: false
  vars: {path: /etc/x.nft}
  tasks:
    - ansible.builtin.template: {src: unit.j2, dest: "%(d)s/{{ item.dest }}", mode: "0644"}
      loop: [{control: NET-EGRESS-DENY, dest: same}, {control: NET-EGRESS-DENY, dest: edited},
             {control: NET-EGRESS-DENY, dest: mode}, {control: NET-EGRESS-DENY, dest: missing}]
      check_mode: true
      diff: true
      changed_when: false
      failed_when: false
      register: drift
    - ansible.builtin.copy: {content: "{{ drift | to_json }}", dest: "%(o)s", mode: "0600"}
      changed_when: false   # only the template task is judged by the recap
""" % {"d": tmp_path, "o": out})
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run([playbook_bin, "-i", "localhost,", "-e", "ansible_python_interpreter=%s" % sys.executable,
                           str(tmp_path / "play.yml")], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout
    assert "changed=0" in proc.stdout  # the check-mode render counts as no change in the recap
    files = airgap_managed_file_drift(json.loads(out.read_text()), "firewall")[0]["evidence"]["files"]
    states = {os.path.basename(f["path"]): f for f in files}
    assert {k: v["state"] for k, v in states.items()} == {
        "same": "matches", "edited": "differs", "mode": "differs", "missing": "missing"}
    assert "-ExecStart=/usr/sbin/true /etc/x.nft" in states["edited"]["diff"].splitlines()
    assert states["mode"]["attributes"]["mode"] == {"on_host": "0666", "declared": "0644"}
    # The audit is read-only: the hand-edited copy is still as it was.
    assert (tmp_path / "edited").read_text() == rendered.replace("nft -f", "true")
    assert not (tmp_path / "missing").exists()
