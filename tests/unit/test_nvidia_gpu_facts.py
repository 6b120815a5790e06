# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for module_utils/airgap_gpu.py and library/nvidia_gpu_facts.py.

The host is replaced by FakeHost, a test double that replays the synthetic
fixtures in tests/unit/fixtures/nvidia (see the README there).
"""

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible.module_utils import airgap_gpu
from ansible.module_utils.airgap_gpu import (
    REASON_NO_BINARY, REASON_NO_DEVICE, REASON_NO_DRIVER, gather_gpu_facts, parse_modinfo,
    parse_proc_version, parse_smi_csv, parse_smi_xml, parse_xid_lines, upstream_version,
    version_matches_pin,
)

import nvidia_gpu_facts

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nvidia")
SMI = "/usr/bin/nvidia-smi"
H100_PCI = "/sys/bus/pci/devices/0000:19:00.0"


def fixture(name):
    """Text of a fixture file."""
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


class FakeHost(object):
    """Test double for HostProbe: answers from dictionaries and records every command run."""

    def __init__(self, binaries=None, commands=None, files=None, globs=None):
        self.binaries = binaries or {}
        self.commands = commands or {}
        self.files = files or {}
        self.globs = globs or {}
        self.calls = []

    def which(self, name):
        return self.binaries.get(name)

    def run(self, argv):
        self.calls.append(list(argv))
        for prefix, answer in self.commands.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return answer
        return 127, "", "FakeHost: no answer for %s" % " ".join(argv)

    def read_text(self, path):
        return self.files.get(path)

    def glob(self, pattern):
        return sorted(self.globs.get(pattern, []))


def pci_files(path, vendor="0x10de", pci_class="0x030200", device="0x2330"):
    """sysfs files of one PCI function."""
    return {path + "/vendor": vendor + "\n", path + "/class": pci_class + "\n",
            path + "/device": device + "\n"}


def h100_host(**overrides):
    """A FakeHost shaped like the lab's H100 machine: device, driver, nvidia-smi, clean log."""
    files = {airgap_gpu.PROC_VERSION: fixture("proc_version_open_580.txt")}
    files.update(pci_files(H100_PCI))
    host = dict(
        binaries={"nvidia-smi": SMI, "journalctl": "/usr/bin/journalctl", "modinfo": "/usr/sbin/modinfo"},
        commands={
            (SMI, "-q", "-x"): (0, fixture("h100_580_open.xml"), ""),
            ("/usr/bin/journalctl", "-k", "-b"): (0, fixture("kernel_log_clean.txt"), ""),
        },
        files=files,
        globs={"/sys/bus/pci/devices/*": [H100_PCI], airgap_gpu.DEV_NODES_GLOB: ["/dev/nvidia0"],
               airgap_gpu.SYS_MODULE: ["/sys/module/nvidia"]},
    )
    host.update(overrides)
    return FakeHost(**host)


# --------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------

def test_parse_h100_xml():
    parsed = parse_smi_xml(fixture("h100_580_open.xml"))
    assert parsed["driver_version"] == "580.159.04"
    assert parsed["cuda_version"] == "13.0"
    assert parsed["attached_gpus"] == 1
    (gpu,) = parsed["gpus"]
    assert gpu["index"] == 0
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["uuid"] == "GPU-6f3c1a9e-2b47-8d51-c0e4-93a7d5b2f108"
    assert gpu["pci_bus_id"] == "00000000:19:00.0"
    assert gpu["minor_number"] == 0
    assert gpu["memory_total_mib"] == 81559
    assert gpu["ecc_mode_current"] == "enabled"
    assert gpu["ecc_mode_pending"] == "enabled"
    assert gpu["ecc_errors_uncorrected_volatile"] == 0
    assert gpu["persistence_mode"] == "enabled"
    assert gpu["mig_mode_current"] == "disabled"
    assert gpu["temperature_c"] == 31
    assert gpu["power_draw_w"] == pytest.approx(72.15)
    # H100 remaps rows instead of retiring pages.
    assert gpu["retired_pages_pending"] is None
    assert gpu["retired_pages_single_bit"] is None
    assert gpu["remapped_rows_pending"] is False
    assert gpu["remapped_rows_failure"] is False
    assert gpu["remapped_rows_correctable"] == 0


