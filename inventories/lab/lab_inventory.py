#!/usr/bin/env python3
"""Dynamic inventory of the podman lab (the embedded default inventory).

Reads lab/topology.yml and prints the hosts, groups and per-host addresses that
lab_up.yml creates. The node count is AIRGAP_LAB_NODES (default from the
profile), the profile AIRGAP_LAB_PROFILE (default "lab").

GPU nodes are managed over SSH, as production hosts are: on their management
(the profile's internal) address, as the unprivileged admin user with sudo,
with the key pair and known_hosts that lab_up.yml generates for this lab
under build/lab/<profile>/ssh/ (host key checking stays on), pipelining and
ControlPersist. AIRGAP_LAB_CONNECTION=podman manages them with `podman exec`
instead (for comparisons only: no firewall can cut that path). The mirror
and the canary are lab plumbing and always use podman. Nothing is checked
here beyond what is needed to print JSON: the lab_env role validates the
topology with clear errors before anything is created, so a bad value such as
AIRGAP_LAB_NODES=0 reaches that validation instead of vanishing in an
inventory-parse warning.
"""
import ipaddress
import json
import os
import shlex
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_NODES = 50  # the same limit as filter_plugins/lab_filters.py
TOPOLOGY = os.environ.get("AIRGAP_LAB_TOPOLOGY", os.path.join(ROOT, "lab", "topology.yml"))
# The account Ansible logs in as on a GPU node: not root, sudo for the rest,
# as operator-guide.md asks of production hosts.
ADMIN_USER = "airgap-admin"
CONNECTIONS = ("ssh", "podman")


def ssh_dir(profile_name):
    """Where lab_up.yml keeps this lab's key pair and known_hosts."""
    return os.path.join(ROOT, "build", "lab", profile_name, "ssh")


def ssh_vars(address, profile_name):
    """Connection variables of a GPU node reached over SSH on `address`."""
    folder = ssh_dir(profile_name)
    return {
        "ansible_connection": "ssh",
        "ansible_host": address,
        "ansible_port": 22,
        "ansible_user": ADMIN_USER,
        "ansible_become": True,
        "ansible_become_method": "sudo",
        "ansible_ssh_private_key_file": os.path.join(folder, "id_ed25519"),
        # A variable, so that it outranks any config that turns checking off:
        # Molecule's generated ansible.cfg does, and ssh then took the first
        # StrictHostKeyChecking it was given ("no") over ours.
        "ansible_host_key_checking": True,
        # Set here, not in ansible.cfg, so that Molecule's generated config gets them too.
        "ansible_ssh_pipelining": True,
        # ServerAlive: a master whose node restarted or cut it off dies within
        # 15 s instead of hanging the next task.
        "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=120s "
                            "-o ServerAliveInterval=5 -o ServerAliveCountMax=3",
        # Quoted: Ansible splits this line with shlex, and a checkout path
        # with a space would otherwise hand ssh half a file name.
        "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes "
                                   "-o IdentitiesOnly=yes -o PasswordAuthentication=no"
                                   % shlex.quote(os.path.join(folder, "known_hosts")),
        "ansible_timeout": 10,
    }


def host_address(subnet, number):
    if not subnet:
        return None
    return str(ipaddress.ip_network(subnet, strict=False)[number])


def build(topology, profile_name, nodes_raw, connection="ssh"):
    profile = topology["profiles"].get(profile_name)
    if profile is None:
        # Let validation report it: an empty lab with the bad name recorded.
        return {"_meta": {"hostvars": {}},
                "all": {"vars": {"lab_profile": profile_name, "lab_profile_known": False,
                                 "lab_profiles": sorted(topology["profiles"])}}}
    prefix = profile["prefix"]
    net_names = list(profile["networks"])
    roles = {"internal": net_names[0] if net_names else None,
             "outside": net_names[1] if len(net_names) > 1 else None}
    try:
        count = int(nodes_raw if nodes_raw not in (None, "") else profile["nodes"])
    except (TypeError, ValueError):
        count = 0
    if count > MAX_NODES:
        # Out of range: no nodes, so the lab_env role's validation names the value.
        count = 0

    def attach(role_names, number):
        nets = []
        for role in role_names:
            name = roles.get(role, role)
            spec = profile["networks"].get(name, {})
            nets.append({"name": name, "ipv4": host_address(spec.get("ipv4"), number),
                         "ipv6": host_address(spec.get("ipv6"), number)})
        return nets

    hostvars = {}
    groups = {"gpu_nodes": [], "mirrors": [], "lab_outside": []}
    for name, spec in topology["hosts"].items():
        hostvars[name] = {"lab_container": prefix + name,
                          "lab_networks": attach(spec["networks"], spec["host_number"])}
        groups[spec["group"]].append(name)
    node_spec = topology["gpu_nodes"]
    for index in range(1, max(count, 0) + 1):
        name = "gpu-node-%d" % index
        hostvars[name] = {"lab_container": prefix + name,
                          "lab_networks": attach(node_spec["networks"],
                                                 node_spec["first_host_number"] + index - 1)}
        groups["gpu_nodes"].append(name)
    for name, vars_ in hostvars.items():
        vars_["ansible_python_interpreter"] = "/usr/bin/python3"
        if name in groups["gpu_nodes"] and connection == "ssh":
            vars_.update(ssh_vars(vars_["lab_networks"][0]["ipv4"], profile_name))
        else:
            vars_.update(ansible_connection="airgap_podman", ansible_host=vars_["lab_container"])
    # The controller itself, explicit so its modules run under the interpreter
    # that runs Ansible (the project's virtualenv), not whatever is first on PATH.
    hostvars["localhost"] = {"ansible_connection": "local",
                             "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    out = {"_meta": {"hostvars": hostvars},
           "controller": {"hosts": ["localhost"]},
           "all": {"children": ["lab", "controller", "ungrouped"],
                   "vars": {"lab_profile": profile_name, "lab_profile_known": True,
                            "lab_connection": connection, "lab_connection_known": connection in CONNECTIONS,
                            "lab_ssh_dir": ssh_dir(profile_name), "lab_admin_user": ADMIN_USER,
                            "lab_prefix": prefix, "lab_image": topology["image"],
                            "lab_networks_spec": profile["networks"],
                            # The machine running Ansible sits on each lab bridge at the
                            # subnet's first address (podman's gateway): it is "the
                            # controller" that firewall rules must keep admitting.
                            "lab_controller_addresses": {
                                name: [host_address(spec.get("ipv4"), 1), host_address(spec.get("ipv6"), 1)]
                                for name, spec in profile["networks"].items()},
                            "lab_nodes_requested": nodes_raw if nodes_raw not in (None, "") else profile["nodes"]}},
           "lab": {"children": sorted(groups)}}
    for group, members in groups.items():
        out[group] = {"hosts": members}
    return out


def main(argv):
    with open(TOPOLOGY, encoding="utf-8") as fh:
        topology = yaml.safe_load(fh)
    data = build(topology, os.environ.get("AIRGAP_LAB_PROFILE", "lab"), os.environ.get("AIRGAP_LAB_NODES"),
                 os.environ.get("AIRGAP_LAB_CONNECTION") or "ssh")
    if len(argv) > 1 and argv[1] == "--host":
        print(json.dumps(data["_meta"]["hostvars"].get(argv[2], {})))
    else:
        print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
