#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: read-only facts about the host's NVIDIA GPUs and driver."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nvidia_gpu_facts
short_description: Gather facts about NVIDIA GPUs, the driver and Xid events
description:
  - Reads C(nvidia-smi -q -x) (XML) and falls back to
    C(nvidia-smi --query-gpu=... --format=csv,noheader,nounits) when the XML
    query fails or does not parse.
  - Reports the kernel module's flavour (open or proprietary) and version from
    C(/proc/driver/nvidia/version), or from C(modinfo nvidia) when the module
    is not loaded.
  - Reads NVIDIA Xid events of the current boot from the kernel log
    (C(journalctl -k -b), else C(dmesg)) when it is readable.
  - On a host without a device, without C(nvidia-smi) or without a loaded
    driver it returns C(present=false) and a C(reason); it never fails for
    that, so CI and the lab (which have no GPU) run the same verify steps.
  - Changes nothing; C(changed) is always false. Check mode is supported.
  - Needs only the Python standard library (Python 3.8 or later).
version_added: "1.0.0"
author:
  - contributors to this project
options:
  nvidia_smi_path:
    description:
      - Path of the C(nvidia-smi) binary. By default it is searched on C(PATH)
        and in the sbin folders.
    type: path
  collect_xid:
    description:
      - "Read the kernel log for C(NVRM: Xid) lines."
    type: bool
    default: true
  timeout:
    description:
      - Seconds each command may run before it counts as failed
        (a wedged GPU can make C(nvidia-smi) hang).
    type: int
    default: 60
notes:
  - Device detection looks for C(/dev/nvidia[0-9]*) nodes and PCI functions of
    vendor C(0x10de) with a display class (C(0x03xxxx)) under
    C(/sys/bus/pci/devices).
  - GPU indices are nvidia-smi's enumeration order, the order CUDA and the CDI
    device names C(0), C(1), ... use.
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Gather GPU facts
  nvidia_gpu_facts:

- name: Show why there is no GPU
  ansible.builtin.debug:
    msg: "{{ ansible_facts.nvidia_gpu.reason }}"
  when: not ansible_facts.nvidia_gpu.present

- name: Use a vendor-installed nvidia-smi, skip the kernel log
  nvidia_gpu_facts:
    nvidia_smi_path: /opt/nvidia/bin/nvidia-smi
    collect_xid: false
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    nvidia_gpu:
      description: What was found. Every key is always present; values are null when unknown.
      returned: always
      type: dict
      contains:
        present:
          description: True when nvidia-smi answered for a detected device.
          type: bool
          sample: true
        reason:
          description:
            - Why C(present) is false, null otherwise.
            - "One of C(no NVIDIA device (/dev/nvidia* absent and no PCI vendor 10de display/3D device in /sys/bus/pci/devices)),
              C(no nvidia-smi binary), C(driver not loaded), C(nvidia-smi failed: <its error output>)."
          type: str
          sample: no nvidia-smi binary
        collected_by:
          description: Always C(nvidia_gpu_facts), so evidence can name its source.
          type: str
        query_method:
          description: C(xml) or C(csv) (the fallback), null when nvidia-smi was not used.
          type: str
          sample: xml
        nvidia_smi_path:
          description: The binary that was run.
          type: str
        driver_version:
          description: Driver version as nvidia-smi reports it (the loaded driver).
          type: str
          sample: 580.159.04
        cuda_version:
          description: Highest CUDA version the driver supports (XML only).
          type: str
          sample: "13.0"
        attached_gpus:
          description: GPU count nvidia-smi states in its header.
          type: int
        kernel_module:
          description: Kernel module C(flavor) (open, proprietary, unknown), C(version) and C(source)
            (C(/proc/driver/nvidia/version) or C(modinfo)).
          type: dict
          sample: {"flavor": "open", "version": "580.159.04", "source": "/proc/driver/nvidia/version"}
        devices_detected:
          description: C(pci) (list of address, class, device_id) and C(dev_nodes) (list of paths).
          type: dict
        gpus:
          description:
            - One entry per GPU with index, name, uuid, pci_bus_id, minor_number, memory_total_mib,
              ecc_mode_current, ecc_mode_pending (enabled/disabled/null), ecc_errors_uncorrected_volatile,
              retired_pages_single_bit, retired_pages_double_bit, retired_pages_pending,
              remapped_rows_correctable, remapped_rows_uncorrectable, remapped_rows_pending,
              remapped_rows_failure, persistence_mode, mig_mode_current, temperature_c, power_draw_w.
            - Cards with row remapping (A100, H100) report C(retired_pages_*) as null; older cards
              (V100, T4) report C(remapped_rows_*) as null.
          type: list
          elements: dict
        xid_events:
          description: Xid events of this boot, each with pci, xid, detail and the raw line.
          type: list
          elements: dict
        xid_log:
          description: C(readable) (bool), C(source) and C(error); when not readable, no Xid
            statement can be made.
          type: dict
changed:
  description: Always false.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_gpu import HostProbe, gather_gpu_facts


def run_module(module, probe=None):
    """Gather the facts and exit. ``probe`` is for tests (a test double)."""
    if module.params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %r" % module.params["timeout"])
    probe = probe or HostProbe(timeout=module.params["timeout"])
    facts = gather_gpu_facts(probe, nvidia_smi_path=module.params["nvidia_smi_path"],
                             xid=module.params["collect_xid"])
    module.exit_json(changed=False, ansible_facts={"nvidia_gpu": facts})


def main():
    """Module entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi_path=dict(type="path"),
            collect_xid=dict(type="bool", default=True),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
