#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: write the compliance report on the controller.

A thin wrapper: all the logic (catalogue, waivers, fail-closed rules, the
report files) is in module_utils/airgap_report.py so that tests and the
benchmark use exactly the same code.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: compliance_report
short_description: Write the fleet compliance report (HTML, JSON, JUnit, SHA256SUMS)
description:
  - Turns the evidence records that the roles' verify steps collected on each
    host into C(<output_root>/<UTC timestamp>/) with C(hosts/<host>.json),
    C(fleet.json), C(junit.xml), a self-contained C(index.html) and
    C(SHA256SUMS), optionally signed, and points C(<output_root>/latest) at
    the newest report (a relative symlink, replaced atomically).
  - Records with the same control id on one host are merged (the worst status
    wins, every observation is kept) and enriched with title, role and
    framework references from the controls catalogue.
  - Fails closed. A control that applies to a host but has no record is
    C(error) with evidence "no evidence collected"; every applicable control of
    an unreachable host is C(error); a record for a control id that is not in
    the catalogue is shown as C(error). The fleet verdict is C(pass) only if
    no host has a C(fail) or C(error).
  - A waiver needs C(control), C(justification), C(approver) and C(expires)
    (YYYY-MM-DD, valid through that day). An active waiver turns C(fail) or
    C(error) into C(waived) and keeps the original status visible; an expired
    waiver changes nothing and is flagged in fleet.json and the HTML. Waivers
    never touch C(pass) or C(not_applicable).
  - "Run it on the controller (C(delegate_to: localhost), C(run_once: true)).
    It writes files only under O(output_root) and changes nothing on any
    managed host."
version_added: "1.0.0"
author:
  - Project contributors
