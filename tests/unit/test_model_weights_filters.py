"""Unit tests for filter_plugins/model_weights_filters.py (WEIGHTS-INTEGRITY evidence)."""
import pytest

from ansible.module_utils.airgap_evidence import validate_record
from model_weights_filters import model_weights_evidence

MODEL = {"name": "demo", "dest": "/srv/models/demo"}
PERMS = {"owner": "root", "group": "root", "file_mode": "0644", "dir_mode": "0755"}
BY_NAME = {"demo": {"check_command": "/usr/bin/python3 /usr/local/lib/airgap/airgap_manifest.py check --dest /srv/models/demo"}}


def _stat(path, isdir=False, mode=None, **over):
    st = {"exists": True, "path": path, "isdir": isdir, "islnk": False, "wgrp": False, "woth": False,
          "roth": True, "pw_name": "root", "gr_name": "root", "mode": mode or ("0755" if isdir else "0644")}
    st.update(over)
    return st


def _observed(sync_status="pass", gate_rc=0, file_over=None):
    verified = [{"evidence": {"id": "WEIGHTS-INTEGRITY", "status": sync_status,
                              "evidence": {"model": "demo", "verified_files": 3, "method": "cache"}}}]
    gate = [{"rc": gate_rc, "stdout_lines": ["ok"] if gate_rc == 0 else [], "stderr_lines": [] if gate_rc == 0 else ["mismatch"]}]
    root = [{"stat": _stat("/srv/models/demo", isdir=True)}]
    files = [{"files": [_stat("/srv/models/demo/a.safetensors", **(file_over or {}))]}]
    return verified, gate, root, files


def _one(*observed):
    records = model_weights_evidence([MODEL], *observed, BY_NAME, PERMS)
    assert len(records) == 1
    validate_record(records[0])
    return records[0]


def test_everything_in_order_passes():
    rec = _one(*_observed())
    assert rec["status"] == "pass"
    assert rec["evidence"]["start_gate"]["passed"] is True
    assert rec["evidence"]["permissions"]["entries_checked"] == 2
    assert rec["evidence"]["start_gate"]["command"].endswith("--dest /srv/models/demo")


def test_failed_start_gate_fails_even_when_the_hashes_pass():
    rec = _one(*_observed(gate_rc=1))
    assert rec["status"] == "fail"
    assert rec["evidence"]["start_gate"]["output"] == ["mismatch"]


@pytest.mark.parametrize("over,problem", [
    ({"woth": True}, "writable by group or others"),
    ({"roth": False}, "not readable by others"),
    ({"pw_name": "nobody"}, "owner nobody:root"),
    ({"mode": "0600"}, "mode 0600"),
])
def test_permission_deviation_fails(over, problem):
    rec = _one(*_observed(file_over=over))
    assert rec["status"] == "fail"
    devs = rec["evidence"]["permissions"]["deviations"]
    assert devs and any(problem in p for p in devs[0]["problems"])


def test_symlinks_are_not_judged_by_mode():
    rec = _one(*_observed(file_over={"islnk": True, "mode": "0777", "woth": True}))
    assert rec["status"] == "pass"


def test_sync_error_or_missing_evidence_is_error():
    assert _one(*_observed(sync_status="error"))["status"] == "error"
    verified, gate, root, files = _observed()
    rec = _one([{"msg": "mirror unreachable"}], gate, root, files)
    assert rec["status"] == "error" and rec["evidence"]["error"] == "mirror unreachable"


def test_manifest_mismatch_fails():
    assert _one(*_observed(sync_status="fail"))["status"] == "fail"


def test_no_models_is_not_applicable():
    records = model_weights_evidence([], [], [], [], [], {}, PERMS)
    assert [r["status"] for r in records] == ["not_applicable"]
