# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for filter_plugins/gpu_stack_filters.py (nvidia_driver, container_runtime).

The container toolkit cannot be installed in the lab (it is not in Debian's
archive), so its validation, pin check and evidence are covered here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.errors import AnsibleFilterError
from ansible.module_utils.airgap_evidence import make_record, validate_record
from gpu_stack_filters import (
    FilterModule, GpuStackConfigError, NOT_EXERCISED_CTK, TOOLKIT_PACKAGES, annotate, apt_names, check_pins,
    container_runtime_podman_settings, driver_settings, package_state, parse_madison, pin_errors,
    podman_evidence, podman_settings, runtime_cdi_evidence, runtime_settings,
)

FAMILY = {"packages": ["nvidia-smi", "libnvidia-ml1"], "dkms_package": "nvidia-kernel-dkms",
          "paths": {"headers_dir": "/lib/modules/6.1.0-1-amd64/build"}}
MIRROR = "http://mirror.lab.internal"
MADISON = """\
nvidia-smi | 535.261.03-1 | http://mirror.lab.internal/debian bookworm/main amd64 Packages
nvidia-smi | 535.216.03-2~bpo12+1 | http://mirror.lab.internal/debian bookworm/main amd64 Packages
libnvidia-ml1 | 535.261.03-1 | http://mirror.lab.internal/debian bookworm/main amd64 Packages
libnvidia-ml1 | 535.100.00-1 | http://deb.debian.org/debian bookworm/non-free amd64 Packages
"""


def driver_input(**over):
    inputs = {
        "nvidia_driver_version": "535.261.03-1", "nvidia_driver_branch": "535",
        "nvidia_driver_packages": [], "nvidia_driver_kernel_module_strategy": "none",
        "nvidia_driver_signed_packages": [], "nvidia_driver_blacklist_nouveau": True,
        "nvidia_driver_persistenced": True, "nvidia_driver_reboot": False,
        "nvidia_driver_reboot_timeout": 900, "nvidia_driver_install_recommends": False,
        "nvidia_driver_expected_gpu_count": None, "nvidia_driver_expected_ecc": "any",
        "nvidia_driver_expected_persistence": "any", "nvidia_driver_expected_mig": "any",
    }
    inputs.update(over)
    return inputs


def runtime_input(**over):
    inputs = {
        "container_runtime_toolkit_install": True, "container_runtime_toolkit_version": "1.17.8-1",
        "container_runtime_toolkit_packages": list(TOOLKIT_PACKAGES),
        "container_runtime_nvidia_ctk": "/usr/bin/nvidia-ctk", "container_runtime_cdi_spec": "/etc/cdi/nvidia.json",
        "container_runtime_dev_char_symlinks": True,
    }
    inputs.update(over)
    return inputs


# --------------------------------------------------------------------------
# nvidia_driver settings
# --------------------------------------------------------------------------

def test_driver_defaults_to_family_packages_all_at_the_pin():
    settings = driver_settings(driver_input(), FAMILY)
    assert settings["pinned"] == [{"name": "nvidia-smi", "version": "535.261.03-1"},
                                  {"name": "libnvidia-ml1", "version": "535.261.03-1"}]
    assert settings["held"] == ["nvidia-smi", "libnvidia-ml1"]
    assert settings["dkms_package"] is None


def test_dkms_adds_the_module_package_at_the_same_pin():
    settings = driver_settings(driver_input(nvidia_driver_kernel_module_strategy="dkms"), FAMILY)
    assert {"name": "nvidia-kernel-dkms", "version": "535.261.03-1"} in settings["pinned"]
    assert "nvidia-kernel-dkms" in settings["held"]


def test_signed_needs_packages_and_holds_them():
    with pytest.raises(GpuStackConfigError, match="nvidia_driver_signed_packages: must name"):
        driver_settings(driver_input(nvidia_driver_kernel_module_strategy="signed"), FAMILY)
    settings = driver_settings(driver_input(nvidia_driver_kernel_module_strategy="signed",
                                            nvidia_driver_signed_packages=["linux-modules-nvidia-535-server-generic"]),
                               FAMILY)
    assert settings["held"][-1] == "linux-modules-nvidia-535-server-generic"


