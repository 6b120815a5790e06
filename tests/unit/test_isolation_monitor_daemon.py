# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The isolation monitor daemon end to end, in a network namespace this test creates.

Real packets on the namespace's loopback: the positive control is a TCP
listener, the forbidden target a port that nftables drops inside the
namespace. Deleting that drop is the staged breach. systemctl is a stand-in
script that records what the daemon asked it to do (a test double). Needs
root, nft and ip; skipped otherwise.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON = os.path.join(ROOT, "roles", "isolation_monitor", "files", "isolation_monitor.py")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
                                reason="needs root, nft and ip (network namespaces)")

FAKE_SYSTEMCTL = """#!/bin/sh
# Test double for systemctl: records each call, lists one active serving unit.
echo "$*" >> "%(log)s"
case "$1" in
  list-units) echo "vllm-double.service loaded active running test double" ;;
esac
exit 0
"""


@pytest.fixture
def netns():
    name = "imon-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def _nft(ns, script):
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script.encode(), check=True)


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


def _read(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def test_breach_stops_units_raises_alarm_and_clear_needs_a_clean_round(netns, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for src in (DAEMON, os.path.join(ROOT, "module_utils", "airgap_monitor.py"),
                os.path.join(ROOT, "module_utils", "airgap_probe.py")):
        shutil.copy(src, str(lib))
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL % {"log": log})
    fake.chmod(0o755)
    state = tmp_path / "state"
    config = {"interval": 1, "probe_timeout": 0.3, "workers": 4,
              "forbidden": [{"name": "canary stand-in", "dest": "127.0.0.1", "proto": "tcp", "port": 9191}],
              "positive_control": {"name": "control", "dest": "127.0.0.1", "proto": "tcp", "port": 9292},
              "units": ["vllm-double.service"], "unit_glob": "vllm-*.service",
              "container_label": "airgap.vllm_server.model", "podman": str(tmp_path / "no-podman"),
              "systemctl": str(fake), "state_dir": str(state), "require_podman": False}
    (tmp_path / "config.json").write_text(json.dumps(config))
    _nft(netns, "table inet t { chain out { type filter hook output priority 0; policy accept;"
                " tcp dport 9191 drop; }; }\n")
    listener = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c",
                                 "import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
                                 "socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',9292));s.listen(64)\n"
                                 "while True:\n c,_=s.accept();c.close()"])
    base = [sys.executable, str(lib / "isolation_monitor.py"), "--config", str(tmp_path / "config.json")]
    daemon = subprocess.Popen(["ip", "netns", "exec", netns] + base + ["run"])
    try:
        status = _wait_for(lambda: (_read(str(state / "status.json")) or {}).get("verdict") == "clean"
                           and _read(str(state / "status.json")), 10)
        assert status, _read(str(state / "status.json"))
        assert status["positive_control"]["status"] == "reachable"
        assert not (state / "alarm.json").exists()
        gate = subprocess.run(base + ["gate", "--unit", "vllm-double.service"], check=False)
        assert gate.returncode == 0

        # The hole: delete the drop. The next round must stop the unit.
        opened = time.monotonic()
        _nft(netns, "flush chain inet t out\n")
        alarm = _wait_for(lambda: _read(str(state / "alarm.json")), 5)
        latency = time.monotonic() - opened
        assert alarm and alarm["event"] == "breach", alarm
        assert latency <= config["interval"] + 1.0
        assert "stop --no-block --job-mode=replace-irreversibly -- vllm-double.service" in log.read_text()
        assert alarm["reached"][0]["target"] == "canary stand-in"
        # The alarm is raised the moment the probe answers; the alert follows at the end of the round.
        assert _wait_for(lambda: (state / "evidence.jsonl").exists(), 3)
        evidence = [json.loads(line) for line in (state / "evidence.jsonl").read_text().splitlines()]
        assert [e["event"] for e in evidence] == ["breach"]

        # Still open: the gate refuses, clearing is refused.
        assert subprocess.run(base + ["gate"], check=False).returncode == 1
        refused = subprocess.run(base + ["clear", "--reason", "test"], stderr=subprocess.PIPE, check=False,
                                 universal_newlines=True)
        assert refused.returncode == 1 and "refusing to clear" in refused.stderr

        # Closed again: the alarm stays until cleared; the gate still refuses.
        _nft(netns, "add rule inet t out tcp dport 9191 drop\n")
        assert _wait_for(lambda: (_read(str(state / "status.json")) or {}).get("verdict") == "clean", 5)
        assert (state / "alarm.json").exists()
        assert subprocess.run(base + ["gate"], check=False).returncode == 1
        cleared = subprocess.run(base + ["clear", "--reason", "hole closed, checked"], stdout=subprocess.PIPE,
                                 check=False, universal_newlines=True)
        assert cleared.returncode == 0 and "Nothing was started" in cleared.stdout
        assert not (state / "alarm.json").exists()
        assert subprocess.run(base + ["gate"], check=False).returncode == 0
        evidence = [json.loads(line) for line in (state / "evidence.jsonl").read_text().splitlines()]
        assert [e["event"] for e in evidence] == ["breach", "cleared"]
        assert evidence[1]["reasons"] == ["hole closed, checked"] and evidence[1]["operator"]["uid"] == 0

        # The prober's code goes missing: fail closed.
        os.rename(str(lib / "airgap_probe.py"), str(lib / "airgap_probe.py.moved"))
        alarm = _wait_for(lambda: _read(str(state / "alarm.json")), 5)
        assert alarm and alarm["event"] == "fail_closed"
        assert any("airgap_probe.py is missing" in r for r in alarm["reasons"]), alarm
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            assert daemon.wait(5) == 0
        finally:
            listener.kill()
            listener.wait()


