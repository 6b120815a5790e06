# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged rollout: airgap_rollout_batch validation and planning, and the rollout summary callback."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import re

import pytest
from hypothesis import given, settings, strategies as st

from rollout_filters import airgap_rollout_connections, airgap_rollout_errors, airgap_rollout_plan

HERE = os.path.dirname(os.path.abspath(__file__))
HOSTS = ["gpu-node-%d" % i for i in range(1, 11)]


def _callback():
    path = os.path.join(HERE, "..", "..", "callback_plugins", "airgap_rollout.py")
    spec = importlib.util.spec_from_file_location("airgap_rollout", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plan(value, hosts=HOSTS):
    return airgap_rollout_plan(hosts, {h: value for h in hosts})


# ---------------------------------------------------------------- valid values

@pytest.mark.parametrize("value, sizes", [
    (None, [10]),
    ("100%", [10]),
    (1, [1] * 10),
    ("1", [1] * 10),
    ("3", [3, 3, 3, 1]),
    ("25%", [2, 2, 2, 2, 2]),
    ("1%", [1] * 10),
    ([1, "50%"], [1, 5, 4]),
    ([1, 2, "100%"], [1, 2, 7]),
    (50, [10]),
])
def test_batches_follow_ansible_serial(value, sizes):
    plan = _plan(value)
    assert plan["errors"] == []
    assert [len(b) for b in plan["batches"]] == sizes
    assert [h for b in plan["batches"] for h in b] == HOSTS


def test_counts_reach_serial_as_integers():
    assert _plan("3")["serial"] == [3]
    assert _plan([1, "25%"])["serial"] == [1, "25%"]


def test_not_set_anywhere_means_all_at_once():
    assert airgap_rollout_plan(HOSTS, {})["batches"] == [HOSTS]


def test_hosts_that_disagree_are_refused_naming_them():
    plan = airgap_rollout_plan(["a", "b", "c"], {"a": 1, "b": 1, "c": "50%"})
    assert plan["serial"] is None
    assert plan["errors"] == ["airgap_rollout_batch differs between hosts (1 on a, b; '50%' on c): it sets the "
                              "batches of the whole play, so give it once, in group_vars of all or with -e"]


def test_set_on_some_hosts_only_is_refused():
    plan = airgap_rollout_plan(["a", "b"], {"a": 1})
    assert "not set on b" in plan["errors"][0]


def test_hostvars_like_mappings_are_read():
    class HostVarsVars(dict):
        pass
    hostvars = {"a": HostVarsVars(airgap_rollout_batch="1", other=1), "b": HostVarsVars(airgap_rollout_batch="1")}
    assert airgap_rollout_plan(["a", "b"], hostvars, from_hostvars=True)["batches"] == [["a"], ["b"]]
    assert airgap_rollout_plan(["a"], {"a": HostVarsVars(other=1)}, from_hostvars=True)["batches"] == [["a"]]
    # A mapping given as the value itself is hostile input, not a host's variables.
    assert airgap_rollout_plan(["a"], {"a": {"airgap_rollout_batch": 1}})["errors"]


# ---------------------------------------------------------------- hostile values

@pytest.mark.parametrize("value, says", [
    (0, "must be at least 1 host, got 0"),
    (-1, "must be at least 1 host, got -1"),
    ("0", "must be at least 1 host, got '0'"),
    ("-3", "must be at least 1 host, got '-3'"),
    ("0%", "must be at least 1%, got '0%'"),
    ("-10%", "must be at least 1%, got '-10%'"),
    ("101%", "must be at most 100%, got '101%'"),
    ("150%", "must be at most 100%, got '150%'"),
    ("", "got ''"),
    (" 1", "got ' 1'"),
    ("1 ", "got '1 '"),
    ("1_0", "got '1_0'"),
    ("\u0661", "got '\u0661'"),          # Arabic-Indic one: int() reads it
    ("\uff11", "got '\uff11'"),          # fullwidth one
    ("1e2", "got '1e2'"),
    ("0x10", "got '0x10'"),
    ("+1", "got '+1'"),
    ("007", "got '007'"),
    ("25 %", "got '25 %'"),
    ("%25", "got '%25'"),
    ("12.5%", "got '12.5%'"),
    ("all", "got 'all'"),
    (True, "got True"),
    (False, "got False"),
    (1.5, "got float 1.5"),
    ({"a": 1}, "got dict"),
    ([], "must not be an empty list"),
])
def test_hostile_values_are_refused_naming_the_variable_and_value(value, says):
    errors = airgap_rollout_errors(value)
    assert errors and all(e.startswith("airgap_rollout_batch") for e in errors)
    assert says in " ".join(errors)
    assert _plan(value)["serial"] is None and _plan(value)["batches"] == []


def test_a_bad_entry_in_a_list_is_named_by_its_index():
    assert airgap_rollout_errors([1, "0%", "50%"]) == [
        "airgap_rollout_batch[1] must be at least 1%, got '0%': a batch of no hosts would roll out nothing"]


def test_too_many_entries_are_refused():
    assert "at most 100" in airgap_rollout_errors([1] * 101)[0]


@pytest.mark.parametrize("value", [1000000, 10 ** 100, "1000000"])
def test_counts_beyond_six_digits_are_refused_in_either_notation(value):
    errors = airgap_rollout_errors(value)
    assert errors and "airgap_rollout_batch" in errors[0] and str(value) in errors[0]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=100), st.integers(min_value=1, max_value=400))
