# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compliance report: controls catalogue, waivers and the report files.

Roles' verify steps emit evidence records (``airgap_evidence``). This file
turns the records of every audited host into ``reports/<UTC timestamp>/``:

- ``hosts/<host>.json``  one file per host, the DESIGN.md record shape;
- ``fleet.json``         counts, per-host summary, verdict, waivers, catalogue hash;
- ``junit.xml``          one test case per host and control, for CI;
- ``index.html``         one self-contained page for people (prints to PDF);
- ``SHA256SUMS``         over all of the above, optionally signed (ssh or gpg).

It also loads and validates the controls catalogue (``controls/*.yml``).

The rules that make the report trustworthy live here and nowhere else:

- fail closed: a control that applies to a host but has no record is an
  ``error``, never a pass; an unreachable host has every control in ``error``;
- a waiver needs a justification, an approver and an expiry date; an active
  one turns ``fail``/``error`` into ``waived`` and keeps the original status
  visible; an expired one changes nothing but is flagged;
- the fleet verdict is ``pass`` only if no host has a ``fail`` or ``error``.

No Ansible imports, so that benchmarks, tests and a CLI can use it directly.
PyYAML is needed only to read the catalogue.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import glob
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

try:  # Ansible's own module_utils import path first, then plain scripts/pytest.
    from ansible.module_utils.airgap_evidence import (
        STATUSES, CONTROL_ID_RE, EvidenceError, make_record, merge_records, validate_record)
except ImportError:  # pragma: no cover - exercised by plain scripts
    from airgap_evidence import (  # type: ignore
        STATUSES, CONTROL_ID_RE, EvidenceError, make_record, merge_records, validate_record)

TOOL_NAME = "airgap compliance_report"
TOOL_VERSION = "1.0.0"

SEVERITIES = ("critical", "high", "medium", "low")

# The roles a control may name: DESIGN.md section 3, plus host_hardening, this
# project's own role for the HOST-* controls.
PROJECT_ROLES = ("airgap_repos", "network_vlan", "firewall", "nvidia_driver", "container_runtime",
                 "model_weights", "vllm_server", "isolation_monitor", "compliance_report", "host_hardening")
REQUIRED_FRAMEWORKS = ("bsi", "nist_800_53", "hipaa")
FRAMEWORK_LABELS = {
    "bsi": "BSI IT-Grundschutz",
    "nist_800_53": "NIST SP 800-53 Rev. 5",
    "hipaa": "HIPAA Security Rule (45 CFR)",
}
# Loose shape checks: they catch typos such as "SC7" or "164.312e1", they do
# not prove that a reference exists (the catalogue review does that).
FRAMEWORK_REF_RE = {
    "bsi": re.compile(r"^[A-Z]{3,4}(\.[0-9]+)+(\.A[0-9]+)?$"),
    "nist_800_53": re.compile(r"^[A-Z]{2}-[0-9]+(\([0-9]+\))?$"),
    "hipaa": re.compile(r"^164\.3[0-9]{2}(\([a-zA-Z0-9]+\))*$"),
}
CATALOGUE_FIELDS = ("id", "title", "rationale", "role", "verified_by",
                    "severity", "frameworks", "applies_to")
# enforced_by is not written in the catalogue: it is derived from the task
# names that lead with the control id (control_task_links), as
# ansible-lockdown does, so the two can never disagree.
DERIVED_FIELDS = ("enforced_by",)
# Report order of the catalogue files; others follow alphabetically.
AREA_ORDER = ("network", "repos", "gpu", "weights", "vllm", "monitor", "host")

WAIVER_REQUIRED = ("control", "justification", "approver", "expires")
WAIVER_FIELDS = WAIVER_REQUIRED + ("hosts",)
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

TIMESTAMP_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# A host name becomes a file name and a line in SHA256SUMS: no path separators,
# no leading dot, nothing sha256sum would have to escape.
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9_:@%+=,-][A-Za-z0-9_.:@%+=,-]*$")

SIGNING_METHODS = ("ssh", "gpg")
SSH_NAMESPACE = "airgap-report"
SUMS_NAME = "SHA256SUMS"
STATUS_LABELS = {
    "pass": "PASS", "fail": "FAIL", "waived": "WAIVED",
    "not_applicable": "N/A", "error": "ERROR",
}
STATUS_SYMBOLS = {
    "pass": u"\u2713", "fail": u"\u2717", "waived": "~",
    "not_applicable": u"\u2013", "error": "!",
}
NO_EVIDENCE = "no evidence collected"
UNREACHABLE = "host unreachable: no evidence collected"


class ReportError(ValueError):
    """Input the report cannot be built from; the message says what and where."""


class CatalogueError(ReportError):
    """The controls catalogue does not have the documented shape."""


class WaiverError(ReportError):
    """A waiver is incomplete, malformed or names an unknown control."""


# --------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------

def _catalogue_files(directory):
    """Return the catalogue's YAML files in report order."""
    if not os.path.isdir(directory):
        raise CatalogueError("controls catalogue directory %r does not exist" % (directory,))
    names = [n for n in os.listdir(directory)
             if n.endswith((".yml", ".yaml")) and not n.startswith(".")]

    def order(name):
        stem = name.rsplit(".", 1)[0]
        rank = AREA_ORDER.index(stem) if stem in AREA_ORDER else len(AREA_ORDER)
        return (rank, name)

    files = [os.path.join(directory, n) for n in sorted(names, key=order)]
    if not files:
        raise CatalogueError("controls catalogue directory %r has no .yml files" % (directory,))
    return files


def _require_str(value, where, field):
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError("%s: field %r must be a non-empty string" % (where, field))
    return value.strip()


def _require_str_list(value, where, field):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise CatalogueError("%s: field %r must be a non-empty list" % (where, field))
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise CatalogueError("%s: field %r has an empty or non-string item %r" % (where, field, item))
    return [item.strip() for item in value]


def validate_catalogue_entry(entry, where):
    """Check one catalogue entry and return a normalised copy.

    ``where`` names the file and position for error messages.
    """
    if not isinstance(entry, dict):
        raise CatalogueError("%s: entry must be a mapping, got %s" % (where, type(entry).__name__))
    cid = entry.get("id")
    if isinstance(cid, str):
        where = "%s (%s)" % (where, cid)
    missing = [f for f in CATALOGUE_FIELDS if f not in entry or entry[f] in (None, "", [], {})]
    if missing:
        raise CatalogueError("%s: missing field %s" % (where, ", ".join(repr(m) for m in missing)))
    derived = sorted(set(entry) & set(DERIVED_FIELDS))
    if derived:
        raise CatalogueError("%s: field %s is derived from the task names that lead with the control id; "
                             "remove it" % (where, ", ".join(repr(d) for d in derived)))
    unknown = sorted(set(entry) - set(CATALOGUE_FIELDS))
    if unknown:
        raise CatalogueError("%s: unknown field %s" % (where, ", ".join(repr(u) for u in unknown)))
    if not isinstance(cid, str) or not CONTROL_ID_RE.match(cid):
        raise CatalogueError("%s: id %r is not of the form AREA-NAME (upper case)" % (where, cid))
    out = {"id": cid}
    for field in ("title", "rationale", "role", "verified_by"):
        out[field] = _require_str(entry[field], where, field)
    if entry["severity"] not in SEVERITIES:
        raise CatalogueError("%s: severity %r is not one of %s"
                             % (where, entry["severity"], ", ".join(SEVERITIES)))
    out["severity"] = entry["severity"]
    out["enforced_by"] = []
    out["applies_to"] = _require_str_list(entry["applies_to"], where, "applies_to")
    out["frameworks"] = _validate_frameworks(entry["frameworks"], where)
    return out


def _validate_frameworks(frameworks, where):
    if not isinstance(frameworks, dict):
        raise CatalogueError("%s: frameworks must be a mapping of framework to references" % where)
    out = {}
    for name in REQUIRED_FRAMEWORKS:
        refs = frameworks.get(name)
        if not isinstance(refs, list) or not refs:
            raise CatalogueError("%s: frameworks.%s is empty: every control needs at least one reference"
                                 % (where, name))
    for name, refs in frameworks.items():
        refs = _require_str_list(refs, where, "frameworks.%s" % name)
        pattern = FRAMEWORK_REF_RE.get(name)
        for ref in refs:
            if pattern is not None and not pattern.match(ref):
                raise CatalogueError("%s: frameworks.%s reference %r is not a well-formed reference"
                                     % (where, name, ref))
        if len(set(refs)) != len(refs):
            raise CatalogueError("%s: frameworks.%s lists a reference twice" % (where, name))
        out[name] = refs
    return out


def _load_yaml(path):
    import yaml  # only the catalogue needs it; keep the rest importable without PyYAML
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise CatalogueError("%s: not valid YAML: %s" % (path, exc))


_NESTED_KEYS = ("block", "rescue", "always")


def _walk_tasks(items):
    for item in items or []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in _NESTED_KEYS:
            if isinstance(item.get(key), list):
                for inner in _walk_tasks(item[key]):
                    yield inner


def leading_control_ids(name):
    """Control ids a task name leads with: "A-B | C-D | text" gives ["A-B", "C-D"]."""
    ids = []
    parts = name.split(" | ")
    for part in parts[:-1]:
        if not CONTROL_ID_RE.match(part):
            break
        ids.append(part)
    return ids


def control_task_links(roles_dir):
    """{control id: sorted task names} from roles/*/tasks/: each task whose name leads with the id.

    The files named verify.yml prove a control (the catalogue's
    verified_by); their tasks are not counted as enforcing it.
    """
    links = {}
    for role_tasks in sorted(glob.glob(os.path.join(roles_dir, "*", "tasks"))):
        for dirpath, _dirs, names in os.walk(role_tasks):
            for fname in sorted(names):
                if not fname.endswith((".yml", ".yaml")) or fname == "verify.yml":
                    continue
                data = _load_yaml(os.path.join(dirpath, fname))
                for task in _walk_tasks(data if isinstance(data, list) else []):
                    name = task.get("name")
                    if isinstance(name, str):
                        for cid in leading_control_ids(name):
                            links.setdefault(cid, set()).add(name)
    return dict((cid, sorted(names)) for cid, names in links.items())


def load_catalogue(directory, roles_dir=None):
    """Load every ``*.yml`` in ``directory`` and return ``{id: entry}`` in report order.

    ``enforced_by`` of each entry is derived from the tasks under
    ``roles_dir`` (default: the ``roles`` folder beside the catalogue) whose
    names lead with the control id. Raises CatalogueError naming the file,
    the entry and the field on any missing field, duplicate id, bad severity
    or empty framework list.
    """
    catalogue = {}
    seen_in = {}
    for path in _catalogue_files(directory):
        data = _load_yaml(path)
        name = os.path.basename(path)
        if data is None:
            continue
        if not isinstance(data, list):
            raise CatalogueError("%s: must be a list of control entries" % name)
        for index, raw in enumerate(data):
            entry = validate_catalogue_entry(raw, "%s entry %d" % (name, index))
            if entry["id"] in catalogue:
                raise CatalogueError("%s entry %d: duplicate control id %s (first defined in %s)"
                                     % (name, index, entry["id"], seen_in[entry["id"]]))
            seen_in[entry["id"]] = name
            catalogue[entry["id"]] = entry
    if not catalogue:
        raise CatalogueError("controls catalogue %r defines no controls" % (directory,))
    roles_dir = roles_dir or os.path.join(os.path.dirname(os.path.abspath(directory)), "roles")
    if os.path.isdir(roles_dir):
        links = control_task_links(roles_dir)
        for cid, entry in catalogue.items():
            entry["enforced_by"] = links.get(cid, [])
    return catalogue


def catalogue_digest(directory):
    """sha256 of the catalogue: all files' bytes concatenated in file-name order.

    The same number comes out of ``LC_ALL=C cat controls/*.yml | sha256sum``,
    so an auditor can check which catalogue a report was built from.
    """
    whole = hashlib.sha256()
    files = {}
    for path in sorted(_catalogue_files(directory), key=os.path.basename):
        with open(path, "rb") as handle:
            data = handle.read()
        whole.update(data)
        files[os.path.basename(path)] = hashlib.sha256(data).hexdigest()
    return {"sha256": whole.hexdigest(), "files": files}


# --------------------------------------------------------------------------
# Waivers
# --------------------------------------------------------------------------

def _parse_date(value, where):
    """Accept 'YYYY-MM-DD' or a date (YAML turns an unquoted date into one)."""
    if isinstance(value, datetime.datetime):
        raise WaiverError("%s: expected a date (YYYY-MM-DD), got a date and time %r" % (where, str(value)))
    if isinstance(value, datetime.date):
        return value
    if not isinstance(value, str) or not DATE_RE.match(value.strip()):
        raise WaiverError("%s: %r is not a date of the form YYYY-MM-DD" % (where, value))
    try:
        return datetime.date(*[int(p) for p in value.strip().split("-")])
    except ValueError as exc:
        raise WaiverError("%s: %r is not a valid date (%s)" % (where, value, exc))


def _as_date(value, what):
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return _parse_date(value, what)
    except WaiverError as exc:
        raise ReportError(str(exc))


def validate_waivers(waivers, catalogue, label="compliance_waivers"):
    """Check the waiver list and return normalised copies (``expires`` as a string).

    Errors name the waiver by index and field, e.g.
    ``compliance_waivers[2].approver: missing``.
    """
    if waivers is None:
        return []
    if not isinstance(waivers, list):
        raise WaiverError("%s must be a list of waivers, got %s" % (label, type(waivers).__name__))
    out = []
    for index, waiver in enumerate(waivers):
        where = "%s[%d]" % (label, index)
        if not isinstance(waiver, dict):
            raise WaiverError("%s: a waiver must be a mapping, got %s" % (where, type(waiver).__name__))
        unknown = sorted(set(waiver) - set(WAIVER_FIELDS))
        if unknown:
            raise WaiverError("%s.%s: unknown field (allowed: %s)"
                              % (where, unknown[0], ", ".join(WAIVER_FIELDS)))
        for field in WAIVER_REQUIRED:
            value = waiver.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise WaiverError("%s.%s: missing; a waiver needs %s"
                                  % (where, field, ", ".join(WAIVER_REQUIRED)))
        for field in ("control", "justification", "approver"):
            if not isinstance(waiver[field], str):
                raise WaiverError("%s.%s: must be a string" % (where, field))
        if waiver["control"] not in catalogue:
            raise WaiverError("%s.control: %r is not a control in the catalogue" % (where, waiver["control"]))
        expires = _parse_date(waiver["expires"], "%s.expires" % where)
        norm = {
            "control": waiver["control"],
            "justification": waiver["justification"].strip(),
            "approver": waiver["approver"].strip(),
            "expires": expires.isoformat(),
        }
        if "hosts" in waiver and waiver["hosts"] is not None:
            hosts = waiver["hosts"]
            if not isinstance(hosts, list) or not hosts or not all(
                    isinstance(h, str) and h.strip() for h in hosts):
                raise WaiverError("%s.hosts: must be a non-empty list of host names (leave it out for all hosts)"
                                  % where)
            norm["hosts"] = [h.strip() for h in hosts]
        out.append(norm)
    return out


def waiver_is_active(waiver, today):
    """A waiver is valid through its expiry day (inclusive)."""
    return today <= datetime.date(*[int(p) for p in waiver["expires"].split("-")])


def _waiver_covers(waiver, control_id, host):
    return waiver["control"] == control_id and ("hosts" not in waiver or host in waiver["hosts"])


def apply_waivers(record, host, waivers, today):
    """Return ``record`` with the waivers for its control and host applied.

    Only ``fail`` and ``error`` can be waived. An active waiver makes the
    status ``waived`` and records the original status; with only expired
    waivers the status stays and the waiver is attached, flagged ``expired``.
    """
    record = dict(record, waiver=None)
    if record["status"] not in ("fail", "error"):
        return record
    matching = [w for w in waivers if _waiver_covers(w, record["id"], host)]
    active = [w for w in matching if waiver_is_active(w, today)]
    if active:
        record["waiver"] = dict(active[0], original_status=record["status"], expired=False)
        record["status"] = "waived"
    elif matching:
        # The latest-expiring one is the most informative to show.
        latest = max(matching, key=lambda w: w["expires"])
        record["waiver"] = dict(latest, original_status=record["status"], expired=True)
    return record


# --------------------------------------------------------------------------
# Building the report model
# --------------------------------------------------------------------------

def _check_host_name(host):
    if not isinstance(host, str) or not HOST_NAME_RE.match(host):
        raise ReportError("host name %r cannot be used as a report file name "
                          "(letters, digits and . _ : @ %% + = , - only, not starting with a dot)" % (host,))


def _applies(entry, groups):
    return bool(set(entry["applies_to"]) & set(groups))


def _enrich(record, entry):
    """Fill title, role and frameworks from the catalogue (the catalogue is authoritative)."""
    out = dict(record)
    out["title"] = entry["title"]
    out["role"] = entry["role"]
    out["frameworks"] = copy.deepcopy(entry["frameworks"])
    return out


def _missing_record(entry, detail, generated_at):
    return make_record(entry["id"], entry["role"], "error",
                       {"detail": detail, "expected_from": entry["verified_by"]},
                       checked_at=generated_at)


def build_host_results(host, records, catalogue, waivers, today, generated_at,
                       groups=("gpu_nodes",), reachable=True):
    """Turn one host's raw records into its list of control results.

    Returns ``(controls, problems)``: ``controls`` in catalogue order (ids
    missing from the catalogue last, as ``error``), ``problems`` a list of
    messages about records that could not be used at all.
    """
    problems = []
    usable = []
    if records is None:
        records = []
    if not isinstance(records, list):
        raise ReportError("hosts[%r]: evidence must be a list of records, got %s"
                          % (host, type(records).__name__))
    for index, record in enumerate(records):
        try:
            validate_record(record)
            usable.append(record)
        except EvidenceError as exc:
            rid = record.get("id") if isinstance(record, dict) else None
            if isinstance(rid, str) and rid in catalogue:
                # Fail closed: a broken record for a known control makes that control an error.
                usable.append(make_record(rid, catalogue[rid]["role"], "error",
                                          {"detail": "malformed evidence record", "problem": str(exc)},
                                          checked_at=generated_at))
            else:
                problems.append("record %d is malformed and names no known control: %s" % (index, exc))
    by_id = {}
    for record in merge_records(usable):
        by_id[record["id"]] = record

    controls = []
    for cid, entry in catalogue.items():
        if cid in by_id:
            record = _enrich(by_id.pop(cid), entry)
        elif _applies(entry, groups):
            record = _missing_record(entry, NO_EVIDENCE if reachable else UNREACHABLE, generated_at)
            record = _enrich(record, entry)
        else:
            continue
        controls.append(apply_waivers(record, host, waivers, today))
    for cid, record in by_id.items():
        # Evidence for a control nobody catalogued cannot be judged: show it, as an error.
        problems.append("evidence for %s, which is not in the controls catalogue" % cid)
        controls.append(dict(record, status="error", waiver=None, title=record.get("title") or cid,
                             frameworks={},
                             evidence={"detail": "control id is not in the controls catalogue",
                                       "reported_status": record["status"],
                                       "reported_evidence": record["evidence"]}))
    return controls, problems


def _counts(controls):
    counts = dict((s, 0) for s in STATUSES)
    for control in controls:
        counts[control["status"]] += 1
    return counts


def _verdict(counts, problems=()):
    return "fail" if counts["fail"] or counts["error"] or problems else "pass"


def _default_timestamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime(TIMESTAMP_FORMAT)


def timestamp_to_iso(timestamp):
    """20261122T224500Z -> 2026-11-22T22:45:00Z (and check it is a real time)."""
    if not isinstance(timestamp, str) or not TIMESTAMP_RE.match(timestamp):
        raise ReportError("timestamp %r is not of the form YYYYMMDDTHHMMSSZ (UTC)" % (timestamp,))
    try:
        moment = datetime.datetime.strptime(timestamp, TIMESTAMP_FORMAT)
    except ValueError as exc:
        raise ReportError("timestamp %r is not a valid time: %s" % (timestamp, exc))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(hosts, catalogue, unreachable=(), waivers=(), today=None, timestamp=None,
                 host_groups=None, default_groups=("gpu_nodes",), catalogue_info=None):
    """Build the whole report in memory (no files): ``{"hosts": {...}, "fleet": {...}}``.

    ``hosts`` maps inventory host names to their evidence records;
    ``unreachable`` lists hosts that were expected but could not be audited.
    ``waivers`` must already be validated (validate_waivers). ``today`` (a
    date or 'YYYY-MM-DD') decides which waivers are active; it defaults to
    the report's UTC date.
    """
    if not isinstance(hosts, dict):
        raise ReportError("hosts must be a mapping of host name to a list of records")
    unreachable = list(unreachable or [])
    timestamp = timestamp or _default_timestamp()
    generated_at = timestamp_to_iso(timestamp)
    today = _as_date(today, "today") or datetime.date(*[int(p) for p in generated_at[:10].split("-")])
    host_groups = host_groups or {}
    names = list(hosts) + [h for h in unreachable if h not in hosts]
    if not names:
        raise ReportError("no hosts to report on: hosts and unreachable are both empty")
    host_reports = {}
    summary = {}
    all_problems = []
    for host in names:
        _check_host_name(host)
        reachable = host not in unreachable
        groups = host_groups.get(host, default_groups)
        controls, problems = build_host_results(host, hosts.get(host, []), catalogue, waivers, today,
                                                generated_at, groups=groups, reachable=reachable)
        host_reports[host] = {"host": host, "generated_at": generated_at, "controls": controls}
        counts = _counts(controls)
        summary[host] = {
            "verdict": _verdict(counts, problems),
            "reachable": reachable,
            "counts": counts,
            "failing": [c["id"] for c in controls if c["status"] in ("fail", "error")],
            "waived": [c["id"] for c in controls if c["status"] == "waived"],
            "problems": problems,
        }
        all_problems.extend("%s: %s" % (host, p) for p in problems)
    fleet = _fleet(summary, host_reports, catalogue, waivers, today, generated_at, unreachable,
                   all_problems, catalogue_info)
    return {"timestamp": timestamp, "generated_at": generated_at, "today": today.isoformat(),
            "hosts": host_reports, "fleet": fleet, "catalogue": catalogue}


def _fleet(summary, host_reports, catalogue, waivers, today, generated_at, unreachable,
           problems, catalogue_info):
    counts = dict((s, 0) for s in STATUSES)
    for host in summary.values():
        for status, number in host["counts"].items():
            counts[status] += number
    waiver_states = []
    expired = []
    for index, waiver in enumerate(waivers):
        applied = []
        for host, report in host_reports.items():
            for control in report["controls"]:
                attached = control.get("waiver")
                if attached and attached["control"] == waiver["control"] and _waiver_covers(
                        waiver, control["id"], host) and attached["expires"] == waiver["expires"]:
                    applied.append({"host": host, "status": control["status"],
                                    "original_status": attached["original_status"]})
        state = dict(waiver, index=index, active=waiver_is_active(waiver, today), applied_to=applied)
        waiver_states.append(state)
        if not state["active"]:
            expired.append(state)
    info = catalogue_info or {}
    return {
        "generated_at": generated_at,
        "tool": {"name": TOOL_NAME, "version": TOOL_VERSION},
        "catalogue": {"sha256": info.get("sha256"), "files": info.get("files", {}),
                      "controls": len(catalogue)},
        "verdict": "fail" if any(h["verdict"] == "fail" for h in summary.values()) else "pass",
        "counts": counts,
        "hosts": summary,
        "hosts_failing": sorted(h for h, s in summary.items() if s["verdict"] == "fail"),
        "unreachable": list(unreachable),
        "waivers_evaluated_on": today.isoformat(),
        "waivers": waiver_states,
        "expired_waivers": expired,
        "problems": problems,
        "controls": dict((cid, {"title": e["title"], "role": e["role"], "severity": e["severity"],
                                "frameworks": e["frameworks"], "verified_by": e["verified_by"]})
                         for cid, e in catalogue.items()),
    }


# --------------------------------------------------------------------------
# Rendering: JSON, JUnit
# --------------------------------------------------------------------------

def to_json(data):
    """Stable, readable JSON; anything exotic (dates, tagged strings) as text."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


_XML_BAD = re.compile(u"[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value):
    """XML 1.0 cannot carry some control characters at all: drop them."""
    return _XML_BAD.sub(u"\ufffd", value if isinstance(value, str) else str(value))


def evidence_summary(evidence, limit=240):
    """One line that says what was seen, for JUnit messages and table cells."""
    if not isinstance(evidence, dict):
        text = str(evidence)
    else:
        for key in ("detail", "summary", "result", "message", "problem"):
            if isinstance(evidence.get(key), (str, int, float)) and evidence.get(key) != "":
                text = str(evidence[key])
                break
        else:
            if "observations" in evidence and isinstance(evidence["observations"], list):
                parts = [evidence_summary(o, limit) for o in evidence["observations"]]
                text = " | ".join(parts)
            else:
                parts = ["%s=%s" % (k, json.dumps(v, default=str, ensure_ascii=False))
                         for k, v in evidence.items() if k != "checked_at"]
                text = ", ".join(parts) or "(no details)"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + u"\u2026"


def _waiver_line(waiver):
    scope = "hosts %s" % ", ".join(waiver["hosts"]) if waiver.get("hosts") else "all hosts"
    state = "EXPIRED on" if waiver.get("expired") else "valid until"
    return ("Waiver for %s (%s), %s %s, approved by %s, original status %s. Justification: %s"
            % (waiver["control"], scope, state, waiver["expires"], waiver["approver"],
               waiver.get("original_status"), waiver["justification"]))


def render_junit(model):
    """One testsuite per host, one testcase per host and control."""
    fleet = model["fleet"]
    root = ET.Element("testsuites", {
        "name": "airgap-compliance",
        "tests": str(sum(fleet["counts"].values())),
        "failures": str(fleet["counts"]["fail"]),
        "errors": str(fleet["counts"]["error"]),
        "skipped": str(fleet["counts"]["not_applicable"]),
        "timestamp": model["generated_at"],
    })
    for host, report in model["hosts"].items():
        counts = fleet["hosts"][host]["counts"]
        suite = ET.SubElement(root, "testsuite", {
            "name": _xml_text(host), "tests": str(len(report["controls"])),
            "failures": str(counts["fail"]), "errors": str(counts["error"]),
            "skipped": str(counts["not_applicable"]), "timestamp": model["generated_at"],
        })
        for control in report["controls"]:
            case = ET.SubElement(suite, "testcase", {
                "classname": _xml_text(host),
                "name": _xml_text("%s %s" % (control["id"], control.get("title") or "")),
            })
            details = _xml_text(to_json(control["evidence"]))
            summary = _xml_text(evidence_summary(control["evidence"]))
            status = control["status"]
            if status == "fail":
                node = ET.SubElement(case, "failure", {"message": summary, "type": "fail"})
                node.text = details
            elif status == "error":
                node = ET.SubElement(case, "error", {"message": summary, "type": "error"})
                node.text = details
            elif status == "not_applicable":
                ET.SubElement(case, "skipped", {"message": _xml_text("not applicable: " + summary)})
            if control.get("waiver"):
                out = ET.SubElement(case, "system-out")
                out.text = _xml_text(_waiver_line(control["waiver"]))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------
# Rendering: HTML
# --------------------------------------------------------------------------

def _e(value):
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _fw_tokens(frameworks):
    return " ".join("%s:%s" % (name, ref) for name, refs in sorted(frameworks.items()) for ref in refs)


def _badge(status, extra=""):
    return ('<span class="badge s-%s"%s><span aria-hidden="true">%s</span> %s</span>'
            % (_e(status), extra, _e(STATUS_SYMBOLS[status]), _e(STATUS_LABELS[status])))


def render_value(value, depth=0):
    """Render evidence readably: mappings as definition lists, lists as lists, all escaped."""
    if depth > 8:
        return "<pre>%s</pre>" % _e(to_json(value))
    if isinstance(value, dict):
        if not value:
            return '<span class="muted">(empty)</span>'
        rows = "".join("<dt>%s</dt><dd>%s</dd>" % (_e(k), render_value(v, depth + 1))
                       for k, v in value.items())
        return '<dl class="ev">%s</dl>' % rows
    if isinstance(value, (list, tuple)):
        if not value:
            return '<span class="muted">(none)</span>'
        tag = "ol" if any(isinstance(v, (dict, list, tuple)) for v in value) else "ul"
        return "<%s class=\"ev-list\">%s</%s>" % (
            tag, "".join("<li>%s</li>" % render_value(v, depth + 1) for v in value), tag)
    if value is None:
        return '<span class="muted">null</span>'
    if isinstance(value, bool):
        return "<code>%s</code>" % ("true" if value else "false")
    if isinstance(value, (int, float)):
        return "<code>%s</code>" % _e(value)
    text = str(value)
    if "\n" in text or len(text) > 160:
        return "<pre>%s</pre>" % _e(text)
    return _e(text)


_CSS = u"""
:root{--pass:#0b6b2f;--pass-bg:#e3f3e8;--fail:#a3000f;--fail-bg:#fde1e3;--waived:#6a4a00;
--waived-bg:#fff0c2;--na:#3d3d3d;--na-bg:#ececec;--error:#55207f;--error-bg:#efe2fa;--line:#c8c8c8}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1a1a1a;
margin:0 auto;padding:16px 24px 48px;max-width:1600px;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.3em;margin:1.4em 0 .4em;border-bottom:2px solid #333}
h3{font-size:1.1em;margin:1.2em 0 .3em}
.meta{color:#444;font-size:.9em}.meta code{font-size:.95em;word-break:break-all}
.muted{color:#666}
.verdict{display:flex;align-items:center;gap:16px;padding:12px 16px;border:3px solid;margin:12px 0;
font-size:1.25em;font-weight:700}
.verdict.v-pass{border-color:var(--pass);background:var(--pass-bg);color:var(--pass)}
.verdict.v-fail{border-color:var(--fail);background:var(--fail-bg);color:var(--fail)}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.tile{border:2px solid;padding:6px 14px;min-width:120px;text-align:center}
.tile .n{display:block;font-size:1.7em;font-weight:700}
.badge{display:inline-block;padding:1px 7px;border:1px solid;border-radius:3px;font-weight:700;
font-size:.85em;white-space:nowrap}
.s-pass{color:var(--pass);background:var(--pass-bg);border-color:var(--pass)}
.s-fail{color:var(--fail);background:var(--fail-bg);border-color:var(--fail)}
.s-waived{color:var(--waived);background:var(--waived-bg);border-color:var(--waived)}
.s-not_applicable{color:var(--na);background:var(--na-bg);border-color:var(--na)}
.s-error{color:var(--error);background:var(--error-bg);border-color:var(--error)}
.flag{display:inline-block;padding:1px 6px;border:2px dashed var(--fail);color:var(--fail);
font-weight:700;font-size:.8em;margin-left:4px}
.alert{border-left:6px solid var(--fail);background:#fff6f6;padding:8px 12px;margin:10px 0}
.alert.warn{border-color:var(--waived);background:#fffbea}
ul.hostlist{margin:.2em 0 .6em 1.2em;padding:0}
.filters{display:none;flex-wrap:wrap;gap:14px 24px;align-items:center;padding:10px 12px;margin:14px 0;
background:#f4f6f8;border:1px solid var(--line);position:sticky;top:0;z-index:5}
.js .filters{display:flex}
.filters fieldset{border:0;margin:0;padding:0;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.filters legend{float:left;font-weight:700;margin-right:6px}
.filters label{white-space:nowrap}
.filters select{max-width:22em}
.filters button{padding:3px 10px}
.table-wrap{overflow-x:auto}
table.matrix{border-collapse:collapse;font-size:.85em}
table.matrix th,table.matrix td{border:1px solid var(--line);padding:3px 4px;text-align:center}
table.matrix th.ctl{vertical-align:bottom;height:15em;white-space:nowrap;padding:4px 2px}
table.matrix th.ctl a{writing-mode:vertical-rl;transform:rotate(180deg);display:inline-block;
color:#1a1a1a;text-decoration:none;font-weight:600}
table.matrix th.host,table.matrix td.host{text-align:left;white-space:nowrap;position:sticky;left:0;background:#fff}
table.matrix td a{text-decoration:none}
table.matrix td .badge{font-size:.78em;padding:0 4px}
table.matrix td .flag{font-size:.7em;padding:0 3px;margin:2px 0 0}
table.matrix th.ctl{width:3.6em}
table.matrix td.dim .badge{opacity:.25}
.legend{font-size:.9em;margin:.4em 0}
section.host{margin-top:1.6em}
.result{border:1px solid var(--line);border-left-width:8px;margin:8px 0;padding:6px 12px;break-inside:avoid}
.result.s-pass{border-left-color:var(--pass);background:#fff;color:inherit}
.result.s-fail{border-left-color:var(--fail);background:#fff;color:inherit}
.result.s-waived{border-left-color:var(--waived);background:#fff;color:inherit}
.result.s-not_applicable{border-left-color:var(--na);background:#fff;color:inherit}
.result.s-error{border-left-color:var(--error);background:#fff;color:inherit}
.result header{display:flex;flex-wrap:wrap;gap:8px 12px;align-items:baseline}
.result header h4{margin:0;font-size:1em}
.result .sev{font-size:.85em;color:#333}
.toggle{margin-left:auto;font-size:.85em;padding:1px 8px}
.result.collapsed .body{display:none}
.body{margin-top:6px;display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:4px 20px}
@media screen and (max-width:900px){.body{grid-template-columns:minmax(0,1fr)}}
.body h5{margin:.7em 0 .2em;font-size:.9em;text-transform:uppercase;letter-spacing:.03em;color:#333}
dl.ev{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dl.ev dt{font-weight:600;color:#333}dl.ev dd{margin:0;min-width:0;overflow-wrap:anywhere}
dl.ev dl.ev{border-left:2px solid #ddd;padding-left:8px}
.ev-list{margin:0;padding-left:1.3em}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:4px 6px;margin:2px 0;font-size:.85em}
.waiver{border:2px solid var(--waived);background:#fffbea;padding:6px 10px;margin-top:8px}
.waiver.expired{border:2px dashed var(--fail);background:#fff6f6}
.refs{margin:0;padding-left:1.2em}.refs li{margin:.05em 0}
.ctl-entry{border-top:1px solid var(--line);padding:6px 0;break-inside:avoid}
.ctl-entry h4{margin:.2em 0}.ctl-entry p{margin:.2em 0}
.refs code{font-size:.95em}
@media screen{.f-hidden{display:none !important}}
.print-only{display:none}
a:focus,button:focus,select:focus,input:focus{outline:3px solid #1a5fb4;outline-offset:1px}
@media print{
 @page{size:A4 landscape;margin:10mm}
 body{font-size:9.5pt;max-width:none;padding:0}
 .filters,.toggle,.no-print{display:none !important}
 .print-only{display:block}
 .result.collapsed .body{display:grid !important}
 .table-wrap{overflow:visible}
 table.matrix{font-size:7pt;width:100%}
 table.matrix th.ctl{height:12em;width:auto}
 table.matrix td .badge{font-size:6.5pt;padding:0 2px}
 .result{padding:3px 8px;margin:5px 0}
 .body h5{margin:.3em 0 .1em}
 .result,.tile,.verdict,tr,.waiver{break-inside:avoid;page-break-inside:avoid}
 thead{display:table-header-group}
 table.matrix th.host,table.matrix td.host{position:static}
 .filters{position:static}
 h2,h3{break-after:avoid;page-break-after:avoid}
 #matrix-title,#catalogue{break-before:page;page-break-before:always}
 a{color:inherit;text-decoration:none}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""

_JS = u"""
(function () {
  'use strict';
  var doc = document;
  doc.documentElement.classList.add('js');
  var form = doc.getElementById('filters');
  var statusBoxes = form.querySelectorAll('input[name="status"]');
  var roleSel = doc.getElementById('f-role');
  var fwSel = doc.getElementById('f-fw');
  var hostSel = doc.getElementById('f-host');
  function hasToken(list, token) { return (' ' + (list || '') + ' ').indexOf(' ' + token + ' ') >= 0; }
  function wanted() {
    var st = {};
    Array.prototype.forEach.call(statusBoxes, function (b) { st[b.value] = b.checked; });
    return {status: st, role: roleSel.value, fw: fwSel.value, host: hostSel.value};
  }
  function columnOk(el, w) {
    return (!w.role || el.getAttribute('data-role') === w.role) &&
           (!w.fw || hasToken(el.getAttribute('data-fw'), w.fw));
  }
  function apply() {
    var w = wanted(), shown = 0, total = 0;
    doc.querySelectorAll('[data-result]').forEach(function (el) {
      total++;
      var ok = w.status[el.getAttribute('data-status')] && columnOk(el, w) &&
               (!w.host || el.getAttribute('data-host') === w.host);
      el.classList.toggle('f-hidden', !ok);
      if (ok) { shown++; }
    });
    doc.querySelectorAll('[data-col]').forEach(function (el) {
      el.classList.toggle('f-hidden', !columnOk(el, w));
    });
    doc.querySelectorAll('td[data-status]').forEach(function (el) {
      el.classList.toggle('dim', !w.status[el.getAttribute('data-status')]);
    });
    doc.querySelectorAll('[data-host-row]').forEach(function (el) {
      el.classList.toggle('f-hidden', !!w.host && el.getAttribute('data-host-row') !== w.host);
    });
    doc.querySelectorAll('section.host').forEach(function (sec) {
      var any = sec.querySelector('[data-result]:not(.f-hidden)');
      sec.classList.toggle('f-hidden', !any);
    });
    doc.getElementById('f-count').textContent = 'Showing ' + shown + ' of ' + total + ' results';
    var parts = [];
    var off = Object.keys(w.status).filter(function (k) { return !w.status[k]; });
    if (off.length) {
      parts.push('status=' + Object.keys(w.status).filter(function (k) { return w.status[k]; }).join(','));
    }
    if (w.role) { parts.push('role=' + encodeURIComponent(w.role)); }
    if (w.fw) { parts.push('fw=' + encodeURIComponent(w.fw)); }
    if (w.host) { parts.push('host=' + encodeURIComponent(w.host)); }
    if (window.history && history.replaceState) {
      history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname);
    }
  }
  function fromHash() {
    var h = (location.hash || '').replace(/^#/, '');
    if (!h) { return; }
    h.split('&').forEach(function (kv) {
      var i = kv.indexOf('=');
      if (i < 0) { return; }
      var k = kv.slice(0, i), v = decodeURIComponent(kv.slice(i + 1));
      if (k === 'status') {
        var on = v.split(',');
        Array.prototype.forEach.call(statusBoxes, function (b) { b.checked = on.indexOf(b.value) >= 0; });
      } else if (k === 'role') { roleSel.value = v; }
      else if (k === 'fw') { fwSel.value = v; }
      else if (k === 'host') { hostSel.value = v; }
    });
  }
  function setCollapsed(el, collapsed) {
    el.classList.toggle('collapsed', collapsed);
    var b = el.querySelector('.toggle');
    if (b) {
      b.textContent = collapsed ? 'Show details' : 'Hide details';
      b.setAttribute('aria-expanded', collapsed ? 'false' : 'true');
    }
  }
  doc.querySelectorAll('[data-result]').forEach(function (el) {
    var b = el.querySelector('.toggle');
    b.hidden = false;
    b.addEventListener('click', function () { setCollapsed(el, !el.classList.contains('collapsed')); });
    var st = el.getAttribute('data-status');
    setCollapsed(el, st === 'pass' || st === 'not_applicable');
  });
  doc.getElementById('f-expand').addEventListener('click', function () {
    doc.querySelectorAll('[data-result]').forEach(function (el) { setCollapsed(el, false); });
  });
  doc.getElementById('f-collapse').addEventListener('click', function () {
    doc.querySelectorAll('[data-result]').forEach(function (el) { setCollapsed(el, true); });
  });
  doc.getElementById('f-reset').addEventListener('click', function () {
    Array.prototype.forEach.call(statusBoxes, function (b) { b.checked = true; });
    roleSel.value = ''; fwSel.value = ''; hostSel.value = '';
    apply();
  });
  form.addEventListener('change', apply);
  form.addEventListener('submit', function (ev) { ev.preventDefault(); });
  window.addEventListener('beforeprint', function () {
    doc.querySelectorAll('[data-result]').forEach(function (el) { setCollapsed(el, false); });
  });
  fromHash();
  apply();
  doc.body.setAttribute('data-js-ready', 'true');
}());
"""


def _anchor(host, cid):
    return "r-%s--%s" % (re.sub(r"[^A-Za-z0-9_-]", "_", host), cid)


def _host_anchor(host):
    return "h-%s" % re.sub(r"[^A-Za-z0-9_-]", "_", host)


def _matrix_columns(model):
    columns = list(model["catalogue"])
    for report in model["hosts"].values():
        for control in report["controls"]:
            if control["id"] not in columns:
                columns.append(control["id"])
    return columns


def _control_meta(model, cid, control=None):
    entry = model["catalogue"].get(cid)
    if entry:
        return entry
    control = control or {}
    return {"id": cid, "title": control.get("title") or cid, "role": control.get("role") or "",
            "severity": "", "frameworks": {}, "rationale": "Not in the controls catalogue.",
            "enforced_by": [], "verified_by": ""}


def _html_summary(model):
    fleet = model["fleet"]
    verdict = fleet["verdict"]
    out = []
    out.append('<div class="verdict v-%s" role="status"><span>Fleet verdict: %s</span>'
               '<span class="muted" style="font-size:.7em;font-weight:400">%s</span></div>'
               % (verdict, "PASS" if verdict == "pass" else "FAIL",
                  _e("no control failed or went unchecked on any host" if verdict == "pass"
                     else "at least one control failed or could not be checked")))
    tiles = []
    for status in STATUSES:
        tiles.append('<div class="tile s-%s" data-count="%s"><span class="n">%d</span>'
                     '<span aria-hidden="true">%s</span> %s</div>'
                     % (status, status, fleet["counts"][status], _e(STATUS_SYMBOLS[status]),
                        _e(STATUS_LABELS[status])))
    out.append('<div class="tiles" aria-label="Results by status">%s</div>' % "".join(tiles))
    hosts = fleet["hosts"]
    out.append('<p>%d host%s audited, %d control%s in the catalogue. '
               'Hosts passing: <strong>%d</strong>, hosts failing: <strong>%d</strong>.</p>'
               % (len(hosts), "" if len(hosts) == 1 else "s", fleet["catalogue"]["controls"],
                  "" if fleet["catalogue"]["controls"] == 1 else "s",
                  sum(1 for h in hosts.values() if h["verdict"] == "pass"), len(fleet["hosts_failing"])))
    if fleet["hosts_failing"]:
        items = []
        for host in fleet["hosts_failing"]:
            info = hosts[host]
            why = ", ".join(info["failing"]) or "; ".join(info["problems"])
            items.append('<li><a href="#%s">%s</a>%s: %s</li>' % (
                _host_anchor(host), _e(host),
                ' <span class="flag">UNREACHABLE</span>' if not info["reachable"] else "", _e(why)))
        out.append('<div class="alert" id="hosts-failing"><strong>Hosts failing</strong>'
                   '<ul class="hostlist">%s</ul></div>' % "".join(items))
    if fleet["expired_waivers"]:
        items = []
        for waiver in fleet["expired_waivers"]:
            scope = ", ".join(waiver["hosts"]) if waiver.get("hosts") else "all hosts"
            items.append("<li><strong>%s</strong> (%s): expired %s, approved by %s</li>"
                         % (_e(waiver["control"]), _e(scope), _e(waiver["expires"]), _e(waiver["approver"])))
        out.append('<div class="alert" id="expired-waivers"><strong>Expired waivers</strong> '
                   '<span class="flag">WAIVER EXPIRED</span> (they no longer change any result; renew or '
                   'remove them)<ul class="hostlist">%s</ul></div>' % "".join(items))
    active = [w for w in fleet["waivers"] if w["active"]]
    if active:
        items = ["<li><strong>%s</strong> (%s): valid until %s, approved by %s &mdash; %s</li>"
                 % (_e(w["control"]), _e(", ".join(w["hosts"]) if w.get("hosts") else "all hosts"),
                    _e(w["expires"]), _e(w["approver"]), _e(w["justification"])) for w in active]
        out.append('<div class="alert warn" id="active-waivers"><strong>Active waivers</strong>'
                   '<ul class="hostlist">%s</ul></div>' % "".join(items))
    if fleet["problems"]:
        out.append('<div class="alert" id="problems"><strong>Problems with the evidence</strong>'
                   '<ul class="hostlist">%s</ul></div>'
                   % "".join("<li>%s</li>" % _e(p) for p in fleet["problems"]))
    return "\n".join(out)


def _html_filters(model):
    roles = sorted(set(e["role"] for e in model["catalogue"].values()))
    boxes = "".join('<label><input type="checkbox" name="status" value="%s" checked> %s</label>'
                    % (s, _badge(s)) for s in STATUSES)
    role_opts = "".join('<option value="%s">%s</option>' % (_e(r), _e(r)) for r in roles)
    groups = []
    for name in REQUIRED_FRAMEWORKS + tuple(sorted(
            set(n for e in model["catalogue"].values() for n in e["frameworks"]) - set(REQUIRED_FRAMEWORKS))):
        refs = sorted(set(r for e in model["catalogue"].values() for r in e["frameworks"].get(name, [])))
        if refs:
            opts = "".join('<option value="%s">%s</option>' % (_e("%s:%s" % (name, r)), _e(r)) for r in refs)
            groups.append('<optgroup label="%s">%s</optgroup>' % (_e(FRAMEWORK_LABELS.get(name, name)), opts))
    host_opts = "".join('<option value="%s">%s</option>' % (_e(h), _e(h)) for h in model["hosts"])
    return (
        '<form class="filters" id="filters" aria-label="Filter the results">'
        '<fieldset><legend>Status</legend>%s</fieldset>'
        '<label>Role <select id="f-role"><option value="">All roles</option>%s</select></label>'
        '<label>Framework reference <select id="f-fw"><option value="">All references</option>%s</select></label>'
        '<label>Host <select id="f-host"><option value="">All hosts</option>%s</select></label>'
        '<button type="button" id="f-reset">Reset filters</button>'
        '<button type="button" id="f-expand">Expand all</button>'
        '<button type="button" id="f-collapse">Collapse all</button>'
        '<span id="f-count" aria-live="polite"></span>'
        '</form>' % (boxes, role_opts, "".join(groups), host_opts))


def _html_matrix(model):
    columns = _matrix_columns(model)
    head = ['<th class="host" scope="col">Host</th>', '<th scope="col">Verdict</th>']
    for cid in columns:
        meta = _control_meta(model, cid)
        head.append('<th class="ctl" scope="col" data-col="%s" data-role="%s" data-fw="%s" title="%s">'
                    '<a href="#ctl-%s">%s</a></th>'
                    % (_e(cid), _e(meta["role"]), _e(_fw_tokens(meta["frameworks"])),
                       _e(meta["title"]), _e(cid), _e(cid)))
    rows = []
    for host, report in model["hosts"].items():
        info = model["fleet"]["hosts"][host]
        by_id = dict((c["id"], c) for c in report["controls"])
        cells = ['<th class="host" scope="row"><a href="#%s">%s</a>%s</th><td class="verdict-cell">%s</td>'
                 % (_host_anchor(host), _e(host),
                    '<br><span class="flag">UNREACHABLE</span>' if not info["reachable"] else "",
                    _badge(info["verdict"]))]
        for cid in columns:
            meta = _control_meta(model, cid)
            control = by_id.get(cid)
            attrs = 'data-col="%s" data-role="%s" data-fw="%s"' % (
                _e(cid), _e(meta["role"]), _e(_fw_tokens(meta["frameworks"])))
            if control is None:
                cells.append('<td %s><span class="muted" title="does not apply to this host">'
                             'not in scope</span></td>' % attrs)
                continue
            flag = ""
            if control.get("waiver") and control["waiver"].get("expired"):
                flag = '<br><span class="flag" title="waiver expired">EXPIRED</span>'
            cells.append('<td %s data-status="%s" data-cell="%s|%s"><a href="#%s" title="%s: %s">%s</a>%s</td>'
                         % (attrs, _e(control["status"]), _e(host), _e(cid), _anchor(host, cid),
                            _e(cid), _e(STATUS_LABELS[control["status"]]), _badge(control["status"]), flag))
        rows.append('<tr data-host-row="%s">%s</tr>' % (_e(host), "".join(cells)))
    legend = " ".join("%s %s" % (_badge(s), _e(desc)) for s, desc in (
        ("pass", "checked and met"), ("fail", "checked and not met"),
        ("waived", "not met, covered by an active waiver"),
        ("not_applicable", "does not apply to this host's hardware"),
        ("error", "could not be checked (fails closed)")))
    return ('<p class="legend">%s</p><div class="table-wrap"><table class="matrix" id="matrix">'
            '<caption class="muted">Hosts (rows) by controls (columns); select a cell for its evidence.</caption>'
            '<thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>'
            % (legend, "".join(head), "".join(rows)))


def _html_refs(frameworks):
    if not frameworks:
        return '<p class="muted">No framework references (control not in the catalogue).</p>'
    items = "".join("<li>%s: %s</li>" % (_e(FRAMEWORK_LABELS.get(name, name)),
                                        ", ".join("<code>%s</code>" % _e(r) for r in refs))
                    for name, refs in frameworks.items())
    return '<ul class="refs">%s</ul>' % items


def _html_waiver(waiver):
    if not waiver:
        return ""
    expired = waiver.get("expired")
    scope = ", ".join(waiver["hosts"]) if waiver.get("hosts") else "all hosts"
    head = ('<span class="flag">WAIVER EXPIRED</span> This waiver expired on %s and no longer applies: '
            'the result stands.' % _e(waiver["expires"]) if expired else
            '<strong>Waived</strong> until %s (inclusive).' % _e(waiver["expires"]))
    return ('<div class="waiver%s"><h5>Waiver</h5><p>%s</p><dl class="ev"><dt>Original status</dt><dd>%s</dd>'
            '<dt>Approver</dt><dd>%s</dd><dt>Expires</dt><dd>%s</dd><dt>Scope</dt><dd>%s</dd>'
            '<dt>Justification</dt><dd>%s</dd></dl></div>'
            % (" expired" if expired else "", head, _badge(waiver.get("original_status", "fail")),
               _e(waiver["approver"]), _e(waiver["expires"]), _e(scope), _e(waiver["justification"])))


def _html_result(model, host, control):
    meta = _control_meta(model, control["id"], control)
    status = control["status"]
    waiver = control.get("waiver")
    expired_flag = ' <span class="flag">WAIVER EXPIRED</span>' if waiver and waiver.get("expired") else ""
    in_catalogue = control["id"] in model["catalogue"]
    return (
        '<article class="result s-%s" id="%s" data-result="1" data-status="%s" data-role="%s" data-fw="%s" '
        'data-host="%s" data-control="%s">'
        '<header>%s<h4>%s &mdash; %s</h4><span class="sev">severity: %s &middot; role: <code>%s</code>%s</span>%s'
        '<button type="button" class="toggle" aria-expanded="true" hidden>Hide details</button></header>'
        '<div class="body"><div class="col-ev">'
        '<h5>Evidence</h5>%s'
        '%s</div><div class="col-refs">'
        '<h5>Framework references</h5>%s'
        '</div></div></article>'
        % (_e(status), _anchor(host, control["id"]), _e(status), _e(meta["role"]),
           _e(_fw_tokens(control.get("frameworks") or {})), _e(host), _e(control["id"]),
           _badge(status), _e(control["id"]), _e(meta["title"]), _e(meta.get("severity") or "n/a"),
           _e(meta["role"]),
           ' &middot; <a href="#ctl-%s">why and how it is enforced</a>' % _e(control["id"]) if in_catalogue else "",
           expired_flag, render_value(control["evidence"]), _html_waiver(waiver),
           _html_refs(control.get("frameworks"))))


def _html_details(model):
    out = []
    for host, report in model["hosts"].items():
        info = model["fleet"]["hosts"][host]
        counts = ", ".join("%d %s" % (info["counts"][s], STATUS_LABELS[s].lower()) for s in STATUSES)
        problems = ""
        if info["problems"]:
            problems = '<div class="alert"><ul class="hostlist">%s</ul></div>' % "".join(
                "<li>%s</li>" % _e(p) for p in info["problems"])
        out.append('<section class="host" id="%s"><h3>Host %s %s%s</h3><p class="muted">%s</p>%s%s</section>'
                   % (_host_anchor(host), _e(host), _badge(info["verdict"]),
                      ' <span class="flag">UNREACHABLE</span>' if not info["reachable"] else "",
                      _e(counts), problems,
                      "".join(_html_result(model, host, c) for c in report["controls"])))
    return "\n".join(out)


def _html_catalogue(model):
    """One entry per control: why it exists, what enforces it, what verifies it, references."""
    out = []
    for cid, entry in model["catalogue"].items():
        out.append(
            '<article class="ctl-entry" id="ctl-%s" data-col="%s" data-role="%s" data-fw="%s">'
            '<h4>%s &mdash; %s</h4><p class="sev">severity: %s &middot; role: <code>%s</code> &middot; '
            'applies to: %s</p><p>%s</p>'
            '<dl class="ev"><dt>Enforced by</dt><dd><ul class="ev-list">%s</ul></dd>'
            '<dt>Verified by</dt><dd><code>%s</code></dd><dt>References</dt><dd>%s</dd></dl></article>'
            % (_e(cid), _e(cid), _e(entry["role"]), _e(_fw_tokens(entry["frameworks"])), _e(cid),
               _e(entry["title"]), _e(entry["severity"]), _e(entry["role"]),
               _e(", ".join(entry["applies_to"])), _e(entry["rationale"]),
               "".join("<li><code>%s</code></li>" % _e(t) for t in entry["enforced_by"]),
               _e(entry["verified_by"]), _html_refs(entry["frameworks"])))
    return "\n".join(out)


def render_html(model):
    """The self-contained report page: summary, matrix, evidence, catalogue."""
    fleet = model["fleet"]
    title = "Air-gap compliance report %s" % model["generated_at"]
    csp = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return u"".join([
        u'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        u'<meta http-equiv="Content-Security-Policy" content="%s">' % _e(csp),
        u'<meta name="viewport" content="width=device-width, initial-scale=1">',
        u'<meta name="generator" content="%s %s">' % (_e(TOOL_NAME), _e(TOOL_VERSION)),
        u'<title>%s</title><style>%s</style></head><body>' % (_e(title), _CSS),
        u'<header><h1>Air-gap compliance report</h1>',
        u'<p class="meta">Generated %s (UTC) by %s %s &middot; waivers evaluated on %s &middot; '
        u'controls catalogue sha256 <code>%s</code></p></header>'
        % (_e(model["generated_at"]), _e(TOOL_NAME), _e(TOOL_VERSION), _e(fleet["waivers_evaluated_on"]),
           _e(fleet["catalogue"]["sha256"] or "unknown")),
        u'<p class="print-only muted">Printed copy: every result is shown in full, whatever filters were set '
        u'on screen. The signed machine-readable files (fleet.json, hosts/*.json, SHA256SUMS) are authoritative.</p>',
        u'<main><h2 id="summary">Summary</h2>', _html_summary(model),
        _html_filters(model),
        u'<h2 id="matrix-title">Hosts and controls</h2>', _html_matrix(model),
        u'<h2 id="details">Evidence per host and control</h2>', _html_details(model),
        u'<h2 id="catalogue">Controls catalogue</h2>'
        u'<p class="muted">Why each control exists, the tasks that enforce it (search the roles for the '
        u'control id) and the verify file that produces its evidence.</p>', _html_catalogue(model),
        u'</main><footer class="meta"><p>Verify this report: <code>cd reports/latest &amp;&amp; '
        u'sha256sum -c SHA256SUMS</code> (see docs/auditor-guide.md).</p></footer>',
        u'<script>%s</script></body></html>\n' % _JS,
    ])


# --------------------------------------------------------------------------
# Files: writing, checksums, signatures, the latest link
# --------------------------------------------------------------------------

def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_sums(report_dir, relpaths):
    """Write SHA256SUMS in ``sha256sum`` format (two spaces, relative paths)."""
    lines = ["%s  %s\n" % (sha256_file(os.path.join(report_dir, rel)), rel) for rel in sorted(relpaths)]
    path = os.path.join(report_dir, SUMS_NAME)
    _write(path, "".join(lines))
    return path


def validate_signing(signing):
    """Normalise the signing option; None means unsigned."""
    if signing is None:
        return None
    if not isinstance(signing, dict):
        raise ReportError("signing must be a mapping with method (ssh|gpg) and key")
    unknown = sorted(set(signing) - {"method", "key", "namespace", "homedir"})
    if unknown:
        raise ReportError("signing.%s: unknown option (allowed: method, key, namespace, homedir)" % unknown[0])
    method = signing.get("method")
    if method not in SIGNING_METHODS:
        raise ReportError("signing.method: %r is not one of %s" % (method, ", ".join(SIGNING_METHODS)))
    key = signing.get("key")
    if method == "ssh":
        if not key or not isinstance(key, str):
            raise ReportError("signing.key: an ssh signature needs the path of the private key")
        if not os.path.isfile(key):
            raise ReportError("signing.key: ssh private key %r does not exist" % key)
    return {"method": method, "key": key, "namespace": signing.get("namespace") or SSH_NAMESPACE,
            "homedir": signing.get("homedir")}


def sign_sums(sums_path, signing):
    """Sign SHA256SUMS; return the signature's path."""
    if signing["method"] == "ssh":
        cmd = ["ssh-keygen", "-q", "-Y", "sign", "-f", signing["key"], "-n", signing["namespace"], sums_path]
        sig = sums_path + ".sig"
    else:
        sig = sums_path + ".asc"
        cmd = ["gpg", "--batch", "--yes", "--armor", "--detach-sign", "--output", sig]
        if signing.get("homedir"):
            cmd[1:1] = ["--homedir", signing["homedir"]]
        if signing.get("key"):
            cmd += ["--local-user", signing["key"]]
        cmd.append(sums_path)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReportError("signing with %s failed: %s" % (signing["method"], exc))
    if proc.returncode != 0 or not os.path.isfile(sig):
        raise ReportError("signing with %s failed (exit %d): %s" % (
            signing["method"], proc.returncode, proc.stderr.decode("utf-8", "replace").strip()))
    return sig


def newest_report(output_root):
    """Name of the newest report folder under ``output_root`` (or None)."""
    names = [n for n in os.listdir(output_root)
             if TIMESTAMP_RE.match(n) and os.path.isdir(os.path.join(output_root, n))
             and not os.path.islink(os.path.join(output_root, n))]
    return max(names) if names else None


def update_latest(output_root, name="latest"):
    """Point ``output_root/latest`` at the newest report, atomically (relative link)."""
    newest = newest_report(output_root)
    if newest is None:
        return None
    link = os.path.join(output_root, name)
    if os.path.exists(link) and not os.path.islink(link):
        raise ReportError("%s exists and is not a symlink; move it away so it can point at the newest report"
                          % link)
    tmp = os.path.join(output_root, ".%s.tmp-%d" % (name, os.getpid()))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(newest, tmp)
    os.replace(tmp, link)  # rename(2) replaces the old link in one step: readers never see none
    return link


def write_report(output_root, hosts, catalogue_dir, unreachable=(), waivers=(), timestamp=None,
                 signing=None, today=None, host_groups=None, default_groups=("gpu_nodes",),
                 update_latest_link=True):
    """Build and write one report under ``output_root/<timestamp>/``.

    Everything is written into a hidden temporary folder first and renamed
    into place at the end, so a failed run leaves no half report and
    ``latest`` never points at one. Returns a dict with the paths, the
    verdict and the counts.
    """
    catalogue = load_catalogue(catalogue_dir)
    digest = catalogue_digest(catalogue_dir)
    waivers = validate_waivers(list(waivers or []), catalogue)
    signing = validate_signing(signing)
    timestamp = timestamp or _default_timestamp()
    model = build_report(hosts, catalogue, unreachable=unreachable, waivers=waivers, today=today,
                         timestamp=timestamp, host_groups=host_groups, default_groups=default_groups,
                         catalogue_info=digest)
    os.makedirs(output_root, exist_ok=True)
    final_dir = os.path.join(output_root, timestamp)
    if os.path.lexists(final_dir):
        raise ReportError("report folder %s already exists; reports are never overwritten" % final_dir)
    tmp_dir = tempfile.mkdtemp(prefix=".%s.tmp-" % timestamp, dir=output_root)
    try:
        os.chmod(tmp_dir, 0o755)
        os.mkdir(os.path.join(tmp_dir, "hosts"))
        written = []
        for host, report in model["hosts"].items():
            rel = "hosts/%s.json" % host
            _write(os.path.join(tmp_dir, rel), to_json(report))
            written.append(rel)
        for rel, text in (("fleet.json", to_json(model["fleet"])),
                          ("junit.xml", render_junit(model)),
                          ("index.html", render_html(model))):
            _write(os.path.join(tmp_dir, rel), text)
            written.append(rel)
        sums = write_sums(tmp_dir, written)
        signature = sign_sums(sums, signing) if signing else None
        os.rename(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    latest = update_latest(output_root) if update_latest_link else None
    fleet = model["fleet"]

    def final(name):
        return os.path.join(final_dir, name)

    return {
        "changed": True,
        "report_dir": final_dir,
        "index": final("index.html"),
        "fleet": final("fleet.json"),
        "junit": final("junit.xml"),
        "sums": final(SUMS_NAME),
        "signature": final(os.path.basename(signature)) if signature else None,
        "host_files": dict((h, final("hosts/%s.json" % h)) for h in model["hosts"]),
        "latest": latest,
        "generated_at": model["generated_at"],
        "verdict": fleet["verdict"],
        "counts": fleet["counts"],
        "hosts_failing": fleet["hosts_failing"],
        "expired_waivers": fleet["expired_waivers"],
        "problems": fleet["problems"],
    }