@pytest.mark.parametrize("over, message", [
    ({"nvidia_driver_kernel_module_strategy": "magic"}, "nvidia_driver_kernel_module_strategy: 'magic' is not one of dkms, signed, none"),
    ({"nvidia_driver_version": ""}, "nvidia_driver_version: '' must be an exact package version"),
    ({"nvidia_driver_version": "535.*"}, "nvidia_driver_version: '535.*' must be an exact package version"),
    ({"nvidia_driver_version": "550.54.15-1"}, "nvidia_driver_version: '550.54.15-1' is not on branch nvidia_driver_branch '535'"),
    ({"nvidia_driver_branch": "5"}, "nvidia_driver_branch: '5' must be the driver branch"),
    ({"nvidia_driver_packages": ["ok", "Bad Name"]}, "nvidia_driver_packages[1]: 'Bad Name' is not a package name"),
    ({"nvidia_driver_reboot": "yes"}, "nvidia_driver_reboot: 'yes' must be true or false"),
    ({"nvidia_driver_reboot_timeout": 5}, "nvidia_driver_reboot_timeout: 5 must be whole seconds"),
    ({"nvidia_driver_expected_ecc": "on"}, "nvidia_driver_expected_ecc: 'on' is not one of"),
    ({"nvidia_driver_expected_gpu_count": 0}, "nvidia_driver_expected_gpu_count: 0 must be empty"),
    ({"nvidia_driver_signed_packages": ["x1"]}, "only used with nvidia_driver_kernel_module_strategy 'signed'"),
])
def test_driver_bad_input_names_the_variable(over, message):
    with pytest.raises(GpuStackConfigError) as exc:
        driver_settings(driver_input(**over), FAMILY)
    assert message in str(exc.value)
    assert "nothing was changed" in str(exc.value)


def test_driver_reports_every_problem_at_once():
    with pytest.raises(GpuStackConfigError) as exc:
        driver_settings(driver_input(nvidia_driver_kernel_module_strategy="x", nvidia_driver_reboot=None), FAMILY)
    assert "nvidia_driver_kernel_module_strategy" in str(exc.value)
    assert "nvidia_driver_reboot:" in str(exc.value)


def test_driver_refuses_the_redhat_family_for_now():
    with pytest.raises(GpuStackConfigError, match="'RedHat' is not supported"):
        driver_settings(driver_input(), FAMILY, "RedHat")


# --------------------------------------------------------------------------
# container_runtime settings
# --------------------------------------------------------------------------

def test_toolkit_all_four_pinned_together():
    settings = runtime_settings(runtime_input())
    assert [p["version"] for p in settings["toolkit"]] == ["1.17.8-1"] * 4
    assert settings["held"] == list(TOOLKIT_PACKAGES)


def test_toolkit_per_package_version_must_equal_the_shared_one():
    packages = list(TOOLKIT_PACKAGES)
    packages[1] = {"name": packages[1], "version": "1.17.7-1"}
    with pytest.raises(GpuStackConfigError) as exc:
        runtime_settings(runtime_input(container_runtime_toolkit_packages=packages))
    assert ("container_runtime_toolkit_packages[1]: nvidia-container-toolkit-base pinned at '1.17.7-1' but "
            "container_runtime_toolkit_version is '1.17.8-1'") in str(exc.value)
    packages[1] = {"name": "nvidia-container-toolkit-base", "version": "1.17.8-1"}
    assert runtime_settings(runtime_input(container_runtime_toolkit_packages=packages))["toolkit"][1]["version"] == "1.17.8-1"


def test_toolkit_missing_package_and_version_refused():
    with pytest.raises(GpuStackConfigError) as exc:
        runtime_settings(runtime_input(container_runtime_toolkit_version="",
                                       container_runtime_toolkit_packages=list(TOOLKIT_PACKAGES[:3])))
    assert "container_runtime_toolkit_version: '' must be an exact package version" in str(exc.value)
    assert "lacks libnvidia-container1" in str(exc.value)


