# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for library/gpu_evidence.py.

Facts are built from the synthetic fixtures in tests/unit/fixtures/nvidia
with the real parsers; failing variants change one value in memory.
"""

import copy
import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.airgap_evidence import validate_record
from ansible.module_utils.airgap_gpu import (
    REASON_NO_BINARY, REASON_NO_DEVICE, empty_facts, parse_proc_version, parse_smi_xml,
    parse_xid_lines,
)

import gpu_evidence
from gpu_evidence import (
    build_records, cdi_record, driver_pinned_record, health_record, load_cdi_specs,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nvidia")
H100_UUID = "GPU-6f3c1a9e-2b47-8d51-c0e4-93a7d5b2f108"
H100_PIN = "580.159.04-1ubuntu1"
V100_PIN = "535.261.03-1~deb12u1"
H100_PACKAGES = ["nvidia-driver-580-open", "nvidia-utils-580", "libnvidia-compute-580"]


def fixture(name):
    """Text of a fixture file."""
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def facts_from(xml_name, proc_name, log_name="kernel_log_clean.txt", xml_text=None):
    """nvidia_gpu facts as nvidia_gpu_facts builds them, from fixture files."""
    facts = empty_facts()
    facts.update(parse_smi_xml(xml_text or fixture(xml_name)))
    facts["present"] = True
    facts["query_method"] = "xml"
    facts["kernel_module"] = parse_proc_version(fixture(proc_name))
    facts["devices_detected"] = {"pci": [{"address": "0000:19:00.0", "class": "0x030200",
                                          "device_id": "0x2330"}], "dev_nodes": ["/dev/nvidia0"]}
    facts["xid_events"] = parse_xid_lines(fixture(log_name))
    facts["xid_log"] = {"readable": True, "source": "journalctl -k -b", "error": None}
    return facts


def h100_facts(**kwargs):
    return facts_from("h100_580_open.xml", "proc_version_open_580.txt", **kwargs)


def v100_facts(**kwargs):
    return facts_from("v100x2_535_proprietary.xml", "proc_version_proprietary_535.txt", **kwargs)


def no_device_facts():
    facts = empty_facts()
    facts["reason"] = REASON_NO_DEVICE
    return facts


def packages_at(version, names=None, held=True):
    return dict((n, {"version": version, "held": held}) for n in (names or H100_PACKAGES))


def check_statuses(record):
    """check name -> status of a record, for precise assertions."""
    return dict((c["check"], c["status"]) for c in record["evidence"]["checks"])


# --------------------------------------------------------------------------
# GPU-DRIVER-PINNED
# --------------------------------------------------------------------------

def test_pinned_pass_h100():
    record = driver_pinned_record(h100_facts(), H100_PIN, H100_PACKAGES, packages_at(H100_PIN))
    validate_record(record)
    assert record["status"] == "pass"
    assert record["role"] == "nvidia_driver"
    assert record["evidence"]["loaded_driver_version"] == "580.159.04"
    assert record["evidence"]["loaded_driver_source"] == "/proc/driver/nvidia/version"
    assert record["evidence"]["kernel_module"]["flavor"] == "open"


def test_pinned_glob_pin_passes():
    record = driver_pinned_record(h100_facts(), "580.159.04-*", H100_PACKAGES, packages_at(H100_PIN))
    assert record["status"] == "pass"


@pytest.mark.parametrize("mutate,failing", [
    (lambda s: s["nvidia-utils-580"].update(version="580.126.09-0ubuntu1"), "package nvidia-utils-580 version"),
    (lambda s: s["nvidia-utils-580"].update(held=False), "package nvidia-utils-580 held"),
    (lambda s: s.pop("libnvidia-compute-580"), "package libnvidia-compute-580 installed"),
    (lambda s: s["libnvidia-compute-580"].update(version=None), "package libnvidia-compute-580 installed"),
])
def test_pinned_package_failures(mutate, failing):
    state = packages_at(H100_PIN)
    mutate(state)
    record = driver_pinned_record(h100_facts(), H100_PIN, H100_PACKAGES, state)
    assert record["status"] == "fail"
    assert check_statuses(record)[failing] == "fail"


def test_pinned_fails_when_loaded_driver_differs():
    # Packages upgraded to the pin but the old module is still loaded (no reboot).
    facts = h100_facts()
    facts["kernel_module"]["version"] = "580.126.09"
    record = driver_pinned_record(facts, H100_PIN, H100_PACKAGES, packages_at(H100_PIN))
    assert record["status"] == "fail"
    assert check_statuses(record)["loaded kernel driver version"] == "fail"


def test_pinned_fails_without_pin_or_packages():
    record = driver_pinned_record(h100_facts(), None, H100_PACKAGES, packages_at(H100_PIN))
    assert record["status"] == "fail"
    assert check_statuses(record)["driver version pin declared"] == "fail"
    record = driver_pinned_record(h100_facts(), H100_PIN, [], {})
    assert record["status"] == "fail"


def test_pinned_other_packages_have_their_own_pin():
    state = packages_at(H100_PIN)
    state["nvidia-container-toolkit"] = {"version": "1.17.8-1", "held": True}
    others = {"nvidia-container-toolkit": "1.17.8-1"}
    record = driver_pinned_record(h100_facts(), H100_PIN, H100_PACKAGES, state, others)
    assert record["status"] == "pass"
    assert record["evidence"]["packages"]["nvidia-container-toolkit"]["pin"] == "1.17.8-1"
    state["nvidia-container-toolkit"]["version"] = "1.18.0-1"
    record = driver_pinned_record(h100_facts(), H100_PIN, H100_PACKAGES, state, others)
    assert check_statuses(record)["package nvidia-container-toolkit version"] == "fail"
    assert record["status"] == "fail"


def test_pinned_no_device_no_packages_is_not_applicable():
    record = driver_pinned_record(no_device_facts(), V100_PIN, ["nvidia-driver"], {})
    assert record["status"] == "not_applicable"
    assert record["evidence"]["reason"] == REASON_NO_DEVICE


def test_pinned_no_device_judges_installed_packages():
    names = ["nvidia-smi", "libnvidia-ml1"]
    record = driver_pinned_record(no_device_facts(), V100_PIN, names, packages_at(V100_PIN, names))
    assert record["status"] == "pass"
    assert record["evidence"]["device_present"] is False
    assert check_statuses(record)["loaded kernel driver version"] == "not_applicable"

    record = driver_pinned_record(no_device_facts(), V100_PIN, names, packages_at(V100_PIN, names, held=False))
    assert record["status"] == "fail"


def test_pinned_device_without_driver_fails():
    facts = empty_facts()
    facts["reason"] = "driver not loaded"
    facts["devices_detected"] = {"pci": [{"address": "0000:19:00.0"}], "dev_nodes": []}
    record = driver_pinned_record(facts, H100_PIN, H100_PACKAGES, packages_at(H100_PIN))
    assert record["status"] == "fail"
    assert check_statuses(record)["loaded kernel driver version"] == "fail"


# --------------------------------------------------------------------------
# GPU-HEALTH
# --------------------------------------------------------------------------

def test_health_pass_h100():
    record = health_record(h100_facts(), expected_gpu_count=1, expected_ecc="enabled",
                           expected_persistence="enabled", expected_mig="disabled")
    validate_record(record)
    assert record["status"] == "pass", record["evidence"]["checks"]
    assert record["evidence"]["gpu_count"] == 1


def test_health_pass_v100_pair_with_defaults():
    assert health_record(v100_facts())["status"] == "pass"


@pytest.mark.parametrize("kwargs", [
    {"expected_gpu_count": 2},
    {"expected_persistence": "disabled"},
    {"expected_ecc": "disabled"},
    {"expected_mig": "enabled"},
])
def test_health_fails_on_configuration_mismatch(kwargs):
    assert health_record(h100_facts(), **kwargs)["status"] == "fail"


def test_health_v100_persistence_off_fails_when_required():
    record = health_record(v100_facts(), expected_persistence="enabled")
    assert record["status"] == "fail"
    assert check_statuses(record)["gpu 1 (GPU-a41b9f06-7e2d-58c3-91f4-0c6b2d8e3a75) persistence mode"] == "fail"


@pytest.mark.parametrize("old,new", [
    ("<remapped_row_pending>No</remapped_row_pending>", "<remapped_row_pending>Yes</remapped_row_pending>"),
    ("<remapped_row_failure>No</remapped_row_failure>", "<remapped_row_failure>Yes</remapped_row_failure>"),
    ("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>1</dram_uncorrectable>"),
    ("<pending_ecc>Enabled</pending_ecc>", "<pending_ecc>Disabled</pending_ecc>"),
])
def test_health_fails_on_memory_trouble_h100(old, new):
    xml = fixture("h100_580_open.xml")
    assert old in xml
    record = health_record(h100_facts(xml_text=xml.replace(old, new, 1)), expected_ecc="enabled")
    assert record["status"] == "fail"


def test_health_fails_on_pending_page_retirement_v100():
    xml = fixture("v100x2_535_proprietary.xml")
    xml = xml.replace("<pending_retirement>No</pending_retirement>", "<pending_retirement>Yes</pending_retirement>", 1)
    assert health_record(v100_facts(xml_text=xml))["status"] == "fail"


def test_health_fails_on_xid():
    record = health_record(v100_facts(log_name="kernel_log_xid.txt"))
    assert record["status"] == "fail"
    assert len(record["evidence"]["xid_events"]) == 2


def test_health_unreadable_kernel_log():
    facts = h100_facts()
    facts["xid_log"] = {"readable": False, "source": None, "error": "journalctl: not found"}
    assert health_record(facts)["status"] == "error"
    assert health_record(facts, require_kernel_log=False)["status"] == "pass"


def test_health_attached_count_mismatch_fails():
    facts = v100_facts()
    facts["gpus"] = facts["gpus"][:1]
    assert health_record(facts)["status"] == "fail"


def test_health_no_device_not_applicable_but_broken_device_fails():
    record = health_record(no_device_facts())
    assert record["status"] == "not_applicable"
    assert record["evidence"]["reason"] == REASON_NO_DEVICE

    broken = empty_facts()
    broken["reason"] = REASON_NO_BINARY
    broken["devices_detected"] = {"pci": [{"address": "0000:19:00.0"}], "dev_nodes": ["/dev/nvidia0"]}
    assert health_record(broken)["status"] == "fail"


# --------------------------------------------------------------------------
# RUNTIME-CDI
# --------------------------------------------------------------------------

def cdi_entries(text=None):
    return load_cdi_specs([text if text is not None else fixture("cdi_h100_nvidia.yaml")], [])


def test_cdi_pass_h100():
    record = cdi_record(h100_facts(), cdi_entries())
    validate_record(record)
    assert record["status"] == "pass", record["evidence"]["checks"]
    assert record["role"] == "container_runtime"
    assert "nvidia.com/gpu=%s" % H100_UUID in record["evidence"]["devices"]


def test_cdi_pass_by_uuid_only():
    text = fixture("cdi_h100_nvidia.yaml").replace('name: "0"', "name: gpu-zero")
    assert cdi_record(h100_facts(), cdi_entries(text))["status"] == "pass"


def test_cdi_fails_when_gpu_missing():
    # The H100 spec names one GPU; the V100 host has two (and other UUIDs).
    record = cdi_record(v100_facts(), cdi_entries())
    assert record["status"] == "fail"
    statuses = check_statuses(record)
    assert statuses["gpu 1 (GPU-a41b9f06-7e2d-58c3-91f4-0c6b2d8e3a75) has a nvidia.com/gpu device"] == "fail"


def test_cdi_fails_on_stale_device_node():
    text = fixture("cdi_h100_nvidia.yaml").replace("- path: /dev/nvidia0\n  name: \"0\"",
                                                   "- path: /dev/nvidia3\n  name: \"0\"")
    text = text.replace("name: " + H100_UUID, "name: GPU-00000000-0000-0000-0000-000000000000")
    assert cdi_record(h100_facts(), cdi_entries(text))["status"] == "fail"


def test_cdi_fails_without_spec_or_with_broken_spec():
    assert cdi_record(h100_facts(), [])["status"] == "fail"
    assert cdi_record(h100_facts(), cdi_entries("devices: [unclosed"))["status"] == "fail"
    other_kind = fixture("cdi_h100_nvidia.yaml").replace("kind: nvidia.com/gpu", "kind: example.com/fpga")
    assert cdi_record(h100_facts(), cdi_entries(other_kind))["status"] == "fail"


def test_cdi_not_applicable_without_device():
    assert cdi_record(no_device_facts(), cdi_entries())["status"] == "not_applicable"


def test_cdi_reads_files_and_json(tmp_path):
    (tmp_path / "nvidia.yaml").write_text(fixture("cdi_h100_nvidia.yaml"))
    entries = load_cdi_specs([], [str(tmp_path / "*.yaml"), str(tmp_path / "*.json")])
    assert [e["source"] for e in entries] == [str(tmp_path / "nvidia.yaml")]
    assert cdi_record(h100_facts(), entries)["status"] == "pass"

    import yaml
    spec = yaml.safe_load(fixture("cdi_h100_nvidia.yaml"))
    (tmp_path / "nvidia.json").write_text(json.dumps(spec))
    entries = load_cdi_specs([], [str(tmp_path / "*.json")])
    assert cdi_record(h100_facts(), entries)["status"] == "pass"


def test_cdi_without_pyyaml_accepts_json_only(monkeypatch):
    monkeypatch.setattr(gpu_evidence, "HAS_YAML", False)
    (entry,) = cdi_entries()
    assert "PyYAML" in entry["error"]
    import yaml
    (entry,) = cdi_entries(json.dumps(yaml.safe_load(fixture("cdi_h100_nvidia.yaml"))))
    assert entry["error"] is None


# --------------------------------------------------------------------------
# build_records and the module entry point
# --------------------------------------------------------------------------

def params(**overrides):
    base = {"gpu_facts": h100_facts(), "controls": list(gpu_evidence.CONTROLS),
            "driver_version_pin": H100_PIN, "driver_packages": H100_PACKAGES,
            "package_state": packages_at(H100_PIN), "expected_gpu_count": None,
            "expected_ecc": "enabled", "expected_persistence": "enabled", "expected_mig": "disabled",
            "require_kernel_log": True, "cdi_specs": [fixture("cdi_h100_nvidia.yaml")],
            "cdi_spec_paths": []}
    base.update(overrides)
    return base


def test_build_records_all_pass_and_unwraps_ansible_facts():
    records = build_records(params(gpu_facts={"nvidia_gpu": h100_facts()}))
    assert [(r["id"], r["status"]) for r in records] == [
        ("GPU-DRIVER-PINNED", "pass"), ("GPU-HEALTH", "pass"), ("RUNTIME-CDI", "pass")]


@pytest.mark.parametrize("overrides,word", [
    ({"gpu_facts": {"gpus": []}}, "present"),
    ({"package_state": {"nvidia-utils-580": {"version": "1"}}}, "package_state['nvidia-utils-580']"),
    ({"package_state": {"nvidia-utils-580": {"version": "1", "held": "yes"}}}, "held"),
    ({"expected_gpu_count": 0}, "expected_gpu_count"),
    ({"controls": ["GPU-FOO"]}, "controls"),
    ({"other_pinned_packages": {"nvidia-container-toolkit": None}}, "other_pinned_packages"),
])
def test_build_records_validation(overrides, word):
    with pytest.raises(ValueError) as err:
        build_records(params(**overrides))
    assert word in str(err.value)


def run_evidence_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            gpu_evidence.main()
    return json.loads(capsys.readouterr().out)


def test_module_check_mode(capsys):
    args = params()
    args["_ansible_check_mode"] = True
    del args["expected_gpu_count"]
    result = run_evidence_module(args, capsys)
    assert result["changed"] is False
    assert result["statuses"] == {"GPU-DRIVER-PINNED": "pass", "GPU-HEALTH": "pass", "RUNTIME-CDI": "pass"}
    for record in result["records"]:
        validate_record(record)


def test_module_without_device_is_not_applicable(capsys):
    result = run_evidence_module({"gpu_facts": no_device_facts(), "driver_version_pin": V100_PIN,
                                  "driver_packages": ["nvidia-driver"], "cdi_spec_paths": []}, capsys)
    assert result["changed"] is False
    assert set(result["statuses"].values()) == {"not_applicable"}


def test_module_reports_bad_input(capsys):
    result = run_evidence_module({"gpu_facts": {"nothing": 1}}, capsys)
    assert result["failed"] is True
    assert "gpu_facts" in result["msg"]


def test_records_do_not_share_state_with_facts():
    facts = h100_facts()
    before = copy.deepcopy(facts)
    build_records(params(gpu_facts=facts))
    assert facts == before
