# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the firewall's declared allowlists into probes for its verify step.

The firewall's verify step proves the allowlist with packets, not by reading
rules back: each allowed TCP destination must be reachable on its ports and
blocked on a port that is not listed; the host's own ports must be closed to
the controller except where the ingress allowlist admits it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import ipaddress
import os
import sys

try:
    from ansible.module_utils.airgap_evidence import make_record, worst_status
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record, worst_status  # noqa: E402

# Ports tried as "surely not allowlisted" (the first not on the entry wins).
_CLOSED_CANDIDATES = (9, 8000, 65001)


def airgap_is_ip(value):
    """True when value is a literal IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(str(value))
        return True
    except ValueError:
        return False


def _single_host(cidr):
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses == 1:
        return str(net.network_address)
    return None


def firewall_allowlist_probes(egress_norm):
    """Probes for NET-EGRESS-ALLOWLIST from normalised egress entries.

    For each TCP entry whose destination is one host: every listed port
    reachable, plus one unlisted port blocked. UDP and ICMP entries and
    whole networks cannot be proven reachable by a probe (a silent UDP service
    looks like a drop; a network has no one address to ask), so they are
    returned under "unprobed" for the evidence to say so.
    """
    probes, unprobed = [], []
    for entry in egress_norm:
        host = _single_host(entry["addr"])
        if entry["proto"] != "tcp" or host is None:
            unprobed.append(entry["name"])
            continue
        for port in entry["ports"]:
            probes.append({"name": "%s tcp/%d allowed" % (entry["name"], port), "dest": host,
                           "proto": "tcp", "port": port, "expect": "reachable"})
        closed = next(p for p in _CLOSED_CANDIDATES + tuple(range(1, 65536)) if p not in entry["ports"])
        probes.append({"name": "%s tcp/%d not allowed" % (entry["name"], closed), "dest": host,
                       "proto": "tcp", "port": closed, "expect": "blocked"})
    return {"probes": probes, "unprobed": unprobed}


def firewall_ingress_probes(address, ingress_norm, controller_address=""):
    """Probes the controller sends to the host for NET-INGRESS-RESTRICT.

    Ports the ingress allowlist admits for the controller are skipped: a probe
    there would be reachable by design. Every probe expects `blocked`; with the
    input chain's drop policy a closed port times out instead of answering
    with a reset, which is itself the evidence.
    """
    if not address:
        return []
    admitted = set()
    for entry in ingress_norm:
        if entry["proto"] != "tcp":
            continue
        src = ipaddress.ip_network(entry["addr"], strict=False)
        if controller_address and airgap_is_ip(controller_address) \
                and ipaddress.ip_address(controller_address) in src:
            admitted.update(entry["ports"])
    return [{"name": "%s tcp/%d from controller" % (address, port), "dest": address,
             "proto": "tcp", "port": port, "expect": "blocked"}
            for port in (22, 8000, 9090) if port not in admitted]


def _probe_summary(result):
    """The part of an egress_probe result an auditor needs, or None when it did not run."""
    if not result or result.get("skipped") or "results" not in result:
        return None
    return {
        "summary": result.get("summary"),
        "unexpected": [{k: r.get(k) for k in ("name", "dest", "proto", "port", "status", "reason", "expect")}
                       for r in result.get("unexpected", [])],
        "probes": [{k: r.get(k) for k in ("name", "dest", "proto", "port", "status", "reason")}
                   for r in result["results"]],
    }


def firewall_evidence(observed):
    """Turn the firewall verify step's observations into three evidence records.

    observed: {forbidden, drift, allowed, ingress: registered task results;
    unprobed: allowlist entries no probe can prove; table: the table's name}.
    A missing observation never passes: no forbidden targets, or no address
    to probe ingress with, gives `error`.
    """
    drift = observed.get("drift") or {}
    if not drift or drift.get("skipped") or "drift" not in drift:
        # Without the drift check nobody looked at the live table: say so.
        why = "the live-table check did not run"
        return [make_record(cid, "firewall", "error", {"result": why, "table": observed.get("table")})
                for cid in ("NET-EGRESS-DENY", "NET-EGRESS-ALLOWLIST", "NET-INGRESS-RESTRICT")]
    table_present = bool(drift.get("table_present"))
    drifted = bool(drift.get("drift"))
    drift_ev = {"table": observed.get("table"), "table_present": table_present, "drift": drifted,
                "compare_method": drift.get("compare_method")}
    if drifted:
        drift_ev["diff"] = drift.get("unified_diff")
    records = []

    deny = _probe_summary(observed.get("forbidden"))
    if deny is None:
        status, why = "error", "firewall_verify_forbidden is empty: no forbidden destination was probed"
    elif not table_present:
        status, why = "fail", "the firewall table is not loaded"
    elif deny["unexpected"]:
        status, why = "fail", "%d forbidden destination(s) reachable or not probeable" % len(deny["unexpected"])
    else:
        status, why = "pass", "every forbidden destination was blocked"
    records.append(make_record("NET-EGRESS-DENY", "firewall", status,
                               {"result": why, "probes": deny, "table": drift_ev}))

    allowed = _probe_summary(observed.get("allowed"))
    problems = []
    if not table_present:
        problems.append("the firewall table is not loaded")
    if drifted:
        problems.append("the live table differs from the declared one (drift)")
    if allowed and allowed["unexpected"]:
        problems.append("%d allowlist probe(s) not as declared" % len(allowed["unexpected"]))
    records.append(make_record(
        "NET-EGRESS-ALLOWLIST", "firewall", "fail" if problems else "pass",
        {"result": "; ".join(problems) or "live table matches the declaration; allowed ports reachable, others blocked",
         "probes": allowed, "unprobed_entries": observed.get("unprobed") or [], "table": drift_ev}))

    ingress = _probe_summary(observed.get("ingress"))
    if ingress is None:
        status, why = "error", "no address to probe the host from the controller (set firewall_verify_ingress_address)"
    elif not table_present or drifted:
        status, why = "fail", "the live table is missing or drifted"
    elif ingress["unexpected"]:
        status, why = "fail", "%d port(s) answered the controller that should be closed" % len(ingress["unexpected"])
    else:
        status, why = "pass", "ports outside the ingress allowlist are closed to the controller"
    records.append(make_record("NET-INGRESS-RESTRICT", "firewall", status,
                               {"result": why, "probes": ingress, "table": drift_ev}))
    return records


# --------------------------------------------------------------------------
# Drift of role-managed files (generic: any role's verify step can use it)
# --------------------------------------------------------------------------

# A diff bigger than this is cut: the evidence must stay readable in the report.
_DIFF_MAX_CHARS = 20000


def _diff_entries(diff):
    """The template module's `diff` as a list (one dict for attributes, a list for content)."""
    if isinstance(diff, dict):
        return [diff]
    if isinstance(diff, list):
        return [d for d in diff if isinstance(d, dict)]
    return []


def _unified(before, after, path):
    """A unified diff from the host's file to the role's rendering, cut to a readable size."""
    text = "".join(difflib.unified_diff(
        before.splitlines(True), after.splitlines(True),
        fromfile="%s (on the host)" % path, tofile="%s (as the role renders it)" % path))
    if len(text) > _DIFF_MAX_CHARS:
        text = text[:_DIFF_MAX_CHARS] + "\n... (diff cut at %d characters)\n" % _DIFF_MAX_CHARS
    return text


def _file_state(result):
    """Classify one check-mode template result: matches, differs, missing or not_checked.

    The task is registered with changed_when: false (so the audit changes
    nothing, also in the recap), which overwrites `changed`; "would change" is
    therefore read from the diff the module returned, which changed_when
    leaves as it was.
    """
    item = result.get("item") or {}
    path = item.get("dest") or result.get("dest") or result.get("path")
    out = {"path": path}
    if result.get("skipped") or "diff" not in result:
        # No diff means nobody compared the file: never a pass.
        out["state"] = "not_checked"
        out["reason"] = result.get("msg") or result.get("skip_reason") or "the check-mode comparison did not run"
        return out
    state = "matches"
    attributes = {}
    for entry in _diff_entries(result["diff"]):
        before, after = entry.get("before"), entry.get("after")
        if isinstance(before, dict) or isinstance(after, dict):
            before, after = before or {}, after or {}
            for key in sorted(set(before) | set(after)):
                if key != "path" and before.get(key) != after.get(key):
                    attributes[key] = {"on_host": before.get(key), "declared": after.get(key)}
            continue
        if entry.get("dst_binary") or entry.get("dst_larger"):
            state = "differs"
            out["diff"] = "the file on the host is binary or too large to show; its content differs"
        elif "before_header" not in entry and not before:
            state = "missing"
        elif (before or "") != (after or ""):
            state = "differs"
            out["diff"] = _unified(before or "", after or "", path)
    if attributes:
        out["attributes"] = attributes
        if state == "matches":
            state = "differs"
    out["state"] = state
    return out


def airgap_managed_file_drift(registered, role):
    """Evidence records from a check-mode render of a role's managed files.

    registered: the result of a looped ``ansible.builtin.template`` task run
    with ``check_mode: true`` and ``diff: true``, whose loop items carry
    ``control`` (the control the file belongs to) and ``dest``. Returns one
    record per control: ``fail`` when a file was hand-edited, removed or has
    other owner/mode than declared (with a unified diff from the host's file
    to the role's rendering), ``error`` when a file could not be compared,
    else ``pass``.
    """
    if isinstance(registered, dict):
        results = registered.get("results", [])
    else:
        results = registered or []
    by_control = {}
    for result in results:
        if not isinstance(result, dict):
            continue
        control = (result.get("item") or {}).get("control")
        if not control:
            raise ValueError("airgap_managed_file_drift: each loop item needs 'control' (the control the file belongs to)")
        by_control.setdefault(control, []).append(_file_state(result))
    records = []
    for control, files in by_control.items():
        drifted = [f["path"] for f in files if f["state"] in ("differs", "missing")]
        unchecked = [f["path"] for f in files if f["state"] == "not_checked"]
        statuses = ["pass"] + (["fail"] if drifted else []) + (["error"] if unchecked else [])
        problems = []
        if drifted:
            problems.append("%d managed file(s) differ from what the role installs (hand-edited, removed or "
                            "other owner/mode): %s" % (len(drifted), ", ".join(drifted)))
        if unchecked:
            problems.append("%d managed file(s) could not be compared: %s" % (len(unchecked), ", ".join(unchecked)))
        records.append(make_record(control, role, worst_status(statuses), {
            "result": "; ".join(problems) or "every managed file matches what the role installs",
            "check": "managed files rendered by the role in check mode and compared with the host's copies",
            "files": files}))
    return records


class FilterModule(object):
    """Firewall verification filters."""

    def filters(self):
        return {
            "airgap_is_ip": airgap_is_ip,
            "firewall_allowlist_probes": firewall_allowlist_probes,
            "firewall_ingress_probes": firewall_ingress_probes,
            "firewall_evidence": firewall_evidence,
            "airgap_managed_file_drift": airgap_managed_file_drift,
        }