def test_percent_batches_are_exactly_what_ansible_runs(pct, total):
    """The printed plan must be Ansible's own batches (its float formula: 58% of 50 is 28, not 29)."""
    from ansible.utils.helpers import pct_to_int
    hosts = ["h%d" % i for i in range(total)]
    plan = airgap_rollout_plan(hosts, {h: "%d%%" % pct for h in hosts})
    assert len(plan["batches"][0]) == min(total, pct_to_int("%d%%" % pct, total))


def test_fifty_eight_percent_of_fifty_is_twenty_eight_as_in_ansible():
    hosts = ["h%d" % i for i in range(50)]
    assert len(airgap_rollout_plan(hosts, {h: "58%" for h in hosts})["batches"][0]) == 28


VALID_TEXT = re.compile(r"\A(?:[1-9][0-9]{0,5}|(?:[1-9][0-9]?|100)%)\Z")


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=8), st.integers(min_value=-10 ** 6, max_value=10 ** 6), st.floats(),
                 st.booleans(), st.none(),
                 st.lists(st.one_of(st.text(max_size=5), st.integers(-5, 500)), max_size=4)))
def test_any_value_is_either_a_sound_plan_or_refused(value):
    """No input yields a plan that skips a host, repeats one or makes an empty batch."""
    plan = _plan(value)
    if plan["errors"]:
        assert plan["serial"] is None and plan["batches"] == []
        return
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if entry is None:
            continue
        assert (isinstance(entry, int) and not isinstance(entry, bool) and entry >= 1) or \
            (isinstance(entry, str) and VALID_TEXT.match(entry)), entry
    assert [h for b in plan["batches"] for h in b] == HOSTS
    assert all(plan["batches"])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(categories=["Nd", "No", "Zs", "Pd", "Po", "Sm"]), min_size=1, max_size=6))
def test_only_ascii_digits_make_a_count(text):
    valid = bool(VALID_TEXT.match(text))
    assert (airgap_rollout_errors(text) == []) == valid


# ---------------------------------------------------------------- summary callback

def test_summary_sorts_hosts_by_what_happened():
    cb = _callback()
    stats = {"gpu-node-1": {"changed": 5, "failures": 1, "unreachable": 0},
             "gpu-node-2": {"changed": 0, "failures": 0, "unreachable": 1},
             "gpu-node-3": {"changed": 0, "failures": 0, "unreachable": 0}}
    summary = cb.summarize(["gpu-node-1", "gpu-node-2", "gpu-node-3", "gpu-node-4"], stats)
    assert summary == {"changed": ["gpu-node-1"], "failed": ["gpu-node-1"], "unreachable": ["gpu-node-2"],
                       "interrupted": [], "unchanged": ["gpu-node-3"], "untouched": ["gpu-node-4"]}


