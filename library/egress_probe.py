#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: send real packets to targets and report what got through."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: egress_probe
short_description: Probe egress with real TCP, UDP, ICMP and DNS packets over IPv4 and IPv6
description:
  - Sends real packets from the managed host (or from a network namespace on it) to each target and
    reports, per target, whether it was C(reachable), C(blocked) or whether the prober hit an C(error).
  - Used by the firewall role's verify step and by C(playbooks/audit.yml) as isolation evidence. The
    isolation monitor uses the same code (C(module_utils/airgap_probe.py)) without Ansible.
  - Probing is read-only. The module never changes the host, always returns C(changed=false), and runs
    its probes in check mode too, so an audit with C(--check) still sends packets.
  - The module never fails because a target is reachable or blocked; compare with O(expect) and read
    RV(as_expected) and RV(unexpected), and let the caller decide.
  - "Classification: TCP handshake done -> reachable/connected; ECONNREFUSED (a reset or ICMP port
    unreachable came back) -> reachable/refused, which an isolation check must count as a leak;
    EPERM/EACCES on connect or send -> blocked/permission (the local nftables dropped or rejected it);
    no answer in time -> blocked/timeout; EHOSTUNREACH/ENETUNREACH/EADDRNOTAVAIL -> blocked/unreachable;
    a UDP datagram, ICMP echo reply or DNS response that matches -> reachable/replied."
  - "Caveats: a silent UDP service cannot be told from a drop (both time out), which is why the lab's
    canary answers every datagram. A firewall C(reject) with the default ICMP port unreachable reads as
    reachable/refused; reject with admin-prohibited or drop instead."
  - C(error) means the prober itself could not work (no raw or ping socket, bad namespace, unexpected
    OS error). It is always unexpected when an expectation exists; monitors must fail closed on it.
version_added: "1.0.0"
author: contributors to this project
options:
  targets:
    description:
      - Destinations to probe. Keys are checked by the module itself so that an error names the
        target's index and name; unknown keys are refused.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Label for the result. Defaults to C(<proto> <dest>:<port>).
        type: str
      dest:
        description:
          - An IPv4 or IPv6 address literal (unicast). Host names are refused because an air-gapped host may
            have no DNS. The address family of the probe follows from it.
        type: str
        required: true
      proto:
        description: Protocol to probe with. C(icmp) sends ICMPv6 echo requests to an IPv6 O(targets[].dest).
        type: str
        required: true
        choices: [tcp, udp, icmp, dns]
      port:
        description: Destination port. Required for C(tcp) and C(udp), defaults to 53 for C(dns), refused for C(icmp).
        type: int
      timeout:
        description: Seconds to wait for this target, overriding O(timeout).
        type: float
      qname:
        description: Name to query (A record) for C(dns) targets; defaults to C(airgap-probe.invalid.). Refused for other protocols.
        type: str
      expect:
        description: Expected status for this target, overriding O(expect).
        type: str
        choices: [blocked, reachable]
  timeout:
    description: Seconds to wait for each probe (greater than 0, at most 300).
    type: float
    default: 2.0
  workers:
    description: How many probes run in parallel (1 to 256).
    type: int
    default: 16
  netns:
    description:
      - Network namespace to probe from, for example C(/run/netns/NAME) or C(/proc/PID/ns/net) (a
        container's namespace). A forked child enters it; the module's own process does not.
      - If the namespace cannot be entered, every result has status C(error).
    type: str
  expect:
    description: Expected status of every target that has no C(expect) of its own.
    type: str
    choices: [blocked, reachable]
notes:
  - Needs root (or CAP_NET_RAW) for ICMP through a raw socket; without it a ping socket is used if
    C(net.ipv4.ping_group_range) allows, otherwise ICMP results are C(error)/C(permission).
  - O(netns) needs CAP_SYS_ADMIN.
  - Supports check mode; probes are sent in check mode as well because they change nothing.
attributes:
  check_mode:
    support: full
    details: Probing is read-only, so check mode probes exactly as a normal run does.
"""

EXAMPLES = r"""
- name: Prove that the canary cannot be reached over any protocol
  egress_probe:
    expect: blocked
    timeout: 1.5
    targets:
      - {dest: 203.0.113.10, proto: tcp, port: 443}
      - {dest: "2001:db8::10", proto: tcp, port: 443}
      - {dest: 203.0.113.10, proto: udp, port: 123}
      - {dest: 203.0.113.10, proto: icmp}
      - {dest: "2001:db8::10", proto: dns}
  register: egress

- name: Positive control from inside a container's network namespace
  egress_probe:
    netns: "/proc/{{ vllm_pid }}/ns/net"
    targets:
      - {name: model-mirror, dest: 10.89.0.10, proto: tcp, port: 80, expect: reachable}

- name: Fail the play when isolation does not hold
  ansible.builtin.assert:
    that: egress.as_expected
    fail_msg: "{{ egress.unexpected }}"
"""

RETURN = r"""
results:
  description: One entry per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Target label., type: str, sample: tcp 203.0.113.10:443}
    dest: {description: Destination address., type: str, sample: 203.0.113.10}
    proto: {description: Protocol probed., type: str, sample: tcp}
    port: {description: Destination port (null for icmp)., type: int, sample: 443}
    family: {description: C(ipv4) or C(ipv6)., type: str, sample: ipv4}
    status: {description: C(reachable), C(blocked) or C(error)., type: str, sample: blocked}
    reason:
      description: One of connected, replied, refused, timeout, unreachable, permission, invalid.
      type: str
      sample: permission
    detail:
      description: What was seen, in words.
      type: str
      sample: "send to 203.0.113.10:123: EPERM (Operation not permitted): the local firewall dropped or rejected the packet before it left"
    elapsed_ms: {description: Time the probe took., type: float, sample: 0.4}
    expect: {description: The expectation applied to this target, or null., type: str, sample: blocked}
