# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the host_hardening role: input validation, the settings it writes, and its evidence.

The parsing and judging live in ``module_utils/airgap_host.py`` (shared with
the ``listening_sockets`` module); these filters feed it what the role's
tasks read from the host and shape the HOST-SSHD, HOST-SYSCTL and
HOST-JOURNAL records.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import sys

try:
    from ansible.module_utils.airgap_evidence import make_record
    from ansible.module_utils import airgap_host as host
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record  # noqa: E402
    import airgap_host as host  # noqa: E402

ROLE = "host_hardening"
PREFIX = "host_hardening_"

# The fixed part of HOST-SSHD: these are the control, not site choices.
SSHD_FIXED = (
    ("PasswordAuthentication", "no"),
    ("KbdInteractiveAuthentication", "no"),
    ("PermitEmptyPasswords", "no"),
    ("PubkeyAuthentication", "yes"),
    ("DisableForwarding", "yes"),
    ("AllowTcpForwarding", "no"),
    ("AllowAgentForwarding", "no"),
    ("AllowStreamLocalForwarding", "no"),
    ("X11Forwarding", "no"),
    ("PermitTunnel", "no"),
    ("GatewayPorts", "no"),
    ("PermitUserEnvironment", "no"),
)

# Site choices: variable suffix, sshd keyword, allowed range.
SSHD_TUNABLE_INTS = (
    ("sshd_max_auth_tries", "MaxAuthTries", 1, 10),
    ("sshd_login_grace_time", "LoginGraceTime", 1, 600),
    ("sshd_client_alive_interval", "ClientAliveInterval", 1, 3600),
    ("sshd_client_alive_count_max", "ClientAliveCountMax", 0, 10),
)
PERMIT_ROOT_LOGIN = ("no", "prohibit-password", "forced-commands-only")

LISTENER_KEYS = ("proto", "address", "port", "process", "name")
PROCESS_RE = re.compile(r"^[^\s\"]{1,15}$")
SIZE_RE = re.compile(r"^[1-9][0-9]*[KMGT]?$")
PATH_RE = re.compile(r"^(/[A-Za-z0-9_.+-]+)+$")
UNIT_RE = re.compile(r"^[A-Za-z0-9@_.-]+$")