def test_stopped_raises_the_alarm_only_on_an_abnormal_end(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(DAEMON, str(lib))
    shutil.copy(os.path.join(ROOT, "module_utils", "airgap_monitor.py"), str(lib))
    fake = tmp_path / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL % {"log": tmp_path / "systemctl.log"})
    fake.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    config = {"interval": 1, "probe_timeout": 0.3, "forbidden": [{"dest": "192.0.2.1", "proto": "tcp", "port": 1}],
              "positive_control": {"dest": "127.0.0.1", "proto": "tcp", "port": 2}, "units": [],
              "unit_glob": "vllm-*.service", "container_label": "l", "podman": "/nonexistent/podman",
              "systemctl": str(fake), "state_dir": str(state)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    base = [sys.executable, str(lib / "isolation_monitor.py"), "--config", str(tmp_path / "config.json"), "stopped"]
    env = dict(os.environ, SERVICE_RESULT="success", EXIT_CODE="exited", EXIT_STATUS="0")
    assert subprocess.run(base, env=env, check=False).returncode == 0
    assert not (state / "alarm.json").exists()
    env.update(SERVICE_RESULT="signal", EXIT_CODE="killed", EXIT_STATUS="KILL")
    # airgap_probe.py is absent here on purpose: the ExecStopPost must not need it.
    assert subprocess.run(base, env=env, check=False).returncode == 0
    alarm = _read(str(state / "alarm.json"))
    assert alarm["event"] == "monitor_died" and "result signal" in alarm["reasons"][0]
    assert "vllm-double.service" in alarm["units_stopped"]


FAKE_PODMAN = """#!/bin/sh
# Test double for podman: one serving container whose PID lives in another namespace.
echo '[{"Id": "0123456789abcdef", "Names": ["vllm-fake"], "Pid": %(pid)d, "State": "running",
        "Labels": {"airgap.vllm_server.model": "fake"}}]'
"""


def test_a_hole_seen_only_from_a_container_namespace_is_a_breach(netns, tmp_path):
    """The host is sealed; the "container" (a process in a second namespace) is not: breach from there."""
    container_ns = netns + "-c"
    subprocess.run(["ip", "netns", "add", container_ns], check=True)
    sleeper = None
    daemon = None
    listener = None
    try:
        subprocess.run(["ip", "-n", container_ns, "link", "set", "lo", "up"], check=True)
        sleeper = subprocess.Popen(["ip", "netns", "exec", container_ns, "sleep", "120"])
        pid = _wait_for(lambda: _child_pid(sleeper.pid), 5)
        lib = tmp_path / "lib"
        lib.mkdir()
        for src in (DAEMON, os.path.join(ROOT, "module_utils", "airgap_monitor.py"),
                    os.path.join(ROOT, "module_utils", "airgap_probe.py")):
            shutil.copy(src, str(lib))
        log = tmp_path / "systemctl.log"
        for name, text in (("systemctl", FAKE_SYSTEMCTL % {"log": log}), ("podman", FAKE_PODMAN % {"pid": pid})):
            (tmp_path / name).write_text(text)
            (tmp_path / name).chmod(0o755)
        state = tmp_path / "state"
        config = {"interval": 1, "probe_timeout": 0.3, "workers": 4,
                  "forbidden": [{"name": "canary stand-in", "dest": "127.0.0.1", "proto": "tcp", "port": 9191}],
                  "positive_control": {"name": "control", "dest": "127.0.0.1", "proto": "tcp", "port": 9292},
                  "netns_positive_control": {"name": "container loopback", "dest": "127.0.0.1", "proto": "tcp",
                                             "port": 9},
                  "units": ["vllm-double.service"], "unit_glob": "vllm-*.service",
                  "container_label": "airgap.vllm_server.model", "podman": str(tmp_path / "podman"),
                  "systemctl": str(tmp_path / "systemctl"), "state_dir": str(state)}
        (tmp_path / "config.json").write_text(json.dumps(config))
        drop = ("table inet t { chain out { type filter hook output priority 0; policy accept;"
                " tcp dport 9191 drop; }; }\n")
        _nft(netns, drop)
        _nft(container_ns, drop)
        listener = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c",
                                     "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
                                     "socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',9292));s.listen(64)\n"
                                     "while True:\n c,_=s.accept();c.close()"])
        base = [sys.executable, str(lib / "isolation_monitor.py"), "--config", str(tmp_path / "config.json")]
        daemon = subprocess.Popen(["ip", "netns", "exec", netns] + base + ["run"])
        status = _wait_for(lambda: (_read(str(state / "status.json")) or {}).get("verdict") == "clean"
                           and _read(str(state / "status.json")), 10)
        assert status, _read(str(state / "status.json"))
        assert status["namespaces"] == [{"name": "vllm-fake", "netns": "/proc/%d/ns/net" % pid, "blocked": 1,
                                         "probed": 1, "control": "reachable"}]
        assert status["scope"] == "probing from the host and 1 serving container(s)"

        _nft(container_ns, "flush chain inet t out\n")
        alarm = _wait_for(lambda: _read(str(state / "alarm.json")), 5)
        assert alarm and alarm["event"] == "breach", alarm
        assert [r["where"] for r in alarm["reached"]] == ["container vllm-fake"]
        assert "vllm-double.service" in log.read_text()
    finally:
        for proc in (daemon, listener, sleeper):
            if proc is not None:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", container_ns], check=False)


def _child_pid(parent):
    """The PID of `sleep` (ip netns exec replaces itself with it, so usually the same PID)."""
    try:
        with open("/proc/%d/comm" % parent) as handle:
            return parent if handle.read().strip() == "sleep" else None
    except OSError:
        return None
