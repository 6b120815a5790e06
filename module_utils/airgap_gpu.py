# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA GPU facts: what the host's GPUs, driver and kernel log say.

The ``nvidia_gpu_facts`` module, the ``gpu_evidence`` module and plain
scripts share this code. It reads the host only through a probe object
(:class:`HostProbe`), so unit tests can hand it a test double that replays
recorded or synthetic command output instead of touching a real GPU.

Nothing here raises on a host without a GPU: such a host gets
``present: false`` and a ``reason`` that says why, because CI and the lab
never have a GPU and must still run every verify step.

Standard library only, Python 3.8 or later: the GPU hosts run the module
with whatever interpreter they have and nothing may be installed for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import glob
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

PROC_VERSION = "/proc/driver/nvidia/version"
SYS_MODULE = "/sys/module/nvidia"
PCI_DEVICES = "/sys/bus/pci/devices"
DEV_NODES_GLOB = "/dev/nvidia[0-9]*"
NVIDIA_PCI_VENDOR = "0x10de"
# PCI base class 0x03 is "display controller": 0x0300 VGA, 0x0302 3D (data-centre cards).
DISPLAY_CLASS_PREFIX = "0x03"

REASON_NO_DEVICE = ("no NVIDIA device (/dev/nvidia* absent and no PCI vendor 10de "
                    "display/3D device in /sys/bus/pci/devices)")
REASON_NO_BINARY = "no nvidia-smi binary"
REASON_NO_DRIVER = "driver not loaded"
REASON_SMI_FAILED = "nvidia-smi failed: %s"

# Fields for the CSV fallback, in the order the parser expects them. All are
# documented ``--query-gpu`` fields; an unknown one would fail the whole query.
CSV_FIELDS = (
    "index", "name", "uuid", "pci.bus_id", "memory.total",
    "ecc.mode.current", "ecc.mode.pending", "ecc.errors.uncorrected.volatile.total",
    "retired_pages.pending", "persistence_mode", "mig.mode.current",
    "temperature.gpu", "power.draw", "driver_version",
)
CSV_REMAP_FIELDS = ("gpu_uuid", "remapped_rows.correctable", "remapped_rows.uncorrectable",
                    "remapped_rows.pending", "remapped_rows.failure")

# Values nvidia-smi prints when a field does not apply to the card or driver.
_NOT_AVAILABLE = frozenset((
    "", "n/a", "[n/a]", "not supported", "[not supported]", "none",
    "requested functionality has been deprecated", "unknown error", "[unknown error]",
))

XID_RE = re.compile(r"NVRM: Xid \(([^)]*)\): (\d+),?\s*(.*)$")
_MAX_ERROR_CHARS = 500


