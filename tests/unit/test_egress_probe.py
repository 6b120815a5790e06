# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for library/egress_probe.py, run through AnsibleModule's real entry point.

Probes go only to 127.0.0.1 and ::1.
"""

import json
import socket

import pytest

from ansible.module_utils.testing import patch_module_args

import egress_probe


def run(capsys, args):
    """Run the module's main(); return (exit code, parsed JSON output)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            egress_probe.main()
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def listener():
    """A real TCP listener on 127.0.0.1; yields (port, accepted connection counter)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.5)

    def accepted():
        count = 0
        try:
            while True:
                sock.accept()[0].close()
                count += 1
        except socket.timeout:
            return count
    yield sock.getsockname()[1], accepted
    sock.close()


def closed_port(host="127.0.0.1", family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("check_mode", [False, True])
def test_probes_and_compares_in_normal_and_check_mode(capsys, listener, check_mode):
    port, accepted = listener
    args = {
        "expect": "blocked",
        "timeout": 1.0,
        "targets": [
            {"name": "open", "dest": "127.0.0.1", "proto": "tcp", "port": port, "expect": "reachable"},
            {"name": "closed-v6", "dest": "::1", "proto": "tcp", "port": closed_port("::1", socket.AF_INET6)},
        ],
    }
    if check_mode:
        args["_ansible_check_mode"] = True
    code, out = run(capsys, args)
    assert code == 0 and out["changed"] is False and "failed" not in out
    assert accepted() == 1  # the probe really connected, in check mode too
    by_name = {r["name"]: r for r in out["results"]}
    assert (by_name["open"]["status"], by_name["open"]["reason"], by_name["open"]["expect"]) == \
        ("reachable", "connected", "reachable")
    # A refused connection means a host answered: reachable, so "blocked" was not met.
    assert (by_name["closed-v6"]["status"], by_name["closed-v6"]["expect"]) == ("reachable", "blocked")
    assert out["summary"] == {"reachable": 2, "blocked": 0, "error": 0}
    assert [r["name"] for r in out["unexpected"]] == ["closed-v6"]
    assert out["as_expected"] is False


def test_all_as_expected(capsys):
    code, out = run(capsys, {"targets": [{"dest": "127.0.0.1", "proto": "tcp", "port": closed_port(),
                                          "expect": "reachable"}]})
    assert code == 0 and out["as_expected"] is True and out["unexpected"] == []


def test_error_is_always_unexpected_but_never_fails_the_module(capsys):
    targets = [{"dest": "127.0.0.1", "proto": "tcp", "port": 9}, {"dest": "::1", "proto": "icmp"}]
    code, out = run(capsys, {"targets": targets, "expect": "blocked",
                             "netns": "/run/netns/airgap-probe-test-missing"})
    assert code == 0 and "failed" not in out
    assert out["summary"] == {"reachable": 0, "blocked": 0, "error": 2}
    assert len(out["unexpected"]) == 2 and out["as_expected"] is False
    # Without any expectation nothing is "unexpected"; the caller reads the statuses itself.
    code, out = run(capsys, {"targets": targets, "netns": "/run/netns/airgap-probe-test-missing"})
    assert out["unexpected"] == [] and out["as_expected"] is True
    assert {r["status"] for r in out["results"]} == {"error"}


@pytest.mark.parametrize("args, words", [
    ({"targets": [{"dest": "127.0.0.1", "proto": "icmp"},
                  {"name": "web", "dest": "web.example", "proto": "tcp", "port": 80}]},
     ["targets[1] (web)", "field 'dest'", "host name"]),
    ({"targets": [{"dest": "127.0.0.1", "proto": "udp"}]}, ["targets[0]", "field 'port'", "required"]),
    ({"targets": [{"dest": "127.0.0.1", "proto": "icmp", "port": 1}]}, ["targets[0]", "field 'port'"]),
    ({"targets": [{"dest": "127.0.0.1", "proto": "tcp", "port": 1, "expect": "maybe"}]},
     ["targets[0]", "field 'expect'"]),
    ({"targets": [], "timeout": 0}, ["field 'timeout'"]),
    ({"targets": [], "workers": 0}, ["field 'workers'"]),
    ({"targets": [], "netns": " "}, ["netns"]),
])
def test_bad_input_fails_naming_target_and_field(capsys, args, words):
    code, out = run(capsys, args)
    assert code == 1 and out["failed"] is True and out["changed"] is False
    for word in words:
        assert word in out["msg"]


def test_missing_targets_is_rejected_by_ansible(capsys):
    code, out = run(capsys, {})
    assert code == 1 and "targets" in out["msg"]
