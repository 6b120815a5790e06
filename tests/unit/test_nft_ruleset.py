# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the nft_ruleset module against a real kernel.

Every test that touches nftables gets a fresh network namespace of its own
(``ip netns add``) and points the module's engine at it through the
``nft_cmd`` prefix ``ip netns exec <ns> nft``; the host's ruleset is never
touched. The rollback timer is replaced by a test double (systemd-run is not
usable from a test process); the rollback itself is real: both the Python
restore and the generated ``rollback.sh`` are run against the namespace.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from ansible.module_utils.airgap_nft import (
    normalize_egress, normalize_ingress, render, transaction_text)
import nft_ruleset
from nft_ruleset import NftError, NftRuleset, subprocess_runner

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip") or not shutil.which("unshare"),
    reason="needs root, nft, ip and unshare to work in private network namespaces")

FOREIGN = """table inet netavark_like {
	set allowed {
		type ipv4_addr
		elements = { 10.88.0.2 }
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr @allowed accept
		counter accept
	}
}
"""


def content_v1():
    return render(normalize_egress([{"name": "mirror", "dest": "10.89.0.10", "proto": "tcp", "ports": [80, 443]}]),
                  normalize_ingress([{"name": "ssh", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22]}]))


def content_v2():
    return render(normalize_egress([{"name": "mirror", "dest": "10.89.0.10", "proto": "tcp", "ports": [443]},
                                    {"name": "ntp", "dest": "fd00:89::1", "proto": "udp", "ports": [123]}]),
                  normalize_ingress([{"name": "ssh", "src": "10.10.0.0/24", "proto": "tcp", "ports": [22]}]))


class TimerDouble(object):
    """Test double for SystemdRunTimer: records calls, runs nothing."""

    def __init__(self, available=True):
        self._available = available
        self.active = {}
        self.calls = []

    def available(self):
        return self._available

    def is_active(self, unit):
        return unit in self.active

    def schedule(self, unit, seconds, script):
        self.calls.append(("schedule", unit, seconds, script))
        self.active[unit] = (seconds, script)

    def cancel(self, unit):
        self.calls.append(("cancel", unit))
        return self.active.pop(unit, None) is not None


@pytest.fixture
def ns():
    name = "fwm-%s" % uuid.uuid4().hex[:10]
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def make(ns, tmp_path):
    """Build an engine aimed at the test namespace and temporary paths."""
    def factory(**kwargs):
        kwargs.setdefault("nft_cmd", ["ip", "netns", "exec", ns, "nft"])
        kwargs.setdefault("rollback_dir", str(tmp_path / "rollback"))
        kwargs.setdefault("persist_path", str(tmp_path / "etc" / "nftables.d" / "airgap_firewall.nft"))
        kwargs.setdefault("timer", TimerDouble())
        return NftRuleset(subprocess_runner, **kwargs)
    return factory


def nft(ns, *args, data=None):
    return subprocess.run(["ip", "netns", "exec", ns, "nft"] + list(args), input=data, capture_output=True,
                          text=True, check=True).stdout


def load(ns, text):
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True)


# ---------------------------------------------------------------- apply / idempotence

def test_apply_then_reapply_is_idempotent(make, ns):
    engine = make()
    first = engine.apply(content_v1())
    assert first["changed"] and first["kernel_changed"] and first["persist_changed"]
    assert first["table_present"] is False and first["compare_method"] == "scratch_netns"
    listing = nft(ns, "list", "table", "inet", "airgap_firewall")
    assert "content-sha256:%s" % first["desired_sha256"] in listing
    assert "policy drop" in listing
    with open(engine.persist_path) as handle:
        assert handle.read() == transaction_text("inet", "airgap_firewall", content_v1())
    second = engine.apply(content_v1())
    assert second["changed"] is False and second["kernel_changed"] is False
    assert second["live_sha256"] == first["desired_sha256"]


def test_persisted_file_loads_standalone_twice(make, ns):
    """The boot-time file must work whether or not the table already exists."""
    engine = make()
    engine.apply(content_v1())
    before = nft(ns, "list", "table", "inet", "airgap_firewall")
    for _ in range(2):
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", engine.persist_path], check=True)
    assert nft(ns, "list", "table", "inet", "airgap_firewall") == before


