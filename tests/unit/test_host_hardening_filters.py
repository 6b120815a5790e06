# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_hardening: input validation, sshd/sysctl/journald parsing and the evidence records."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible.module_utils import airgap_host as host

import host_hardening_filters as f

GOOD = {
    "sshd_permit_root_login": "prohibit-password",
    "sshd_max_auth_tries": 3,
    "sshd_login_grace_time": "30",
    "sshd_client_alive_interval": 300,
    "sshd_client_alive_count_max": 2,
    "sshd_listen_addresses": ["10.193.0.21", "fd00:193::15"],
    "sshd_binary": "/usr/sbin/sshd",
    "sshd_config_path": "/etc/ssh/sshd_config",
    "sshd_service": "ssh",
    "ip_forward": False,
    "rp_filter": 1,
    "ptrace_scope": "1",
    "sysctl": {"net.ipv4.conf.*.accept_redirects": 0, "kernel.kptr_restrict": 2, "net.ipv4.tcp_syncookies": 1},
    "sysctl_extra": {},
    "sysctl_exempt": {},
    "sysctl_container_global": False,
    "journal_retention_days": 365,
    "journal_system_max_use": "4G",
    "journal_forward_to_syslog": False,
    "allowed_listeners": [{"proto": "tcp", "address": "*", "port": 22, "process": "sshd"}],
    "extra_listeners": [],
    "listeners_file": "/etc/airgap/listeners.json",
}


def with_(**changes):
    cfg = copy.deepcopy(GOOD)
    cfg.update(changes)
    return cfg


def test_good_input_has_no_errors():
    assert f.host_hardening_input_errors(GOOD) == []


@pytest.mark.parametrize("changes, message", [
    ({"journal_retention_days": "ten days"}, "host_hardening_journal_retention_days: 'ten days' must be a whole number"),
    ({"journal_retention_days": True}, "host_hardening_journal_retention_days: 'True'"),
    ({"journal_system_max_use": "lots"}, "host_hardening_journal_system_max_use: 'lots' must be a size"),
    ({"journal_forward_to_syslog": "yes"}, "host_hardening_journal_forward_to_syslog: 'yes' must be true or false"),
    ({"sshd_permit_root_login": "yes"}, "host_hardening_sshd_permit_root_login: 'yes' must be one of"),
    ({"sshd_max_auth_tries": 0}, "host_hardening_sshd_max_auth_tries: '0' must be a whole number from 1 to 10"),
    ({"sshd_listen_addresses": ["mgmt0"]}, "host_hardening_sshd_listen_addresses[0]: 'mgmt0' is not an IP address"),
    ({"sshd_binary": "sshd"}, "host_hardening_sshd_binary: 'sshd' must be an absolute path"),
    ({"sysctl_extra": {"net.ipv4.conf.all.accept redirects": 0}},
     "host_hardening_sysctl_extra: key 'net.ipv4.conf.all.accept redirects' is not a sysctl name"),
    ({"sysctl_extra": {"net/ipv4/ip_forward": 0}}, "host_hardening_sysctl_extra: key 'net/ipv4/ip_forward' is not a sysctl name"),
    ({"sysctl_extra": {"Kernel.foo": 1}}, "host_hardening_sysctl_extra: key 'Kernel.foo' is not a sysctl name"),
    ({"sysctl_extra": {"net.*.*.x": 1}}, "host_hardening_sysctl_extra: key 'net.*.*.x' is not a sysctl name"),
    ({"sysctl_extra": {"kernel.x": "1; reboot"}}, "host_hardening_sysctl_extra: 'kernel.x' has value '1; reboot'"),
    ({"sysctl_extra": {"kernel.x": True}}, "host_hardening_sysctl_extra: 'kernel.x' has value 'True'"),
    ({"sysctl": "net.ipv4.ip_forward=0"}, "host_hardening_sysctl: 'net.ipv4.ip_forward=0' must be a mapping"),
    ({"sysctl_exempt": {"fs.protected_fifos": " "}}, "host_hardening_sysctl_exempt: 'fs.protected_fifos' needs a reason"),
    ({"rp_filter": 0}, "host_hardening_rp_filter: '0' must be 1 (strict) or 2 (loose)"),
    ({"ip_forward": "no"}, "host_hardening_ip_forward: 'no' must be true or false"),
    ({"extra_listeners": [{"proto": "tcp", "address": "*", "process": "nginx"}]},
     "host_hardening_extra_listeners[0]: port is required"),
    ({"extra_listeners": [{"proto": "sctp", "port": 1, "address": "*"}]}, "host_hardening_extra_listeners[0]: proto 'sctp' must be tcp or udp"),
    ({"extra_listeners": [{"proto": "tcp", "port": 0, "address": "*"}]}, "host_hardening_extra_listeners[0]: port '0' must be"),
    ({"extra_listeners": [{"proto": "tcp", "port": 1, "address": "10.0.0.300"}]},
     "host_hardening_extra_listeners[0]: address '10.0.0.300' must be an IP address or '*'"),
    ({"extra_listeners": [{"proto": "tcp", "port": 1}]}, "host_hardening_extra_listeners[0]: address 'None' must be"),
    ({"extra_listeners": [{"proto": "tcp", "port": 1, "address": "*", "colour": "red"}]},
     "host_hardening_extra_listeners[0]: unknown key(s) colour"),
    ({"extra_listeners": [{"proto": "tcp", "port": 1, "address": "*", "process": "my daemon"}]},
     "host_hardening_extra_listeners[0]: process 'my daemon' must be a command name"),
    ({"allowed_listeners": {"proto": "tcp"}}, "host_hardening_allowed_listeners: "),
])
def test_bad_input_names_the_variable(changes, message):
    errors = f.host_hardening_input_errors(with_(**changes))
    assert any(message in e for e in errors), errors