def _is_int(value, low, high):
    """A whole number in range; booleans and floats are not (YAML 'yes' is not 1)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return low <= value <= high
    if isinstance(value, str) and re.match(r"^[0-9]+$", value):
        return low <= int(value) <= high
    return False


def _check_bools(cfg, names, errors):
    for name in names:
        if not isinstance(cfg.get(name), bool):
            errors.append("%s%s: '%s' must be true or false" % (PREFIX, name, cfg.get(name)))


def _sshd_errors(cfg):
    errors = []
    if cfg.get("sshd_permit_root_login") not in PERMIT_ROOT_LOGIN:
        errors.append("%ssshd_permit_root_login: '%s' must be one of %s (root password logins are never allowed)"
                      % (PREFIX, cfg.get("sshd_permit_root_login"), ", ".join(PERMIT_ROOT_LOGIN)))
    for suffix, _keyword, low, high in SSHD_TUNABLE_INTS:
        if not _is_int(cfg.get(suffix), low, high):
            errors.append("%s%s: '%s' must be a whole number from %d to %d" % (PREFIX, suffix, cfg.get(suffix), low, high))
    addresses = cfg.get("sshd_listen_addresses")
    if not isinstance(addresses, list):
        errors.append("%ssshd_listen_addresses: '%s' must be a list of IP addresses (empty: sshd's default, every address)"
                      % (PREFIX, addresses))
    else:
        for index, addr in enumerate(addresses):
            try:
                ipaddress.ip_address(str(addr))
            except ValueError:
                errors.append("%ssshd_listen_addresses[%d]: '%s' is not an IP address" % (PREFIX, index, addr))
    for suffix in ("sshd_binary", "sshd_config_path", "listeners_file"):
        if not isinstance(cfg.get(suffix), str) or not PATH_RE.match(cfg.get(suffix)):
            errors.append("%s%s: '%s' must be an absolute path of letters, digits, '.', '_', '+' or '-'"
                          % (PREFIX, suffix, cfg.get(suffix)))
    if not isinstance(cfg.get("sshd_service"), str) or not UNIT_RE.match(cfg.get("sshd_service")):
        errors.append("%ssshd_service: '%s' must be a systemd unit name" % (PREFIX, cfg.get("sshd_service")))
    return errors


def _sysctl_map_errors(name, mapping, values_are_reasons=False):
    errors = []
    if not isinstance(mapping, dict):
        return ["%s%s: '%s' must be a mapping of sysctl name to value" % (PREFIX, name, mapping)]
    for key, value in mapping.items():
        if not isinstance(key, str) or not host.SYSCTL_KEY_RE.match(key) or key.count("*") > 1:
            errors.append("%s%s: key '%s' is not a sysctl name (dotted lower-case words such as"
                          " net.ipv4.conf.all.rp_filter; '*' only for a whole interface part)" % (PREFIX, name, key))
            continue
        if values_are_reasons:
            if not isinstance(value, str) or not value.strip():
                errors.append("%s%s: '%s' needs a reason (a non-empty string)" % (PREFIX, name, key))
        elif isinstance(value, bool) or not host.SYSCTL_VALUE_RE.match(str(value)):
            errors.append("%s%s: '%s' has value '%s'; values must be whole numbers" % (PREFIX, name, key, value))
    return errors


def _sysctl_errors(cfg):
    errors = _sysctl_map_errors("sysctl", cfg.get("sysctl"))
    errors += _sysctl_map_errors("sysctl_extra", cfg.get("sysctl_extra"))
    errors += _sysctl_map_errors("sysctl_exempt", cfg.get("sysctl_exempt"), values_are_reasons=True)
    if not _is_int(cfg.get("rp_filter"), 1, 2):
        errors.append("%srp_filter: '%s' must be 1 (strict) or 2 (loose)" % (PREFIX, cfg.get("rp_filter")))
    if not _is_int(cfg.get("ptrace_scope"), 1, 3):
        errors.append("%sptrace_scope: '%s' must be 1, 2 or 3" % (PREFIX, cfg.get("ptrace_scope")))
    _check_bools(cfg, ("ip_forward", "sysctl_container_global"), errors)
    return errors


def _journal_errors(cfg):
    errors = []
    if not _is_int(cfg.get("journal_retention_days"), 0, 36500):
        errors.append("%sjournal_retention_days: '%s' must be a whole number of days from 0 (no age limit) to 36500"
                      % (PREFIX, cfg.get("journal_retention_days")))
    if not isinstance(cfg.get("journal_system_max_use"), str) or not SIZE_RE.match(cfg.get("journal_system_max_use")):
        errors.append("%sjournal_system_max_use: '%s' must be a size such as 4G, 512M or 1048576"
                      % (PREFIX, cfg.get("journal_system_max_use")))
    _check_bools(cfg, ("journal_forward_to_syslog",), errors)
    return errors


def _listener_errors(name, entries):
    if not isinstance(entries, list):
        return ["%s%s: '%s' must be a list of {proto, address, port, process}" % (PREFIX, name, entries)]
    errors = []
    for index, entry in enumerate(entries):
        at = "%s%s[%d]" % (PREFIX, name, index)
        if not isinstance(entry, dict):
            errors.append("%s: '%s' must be a mapping {proto, address, port, process}" % (at, entry))
            continue
        unknown = sorted(set(entry) - set(LISTENER_KEYS))
        if unknown:
            errors.append("%s: unknown key(s) %s (allowed: %s)" % (at, ", ".join(unknown), ", ".join(LISTENER_KEYS)))
        if entry.get("proto") not in ("tcp", "udp"):
            errors.append("%s: proto '%s' must be tcp or udp" % (at, entry.get("proto")))
        if "port" not in entry:
            errors.append("%s: port is required (1-65535)" % at)
        elif not _is_int(entry.get("port"), 1, 65535):
            errors.append("%s: port '%s' must be a whole number from 1 to 65535" % (at, entry.get("port")))
        address = str(entry.get("address", "")) if entry.get("address") is not None else ""
        if address not in host.WILDCARDS:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                errors.append("%s: address '%s' must be an IP address or '*' (any address)" % (at, entry.get("address")))
        process = entry.get("process")
        if process is not None and (not isinstance(process, str) or not PROCESS_RE.match(process)):
            errors.append("%s: process '%s' must be a command name as ss shows it (1-15 characters, no spaces)"
                          % (at, process))
    return errors


def host_hardening_input_errors(cfg):
    """Every problem with the role's variables, each naming the variable (empty list: valid).

    cfg: the role's variables without the ``host_hardening_`` prefix.
    """
    return (_sshd_errors(cfg) + _sysctl_errors(cfg) + _journal_errors(cfg)
            + _listener_errors("allowed_listeners", cfg.get("allowed_listeners"))
            + _listener_errors("extra_listeners", cfg.get("extra_listeners")))


def host_hardening_sshd_settings(cfg):
    """The drop-in's settings in order: [[keyword, value]]; ListenAddress is separate."""
    settings = [list(pair) for pair in SSHD_FIXED]
    settings.append(["PermitRootLogin", cfg["sshd_permit_root_login"]])
    for suffix, keyword, _low, _high in SSHD_TUNABLE_INTS:
        settings.append([keyword, str(int(cfg[suffix]))])
    return settings


