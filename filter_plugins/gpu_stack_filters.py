# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the nvidia_driver and container_runtime roles.

Input validation (all problems at once, each naming its variable), the check
that every pinned version is really on the mirror (from ``apt-cache madison``
output), the host's package state (from ``dpkg-query``), and the annotations
that the roles add to the records of library/gpu_evidence.py.

Design decisions an auditor should find in one place:

* **Pinned together.** The driver packages share one version
  (``nvidia_driver_version``); the four container toolkit packages share one
  (``container_runtime_toolkit_version``). A per-package version that differs
  is refused: mixed userland versions are what makes NVML report
  "driver/library version mismatch".
* **The pin must exist on the mirror before anything is installed.** apt
  would otherwise fail half-way through a converge, or on a host whose lists
  are stale install something else.
* **Evidence is not invented here.** The statuses come from gpu_evidence;
  these filters only add what the roles observed (strategy, persistence
  daemon, nvidia-ctk presence, toolkit packages) and may only make a status
  worse, never better.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import sys

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.airgap_evidence import make_record, worst_status
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record, worst_status  # noqa: E402

# Debian policy 5.6.1 / 5.6.12: package names and versions.
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
VERSION_RE = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$")
RPM_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
BRANCH_RE = re.compile(r"^[0-9]{3}$")
ABS_PATH_RE = re.compile(r"^(/[A-Za-z0-9_.+-]+)+$")

STRATEGIES = ("dkms", "signed", "none")
MODES = ("enabled", "disabled", "any")
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                    "libnvidia-container-tools", "libnvidia-container1")

NOT_EXERCISED_CTK = "not exercised: nvidia-ctk not installed"

OCI_RUNTIMES = ("runc", "crun")
STORAGE_DRIVERS = ("overlay", "vfs")
CGROUP_MANAGERS = ("systemd", "cgroupfs")
# podman's --ulimit syntax: nofile=4096:4096 (soft:hard) or nofile=4096.
ULIMIT_RE = re.compile(r"^[a-z]+=(-1|[0-9]+)(:(-1|[0-9]+))?$")


class GpuStackConfigError(ValueError):
    """Invalid role input; the message lists every problem found."""


# --------------------------------------------------------------------------
# Small validators
# --------------------------------------------------------------------------

def _upstream(version):
    """``1:535.261.03-1`` -> ``535.261.03``."""
    version = re.sub(r"^[0-9]+:", "", str(version))
    return version.split("-", 1)[0]


def _bool(inputs, var, errors):
    value = inputs.get(var)
    if not isinstance(value, bool):
        errors.append("%s: %r must be true or false" % (var, value))
        return False
    return value


def _names(value, var, errors, family="Debian", allow_empty=False):
    """A list of package names; every bad entry is named with its index."""
    if not isinstance(value, list):
        errors.append("%s: must be a list of package names, got %r" % (var, value))
        return []
    if not value and not allow_empty:
        errors.append("%s: must name at least one package" % var)
    regex = PACKAGE_RE if family == "Debian" else RPM_NAME_RE
    names = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not regex.match(name):
            errors.append("%s[%d]: %r is not a package name" % (var, i, name))
            continue
        if name in names:
            errors.append("%s[%d]: %r is listed twice" % (var, i, name))
            continue
        names.append(name)
    return names


def _version(value, var, errors, required=True):
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not VERSION_RE.match(value):
        errors.append("%s: %r must be an exact package version such as 535.261.03-1 "
                      "(no wildcards: the pin is what the audit compares with)" % (var, value))
        return None
    return value


def _choice(inputs, var, choices, errors):
    value = inputs.get(var)
    if value not in choices:
        errors.append("%s: %r is not one of %s" % (var, value, ", ".join(choices)))
        return None
    return value


# --------------------------------------------------------------------------
# nvidia_driver
# --------------------------------------------------------------------------