def test_changed_content_replaces_table(make, ns):
    engine = make()
    engine.apply(content_v1())
    result = engine.apply(content_v2())
    assert result["changed"] and result["kernel_changed"]
    assert "-\t\telements = { 10.89.0.10 . 80 comment" in result["unified_diff"]
    listing = nft(ns, "list", "table", "inet", "airgap_firewall")
    assert "fd00:89::1 . 123" in listing and "10.89.0.10 . 80" not in listing
    assert engine.apply(content_v2())["changed"] is False


def test_only_persisted_file_differs(make):
    engine = make()
    engine.apply(content_v1())
    os.unlink(engine.persist_path)
    result = engine.apply(content_v1())
    assert result["changed"] and not result["kernel_changed"] and result["persist_changed"]
    assert os.path.exists(engine.persist_path)


def test_check_mode_changes_nothing(make, ns, tmp_path):
    load(ns, FOREIGN)
    before = nft(ns, "list", "ruleset")
    engine = make(check_mode=True)
    result = engine.apply(content_v1(), confirm_timeout=30)
    assert result["changed"] and result["kernel_changed"]
    assert result["diff"][0]["before"] == "" and "egress4_tcp" in result["diff"][0]["after"]
    assert nft(ns, "list", "ruleset") == before
    assert not os.path.exists(engine.persist_path) and not os.path.exists(engine.rollback_dir)
    assert engine.timer.calls == []


# ---------------------------------------------------------------- drift

def test_drift_detected_after_hand_added_rule(make, ns):
    engine = make()
    engine.apply(content_v1())
    clean = engine.check(content_v1())
    assert clean["drift"] is False and clean["unified_diff"] == "" and clean["changed"] is False
    nft(ns, "add", "rule", "inet", "airgap_firewall", "output", "tcp", "dport", "6667", "accept")
    drift = engine.check(content_v1())
    assert drift["drift"] is True
    assert "-\t\ttcp dport 6667 accept" in drift["unified_diff"]
    assert "tcp dport 6667" in nft(ns, "list", "table", "inet", "airgap_firewall")  # check changed nothing
    fixed = engine.apply(content_v1())
    assert fixed["changed"] and "tcp dport 6667" not in nft(ns, "list", "table", "inet", "airgap_firewall")
    assert engine.check(content_v1())["drift"] is False


def test_drift_when_set_element_added(make, ns):
    engine = make()
    engine.apply(content_v1())
    nft(ns, "add", "element", "inet", "airgap_firewall", "egress4_tcp", "{ 203.0.113.10 . 443 }")
    assert engine.check(content_v1())["drift"] is True


def test_counters_are_not_drift(make, ns):
    engine = make()
    engine.apply(content_v1())
    # Make the drop counter move: a veth pair inside the namespace gives a route,
    # and a UDP packet to a non-allowlisted address on it meets the output chain's log rule.
    subprocess.run(["ip", "-n", ns, "link", "add", "c0", "type", "veth", "peer", "name", "c1"], check=True)
    for dev in ("c0", "c1"):
        subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.233.0.1/24", "dev", "c0"], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "python3", "-c",
                    "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                    "for _ in range(3):\n"
                    "    try:\n        s.sendto(b'x', ('10.233.0.9', 9))\n"
                    "    except OSError:\n        pass\n"], check=True)
    listing = nft(ns, "list", "chain", "inet", "airgap_firewall", "output")
    assert "counter packets 3 " in listing  # the counter did move
    assert engine.check(content_v1())["drift"] is False
    assert engine.apply(content_v1())["changed"] is False


def test_absent_table_is_drift(make):
    assert make().check(content_v1())["drift"] is True


# ---------------------------------------------------------------- other tables untouched

def test_foreign_table_untouched_by_apply_replace_and_absent(make, ns):
    load(ns, FOREIGN)
    foreign = nft(ns, "list", "table", "inet", "netavark_like")
    engine = make()
    engine.apply(content_v1())
    engine.apply(content_v2())
    assert nft(ns, "list", "table", "inet", "netavark_like") == foreign
    absent = make()
    assert absent.apply(None)["changed"] is True
    assert nft(ns, "list", "table", "inet", "netavark_like") == foreign
    assert "airgap_firewall" not in nft(ns, "list", "tables")
    assert not os.path.exists(engine.persist_path)
    assert absent.apply(None)["changed"] is False


