# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for library/network_vlan_apply.py and library/network_vlan_facts.py.

Commands go through a recording test double (FakeRun) instead of the host's
networkctl/ip/systemd-run; files live in a pytest tmp folder.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

import network_vlan_apply as nva
import network_vlan_facts as nvf
from ansible.module_utils import airgap_vlan as v

VLANS = [{"id": 10, "name": "mgmt", "parent": "eth1", "purpose": "management", "addresses": ["10.10.0.1/24"]},
         {"id": 20, "name": "inference", "parent": "eth1", "purpose": "inference", "addresses": ["10.20.0.1/24"]}]


class FakeRun(object):
    """Test double for module.run_command: records argv, answers from a table."""

    def __init__(self, answers=None):
        self.calls = []
        self.answers = answers or {}

    def __call__(self, argv, check=True):
        self.calls.append(list(argv))
        for prefix, answer in self.answers.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return answer
        return 0, "", ""


class FakeModule(object):
    """Test double for AnsibleModule: only check_mode is read by apply()."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode


def _files(tmp_path, vlans=VLANS):
    directory = str(tmp_path / "network")
    return v.render_networkd(v.normalize(vlans), {}, directory=directory), directory


def _params(files, directory, tmp_path, **over):
    p = {"files": files, "owned_dirs": [directory], "provider": "networkd", "reload": True, "recreate": [],
         "guard_interfaces": [], "guard_unknown": False, "confirm_timeout": 30,
         "state_dir": str(tmp_path / "state"), "rollback_unit": "airgap-vlan-rollback"}
    p.update(over)
    return p


def test_apply_writes_reloads_and_is_idempotent(tmp_path):
    files, directory = _files(tmp_path)
    run = FakeRun()
    res = nva.apply(FakeModule(), run, _params(files, directory, tmp_path))
    assert res["changed"] and len(res["written"]) == 5 and not res["rollback_pending"]
    assert ["networkctl", "reload"] in run.calls
    assert ["networkctl", "reconfigure", "eth1", "inference", "mgmt"] in run.calls
    for f in files:
        with open(f["path"]) as handle:
            assert handle.read() == f["content"]
    run2 = FakeRun()
    res2 = nva.apply(FakeModule(), run2, _params(files, directory, tmp_path))
    assert not res2["changed"] and run2.calls == []


def test_check_mode_changes_nothing(tmp_path):
    files, directory = _files(tmp_path)
    run = FakeRun()
    res = nva.apply(FakeModule(check_mode=True), run, _params(files, directory, tmp_path))
    assert res["changed"] and res["diff"] and run.calls == []
    assert not os.path.exists(directory)


def test_dropping_a_vlan_removes_only_owned_files_and_deletes_the_link(tmp_path, monkeypatch):
    files, directory = _files(tmp_path)
    nva.apply(FakeModule(), FakeRun(), _params(files, directory, tmp_path))
    admin = os.path.join(directory, "10-admin.network")
    lookalike = os.path.join(directory, "30-airgap-vlan-if-x.network")
    for path in (admin, lookalike):
        with open(path, "w") as handle:
            handle.write("[Match]\nName=x\n")
    real_isdir = os.path.isdir
    # the link of the dropped VLAN "exists" (test double for /sys/class/net)
    monkeypatch.setattr(nva.os.path, "isdir", lambda p: p == "/sys/class/net/inference" or real_isdir(p))
    fewer, _ = _files(tmp_path, VLANS[:1])
    run = FakeRun()
    res = nva.apply(FakeModule(), run, _params(fewer, directory, tmp_path))
    assert sorted(os.path.basename(p) for p in res["removed"]) == ["30-airgap-vlan-if-inference.netdev",
                                                                   "30-airgap-vlan-if-inference.network"]
    assert os.path.exists(admin) and os.path.exists(lookalike)
    assert ["ip", "link", "delete", "inference", "type", "vlan"] in run.calls


def test_foreign_paths_are_refused(tmp_path):
    files, directory = _files(tmp_path)
    bad = dict(files[0], path="/etc/passwd")
    with pytest.raises(nva.ApplyError):
        nva.apply(FakeModule(), FakeRun(), _params([bad], directory, tmp_path))
    unmarked = dict(files[0], content="[NetDev]\n")
    with pytest.raises(nva.ApplyError):
        nva.apply(FakeModule(), FakeRun(), _params([unmarked], directory, tmp_path))


def test_guard_arms_the_rollback_only_when_the_controller_interface_is_touched(tmp_path, monkeypatch):
    monkeypatch.setattr(nva, "timer_available", lambda: True)
    files, directory = _files(tmp_path)
    run = FakeRun()
    res = nva.apply(FakeModule(), run, _params(files, directory, tmp_path, guard_interfaces=["eth0"]))
    assert not res["rollback_pending"] and not any(c[0] == "systemd-run" for c in run.calls)
    more, _ = _files(tmp_path, [dict(VLANS[0], mtu=1400), VLANS[1]])
    run = FakeRun()
    res = nva.apply(FakeModule(), run, _params(more, directory, tmp_path, guard_interfaces=["mgmt"]))
    assert res["rollback_pending"] and res["guarded_interfaces"] == ["mgmt"]
    timer = [c for c in run.calls if c[0] == "systemd-run"][0]
    assert "--on-active=30s" in timer and timer[-1].endswith("rollback.sh")
    assert os.path.exists(str(tmp_path / "state" / "pending"))
    # the systemd-run call comes before the files are written: a failure to arm changes nothing
    assert run.calls.index(timer) < run.calls.index(["networkctl", "reload"])


def test_guard_refuses_without_systemd(tmp_path, monkeypatch):
    monkeypatch.setattr(nva, "timer_available", lambda: False)
    files, directory = _files(tmp_path)
    with pytest.raises(nva.ApplyError) as exc:
        nva.apply(FakeModule(), FakeRun(), _params(files, directory, tmp_path, guard_unknown=True))
    assert "nothing was changed" in str(exc.value)
    assert not os.path.exists(directory)


def test_rollback_script_restores_the_previous_files(tmp_path, monkeypatch):
    """Run the real rollback.sh with test-double networkctl/ip on PATH."""
    monkeypatch.setattr(nva, "timer_available", lambda: True)
    files, directory = _files(tmp_path)
    nva.apply(FakeModule(), FakeRun(), _params(files, directory, tmp_path))
    before = dict((f["path"], f["content"]) for f in files)
    changed, _ = _files(tmp_path, [dict(VLANS[0], mtu=1400)])
    nva.apply(FakeModule(), FakeRun(), _params(changed, directory, tmp_path, guard_unknown=True))
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    log = tmp_path / "calls.log"
    for name in ("networkctl", "ip"):
        stub = stubs / name
        stub.write_text("#!/bin/sh\necho %s \"$@\" >> %s\n" % (name, log))
        stub.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (stubs, os.environ["PATH"]))
    script = str(tmp_path / "state" / "rollback.sh")
    proc = subprocess.run(["/bin/sh", script], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    now = dict((p, open(p).read()) for p in nva.owned_paths([directory]))
    assert now == before
    calls = log.read_text()
    assert "ip link delete mgmt type vlan" in calls and "networkctl reload" in calls
    assert not os.path.exists(str(tmp_path / "state" / "pending"))


LINKS = json.dumps([{"ifname": "eth0", "mtu": 1500, "operstate": "UP", "flags": ["UP"]},
                    {"ifname": "eth1", "mtu": 9000, "operstate": "UP", "flags": ["UP"]}])


def test_facts_gather_reads_links_controller_interface_and_network_file():
    run = FakeRun({
        ("ip", "-j", "-d", "link"): (0, LINKS, ""),
        ("ip", "-j", "addr"): (0, "[]", ""),
        ("ip", "-j", "route", "get"): (0, json.dumps([{"dst": "10.0.2.2", "dev": "eth0"}]), ""),
        ("systemctl", "is-active", "--quiet", "systemd-networkd.service"): (0, "", ""),
        ("systemctl", "is-active", "--quiet", "NetworkManager.service"): (3, "", ""),
        ("networkctl", "status"): (0, "  Network File: /etc/systemd/network/20-trunk.network\n", ""),
    })
    facts = nvf.gather(run, ["eth1"], "10.0.2.2", [])
    assert facts["links"]["eth1"]["mtu"] == 9000
    assert facts["controller_interface"] == "eth0"
    assert facts["parent_network_files"] == {"eth1": "/etc/systemd/network/20-trunk.network"}
    assert facts["networkd_active"] and not facts["networkmanager_active"]
    assert set(facts["vlan_support"]) >= {"supported", "reason", "kernel_release"}


def test_facts_gather_fails_clearly_without_ip_json():
    run = FakeRun({("ip", "-j", "-d", "link"): (1, "", "Option \"-j\" is unknown")})
    with pytest.raises(RuntimeError):
        nvf.gather(run, [], "", [])