class HostProbe(object):
    """Read-only access to the real host.

    Unit tests replace it with a test double offering the same four methods.
    Commands run with ``LC_ALL=C`` so their output has one known format, and
    with a timeout because nvidia-smi can hang on a wedged GPU.
    """

    def __init__(self, timeout=60):
        self.timeout = timeout

    def which(self, name):
        """Return the path of an executable, also searching the sbin folders."""
        extra = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"))
        path = os.environ.get("PATH", "")
        return shutil.which(name, path=path + os.pathsep + extra if path else extra)

    def run(self, argv):
        """Run a command; return (rc, stdout, stderr). A missing binary or a timeout is rc 127/124."""
        env = dict(os.environ, LC_ALL="C", LANG="C")
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env, timeout=self.timeout, check=False)
        except OSError as exc:
            return 127, "", str(exc)
        except subprocess.TimeoutExpired:
            return 124, "", "timed out after %ss: %s" % (self.timeout, " ".join(argv))
        return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
                proc.stderr.decode("utf-8", "replace"))

    def read_text(self, path):
        """Return a file's text, or None when it is missing or unreadable."""
        try:
            with open(path, "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except (IOError, OSError):
            return None

    def glob(self, pattern):
        """Return the sorted paths matching a shell pattern."""
        return sorted(glob.glob(pattern))


# --------------------------------------------------------------------------
# Small value parsers
# --------------------------------------------------------------------------

def _clean(value):
    """Strip a value and map nvidia-smi's "not available" spellings to None."""
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in _NOT_AVAILABLE else value


def _number(value, kind=int):
    """Parse the leading number of "81559 MiB", "32 C" or "69.45 W"; None if absent."""
    value = _clean(value)
    if value is None:
        return None
    match = re.match(r"^-?\d+(\.\d+)?", value)
    if not match:
        return None
    return kind(float(match.group(0))) if kind is int else kind(match.group(0))


def _mode(value):
    """Normalise Enabled/Disabled to lower case; None when not applicable."""
    value = _clean(value)
    return value.lower() if value is not None else None


def _yes_no(value):
    """Map Yes/No to True/False; None when not applicable."""
    value = _clean(value)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("yes", "true", "1"):
        return True
    if lowered in ("no", "false", "0"):
        return False
    return None


def _error_text(rc, out, err):
    """The most useful one-line reason from a failed command."""
    text = (err or "").strip() or (out or "").strip() or "exit status %s" % rc
    text = " ".join(text.split())
    return text[:_MAX_ERROR_CHARS]


def upstream_version(version):
    """The upstream part of a package version or apt pin.

    ``1:580.159.04-1ubuntu1`` -> ``580.159.04``; ``535.261.03-1~deb12u1`` ->
    ``535.261.03``; ``580.159.04-*`` -> ``580.159.04``. The kernel module
    reports only the upstream part, so this is what it is compared with.
    """
    if version is None:
        return None
    version = str(version).strip()
    version = re.sub(r"^\d+:", "", version)
    if "-" in version:
        version = version.split("-", 1)[0]
    return version.rstrip("*?.~+") or None


def version_matches_pin(installed, pin):
    """True when an installed package version is exactly the pin.

    A pin with glob characters (apt's ``Pin: version 580.159.04-*``) matches
    as a glob, as apt would; otherwise the whole version must be equal, so a
    pin without a Debian revision does not match a revision, as in apt.
    """
    if installed is None or pin is None:
        return False
    installed, pin = str(installed).strip(), str(pin).strip()
    if any(c in pin for c in "*?["):
        return fnmatch.fnmatchcase(installed, pin)
    return installed == pin


# --------------------------------------------------------------------------
# nvidia-smi -q -x
# --------------------------------------------------------------------------

def _find_text(elem, path):
    """Text of the sub-element at ``path`` (cleaned), or None."""
    if elem is None:
        return None
    found = elem.find(path)
    return _clean(found.text) if found is not None else None


def _uncorrected_volatile(gpu):
    """Sum of the volatile uncorrectable ECC counters, whatever the driver calls them.

    Drivers before R470 nest them as ``double_bit/total``; R535 has
    ``sram_uncorrectable`` and ``dram_uncorrectable``; R550 and later split
    SRAM into ``_parity`` and ``_secded``. All of them count.
    """
    volatile = gpu.find("ecc_errors/volatile")
    if volatile is None:
        return None
    double_bit = volatile.find("double_bit/total")
    if double_bit is not None:
        return _number(double_bit.text)
    counts = [_number(child.text) for child in volatile if "uncorrectable" in child.tag]
    counts = [c for c in counts if c is not None]
    return sum(counts) if counts else None


def _power_draw(gpu):
    """Power draw in watts across the element names drivers have used."""
    for path in ("gpu_power_readings/power_draw", "gpu_power_readings/instant_power_draw",
                 "gpu_power_readings/average_power_draw", "power_readings/power_draw"):
        value = _number(_find_text(gpu, path), float)
        if value is not None:
            return value
    return None


def _empty_gpu():
    """A GPU record with every documented key, so consumers see one shape."""
    return {
        "index": None, "name": None, "uuid": None, "pci_bus_id": None, "minor_number": None,
        "memory_total_mib": None, "ecc_mode_current": None, "ecc_mode_pending": None,
        "ecc_errors_uncorrected_volatile": None,
        "retired_pages_single_bit": None, "retired_pages_double_bit": None,
        "retired_pages_pending": None,
        "remapped_rows_correctable": None, "remapped_rows_uncorrectable": None,
        "remapped_rows_pending": None, "remapped_rows_failure": None,
        "persistence_mode": None, "mig_mode_current": None,
        "temperature_c": None, "power_draw_w": None,
    }


def _parse_xml_gpu(index, gpu):
    """One ``<gpu>`` element as a GPU record."""
    record = _empty_gpu()
    pending = _yes_no(_find_text(gpu, "retired_pages/pending_retirement"))
    if pending is None:
        # Drivers before R450 called it pending_blacklist.
        pending = _yes_no(_find_text(gpu, "retired_pages/pending_blacklist"))
    record.update({
        # nvidia-smi lists GPUs in its own index order, which is what CUDA,
        # --query-gpu=index and the CDI names "0", "1", ... use.
        "index": index,
        "name": _find_text(gpu, "product_name"),
        "uuid": _find_text(gpu, "uuid"),
        "pci_bus_id": _find_text(gpu, "pci/pci_bus_id") or _clean(gpu.get("id")),
        "minor_number": _number(_find_text(gpu, "minor_number")),
        "memory_total_mib": _number(_find_text(gpu, "fb_memory_usage/total")),
        "ecc_mode_current": _mode(_find_text(gpu, "ecc_mode/current_ecc")),
        "ecc_mode_pending": _mode(_find_text(gpu, "ecc_mode/pending_ecc")),
        "ecc_errors_uncorrected_volatile": _uncorrected_volatile(gpu),
        "retired_pages_single_bit": _number(
            _find_text(gpu, "retired_pages/multiple_single_bit_retirement/retired_count")),
        "retired_pages_double_bit": _number(
            _find_text(gpu, "retired_pages/double_bit_retirement/retired_count")),
        "retired_pages_pending": pending,
        "remapped_rows_correctable": _number(_find_text(gpu, "remapped_rows/remapped_row_corr")),
        "remapped_rows_uncorrectable": _number(_find_text(gpu, "remapped_rows/remapped_row_unc")),
        "remapped_rows_pending": _yes_no(_find_text(gpu, "remapped_rows/remapped_row_pending")),
        "remapped_rows_failure": _yes_no(_find_text(gpu, "remapped_rows/remapped_row_failure")),
        "persistence_mode": _mode(_find_text(gpu, "persistence_mode")),
        "mig_mode_current": _mode(_find_text(gpu, "mig_mode/current_mig")),
        "temperature_c": _number(_find_text(gpu, "temperature/gpu_temp")),
        "power_draw_w": _power_draw(gpu),
    })
    return record


def parse_smi_xml(text):
    """Parse ``nvidia-smi -q -x`` output.

    Returns ``{"driver_version", "cuda_version", "attached_gpus", "gpus"}``.
    Raises ValueError when the text is not an ``nvidia_smi_log`` document.
    """
    try:
        root = ElementTree.fromstring(text.strip().encode("utf-8"))
    except ElementTree.ParseError as exc:
        raise ValueError("nvidia-smi XML does not parse: %s" % exc)
    if root.tag != "nvidia_smi_log":
        raise ValueError("nvidia-smi XML root is <%s>, not <nvidia_smi_log>" % root.tag)
    gpus = [_parse_xml_gpu(i, gpu) for i, gpu in enumerate(root.findall("gpu"))]
    return {
        "driver_version": _find_text(root, "driver_version"),
        "cuda_version": _find_text(root, "cuda_version"),
        "attached_gpus": _number(_find_text(root, "attached_gpus")),
        "gpus": gpus,
    }


# --------------------------------------------------------------------------
# nvidia-smi --query-gpu (fallback)
# --------------------------------------------------------------------------

def _csv_rows(text, width):
    """Split ``--format=csv,noheader,nounits`` output into rows of ``width`` cells."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != width:
            # GPU names never contain commas; a wrong width means a format we do not know.
            raise ValueError("nvidia-smi CSV line has %d fields, expected %d: %r"
                             % (len(cells), width, line))
        rows.append(cells)
    return rows


def parse_smi_csv(text, remap_text=None):
    """Parse the CSV fallback (fields in CSV_FIELDS order) and optional remapped-rows CSV."""
    gpus = []
    driver_version = None
    for cells in _csv_rows(text, len(CSV_FIELDS)):
        row = dict(zip(CSV_FIELDS, cells))
        record = _empty_gpu()
        record.update({
            "index": _number(row["index"]),
            "name": _clean(row["name"]),
            "uuid": _clean(row["uuid"]),
            "pci_bus_id": _clean(row["pci.bus_id"]),
            "memory_total_mib": _number(row["memory.total"]),
            "ecc_mode_current": _mode(row["ecc.mode.current"]),
            "ecc_mode_pending": _mode(row["ecc.mode.pending"]),
            "ecc_errors_uncorrected_volatile": _number(row["ecc.errors.uncorrected.volatile.total"]),
            "retired_pages_pending": _yes_no(row["retired_pages.pending"]),
            "persistence_mode": _mode(row["persistence_mode"]),
            "mig_mode_current": _mode(row["mig.mode.current"]),
            "temperature_c": _number(row["temperature.gpu"]),
            "power_draw_w": _number(row["power.draw"], float),
        })
        driver_version = driver_version or _clean(row["driver_version"])
        gpus.append(record)
    if remap_text:
        by_uuid = dict((g["uuid"], g) for g in gpus)
        for cells in _csv_rows(remap_text, len(CSV_REMAP_FIELDS)):
            row = dict(zip(CSV_REMAP_FIELDS, cells))
            gpu = by_uuid.get(_clean(row["gpu_uuid"]))
            if gpu is None:
                continue
            gpu["remapped_rows_correctable"] = _number(row["remapped_rows.correctable"])
            gpu["remapped_rows_uncorrectable"] = _number(row["remapped_rows.uncorrectable"])
            gpu["remapped_rows_pending"] = _yes_no(row["remapped_rows.pending"])
            gpu["remapped_rows_failure"] = _yes_no(row["remapped_rows.failure"])
    return {"driver_version": driver_version, "cuda_version": None,
            "attached_gpus": len(gpus), "gpus": gpus}


# --------------------------------------------------------------------------
# Kernel module, devices, kernel log
# --------------------------------------------------------------------------

def parse_proc_version(text):
    """Flavour and version from /proc/driver/nvidia/version.

    The open module says "NVIDIA UNIX Open Kernel Module for x86_64  580.159.04 ...",
    the proprietary one "NVIDIA UNIX x86_64 Kernel Module  535.261.03 ...".
    """
    if not text:
        return None
    first = next((line for line in text.splitlines() if line.startswith("NVRM")), "")
    if "Kernel Module" not in first:
        return None
    match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)", first)
    return {
        "flavor": "open" if "Open Kernel Module" in first else "proprietary",
        "version": match.group(1) if match else None,
        "source": PROC_VERSION,
    }


def parse_modinfo(text):
    """Flavour and version from ``modinfo nvidia``.

    The open module is licensed "Dual MIT/GPL", the proprietary one "NVIDIA".
    modinfo describes the module on disk for the running kernel, which is not
    necessarily the loaded one: it is the fallback when /proc says nothing.
    """
    fields = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("license", "version") and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if not fields:
        return None
    license_ = fields.get("license", "")
    if license_ == "Dual MIT/GPL":
        flavor = "open"
    elif license_ == "NVIDIA":
        flavor = "proprietary"
    else:
        flavor = "unknown"
    return {"flavor": flavor, "version": fields.get("version"), "source": "modinfo",
            "license": license_ or None}


def kernel_module_info(probe):
    """The NVIDIA kernel module's flavour, version and where that was read."""
    info = parse_proc_version(probe.read_text(PROC_VERSION))
    if info:
        return info
    modinfo = probe.which("modinfo")
    # Debian builds the proprietary module as nvidia-current.ko.
    for name in ("nvidia", "nvidia-current") if modinfo else ():
        rc, out, _err = probe.run([modinfo, name])
        info = parse_modinfo(out) if rc == 0 else None
        if info:
            return info
    return {"flavor": "unknown", "version": None, "source": None}


def detect_devices(probe):
    """NVIDIA display/3D PCI functions and /dev/nvidiaN nodes."""
    pci = []
    for path in probe.glob(os.path.join(PCI_DEVICES, "*")):
        vendor = (probe.read_text(os.path.join(path, "vendor")) or "").strip().lower()
        pci_class = (probe.read_text(os.path.join(path, "class")) or "").strip().lower()
        if vendor == NVIDIA_PCI_VENDOR and pci_class.startswith(DISPLAY_CLASS_PREFIX):
            device = (probe.read_text(os.path.join(path, "device")) or "").strip().lower()
            pci.append({"address": os.path.basename(path), "class": pci_class,
                        "device_id": device or None})
    return {"pci": pci, "dev_nodes": probe.glob(DEV_NODES_GLOB)}


def driver_loaded(probe):
    """True when the kernel says an nvidia module is loaded."""
    return (probe.read_text(PROC_VERSION) is not None
            or bool(probe.glob(SYS_MODULE)))


def parse_xid_lines(text):
    """Xid events from kernel log text (journalctl or dmesg lines)."""
    events = []
    for line in (text or "").splitlines():
        match = XID_RE.search(line)
        if match:
            events.append({"pci": match.group(1), "xid": int(match.group(2)),
                           "detail": match.group(3).strip(), "line": line.strip()})
    return events


def collect_xid(probe):
    """Xid events since boot, and whether the kernel log could be read at all.

    journalctl is asked for the whole kernel log of this boot and filtered
    here, because ``journalctl -g`` needs PCRE support and its exit status
    for "no match" differs between systemd versions. dmesg is the fallback
    (it may be denied by kernel.dmesg_restrict, or the ring buffer may have
    wrapped; the source says which was used).
    """
    attempts = []
    journalctl = probe.which("journalctl")
    if journalctl:
        argv = [journalctl, "-k", "-b", "--no-pager", "-q", "-o", "short-iso"]
        rc, out, err = probe.run(argv)
        if rc == 0:
            return {"readable": True, "source": "journalctl -k -b", "error": None,
                    "events": parse_xid_lines(out)}
        attempts.append("journalctl: %s" % _error_text(rc, out, err))
    dmesg = probe.which("dmesg")
    if dmesg:
        rc, out, err = probe.run([dmesg])
        if rc == 0 and out.strip():
            return {"readable": True, "source": "dmesg", "error": None,
                    "events": parse_xid_lines(out)}
        attempts.append("dmesg: %s" % _error_text(rc, out, err if rc else "empty output"))
    if not attempts:
        attempts.append("neither journalctl nor dmesg found")
    return {"readable": False, "source": None, "error": "; ".join(attempts), "events": []}


# --------------------------------------------------------------------------
# Everything together
# --------------------------------------------------------------------------

def empty_facts():
    """The facts of a host with no usable GPU; every key is present."""
    return {
        "present": False,
        "reason": None,
        "collected_by": "nvidia_gpu_facts",
        "query_method": None,
        "nvidia_smi_path": None,
        "driver_version": None,
        "cuda_version": None,
        "attached_gpus": None,
        "kernel_module": {"flavor": "unknown", "version": None, "source": None},
        "devices_detected": {"pci": [], "dev_nodes": []},
        "gpus": [],
        "xid_events": [],
        "xid_log": {"readable": False, "source": None, "error": "not collected"},
    }


def query_smi(probe, smi):
    """Run nvidia-smi, XML first then CSV. Returns (parsed or None, method, error text)."""
    rc, out, err = probe.run([smi, "-q", "-x"])
    xml_error = None
    if rc == 0:
        try:
            return parse_smi_xml(out), "xml", None
        except ValueError as exc:
            xml_error = str(exc)
    else:
        xml_error = _error_text(rc, out, err)
    rc, out, err = probe.run([smi, "--query-gpu=" + ",".join(CSV_FIELDS),
                              "--format=csv,noheader,nounits"])
    if rc != 0:
        # The XML error is reported: it is the primary query and usually the same cause.
        return None, None, xml_error
    remap_rc, remap_out, _remap_err = probe.run(
        [smi, "--query-remapped-rows=" + ",".join(CSV_REMAP_FIELDS),
         "--format=csv,noheader,nounits"])
    try:
        parsed = parse_smi_csv(out, remap_out if remap_rc == 0 else None)
    except ValueError as exc:
        return None, None, "%s; CSV fallback: %s" % (xml_error, exc)
    return parsed, "csv", None


def gather_gpu_facts(probe, nvidia_smi_path=None, xid=True):
    """Collect the ``nvidia_gpu`` facts. Never raises for an absent GPU or driver.

    The order of the checks gives each kind of host its most useful reason:
    a CI runner has no device, a lab node has the packages but no device, a
    GPU host without userland lacks the binary, one whose module is missing
    has no driver loaded.
    """
    facts = empty_facts()
    facts["kernel_module"] = kernel_module_info(probe)
    facts["devices_detected"] = detect_devices(probe)
    detected = facts["devices_detected"]
    if not detected["pci"] and not detected["dev_nodes"]:
        facts["reason"] = REASON_NO_DEVICE
        return facts
    if xid:
        log = collect_xid(probe)
        facts["xid_events"] = log.pop("events")
        facts["xid_log"] = log
    smi = nvidia_smi_path or probe.which("nvidia-smi")
    if not smi:
        facts["reason"] = REASON_NO_BINARY
        return facts
    facts["nvidia_smi_path"] = smi
    parsed, method, error = query_smi(probe, smi)
    if parsed is None:
        # nvidia-smi cannot talk to a module that is not there; say so plainly.
        facts["reason"] = REASON_NO_DRIVER if not driver_loaded(probe) else REASON_SMI_FAILED % error
        return facts
    facts.update(parsed)
    facts["present"] = True
    facts["query_method"] = method
    return facts