options:
  hosts:
    description:
      - "Evidence per audited host, C({inventory_hostname: [records...]}), usually
        each host's C(compliance_evidence) fact."
      - Each record has C(id), C(role), C(status) and C(evidence) as made by
        C(airgap_evidence.make_record).
    type: dict
    required: true
  unreachable:
    description:
      - Hosts that were expected in the audit but could not be reached. Every
        control that applies to them is reported as C(error).
    type: list
    elements: str
    default: []
  catalogue_dir:
    description: Folder with the controls catalogue (C(controls/*.yml)).
    type: path
    required: true
  waivers:
    description:
      - The C(compliance_waivers) list. Each item has C(control),
        C(justification), C(approver), C(expires) (YYYY-MM-DD) and optionally
        C(hosts) (a list; absent means all hosts).
      - An incomplete waiver, a bad date or an unknown control fails the module
        with a message naming the waiver index and field.
    type: list
    elements: dict
    default: []
  output_root:
    description: Folder the report folders are created in (usually C(reports/)).
    type: path
    required: true
  timestamp:
    description:
      - Name of the report folder, a UTC time like C(20261122T224500Z).
        Defaults to now. An existing report folder is never overwritten.
    type: str
  today:
    description:
      - Date (YYYY-MM-DD) on which waivers are judged active or expired.
        Defaults to the report's UTC date. Meant for reproducing a report.
    type: str
  host_groups:
    description:
      - "Inventory groups per host, C({host: [groups]}), matched against each
        control's C(applies_to). Hosts not listed get O(default_groups)."
    type: dict
  default_groups:
    description: Groups assumed for hosts not listed in O(host_groups).
    type: list
    elements: str
    default: [gpu_nodes]
  signing:
    description:
      - Sign C(SHA256SUMS). C(method=ssh) runs
        C(ssh-keygen -Y sign -f KEY -n NAMESPACE) and writes C(SHA256SUMS.sig);
        C(method=gpg) writes a detached armored signature C(SHA256SUMS.asc).
    type: dict
    suboptions:
      method:
        description: Signature kind.
        type: str
        choices: [ssh, gpg]
        required: true
      key:
        description: Path of the ssh private key, or the gpg key id to sign with (default key if omitted).
        type: str
      namespace:
        description: ssh signature namespace; verifiers must use the same.
        type: str
        default: airgap-report
      homedir:
        description: gpg home directory (C(--homedir)).
        type: path
  update_latest:
    description: Point C(<output_root>/latest) at the newest report.
    type: bool
    default: true
notes:
  - Check mode. The report is evidence about the hosts, not a change to them,
    and it lives on the controller, so the module writes it in check mode too
    (an audit run with C(--check) still produces its report). It reports
    C(changed=true) whenever it wrote a report.
  - The module never overwrites or deletes an earlier report.
  - See docs/auditor-guide.md for how to read and verify the report.
seealso:
  - name: Auditor guide
    description: How to read the report and verify its integrity.
    link: docs/auditor-guide.md
"""

EXAMPLES = r"""
- name: Write the compliance report on the controller
  compliance_report:
    hosts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'compliance_evidence') | map('default', []))) }}"
    unreachable: "{{ groups['gpu_nodes'] | difference(ansible_play_hosts) }}"
    catalogue_dir: "{{ playbook_dir }}/../controls"
    waivers: "{{ compliance_waivers | default([]) }}"
    output_root: "{{ playbook_dir }}/../reports"
  delegate_to: localhost
  run_once: true
  register: report

- name: Sign the checksums with an ssh key
  compliance_report:
    hosts: "{{ evidence_by_host }}"
    catalogue_dir: controls
    output_root: reports
    signing:
      method: ssh
      key: /etc/airgap/report-signing-key
  delegate_to: localhost
  run_once: true

- name: Fail the play if the fleet does not pass
  ansible.builtin.assert:
    that: report.verdict == 'pass'
    fail_msg: "Compliance verdict {{ report.verdict }}: see {{ report.index }}"
"""

RETURN = r"""
report_dir:
  description: Folder of this report.
  returned: success
  type: str
  sample: /srv/airgap/reports/20261122T224500Z
index:
  description: Path of index.html.
  returned: success
  type: str
fleet:
  description: Path of fleet.json.
  returned: success
  type: str
junit:
  description: Path of junit.xml.
  returned: success
  type: str
sums:
  description: Path of SHA256SUMS.
  returned: success
  type: str
signature:
  description: Path of SHA256SUMS.sig (ssh) or SHA256SUMS.asc (gpg); null when unsigned.
  returned: success
  type: str
host_files:
  description: Path of each host's JSON file.
  returned: success
  type: dict
latest:
  description: Path of the latest symlink (null when O(update_latest=false)).
  returned: success
  type: str
generated_at:
  description: Report time, ISO 8601 UTC.
  returned: success
  type: str
  sample: "2026-11-22T22:45:00Z"
verdict:
  description: C(pass) only if no host has a C(fail) or C(error), else C(fail).
  returned: success
  type: str
  sample: fail
counts:
  description: Number of results per status across the fleet.
  returned: success
  type: dict
  sample: {"pass": 30, "fail": 1, "waived": 1, "not_applicable": 2, "error": 0}
hosts_failing:
  description: Hosts whose verdict is fail.
  returned: success
  type: list
  elements: str
expired_waivers:
  description: Waivers past their expiry date, with the results they were attached to.
  returned: success
  type: list
  elements: dict
problems:
  description: Evidence that could not be used (malformed records, unknown control ids).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils.airgap_report import ReportError, write_report
except ImportError:  # pragma: no cover - only when module_utils is not on the path
    ReportError = None
    write_report = None


def argument_spec():
    """The module's parameters (also used by the unit tests)."""
    return dict(
        hosts=dict(type="dict", required=True),
        unreachable=dict(type="list", elements="str", default=[]),
        catalogue_dir=dict(type="path", required=True),
        waivers=dict(type="list", elements="dict", default=[]),
        output_root=dict(type="path", required=True),
        timestamp=dict(type="str"),
        today=dict(type="str"),
        host_groups=dict(type="dict"),
        default_groups=dict(type="list", elements="str", default=["gpu_nodes"]),
        signing=dict(type="dict", options=dict(
            method=dict(type="str", required=True, choices=["ssh", "gpg"]),
            key=dict(type="str", no_log=False),
            namespace=dict(type="str", default="airgap-report"),
            homedir=dict(type="path"),
        )),
        update_latest=dict(type="bool", default=True),
    )


def run(params):
    """Write the report from validated module parameters; return the result dict."""
    hosts = params["hosts"]
    for host, records in hosts.items():
        if records is None:
            hosts[host] = []
        elif not isinstance(records, list):
            raise ReportError("hosts[%s]: must be a list of evidence records, got %s"
                              % (host, type(records).__name__))
    host_groups = params.get("host_groups")
    if host_groups is not None:
        for host, groups in host_groups.items():
            if not isinstance(groups, list):
                raise ReportError("host_groups[%s]: must be a list of group names" % host)
    signing = params.get("signing")
    if signing:
        signing = dict((k, v) for k, v in signing.items() if v is not None)
    return write_report(
        output_root=params["output_root"],
        hosts=hosts,
        catalogue_dir=params["catalogue_dir"],
        unreachable=params.get("unreachable") or [],
        waivers=params.get("waivers") or [],
        timestamp=params.get("timestamp"),
        signing=signing or None,
        today=params.get("today"),
        host_groups=host_groups,
        default_groups=params.get("default_groups") or ["gpu_nodes"],
        update_latest_link=params.get("update_latest", True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if write_report is None:
        module.fail_json(msg="module_utils/airgap_report.py was not found on the module_utils path")
    # Check mode writes too: the report is on the controller and changes no managed host.
    try:
        result = run(module.params)
    except ReportError as exc:
        module.fail_json(msg=str(exc))
    except (OSError, IOError) as exc:
        module.fail_json(msg="writing the report under %s failed: %s" % (module.params["output_root"], exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