def test_parse_v100_pair_xml():
    parsed = parse_smi_xml(fixture("v100x2_535_proprietary.xml"))
    assert parsed["driver_version"] == "535.261.03"
    assert parsed["cuda_version"] == "12.2"
    assert [g["index"] for g in parsed["gpus"]] == [0, 1]
    assert [g["pci_bus_id"] for g in parsed["gpus"]] == ["00000000:3B:00.0", "00000000:D8:00.0"]
    first, second = parsed["gpus"]
    assert first["name"] == "Tesla V100-PCIE-32GB"
    assert first["memory_total_mib"] == 32768
    assert first["persistence_mode"] == "disabled"
    assert first["mig_mode_current"] is None
    assert first["ecc_mode_current"] == "enabled"
    assert first["power_draw_w"] == pytest.approx(38.71)
    assert first["remapped_rows_pending"] is None
    assert first["retired_pages_pending"] is False
    assert second["retired_pages_single_bit"] == 1
    assert second["retired_pages_double_bit"] == 0
    assert second["minor_number"] == 1


def test_uncorrected_errors_are_summed_across_counter_names():
    xml = fixture("h100_580_open.xml").replace(
        "<sram_uncorrectable_secded>0</sram_uncorrectable_secded>",
        "<sram_uncorrectable_secded>2</sram_uncorrectable_secded>", 1).replace(
        "<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>1</dram_uncorrectable>", 1)
    assert parse_smi_xml(xml)["gpus"][0]["ecc_errors_uncorrected_volatile"] == 3


def test_old_double_bit_layout_and_power_readings():
    xml = ("<nvidia_smi_log><driver_version>470.256.02</driver_version><gpu id='0'>"
           "<ecc_errors><volatile><single_bit><total>4</total></single_bit>"
           "<double_bit><total>2</total></double_bit></volatile></ecc_errors>"
           "<retired_pages><pending_blacklist>Yes</pending_blacklist></retired_pages>"
           "<power_readings><power_draw>55.10 W</power_draw></power_readings></gpu></nvidia_smi_log>")
    gpu = parse_smi_xml(xml)["gpus"][0]
    assert gpu["ecc_errors_uncorrected_volatile"] == 2
    assert gpu["retired_pages_pending"] is True
    assert gpu["power_draw_w"] == pytest.approx(55.1)


@pytest.mark.parametrize("text", ["", "not xml", "<other/>"])
def test_parse_xml_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_smi_xml(text)


def test_parse_csv_fallback():
    parsed = parse_smi_csv(fixture("query_gpu_h100.csv"), fixture("query_remapped_rows_h100.csv"))
    assert parsed["driver_version"] == "580.159.04"
    (gpu,) = parsed["gpus"]
    assert gpu["index"] == 0
    assert gpu["uuid"] == "GPU-6f3c1a9e-2b47-8d51-c0e4-93a7d5b2f108"
    assert gpu["memory_total_mib"] == 81559
    assert gpu["ecc_mode_current"] == "enabled"
    assert gpu["retired_pages_pending"] is None
    assert gpu["persistence_mode"] == "enabled"
    assert gpu["mig_mode_current"] == "disabled"
    assert gpu["power_draw_w"] == pytest.approx(72.15)
    assert gpu["remapped_rows_pending"] is False
    assert gpu["remapped_rows_failure"] is False


def test_parse_csv_rejects_wrong_width():
    with pytest.raises(ValueError):
        parse_smi_csv("0, NVIDIA H100, GPU-x\n")


def test_proc_version_flavours():
    assert parse_proc_version(fixture("proc_version_open_580.txt")) == {
        "flavor": "open", "version": "580.159.04", "source": "/proc/driver/nvidia/version"}
    assert parse_proc_version(fixture("proc_version_proprietary_535.txt")) == {
        "flavor": "proprietary", "version": "535.261.03", "source": "/proc/driver/nvidia/version"}
    assert parse_proc_version("") is None
    assert parse_proc_version("garbage") is None


def test_modinfo_flavours():
    assert parse_modinfo(fixture("modinfo_open_580.txt"))["flavor"] == "open"
    assert parse_modinfo(fixture("modinfo_open_580.txt"))["version"] == "580.159.04"
    proprietary = parse_modinfo(fixture("modinfo_proprietary_535.txt"))
    assert (proprietary["flavor"], proprietary["version"]) == ("proprietary", "535.261.03")
    assert parse_modinfo("license: GPL\nversion: 1.0\n")["flavor"] == "unknown"
    assert parse_modinfo("") is None


