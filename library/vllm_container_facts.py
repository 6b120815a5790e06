#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: read the live state of the vllm_server containers, secrets redacted."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vllm_container_facts
short_description: Read the live vLLM containers (podman inspect, process capabilities, unit state), secrets redacted
description:
  - For each named container, runs C(podman inspect) and reads C(/proc/<pid>/status) of the container's main
    process, so that C(VLLM-HARDENED) and C(VLLM-OFFLINE) are judged from what runs, not from the template.
  - Environment values are replaced by C(<redacted>) except for the offline and scratch variables the role sets;
    podman 4.3 shows a secret given as an environment variable (C(VLLM_API_KEY)) in plain text in
    C(podman inspect), and this module never returns it.
  - Read-only; returns C(changed=false) and runs in check mode too.
version_added: "1.0.0"
author: contributors to this project
options:
  containers:
    description: Container names to read, for example C(vllm-demo-model).
    type: list
    elements: str
    required: true
  units:
    description: systemd unit per container (same order), whose C(is-active) state is returned.
    type: list
    elements: str
    default: []
  podman:
    description: Path of the podman binary.
    type: path
    default: /usr/bin/podman
attributes:
  check_mode:
    support: full
    details: Reading changes nothing, so check mode reads exactly as a normal run does.
"""

EXAMPLES = r"""
- name: Read the live containers
  vllm_container_facts:
    containers: [vllm-demo-model]
    units: [vllm-demo-model.service]
  register: live

- name: Probe egress from inside the first container's network namespace
  egress_probe:
    netns: "{{ live.containers['vllm-demo-model'].netns }}"
    targets: [{dest: 198.18.0.10, proto: tcp, port: 443}]
    expect: blocked
"""

RETURN = r"""
containers:
  description: Per container name, what was seen.
  returned: always
  type: dict
  contains:
    exists: {description: The container exists., type: bool}
    running: {description: Its state is running., type: bool}
    pid: {description: Host PID of the container's main process (0 when not running)., type: int}
    netns: {description: Path of its network namespace (C(/proc/<pid>/ns/net)), or null., type: str}
    image_digest: {description: Manifest digest of the image it runs., type: str}
    proc_status: {description: Text of C(/proc/<pid>/status) (capabilities, NoNewPrivs, Uid)., type: str}
    unit_active: {description: C(systemctl is-active) of its unit., type: str}
    inspect: {description: C(podman inspect) output with environment values redacted., type: dict}
    error: {description: Why it could not be read, if so., type: str}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

# Values shown in full: the offline switches and cache paths (evidence); every
# other value, the API key included, is redacted.
KEEP_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "VLLM_NO_USAGE_STATS",
            "DO_NOT_TRACK", "HOME", "XDG_CACHE_HOME", "HF_HOME", "VLLM_CACHE_ROOT", "PATH", "container")


def redact(inspect):
    """Return inspect with every environment value outside KEEP_ENV replaced."""
    config = dict(inspect.get("Config") or {})
    env = []
    for item in config.get("Env") or []:
        name, sep, value = str(item).partition("=")
        env.append(name + sep + (value if name in KEEP_ENV else "<redacted>"))
    config["Env"] = env
    out = dict(inspect, Config=config)
    # The create command repeats every flag; it is not evidence and may echo values.
    config.pop("CreateCommand", None)
    return out


def read_one(module, podman, name, unit):
    """Inspect one container and read its process status."""
    fact = {"exists": False, "running": False, "pid": 0, "netns": None, "image_digest": None,
            "proc_status": "", "unit_active": None, "inspect": None}
    if unit:
        _rc, out, _err = module.run_command(["systemctl", "is-active", unit])
        fact["unit_active"] = out.strip() or "unknown"
    rc, out, err = module.run_command([podman, "container", "inspect", name])
    if rc != 0:
        fact["error"] = (err or out).strip()[-500:]
        return fact
    try:
        data = json.loads(out)[0]
    except (ValueError, IndexError) as exc:
        fact["error"] = "podman inspect returned no JSON: %s" % exc
        return fact
    state = data.get("State") or {}
    fact.update(exists=True, running=state.get("Status") == "running", pid=int(state.get("Pid") or 0),
                image_digest=data.get("ImageDigest"), inspect=redact(data))
    if fact["running"] and fact["pid"] > 0:
        fact["netns"] = "/proc/%d/ns/net" % fact["pid"]
        try:
            with open("/proc/%d/status" % fact["pid"]) as handle:
                fact["proc_status"] = handle.read()
        except OSError as exc:
            fact["error"] = "cannot read /proc/%d/status: %s" % (fact["pid"], exc)
    return fact


def main():
    """Read every named container."""
    module = AnsibleModule(
        argument_spec=dict(containers=dict(type="list", elements="str", required=True),
                           units=dict(type="list", elements="str", default=[]),
                           podman=dict(type="path", default="/usr/bin/podman")),
        supports_check_mode=True)
    podman = module.params["podman"]
    if not os.path.exists(podman):
        module.fail_json(msg="podman not found at %s" % podman)
    units = list(module.params["units"])
    result = {}
    for index, name in enumerate(module.params["containers"]):
        result[name] = read_one(module, podman, name, units[index] if index < len(units) else None)
    module.exit_json(changed=False, containers=result)


if __name__ == "__main__":
    main()
