# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site plan (module_utils/airgap_plan.py) and the weights validator (filter_plugins/model_weights_filters.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from ansible.module_utils import airgap_plan as p
from model_weights_filters import model_weights_errors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")

DEMO = {"name": "demo-model", "manifest": "models/demo-model/SHA256SUMS", "dest": "/srv/models/demo-model",
        "port": 8000, "gpus": "none"}


def _cfg(**over):
    cfg = {"airgap_models": [dict(DEMO)], "airgap_mirror_url": "http://mirror.lab.internal",
           "airgap_mirror_addresses": ["10.89.0.10", "fd00:89::10"],
           "vllm_server_inference_networks": ["10.89.0.0/24", "fd00:89::/64"],
           "vllm_server_bind_address": "10.89.0.21"}
    cfg.update(over)
    return cfg


SETTINGS = {"airgap_mirror_url": "http://mirror.lab.internal", "model_weights_verify": "cache",
            "model_weights_workers": 2, "model_weights_timeout": 60, "model_weights_remove_extras": False,
            "model_weights_validate_certs": True, "model_weights_owner": "root", "model_weights_group": "root",
            "model_weights_mode": "0644", "model_weights_checker_path": p.CHECKER_PATH,
            "model_weights_python": p.PYTHON, "model_weights_ca_path": ""}


# ---------------------------------------------------------------- one model, everything derived

def test_one_model_entry_derives_every_roles_input():
    plan = p.plan(_cfg())
    assert plan["errors"] == []
    assert plan["weights_models"] == [{"name": "demo-model", "manifest": "models/demo-model/SHA256SUMS",
                                       "dest": "/srv/models/demo-model"}]
    assert plan["server_models"] == [{"name": "demo-model", "port": 8000, "gpus": "none"}]
    assert plan["serving_units"] == ["vllm-demo-model.service"]
    assert plan["firewall_ingress"] == [
        {"name": "vllm-demo-model-0", "src": "10.89.0.0/24", "proto": "tcp", "ports": [8000]},
        {"name": "vllm-demo-model-1", "src": "fd00:89::/64", "proto": "tcp", "ports": [8000]}]
    assert {"name": "vllm-backend", "dest": "10.213.0.0/24", "proto": "tcp", "ports": [8000]} in plan["firewall_egress"]
    assert {"name": "vllm-front-demo-model", "proto": "tcp", "address": "10.89.0.21", "port": 8000,
            "process": "nginx"} in plan["listeners"]
    assert {"name": "vllm-network-dns-udp", "proto": "udp", "address": "10.213.0.1", "port": 53,
            "process": "aardvark-dns"} in plan["listeners"]
    check = plan["weights_by_name"]["demo-model"]
    assert check["check_argv"] == [p.PYTHON, p.CHECKER_PATH, "check", "--dest", "/srv/models/demo-model"]
    assert check["manifest_url"] == "http://mirror.lab.internal/models/demo-model/SHA256SUMS"


def test_the_mirror_is_declared_once_and_feeds_egress_and_the_positive_control():
    plan = p.plan(_cfg(airgap_mirror_url="https://mirror.example:8443/base"))
    mirror = [e for e in plan["firewall_egress"] if e["name"].startswith("mirror-")]
    assert mirror == [{"name": "mirror-0", "dest": "10.89.0.10/32", "proto": "tcp", "ports": [8443]},
                      {"name": "mirror-1", "dest": "fd00:89::10/128", "proto": "tcp", "ports": [8443]}]
    assert plan["positive_control"] == {"name": "mirror", "dest": "10.89.0.10", "proto": "tcp", "port": 8443}


def test_inference_networks_and_bind_address_come_from_the_inference_vlan_when_not_given():
    vlans = [{"id": 10, "name": "mgmt", "parent": "eth0", "purpose": "management", "addresses": ["10.10.0.21/24"]},
             {"id": 20, "name": "infer", "parent": "eth0", "purpose": "inference",
              "addresses": ["10.20.0.21/24", "fd00:20::21/64"]}]
    plan = p.plan(_cfg(vllm_server_inference_networks=[], vllm_server_bind_address="", network_vlan_interfaces=vlans))
    assert plan["inference_networks"] == ["10.20.0.0/24", "fd00:20::/64"]
    assert plan["bind_address"] == "10.20.0.21"


