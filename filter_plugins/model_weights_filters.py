# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence for WEIGHTS-INTEGRITY, built from the model_weights role's verify observations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

try:
    from ansible.module_utils.airgap_evidence import make_record
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record  # noqa: E402

ROLE = "model_weights"
CONTROL = "WEIGHTS-INTEGRITY"


def _owner_of(stat):
    return str(stat.get("pw_name", stat.get("uid"))), str(stat.get("gr_name", stat.get("gid")))


def _permission_problems(entries, owner, group, file_mode, dir_mode):
    """Entries (stat/find results) whose owner or mode differs from the declaration."""
    bad = []
    for entry in entries:
        if entry.get("islnk"):
            continue
        want = dir_mode if entry.get("isdir") else file_mode
        reasons = []
        if entry.get("wgrp") or entry.get("woth"):
            reasons.append("writable by group or others")
        if not entry.get("roth"):
            reasons.append("not readable by others")
        have_owner, have_group = _owner_of(entry)
        if (have_owner, have_group) != (str(owner), str(group)):
            reasons.append("owner %s:%s, declared %s:%s" % (have_owner, have_group, owner, group))
        if entry.get("mode") != want:
            reasons.append("mode %s, declared %s" % (entry.get("mode"), want))
        if reasons:
            bad.append({"path": entry.get("path"), "problems": reasons})
    return bad


def model_weights_evidence(models, verified, gate, root, files, by_name, perms):
    """One WEIGHTS-INTEGRITY record per declared model.

    models: model_weights_models; verified/gate/root/files: the registered
    loop results of the verify step (weights_sync mode=verify, the start-time
    check command, stat of the folder, find of its content), in model order;
    by_name: model_weights_by_name (its check_command is shown); perms: {owner, group, file_mode,
    dir_mode}. A model passes only if the manifest check passed, the
    start-time gate exits 0 and nobody but the owner can write its files.
    """
    if not models:
        return [make_record(CONTROL, ROLE, "not_applicable",
                            {"models": [], "detail": "model_weights_models is empty: no model is declared for this host"})]
    records = []
    for index, model in enumerate(models):
        sync = verified[index]
        gate_run = gate[index]
        root_stat = root[index].get("stat", {})
        entries = ([dict(root_stat, path=model["dest"])] if root_stat.get("exists") else []) \
            + list(files[index].get("files", []))
        bad = _permission_problems(entries, perms["owner"], perms["group"], perms["file_mode"], perms["dir_mode"])
        sync_record = sync.get("evidence")
        if isinstance(sync_record, dict):
            evidence = dict(sync_record.get("evidence", {}))
            sync_status = sync_record.get("status", "error")
        else:
            evidence = {"model": model["name"], "dest": model["dest"],
                        "error": sync.get("msg", "weights_sync returned no evidence")}
            sync_status = "error"
        gate_rc = gate_run.get("rc")
        evidence["start_gate"] = {
            "command": by_name.get(model["name"], {}).get("check_command"), "rc": gate_rc, "passed": gate_rc == 0,
            "output": (list(gate_run.get("stdout_lines", [])) + list(gate_run.get("stderr_lines", [])))[:20]}
        evidence["permissions"] = {
            "owner": perms["owner"], "group": perms["group"], "file_mode": perms["file_mode"],
            "dir_mode": perms["dir_mode"], "entries_checked": len([e for e in entries if not e.get("islnk")]),
            "deviations": bad[:50], "deviations_total": len(bad)}
        if sync_status == "error":
            status = "error"
        elif sync_status == "pass" and gate_rc == 0 and not bad:
            status = "pass"
        else:
            status = "fail"
        records.append(make_record(CONTROL, ROLE, status, evidence))
    return records


class FilterModule(object):
    """model_weights filters."""

    def filters(self):
        return {"model_weights_evidence": model_weights_evidence}
