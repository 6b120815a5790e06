#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: turn GPU facts and the declared configuration into evidence records."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_evidence
short_description: Evidence records for GPU-DRIVER-PINNED, GPU-HEALTH and RUNTIME-CDI
description:
  - Compares the facts of M(nvidia_gpu_facts) and the host's package state
    with the declared configuration and returns one evidence record per
    control (the shape of C(module_utils/airgap_evidence.py)).
  - The module decides nothing from its own probing except reading CDI spec
    files; everything else it judges is what it is given. It never reports
    C(pass) for something it was not shown.
  - C(not_applicable) is reserved for hosts where no NVIDIA device was
    detected at all. A host with a device whose driver or nvidia-smi does not
    work gets C(fail), never C(not_applicable) (fail closed).
  - "GPU-DRIVER-PINNED on a host without a device: when any of the declared
    O(driver_packages) is installed, the record still judges the packages
    (installed at exactly the pin and held) and passes or fails on them, with
    C(device_present=false) and the kernel-driver check marked
    C(not_applicable). The pin is a supply-chain guarantee that holds or not
    whether a card is plugged in (the lab installs the real packages without a
    GPU). With none of the packages installed the record is C(not_applicable)."
  - Changes nothing; C(changed) is always false. Check mode is supported.
version_added: "1.0.0"
author:
  - contributors to this project