def test_xid_lines():
    events = parse_xid_lines(fixture("kernel_log_xid.txt"))
    assert [e["xid"] for e in events] == [48, 63]
    assert events[0]["pci"] == "PCI:0000:d8:00"
    assert "double bit error" in events[0]["detail"]
    assert parse_xid_lines(fixture("kernel_log_clean.txt")) == []


@pytest.mark.parametrize("version,expected", [
    ("580.159.04-1ubuntu1", "580.159.04"),
    ("1:535.261.03-1~deb12u1", "535.261.03"),
    ("580.159.04-*", "580.159.04"),
    ("580.159.04*", "580.159.04"),
    ("580.159.04", "580.159.04"),
    (None, None),
])
def test_upstream_version(version, expected):
    assert upstream_version(version) == expected


def test_version_matches_pin():
    assert version_matches_pin("535.261.03-1~deb12u1", "535.261.03-1~deb12u1")
    assert not version_matches_pin("535.261.03-1~deb12u1", "535.261.03")
    assert version_matches_pin("580.159.04-1ubuntu1", "580.159.04-*")
    assert not version_matches_pin("580.159.05-1ubuntu1", "580.159.04-*")
    assert not version_matches_pin(None, "580.159.04-*")


# --------------------------------------------------------------------------
# gather_gpu_facts
# --------------------------------------------------------------------------

def test_gather_h100():
    host = h100_host()
    facts = gather_gpu_facts(host)
    assert facts["present"] is True
    assert facts["reason"] is None
    assert facts["query_method"] == "xml"
    assert facts["driver_version"] == "580.159.04"
    assert facts["cuda_version"] == "13.0"
    assert facts["kernel_module"] == {"flavor": "open", "version": "580.159.04",
                                      "source": "/proc/driver/nvidia/version"}
    assert facts["devices_detected"]["pci"][0]["address"] == "0000:19:00.0"
    assert facts["devices_detected"]["dev_nodes"] == ["/dev/nvidia0"]
    assert len(facts["gpus"]) == 1
    assert facts["xid_events"] == []
    assert facts["xid_log"]["readable"] is True
    assert facts["xid_log"]["source"] == "journalctl -k -b"


def test_gather_no_device_runs_nothing():
    host = FakeHost(binaries={"nvidia-smi": SMI},
                    files=pci_files("/sys/bus/pci/devices/0000:00:02.0", vendor="0x8086"),
                    globs={"/sys/bus/pci/devices/*": ["/sys/bus/pci/devices/0000:00:02.0"]})
    facts = gather_gpu_facts(host)
    assert facts["present"] is False
    assert facts["reason"] == REASON_NO_DEVICE
    assert facts["gpus"] == []
    assert not [c for c in host.calls if c[0] == SMI]


def test_nvidia_non_display_function_is_not_a_gpu():
    # NVSwitch bridges (class 0x0680) and HDMI audio (0x0403) share the vendor id.
    path = "/sys/bus/pci/devices/0000:05:00.0"
    host = FakeHost(files=pci_files(path, pci_class="0x068000"),
                    globs={"/sys/bus/pci/devices/*": [path]})
    assert gather_gpu_facts(host)["reason"] == REASON_NO_DEVICE


def test_gather_no_binary():
    host = h100_host(binaries={"journalctl": "/usr/bin/journalctl"})
    facts = gather_gpu_facts(host)
    assert (facts["present"], facts["reason"]) == (False, REASON_NO_BINARY)
    assert facts["kernel_module"]["flavor"] == "open"


def test_gather_driver_not_loaded():
    failing = (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "")
    host = h100_host(commands={(SMI,): failing}, files=pci_files(H100_PCI),
                     globs={"/sys/bus/pci/devices/*": [H100_PCI]})
    facts = gather_gpu_facts(host)
    assert (facts["present"], facts["reason"]) == (False, REASON_NO_DRIVER)
    # Both the XML query and the CSV fallback were tried.
    assert [c[1] for c in host.calls if c[0] == SMI][:2] == ["-q", "--query-gpu=" + ",".join(airgap_gpu.CSV_FIELDS)]