def test_a_model_can_narrow_the_networks_it_serves():
    model = dict(DEMO, networks=["10.89.0.128/25"])
    plan = p.plan(_cfg(airgap_models=[model]))
    assert [e["src"] for e in plan["firewall_ingress"]] == ["10.89.0.128/25"]
    assert "networks" not in plan["server_models"][0] and "networks" not in plan["weights_models"][0]


def test_weights_only_entries_are_added_with_their_own_labels():
    extra = {"name": "staged", "manifest": "models/staged/SHA256SUMS", "dest": "/srv/models/staged"}
    plan = p.plan(_cfg(model_weights_models_extra=[extra]))
    assert [m["name"] for m in plan["weights_models"]] == ["demo-model", "staged"]
    assert plan["weights_labels"] == ["airgap_models[0]", "model_weights_models_extra[0]"]
    assert [m["name"] for m in plan["server_models"]] == ["demo-model"]


def test_no_models_means_no_model_entries_anywhere():
    plan = p.plan(_cfg(airgap_models=[]))
    assert plan["server_models"] == [] and plan["serving_units"] == [] and plan["firewall_ingress"] == []
    assert [e["name"] for e in plan["firewall_egress"]] == ["mirror-0", "mirror-1"]
    assert plan["listeners"] == []


def test_unit_and_container_names_are_made_in_one_place():
    from ansible.module_utils import airgap_vllm
    assert airgap_vllm.unit_name is p.unit_name and airgap_vllm.container_name is p.container_name


# ---------------------------------------------------------------- refused, naming the variable and value

@pytest.mark.parametrize("over, says", [
    ({"model_weights_models": [{"name": "x"}]}, "model_weights_models is no longer set in the inventory: declare "
                                                 "each model once in airgap_models"),
    ({"vllm_server_models": []}, "vllm_server_models is no longer set in the inventory"),
    ({"airgap_models": "demo-model"}, "airgap_models must be a list"),
    ({"airgap_models": [dict(DEMO), dict(DEMO, dest="/srv/models/b", port=8001)]},
     "airgap_models[1] 'demo-model': name 'demo-model' is already used by airgap_models[0]"),
    ({"airgap_models": [dict(DEMO), dict(DEMO, name="b", dest="/srv/models/b")]},
     "airgap_models[1] 'b': port 8000 is already used by airgap_models[0]"),
    ({"airgap_models": [dict(DEMO, port=True)]}, "airgap_models[0] 'demo-model': port True must be a TCP port"),
    ({"airgap_models": [dict(DEMO, port="8\u0668")]}, "must be a TCP port"),
    ({"airgap_models": [dict(DEMO, port=70000)]}, "port 70000 must be a TCP port"),
    ({"airgap_models": [{"name": "a"}]}, "airgap_models[0] 'a': manifest and dest and port are required"),
    ({"airgap_models": [dict(DEMO, colour="red")]}, "unknown key(s) colour"),
    ({"airgap_models": [dict(DEMO, name="Demo\u200bModel")]}, "name 'Demo\\u200bModel' must be 1-63"),
    ({"airgap_models": [dict(DEMO, networks=["0.0.0.0/0"])]}, "networks[0] '0.0.0.0/0' would admit every address"),
    ({"airgap_models": [dict(DEMO, networks=["::/0"])]}, "networks[0] '::/0' would admit every address"),
    ({"airgap_models": [dict(DEMO, networks=["10.89.0.5/24"])]}, "is not a network in CIDR notation with the host "
                                                                   "bits zero"),
    ({"airgap_models": [dict(DEMO, networks=[])]}, "networks [] must be a non-empty list"),
    ({"airgap_mirror_url": "ftp://mirror"}, "airgap_mirror_url: 'ftp://mirror' must be an http:// or https:// URL"),
    ({"airgap_mirror_url": "http://user:pw@mirror"}, "airgap_mirror_url: 'http://user:pw@mirror'"),
    ({"airgap_mirror_url": None}, "airgap_mirror_url is not defined"),
    ({"airgap_mirror_url": "http://mirror.lab.internal\n"}, "airgap_mirror_url: 'http://mirror.lab.internal\\n'"),
    ({"airgap_mirror_url": " http://mirror.lab.internal"}, "airgap_mirror_url: ' http://mirror.lab.internal'"),
    ({"airgap_mirror_url": "http://mirror:99999"}, "airgap_mirror_url: 'http://mirror:99999'"),
    ({"airgap_mirror_addresses": ["10.89.0.0/24"]}, "airgap_mirror_addresses[0]: '10.89.0.0/24' is not an IP address"),
    ({"airgap_mirror_addresses": ["0.0.0.0"]}, "airgap_mirror_addresses[0]: '0.0.0.0' cannot be a mirror's address"),
    ({"airgap_mirror_addresses": ["::"]}, "airgap_mirror_addresses[0]: '::' cannot be a mirror's address"),
    ({"airgap_mirror_addresses": "10.89.0.10"}, "airgap_mirror_addresses: '10.89.0.10' must be a list"),
    ({"vllm_server_network_subnet": "10.213.0.0/30"}, "vllm_server_network_subnet: '10.213.0.0/30' must be an IPv4"),
    ({"vllm_server_network_subnet": "fd00::/64"}, "vllm_server_network_subnet: 'fd00::/64'"),
    ({"vllm_server_container_port": 0}, "vllm_server_container_port: 0 must be a TCP port"),
])
def test_bad_declarations_are_refused_naming_the_variable_and_value(over, says):
    plan = p.plan(_cfg(**over))
    assert any(says in e for e in plan["errors"]), plan["errors"]
    assert set(plan) == {"errors"}