def test_toolkit_not_installed_needs_no_version():
    settings = runtime_settings(runtime_input(container_runtime_toolkit_install=False, container_runtime_toolkit_version=""))
    assert settings["toolkit"] == [] and settings["held"] == []


@pytest.mark.parametrize("over, message", [
    ({"container_runtime_cdi_spec": "/etc/cdi/nvidia.yaml"}, "must end in .json"),
    ({"container_runtime_nvidia_ctk": "nvidia-ctk"}, "container_runtime_nvidia_ctk: 'nvidia-ctk' must be an absolute path"),
    ({"container_runtime_dev_char_symlinks": "true"}, "container_runtime_dev_char_symlinks: 'true' must be true or false"),
    ({"container_runtime_toolkit_packages": [{"name": "x1", "pin": "1"}]}, "unknown key(s) pin"),
])
def test_runtime_bad_input_names_the_variable(over, message):
    with pytest.raises(GpuStackConfigError) as exc:
        runtime_settings(runtime_input(**over))
    assert message in str(exc.value)


# --------------------------------------------------------------------------
# Pins on the mirror
# --------------------------------------------------------------------------

def test_parse_madison():
    offers = parse_madison(MADISON + "N: Unable to locate package foo\n")
    assert [o["version"] for o in offers["nvidia-smi"]] == ["535.261.03-1", "535.216.03-2~bpo12+1"]
    assert "foo" not in offers


def test_pin_on_the_mirror_passes():
    pinned = [{"name": "nvidia-smi", "version": "535.216.03-2~bpo12+1"}]
    assert check_pins(MADISON, pinned, "nvidia_driver_version", MIRROR) == pinned


def test_pin_not_on_the_mirror_lists_what_is_offered():
    errors = pin_errors(MADISON, [{"name": "nvidia-smi", "version": "535.999.99-1"}], "nvidia_driver_version", MIRROR)
    assert errors == ["nvidia_driver_version: '535.999.99-1' of nvidia-smi is not on the mirror "
                      "(the mirror offers 535.216.03-2~bpo12+1, 535.261.03-1)"]


def test_a_version_only_another_source_offers_does_not_count():
    errors = pin_errors(MADISON, [{"name": "libnvidia-ml1", "version": "535.100.00-1"}], "v", MIRROR)
    assert errors and "not on the mirror" in errors[0]
    assert pin_errors(MADISON, [{"name": "libnvidia-ml1", "version": "535.100.00-1"}], "v") == []


def test_package_absent_from_the_mirror():
    errors = pin_errors(MADISON, [{"name": "nvidia-kernel-dkms", "version": "535.261.03-1"}], "nvidia_driver_version", MIRROR)
    assert errors == ["nvidia_driver_version: nvidia-kernel-dkms is not on the mirror at all (pinned '535.261.03-1')"]


def test_check_pins_filter_raises_ansible_error():
    pins = FilterModule().filters()["gpu_stack_check_pins"]
    with pytest.raises(AnsibleFilterError, match="nothing was changed"):
        pins("", [{"name": "nvidia-smi", "version": "1-1"}], "nvidia_driver_version")


# --------------------------------------------------------------------------
# Package state
# --------------------------------------------------------------------------

def test_package_state_reads_version_and_hold():
    text = ("nvidia-smi\t535.216.03-2~bpo12+1\thold ok installed\n"
            "libnvidia-ml1:amd64\t535.216.03-2~bpo12+1\tinstall ok installed\n"
            "nvidia-alternative\t535.216.03-2~bpo12+1\tdeinstall ok config-files\n")
    state = package_state(text, ["nvidia-smi", "libnvidia-ml1", "nvidia-alternative", "nvidia-legacy-check"])
    assert state["nvidia-smi"] == {"version": "535.216.03-2~bpo12+1", "held": True}
    assert state["libnvidia-ml1"] == {"version": "535.216.03-2~bpo12+1", "held": False}
    assert state["nvidia-alternative"] == {"version": None, "held": False}
    assert state["nvidia-legacy-check"] == {"version": None, "held": False}


