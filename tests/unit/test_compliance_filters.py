# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for filter_plugins/compliance_filters.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

import compliance_filters
from ansible.module_utils.airgap_evidence import make_record, validate_record
from compliance_filters import compliance_collect, evidence_record


def _rec(cid, status="pass"):
    return make_record(cid, "firewall", status, {"result": "x"}, checked_at="2025-01-01T00:00:00Z")


HOSTVARS = {
    "gpu-node-1": {"group_names": ["gpu_nodes", "lab"],
                   "compliance_evidence": [_rec("NET-EGRESS-DENY"), _rec("NET-VLAN", "fail")]},
    "gpu-node-2": {"group_names": ["gpu_nodes"]},  # unreachable: no evidence
    "gpu-node-3": {"group_names": ["gpu_nodes"], "compliance_evidence": []},
    "mirror": {"compliance_evidence": [_rec("REPO-MIRROR-ONLY")]},
}


def test_collect_splits_hosts_with_and_without_evidence():
    out = compliance_collect(HOSTVARS, ["gpu-node-1", "gpu-node-2", "gpu-node-3"])
    assert out["missing"] == ["gpu-node-2"]
    assert sorted(out["hosts"]) == ["gpu-node-1", "gpu-node-3"]
    assert [r["id"] for r in out["hosts"]["gpu-node-1"]] == ["NET-EGRESS-DENY", "NET-VLAN"]
    # An empty list was collected (the host ran, no role applied): not missing.
    assert out["hosts"]["gpu-node-3"] == []
    assert out["groups"] == {"gpu-node-1": ["gpu_nodes", "lab"], "gpu-node-2": ["gpu_nodes"],
                             "gpu-node-3": ["gpu_nodes"]}


def test_collect_only_the_named_hosts():
    out = compliance_collect(HOSTVARS, ["mirror"])
    assert out == {"hosts": {"mirror": HOSTVARS["mirror"]["compliance_evidence"]}, "missing": [],
                   "groups": {"mirror": []}}


def test_collect_no_hosts():
    assert compliance_collect(HOSTVARS, []) == {"hosts": {}, "missing": [], "groups": {}}


def test_collect_returns_copies_of_the_lists():
    out = compliance_collect(HOSTVARS, ["gpu-node-1"])
    out["hosts"]["gpu-node-1"].append("extra")
    out["groups"]["gpu-node-1"].append("extra")
    assert len(HOSTVARS["gpu-node-1"]["compliance_evidence"]) == 2
    assert HOSTVARS["gpu-node-1"]["group_names"] == ["gpu_nodes", "lab"]


def test_collect_every_host_missing():
    hv = {"a": {}, "b": {"group_names": ["gpu_nodes"]}}
    out = compliance_collect(hv, ["a", "b"])
    assert out["missing"] == ["a", "b"]
    assert out["hosts"] == {}


@pytest.mark.parametrize("status", ["pass", "fail", "waived", "not_applicable", "error"])
def test_evidence_record_builds_a_valid_record(status):
    rec = evidence_record({"seen": [1, 2]}, "NET-EGRESS-DENY", "firewall", status)
    validate_record(rec)
    assert rec["id"] == "NET-EGRESS-DENY"
    assert rec["role"] == "firewall"
    assert rec["status"] == status
    assert rec["evidence"]["seen"] == [1, 2]
    assert "checked_at" in rec["evidence"]


def test_evidence_record_wraps_non_dict_evidence():
    rec = evidence_record("nvidia-smi said OK", "GPU-HEALTH", "nvidia_driver", "pass")
    assert rec["evidence"]["detail"] == "nvidia-smi said OK"


@pytest.mark.parametrize("status", ["ok", "PASS", "", None, "passed"])
def test_evidence_record_bad_status_raises_filter_error(status):
    with pytest.raises(AnsibleFilterError) as info:
        evidence_record({}, "NET-EGRESS-DENY", "firewall", status)
    assert "status %r" % (status,) in str(info.value)
    assert "NET-EGRESS-DENY" in str(info.value)


@pytest.mark.parametrize("cid", ["net-egress-deny", "NETEGRESS", "", "NET-"])
def test_evidence_record_bad_control_id_raises_filter_error(cid):
    with pytest.raises(AnsibleFilterError) as info:
        evidence_record({}, cid, "firewall", "pass")
    assert "control id" in str(info.value)


def test_filter_module_exposes_both_filters():
    assert compliance_filters.FilterModule().filters() == {
        "compliance_collect": compliance_collect, "evidence_record": evidence_record}
