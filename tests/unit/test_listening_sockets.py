# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HOST-LISTENERS: parsing ``ss -H -tulpn`` and judging sockets against the allowed list."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.airgap_host import judge_listeners, parse_ss, split_endpoint

import listening_sockets

# Recorded from a lab node (sshd on its management addresses) plus the kinds
# of lines ss prints elsewhere: a wildcard, a '*' dual-stack bind, an
# interface-bound UDP socket and a socket with no process shown.
SS_OUTPUT = """\
tcp   LISTEN 0      128       10.193.0.21:22        0.0.0.0:*    users:(("sshd",pid=124,fd=4))
tcp   LISTEN 0      128    [fd00:193::15]:22           [::]:*    users:(("sshd",pid=124,fd=3))
tcp   LISTEN 0      5             0.0.0.0:8080      0.0.0.0:*    users:(("python3",pid=900,fd=3))
udp   UNCONN 0      0      127.0.0.53%lo:53         0.0.0.0:*    users:(("systemd-resolve",pid=77,fd=12))
tcp   LISTEN 0      511                 *:80              *:*    users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6),("nginx",pid=10,fd=6))
udp   UNCONN 0      0                [::]:546          [::]:*
"""


def test_split_endpoint_handles_brackets_interfaces_and_star():
    assert split_endpoint("[fd00:193::15]:22") == ("fd00:193::15", None, "22")
    assert split_endpoint("127.0.0.53%lo:53") == ("127.0.0.53", "lo", "53")
    assert split_endpoint("*:80") == ("*", None, "80")
    assert split_endpoint("[fe80::1]%eth0:546") == ("fe80::1", "eth0", "546")


def test_parse_ss_reads_every_socket():
    sockets, unparsed = parse_ss(SS_OUTPUT + "garbage line\n")
    assert unparsed == ["garbage line"]
    assert [(s["proto"], s["address"], s["port"], s["wildcard"]) for s in sockets] == [
        ("tcp", "10.193.0.21", 22, False),
        ("tcp", "fd00:193::15", 22, False),
        ("tcp", "0.0.0.0", 8080, True),
        ("udp", "127.0.0.53", 53, False),
        ("tcp", "*", 80, True),
        ("udp", "::", 546, True),
    ]
    assert sockets[3]["interface"] == "lo"
    # one socket shared by a forking daemon is one listener with its processes once each
    assert sockets[4]["processes"] == [{"name": "nginx", "pid": 10}, {"name": "nginx", "pid": 11}]
    assert sockets[5]["processes"] == []


LAB_ALLOWED = [
    {"proto": "tcp", "address": "10.193.0.21", "port": 22, "process": "sshd"},
    {"proto": "tcp", "address": "fd00:193::15", "port": 22, "process": "sshd"},
]


def test_only_declared_sockets_pass():
    sockets, _ = parse_ss(SS_OUTPUT.splitlines()[0] + "\n" + SS_OUTPUT.splitlines()[1])
    verdict = judge_listeners(sockets, LAB_ALLOWED)
    assert verdict["status"] == "pass"
    assert verdict["unexpected"] == [] and verdict["allowed_unused"] == []


def test_unexpected_socket_fails_and_is_named():
    sockets, _ = parse_ss(SS_OUTPUT)
    verdict = judge_listeners(sockets, LAB_ALLOWED)
    assert verdict["status"] == "fail"
    assert [u["socket"] for u in verdict["unexpected"]] == [
        "tcp 0.0.0.0:8080 (python3)", "udp 127.0.0.53%lo:53 (systemd-resolve)",
        "tcp *:80 (nginx)", "udp [::]:546 (unknown process)"]


def test_wildcard_bind_of_an_address_specific_entry_fails():
    sockets, _ = parse_ss("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=1,fd=3))\n")
    verdict = judge_listeners(sockets, LAB_ALLOWED)
    assert verdict["status"] == "fail"
    assert verdict["unexpected"] == []
    assert len(verdict["wider_than_declared"]) == 1
    assert "bound to a wildcard address" in verdict["wider_than_declared"][0]["problem"]


def test_wildcard_entry_allows_any_address_and_process_must_match():
    sockets, _ = parse_ss(SS_OUTPUT.splitlines()[2] + "\n")
    assert judge_listeners(sockets, [{"proto": "tcp", "address": "*", "port": 8080}])["status"] == "pass"
    assert judge_listeners(sockets, [{"proto": "tcp", "address": "*", "port": 8080, "process": "nginx"}])["status"] == "fail"
    assert judge_listeners(sockets, [{"proto": "udp", "address": "*", "port": 8080}])["status"] == "fail"


def test_addresses_compare_as_addresses():
    sockets, _ = parse_ss("tcp LISTEN 0 128 [fd00:193:0::15]:22 [::]:* users:((\"sshd\",pid=1,fd=3))\n")
    assert judge_listeners(sockets, LAB_ALLOWED)["status"] == "pass"


class FakeModule(object):
    """Test double for AnsibleModule: only the params build_record reads."""

    def __init__(self, params):
        self.params = params


def test_record_fails_when_the_deployed_list_was_edited(tmp_path):
    path = tmp_path / "listeners.json"
    path.write_text(json.dumps(LAB_ALLOWED + [{"proto": "tcp", "address": "*", "port": 8080}]))
    sockets, _ = parse_ss(SS_OUTPUT.splitlines()[0] + "\n" + SS_OUTPUT.splitlines()[1])
    module = FakeModule({"allowed": LAB_ALLOWED, "recorded_path": str(path), "role": "host_hardening", "ss_path": "ss"})
    record = listening_sockets.build_record(module, sockets, [])
    assert record["status"] == "fail"
    assert record["evidence"]["recorded"]["matches"] is False

    path.write_text(json.dumps(list(reversed(LAB_ALLOWED))))
    record = listening_sockets.build_record(module, sockets, [])
    assert record["status"] == "pass" and record["id"] == "HOST-LISTENERS"


def test_record_is_error_on_unparsed_output(tmp_path):
    module = FakeModule({"allowed": LAB_ALLOWED, "recorded_path": None, "role": "host_hardening", "ss_path": "ss"})
    sockets, _ = parse_ss(SS_OUTPUT.splitlines()[0] + "\n" + SS_OUTPUT.splitlines()[1])
    assert listening_sockets.build_record(module, sockets, ["???"])["status"] == "error"
