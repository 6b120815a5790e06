# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for library/compliance_report.py (the Ansible module around airgap_report)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.airgap_evidence import make_record
from ansible.module_utils import airgap_report as rep

import compliance_report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTROLS = os.path.join(ROOT, "controls")


def run_module(args, capsys):
    """Run main() as Ansible would and return its JSON result."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            compliance_report.main()
    return json.loads(capsys.readouterr().out)


def evidence(fail=()):
    catalogue = rep.load_catalogue(CONTROLS)
    return [make_record(cid, e["role"], "fail" if cid in fail else "pass", {"probe": "test double"})
            for cid, e in catalogue.items()]


def base_args(tmp_path, **over):
    args = {
        "hosts": {"gpu-node-1": evidence(), "gpu-node-2": evidence(fail=["NET-VLAN"])},
        "catalogue_dir": CONTROLS,
        "output_root": str(tmp_path / "reports"),
        "timestamp": "20261122T224500Z",
        "today": "2026-11-22",
    }
    args.update(over)
    return args


def test_writes_report_and_returns_paths(tmp_path, capsys):
    result = run_module(base_args(tmp_path), capsys)
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert result["report_dir"] == str(tmp_path / "reports" / "20261122T224500Z")
    for key in ("index", "fleet", "junit", "sums"):
        assert os.path.isfile(result[key]), key
    assert result["signature"] is None
    assert os.readlink(result["latest"]) == "20261122T224500Z"
    assert result["verdict"] == "fail"
    assert result["hosts_failing"] == ["gpu-node-2"]
    assert result["counts"]["fail"] == 1
    assert sorted(result["host_files"]) == ["gpu-node-1", "gpu-node-2"]


def test_check_mode_still_writes_the_report(tmp_path, capsys):
    result = run_module(base_args(tmp_path, _ansible_check_mode=True), capsys)
    assert result["changed"] is True
    assert os.path.isfile(result["index"])


def test_waiver_through_module(tmp_path, capsys):
    waivers = [{"control": "NET-VLAN", "hosts": ["gpu-node-2"], "justification": "switch replacement",
                "approver": "Head of IT", "expires": "2026-12-31"}]
    result = run_module(base_args(tmp_path, waivers=waivers), capsys)
    assert result["verdict"] == "pass"
    assert result["counts"]["waived"] == 1


@pytest.mark.parametrize("bad,message", [
    ({"control": "NET-VLAN", "approver": "a", "expires": "2026-12-31"}, "compliance_waivers[0].justification: missing"),
    ({"control": "NET-VLAN", "justification": "j", "approver": "a", "expires": "31.12.2026"},
     "compliance_waivers[0].expires"),
    ({"control": "NET-NOPE", "justification": "j", "approver": "a", "expires": "2026-12-31"},
     "compliance_waivers[0].control: 'NET-NOPE' is not a control"),
])
def test_bad_waiver_fails_before_writing(tmp_path, capsys, bad, message):
    result = run_module(base_args(tmp_path, waivers=[bad]), capsys)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not (tmp_path / "reports").exists()


def test_bad_inputs_fail_with_named_parameter(tmp_path, capsys):
    result = run_module(base_args(tmp_path, hosts={"gpu-node-1": "not a list"}), capsys)
    assert result["failed"] is True and "hosts[gpu-node-1]" in result["msg"]
    result = run_module(base_args(tmp_path, timestamp="yesterday"), capsys)
    assert result["failed"] is True and "timestamp" in result["msg"]
    result = run_module(base_args(tmp_path, catalogue_dir=str(tmp_path / "none")), capsys)
    assert result["failed"] is True and "controls catalogue directory" in result["msg"]
    result = run_module(base_args(tmp_path, host_groups={"gpu-node-1": "gpu_nodes"}), capsys)
    assert result["failed"] is True and "host_groups[gpu-node-1]" in result["msg"]


def test_unreachable_and_host_groups(tmp_path, capsys):
    result = run_module(base_args(tmp_path, unreachable=["gpu-node-3"],
                                  host_groups={"mirror": ["mirrors"]},
                                  hosts={"gpu-node-1": evidence(), "mirror": []}), capsys)
    with open(result["fleet"], encoding="utf-8") as handle:
        fleet = json.load(handle)
    assert fleet["hosts"]["gpu-node-3"]["reachable"] is False
    assert fleet["hosts"]["gpu-node-3"]["verdict"] == "fail"
    # No catalogue control applies to the mirrors group: nothing to check, nothing failing.
    assert fleet["hosts"]["mirror"]["verdict"] == "pass"
    assert sum(fleet["hosts"]["mirror"]["counts"].values()) == 0


def test_ssh_signing_through_module(tmp_path, capsys):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed")
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    result = run_module(base_args(tmp_path, signing={"method": "ssh", "key": str(key)}), capsys)
    assert result["signature"].endswith("SHA256SUMS.sig")
    assert os.path.isfile(result["signature"])


def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(compliance_report.DOCUMENTATION)
    spec = compliance_report.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in spec.items():
        assert doc["options"][name]["type"] == option["type"], name
        assert bool(doc["options"][name].get("required")) == bool(option.get("required")), name
    assert set(doc["options"]["signing"]["suboptions"]) == set(spec["signing"]["options"])
    yaml.safe_load(compliance_report.EXAMPLES)
    returned = yaml.safe_load(compliance_report.RETURN)
    assert {"report_dir", "index", "fleet", "junit", "sums", "verdict", "counts"} <= set(returned)


def test_ansible_doc_renders():
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    if not os.path.exists(ansible_doc):
        pytest.skip("ansible-doc not installed next to this Python")
    proc = subprocess.run([ansible_doc, "-M", "library", "compliance_report"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "compliance_report" in proc.stdout and "waivers" in proc.stdout