def test_sshd_settings_hold_the_fixed_control_and_site_values():
    settings = dict(f.host_hardening_sshd_settings(GOOD))
    assert settings["PasswordAuthentication"] == "no"
    assert settings["AllowTcpForwarding"] == "no" and settings["DisableForwarding"] == "yes"
    assert settings["PermitRootLogin"] == "prohibit-password"
    assert settings["LoginGraceTime"] == "30"


def test_sysctl_expected_puts_forwarding_first():
    expected = f.host_hardening_sysctl_expected(with_(ip_forward=True))
    assert list(expected)[:2] == ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]
    assert expected["net.ipv4.ip_forward"] == "1"
    assert f.host_hardening_sysctl_expected(GOOD)["net.ipv6.conf.all.forwarding"] == "0"


PROC = """\
/proc/sys/net/ipv4/conf/all/accept_redirects:0
/proc/sys/net/ipv4/conf/default/accept_redirects:0
/proc/sys/net/ipv4/conf/eth0/accept_redirects:1
/proc/sys/net/ipv4/conf/lo/accept_redirects:0
/proc/sys/net/ipv4/conf/eth0/rp_filter:0
/proc/sys/net/ipv4/tcp_syncookies:1
/proc/sys/net/ipv4/ip_forward:1
/proc/sys/net/ipv6/conf/all/forwarding:0
/proc/sys/kernel/kptr_restrict:0
"""


def test_probe_paths_read_a_glob_through_its_folder():
    paths = host.probe_paths(["net.ipv4.conf.*.accept_redirects", "net.ipv4.conf.*.rp_filter", "kernel.kptr_restrict"])
    assert paths == ["/proc/sys/net/ipv4/conf", "/proc/sys/kernel/kptr_restrict"]


def test_plan_skips_global_keys_in_a_container_and_lists_pending():
    expected = f.host_hardening_sysctl_expected(with_(sysctl_extra={"kernel.yama.ptrace_scope": 1}))
    plan = f.host_hardening_sysctl_plan(expected, PROC, container=True)
    assert list(plan["apply"]) == ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
                                   "net.ipv4.conf.*.accept_redirects", "net.ipv4.tcp_syncookies"]
    assert plan["pending"] == ["net.ipv4.ip_forward", "net.ipv4.conf.*.accept_redirects"]
    reasons = {s["key"]: s["reason"] for s in plan["skipped"]}
    assert "container" in reasons["kernel.kptr_restrict"]
    assert "container" in reasons["kernel.yama.ptrace_scope"]