def host_hardening_sysctl_expected(cfg):
    """{key: value} the host must show; forwarding first.

    Writing ip_forward resets net.ipv4.conf.all.accept_redirects in the
    kernel, so forwarding is applied before the redirect settings.
    """
    forward = "1" if cfg["ip_forward"] else "0"
    expected = {"net.ipv4.ip_forward": forward, "net.ipv6.conf.all.forwarding": forward}
    for mapping in (cfg.get("sysctl") or {}, cfg.get("sysctl_extra") or {}):
        for key, value in mapping.items():
            expected[key] = " ".join(str(value).split())
    return expected


def host_hardening_sysctl_plan(expected, probe_stdout, container, container_global=False, exempt=None):
    """Which keys this host applies, which it cannot and why, and which differ now (see airgap_host.sysctl_plan)."""
    live = host.parse_proc_sys(probe_stdout)
    return host.sysctl_plan(expected, live, bool(container), bool(container_global), exempt or {})


def host_hardening_sysctl_probe_paths(expected):
    """Paths under /proc/sys that one grep reads to see every expected key."""
    return host.probe_paths(list(expected))


def host_hardening_sysctl_evidence(plan, probe_stdout, container, sysctl_file, file_stat):
    """The HOST-SYSCTL record: one check per key, read live from /proc/sys.

    pass only if every applied key shows its value everywhere it applies.
    Keys the host could not apply are listed not_applicable with the reason;
    when nothing failed but some keys were not applied, the control is
    not_applicable as a whole, never pass.
    """
    live = host.parse_proc_sys(probe_stdout)
    checks = host.judge_sysctl(plan, live)
    statuses = [c["status"] for c in checks]
    if "error" in statuses:
        status = "error"
    elif "fail" in statuses:
        status = "fail"
    elif "not_applicable" in statuses:
        status = "not_applicable"
    else:
        status = "pass"
    evidence = {
        "source": "/proc/sys (read live)",
        "file": sysctl_file,
        "file_present": bool(file_stat.get("exists")),
        "container": bool(container),
        "failed": [c for c in checks if c["status"] == "fail"],
        "not_applied": [c for c in checks if c["status"] in ("not_applicable", "error")],
        "passed": sorted(c["key"] for c in checks if c["status"] == "pass"),
        "checks": checks,
    }
    if not file_stat.get("exists") and plan["apply"]:
        status = "fail" if status in ("pass", "not_applicable") else status
        evidence["problem"] = "%s is missing: the values would not survive a reboot" % sysctl_file
    if status == "not_applicable":
        evidence["detail"] = ("%d key(s) pass; %d could not be applied on this host (see not_applied)"
                              % (len(evidence["passed"]), len(evidence["not_applied"])))
    return make_record("HOST-SYSCTL", ROLE, status, evidence)


def host_hardening_sshd_evidence(sshd_t, settings, listen_addresses, dropin, include):
    """The HOST-SSHD record from ``sshd -T`` (the effective configuration), not the file.

    sshd_t: the registered command result; settings: host_hardening_sshd_settings;
    dropin: {path, stat}; include: include_position of the main sshd_config.
    """
    if sshd_t.get("rc") != 0:
        return make_record("HOST-SSHD", ROLE, "error", {
            "command": sshd_t.get("cmd"), "rc": sshd_t.get("rc"),
            "stderr": (sshd_t.get("stderr") or sshd_t.get("msg") or "").strip()[-2000:],
            "detail": "sshd -T failed: the configuration on disk is invalid or sshd is missing"})
    effective = host.parse_sshd_t(sshd_t.get("stdout", ""))
    checks = host.judge_sshd(effective, dict((k, v) for k, v in settings))
    problems = ["%s is %s, expected %s" % (c["setting"], c["effective"], c["expected"]) for c in checks if not c["ok"]]
    if listen_addresses:
        have = effective.get("listenaddress", [])
        have = have if isinstance(have, list) else [have]
        have_addrs = sorted(host.split_endpoint(a)[0] for a in have)
        want = sorted(str(ipaddress.ip_address(str(a))) for a in listen_addresses)
        ok = have_addrs == want
        checks.append({"setting": "ListenAddress", "expected": want, "effective": have_addrs, "ok": ok})
        if not ok:
            problems.append("ListenAddress is %s, expected %s" % (have_addrs, want))
    if not dropin.get("stat", {}).get("exists"):
        problems.append("the drop-in %s is missing" % dropin.get("path"))
    status = "fail" if problems else "pass"
    return make_record("HOST-SSHD", ROLE, status, {
        "source": "sshd -T (the effective configuration sshd loads)",
        "dropin": dropin.get("path"),
        "dropin_sha256": dropin.get("stat", {}).get("checksum"),
        "include_first": include,
        "problems": problems,
        "checks": checks,
        "note": "sshd -T reads the files on disk; Match blocks are not evaluated",
    })


