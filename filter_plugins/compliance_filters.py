# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that move evidence records between hosts and the report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.airgap_evidence import EvidenceError, make_record
except ImportError:
    # Controller-side plugins do not see the configured module_utils path;
    # load the same file from the repository instead.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import EvidenceError, make_record  # noqa: E402


def compliance_collect(hostvars, hosts):
    """Gather each audited host's `compliance_evidence` for the report.

    Returns {"hosts": {host: [records]}, "missing": [hosts without evidence],
    "groups": {host: [group names]}}. A host whose evidence is missing (it was
    unreachable or its play failed) goes to "missing", so the report marks its
    controls as errors instead of silently leaving it out.
    """
    out = {"hosts": {}, "missing": [], "groups": {}}
    for host in hosts:
        hv = hostvars[host]
        out["groups"][host] = list(hv.get("group_names", []))
        evidence = hv.get("compliance_evidence")
        if evidence is None:
            out["missing"].append(host)
        else:
            out["hosts"][host] = list(evidence)
    return out


def evidence_record(evidence, control_id, role, status):
    """Build one evidence record in a verify task: `{{ data | evidence_record(ID, role, status) }}`."""
    try:
        return make_record(control_id, role, status, evidence)
    except EvidenceError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """Evidence and report filters."""

    def filters(self):
        return {"compliance_collect": compliance_collect, "evidence_record": evidence_record}
