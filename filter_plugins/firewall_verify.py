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

import ipaddress
import os
import sys

try:
    from ansible.module_utils.airgap_evidence import make_record
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record  # noqa: E402

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


class FilterModule(object):
    """Firewall verification filters."""

    def filters(self):
        return {
            "airgap_is_ip": airgap_is_ip,
            "firewall_allowlist_probes": firewall_allowlist_probes,
            "firewall_ingress_probes": firewall_ingress_probes,
            "firewall_evidence": firewall_evidence,
        }