def test_a_failure_in_the_validation_play_leaves_every_other_host_untouched():
    cb = _callback()
    checked = {"a": {"changed": 0, "failures": 0}, "b": {"failures": 1}, "c": {"unreachable": 1}}
    summary = cb.summarize(["a", "b", "c"], {}, batches=[], checked=checked)
    assert summary["failed"] == ["b"] and summary["unreachable"] == ["c"]
    assert summary["untouched"] == ["a"] and summary["changed"] == [] and summary["interrupted"] == []
    assert cb.render("Validation", summary)[0] == "Validation: STOPPED before every host was done"


def test_batch_mates_of_a_failed_host_are_interrupted_not_unchanged():
    cb = _callback()
    stats = {"a": {"changed": 2, "failures": 1}, "b": {"changed": 1}, "c": {}, "d": {}}
    summary = cb.summarize(["a", "b", "c", "d", "e"], stats, batches=[["c", "d"], ["a", "b"]])
    assert summary["failed"] == ["a"]
    assert summary["interrupted"] == ["b"]
    assert summary["unchanged"] == ["c", "d"]
    assert summary["untouched"] == ["e"]
    assert any(line.startswith("  interrupted  b (no error of their own")
               for line in cb.render("site", summary))


def test_summary_text_says_the_rollout_stopped_and_who_was_untouched():
    cb = _callback()
    lines = cb.render("Turn GPU nodes into isolated LLM inference hosts", {
        "changed": ["gpu-node-1"], "failed": ["gpu-node-1"], "unreachable": [], "interrupted": [],
        "unchanged": [], "untouched": ["gpu-node-2", "gpu-node-3"]})
    assert lines[0] == "Turn GPU nodes into isolated LLM inference hosts: STOPPED before every host was done"
    assert "  untouched    gpu-node-2, gpu-node-3 (never converged: nothing was changed on them)" in lines
    assert "  unreachable  -" in lines


def test_summary_of_a_complete_rollout():
    cb = _callback()
    lines = cb.render("site", {"changed": ["a"], "failed": [], "unreachable": [], "interrupted": [],
                                 "unchanged": ["b"], "untouched": []})
    assert lines[0] == "site: complete"


def test_callback_documents_itself():
    cb = _callback()
    assert "name: airgap_rollout" in cb.DOCUMENTATION
    assert cb.CallbackModule.CALLBACK_NEEDS_ENABLED


def test_connections_say_how_each_host_is_reached():
    hostvars = {
        "gpu-node-1": {"ansible_connection": "ssh", "ansible_host": "10.89.0.21", "ansible_port": 22,
                       "ansible_user": "airgap-admin", "ansible_become": True},
        "gpu-node-2": {"ansible_host": "10.10.0.22", "ansible_become": "yes"},
        "gpu-node-3": {"ansible_connection": "airgap_podman", "ansible_host": "airgap-lab-gpu-node-3"},
    }
    assert airgap_rollout_connections(["gpu-node-1", "gpu-node-2", "gpu-node-3"], hostvars) == [
        "gpu-node-1: ssh airgap-admin@10.89.0.21:22, sudo to root",
        "gpu-node-2: ssh 10.10.0.22:22, sudo to root",
        "gpu-node-3: airgap_podman airgap-lab-gpu-node-3 (not a network connection: nothing the firewall could cut)"]


class _Display(object):
    def __init__(self):
        self.lines = []

    def banner(self, text):
        self.lines.append(text)

    def display(self, text):
        self.lines.append(text)


def test_an_audit_whose_validation_passed_prints_no_rollout_summary():
    cb = _callback().CallbackModule()
    cb._display = _Display()
    cb._summary = {"title": None, "hosts": ["a"], "stats": {}, "checked": {"a": {"failures": 0}}, "batches": []}
    cb.v2_playbook_on_stats(None)
    assert cb._display.lines == []
    cb._summary["checked"]["a"]["failures"] = 1
    cb.v2_playbook_on_stats(None)
    assert cb._display.lines[0] == "ROLLOUT SUMMARY"
    assert cb._display.lines[1] == "Validation (nothing was converged): FAILED"