options:
  gpu_facts:
    description:
      - The C(nvidia_gpu) facts from M(nvidia_gpu_facts) (or the whole
        C(ansible_facts) dict that contains them).
    type: dict
    required: true
  controls:
    description: Which records to produce.
    type: list
    elements: str
    choices: [GPU-DRIVER-PINNED, GPU-HEALTH, RUNTIME-CDI]
    default: [GPU-DRIVER-PINNED, GPU-HEALTH, RUNTIME-CDI]
  driver_version_pin:
    description:
      - The declared driver package version, exactly as pinned for apt or dnf
        (for example C(580.159.04-1ubuntu1), C(535.261.03-1~deb12u1), or a glob
        such as C(580.159.04-*)). Its upstream part (C(580.159.04)) must equal
        the loaded kernel driver's version.
      - Without it GPU-DRIVER-PINNED fails (nothing is pinned).
    type: str
  driver_packages:
    description: Package names that must be installed at exactly O(driver_version_pin) and held.
    type: list
    elements: str
    default: []
  other_pinned_packages:
    description:
      - "Further packages judged by GPU-DRIVER-PINNED with their own pins,
        C({name: pin}), for example the container toolkit
        (C(nvidia-container-toolkit), C(libnvidia-container1)) whose versions
        differ from the driver's. Each must be installed at exactly its pin
        (same matching as O(driver_version_pin)) and held. They are not
        compared with the kernel driver."
    type: dict
    default: {}
  package_state:
    description:
      - "The host's package manager state as gathered by the role,
        C({name: {version: str or null, held: bool}}). A package that is not
        installed has C(version=null) or no entry."
    type: dict
    default: {}
  expected_gpu_count:
    description: Number of GPUs that must be visible. Without it at least one must be.
    type: int
  expected_ecc:
    description: ECC mode every GPU must have, current and pending. C(any) skips the check.
    type: str
    choices: [enabled, disabled, any]
    default: any
  expected_persistence:
    description: Persistence mode every GPU must have. C(any) skips the check.
    type: str
    choices: [enabled, disabled, any]
    default: any
  expected_mig:
    description: MIG mode every GPU must have (GPUs without MIG count as disabled). C(any) skips the check.
    type: str
    choices: [enabled, disabled, any]
    default: any
  require_kernel_log:
    description:
      - When the kernel log could not be read, no statement about Xid events
        is possible. If true that makes GPU-HEALTH C(error); if false the Xid
        check is recorded as not done and does not decide the status.
    type: bool
    default: true
  cdi_specs:
    description:
      - CDI specs given directly, each a parsed mapping or YAML/JSON text
        (for example C({{ slurped.content | b64decode | from_yaml }})).
    type: list
    elements: raw
    default: []
  cdi_spec_paths:
    description:
      - Shell patterns of CDI spec files on the host to read and parse.
        YAML needs PyYAML on the host; JSON specs do not. Pass the parsed
        spec in O(cdi_specs) where the host has no PyYAML.
    type: list
    elements: str
    default: [/etc/cdi/*.yaml, /etc/cdi/*.yml, /etc/cdi/*.json, /var/run/cdi/*.yaml, /var/run/cdi/*.yml, /var/run/cdi/*.json]
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Gather GPU facts
  nvidia_gpu_facts:

- name: Evidence for the GPU controls
  gpu_evidence:
    gpu_facts: "{{ ansible_facts.nvidia_gpu }}"
    driver_version_pin: "{{ nvidia_driver_version }}"
    driver_packages: "{{ nvidia_driver_packages }}"
    package_state: "{{ nvidia_driver_package_state }}"
    expected_gpu_count: 8
    expected_ecc: enabled
    expected_persistence: enabled
    expected_mig: disabled
  register: gpu_evidence_out

- name: Only the CDI record, spec parsed on the controller
  gpu_evidence:
    gpu_facts: "{{ ansible_facts.nvidia_gpu }}"
    controls: [RUNTIME-CDI]
    cdi_specs: ["{{ cdi_file.content | b64decode | from_yaml }}"]
    cdi_spec_paths: []
"""

RETURN = r"""
records:
  description: One evidence record per requested control (id, title, role, status, evidence, frameworks, waiver).
  returned: always
  type: list
  elements: dict
  sample:
    - id: GPU-HEALTH
      title: null
      role: nvidia_driver
      status: pass
      evidence: {gpu_count: 1, checks: [], checked_at: "2026-01-01T00:00:00Z"}
      frameworks: {}
      waiver: null
statuses:
  description: Control id to status, for quick assertions.
  returned: always
  type: dict
  sample: {"GPU-DRIVER-PINNED": "pass", "GPU-HEALTH": "pass", "RUNTIME-CDI": "not_applicable"}
changed:
  description: Always false.
  returned: always
  type: bool
"""

import glob
import json

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - depends on the host
    HAS_YAML = False

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_evidence import make_record, worst_status
from ansible.module_utils.airgap_gpu import (
    PROC_VERSION, REASON_NO_DEVICE, upstream_version, version_matches_pin,
)

CONTROLS = ("GPU-DRIVER-PINNED", "GPU-HEALTH", "RUNTIME-CDI")
CONTROL_ROLES = {"GPU-DRIVER-PINNED": "nvidia_driver", "GPU-HEALTH": "nvidia_driver",
                 "RUNTIME-CDI": "container_runtime"}
MODES = ("enabled", "disabled", "any")
CDI_KIND = "nvidia.com/gpu"
DEFAULT_CDI_PATHS = ["/etc/cdi/*.yaml", "/etc/cdi/*.yml", "/etc/cdi/*.json",
                     "/var/run/cdi/*.yaml", "/var/run/cdi/*.yml", "/var/run/cdi/*.json"]
FACTS_SOURCE = "nvidia_gpu_facts (nvidia-smi, /proc/driver/nvidia/version, kernel log)"


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------

def _check(name, status, expected=None, observed=None, detail=None):
    """One line of a record's ``checks`` list."""
    item = {"check": name, "status": status, "expected": expected, "observed": observed}
    if detail:
        item["detail"] = detail
    return item


def _combine(checks):
    """Record status from its checks: the worst one; checks that were not done do not count."""
    decisive = [c["status"] for c in checks if c["status"] != "not_applicable"]
    return worst_status(decisive) if decisive else "not_applicable"


def unwrap_facts(gpu_facts):
    """Accept the nvidia_gpu dict or an ansible_facts dict holding it; validate its shape."""
    if not isinstance(gpu_facts, dict):
        raise ValueError("gpu_facts must be the nvidia_gpu dict from nvidia_gpu_facts, got %s"
                         % type(gpu_facts).__name__)
    if "nvidia_gpu" in gpu_facts and isinstance(gpu_facts["nvidia_gpu"], dict):
        gpu_facts = gpu_facts["nvidia_gpu"]
    if not isinstance(gpu_facts.get("present"), bool):
        raise ValueError("gpu_facts lacks the boolean key 'present'; pass "
                         "ansible_facts.nvidia_gpu as returned by nvidia_gpu_facts")
    if not isinstance(gpu_facts.get("gpus", []), list):
        raise ValueError("gpu_facts.gpus must be a list")
    return gpu_facts


def device_absent(facts):
    """True only when no NVIDIA device was detected at all (the one not_applicable case)."""
    if facts.get("present"):
        return False
    detected = facts.get("devices_detected") or {}
    if detected.get("pci") or detected.get("dev_nodes"):
        return False
    return facts.get("reason") == REASON_NO_DEVICE


def _not_applicable(control_id, role, facts, extra=None):
    """Record for a host without any NVIDIA device."""
    evidence = {"device_present": False, "reason": facts.get("reason"), "source": FACTS_SOURCE}
    evidence.update(extra or {})
    return make_record(control_id, role, "not_applicable", evidence)


def _unusable_device_check(facts):
    """The failing check for a host with a device that nvidia-smi cannot read."""
    return _check("gpu_driver_usable", "fail", "nvidia-smi answers for the detected device",
                  facts.get("reason"))


# --------------------------------------------------------------------------
# GPU-DRIVER-PINNED
# --------------------------------------------------------------------------

def validate_package_state(state):
    """Raise ValueError unless ``state`` is {name: {version: str|None, held: bool}}."""
    if not isinstance(state, dict):
        raise ValueError("package_state must be a dict of package name to {version, held}")
    for name, entry in state.items():
        where = "package_state[%r]" % name
        if not isinstance(entry, dict):
            raise ValueError("%s must be a dict with keys version and held, got %r" % (where, entry))
        if "version" not in entry or "held" not in entry:
            raise ValueError("%s must have keys version and held, got %s" % (where, sorted(entry)))
        if entry["version"] is not None and not isinstance(entry["version"], str):
            raise ValueError("%s.version must be a string or null, got %r" % (where, entry["version"]))
        if not isinstance(entry["held"], bool):
            raise ValueError("%s.held must be true or false, got %r" % (where, entry["held"]))


def _package_checks(pins, package_state):
    """Per (package, pin): installed, at exactly the pin, held."""
    checks, seen = [], {}
    for name, pin in pins:
        entry = package_state.get(name) or {"version": None, "held": False}
        version, held = entry.get("version"), entry.get("held") is True
        matches = version_matches_pin(version, pin)
        seen[name] = {"pin": pin, "version": version, "held": held, "matches_pin": matches}
        if version is None:
            checks.append(_check("package %s installed" % name, "fail", pin, None))
            continue
        checks.append(_check("package %s version" % name, "pass" if matches else "fail", pin, version))
        checks.append(_check("package %s held" % name, "pass" if held else "fail", True, held))
    return checks, seen


def loaded_driver_version(facts):
    """(version, source) of the loaded kernel driver.

    /proc/driver/nvidia/version speaks for the loaded module; nvidia-smi's
    driver version comes from the loaded module too. modinfo only describes
    the file on disk, so it never counts as "loaded".
    """
    module = facts.get("kernel_module") or {}
    if module.get("source") == PROC_VERSION and module.get("version"):
        return module["version"], PROC_VERSION
    if facts.get("present") and facts.get("driver_version"):
        return facts["driver_version"], "nvidia-smi"
    return None, None


def _kernel_checks(facts, pin):
    """The loaded kernel driver equals the pin's upstream version (and nvidia-smi agrees)."""
    want = upstream_version(pin)
    loaded, source = loaded_driver_version(facts)
    if device_absent(facts):
        return [_check("loaded kernel driver version", "not_applicable", want, None,
                       "no NVIDIA device: %s" % facts.get("reason"))]
    if loaded is None:
        return [_check("loaded kernel driver version", "fail", want, None,
                       "no loaded driver version (%s)" % facts.get("reason"))]
    checks = [_check("loaded kernel driver version", "pass" if loaded == want else "fail",
                     want, loaded, "read from %s" % source)]
    smi = facts.get("driver_version") if facts.get("present") else None
    if smi and smi != loaded:
        checks.append(_check("nvidia-smi driver version equals kernel module", "fail", loaded, smi))
    return checks


def driver_pinned_record(facts, pin, packages, package_state, other_pins=None,
                         role=CONTROL_ROLES["GPU-DRIVER-PINNED"]):
    """GPU-DRIVER-PINNED: packages at exactly the pin and held; the loaded driver is the pin.

    ``other_pins`` ({name: pin}) adds packages with their own pins (the
    container toolkit). Without a device the packages are still judged when
    any of them is installed (see the module documentation for why).
    """
    packages = list(packages or [])
    package_state = package_state or {}
    pins = [(name, pin) for name in packages] + sorted((other_pins or {}).items())
    absent = device_absent(facts)
    installed = [p for p, _pin in pins if (package_state.get(p) or {}).get("version")]
    if absent and not installed:
        return _not_applicable("GPU-DRIVER-PINNED", role, facts,
                               {"pin": pin, "packages": [p for p, _pin in pins],
                                "detail": "no NVIDIA device and none of the driver packages installed"})
    checks = []
    if not pin:
        checks.append(_check("driver version pin declared", "fail", "driver_version_pin set", None))
    if not packages:
        checks.append(_check("driver packages declared", "fail", "driver_packages not empty", []))
    package_checks, seen = _package_checks(pins, package_state)
    checks.extend(package_checks)
    if pin:
        checks.extend(_kernel_checks(facts, pin))
    module = facts.get("kernel_module") or {}
    loaded, source = loaded_driver_version(facts)
    evidence = {
        "device_present": not absent,
        "reason": facts.get("reason"),
        "pin": pin,
        "pin_upstream": upstream_version(pin),
        "packages": seen,
        "loaded_driver_version": loaded,
        "loaded_driver_source": source,
        "nvidia_smi_driver_version": facts.get("driver_version"),
        "kernel_module": {"flavor": module.get("flavor"), "version": module.get("version"),
                          "source": module.get("source")},
        "checks": checks,
        "source": FACTS_SOURCE + "; package_state as gathered by the role",
    }
    return make_record("GPU-DRIVER-PINNED", role, _combine(checks), evidence)


# --------------------------------------------------------------------------
# GPU-HEALTH
# --------------------------------------------------------------------------

def _mode_check(name, label, expected, observed):
    """ECC/persistence/MIG against enabled|disabled; None (not supported) counts as disabled."""
    if expected == "any":
        return None
    effective = observed if observed is not None else "disabled"
    return _check("%s %s" % (label, name), "pass" if effective == expected else "fail",
                  expected, observed)


def _gpu_checks(gpu, expected_ecc, expected_persistence, expected_mig):
    """Health checks of one GPU."""
    label = "gpu %s (%s)" % (gpu.get("index"), gpu.get("uuid"))
    checks = [
        _mode_check("ecc mode", label, expected_ecc, gpu.get("ecc_mode_current")),
        _mode_check("persistence mode", label, expected_persistence, gpu.get("persistence_mode")),
        _mode_check("mig mode", label, expected_mig, gpu.get("mig_mode_current")),
    ]
    pending = gpu.get("ecc_mode_pending")
    if expected_ecc != "any" and pending is not None:
        # A pending mode different from the expected one takes effect at the next reset.
        checks.append(_check("%s ecc mode pending" % label, "pass" if pending == expected_ecc else "fail",
                             expected_ecc, pending))
    errors = gpu.get("ecc_errors_uncorrected_volatile")
    if errors is not None:
        checks.append(_check("%s uncorrected ECC errors since boot" % label,
                             "pass" if errors == 0 else "fail", 0, errors))
    for key, what in (("retired_pages_pending", "page retirement pending"),
                      ("remapped_rows_pending", "row remapping pending"),
                      ("remapped_rows_failure", "row remapping failure")):
        value = gpu.get(key)
        if value is not None:
            checks.append(_check("%s %s" % (label, what), "fail" if value else "pass", False, value))
    return [c for c in checks if c is not None]


def _xid_check(facts, require_kernel_log):
    """No Xid event since boot; an unreadable log is an error unless waived by parameter."""
    log = facts.get("xid_log") or {}
    events = facts.get("xid_events") or []
    if events:
        return _check("no Xid events since boot", "fail", [],
                      ["Xid %s on %s: %s" % (e.get("xid"), e.get("pci"), e.get("detail")) for e in events])
    if log.get("readable"):
        return _check("no Xid events since boot", "pass", [], [], "read from %s" % log.get("source"))
    return _check("no Xid events since boot", "error" if require_kernel_log else "not_applicable",
                  [], None, "kernel log not readable: %s" % log.get("error"))


def health_record(facts, expected_gpu_count=None, expected_ecc="any", expected_persistence="any",
                  expected_mig="any", require_kernel_log=True, role=CONTROL_ROLES["GPU-HEALTH"]):
    """GPU-HEALTH: every expected GPU visible, modes as configured, no memory or Xid trouble."""
    if device_absent(facts):
        return _not_applicable("GPU-HEALTH", role, facts)
    gpus = facts.get("gpus") or []
    checks = []
    if not facts.get("present"):
        checks.append(_unusable_device_check(facts))
    else:
        want = expected_gpu_count if expected_gpu_count is not None else ">= 1"
        ok = len(gpus) == expected_gpu_count if expected_gpu_count is not None else len(gpus) >= 1
        checks.append(_check("GPUs visible", "pass" if ok else "fail", want, len(gpus)))
        attached = facts.get("attached_gpus")
        if attached is not None and attached != len(gpus):
            checks.append(_check("nvidia-smi attached_gpus equals GPUs listed", "fail", attached, len(gpus)))
        for gpu in gpus:
            checks.extend(_gpu_checks(gpu, expected_ecc, expected_persistence, expected_mig))
        checks.append(_xid_check(facts, require_kernel_log))
    evidence = {
        "device_present": True,
        "reason": facts.get("reason"),
        "driver_version": facts.get("driver_version"),
        "query_method": facts.get("query_method"),
        "gpu_count": len(gpus),
        "pci_devices_detected": len((facts.get("devices_detected") or {}).get("pci") or []),
        "expected": {"gpu_count": expected_gpu_count, "ecc": expected_ecc,
                     "persistence": expected_persistence, "mig": expected_mig},
        "gpus": [dict((k, g.get(k)) for k in (
            "index", "name", "uuid", "pci_bus_id", "ecc_mode_current", "ecc_mode_pending",
            "persistence_mode", "mig_mode_current", "ecc_errors_uncorrected_volatile",
            "retired_pages_pending", "remapped_rows_pending", "remapped_rows_failure",
            "temperature_c", "power_draw_w")) for g in gpus],
        "xid_log": facts.get("xid_log"),
        "xid_events": facts.get("xid_events") or [],
        "checks": checks,
        "source": FACTS_SOURCE,
    }
    return make_record("GPU-HEALTH", role, _combine(checks), evidence)


# --------------------------------------------------------------------------
# RUNTIME-CDI
# --------------------------------------------------------------------------

def parse_cdi_text(text):
    """Parse a CDI spec written as YAML (needs PyYAML) or JSON. Raises ValueError."""
    if HAS_YAML:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError("not valid YAML: %s" % exc)
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError("PyYAML is not installed on this host and the spec is not JSON; "
                         "pass it parsed in cdi_specs")


def _spec_entry(source, spec=None, error=None):
    """A loaded spec with where it came from, or the reason it could not be used."""
    if error is None and not (isinstance(spec, dict) and isinstance(spec.get("kind"), str)
                              and isinstance(spec.get("devices", []), list)):
        error = "not a CDI spec (needs a kind string and a devices list)"
    return {"source": source, "spec": spec if error is None else None, "error": error}


def load_cdi_specs(given, patterns, read_text=None, glob_func=glob.glob):
    """Specs from ``given`` (mappings or text) and from files matching ``patterns``."""
    read_text = read_text or _read_file
    entries = []
    for i, item in enumerate(given or []):
        source = "cdi_specs[%d]" % i
        if isinstance(item, dict):
            entries.append(_spec_entry(source, item))
            continue
        try:
            entries.append(_spec_entry(source, parse_cdi_text(str(item))))
        except ValueError as exc:
            entries.append(_spec_entry(source, error=str(exc)))
    for pattern in patterns or []:
        for path in sorted(glob_func(pattern)):
            text = read_text(path)
            if text is None:
                entries.append(_spec_entry(path, error="cannot read file"))
                continue
            try:
                entries.append(_spec_entry(path, parse_cdi_text(text)))
            except ValueError as exc:
                entries.append(_spec_entry(path, error=str(exc)))
    return entries


def _read_file(path):
    """Text of a file, or None."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def _cdi_devices(entries):
    """Device name -> (source, device node paths) for kind nvidia.com/gpu; plus duplicate names."""
    devices, duplicates = {}, []
    for entry in entries:
        spec = entry["spec"]
        if not spec or spec.get("kind") != CDI_KIND:
            continue
        for device in spec.get("devices") or []:
            if not isinstance(device, dict) or not device.get("name"):
                continue
            name = str(device["name"])
            edits = device.get("containerEdits") or {}
            nodes = [n.get("path") for n in (edits.get("deviceNodes") or []) if isinstance(n, dict)]
            if name in devices:
                duplicates.append("%s in %s and %s" % (name, devices[name]["source"], entry["source"]))
                continue
            devices[name] = {"source": entry["source"], "device_nodes": nodes}
    return devices, duplicates


def _cdi_gpu_check(gpu, devices):
    """The GPU has a CDI device by index or UUID that maps its /dev/nvidiaN node."""
    index, uuid, minor = gpu.get("index"), gpu.get("uuid"), gpu.get("minor_number")
    names = [n for n in (str(index) if index is not None else None, uuid) if n and n in devices]
    label = "gpu %s (%s) has a %s device" % (index, uuid, CDI_KIND)
    if not names:
        return _check(label, "fail", ["%s=%s" % (CDI_KIND, index), "%s=%s" % (CDI_KIND, uuid)], None)
    if minor is not None:
        node = "/dev/nvidia%d" % minor
        wrong = [n for n in names if node not in devices[n]["device_nodes"]]
        if wrong:
            return _check(label, "fail", node, dict((n, devices[n]["device_nodes"]) for n in wrong),
                          "CDI device does not map the GPU's device node (stale spec?)")
    return _check(label, "pass", None, ["%s=%s" % (CDI_KIND, n) for n in names])


def cdi_record(facts, entries, role=CONTROL_ROLES["RUNTIME-CDI"]):
    """RUNTIME-CDI: a nvidia.com/gpu CDI device exists for every GPU (by index or UUID)."""
    if device_absent(facts):
        return _not_applicable("RUNTIME-CDI", role, facts,
                               {"specs": [e["source"] for e in entries]})
    checks = []
    if not facts.get("present"):
        checks.append(_unusable_device_check(facts))
    for entry in entries:
        if entry["error"]:
            checks.append(_check("CDI spec %s parses" % entry["source"], "fail", "valid CDI spec",
                                 entry["error"]))
    devices, duplicates = _cdi_devices(entries)
    if not devices:
        checks.append(_check("%s CDI spec present" % CDI_KIND, "fail", "at least one device",
                             [e["source"] for e in entries] or "no spec found"))
    elif facts.get("present"):
        gpus = facts.get("gpus") or []
        if not gpus:
            checks.append(_check("GPUs listed by nvidia-smi", "fail", ">= 1", 0))
        for gpu in gpus:
            checks.append(_cdi_gpu_check(gpu, devices))
    evidence = {
        "device_present": True,
        "reason": facts.get("reason"),
        "specs": [{"source": e["source"], "error": e["error"],
                   "kind": (e["spec"] or {}).get("kind"),
                   "cdiVersion": (e["spec"] or {}).get("cdiVersion")} for e in entries],
        "devices": sorted("%s=%s" % (CDI_KIND, n) for n in devices),
        "duplicate_devices": duplicates,
        "gpus": [{"index": g.get("index"), "uuid": g.get("uuid"), "minor_number": g.get("minor_number")}
                 for g in facts.get("gpus") or []],
        "checks": checks,
        "source": FACTS_SOURCE + "; CDI specs as listed",
    }
    return make_record("RUNTIME-CDI", role, _combine(checks), evidence)


# --------------------------------------------------------------------------
# Module
# --------------------------------------------------------------------------

def build_records(params, read_text=None, glob_func=glob.glob):
    """All requested records from the module parameters. Raises ValueError on bad input."""
    facts = unwrap_facts(params["gpu_facts"])
    validate_package_state(params.get("package_state") or {})
    for name, pin in (params.get("other_pinned_packages") or {}).items():
        if not isinstance(pin, str) or not pin:
            raise ValueError("other_pinned_packages[%r] must be a version string, got %r" % (name, pin))
    count = params.get("expected_gpu_count")
    if count is not None and count < 1:
        raise ValueError("expected_gpu_count must be at least 1, got %r" % count)
    for key in ("expected_ecc", "expected_persistence", "expected_mig"):
        if params.get(key, "any") not in MODES:
            raise ValueError("%s must be one of %s, got %r" % (key, ", ".join(MODES), params.get(key)))
    records = []
    for control in params.get("controls") or CONTROLS:
        if control == "GPU-DRIVER-PINNED":
            records.append(driver_pinned_record(facts, params.get("driver_version_pin"),
                                                params.get("driver_packages"),
                                                params.get("package_state"),
                                                params.get("other_pinned_packages")))
        elif control == "GPU-HEALTH":
            records.append(health_record(facts, count, params.get("expected_ecc", "any"),
                                         params.get("expected_persistence", "any"),
                                         params.get("expected_mig", "any"),
                                         params.get("require_kernel_log", True)))
        elif control == "RUNTIME-CDI":
            entries = load_cdi_specs(params.get("cdi_specs"), params.get("cdi_spec_paths"),
                                     read_text, glob_func)
            records.append(cdi_record(facts, entries))
        else:
            raise ValueError("controls: unknown control %r (known: %s)" % (control, ", ".join(CONTROLS)))
    return records


def main():
    """Module entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            gpu_facts=dict(type="dict", required=True),
            controls=dict(type="list", elements="str", choices=list(CONTROLS), default=list(CONTROLS)),
            driver_version_pin=dict(type="str"),
            driver_packages=dict(type="list", elements="str", default=[]),
            other_pinned_packages=dict(type="dict", default={}),
            package_state=dict(type="dict", default={}),
            expected_gpu_count=dict(type="int"),
            expected_ecc=dict(type="str", choices=list(MODES), default="any"),
            expected_persistence=dict(type="str", choices=list(MODES), default="any"),
            expected_mig=dict(type="str", choices=list(MODES), default="any"),
            require_kernel_log=dict(type="bool", default=True),
            cdi_specs=dict(type="list", elements="raw", default=[]),
            cdi_spec_paths=dict(type="list", elements="str", default=list(DEFAULT_CDI_PATHS)),
        ),
        supports_check_mode=True,
    )
    try:
        records = build_records(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, records=records,
                     statuses=dict((r["id"], r["status"]) for r in records))


if __name__ == "__main__":
    main()
