# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence records: the one shape every verify step emits.

A role's ``tasks/verify.yml`` probes the live host and turns what it saw into
records of this shape. Molecule verify, ``playbooks/audit.yml`` and the
compliance report all read the same records, so what CI checked is what the
auditor reads (DESIGN.md section 4, Reports).

A record as emitted by a role carries ``id``, ``role``, ``status`` and
``evidence``; the compliance report adds ``title``, ``frameworks`` and
``waiver`` from the controls catalogue and the waiver list.

This file has no Ansible imports so that the isolation monitor, the bundle CLI
and pytest can use it directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

STATUSES = ("pass", "fail", "waived", "not_applicable", "error")

# Order of severity when several observations make up one control: the worst wins.
_STATUS_RANK = {"pass": 0, "not_applicable": 1, "waived": 2, "fail": 3, "error": 4}

CONTROL_ID_RE = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")

RECORD_KEYS = ("id", "title", "role", "status", "evidence", "frameworks", "waiver")


class EvidenceError(ValueError):
    """A record that does not have the documented shape."""


def utc_now():
    """Return the current UTC time as an ISO 8601 string with a Z suffix."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_record(control_id, role, status, evidence, title=None, frameworks=None,
                waiver=None, checked_at=None):
    """Build one evidence record and validate it.

    ``evidence`` is a dict describing what was probed and what was seen. It
    always gets a ``checked_at`` timestamp so a reader knows when the host
    was looked at.
    """
    if not isinstance(evidence, dict):
        evidence = {"detail": evidence}
    evidence = dict(evidence)
    evidence.setdefault("checked_at", checked_at or utc_now())
    record = {
        "id": control_id,
        "title": title,
        "role": role,
        "status": status,
        "evidence": evidence,
        "frameworks": frameworks if frameworks is not None else {},
        "waiver": waiver,
    }
    validate_record(record)
    return record


def validate_record(record):
    """Raise EvidenceError unless ``record`` has the documented shape."""
    if not isinstance(record, dict):
        raise EvidenceError("evidence record must be a mapping, got %r" % type(record).__name__)
    missing = [k for k in ("id", "role", "status", "evidence") if k not in record]
    if missing:
        raise EvidenceError("evidence record lacks %s: %r" % (", ".join(missing), record))
    if not isinstance(record["id"], str) or not CONTROL_ID_RE.match(record["id"]):
        raise EvidenceError("control id %r is not of the form AREA-NAME (upper case)" % (record["id"],))
    if record["status"] not in STATUSES:
        raise EvidenceError("control %s: status %r is not one of %s"
                            % (record["id"], record["status"], ", ".join(STATUSES)))
    if not isinstance(record["evidence"], dict):
        raise EvidenceError("control %s: evidence must be a mapping" % record["id"])
    unknown = set(record) - set(RECORD_KEYS)
    if unknown:
        raise EvidenceError("control %s: unknown keys %s" % (record["id"], ", ".join(sorted(unknown))))
    return record


def worst_status(statuses):
    """Combine several statuses into one: the most severe wins; none is an error."""
    statuses = list(statuses)
    if not statuses:
        return "error"
    for status in statuses:
        if status not in _STATUS_RANK:
            raise EvidenceError("unknown status %r" % (status,))
    return max(statuses, key=lambda s: _STATUS_RANK[s])


def merge_records(records):
    """Merge records that share a control id on one host into one record.

    Several verify steps can evidence one control (the firewall probes from the
    host, the vLLM role probes from inside its container). The merged status is
    the worst one, and every observation is kept.
    """
    merged = {}
    order = []
    for record in records:
        validate_record(record)
        key = record["id"]
        if key not in merged:
            merged[key] = dict(record, evidence={"observations": [record["evidence"]]})
            merged[key]["_statuses"] = [record["status"]]
            order.append(key)
        else:
            merged[key]["evidence"]["observations"].append(record["evidence"])
            merged[key]["_statuses"].append(record["status"])
    out = []
    for key in order:
        rec = merged[key]
        rec["status"] = worst_status(rec.pop("_statuses"))
        if len(rec["evidence"]["observations"]) == 1:
            rec["evidence"] = rec["evidence"]["observations"][0]
        out.append(rec)
    return out