# Anything that parses as a network of prefix 0, in any notation, opens every address.
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["0.0.0.0/0", "::/0", " 0.0.0.0/0", "0.0.0.0/0 ", "::0/0", "0:0::0/0", "0000::/0"]))
def test_a_model_network_that_admits_everything_is_refused_in_any_notation(net):
    plan = p.plan(_cfg(airgap_models=[dict(DEMO, networks=[net])]))
    assert plan["errors"] and "would admit every address" in plan["errors"][0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "name": st.one_of(st.sampled_from(["a", "b", "demo", "Bad Name", "", "x" * 70]), st.text(max_size=5)),
    "manifest": st.just("models/x/SHA256SUMS"),
    "dest": st.sampled_from(["/srv/models/a", "/srv/models/b", "/srv/models/c"]),
    "port": st.one_of(st.integers(-5, 70000), st.text(max_size=6), st.booleans()),
}), max_size=4))
def test_any_declaration_is_either_a_sound_plan_or_refused(models):
    """No input yields a plan with a clashing port or name, an out-of-range port or a name off the pattern."""
    plan = p.plan(_cfg(airgap_models=models))
    if plan["errors"]:
        return
    ports = [m["port"] for m in plan["server_models"]]
    names = [m["name"] for m in plan["server_models"]]
    assert len(set(ports)) == len(ports) and len(set(names)) == len(names)
    assert all(isinstance(x, int) and 1 <= x <= 65535 for x in ports)
    assert all(p.NAME_RE.match(n) for n in names)
    for entry in plan["firewall_ingress"]:
        assert ipaddress.ip_network(entry["src"]).prefixlen > 0


# ---------------------------------------------------------------- model_weights' validator (was 124 lines of Jinja)