def driver_settings(inputs, family_vars, family="Debian"):
    """Validate the nvidia_driver_* inputs and return the role's settings.

    ``inputs`` maps each variable name to its value; ``family_vars`` is the
    OS family's vars file (package names, paths). Raises GpuStackConfigError
    listing every problem, each naming its variable.
    """
    inputs, fam = dict(inputs or {}), dict(family_vars or {})
    errors = []
    if family not in ("Debian",):
        raise GpuStackConfigError(
            "nvidia_driver: ansible_facts.os_family %r is not supported by the tasks yet "
            "(vars/RedHat.yml documents the package names; only the Debian family is implemented "
            "and tested), nothing was changed" % family)
    version = _version(inputs.get("nvidia_driver_version"), "nvidia_driver_version", errors)
    branch = inputs.get("nvidia_driver_branch")
    if not isinstance(branch, str) or not BRANCH_RE.match(branch):
        errors.append("nvidia_driver_branch: %r must be the driver branch as three digits, "
                      "for example '535' (quoted)" % (branch,))
    elif version and not _upstream(version).startswith(branch + "."):
        errors.append("nvidia_driver_version: %r is not on branch nvidia_driver_branch %r"
                      % (version, branch))
    strategy = _choice(inputs, "nvidia_driver_kernel_module_strategy", STRATEGIES, errors)
    given = inputs.get("nvidia_driver_packages")
    packages = _names(given if given else fam.get("packages", []), "nvidia_driver_packages", errors)
    signed = _names(inputs.get("nvidia_driver_signed_packages", []), "nvidia_driver_signed_packages",
                    errors, allow_empty=True)
    if strategy == "signed" and not signed:
        errors.append("nvidia_driver_signed_packages: must name the precompiled, signed kernel module "
                      "packages when nvidia_driver_kernel_module_strategy is 'signed'")
    if strategy != "signed" and signed:
        errors.append("nvidia_driver_signed_packages: only used with nvidia_driver_kernel_module_strategy "
                      "'signed', not %r" % (strategy,))
    dkms_package = fam.get("dkms_package")
    pinned = list(packages)
    if strategy == "dkms" and dkms_package and dkms_package not in pinned:
        pinned.append(dkms_package)
    flags = dict((var, _bool(inputs, var, errors)) for var in (
        "nvidia_driver_blacklist_nouveau", "nvidia_driver_persistenced", "nvidia_driver_reboot",
        "nvidia_driver_install_recommends"))
    timeout = inputs.get("nvidia_driver_reboot_timeout")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 60 <= timeout <= 7200:
        errors.append("nvidia_driver_reboot_timeout: %r must be whole seconds from 60 to 7200" % (timeout,))
    expected = {}
    for key in ("ecc", "persistence", "mig"):
        expected[key] = _choice(inputs, "nvidia_driver_expected_" + key, MODES, errors)
    count = inputs.get("nvidia_driver_expected_gpu_count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        errors.append("nvidia_driver_expected_gpu_count: %r must be empty or a whole number >= 1" % (count,))
    if errors:
        raise GpuStackConfigError("nvidia_driver: invalid input, nothing was changed: " + "; ".join(errors))
    return {
        "family": family,
        "version": version,
        "branch": branch,
        "strategy": strategy,
        "packages": packages,
        "pinned": [{"name": n, "version": version} for n in pinned],
        "signed_packages": signed,
        "held": pinned + signed,
        "dkms_package": dkms_package if strategy == "dkms" else None,
        "blacklist_nouveau": flags["nvidia_driver_blacklist_nouveau"],
        "persistenced": flags["nvidia_driver_persistenced"],
        "reboot": flags["nvidia_driver_reboot"],
        "reboot_timeout": timeout,
        "install_recommends": flags["nvidia_driver_install_recommends"],
        "expected": {"gpu_count": count, "ecc": expected["ecc"], "persistence": expected["persistence"],
                     "mig": expected["mig"]},
        "paths": dict(fam.get("paths") or {}),
    }


# --------------------------------------------------------------------------
# container_runtime
# --------------------------------------------------------------------------

def runtime_settings(inputs, family="Debian"):
    """Validate the container_runtime_* inputs and return the role's settings.

    The toolkit packages are a list of names or ``{name, version}``; a
    version given per package must equal ``container_runtime_toolkit_version``
    (pinned together), and all four toolkit packages must be listed.
    """
    inputs = dict(inputs or {})
    errors = []
    install = _bool(inputs, "container_runtime_toolkit_install", errors)
    version = _version(inputs.get("container_runtime_toolkit_version"), "container_runtime_toolkit_version",
                       errors, required=install)
    raw = inputs.get("container_runtime_toolkit_packages")
    pinned = []
    if not isinstance(raw, list):
        errors.append("container_runtime_toolkit_packages: must be a list, got %r" % (raw,))
        raw = []
    for i, entry in enumerate(raw):
        where = "container_runtime_toolkit_packages[%d]" % i
        name, own = (entry, None) if isinstance(entry, str) else (
            (entry.get("name"), entry.get("version")) if isinstance(entry, dict) else (None, None))
        if isinstance(entry, dict) and sorted(set(entry) - {"name", "version"}):
            errors.append("%s: unknown key(s) %s (allowed: name, version)"
                          % (where, ", ".join(sorted(set(entry) - {"name", "version"}))))
        if not isinstance(name, str) or not PACKAGE_RE.match(name):
            errors.append("%s: %r is not a package name" % (where, entry))
            continue
        if own is not None and own != version:
            errors.append("%s: %s pinned at %r but container_runtime_toolkit_version is %r; the toolkit "
                          "packages must be pinned together at one version" % (where, name, own, version))
        if name in [p["name"] for p in pinned]:
            errors.append("%s: %r is listed twice" % (where, name))
            continue
        pinned.append({"name": name, "version": version})
    missing = [p for p in TOOLKIT_PACKAGES if p not in [q["name"] for q in pinned]]
    if install and missing:
        errors.append("container_runtime_toolkit_packages: lacks %s; the four toolkit packages (%s) are "
                      "pinned and upgraded together" % (", ".join(missing), ", ".join(TOOLKIT_PACKAGES)))
    paths = {}
    for var in ("container_runtime_nvidia_ctk", "container_runtime_cdi_spec"):
        value = inputs.get(var)
        if not isinstance(value, str) or not ABS_PATH_RE.match(value):
            errors.append("%s: %r must be an absolute path" % (var, value))
        paths[var] = value
    spec = paths["container_runtime_cdi_spec"] or ""
    if spec and not spec.endswith(".json"):
        # gpu_evidence reads JSON without PyYAML on the host; podman reads both.
        errors.append("container_runtime_cdi_spec: %r must end in .json (the spec is written as JSON so "
                      "that the audit can read it without PyYAML on the host)" % spec)
    dev_char = _bool(inputs, "container_runtime_dev_char_symlinks", errors)
    if errors:
        raise GpuStackConfigError("container_runtime: invalid input, nothing was changed: " + "; ".join(errors))
    return {"family": family, "install_toolkit": install, "toolkit_version": version,
            "toolkit": pinned if install else [], "held": [p["name"] for p in pinned] if install else [],
            "nvidia_ctk": paths["container_runtime_nvidia_ctk"], "cdi_spec": spec,
            "dev_char_symlinks": dev_char}


def _package_pins(raw, var, errors):
    """A list of names or {name, version} (version optional) as [{name, version or None}]."""
    if not isinstance(raw, list) or not raw:
        errors.append("%s: must be a non-empty list of package names or {name, version}, got %r" % (var, raw))
        return []
    pins = []
    for i, entry in enumerate(raw):
        where = "%s[%d]" % (var, i)
        if isinstance(entry, dict):
            extra = sorted(set(entry) - {"name", "version"})
            if extra:
                errors.append("%s: unknown key(s) %s (allowed: name, version)" % (where, ", ".join(extra)))
            name, version = entry.get("name"), _version(entry.get("version"), where + ".version", errors,
                                                        required=False)
        else:
            name, version = entry, ""
        if not isinstance(name, str) or not PACKAGE_RE.match(name):
            errors.append("%s: %r is not a package name" % (where, entry))
            continue
        if name in [p["name"] for p in pins]:
            errors.append("%s: %r is listed twice" % (where, name))
            continue
        pins.append({"name": name, "version": version or None})
    return pins


def podman_settings(inputs):
    """Validate the container_runtime_podman_* inputs and return the podman settings.

    Packages without a version are installed at the mirror's candidate and
    then held, so the hold freezes what the mirror served; a version makes
    the pin explicit and is checked against the mirror before any change.
    The OCI runtime must be among the installed packages: podman would
    otherwise fall back to whatever runtime happens to be on the host.
    """
    inputs = dict(inputs or {})
    errors = []
    install = _bool(inputs, "container_runtime_podman_install", errors)
    pins = _package_pins(inputs.get("container_runtime_podman_packages"), "container_runtime_podman_packages", errors)
    runtime = _choice(inputs, "container_runtime_podman_oci_runtime", OCI_RUNTIMES, errors)
    driver = _choice(inputs, "container_runtime_podman_storage_driver", STORAGE_DRIVERS, errors)
    cgroups = _choice(inputs, "container_runtime_podman_cgroup_manager", CGROUP_MANAGERS, errors)
    ulimits = inputs.get("container_runtime_podman_default_ulimits")
    if not isinstance(ulimits, list):
        errors.append("container_runtime_podman_default_ulimits: must be a list, got %r" % (ulimits,))
        ulimits = []
    for i, item in enumerate(ulimits):
        if not isinstance(item, str) or not ULIMIT_RE.match(item):
            errors.append("container_runtime_podman_default_ulimits[%d]: %r is not NAME=SOFT[:HARD], "
                          "for example nofile=4096:4096" % (i, item))
    names = [p["name"] for p in pins]
    if install and pins:
        for needed in ("podman", runtime):
            if needed and needed not in names:
                errors.append("container_runtime_podman_packages: lacks %s, which %s needs" % (
                    needed, "the role installs" if needed == "podman" else
                    "container_runtime_podman_oci_runtime"))
    if errors:
        raise GpuStackConfigError("container_runtime: invalid input, nothing was changed: " + "; ".join(errors))
    return {"install": install, "packages": pins if install else [], "held": names if install else [],
            "pinned": [p for p in pins if p["version"]] if install else [],
            "oci_runtime": runtime, "storage_driver": driver, "cgroup_manager": cgroups,
            "default_ulimits": list(ulimits)}


def apt_names(pins):
    """[{name, version}] as apt arguments: ``name=version``, or ``name`` where no version is pinned."""
    return [p["name"] + ("=" + p["version"] if p.get("version") else "") for p in pins or []]


def _podman_check(name, expected, observed):
    return {"check": name, "status": "pass" if expected == observed else "fail",
            "expected": expected, "observed": observed}


def podman_evidence(settings, state, info_json, info_rc, frameworks=None, title=None):
    """RUNTIME-PODMAN: podman from the mirror, held, configured as declared, with no registry search.

    ``state`` is package_state() of the managed packages; ``info_json`` and
    ``info_rc`` come from ``podman info --format json`` on the live host, so
    what is judged is what podman itself reports, not the rendered files.
    An empty ``registries.search`` is what stops a short image name such as
    ``vllm-openai`` from ever resolving to a public registry.
    """
    role = "container_runtime"
    if not settings.get("install"):
        return make_record("RUNTIME-PODMAN", role, "not_applicable", {
            "reason": "container_runtime_podman_install is false: podman is not managed by this role"},
            title=title, frameworks=frameworks)
    checks = []
    for item in settings.get("packages") or []:
        entry = (state or {}).get(item["name"]) or {"version": None, "held": False}
        if item["version"]:
            checks.append(_podman_check("package %s version" % item["name"], item["version"], entry["version"]))
        else:
            checks.append({"check": "package %s installed" % item["name"],
                           "status": "pass" if entry["version"] else "fail",
                           "expected": "installed (mirror candidate)", "observed": entry["version"]})
        checks.append(_podman_check("package %s held" % item["name"], True, entry["held"]))
    evidence = {"packages": dict((p["name"], (state or {}).get(p["name"])) for p in settings.get("packages") or [])}
    try:
        info = json.loads(info_json) if info_rc == 0 else None
    except ValueError:
        info = None
    if info is None:
        evidence.update({"checks": checks, "podman_info": "podman info failed (rc %s)" % info_rc})
        return make_record("RUNTIME-PODMAN", role, "error", evidence, title=title, frameworks=frameworks)
    host, store = info.get("host") or {}, info.get("store") or {}
    search = (info.get("registries") or {}).get("search") or []
    checks += [
        _podman_check("OCI runtime", settings.get("oci_runtime"), (host.get("ociRuntime") or {}).get("name")),
        _podman_check("storage driver", settings.get("storage_driver"), store.get("graphDriverName")),
        _podman_check("cgroup manager", settings.get("cgroup_manager"), host.get("cgroupManager")),
        _podman_check("network backend", "netavark", host.get("networkBackend")),
        _podman_check("unqualified-search registries", [], list(search)),
    ]
    evidence.update({"checks": checks, "podman_version": (info.get("version") or {}).get("Version")})
    status = worst_status([c["status"] for c in checks])
    return make_record("RUNTIME-PODMAN", role, status, evidence, title=title, frameworks=frameworks)


# --------------------------------------------------------------------------
# The mirror and the host's packages
# --------------------------------------------------------------------------

def parse_madison(text):
    """``apt-cache madison`` output as {package: [{version, source}]}.

    Lines look like `` nvidia-smi | 535.261.03-1 | http://mirror/debian bookworm/main amd64 Packages``.
    """
    offers = {}
    for line in (text or "").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 3 or not cells[0] or not cells[1]:
            continue
        offers.setdefault(cells[0], []).append({"version": cells[1], "source": cells[2]})
    return offers


def pin_errors(madison_text, pinned, var, mirror_url=None):
    """Errors for every pinned {name, version} the mirror does not offer at that version.

    ``mirror_url`` (optional) must prefix the source of the matching offer: a
    version that only another source offers does not count.
    """
    offers = parse_madison(madison_text)
    errors = []
    for item in pinned or []:
        name, version = item["name"], item["version"]
        available = offers.get(name, [])
        if mirror_url:
            base = mirror_url.rstrip("/") + "/"
            available = [o for o in available if o["source"].startswith(base)]
        if not available:
            errors.append("%s: %s is not on the mirror at all (pinned %r)" % (var, name, version))
        elif version not in [o["version"] for o in available]:
            errors.append("%s: %r of %s is not on the mirror (the mirror offers %s)"
                          % (var, version, name, ", ".join(sorted(set(o["version"] for o in available)))))
    return errors


def check_pins(madison_text, pinned, var, mirror_url=None):
    """Raise GpuStackConfigError when a pin is not on the mirror; else return the pins."""
    errors = pin_errors(madison_text, pinned, var, mirror_url)
    if errors:
        raise GpuStackConfigError("pinned version not on the mirror, nothing was changed: " + "; ".join(errors))
    return pinned


def package_state(dpkg_text, names=None):
    """``dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n'`` as {name: {version, held}}.

    Only a package whose status ends in ``installed`` has a version; the
    selection ``hold`` (first word of the status) is the apt/dpkg hold.
    ``names`` adds an entry ``{version: None, held: False}`` for every name
    dpkg does not know, so the evidence lists it as missing.
    """
    state = {}
    for line in (dpkg_text or "").splitlines():
        cells = line.split("\t")
        if len(cells) != 3:
            continue
        name, version, status = cells[0].split(":")[0], cells[1], cells[2].split()
        installed = len(status) == 3 and status[2] == "installed"
        state[name] = {"version": version if installed and version else None,
                       "held": bool(status) and status[0] == "hold"}
    for name in names or []:
        state.setdefault(name, {"version": None, "held": False})
    return state


# --------------------------------------------------------------------------
# Evidence annotations
# --------------------------------------------------------------------------

def annotate(records, extras):
    """Records with ``extras[id]`` merged into their evidence (copies; statuses unchanged)."""
    out = []
    for record in records or []:
        record = copy.deepcopy(record)
        record["evidence"] = dict(record.get("evidence") or {})
        record["evidence"].update((extras or {}).get(record.get("id"), {}))
        out.append(record)
    return out


def _toolkit_checks(toolkit, state):
    """Installed at the pin and held, per toolkit package."""
    checks = []
    for item in toolkit:
        entry = state.get(item["name"]) or {"version": None, "held": False}
        ok_version = entry["version"] == item["version"]
        checks.append({"check": "package %s version" % item["name"], "status": "pass" if ok_version else "fail",
                       "expected": item["version"], "observed": entry["version"]})
        checks.append({"check": "package %s held" % item["name"], "status": "pass" if entry["held"] else "fail",
                       "expected": True, "observed": entry["held"]})
    return checks


def runtime_cdi_evidence(record, settings, state, ctk_present, dev_char=None):
    """RUNTIME-CDI from gpu_evidence, plus what container_runtime itself manages.

    Adds the toolkit packages (each at the pin and held when the role installs
    them) and whether nvidia-ctk was there to generate the spec. A toolkit
    problem makes the record ``fail`` even on a host without a GPU (the pin
    is a supply-chain property); nothing here turns a status into ``pass``.
    """
    record = copy.deepcopy(record)
    evidence = dict(record.get("evidence") or {})
    checks = list(evidence.get("checks") or [])
    toolkit_checks = _toolkit_checks(settings.get("toolkit") or [], state or {})
    exercised = []
    if not ctk_present:
        exercised.append("%s (%s absent): the CDI spec was not generated and the /dev/char symlinks "
                         "were not created" % (NOT_EXERCISED_CTK, settings.get("nvidia_ctk")))
    if not settings.get("install_toolkit"):
        exercised.append("not exercised: container_runtime_toolkit_install is false, the toolkit packages "
                         "were not installed or pinned by this role")
    evidence.update({
        "nvidia_ctk": {"path": settings.get("nvidia_ctk"), "present": bool(ctk_present)},
        "cdi_spec_file": settings.get("cdi_spec"),
        "toolkit": {"managed": bool(settings.get("install_toolkit")), "version_pin": settings.get("toolkit_version"),
                    "packages": dict((p["name"], (state or {}).get(p["name"])) for p in settings.get("toolkit") or [])},
        "dev_char_symlinks": dev_char,
        "not_exercised": exercised,
        "checks": checks + toolkit_checks,
    })
    failed = [c["status"] for c in toolkit_checks if c["status"] != "pass"]
    if failed:
        record["status"] = worst_status([record["status"]] + failed)
    record["evidence"] = evidence
    return record


# --------------------------------------------------------------------------
# Filter wrappers
# --------------------------------------------------------------------------

def _wrap(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except GpuStackConfigError as exc:
        raise AnsibleFilterError(str(exc))


def nvidia_driver_settings(inputs, family_vars, family="Debian"):
    """Validate the nvidia_driver_* inputs; return the settings."""
    return _wrap(driver_settings, inputs, family_vars, family)


def container_runtime_settings(inputs, family="Debian"):
    """Validate the container_runtime_* inputs; return the settings."""
    return _wrap(runtime_settings, inputs, family)


def container_runtime_podman_settings(inputs):
    """Validate the container_runtime_podman_* inputs; return the podman settings."""
    return _wrap(podman_settings, inputs)


def gpu_stack_check_pins(madison_text, pinned, var, mirror_url=None):
    """Fail unless every pinned {name, version} is offered by the mirror."""
    return _wrap(check_pins, madison_text, pinned, var, mirror_url)


class FilterModule(object):
    """nvidia_driver and container_runtime filters."""

    def filters(self):
        return {
            "nvidia_driver_settings": nvidia_driver_settings,
            "container_runtime_settings": container_runtime_settings,
            "gpu_stack_check_pins": gpu_stack_check_pins,
            "gpu_stack_package_state": package_state,
            "gpu_stack_annotate": annotate,
            "container_runtime_cdi_evidence": runtime_cdi_evidence,
            "container_runtime_podman_settings": container_runtime_podman_settings,
            "container_runtime_podman_evidence": podman_evidence,
            "container_runtime_apt_names": apt_names,
        }
