# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After a staged rollout, say which hosts were changed and which were left untouched.

Ansible's PLAY RECAP lists only the hosts a play reached. When a batch fails
and the rollout stops, the hosts of later batches are simply absent from it,
and an operator has to work out from the inventory which servers are still
as they were. This callback prints that list.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
    name: airgap_rollout
    type: aggregate
    short_description: Summary of a staged rollout (changed, failed, unchanged and untouched hosts)
    description:
        - At the end of a playbook, for each play that sets the play variable C(airgap_rollout_summary=true)
          (the converge play of C(playbooks/site.yml)), prints which of the play's hosts were changed, which
          failed or were unreachable, which were reached and left unchanged, and which were never contacted
          because the rollout stopped before their batch.
        - Hosts are the play's hosts after C(--limit), in inventory order.
    author: airgap-llm contributors
    requirements:
        - enabled in ansible.cfg (C(callbacks_enabled = airgap_rollout)), as this repository's ansible.cfg does
"""

from ansible.plugins.callback import CallbackBase

FLAG = "airgap_rollout_summary"


def summarize(targets, stats, batches=None, checked=None):
    """Sort the play's hosts by what happened to them.

    ``targets`` are host names in order; ``stats`` maps the hosts the
    converge play reached to their counters (``changed``, ``failures``,
    ``unreachable``), counted for that play only; ``batches`` are the host
    lists of the batches that started; ``checked`` holds the same counters
    from the validation play before it (read-only: it changes nothing, but a
    host can fail or be unreachable there). A host with no failure of its
    own, in a batch where another host failed, was stopped part-way by
    ``any_errors_fatal``: it is ``interrupted`` (possibly part-changed), not
    ``unchanged``.
    Returns a dict of lists: changed, failed, unreachable, interrupted,
    unchanged, untouched.
    """
    out = {key: [] for key in KEYS}
    checked = checked or {}
    broken = set()
    for batch in batches or []:
        if any(stats.get(h, {}).get("failures", 0) or stats.get(h, {}).get("unreachable", 0) for h in batch):
            broken.update(batch)
    for host in targets:
        counters = stats.get(host)
        early = checked.get(host, {})
        if counters is None:
            if early.get("unreachable", 0):
                out["unreachable"].append(host)
            elif early.get("failures", 0):
                out["failed"].append(host)
            else:
                out["untouched"].append(host)
            continue
        changed, failures, unreachable = (counters.get(k, 0) for k in ("changed", "failures", "unreachable"))
        if changed:
            out["changed"].append(host)
        if unreachable:
            out["unreachable"].append(host)
        elif failures:
            out["failed"].append(host)
        elif host in broken:
            out["interrupted"].append(host)
        elif not changed:
            out["unchanged"].append(host)
    return out


KEYS = ("changed", "failed", "unreachable", "interrupted", "unchanged", "untouched")


def render(title, summary):
    """The summary as lines of text."""
    stopped = bool(summary["failed"] or summary["unreachable"])
    notes = {
        "changed": "",
        "failed": " (the rollout stopped after their batch)",
        "unreachable": " (not reached: see the error above; the rollout stopped after their batch)",
        "interrupted": " (no error of their own: stopped part-way because a host of their batch failed; "
                       "run the play again on them)",
        "unchanged": " (reached; nothing was changed on them)",
        "untouched": " (never converged: nothing was changed on them)" if stopped else " (never converged)",
    }
    lines = ["%s: %s" % (title, "STOPPED before every host was done" if stopped and summary["untouched"]
                         else ("FAILED" if stopped else "complete"))]
    for key in KEYS:
        hosts = summary.get(key, [])
        lines.append("  %-12s %s%s" % (key, ", ".join(hosts) if hosts else "-", notes[key] if hosts else ""))
    return lines


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "airgap_rollout"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        # One summary per playbook: the validation play (flag "validation")
        # and the converge play (flag true) of site.yml report together.
        self._summary = None
        self._current = None

    def v2_playbook_on_play_start(self, play):
        try:
            flag = play.vars.get(FLAG)
        except AttributeError:
            flag = None
        if not flag:
            self._current = None
            return
        # Called once per batch, with the inventory restricted to that batch:
        # the play's hosts are read past the restriction (but within --limit).
        inventory = play.get_variable_manager()._inventory
        if self._summary is None:
            self._summary = {"title": None, "hosts": [], "stats": {}, "checked": {}, "batches": []}
        summary = self._summary
        for host in inventory.get_hosts(play.hosts, ignore_restrictions=True):
            if host.name not in summary["hosts"]:
                summary["hosts"].append(host.name)
        validation = str(flag).lower() == "validation"
        if not validation:
            summary["title"] = play.get_name().strip() or "rollout"
            summary["batches"].append([h.name for h in inventory.get_hosts(play.hosts)])
        self._current = summary["checked"] if validation else summary["stats"]

    def _count(self, result, key):
        # Counted per play: the playbook's own stats mix the validation play,
        # the converge play and any later play, which would blur "changed here".
        if self._current is None:
            return
        counters = self._current.setdefault(result._host.get_name(), {"changed": 0, "failures": 0, "unreachable": 0})
        if key:
            counters[key] += 1

    def v2_runner_on_ok(self, result):
        self._count(result, "changed" if result._result.get("changed") else None)

    def v2_runner_on_skipped(self, result):
        self._count(result, None)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, None if ignore_errors else "failures")

    def v2_runner_on_unreachable(self, result):
        self._count(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        summary = self._summary
        if summary is None:
            return
        failed = any(c.get("failures") or c.get("unreachable") for c in summary["checked"].values())
        if summary["title"] is None and not failed:
            return  # only a validation phase that passed (audit.yml): there is no rollout to summarise
        self._display.banner("ROLLOUT SUMMARY")
        title = summary["title"] or "Validation (nothing was converged)"
        for line in render(title, summarize(summary["hosts"], summary["stats"], summary["batches"],
                                            summary["checked"])):
            self._display.display(line)