@pytest.mark.parametrize("model, says", [
    ({"name": "a", "manifest": "models/../../etc/SHA256SUMS", "dest": "/srv/models/a"},
     "manifest 'models/../../etc/SHA256SUMS' must not contain a '..' or '.' component"),
    ({"name": "a", "manifest": "/etc/SHA256SUMS", "dest": "/srv/models/a"}, "must be relative to airgap_mirror_url"),
    ({"name": "a", "manifest": "models/a/SHA256SUMS", "dest": "srv/models/a"}, "dest 'srv/models/a' must be an absolute"),
    ({"name": "a", "manifest": "models/a/SHA256SUMS", "dest": "/srv/models/../../etc"}, "must be a normalised"),
    ({"name": "a", "manifest": "models/a/SHA256SUMS", "dest": "/etc/models"}, "inside the system folder /etc"),
    ({"name": "a", "manifest": "models/a/SHA256SUMS", "dest": "/srv"}, "top-level or system folder"),
    ({"name": "a", "manifest": "models/a/SHA256SUMS", "dest": "/srv/models/a b"}, "must be a normalised"),
    ({"name": "a", "manifest": "models/a/SHA256SUMS", "dest": "/srv/models/a", "manifest_sha256": "xyz"},
     "manifest_sha256 'xyz' must be the manifest's sha256"),
])
def test_weights_entries_that_could_lead_outside_their_folder_are_refused(model, says):
    errors = model_weights_errors([model], SETTINGS, ["airgap_models[0]"])
    assert any(e.startswith("airgap_models[0] 'a': ") and says in e for e in errors), errors


def test_nested_and_duplicate_weights_name_where_each_was_declared():
    models = [{"name": "a", "manifest": "m/a", "dest": "/srv/models/a"},
              {"name": "a", "manifest": "m/b", "dest": "/srv/models/a/inner"}]
    errors = model_weights_errors(models, SETTINGS, ["airgap_models[0]", "model_weights_models_extra[0]"])
    assert "model_weights_models_extra[0] 'a': name 'a' is already used by airgap_models[0]; names must be unique" \
        in errors
    assert any("overlaps airgap_models[0] dest '/srv/models/a'" in e for e in errors)


@pytest.mark.parametrize("key, value, says", [
    ("model_weights_mode", "0666", "must let others read (o+r) and nobody but the owner write"),
    ("model_weights_mode", "4755", "must be a quoted octal mode"),
    ("model_weights_workers", True, "model_weights_workers: 'True' must be a whole number"),
    ("model_weights_workers", "\u0662", "must be a whole number from 1 to 64"),
    ("model_weights_timeout", 0, "must be a whole number of seconds"),
    ("model_weights_verify", "none", "must be cache or full"),
    ("model_weights_owner", "root\n", "is not a user or group name"),
    ("model_weights_remove_extras", "yes", "must be true or false"),
    ("airgap_mirror_url", "http://mirror/?x=1", "must be an http:// or https:// URL"),
])
def test_weights_settings_are_refused_naming_the_variable(key, value, says):
    errors = model_weights_errors([dict(name="a", manifest="m/a", dest="/srv/models/a")], dict(SETTINGS, **{key: value}))
    assert any(e.startswith(key) and says in e for e in errors), errors


def test_the_lab_declares_each_model_once():
    with open(os.path.join(ROOT, "inventories", "lab", "group_vars", "gpu_nodes.yml")) as handle:
        lab = yaml.safe_load(handle)
    assert "airgap_models" in lab
    for old in ("model_weights_models", "vllm_server_models", "host_hardening_extra_listeners",
                "isolation_monitor_positive_control"):
        assert old not in lab, old


def test_weights_sync_shares_one_set_of_arguments_built_in_python():
    from model_weights_filters import model_weights_sync_defaults
    assert model_weights_sync_defaults(dict(SETTINGS, model_weights_workers="4")) == {
        "base_url": "http://mirror.lab.internal", "verify": "cache", "workers": 4, "timeout": 60,
        "validate_certs": True}
    assert model_weights_sync_defaults(dict(SETTINGS, model_weights_ca_path="/etc/ssl/ca.pem"))["ca_path"] == \
        "/etc/ssl/ca.pem"