def test_plan_on_a_machine_applies_global_keys_and_reports_missing_ones():
    expected = f.host_hardening_sysctl_expected(with_(sysctl_extra={"kernel.yama.ptrace_scope": 1}))
    plan = f.host_hardening_sysctl_plan(expected, PROC, container=False)
    assert "kernel.kptr_restrict" in plan["apply"]
    assert [s["key"] for s in plan["skipped"]] == ["kernel.yama.ptrace_scope"]
    assert "no such parameter" in plan["skipped"][0]["reason"]


def test_plan_honours_exemptions_with_the_reason():
    plan = f.host_hardening_sysctl_plan({"kernel.kptr_restrict": "2"}, PROC, False, False, {"kernel.kptr_restrict": "vendor agent"})
    assert plan["apply"] == {} and plan["skipped"][0]["reason"].endswith("vendor agent")


def test_sysctl_evidence_fails_on_one_interface_and_names_it():
    expected = f.host_hardening_sysctl_expected(GOOD)
    plan = f.host_hardening_sysctl_plan(expected, PROC, container=True)
    record = f.host_hardening_sysctl_evidence(plan, PROC, True, "/etc/sysctl.d/60-airgap-hardening.conf", {"exists": True})
    assert record["status"] == "fail"
    failed = {c["key"]: c["live"] for c in record["evidence"]["failed"]}
    assert failed == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.*.accept_redirects": {"net.ipv4.conf.eth0.accept_redirects": "1"}}


def test_sysctl_evidence_is_never_pass_with_keys_not_applied():
    good = PROC.replace("eth0/accept_redirects:1", "eth0/accept_redirects:0").replace("ip_forward:1", "ip_forward:0")
    expected = f.host_hardening_sysctl_expected(GOOD)
    plan = f.host_hardening_sysctl_plan(expected, good, container=True)
    record = f.host_hardening_sysctl_evidence(plan, good, True, "/x", {"exists": True})
    assert record["status"] == "not_applicable"
    assert [c["key"] for c in record["evidence"]["not_applied"]] == ["kernel.kptr_restrict"]
    assert record["evidence"]["not_applied"][0]["live"] == "0"
    machine = f.host_hardening_sysctl_evidence(plan, good, False, "/x", {"exists": True})
    plan_machine = f.host_hardening_sysctl_plan(expected, good.replace("kptr_restrict:0", "kptr_restrict:2"), container=False)
    machine = f.host_hardening_sysctl_evidence(plan_machine, good.replace("kptr_restrict:0", "kptr_restrict:2"), False, "/x",
                                               {"exists": True})
    assert machine["status"] == "pass"
    missing_file = f.host_hardening_sysctl_evidence(plan_machine, good.replace("kptr_restrict:0", "kptr_restrict:2"), False, "/x",
                                                    {"exists": False})
    assert missing_file["status"] == "fail"


SSHD_T = """\
port 22
permitrootlogin without-password
passwordauthentication no
kbdinteractiveauthentication no
allowtcpforwarding no
listenaddress [fd00:193::15]:22
listenaddress 10.193.0.21:22
"""


def test_sshd_evidence_reads_the_effective_values():
    settings = [["PermitRootLogin", "prohibit-password"], ["PasswordAuthentication", "no"], ["AllowTcpForwarding", "no"]]
    dropin = {"path": "/etc/ssh/sshd_config.d/50-airgap-hardening.conf", "stat": {"exists": True, "checksum": "ab"}}
    ok = f.host_hardening_sshd_evidence({"rc": 0, "stdout": SSHD_T}, settings, ["10.193.0.21", "fd00:193::15"], dropin, {})
    assert ok["status"] == "pass", ok
    drifted = f.host_hardening_sshd_evidence({"rc": 0, "stdout": SSHD_T.replace("passwordauthentication no", "passwordauthentication yes")},
                                             settings, [], dropin, {})
    assert drifted["status"] == "fail"
    assert drifted["evidence"]["problems"] == ["PasswordAuthentication is yes, expected no"]
    wide = f.host_hardening_sshd_evidence({"rc": 0, "stdout": SSHD_T}, settings, ["10.193.0.21"], dropin, {})
    assert wide["status"] == "fail"
    broken = f.host_hardening_sshd_evidence({"rc": 255, "stderr": "bad option"}, settings, [], dropin, {})
    assert broken["status"] == "error"