def test_gather_smi_fails_with_driver_loaded():
    host = h100_host(commands={(SMI,): (15, "", "Unable to determine the device handle for GPU0000:19:00.0: Unknown Error\n")})
    facts = gather_gpu_facts(host)
    assert facts["present"] is False
    assert facts["reason"] == ("nvidia-smi failed: Unable to determine the device handle for "
                               "GPU0000:19:00.0: Unknown Error")


def test_gather_falls_back_to_csv():
    host = h100_host(commands={
        (SMI, "-q", "-x"): (0, "<nvidia_smi_log><gpu>", ""),
        (SMI, "--query-gpu=" + ",".join(airgap_gpu.CSV_FIELDS)): (0, fixture("query_gpu_h100.csv"), ""),
        (SMI, "--query-remapped-rows=" + ",".join(airgap_gpu.CSV_REMAP_FIELDS)):
            (0, fixture("query_remapped_rows_h100.csv"), ""),
    })
    facts = gather_gpu_facts(host)
    assert facts["present"] is True
    assert facts["query_method"] == "csv"
    assert facts["gpus"][0]["remapped_rows_failure"] is False
    assert facts["driver_version"] == "580.159.04"


def test_gather_modinfo_when_proc_is_missing():
    host = h100_host(files=pci_files(H100_PCI))
    host.commands[("/usr/sbin/modinfo", "nvidia")] = (0, fixture("modinfo_proprietary_535.txt"), "")
    facts = gather_gpu_facts(host)
    assert facts["kernel_module"]["source"] == "modinfo"
    assert facts["kernel_module"]["flavor"] == "proprietary"


def test_gather_xid_events_and_unreadable_log():
    host = h100_host()
    host.commands[("/usr/bin/journalctl", "-k", "-b")] = (0, fixture("kernel_log_xid.txt"), "")
    assert [e["xid"] for e in gather_gpu_facts(host)["xid_events"]] == [48, 63]

    host = h100_host()
    host.binaries = {"nvidia-smi": SMI, "dmesg": "/usr/bin/dmesg"}
    host.commands[("/usr/bin/dmesg",)] = (1, "", "dmesg: read kernel buffer failed: Operation not permitted")
    facts = gather_gpu_facts(host)
    assert facts["present"] is True
    assert facts["xid_log"]["readable"] is False
    assert "Operation not permitted" in facts["xid_log"]["error"]


# --------------------------------------------------------------------------
# Module entry point
# --------------------------------------------------------------------------

def run_facts_module(args, monkeypatch, capsys, host=None):
    """Run nvidia_gpu_facts.main() with module args; return its JSON result."""
    if host is not None:
        monkeypatch.setattr(nvidia_gpu_facts, "HostProbe", lambda timeout: host)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            nvidia_gpu_facts.main()
    return json.loads(capsys.readouterr().out)


def test_module_check_mode_reports_facts(monkeypatch, capsys):
    result = run_facts_module({"_ansible_check_mode": True}, monkeypatch, capsys, h100_host())
    assert result["changed"] is False
    gpu = result["ansible_facts"]["nvidia_gpu"]
    assert gpu["present"] is True
    assert gpu["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"


def test_module_without_device(monkeypatch, capsys):
    result = run_facts_module({}, monkeypatch, capsys, FakeHost())
    assert result["changed"] is False
    assert result["ansible_facts"]["nvidia_gpu"]["reason"] == REASON_NO_DEVICE
    assert "failed" not in result


def test_module_rejects_bad_timeout(monkeypatch, capsys):
    result = run_facts_module({"timeout": 0}, monkeypatch, capsys, FakeHost())
    assert result["failed"] is True
    assert "timeout" in result["msg"]


def test_module_on_this_real_host_never_raises(capsys):
    """The real probe on whatever runs the tests: a GPU host or not, it must answer."""
    with patch_module_args({"_ansible_check_mode": True, "timeout": 30}):
        with pytest.raises(SystemExit):
            nvidia_gpu_facts.main()
    result = json.loads(capsys.readouterr().out)
    gpu = result["ansible_facts"]["nvidia_gpu"]
    assert result["changed"] is False
    assert gpu["present"] is (gpu["reason"] is None)
