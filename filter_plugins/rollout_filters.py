# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged rollout of site.yml: validation and planning of ``airgap_rollout_batch``.

``airgap_rollout_batch`` sets the batches of the converge play (its
``serial``): a count of hosts (``1``), a percentage of the fleet (``"25%"``),
or a list of those for a canary-then-ramp rollout (``[1, "25%", "100%"]``;
the last entry repeats until every host is done, as Ansible's ``serial``
does). Every value is judged before any host is touched. Only ASCII digits
count: Python's ``int()`` also reads ``"1_0"``, ``" 1 "`` and non-ASCII
digits such as ``"١"``, which would turn a typo into a batch size.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

VAR = "airgap_rollout_batch"
DEFAULT = "100%"
_COUNT_RE = re.compile(r"\A[1-9][0-9]{0,5}\Z")
_PERCENT_RE = re.compile(r"\A([1-9][0-9]{0,2})%\Z")
MAX_ENTRIES = 100
# The same bound as the string form (six digits), so that 10**100 and "1000000" are judged alike.
MAX_COUNT = 999999


def _entry_error(value, where):
    """The error for one batch entry, or None when it is valid."""
    if isinstance(value, bool) or value is None:
        return "%s must be a count of hosts (1 or more) or a percentage (1%% to 100%%), got %r" % (where, value)
    if isinstance(value, int):
        if value < 1:
            return "%s must be at least 1 host, got %r: a batch of %r hosts would roll out nothing" % (
                where, value, value)
        if value > MAX_COUNT:
            return "%s must be at most %d hosts, got %r" % (where, MAX_COUNT, value)
        return None
    if not isinstance(value, str):
        return "%s must be a count of hosts or a percentage such as '25%%', got %s %r" % (
            where, type(value).__name__, value)
    if _COUNT_RE.match(value):
        return None
    signed = re.match(r"\A(-?)([0-9]+)(%?)\Z", value)
    if signed and (signed.group(1) or int(signed.group(2)) == 0):
        return "%s must be at least 1%s, got %r: a batch of no hosts would roll out nothing" % (
            where, "%" if signed.group(3) else " host", value)
    match = _PERCENT_RE.match(value)
    if match:
        if int(match.group(1)) > 100:
            return "%s must be at most 100%%, got %r" % (where, value)
        return None
    return ("%s must be a count of hosts (ASCII digits, 1 or more) or a percentage from 1%% to 100%% "
            "(such as '25%%'), got %r" % (where, value))


def airgap_rollout_errors(value, var=VAR):
    """Errors in an ``airgap_rollout_batch`` value (empty list when valid)."""
    if isinstance(value, (list, tuple)):
        if not value:
            return ["%s must not be an empty list" % var]
        if len(value) > MAX_ENTRIES:
            return ["%s has %d entries, at most %d are allowed" % (var, len(value), MAX_ENTRIES)]
        return [e for e in (_entry_error(v, "%s[%d]" % (var, i)) for i, v in enumerate(value)) if e]
    error = _entry_error(value, var)
    return [error] if error else []


def _size(entry, total):
    """Hosts in one batch for a valid entry, exactly as Ansible's serial computes it.

    This is ``ansible.utils.helpers.pct_to_int``'s float formula, not exact
    arithmetic: 58% of 50 hosts is ``int(0.58 * 50) == 28`` there, and the
    plan printed to the operator must be the batches Ansible will really run.
    """
    if isinstance(entry, str) and entry.endswith("%"):
        return int((int(entry[:-1]) / 100.0) * total) or 1
    return int(entry)


def _value_of(per_host, host, from_hostvars):
    """The host's setting (None: not set)."""
    if host not in per_host:
        return None
    if from_hostvars:
        host_vars = per_host[host]
        return host_vars[VAR] if VAR in host_vars else None
    return per_host[host]


def airgap_rollout_plan(hosts, per_host=None, from_hostvars=False):
    """Plan the rollout: ``{"serial", "batches", "errors"}``.

    ``hosts`` are the play's hosts in inventory order; ``per_host`` maps each
    host to its ``airgap_rollout_batch`` (None or absent: not set, which means
    all at once), or, with ``from_hostvars``, is Ansible's ``hostvars``. ``serial`` is one setting for the whole play, so hosts whose
    inventory disagrees are refused, not silently overruled by the first one.
    """
    hosts = list(hosts or [])
    per_host = per_host or {}
    errors = []
    values = [(host, _value_of(per_host, host, from_hostvars)) for host in hosts]
    distinct = {}
    for host, value in values:
        distinct.setdefault(repr(value), []).append(host)
    if len(distinct) > 1:
        errors.append("%s differs between hosts (%s): it sets the batches of the whole play, so give it once, "
                      "in group_vars of all or with -e" % (
                          VAR, "; ".join("%s on %s" % ("not set" if v == "None" else v, ", ".join(h))
                                         for v, h in distinct.items())))
    value = values[0][1] if values else None
    if value is None:
        value = DEFAULT
    errors += airgap_rollout_errors(value)
    if errors:
        return {"serial": None, "batches": [], "errors": errors}
    entries = list(value) if isinstance(value, (list, tuple)) else [value]
    batches, index, step = [], 0, 0
    while index < len(hosts):
        size = _size(entries[min(step, len(entries) - 1)], len(hosts))
        batches.append(hosts[index:index + size])
        index += size
        step += 1
    serial = [e if isinstance(e, int) else (int(e) if _COUNT_RE.match(e) else e) for e in entries]
    return {"serial": serial, "batches": batches, "errors": []}


def _get(host_vars, name, default=None):
    return host_vars[name] if name in host_vars else default


def airgap_rollout_connections(hosts, hostvars):
    """One line per host saying how the controller reaches it, e.g.
    ``gpu-node-1: ssh airgap-admin@10.89.0.21:22, sudo to root``.

    Printed before the rollout so that an operator (and the lab's recap) sees
    which path each host is managed over; a host left on a connection that no
    firewall can cut (podman, local) says so.
    """
    lines = []
    for host in hosts or []:
        hv = hostvars[host]
        connection = str(_get(hv, "ansible_connection", "ssh"))
        address = _get(hv, "ansible_host", host)
        if connection in ("ssh", "paramiko", "smart"):
            user = _get(hv, "ansible_user")
            where = "%s%s:%s" % ("%s@" % user if user else "", address, _get(hv, "ansible_port", 22))
            become = _get(hv, "ansible_become", False)
            become = str(become).lower() in ("true", "yes", "1") if not isinstance(become, bool) else become
            lines.append("%s: %s %s%s" % (host, connection, where, ", sudo to root" if become else ""))
        else:
            lines.append("%s: %s %s (not a network connection: nothing the firewall could cut)" % (
                host, connection, address))
    return lines


class FilterModule(object):
    """Rollout filters."""

    def filters(self):
        return {
            "airgap_rollout_errors": airgap_rollout_errors,
            "airgap_rollout_plan": airgap_rollout_plan,
            "airgap_rollout_connections": airgap_rollout_connections,
        }