VOLATILE_FS = ("tmpfs", "ramfs")


def host_hardening_journal_evidence(cat_config, header, expected, journal_dir, fs_type="", container=False):
    """The HOST-JOURNAL record: journald's merged configuration and where its live files are.

    pass needs the effective settings to be the expected ones, the active
    (ONLINE) system journal under /var/log/journal and none under /run, and
    /var/log/journal on a disk, not a tmpfs. podman's systemd mode mounts a
    tmpfs there: in a container that is not_applicable with the reason (the
    runtime decides, not the host), on a machine a fail.
    """
    if cat_config.get("rc") != 0:
        return make_record("HOST-JOURNAL", ROLE, "error", {
            "command": cat_config.get("cmd"), "rc": cat_config.get("rc"),
            "stderr": (cat_config.get("stderr") or "").strip()[-2000:]})
    values, sources = host.parse_cat_config(cat_config.get("stdout", ""))
    checks, problems = [], []
    for key, want in expected.items():
        have = values.get(key)
        ok = have is not None and have.lower() == str(want).lower()
        checks.append({"setting": key, "expected": str(want), "effective": have, "from": sources.get(key), "ok": ok})
        if not ok:
            problems.append("%s is %s, expected %s" % (key, have, want))
    files = host.parse_journal_header(header.get("stdout", "")) if header.get("rc") == 0 else []
    online = [f for f in files if (f["state"] or "").upper() == "ONLINE"]
    persistent = [f["path"] for f in online if f["path"].startswith("/var/log/journal/")
                  and os.path.basename(f["path"]).startswith("system")]
    volatile = [f["path"] for f in online if f["path"].startswith("/run/log/journal/")]
    if header.get("rc") != 0:
        problems.append("journalctl --header failed: %s" % (header.get("stderr") or "").strip()[-500:])
    if not persistent:
        problems.append("no active system journal under /var/log/journal: journald is not writing to persistent storage")
    if volatile:
        problems.append("journald writes to volatile storage: %s" % ", ".join(volatile))
    if not journal_dir.get("exists") or not journal_dir.get("isdir"):
        problems.append("/var/log/journal does not exist")
    evidence = {
        "source": "systemd-analyze cat-config systemd/journald.conf; journalctl --header; stat -f /var/log/journal",
        "checks": checks,
        "active_files": [f["path"] for f in online],
        "filesystem": fs_type,
        "container": bool(container),
        "problems": problems,
    }
    if problems:
        return make_record("HOST-JOURNAL", ROLE, "fail", evidence)
    if fs_type in VOLATILE_FS:
        reason = ("/var/log/journal is a %s: journal files are lost at the next reboot" % fs_type)
        if container:
            evidence["reason"] = reason.replace("reboot", "restart of the container") + (
                "; the container runtime mounts it (podman --systemd), the host cannot change that")
            return make_record("HOST-JOURNAL", ROLE, "not_applicable", evidence)
        evidence["problems"] = [reason]
        return make_record("HOST-JOURNAL", ROLE, "fail", evidence)
    return make_record("HOST-JOURNAL", ROLE, "pass", evidence)


class FilterModule(object):
    """host_hardening filters."""

    def filters(self):
        """Map filter names to functions."""
        return {
            "host_hardening_input_errors": host_hardening_input_errors,
            "host_hardening_sshd_settings": host_hardening_sshd_settings,
            "host_hardening_sysctl_expected": host_hardening_sysctl_expected,
            "host_hardening_sysctl_plan": host_hardening_sysctl_plan,
            "host_hardening_sysctl_probe_paths": host_hardening_sysctl_probe_paths,
            "host_hardening_sysctl_evidence": host_hardening_sysctl_evidence,
            "host_hardening_sshd_evidence": host_hardening_sshd_evidence,
            "host_hardening_journal_evidence": host_hardening_journal_evidence,
            "host_hardening_sshd_include_position": host.include_position,
        }
