# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for inventories/lab/lab_inventory.py, run as Ansible runs it: a subprocess printing JSON."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import shlex
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "inventories", "lab", "lab_inventory.py")
TOPOLOGY = os.path.join(ROOT, "lab", "topology.yml")


def run_inventory(profile=None, nodes=None, args=("--list",), check=True, connection=None):
    """Run the inventory script with a clean AIRGAP_LAB_* environment; return the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_LAB_")}
    if connection is not None:
        env["AIRGAP_LAB_CONNECTION"] = connection
    if profile is not None:
        env["AIRGAP_LAB_PROFILE"] = profile
    if nodes is not None:
        env["AIRGAP_LAB_NODES"] = str(nodes)
    proc = subprocess.run([sys.executable, SCRIPT] + list(args), env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def inventory(profile=None, nodes=None, connection=None):
    return json.loads(run_inventory(profile, nodes, connection=connection).stdout)


@pytest.fixture(scope="module")
def topology():
    with open(TOPOLOGY, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def expected_networks(topology, profile, roles, number):
    """Independently derive a host's networks from lab/topology.yml."""
    nets = list(topology["profiles"][profile]["networks"].items())
    by_role = {"internal": nets[0], "outside": nets[1]}
    out = []
    for role in roles:
        name, spec = by_role[role]
        out.append({"name": name,
                    "ipv4": str(ipaddress.ip_network(spec["ipv4"]).network_address + number),
                    "ipv6": str(ipaddress.ip_network(spec["ipv6"]).network_address + number)})
    return out


def test_default_lab_profile_has_two_gpu_nodes():
    data = inventory()
    assert data["gpu_nodes"]["hosts"] == ["gpu-node-1", "gpu-node-2"]
    assert data["mirrors"]["hosts"] == ["mirror"]
    assert data["lab_outside"]["hosts"] == ["canary"]
    assert data["lab"]["children"] == ["gpu_nodes", "lab_outside", "mirrors"]
    assert data["all"]["vars"]["lab_profile"] == "lab"
    assert data["all"]["vars"]["lab_profile_known"] is True
    assert data["all"]["vars"]["lab_prefix"] == "airgap-lab-"
    assert data["all"]["vars"]["lab_nodes_requested"] == 2


def test_lab_addresses_as_written_in_design_and_topology():
    hv = inventory()["_meta"]["hostvars"]
    assert hv["mirror"]["lab_networks"] == [
        {"name": "airgap-internal", "ipv4": "10.89.0.10", "ipv6": "fd00:89::a"}]
    assert hv["canary"]["lab_networks"] == [
        {"name": "airgap-outside", "ipv4": "198.18.0.10", "ipv6": "2001:db8:113::a"}]
    assert hv["gpu-node-2"]["lab_networks"] == [
        {"name": "airgap-internal", "ipv4": "10.89.0.22", "ipv6": "fd00:89::16"},
        {"name": "airgap-outside", "ipv4": "198.18.0.22", "ipv6": "2001:db8:113::16"}]


@pytest.mark.parametrize("profile,nodes", [("lab", None), ("lab", 3), ("molecule", None), ("molecule", 2)])
def test_addresses_match_topology(topology, profile, nodes):
    data = inventory(profile, nodes)
    hv = data["_meta"]["hostvars"]
    prefix = topology["profiles"][profile]["prefix"]
    for name, spec in topology["hosts"].items():
        assert hv[name]["lab_networks"] == expected_networks(topology, profile, spec["networks"],
                                                             spec["host_number"])
        assert hv[name]["lab_container"] == prefix + name
        assert name in data[spec["group"]]["hosts"]
    count = nodes if nodes is not None else topology["profiles"][profile]["nodes"]
    gpu = topology["gpu_nodes"]
    assert data["gpu_nodes"]["hosts"] == ["gpu-node-%d" % i for i in range(1, count + 1)]
    for i in range(1, count + 1):
        name = "gpu-node-%d" % i
        assert hv[name]["lab_networks"] == expected_networks(topology, profile, gpu["networks"],
                                                             gpu["first_host_number"] + i - 1)
        assert hv[name]["lab_container"] == prefix + name
    assert data["all"]["vars"]["lab_networks_spec"] == topology["profiles"][profile]["networks"]
    assert data["all"]["vars"]["lab_image"] == topology["image"]


def test_gpu_nodes_are_managed_over_ssh_on_their_management_address():
    data = inventory()
    hv = data["_meta"]["hostvars"]
    folder = os.path.join(ROOT, "build", "lab", "lab", "ssh")
    for name in ("gpu-node-1", "gpu-node-2"):
        v = hv[name]
        assert v["ansible_connection"] == "ssh"
        assert v["ansible_host"] == v["lab_networks"][0]["ipv4"]
        assert v["ansible_user"] == "airgap-admin" and v["ansible_become"] is True
        assert v["ansible_ssh_private_key_file"] == os.path.join(folder, "id_ed25519")
        assert v["ansible_host_key_checking"] is True
        assert "-o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=yes" % folder in v["ansible_ssh_common_args"]
        assert "ControlPersist" in v["ansible_ssh_args"] and v["ansible_ssh_pipelining"] is True
        # Ansible shlex-splits the line: the path must come back whole, spaces or not.
        assert "UserKnownHostsFile=%s" % os.path.join(folder, "known_hosts") in shlex.split(
            v["ansible_ssh_common_args"])
    assert data["all"]["vars"]["lab_connection"] == "ssh"
    assert data["all"]["vars"]["lab_ssh_dir"] == folder