# ---------------------------------------------------------------- bad input leaves host untouched

@pytest.mark.parametrize("breakage", ["syntax", "kernel", "scope", "foreign_table"])
def test_bad_ruleset_leaves_live_ruleset_byte_identical(make, ns, breakage):
    load(ns, FOREIGN)
    engine = make()
    engine.apply(content_v1())
    before = nft(ns, "list", "ruleset")
    persisted = open(engine.persist_path).read()
    good = content_v2()
    if breakage == "syntax":
        bad = good.replace("policy drop;", "policy dorp;", 1)
    elif breakage == "kernel":
        # overlapping interval elements: valid syntax, refused by the kernel's set backend
        bad = good.replace('10.89.0.10 . 443 comment "mirror"',
                           '10.89.0.0/24 . 443 comment "a",\n\t\t\t10.89.0.10 . 443 comment "mirror"')
        assert bad != good
    elif breakage == "scope":
        bad = "flush ruleset\n" + good
    else:
        bad = good + "\ntable inet netavark_like {\n}\n"
    with pytest.raises(NftError) as info:
        engine.apply(bad, confirm_timeout=30)
    assert nft(ns, "list", "ruleset") == before
    assert open(engine.persist_path).read() == persisted
    assert engine.timer.calls == []
    if breakage == "syntax":
        assert "content line" in str(info.value) and "dorp" in str(info.value)
    if breakage in ("scope", "foreign_table"):
        assert "content refused" in str(info.value)


def test_failing_transaction_is_atomic_even_without_precheck(make, ns):
    """Bypass nft -c: the load itself must commit all or nothing."""
    load(ns, FOREIGN)
    engine = make()
    engine.apply(content_v1())
    before = nft(ns, "list", "ruleset")
    broken = content_v2().replace('10.89.0.10 . 443 comment "mirror"',
                                  '10.89.0.0/24 . 443 comment "a",\n\t\t\t10.89.0.10 . 443 comment "mirror"')
    with pytest.raises(NftError) as info:
        engine.load(transaction_text("inet", "airgap_firewall", broken), offset=2)
    assert "previous ruleset is still in place" in str(info.value)
    assert nft(ns, "list", "ruleset") == before


# ---------------------------------------------------------------- rollback

def test_rollback_restores_previous_table_and_persisted_file(make, ns):
    engine = make()
    engine.apply(content_v1())
    v1_listing = nft(ns, "list", "table", "inet", "airgap_firewall")
    v1_file = open(engine.persist_path).read()
    result = engine.apply(content_v2(), confirm_timeout=30)
    assert result["rollback_scheduled"] and result["rollback_pending"]
    assert engine.timer.calls == [("schedule", "airgap-firewall-rollback", 30,
                                   os.path.join(engine.rollback_dir, "rollback.sh"))]
    assert os.path.exists(os.path.join(engine.rollback_dir, "pending"))
    assert oct(os.stat(engine.rollback_dir).st_mode & 0o777) == "0o700"
    assert nft(ns, "list", "table", "inet", "airgap_firewall") != v1_listing
    engine.restore_previous()
    assert nft(ns, "list", "table", "inet", "airgap_firewall") == v1_listing
    assert open(engine.persist_path).read() == v1_file
    assert not os.path.exists(os.path.join(engine.rollback_dir, "pending"))


def test_rollback_script_is_what_the_timer_runs(make, ns):
    """Run the generated rollback.sh itself, as the systemd unit would."""
    load(ns, FOREIGN)
    foreign = nft(ns, "list", "table", "inet", "netavark_like")
    engine = make()
    engine.apply(content_v1())
    v1_listing = nft(ns, "list", "table", "inet", "airgap_firewall")
    v1_file = open(engine.persist_path).read()
    engine.apply(content_v2(), confirm_timeout=30)
    script = engine.timer.calls[-1][3]
    subprocess.run(["/bin/sh", script], check=True, capture_output=True)
    assert nft(ns, "list", "table", "inet", "airgap_firewall") == v1_listing
    assert nft(ns, "list", "table", "inet", "netavark_like") == foreign
    assert open(engine.persist_path).read() == v1_file
    assert not os.path.exists(os.path.join(engine.rollback_dir, "pending"))


