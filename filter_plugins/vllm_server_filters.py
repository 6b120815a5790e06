# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filters for the vllm_server role.

Thin wrappers around module_utils/airgap_vllm.py, where the logic and its
reasons live. ``cfg`` is the mapping the role builds once in validate.yml
(``__vllm_server_cfg``): its own settings without the ``vllm_server_``
prefix, plus the other roles' variables it checks against
(``model_weights_models``, ``model_weights_by_name``,
``network_vlan_interfaces``, ``firewall_egress_allow``,
``firewall_ingress_allow``) and the host's addresses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.airgap_vllm import (
        VllmConfigError, hardened_evidence, offline_evidence, parse_listeners, plan, podman_run_args,
        render_nginx, render_quadlet, render_unit, validate)
    from ansible.module_utils.airgap_evidence import make_record
except ImportError:  # controller-side plugins do not always see the configured module_utils path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils"))
    from airgap_vllm import (  # noqa: E402
        VllmConfigError, hardened_evidence, offline_evidence, parse_listeners, plan, podman_run_args,
        render_nginx, render_quadlet, render_unit, validate)
    from airgap_evidence import make_record  # noqa: E402

ROLE = "vllm_server"


def vllm_server_errors(cfg):
    """Every problem in the input, as messages naming the variable (empty list when valid)."""
    return validate(cfg)


def vllm_server_plan(cfg):
    """Per-model plan (unit, container, addresses, argv); fails on invalid input."""
    try:
        return plan(cfg)
    except VllmConfigError as exc:
        raise AnsibleFilterError(str(exc))


def vllm_server_unit(entry, cfg, style="systemd"):
    """The unit text for one plan entry: a plain systemd unit or a quadlet .container."""
    if style == "quadlet":
        return render_quadlet(entry, cfg)
    if style == "systemd":
        return render_unit(entry, cfg)
    raise AnsibleFilterError("vllm_server_unit: style %r must be systemd or quadlet" % (style,))


def vllm_server_nginx(entry):
    """The nginx server block in front of one model."""
    return render_nginx(entry)


def vllm_server_run_args(entry, cfg):
    """podman run options of one model (for documentation and tests)."""
    return podman_run_args(entry, cfg)


def vllm_server_records(plan_entries, cfg, facts, probes, listeners_text):
    """VLLM-HARDENED and VLLM-OFFLINE records, one each per model, from the live observations.

    facts: vllm_container_facts' ``containers`` (by container name); probes:
    egress_probe loop results in plan order; listeners_text: `ss -Hltn` output.
    """
    if not plan_entries:
        detail = {"models": [], "detail": "vllm_server_models is empty: no model is served on this host"}
        return [make_record("VLLM-HARDENED", ROLE, "not_applicable", dict(detail)),
                make_record("VLLM-OFFLINE", ROLE, "not_applicable", dict(detail))]
    listeners = parse_listeners(listeners_text)
    records = []
    for index, entry in enumerate(plan_entries):
        fact = (facts or {}).get(entry["container"]) or {}
        status, evidence = hardened_evidence(entry, cfg, fact.get("inspect"), fact.get("proc_status"),
                                             fact.get("running"))
        records.append(make_record("VLLM-HARDENED", ROLE, status, evidence))
        probe = probes[index] if index < len(probes or []) else {}
        status, evidence = offline_evidence(entry, cfg, fact.get("inspect"), probe, listeners,
                                            fact.get("image_digest"))
        evidence["unit"] = entry["unit"]
        evidence["unit_active"] = fact.get("unit_active")
        records.append(make_record("VLLM-OFFLINE", ROLE, status, evidence))
    return records


class FilterModule(object):
    """vllm_server filters."""

    def filters(self):
        return {
            "vllm_server_errors": vllm_server_errors,
            "vllm_server_plan": vllm_server_plan,
            "vllm_server_unit": vllm_server_unit,
            "vllm_server_nginx": vllm_server_nginx,
            "vllm_server_run_args": vllm_server_run_args,
            "vllm_server_records": vllm_server_records,
        }
