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


def summarize(targets, stats):
    """Sort the play's hosts by what happened to them.

    ``targets`` are host names in order; ``stats`` maps processed host names
    to their counters (``changed``, ``failures``, ``unreachable``).
    Returns a dict of lists: changed, failed, unreachable, unchanged, untouched.
    """
    out = {"changed": [], "failed": [], "unreachable": [], "unchanged": [], "untouched": []}
    for host in targets:
        counters = stats.get(host)
        if counters is None:
            out["untouched"].append(host)
            continue
        if counters.get("changed", 0):
            out["changed"].append(host)
        if counters.get("unreachable", 0):
            out["unreachable"].append(host)
        elif counters.get("failures", 0):
            out["failed"].append(host)
        if not counters.get("changed", 0) and not counters.get("failures", 0) and not counters.get("unreachable", 0):
            out["unchanged"].append(host)
    return out


def render(title, summary):
    """The summary as lines of text."""
    stopped = bool(summary["failed"] or summary["unreachable"])
    notes = {
        "changed": "",
        "failed": " (the rollout stopped after their batch)",
        "unreachable": " (not reached: see the error above; the rollout stopped after their batch)",
        "unchanged": " (reached; nothing was changed on them)",
        "untouched": " (never contacted: nothing was changed on them)" if stopped else " (never contacted)",
    }
    lines = ["%s: %s" % (title, "STOPPED before every host was done" if stopped and summary["untouched"]
                         else ("FAILED" if stopped else "complete"))]
    for key in ("changed", "failed", "unreachable", "unchanged", "untouched"):
        hosts = summary[key]
        lines.append("  %-12s %s%s" % (key, ", ".join(hosts) if hosts else "-", notes[key] if hosts else ""))
    return lines


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "airgap_rollout"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._plays = []

    def v2_playbook_on_play_start(self, play):
        try:
            flagged = bool(play.vars.get(FLAG))
        except AttributeError:
            flagged = False
        if not flagged:
            return
        # Called once per batch, with the inventory restricted to that batch:
        # the play's hosts are read past the restriction (but within --limit).
        if any(uid == play._uuid for uid, _, _ in self._plays):
            return
        inventory = play.get_variable_manager()._inventory
        hosts = [h.name for h in inventory.get_hosts(play.hosts, ignore_restrictions=True)]
        self._plays.append((play._uuid, play.get_name().strip() or "rollout", hosts))

    def v2_playbook_on_stats(self, stats):
        counters = {}
        for host in stats.processed:
            summary = stats.summarize(host)
            counters[host] = summary
        for _, title, hosts in self._plays:
            self._display.banner("ROLLOUT SUMMARY")
            for line in render(title, summarize(hosts, counters)):
                self._display.display(line)