def test_rollback_of_first_apply_removes_table_and_file(make, ns):
    engine = make()
    engine.apply(content_v1(), confirm_timeout=20)
    state = json.load(open(os.path.join(engine.rollback_dir, "state.json")))
    assert state["previous_table_present"] is False and state["previous_persist_present"] is False
    engine.restore_previous()
    assert "airgap_firewall" not in nft(ns, "list", "tables")
    assert not os.path.exists(engine.persist_path)


def test_pending_rollback_keeps_last_confirmed_state(make, ns):
    engine = make()
    engine.apply(content_v1())
    v1_listing = nft(ns, "list", "table", "inet", "airgap_firewall")
    engine.apply(content_v2(), confirm_timeout=30)
    # a third, still unconfirmed change: the rollback target must stay v1
    v3 = render(normalize_egress([{"name": "x", "dest": "10.1.1.1", "proto": "tcp", "ports": [1]}]), [])
    result = engine.apply(v3, confirm_timeout=30)
    assert result["rollback_scheduled"]
    assert [c[0] for c in engine.timer.calls] == ["schedule", "cancel", "schedule"]
    engine.restore_previous()
    assert nft(ns, "list", "table", "inet", "airgap_firewall") == v1_listing


def test_confirm_cancels_timer(make, ns):
    engine = make()
    engine.apply(content_v1(), confirm_timeout=30)
    confirmed = engine.confirm()
    assert confirmed["changed"] and confirmed["cancelled"]
    assert engine.timer.active == {}
    assert not os.path.exists(os.path.join(engine.rollback_dir, "pending"))
    again = engine.confirm()
    assert again["changed"] is False and again["cancelled"] is False


def test_confirm_after_rollback_already_ran_is_an_error(make, ns):
    engine = make()
    engine.apply(content_v1())
    engine.apply(content_v2(), confirm_timeout=30)
    # the timer fires before the controller confirms: run what it runs, then forget the timer
    subprocess.run(["/bin/sh", engine.timer.calls[-1][3]], check=True, capture_output=True)
    engine.timer.active.clear()
    with pytest.raises(NftError) as info:
        engine.confirm()
    assert "rollback has already restored the previous state" in str(info.value)
    # after a fresh apply that was confirmed in time, a repeated confirm is a quiet no-op
    engine.apply(content_v2(), confirm_timeout=30)
    assert engine.confirm()["cancelled"] is True
    assert engine.confirm()["changed"] is False


def test_confirm_in_check_mode_cancels_nothing(make):
    engine = make()
    engine.apply(content_v1(), confirm_timeout=30)
    checker = make(check_mode=True, timer=engine.timer)
    result = checker.confirm()
    assert result["changed"] and engine.timer.active


def test_rollback_action(make, ns):
    engine = make()
    engine.apply(content_v1())
    v1_listing = nft(ns, "list", "table", "inet", "airgap_firewall")
    engine.apply(content_v2(), confirm_timeout=30)
    result = engine.rollback()
    assert result["changed"] and result["cancelled"]
    assert nft(ns, "list", "table", "inet", "airgap_firewall") == v1_listing


def test_confirm_timeout_without_systemd_fails_before_any_change(make, ns):
    engine = make(timer=TimerDouble(available=False))
    engine.apply(content_v1())
    before = nft(ns, "list", "ruleset")
    with pytest.raises(NftError) as info:
        engine.apply(content_v2(), confirm_timeout=30)
    assert "nothing was changed" in str(info.value)
    assert nft(ns, "list", "ruleset") == before


# ---------------------------------------------------------------- fallback comparison

