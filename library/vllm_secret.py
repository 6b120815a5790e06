#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: keep a podman secret equal to a root-only key file, never showing the key."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vllm_secret
short_description: Keep a podman secret equal to a root-only file (the vLLM API key), without ever returning it
description:
  - Creates the podman secret O(name) from the file O(src), and re-creates it when the file's content changed
    or the secret was replaced behind the role's back. The container receives it as the environment variable
    C(VLLM_API_KEY) (C(--secret NAME,type=env,target=VLLM_API_KEY)), so the key is never on a command line,
    in a unit file or in a log.
  - podman 4.3 cannot show or compare a secret's data, so the module keeps a stamp in O(state_dir) (root,
    0600) holding the secret's podman ID and the sha256 of the file it was made from. The sha256 of a random
    key reveals nothing usable.
  - Refuses a O(src) that is not a regular file owned by root with mode 0600 or stricter.
version_added: "1.0.0"
author: contributors to this project
options:
  name:
    description: Name of the podman secret, for example C(vllm-demo-model-api-key).
    type: str
    required: true
  src:
    description: The key file on the host (root:root, 0600). Required when O(state=present).
    type: path
  state:
    description: C(present) creates or refreshes the secret; C(absent) removes it and its stamp.
    type: str
    choices: [present, absent]
    default: present
  state_dir:
    description: Folder for the stamps (created root 0700).
    type: path
    default: /var/lib/airgap-vllm/secrets
  podman:
    description: Path of the podman binary.
    type: path
    default: /usr/bin/podman
attributes:
  check_mode:
    support: full
    details: Reports whether the secret would be created or re-created; changes nothing.
"""

EXAMPLES = r"""
- name: Give the model server its API key as a podman secret
  vllm_secret:
    name: vllm-demo-model-api-key
    src: /etc/vllm/api-key
  no_log: true
"""

RETURN = r"""
action:
  description: What was (or in check mode would be) done.
  returned: always
  type: str
  sample: created
  choices: [none, created, recreated, removed]
secret_id:
  description: podman's ID of the secret after the run (null when absent or in check mode before creation).
  returned: always
  type: str
"""

import hashlib
import json
import os
import stat

from ansible.module_utils.airgap_manifest import atomic_write
from ansible.module_utils.basic import AnsibleModule


def file_digest(path):
    """sha256 of the key file; refuse one that others could read or that is not root's."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("%s is not a regular file" % path)
    if st.st_uid != 0 or st.st_mode & 0o077:
        raise ValueError("%s must be owned by root with mode 0600 or stricter (it is uid %d, mode %04o)"
                         % (path, st.st_uid, stat.S_IMODE(st.st_mode)))
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.strip():
        raise ValueError("%s is empty" % path)
    return hashlib.sha256(data).hexdigest()


def secret_id(module, podman, name):
    """podman's ID of the secret, or None when it does not exist."""
    rc, out, _err = module.run_command([podman, "secret", "inspect", name])
    if rc != 0:
        return None
    try:
        return json.loads(out)[0].get("ID")
    except (ValueError, IndexError):
        return None


def read_stamp(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def write_stamp(path, text):
    """Write the stamp root-only, atomically and durably (airgap_manifest's atomic_write)."""
    atomic_write(path, text + "\n", 0o600)


def main():
    """Create, refresh or remove the secret."""
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="str", required=True), src=dict(type="path"),
                           state=dict(type="str", choices=["present", "absent"], default="present"),
                           state_dir=dict(type="path", default="/var/lib/airgap-vllm/secrets"),
                           podman=dict(type="path", default="/usr/bin/podman")),
        required_if=[("state", "present", ["src"])],
        supports_check_mode=True)
    params = module.params
    name, podman = params["name"], params["podman"]
    stamp_path = os.path.join(params["state_dir"], name + ".stamp")
    current = secret_id(module, podman, name)

    if params["state"] == "absent":
        if current is None and not os.path.exists(stamp_path):
            module.exit_json(changed=False, action="none", secret_id=None)
        if not module.check_mode:
            if current is not None:
                module.run_command([podman, "secret", "rm", name], check_rc=True)
            if os.path.exists(stamp_path):
                os.unlink(stamp_path)
        module.exit_json(changed=True, action="removed", secret_id=None)

    try:
        digest = file_digest(params["src"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="vllm_secret %s: %s" % (name, exc))
    if current is not None and read_stamp(stamp_path) == "%s %s" % (current, digest):
        module.exit_json(changed=False, action="none", secret_id=current)
    action = "recreated" if current is not None else "created"
    if module.check_mode:
        module.exit_json(changed=True, action=action, secret_id=current)
    if not os.path.isdir(params["state_dir"]):
        os.makedirs(params["state_dir"], 0o700)
    if current is not None:
        module.run_command([podman, "secret", "rm", name], check_rc=True)
    rc, _out, err = module.run_command([podman, "secret", "create", name, params["src"]])
    if rc != 0:
        module.fail_json(msg="podman secret create %s failed: %s" % (name, err.strip()[-500:]))
    new_id = secret_id(module, podman, name)
    write_stamp(stamp_path, "%s %s" % (new_id, digest))
    module.exit_json(changed=True, action=action, secret_id=new_id)


if __name__ == "__main__":
    main()
