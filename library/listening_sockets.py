#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: list the live listening sockets and judge HOST-LISTENERS."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: listening_sockets
short_description: List the host's listening TCP and UDP sockets and judge them against the allowed ones
description:
  - Runs C(ss -H -tulpn) in the host's network namespace and parses every
    listening TCP socket and every unconnected UDP socket, with the address,
    the bound interface, the port and the owning processes.
  - With O(allowed) it judges the control HOST-LISTENERS and returns one
    evidence record (the shape of C(module_utils/airgap_evidence.py)), with
    C(fail) for a socket that no entry allows, and for a socket bound to a
    wildcard address (C(0.0.0.0), C(::), C(*)) whose only matching entries
    name one specific address.
  - With O(recorded_path) it also reads the expected list that the role
    deployed on the host (JSON) and fails the control when it differs from
    O(allowed), so a hand edit of that file shows up.
  - Changes nothing; C(changed) is always false. Runs in check mode.
version_added: "1.0.0"
author:
  - contributors to this project
options:
  allowed:
    description:
      - "Allowed listeners, each C({proto, address, port, process}): C(proto) tcp or udp;
        C(address) an IP address or C(*) for any address; C(port) 1-65535;
        C(process) optional command name as C(ss) shows it (e.g. C(sshd))."
      - Without it the module only lists the sockets.
    type: list
    elements: dict
  recorded_path:
    description: JSON file on the host holding the deployed allowed list, compared with O(allowed).
    type: path
  role:
    description: Role name written into the record.
    type: str
    default: host_hardening
  ss_path:
    description: The C(ss) binary (iproute2).
    type: path
    default: ss
attributes:
  check_mode:
    support: full
notes:
  - Sees the sockets of the network namespace it runs in; containers with
    their own namespace (podman bridge networks) are not listed, but ports
    they publish through a host process (conmon, rootlessport) are.
  - Raw and SCTP sockets are not listed.
"""

EXAMPLES = r"""
- name: HOST-LISTENERS | Judge the live listening sockets
  listening_sockets:
    allowed:
      - {proto: tcp, address: 10.89.0.21, port: 22, process: sshd}
    recorded_path: /etc/airgap/listeners.json
  register: listeners
"""

RETURN = r"""
sockets:
  description: Every listening socket.
  returned: always
  type: list
  elements: dict
  sample:
    - {proto: tcp, address: 0.0.0.0, interface: null, port: 22, wildcard: true,
       processes: [{name: sshd, pid: 124}]}
unparsed:
  description: Lines of C(ss) output that were not understood.
  returned: always
  type: list
  elements: str
record:
  description: The HOST-LISTENERS evidence record (only when O(allowed) is given).
  returned: when allowed is given
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_evidence import make_record
from ansible.module_utils.airgap_host import judge_listeners, parse_ss

CONTROL = "HOST-LISTENERS"


def read_recorded(path):
    """The deployed expectation, or (None, reason) when it cannot be read."""
    if not os.path.exists(path):
        return None, "%s does not exist" % path
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh), None
    except (OSError, ValueError) as exc:
        return None, "%s cannot be read as JSON: %s" % (path, exc)


def normalise(entries):
    """Entries in a comparable form (ports as int, absent process as None)."""
    return sorted(
        (json.dumps({"proto": e.get("proto"), "address": str(e.get("address", "*")),
                     "port": int(e.get("port")), "process": e.get("process") or None}, sort_keys=True)
         for e in entries))


def build_record(module, sockets, unparsed):
    """Judge the sockets and add the recorded file's comparison."""
    allowed = module.params["allowed"]
    verdict = judge_listeners(sockets, allowed)
    evidence = {
        "command": "%s -H -tulpn" % module.params["ss_path"],
        "sockets_total": len(sockets),
        "allowed": allowed,
        "unexpected": verdict["unexpected"],
        "wider_than_declared": verdict["wider_than_declared"],
        "allowed_unused": verdict["allowed_unused"],
        "matched": [m["socket"] for m in verdict["matched"]],
    }
    status = verdict["status"]
    if unparsed:
        evidence["unparsed"] = unparsed
        status = "error" if status == "pass" else status
    path = module.params["recorded_path"]
    if path:
        recorded, problem = read_recorded(path)
        if problem:
            evidence["recorded"] = {"path": path, "matches": False, "problem": problem}
            status = "fail" if status == "pass" else status
        else:
            same = isinstance(recorded, list) and normalise(recorded) == normalise(allowed)
            evidence["recorded"] = {"path": path, "matches": same}
            if not same:
                evidence["recorded"]["problem"] = "the deployed list differs from the declared one"
                evidence["recorded"]["content"] = recorded
                status = "fail" if status == "pass" else status
    return make_record(CONTROL, module.params["role"], status, evidence)


def main():
    """Entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            allowed=dict(type="list", elements="dict"),
            recorded_path=dict(type="path"),
            role=dict(type="str", default="host_hardening"),
            ss_path=dict(type="path", default="ss"),
        ),
        supports_check_mode=True,
    )
    ss = module.get_bin_path(module.params["ss_path"], required=False) or module.params["ss_path"]
    rc, out, err = module.run_command([ss, "-H", "-tulpn"])
    if rc != 0:
        result = {"changed": False, "sockets": [], "unparsed": []}
        if module.params["allowed"] is not None:
            result["record"] = make_record(CONTROL, module.params["role"], "error",
                                           {"command": "%s -H -tulpn" % ss, "rc": rc, "stderr": err.strip()})
            module.exit_json(**result)
        module.fail_json(msg="%s -H -tulpn failed (rc %d): %s" % (ss, rc, err.strip()), **result)
    sockets, unparsed = parse_ss(out)
    result = {"changed": False, "sockets": sockets, "unparsed": unparsed}
    if module.params["allowed"] is not None:
        result["record"] = build_record(module, sockets, unparsed)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