def test_fallback_without_scratch_namespace(make, ns):
    engine = make(scratch_cmd=None)
    first = engine.apply(content_v1())
    assert first["changed"] and first["compare_method"] == "applied_record"
    assert engine.apply(content_v1())["changed"] is False
    assert engine.check(content_v1())["drift"] is False
    nft(ns, "add", "rule", "inet", "airgap_firewall", "input", "tcp", "dport", "23", "accept")
    assert engine.check(content_v1())["drift"] is True
    assert engine.check(content_v2())["drift"] is True


# ---------------------------------------------------------------- the Ansible entry point

MODULE_RUNNER = """
import json, os, sys
root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "library"))
import ansible.module_utils
ansible.module_utils.__path__.append(os.path.join(root, "module_utils"))
from ansible.module_utils.testing import patch_module_args
import nft_ruleset
with patch_module_args(json.loads(sys.argv[2])):
    nft_ruleset.main()
"""


def run_main(ns, args):
    """Run main() as Ansible would, in a process inside the test namespace,
    so that its plain 'nft' can only ever see that namespace, never the host's."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", MODULE_RUNNER, root,
                           json.dumps(args)], capture_output=True, text=True)
    return json.loads(proc.stdout)


def test_module_argument_errors_name_the_parameter(ns, tmp_path):
    cases = [
        ({"action": "apply"}, "content is required"),
        ({"content": "x", "confirm_timeout": -1}, "confirm_timeout"),
        ({"content": "x", "table": "inet"}, "table"),
        ({"content": "x", "rollback_dir": "relative/dir"}, "rollback_dir"),
        ({"content": "flush ruleset"}, "content refused"),
    ]
    for args, expected in cases:
        # temporary paths, so that even a regression cannot write to the host's /etc or /var
        args = dict({"rollback_dir": str(tmp_path / "rb"), "persist_path": str(tmp_path / "fw.nft")}, **args)
        out = run_main(ns, args)
        assert out.get("failed") and expected in out["msg"], (args, out)


def test_module_entry_point_end_to_end_in_namespace(ns, tmp_path):
    def call(**args):
        args.setdefault("content", content_v1())
        args.update(rollback_dir=str(tmp_path / "rb"), persist_path=str(tmp_path / "fw.nft"))
        return run_main(ns, args)

    checked = call(_ansible_check_mode=True, _ansible_diff=True)
    assert checked["changed"] and len(checked["diff"]) == 2 and not checked.get("failed")
    assert nft(ns, "list", "ruleset") == ""
    applied = call()
    assert applied["changed"] and "diff" not in applied  # listings only with --diff
    assert "airgap_firewall" in nft(ns, "list", "tables")
    assert call()["changed"] is False
    assert call(action="check")["drift"] is False
    bad = call(content=content_v1().replace("policy drop;", "policy dorp;"))
    assert bad["failed"] and "nft -c rejected" in bad["msg"]


class RunnerDouble(object):
    """Test double for the command runner: records argv, answers from a table."""

    def __init__(self, answers=None):
        self.calls = []
        self.answers = answers or {}

    def __call__(self, argv, data=None):
        self.calls.append(list(argv))
        return self.answers.get(tuple(argv[:2]), (0, "", ""))


def test_systemd_run_timer_command_lines():
    run = RunnerDouble({("systemctl", "is-active"): (3, "", "")})
    timer = nft_ruleset.SystemdRunTimer(run, "systemd-run", "systemctl")
    timer.schedule("airgap-firewall-rollback", 30, "/var/lib/airgap-firewall/rollback.sh")
    argv = run.calls[-1]
    assert argv[:4] == ["systemd-run", "--unit", "airgap-firewall-rollback", "--on-active=30s"]
    assert "--timer-property=AccuracySec=1s" in argv and "--timer-property=RemainAfterElapse=no" in argv
    assert argv[-2:] == ["/bin/sh", "/var/lib/airgap-firewall/rollback.sh"]
    assert timer.cancel("airgap-firewall-rollback") is False  # is-active said inactive
    assert ["systemctl", "stop", "airgap-firewall-rollback.timer"] in run.calls
    failing = nft_ruleset.SystemdRunTimer(RunnerDouble({("systemd-run", "--unit"): (1, "", "no systemd")}))
    with pytest.raises(NftError) as info:
        failing.schedule("u", 5, "/x.sh")
    assert "no systemd" in str(info.value)