# --------------------------------------------------------------------------
# Evidence
# --------------------------------------------------------------------------

def _cdi_record(status="not_applicable"):
    return make_record("RUNTIME-CDI", "container_runtime", status,
                       {"device_present": status != "not_applicable", "reason": "no NVIDIA device (...)", "checks": []})


def test_annotate_adds_evidence_and_keeps_status():
    record = _cdi_record("pass")
    out = annotate([record], {"RUNTIME-CDI": {"kernel_module_strategy": "none"}})
    assert out[0]["evidence"]["kernel_module_strategy"] == "none"
    assert out[0]["status"] == "pass"
    assert "kernel_module_strategy" not in record["evidence"]


def test_cdi_without_nvidia_ctk_says_not_exercised_and_stays_not_applicable():
    settings = runtime_settings(runtime_input(container_runtime_toolkit_install=False))
    out = runtime_cdi_evidence(_cdi_record(), settings, {}, False)
    validate_record(out)
    assert out["status"] == "not_applicable"
    assert any(NOT_EXERCISED_CTK in line for line in out["evidence"]["not_exercised"])
    assert out["evidence"]["nvidia_ctk"] == {"path": "/usr/bin/nvidia-ctk", "present": False}


def test_toolkit_off_pin_or_unheld_fails_even_without_a_device():
    settings = runtime_settings(runtime_input())
    state = dict((n, {"version": "1.17.8-1", "held": True}) for n in TOOLKIT_PACKAGES)
    assert runtime_cdi_evidence(_cdi_record(), settings, state, True)["status"] == "not_applicable"
    state["libnvidia-container1"] = {"version": "1.17.9-1", "held": True}
    state["nvidia-container-toolkit"] = {"version": "1.17.8-1", "held": False}
    out = runtime_cdi_evidence(_cdi_record(), settings, state, True)
    assert out["status"] == "fail"
    failed = [c["check"] for c in out["evidence"]["checks"] if c["status"] == "fail"]
    assert failed == ["package nvidia-container-toolkit held", "package libnvidia-container1 version"]


def test_cdi_evidence_never_improves_a_status():
    settings = runtime_settings(runtime_input())
    state = dict((n, {"version": "1.17.8-1", "held": True}) for n in TOOLKIT_PACKAGES)
    assert runtime_cdi_evidence(_cdi_record("fail"), settings, state, True)["status"] == "fail"


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "nvidia_driver_settings", "container_runtime_settings", "gpu_stack_check_pins",
        "gpu_stack_package_state", "gpu_stack_annotate", "container_runtime_cdi_evidence",
        "container_runtime_podman_settings", "container_runtime_podman_evidence", "container_runtime_apt_names"}


# --------------------------------------------------------------------------
# podman (RUNTIME-PODMAN)
# --------------------------------------------------------------------------

def podman_input(**over):
    data = {"container_runtime_podman_install": True,
            "container_runtime_podman_packages": [{"name": "podman", "version": "4.3.1+ds1-8+deb12u1+b3"}, "runc",
                                                  "netavark"],
            "container_runtime_podman_oci_runtime": "runc", "container_runtime_podman_storage_driver": "overlay",
            "container_runtime_podman_cgroup_manager": "systemd", "container_runtime_podman_default_ulimits": []}
    data.update(over)
    return data


def podman_info(**over):
    info = {"host": {"ociRuntime": {"name": "runc"}, "cgroupManager": "systemd", "networkBackend": "netavark"},
            "store": {"graphDriverName": "overlay"}, "registries": {}, "version": {"Version": "4.3.1"}}
    for key, value in over.items():
        section, field = key.split("__")
        info[section][field] = value
    return json.dumps(info)


def podman_state(held=True, podman="4.3.1+ds1-8+deb12u1+b3"):
    return {"podman": {"version": podman, "held": held}, "runc": {"version": "1.1.5", "held": held},
            "netavark": {"version": "1.4.0-3", "held": held}}