def test_include_position_finds_settings_before_the_include():
    debian = "# comment\n\nInclude /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n"
    assert host.include_position(debian) == {"included": True, "first": True, "directives_before": []}
    bad = "PasswordAuthentication yes\nInclude /etc/ssh/sshd_config.d/*.conf\n"
    assert host.include_position(bad)["directives_before"] == ["PasswordAuthentication"]
    assert host.include_position("Port 22\n")["included"] is False


CAT_CONFIG = """\
# /etc/systemd/journald.conf
[Journal]
#Storage=auto
Storage=volatile

# /etc/systemd/journald.conf.d/50-airgap.conf
# managed
[Journal]
Storage=persistent
SystemMaxUse=4G
MaxRetentionSec=365day
ForwardToSyslog=no
"""

HEADER = """\
File path: /var/log/journal/6241/system.journal
State: ONLINE
File path: /var/log/journal/6241/system@0001.journal
State: ARCHIVED
"""

EXPECTED_JOURNAL = {"Storage": "persistent", "SystemMaxUse": "4G", "MaxRetentionSec": "365day", "ForwardToSyslog": "no"}


def test_cat_config_last_assignment_wins():
    values, sources = host.parse_cat_config(CAT_CONFIG)
    assert values["Storage"] == "persistent"
    assert sources["Storage"] == "/etc/systemd/journald.conf.d/50-airgap.conf"


def test_journal_evidence_passes_on_persistent_storage_only():
    cat = {"rc": 0, "stdout": CAT_CONFIG}
    ok = f.host_hardening_journal_evidence(cat, {"rc": 0, "stdout": HEADER}, EXPECTED_JOURNAL, {"exists": True, "isdir": True})
    assert ok["status"] == "pass", ok
    volatile = HEADER.replace("/var/log/journal/6241/system.journal", "/run/log/journal/6241/system.journal")
    bad = f.host_hardening_journal_evidence(cat, {"rc": 0, "stdout": volatile}, EXPECTED_JOURNAL, {"exists": True, "isdir": True})
    assert bad["status"] == "fail"
    assert any("volatile" in p for p in bad["evidence"]["problems"])
    edited = {"rc": 0, "stdout": CAT_CONFIG + "\n# /etc/systemd/journald.conf.d/99-x.conf\n[Journal]\nStorage=volatile\n"}
    drift = f.host_hardening_journal_evidence(edited, {"rc": 0, "stdout": HEADER}, EXPECTED_JOURNAL, {"exists": True, "isdir": True})
    assert drift["evidence"]["problems"] == ["Storage is volatile, expected persistent"]


def test_journal_on_tmpfs_is_never_pass():
    cat = {"rc": 0, "stdout": CAT_CONFIG}
    header = {"rc": 0, "stdout": HEADER}
    folder = {"exists": True, "isdir": True}
    container = f.host_hardening_journal_evidence(cat, header, EXPECTED_JOURNAL, folder, "tmpfs", True)
    assert container["status"] == "not_applicable"
    assert "tmpfs" in container["evidence"]["reason"] and "container" in container["evidence"]["reason"]
    machine = f.host_hardening_journal_evidence(cat, header, EXPECTED_JOURNAL, folder, "tmpfs", False)
    assert machine["status"] == "fail"
    assert f.host_hardening_journal_evidence(cat, header, EXPECTED_JOURNAL, folder, "ext2/ext3", False)["status"] == "pass"