summary:
  description: Number of results per status.
  returned: always
  type: dict
  sample: {reachable: 0, blocked: 5, error: 0}
unexpected:
  description: Results whose status differs from their expectation (an C(error) always does).
  returned: always
  type: list
  elements: dict
as_expected:
  description: True when RV(unexpected) is empty.
  returned: always
  type: bool
changed:
  description: Always false; probing changes nothing.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_probe import (
    EXPECTS,
    ProbeInputError,
    check_options,
    probe_targets,
    validate_targets,
)

ARGUMENT_SPEC = dict(
    targets=dict(type="list", elements="dict", required=True),
    timeout=dict(type="float", default=2.0),
    workers=dict(type="int", default=16),
    netns=dict(type="str"),
    expect=dict(type="str", choices=list(EXPECTS)),
)


def compare(results, targets, expect=None):
    """Attach each target's expectation to its result; return (results, summary, unexpected)."""
    summary = {"reachable": 0, "blocked": 0, "error": 0}
    unexpected = []
    out = []
    for result, target in zip(results, targets):
        result = dict(result, expect=target.get("expect") or expect)
        summary[result["status"]] = summary.get(result["status"], 0) + 1
        # status error never equals an expectation, so it is always unexpected.
        if result["expect"] and result["status"] != result["expect"]:
            unexpected.append(result)
        out.append(result)
    return out, summary, unexpected


def run_module():
    """Validate, probe, compare; never changes the host."""
    # Target keys are validated by airgap_probe (not suboptions) so that errors
    # name the target's index and name, and the monitor shares the same rules.
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        check_options(params["timeout"], params["workers"])
    except ProbeInputError as exc:
        module.fail_json(msg="parameter %s" % exc, changed=False)
    try:
        targets = validate_targets(params["targets"])
    except ProbeInputError as exc:
        module.fail_json(msg="parameter targets: %s" % exc, changed=False)
    if params["netns"] is not None and not params["netns"].strip():
        module.fail_json(msg="parameter netns must be a namespace path such as /run/netns/NAME, got ''",
                         changed=False)
    results = probe_targets(targets, timeout=params["timeout"], workers=params["workers"],
                            netns=params["netns"])
    results, summary, unexpected = compare(results, targets, params["expect"])
    module.exit_json(changed=False, results=results, summary=summary, unexpected=unexpected,
                     as_expected=not unexpected)


def main():
    """Module entry point."""
    run_module()


if __name__ == "__main__":
    main()