def test_podman_settings_split_pinned_and_candidate_packages():
    out = podman_settings(podman_input())
    assert out["packages"][1] == {"name": "runc", "version": None}
    assert out["pinned"] == [{"name": "podman", "version": "4.3.1+ds1-8+deb12u1+b3"}]
    assert out["held"] == ["podman", "runc", "netavark"]
    assert apt_names(out["packages"]) == ["podman=4.3.1+ds1-8+deb12u1+b3", "runc", "netavark"]


@pytest.mark.parametrize("over,needle", [
    ({"container_runtime_podman_oci_runtime": "kata"}, "container_runtime_podman_oci_runtime: 'kata' is not one of"),
    ({"container_runtime_podman_storage_driver": "zfs"}, "container_runtime_podman_storage_driver"),
    ({"container_runtime_podman_cgroup_manager": "none"}, "container_runtime_podman_cgroup_manager"),
    ({"container_runtime_podman_default_ulimits": ["nofile 4096"]}, "container_runtime_podman_default_ulimits[0]"),
    ({"container_runtime_podman_packages": ["runc"]}, "lacks podman"),
    ({"container_runtime_podman_packages": ["podman"]}, "lacks runc, which container_runtime_podman_oci_runtime"),
    ({"container_runtime_podman_packages": ["podman", "runc", "podman"]}, "container_runtime_podman_packages[2]: 'podman' is listed twice"),
    ({"container_runtime_podman_packages": [{"name": "podman", "version": "4.*"}, "runc"]}, "container_runtime_podman_packages[0].version"),
    ({"container_runtime_podman_packages": [{"name": "podman", "arch": "amd64"}, "runc"]}, "unknown key(s) arch"),
    ({"container_runtime_podman_packages": []}, "container_runtime_podman_packages: must be a non-empty list"),
    ({"container_runtime_podman_install": "yes"}, "container_runtime_podman_install"),
])
def test_podman_settings_name_the_bad_variable(over, needle):
    with pytest.raises(AnsibleFilterError) as err:
        container_runtime_podman_settings(podman_input(**over))
    assert needle in str(err.value)
    assert "nothing was changed" in str(err.value)


def test_podman_evidence_passes_only_when_podman_reports_the_declared_engine():
    settings = podman_settings(podman_input())
    record = podman_evidence(settings, podman_state(), podman_info(), 0)
    validate_record(record)
    assert record["id"] == "RUNTIME-PODMAN" and record["status"] == "pass"
    assert record["evidence"]["podman_version"] == "4.3.1"


@pytest.mark.parametrize("state,info,failed", [
    (podman_state(held=False), podman_info(), "package podman held"),
    (podman_state(podman="4.3.1+ds1-8"), podman_info(), "package podman version"),
    (podman_state(), podman_info(registries__search=["docker.io"]), "unqualified-search registries"),
    (podman_state(), podman_info(host__ociRuntime={"name": "crun"}), "OCI runtime"),
    (podman_state(), podman_info(store__graphDriverName="vfs"), "storage driver"),
    (podman_state(), podman_info(host__networkBackend="cni"), "network backend"),
])
def test_podman_evidence_fails_on_each_drift(state, info, failed):
    record = podman_evidence(podman_settings(podman_input()), state, info, 0)
    assert record["status"] == "fail"
    assert failed in [c["check"] for c in record["evidence"]["checks"] if c["status"] == "fail"]


def test_podman_evidence_is_error_when_podman_info_fails_and_na_when_unmanaged():
    settings = podman_settings(podman_input())
    assert podman_evidence(settings, podman_state(), "", 125)["status"] == "error"
    assert podman_evidence(settings, podman_state(), "not json", 0)["status"] == "error"
    off = podman_settings(podman_input(container_runtime_podman_install=False))
    assert podman_evidence(off, {}, "", -1)["status"] == "not_applicable"


def test_podman_evidence_flags_a_missing_unpinned_package():
    settings = podman_settings(podman_input())
    state = podman_state()
    state["runc"] = {"version": None, "held": False}
    record = podman_evidence(settings, state, podman_info(), 0)
    assert record["status"] == "fail"
    assert "package runc installed" in [c["check"] for c in record["evidence"]["checks"] if c["status"] == "fail"]
