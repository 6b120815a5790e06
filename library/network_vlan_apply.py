#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module network_vlan_apply: write the VLAN files, reload only on change, confirm-or-rollback."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: network_vlan_apply
short_description: Write the network_vlan role's files, reload on change, with confirm-or-rollback
description:
  - >-
    Makes the role's own files (project prefix and marker line, see C(module_utils/airgap_vlan.py))
    exactly O(files): writes the ones that differ (atomically), removes owned files that are no longer
    wanted, and never touches a file without the marker. A path that is not an owned name is refused.
  - >-
    Only when something changed and O(reload=true): for C(networkd), C(networkctl reload) then
    C(networkctl reconfigure) of the interfaces the changed files concern; for C(networkmanager),
    C(nmcli connection reload) and C(nmcli connection up) of the changed VLANs. VLAN links listed in
    O(recreate) (live id or parent differs from the declaration) and links of removed VLANs are
    deleted first (C(ip link delete)), since neither provider changes the id of an existing link.
  - >-
    Confirm-or-rollback: when a change concerns an interface in O(guard_interfaces) (the one carrying
    the controller's connection), or O(guard_unknown=true), the previous files are saved under
    O(state_dir) with a C(rollback.sh) that restores them and reloads, armed as a transient timer
    (C(systemd-run --on-active=<confirm_timeout>s)). O(action=confirm), sent over a fresh connection,
    cancels it. If the controller cannot reach the host after the change, the host goes back by itself.
version_added: "1.0.0"
author: contributors to this project
options:
  action:
    description: C(apply) the files, or C(confirm) a pending change (cancel the rollback).
    type: str
    choices: [apply, confirm]
    default: apply
  files:
    description: Desired owned files, each C({path, content, mode, interfaces}) from the C(network_vlan_render) filter.
    type: list
    elements: dict
    default: []
  owned_dirs:
    description: Folders in which owned files are looked for (and removed when no longer wanted).
    type: list
    elements: path
    default: [/etc/systemd/network, /etc/NetworkManager/system-connections]
  provider:
    description: The network provider whose reload to run.
    type: str
    choices: [networkd, networkmanager]
    default: networkd
  reload:
    description: Reload the provider after a change (false where it is not running).
    type: bool
    default: true
  recreate:
    description: VLAN links to delete before the reload so that the provider creates them anew.
    type: list
    elements: str
    default: []
  guard_interfaces:
    description: Interfaces carrying the controller's connection; a change touching one arms the rollback.
    type: list
    elements: str
    default: []
  guard_unknown:
    description: Arm the rollback on any change (the controller's interface could not be determined).
    type: bool
    default: false
  confirm_timeout:
    description: Seconds until an unconfirmed change is rolled back (1 to 3600; 0 never arms a rollback).
    type: int
    default: 60
  state_dir:
    description: Where the previous files and the rollback script are kept.
    type: path
    default: /var/lib/airgap-vlan
  rollback_unit:
    description: Name of the transient rollback unit.
    type: str
    default: airgap-vlan-rollback
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Write the VLAN files and reload networkd
  network_vlan_apply:
    files: "{{ network_vlan_interfaces | network_vlan_normalize | network_vlan_render('networkd', {}) }}"
    guard_interfaces: [eth0]
    confirm_timeout: 60
  register: applied

- name: Confirm over a fresh connection
  network_vlan_apply:
    action: confirm
  when: applied.rollback_pending
"""

RETURN = r"""
written:
  description: Paths written (new or changed).
  returned: always
  type: list
  elements: str
removed:
  description: Owned paths removed.
  returned: always
  type: list
  elements: str
touched_interfaces:
  description: Interfaces the changed files concern.
  returned: always
  type: list
  elements: str
reloaded:
  description: The reload commands run.
  returned: always
  type: list
  elements: str
rollback_pending:
  description: Whether a rollback is armed and waits for O(action=confirm).
  returned: always
  type: bool
guarded_interfaces:
  description: Interfaces of O(guard_interfaces) that the change concerns (why the rollback was armed).
  returned: when O(action=apply)
  type: list
  elements: str
"""

import json
import os
import shlex
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_manifest import atomic_write as _atomic_write
from ansible.module_utils.airgap_vlan import (
    DROPIN_NAME, MARKER, NETWORKD_PREFIX, NM_PREFIX, file_interfaces, owned_paths as vlan_owned_paths)

PENDING = "pending"
PREVIOUS = "previous.json"
ROLLBACK_SH = "rollback.sh"


class ApplyError(Exception):
    """Reported to the user; the message says what state the host is in."""


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def atomic_write(path, text, mode):
    """Write ``text`` atomically and durably (fsync of the file and its folder: airgap_manifest's)."""
    _atomic_write(path, text, mode, makedirs=True)


def timer_available():
    """Whether systemd can run the transient rollback timer here."""
    return bool(shutil.which("systemd-run")) and os.path.isdir("/run/systemd/system")


def owned_paths(dirs):
    """The files under ``dirs`` this role owns."""
    return vlan_owned_paths(dirs, read_text)


def check_wanted(files, dirs):
    """Refuse anything that is not an owned file inside an owned folder."""
    problems = []
    for f in files:
        path, content = f.get("path", ""), f.get("content", "")
        base = os.path.basename(path)
        inside = any(os.path.abspath(path).startswith(os.path.abspath(d) + os.sep) for d in dirs)
        named = base.startswith(NETWORKD_PREFIX) or base.startswith(NM_PREFIX) or base == DROPIN_NAME
        if not (os.path.isabs(path) and inside and named and content.split("\n", 1)[0] == MARKER):
            problems.append("%s: not a network_vlan file (owned folder, project prefix and marker line required)" % path)
    return problems


def plan(files, dirs):
    """(to_write [file], to_remove [path], current {path: text}) for the desired ``files``."""
    current = dict((p, read_text(p)) for p in owned_paths(dirs))
    wanted = dict((f["path"], f) for f in files)
    to_write = []
    for path, f in sorted(wanted.items()):
        mode = int(str(f.get("mode", "0644")), 8)
        have = read_text(path)
        st_mode = (os.stat(path).st_mode & 0o7777) if have is not None else None
        if have != f["content"] or st_mode != mode:
            to_write.append(f)
    to_remove = sorted(p for p in current if p not in wanted)
    return to_write, to_remove, current


def rollback_script(state_dir, dirs, provider, vlan_links):
    """Shell script: remove the owned files, put the saved ones back, delete the VLAN links the change
    concerned and reload, so the provider makes them again exactly from the restored files (neither
    provider undoes a setting such as an MTU merely because a file no longer asks for it)."""
    q = shlex.quote
    py = ("import json,os\n"
          "prev=json.load(open(%r))\n"
          "for p,f in prev['files'].items():\n"
          "    os.makedirs(os.path.dirname(p),exist_ok=True)\n"
          "    open(p+'.airgap-rb','w').write(f['content']); os.chmod(p+'.airgap-rb',f['mode']); os.replace(p+'.airgap-rb',p)\n"
          % os.path.join(state_dir, PREVIOUS))
    lines = ["#!/bin/sh", "# network_vlan rollback, written by the network_vlan_apply module.",
             "# Restores the role's files as they were before the last unconfirmed change.", "set -u"]
    for d in dirs:
        lines.append("grep -rlx -m1 %s %s 2>/dev/null | while read -r f; do case \"$(basename \"$f\")\" in "
                     "%s*|%s*|%s) rm -f \"$f\";; esac; done"
                     % (q(MARKER), q(d), NETWORKD_PREFIX, NM_PREFIX, DROPIN_NAME))
    lines.append("python3 -c %s" % q(py))
    # The rollback must run to the end whatever state it finds: a VLAN link
    # that is already gone is the state it wants, so "no such device" is fine.
    for link in vlan_links:
        lines.append("ip link delete %s type vlan 2>/dev/null || true" % q(link))
    lines += reload_commands(provider, [], shell=True)
    lines += ["rm -f %s" % q(os.path.join(state_dir, PENDING)),
              "echo 'airgap network_vlan: unconfirmed change rolled back' >&2", ""]
    return "\n".join(lines)


def vlan_interfaces(to_write, to_remove, current):
    """VLAN links (not parents) that the written or removed files concern."""
    out = set()
    for f in to_write:
        if f.get("kind", "") != "parent" and not f["path"].endswith("/" + DROPIN_NAME) \
                and "-parent-" not in os.path.basename(f["path"]):
            out.update(f.get("interfaces") or file_interfaces(f["content"]))
    for path in to_remove:
        base = os.path.basename(path)
        if base != DROPIN_NAME and "-parent-" not in base:
            out.update(file_interfaces(current.get(path)))
    return out


def reload_commands(provider, interfaces, shell=False):
    """The provider's reload; reconfigure only what changed (all links in the rollback)."""
    if provider == "networkd":
        cmds = [["networkctl", "reload"]]
        if interfaces:
            cmds.append(["networkctl", "reconfigure"] + sorted(interfaces))
        elif shell:
            # In the rollback script: an interface that vanished between ls and
            # reconfigure must not stop the restore of the remaining ones.
            return ["networkctl reload", "networkctl reconfigure $(ls /sys/class/net | grep -vx lo) 2>/dev/null || true"]
    else:
        cmds = [["nmcli", "connection", "reload"]]
        if shell:
            return ["nmcli connection reload"]
        cmds += [["nmcli", "connection", "up", "id", NM_PREFIX + i] for i in sorted(interfaces)]
    if shell:
        return [" ".join(shlex.quote(a) for a in c) for c in cmds]
    return cmds


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", choices=["apply", "confirm"], default="apply"),
            files=dict(type="list", elements="dict", default=[]),
            owned_dirs=dict(type="list", elements="path",
                            default=["/etc/systemd/network", "/etc/NetworkManager/system-connections"]),
            provider=dict(type="str", choices=["networkd", "networkmanager"], default="networkd"),
            reload=dict(type="bool", default=True),
            recreate=dict(type="list", elements="str", default=[]),
            guard_interfaces=dict(type="list", elements="str", default=[]),
            guard_unknown=dict(type="bool", default=False),
            confirm_timeout=dict(type="int", default=60),
            state_dir=dict(type="path", default="/var/lib/airgap-vlan"),
            rollback_unit=dict(type="str", default="airgap-vlan-rollback"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 0 <= p["confirm_timeout"] <= 3600:
        module.fail_json(msg="confirm_timeout: %d must be from 0 to 3600 seconds" % p["confirm_timeout"])

    def run(argv, check=True):
        rc, out, err = module.run_command(list(argv))
        if check and rc != 0:
            raise ApplyError("%s failed (rc %d): %s" % (" ".join(argv), rc, (err or out).strip()))
        return rc, out, err

    unit = p["rollback_unit"]
    pending = os.path.join(p["state_dir"], PENDING)
    try:
        if p["action"] == "confirm":
            armed = os.path.exists(pending)
            if armed and not module.check_mode:
                run(["systemctl", "stop", unit + ".timer"], check=False)
                run(["systemctl", "reset-failed", unit + ".timer", unit + ".service"], check=False)
                os.unlink(pending)
            module.exit_json(changed=armed, written=[], removed=[], touched_interfaces=[], reloaded=[],
                             rollback_pending=False)
        module.exit_json(**apply(module, run, p))
    except (ApplyError, OSError) as exc:
        module.fail_json(msg=str(exc))


def apply(module, run, p):
    problems = check_wanted(p["files"], p["owned_dirs"])
    if problems:
        raise ApplyError("; ".join(problems))
    to_write, to_remove, current = plan(p["files"], p["owned_dirs"])
    touched = set()
    for f in to_write:
        touched.update(f.get("interfaces") or file_interfaces(f["content"]))
    for path in to_remove:
        touched.update(file_interfaces(current.get(path)))
    removed_links = set()
    for path in to_remove:
        base = os.path.basename(path)
        if base.endswith(".netdev") or base.endswith(".nmconnection"):
            removed_links.update(file_interfaces(current.get(path)))
    recreate = set(p["recreate"])
    changed = bool(to_write or to_remove or recreate)
    diff = [{"before_header": f["path"], "after_header": f["path"], "before": read_text(f["path"]) or "",
             "after": f["content"]} for f in to_write]
    diff += [{"before_header": path, "after_header": "(removed)", "before": current.get(path) or "", "after": ""}
             for path in to_remove]
    guard = set(p["guard_interfaces"]) & (touched | recreate | removed_links)
    arm = changed and p["confirm_timeout"] > 0 and (bool(guard) or p["guard_unknown"])
    result = {"changed": changed, "written": [f["path"] for f in to_write], "removed": to_remove,
              "touched_interfaces": sorted(touched | recreate), "reloaded": [], "rollback_pending": arm,
              "guarded_interfaces": sorted(guard), "diff": diff}
    if not changed or module.check_mode:
        return result
    if arm:
        if not timer_available():
            raise ApplyError("the change touches the controller's interface (%s) but systemd-run is not available "
                             "to arm the rollback; nothing was changed" % ", ".join(sorted(guard)) or "unknown")
        os.makedirs(p["state_dir"], mode=0o700, exist_ok=True)
        previous = {"files": dict((path, {"content": text, "mode": os.stat(path).st_mode & 0o7777})
                                  for path, text in current.items() if text is not None)}
        atomic_write(os.path.join(p["state_dir"], PREVIOUS), json.dumps(previous), 0o600)
        vlan_links = sorted(vlan_interfaces(to_write, to_remove, current) | recreate)
        script = os.path.join(p["state_dir"], ROLLBACK_SH)
        atomic_write(script, rollback_script(p["state_dir"], p["owned_dirs"], p["provider"], vlan_links), 0o700)
        atomic_write(os.path.join(p["state_dir"], PENDING), "armed\n", 0o600)
        unit = p["rollback_unit"]
        run(["systemctl", "stop", unit + ".timer"], check=False)
        run(["systemctl", "reset-failed", unit + ".timer", unit + ".service"], check=False)
        run(["systemd-run", "--unit", unit, "--on-active=%ds" % p["confirm_timeout"],
             "--timer-property=AccuracySec=1s", "--timer-property=RemainAfterElapse=no", "--collect",
             "--description=airgap network_vlan: roll back an unconfirmed change", "/bin/sh", script])
    for f in to_write:
        atomic_write(f["path"], f["content"], int(str(f.get("mode", "0644")), 8))
    for path in to_remove:
        os.unlink(path)
    if p["reload"]:
        for link in sorted(recreate | removed_links):
            if os.path.isdir("/sys/class/net/%s" % link):
                run(["ip", "link", "delete", link, "type", "vlan"], check=False)
        ifaces = sorted(i for i in touched if i not in removed_links)
        for cmd in reload_commands(p["provider"], ifaces):
            # reconfigure of a VLAN link that networkd has not created yet fails harmlessly
            strict = cmd[:2] == ["networkctl", "reload"] or cmd[:3] == ["nmcli", "connection", "reload"]
            run(cmd, check=strict)
            result["reloaded"].append(" ".join(cmd))
    return result


if __name__ == "__main__":
    main()
