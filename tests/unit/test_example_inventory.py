# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""inventories/example runs: its declarations pass the inventory-only checks of
site.yml's first phase, and the site plan derived from them is the reviewed one
(tests/unit/data/example_plan.json). Host lookups (facts, accounts, what the
mirror offers) need the real hosts and are not part of this test."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import yaml

from ansible.module_utils import airgap_plan as p
from ansible.module_utils import airgap_monitor as mon
from firewall_filters import firewall_normalize_egress, firewall_normalize_ingress
from model_weights_filters import model_weights_errors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
EXAMPLE = os.path.join(ROOT, "inventories", "example")
HOSTS = ("gpu-node-01", "gpu-node-02")


def _host_vars(host):
    """The host's variables as Ansible resolves them (ansible-inventory templates nothing, so Jinja stays)."""
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", EXAMPLE,
                          "--host", host], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out)


def _plan(hv):
    keys = ("airgap_models", "airgap_mirror_url", "airgap_mirror_addresses", "model_weights_models_extra",
            "network_vlan_interfaces", "vllm_server_inference_networks", "vllm_server_bind_address",
            "vllm_server_network_subnet", "vllm_server_container_port", "model_weights_models", "vllm_server_models")
    return p.plan(dict((k, hv.get(k)) for k in keys))


def test_the_example_declares_a_complete_hospital_host():
    hv = _host_vars("gpu-node-01")
    assert [v["purpose"] for v in hv["network_vlan_interfaces"]] == ["management", "inference", "storage"]
    assert len(hv["airgap_models"]) == 2 and hv["airgap_mirror_addresses"]
    assert hv["compliance_waivers"] and hv["isolation_monitor_forbidden"]
    for old in ("model_weights_models", "vllm_server_models", "isolation_monitor_positive_control"):
        assert old not in hv, old


def test_the_example_passes_the_inventory_checks_and_derives_the_reviewed_plan():
    with open(os.path.join(HERE, "data", "example_plan.json")) as handle:
        expected = json.load(handle)
    for host in HOSTS:
        hv = _host_vars(host)
        plan = _plan(hv)
        assert plan["errors"] == [], plan["errors"]
        assert plan == expected[host], yaml.safe_dump({host: plan}, sort_keys=True)
        # What the firewall, the weights sync and the monitor will be given passes their own checks.
        firewall_normalize_egress(plan["firewall_egress"] + hv["firewall_egress_allow"])
        firewall_normalize_ingress(plan["firewall_ingress"] + hv["firewall_ingress_allow"])
        settings = {"airgap_mirror_url": hv["airgap_mirror_url"], "model_weights_verify": "cache",
                    "model_weights_workers": 2, "model_weights_timeout": 60, "model_weights_remove_extras": False,
                    "model_weights_validate_certs": True, "model_weights_owner": "root",
                    "model_weights_group": "root", "model_weights_mode": "0644",
                    "model_weights_checker_path": p.CHECKER_PATH, "model_weights_python": p.PYTHON,
                    "model_weights_ca_path": ""}
        assert model_weights_errors(plan["weights_models"], settings, plan["weights_labels"]) == []
        forbidden = hv["firewall_verify_forbidden"]
        assert mon.settings_errors(forbidden, plan["positive_control"], hv["isolation_monitor_interval"], 0.5,
                                   plan["firewall_egress"] + hv["firewall_egress_allow"], None,
                                   plan["serving_units"]) == []