def test_lab_plumbing_hosts_use_the_podman_connection():
    hv = inventory()["_meta"]["hostvars"]
    for name in ("mirror", "canary"):
        assert hv[name]["ansible_connection"] == "airgap_podman"
        assert hv[name]["ansible_host"] == hv[name]["lab_container"]


def test_podman_connection_for_gpu_nodes_on_request_and_unknown_values_flagged():
    data = inventory(connection="podman")
    assert data["_meta"]["hostvars"]["gpu-node-1"]["ansible_connection"] == "airgap_podman"
    assert data["all"]["vars"]["lab_connection_known"] is True
    bad = inventory(connection="telnet")
    assert bad["all"]["vars"]["lab_connection_known"] is False
    assert bad["_meta"]["hostvars"]["gpu-node-1"]["ansible_connection"] == "airgap_podman"


def test_localhost_is_the_controller():
    data = inventory()
    assert data["controller"]["hosts"] == ["localhost"]
    assert "controller" in data["all"]["children"]
    assert data["_meta"]["hostvars"]["localhost"]["ansible_connection"] == "local"
    for group in ("gpu_nodes", "mirrors", "lab_outside"):
        assert "localhost" not in data[group]["hosts"]


def test_controller_addresses_are_each_bridge_gateway():
    data = inventory()
    assert data["all"]["vars"]["lab_controller_addresses"] == {
        "airgap-internal": ["10.89.0.1", "fd00:89::1"],
        "airgap-outside": ["198.18.0.1", "2001:db8:113::1"]}


def test_molecule_profile_has_its_own_names_and_subnets():
    data = inventory("molecule")
    hv = data["_meta"]["hostvars"]
    assert data["gpu_nodes"]["hosts"] == ["gpu-node-1"]
    assert data["all"]["vars"]["lab_prefix"] == "airgap-mol-"
    assert hv["gpu-node-1"]["lab_container"] == "airgap-mol-gpu-node-1"
    assert [n["name"] for n in hv["gpu-node-1"]["lab_networks"]] == ["airgap-mol-internal", "airgap-mol-outside"]
    assert hv["mirror"]["lab_networks"][0]["ipv4"] == "10.189.0.10"
    lab_addrs = {a for h in inventory()["_meta"]["hostvars"].values()
                 for n in h.get("lab_networks", []) for a in (n["ipv4"], n["ipv6"])}
    mol_addrs = {a for h in hv.values() for n in h.get("lab_networks", []) for a in (n["ipv4"], n["ipv6"])}
    assert not lab_addrs & mol_addrs


def test_three_nodes():
    data = inventory(nodes=3)
    assert data["gpu_nodes"]["hosts"] == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
    assert data["_meta"]["hostvars"]["gpu-node-3"]["lab_networks"][0]["ipv4"] == "10.89.0.23"
    assert data["all"]["vars"]["lab_nodes_requested"] == "3"


@pytest.mark.parametrize("nodes", ["0", "-2", "abc"])
def test_bad_node_count_gives_no_gpu_nodes_but_valid_json(nodes):
    data = inventory(nodes=nodes)
    assert data["gpu_nodes"]["hosts"] == []
    assert data["mirrors"]["hosts"] == ["mirror"]
    assert not any(h.startswith("gpu-node-") for h in data["_meta"]["hostvars"])
    # The raw value is kept so that the lab_env role's validation can name it.
    assert data["all"]["vars"]["lab_nodes_requested"] == nodes
    assert data["all"]["vars"]["lab_profile_known"] is True


def test_too_many_nodes_still_gives_json():
    proc = run_inventory(nodes=300, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["all"]["vars"]["lab_nodes_requested"] == "300"


def test_unknown_profile_is_recorded_not_raised(topology):
    data = inventory("prod")
    assert data["all"]["vars"]["lab_profile"] == "prod"
    assert data["all"]["vars"]["lab_profile_known"] is False
    assert data["all"]["vars"]["lab_profiles"] == sorted(topology["profiles"])
    assert data["_meta"]["hostvars"] == {}


def test_host_option_prints_one_hosts_vars():
    proc = run_inventory(args=("--host", "gpu-node-1"))
    hv = json.loads(proc.stdout)
    assert hv["lab_container"] == "airgap-lab-gpu-node-1"
    assert hv["lab_networks"][1] == {"name": "airgap-outside", "ipv4": "198.18.0.21",
                                     "ipv6": "2001:db8:113::15"}
    assert hv == inventory()["_meta"]["hostvars"]["gpu-node-1"]


def test_host_option_honours_the_profile():
    hv = json.loads(run_inventory(profile="molecule", args=("--host", "canary")).stdout)
    assert hv["lab_networks"] == [{"name": "airgap-mol-outside", "ipv4": "198.18.100.10",
                                   "ipv6": "2001:db8:100::a"}]


def test_host_option_unknown_host_is_empty():
    assert json.loads(run_inventory(args=("--host", "no-such-host")).stdout) == {}


def test_ansible_inventory_parses_the_script():
    """ansible-inventory (the real consumer) reads the script and sees the groups."""
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if not os.path.exists(exe):
        pytest.skip("ansible-inventory is not installed next to this interpreter")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_LAB_")}
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    proc = subprocess.run([exe, "-i", SCRIPT, "--list"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["gpu_nodes"]["hosts"] == ["gpu-node-1", "gpu-node-2"]
    assert data["controller"]["hosts"] == ["localhost"]
