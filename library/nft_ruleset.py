#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nft_ruleset: replace one nftables table atomically, with confirm-or-rollback."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nft_ruleset
short_description: Replace one nftables table atomically, with drift check and confirm-or-rollback
description:
  - >-
    Loads a complete nftables table definition (normally rendered by the C(firewall_render) filter)
    so that the old table is replaced by the new one in B(one) kernel transaction. The file given to
    C(nft -f) is C(table X {}), C(delete table X), then the definition: the kernel commits all of it
    or nothing, packets see either the old or the new table, and no other table (podman/netavark,
    the distribution's) is flushed or touched. C(nft flush ruleset) is never run.
  - >-
    The content is checked first, before anything changes. Its top level may hold only the one
    C(table) named by O(table) (no C(flush), no C(include), no other table); then C(nft -c -f)
    validates the whole transaction against the running kernel. Either failure leaves the host
    untouched and reports nft's own error message with line numbers of O(content).
  - >-
    Idempotence and drift are judged by the kernel's own rendering. The desired content is loaded
    into a private, empty network namespace (C(unshare --net)) and listed there with the same
    nft, then compared with C(nft list table) of the live table (counter values ignored). Where
    a namespace cannot be created (e.g. a container without CAP_SYS_ADMIN), the module compares
    against the listing it recorded right after its last apply (O(rollback_dir)/applied.json).
  - >-
    Confirm-or-rollback: before the new table is loaded, the current table (or its absence) and
    the current O(persist_path) are saved in O(rollback_dir) together with a C(rollback.sh). With
    O(confirm_timeout) > 0 a transient systemd timer
    (C(systemd-run --unit <rollback_unit> --on-active=<timeout>s)) runs that script unless
    O(action=confirm) cancels it first. The playbook confirms over a B(new) connection after the
    apply; if the new rules locked the controller out, the confirm never arrives and the host goes
    back to its previous state. A marker file O(rollback_dir)/pending exists while a rollback is
    armed, so a boot-time unit can roll back an apply interrupted by a reboot.
  - >-
    Rolling back restores exactly the previous state. On a first run that means no firewall table
    at all: losing the controller is traded for losing isolation, which the isolation monitor then
    detects (it stops the model servers).
  - >-
    Hook priority: the rendered table uses priority C(filter - 10) (-10) on input, output and forward.
    Netfilter evaluates every base chain registered on a hook; a drop verdict in any of them is final,
    while an accept only ends that one chain. A packet that podman/netavark's tables accept therefore
    still traverses this table and meets its policy drop, whatever their priority. -10 places the
    chains after conntrack (-200, so C(ct state) is known) and after destination NAT (-100, so rules
    match the translated destination and a DNAT cannot rewrite an allowed address into a forbidden
    one behind the allowlist's back), and before the usual filter tables (0), so this table's drop
    and its log line come first. Packet (AF_PACKET) sockets bypass netfilter altogether; workloads
    must not hold CAP_NET_RAW.
  - >-
    The persisted file at O(persist_path) holds the same replace-in-one-transaction text, so loading
    it at boot (C(nft -f)) works whether or not the table exists, and never flushes other tables.
version_added: "1.0.0"
author: contributors to this project
options:
  content:
    description:
      - The complete table definition (C(table inet airgap_firewall { ... })), comments allowed.
      - Required with O(state=present) for O(action=apply) and O(action=check).
    type: str
  table:
    description: Family and name of the table this module owns, e.g. C(inet airgap_firewall).
    type: str
    default: inet airgap_firewall
  state:
    description: V(present) loads O(content); V(absent) deletes the table and the persisted file.
    type: str
    choices: [present, absent]
    default: present
  action:
    description:
      - V(apply) converges the live table and the persisted file to O(content) (or O(state)).
      - V(confirm) cancels a pending rollback timer; changed when one was cancelled. Fails when
        nothing is pending and the live table is not the one last applied, i.e. the rollback has
        already run.
      - V(check) compares the live table with O(content) and reports C(drift); it never changes anything.
      - V(rollback) restores the saved previous state now and cancels the timer.
    type: str
    choices: [apply, confirm, check, rollback]
    default: apply
  confirm_timeout:
    description:
      - Seconds after which an unconfirmed apply is rolled back. V(0) schedules no rollback.
      - Needs systemd (C(systemd-run)); the module fails before changing anything if it is missing.
      - A rollback armed by an earlier, still unconfirmed apply stays armed, and keeps the state saved
        before that apply (the last confirmed one), until O(action=confirm) or O(action=rollback).
    type: int
    default: 0
  rollback_dir:
    description: Private directory (mode 0700) for the saved previous state, C(rollback.sh) and markers.
    type: path
    default: /var/lib/airgap-firewall
  persist_path:
    description: File written atomically with the loaded transaction, for loading at boot.
    type: path
    default: /etc/nftables.d/airgap_firewall.nft
  rollback_unit:
    description: Name of the transient systemd unit (C(.timer) and C(.service)) that rolls back.
    type: str
    default: airgap-firewall-rollback
notes:
  - Supports check mode (nothing is loaded or written; C(nft -c) and read-only listings still run)
    and diff mode (live table and persisted file, before and after).
  - The live table keeps its C(content-sha256) stamp as a table comment, so C(nft list table) tells
    which rendering is loaded.
requirements:
  - nft (nftables) on the target; unshare (util-linux) for exact comparison; systemd for rollback timers.
seealso:
  - name: nftables wiki, atomic rule replacement
    link: https://wiki.nftables.org/wiki-nftables/index.php/Atomic_rule_replacement
"""

EXAMPLES = r"""
- name: Load the firewall, roll back in 30 s unless confirmed
  nft_ruleset:
    content: "{{ _fw_egress | firewall_render(_fw_ingress, firewall_render_options) }}"
    confirm_timeout: 30
  register: fw_apply

- name: Force a new connection, so that confirming proves the new rules admit the controller
  ansible.builtin.meta: reset_connection

- name: Confirm (cancel the rollback)
  nft_ruleset:
    action: confirm
  when: fw_apply.rollback_pending | default(false)

- name: Report drift without changing anything
  nft_ruleset:
    action: check
    content: "{{ _fw_content }}"
  register: fw_drift
"""

RETURN = r"""
changed:
  description: Whether the live table, the persisted file or the rollback timer changed (or would).
  returned: always
  type: bool
diff:
  description: Before/after of the live table (kernel listing) and of the persisted file, for --diff.
  returned: in diff mode
  type: list
  elements: dict
drift:
  description: (action=check) True when the live table differs from O(content).
  returned: when action is check
  type: bool
persist_drift:
  description: (action=check) True when O(persist_path) differs from what an apply would write.
  returned: when action is check
  type: bool
unified_diff:
  description: (action=check, apply) unified diff from the live listing to the desired listing.
  returned: when action is check or apply
  type: str
kernel_changed:
  description: Whether the live table differed from the desired one.
  returned: when action is apply
  type: bool
persist_changed:
  description: Whether the persisted file differed from the desired one.
  returned: when action is apply
  type: bool
rollback_scheduled:
  description: True when this run armed the rollback timer.
  returned: always
  type: bool
rollback_pending:
  description: True when a rollback timer is armed after this run (this run's or an earlier one's).
  returned: always
  type: bool
rollback_unit:
  description: Name of the transient unit that rolls back.
  returned: always
  type: str
  sample: airgap-firewall-rollback
cancelled:
  description: (action=confirm, rollback) whether a pending timer was cancelled.
  returned: when action is confirm or rollback
  type: bool
table_present:
  description: Whether the table exists in the kernel (before the change for apply).
  returned: always
  type: bool
live_sha256:
  description: The content-sha256 the live table's comment claims, or null.
  returned: always
  type: str
desired_sha256:
  description: The content-sha256 stamp of O(content), or null.
  returned: when content is given
  type: str
compare_method:
  description: C(scratch_netns) (exact, kernel rendering) or C(applied_record) (fallback) or C(absent).
  returned: when action is apply or check
  type: str
"""

import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_manifest import atomic_write as _atomic_write
from ansible.module_utils.airgap_nft import (
    check_content_scope, claimed_hash, delete_transaction_text, normalize_listing,
    parse_table_spec, transaction_text)

PENDING = "pending"
PREVIOUS_NFT = "previous.nft"
PREVIOUS_PERSIST = "previous.persist"
ROLLBACK_SH = "rollback.sh"
APPLIED = "applied.json"
STATE = "state.json"
_UNIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")


class NftError(Exception):
    """A failure to report to the user, with the host left as described in the message."""


def subprocess_runner(argv, data=None):
    """Run argv; return (rc, stdout, stderr). The runner used outside Ansible (tests, bench)."""
    proc = subprocess.run(list(argv), input=data, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def atomic_write(path, text, mode=0o644):
    """Write ``text`` so readers see the old file or the new one, never half of it (airgap_manifest's)."""
    _atomic_write(path, text, mode, makedirs=True)


def read_text(path):
    """File contents, or None if the file does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


class SystemdRunTimer(object):
    """The production rollback timer: a transient systemd timer + service."""

    def __init__(self, run, systemd_run="systemd-run", systemctl="systemctl"):
        self.run = run
        self.systemd_run = systemd_run
        self.systemctl = systemctl

    def available(self):
        """Whether systemd can run transient units here."""
        if not (shutil.which(self.systemd_run) and shutil.which(self.systemctl)):
            return False
        return os.path.isdir("/run/systemd/system")

    def is_active(self, unit):
        rc, _, _ = self.run([self.systemctl, "is-active", "--quiet", unit + ".timer"])
        return rc == 0

    def schedule(self, unit, seconds, script):
        # Clear leftovers of an earlier run (a failed service keeps its name taken).
        self.run([self.systemctl, "stop", unit + ".timer"])
        self.run([self.systemctl, "reset-failed", unit + ".timer", unit + ".service"])
        # AccuracySec: the default of one minute would let the rollback fire up to a minute late.
        # RemainAfterElapse=no: an elapsed transient timer would otherwise keep the unit name taken.
        argv = [self.systemd_run, "--unit", unit, "--on-active=%ds" % seconds,
                "--timer-property=AccuracySec=1s", "--timer-property=RemainAfterElapse=no", "--collect",
                "--description=airgap-firewall: roll back an unconfirmed ruleset",
                "/bin/sh", script]
        rc, out, err = self.run(argv)
        if rc != 0:
            raise NftError("could not schedule the rollback timer (%s): %s"
                           % (" ".join(argv), (err or out).strip()))

    def cancel(self, unit):
        """Stop the timer; return True if one was armed."""
        active = self.is_active(unit)
        self.run([self.systemctl, "stop", unit + ".timer"])
        self.run([self.systemctl, "reset-failed", unit + ".timer", unit + ".service"])
        return active


class NftRuleset(object):
    """Apply, check, confirm and roll back one nftables table.

    Every external effect goes through ``run`` (argv -> rc, out, err),
    ``nft_cmd`` (argv prefix for the live nft, e.g. ['ip', 'netns', 'exec',
    'ns1', 'nft'] in tests), ``scratch_cmd`` (prefix that runs a command in a
    fresh empty network namespace) and ``timer`` (the rollback mechanism), so
    that tests can aim it at a namespace of their own.
    """

    def __init__(self, run, table="inet airgap_firewall", nft_cmd=("nft",),
                 scratch_cmd=("unshare", "--net", "--"), scratch_nft=None, timer=None,
                 rollback_dir="/var/lib/airgap-firewall",
                 persist_path="/etc/nftables.d/airgap_firewall.nft",
                 unit="airgap-firewall-rollback", check_mode=False):
        self.run = run
        self.family, self.name = parse_table_spec(table)
        self.table = "%s %s" % (self.family, self.name)
        self.nft_cmd = list(nft_cmd)
        self.scratch_cmd = list(scratch_cmd) if scratch_cmd else None
        self.scratch_nft = scratch_nft or self.nft_cmd[-1]
        self.timer = timer
        self.rollback_dir = rollback_dir
        self.persist_path = persist_path
        if not _UNIT_RE.match(unit or ""):
            raise ValueError("rollback_unit %r is not a valid unit name" % (unit,))
        self.unit = unit
        self.check_mode = check_mode

    # -- nft plumbing ------------------------------------------------------

    def _path(self, name):
        return os.path.join(self.rollback_dir, name)

    def _nft_file(self, args, text, offset=0):
        """Run nft with ``text`` in a temporary file; return (rc, out, err) with
        file:line references rewritten to lines of the caller's content."""
        fd, path = tempfile.mkstemp(prefix="airgap-nft-", suffix=".nft")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            rc, out, err = self.run(self.nft_cmd + list(args) + ["-f", path])
        finally:
            os.unlink(path)
        err = re.sub(re.escape(path) + r":(\d+):",
                     lambda m: "content line %d:" % max(int(m.group(1)) - offset, 0), err or "")
        return rc, out, err

    def validate(self, text, offset=0):
        """``nft -c -f``: the kernel checks the whole transaction and commits nothing."""
        rc, out, err = self._nft_file(["-c"], text, offset)
        if rc != 0:
            raise NftError("nft -c rejected the ruleset (nothing was changed):\n%s" % (err or out).strip())

    def load(self, text, offset=0):
        """``nft -f``: one batch, committed as a whole or not at all."""
        rc, out, err = self._nft_file([], text, offset)
        if rc != 0:
            raise NftError("nft -f failed; the kernel rejected the whole transaction, so the previous "
                           "ruleset is still in place:\n%s" % (err or out).strip())

    def table_present(self):
        rc, out, err = self.run(self.nft_cmd + ["list", "tables", self.family])
        if rc != 0:
            raise NftError("nft list tables failed: %s" % (err or out).strip())
        return ("table %s %s" % (self.family, self.name)) in [line.strip() for line in out.splitlines()]

    def live_listing(self):
        """The kernel's listing of our table, or None when it does not exist."""
        if not self.table_present():
            return None
        rc, out, err = self.run(self.nft_cmd + ["list", "table", self.family, self.name])
        if rc != 0:
            raise NftError("nft list table %s failed: %s" % (self.table, (err or out).strip()))
        return out

    def ruleset(self):
        """Full ``nft list ruleset`` (tests and diagnostics)."""
        rc, out, err = self.run(self.nft_cmd + ["list", "ruleset"])
        if rc != 0:
            raise NftError("nft list ruleset failed: %s" % (err or out).strip())
        return out

    def scratch_listing(self, content):
        """Load ``content`` into an empty private network namespace and list it there:
        the kernel's own rendering of the desired table. None if no namespace can be made."""
        if not self.scratch_cmd:
            return None
        fd, path = tempfile.mkstemp(prefix="airgap-nft-scratch-", suffix=".nft")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            nft = shlex.quote(self.scratch_nft)
            script = '%s -f "$1" && %s list table "$2" "$3"' % (nft, nft)
            rc, out, err = self.run(self.scratch_cmd + ["sh", "-c", script, "sh", path,
                                                        self.family, self.name])
        finally:
            os.unlink(path)
        return out if rc == 0 else None

    # -- comparison --------------------------------------------------------

    def _desired(self, content):
        """(normalised desired listing or None, method)."""
        if content is None:
            return None, "absent"
        listing = self.scratch_listing(content)
        if listing is not None:
            return normalize_listing(listing), "scratch_netns"
        return None, "applied_record"

    def _equal(self, content, live_norm, desired_norm, method):
        if content is None:
            return live_norm is None
        if live_norm is None:
            return False
        if method == "scratch_netns":
            return live_norm == desired_norm
        record = self._read_json(APPLIED) or {}
        return (record.get("table") == self.table
                and record.get("content_sha256") == _sha256(content)
                and record.get("canonical") == live_norm)

    def _read_json(self, name):
        text = read_text(self._path(name))
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    def _persist_desired(self, content):
        return None if content is None else transaction_text(self.family, self.name, content)

    def _check_content(self, content):
        if content is None:
            return
        problems = check_content_scope(content, self.family, self.name)
        if problems:
            raise NftError("content refused (nothing was changed): it must define only table %s: %s"
                           % (self.table, "; ".join(problems)))

    def _diffs(self, live_norm, after_kernel, persist_now, persist_want):
        return [
            {"before_header": "nft list table %s (live)" % self.table,
             "after_header": "nft list table %s (desired)" % self.table,
             "before": live_norm or "", "after": after_kernel or ""},
            {"before_header": self.persist_path, "after_header": self.persist_path,
             "before": persist_now or "", "after": persist_want or ""},
        ]

    # -- rollback state ----------------------------------------------------

    def _ensure_rollback_dir(self):
        os.makedirs(self.rollback_dir, mode=0o700, exist_ok=True)
        os.chmod(self.rollback_dir, 0o700)

    def save_previous(self, live, persist_now, strict=True):
        """Save what a rollback restores: the live table (or its absence) and the persisted file.

        The saved table is checked with ``nft -c``: a rollback that nft would
        refuse is no rollback. With ``strict`` that is an error (nothing has
        changed yet); otherwise it returns False and the caller warns.
        """
        self._ensure_rollback_dir()
        if live is None:
            previous = delete_transaction_text(self.family, self.name)
        else:
            previous = transaction_text(self.family, self.name, live)
        restorable = True
        try:
            self.validate(previous)
        except NftError as exc:
            if strict:
                raise NftError("the current table %s could not be saved in a form nft accepts back, so "
                               "no rollback would be possible; nothing was changed:\n%s" % (self.table, exc))
            restorable = False
        atomic_write(self._path(PREVIOUS_NFT), previous, 0o600)
        if persist_now is None:
            if os.path.exists(self._path(PREVIOUS_PERSIST)):
                os.unlink(self._path(PREVIOUS_PERSIST))
        else:
            atomic_write(self._path(PREVIOUS_PERSIST), persist_now, 0o600)
        atomic_write(self._path(STATE), json.dumps({
            "table": self.table, "persist_path": self.persist_path,
            "previous_table_present": live is not None,
            "previous_persist_present": persist_now is not None,
            "previous_sha256": claimed_hash(live),
        }, indent=1) + "\n", 0o600)
        atomic_write(self._path(ROLLBACK_SH), self.rollback_script(), 0o700)
        return restorable

    def rollback_script(self):
        """The shell script the rollback unit runs; it does what restore_previous() does."""
        q = shlex.quote
        nft = " ".join(q(a) for a in self.nft_cmd)
        persist = q(self.persist_path)
        tmp = q(self.persist_path + ".airgap-rollback")
        return "\n".join([
            "#!/bin/sh",
            "# airgap-firewall rollback, written by the nft_ruleset module.",
            "# Restores table %s and %s as they were before the" % (self.table, self.persist_path),
            "# last unconfirmed apply. Run by the transient unit %s." % self.unit,
            "set -eu",
            "%s -f %s" % (nft, q(self._path(PREVIOUS_NFT))),
            "if [ -e %s ]; then" % q(self._path(PREVIOUS_PERSIST)),
            "  cp %s %s" % (q(self._path(PREVIOUS_PERSIST)), tmp),
            "  mv -f %s %s" % (tmp, persist),
            "else",
            "  rm -f %s" % persist,
            "fi",
            "rm -f %s" % q(self._path(PENDING)),
            "echo 'airgap-firewall: unconfirmed ruleset rolled back (table %s)' >&2" % self.table,
            "",
        ])

    def restore_previous(self):
        """Restore the saved table and persisted file now (what rollback.sh does)."""
        previous = read_text(self._path(PREVIOUS_NFT))
        if previous is None:
            raise NftError("nothing to roll back: %s does not exist" % self._path(PREVIOUS_NFT))
        self.load(previous)
        saved = read_text(self._path(PREVIOUS_PERSIST))
        if saved is None:
            if os.path.exists(self.persist_path):
                os.unlink(self.persist_path)
        else:
            atomic_write(self.persist_path, saved)
        if os.path.exists(self._path(PENDING)):
            os.unlink(self._path(PENDING))

    def _timer_active(self):
        return bool(self.timer) and self.timer.is_active(self.unit)

    # -- actions -----------------------------------------------------------

    def apply(self, content, confirm_timeout=0):
        """Converge the live table and persisted file to ``content`` (None = absent)."""
        self._check_content(content)
        if content is not None:
            self.validate(transaction_text(self.family, self.name, content), offset=2)
        live = self.live_listing()
        live_norm = normalize_listing(live) if live is not None else None
        desired_norm, method = self._desired(content)
        kernel_equal = self._equal(content, live_norm, desired_norm, method)
        persist_now = read_text(self.persist_path)
        persist_want = self._persist_desired(content)
        persist_equal = persist_now == persist_want
        pending = self._timer_active()
        after_kernel = desired_norm if method != "applied_record" else content
        if kernel_equal:
            after_kernel = live_norm
        result = {
            "changed": not (kernel_equal and persist_equal),
            "kernel_changed": not kernel_equal, "persist_changed": not persist_equal,
            "diff": self._diffs(live_norm, after_kernel, persist_now, persist_want),
            "unified_diff": _unified(live_norm, after_kernel),
            "rollback_scheduled": False, "rollback_pending": pending, "rollback_unit": self.unit,
            "table_present": live is not None, "live_sha256": claimed_hash(live),
            "desired_sha256": claimed_hash(content), "compare_method": method,
        }
        if not result["changed"] or self.check_mode:
            return result
        if not kernel_equal:
            self._replace_kernel(content, live, persist_now, confirm_timeout, pending, result)
        if not persist_equal:
            if persist_want is None:
                if os.path.exists(self.persist_path):
                    os.unlink(self.persist_path)
            else:
                atomic_write(self.persist_path, persist_want)
        return result

    def _replace_kernel(self, content, live, persist_now, confirm_timeout, pending, result):
        if confirm_timeout and not (self.timer and self.timer.available()):
            raise NftError("confirm_timeout=%d needs systemd-run to schedule the rollback, which is not "
                           "available here; nothing was changed (use confirm_timeout: 0 to apply "
                           "without a rollback timer)" % confirm_timeout)
        if not pending:
            # With a rollback already pending, the saved state is the last *confirmed* one: keep it.
            if not self.save_previous(live, persist_now, strict=bool(confirm_timeout)):
                result.setdefault("warnings", []).append(
                    "the previous table %s was saved but nft -c rejects it; action=rollback may fail"
                    % self.table)
        scheduled = False
        if confirm_timeout:
            if pending:
                self.timer.cancel(self.unit)
            atomic_write(self._path(PENDING), "%s\n" % self.table, 0o600)
            self.timer.schedule(self.unit, int(confirm_timeout), self._path(ROLLBACK_SH))
            scheduled = True
        if content is None:
            text, offset = delete_transaction_text(self.family, self.name), 0
        else:
            text, offset = transaction_text(self.family, self.name, content), 2
        try:
            self.load(text, offset)
        except NftError:
            if scheduled and not pending:
                self.timer.cancel(self.unit)
                os.unlink(self._path(PENDING))
            raise
        result["rollback_scheduled"] = scheduled
        result["rollback_pending"] = scheduled or pending
        live_after = self.live_listing()
        self._ensure_rollback_dir()
        atomic_write(self._path(APPLIED), json.dumps({
            "table": self.table, "content_sha256": _sha256(content) if content is not None else None,
            "stamp": claimed_hash(content), "confirm_timeout": int(confirm_timeout or 0),
            "canonical": normalize_listing(live_after) if live_after is not None else None,
        }, indent=1) + "\n", 0o600)
        if content is not None:
            desired_norm = result["diff"][0]["after"]
            if result["compare_method"] == "scratch_netns" and normalize_listing(live_after) != desired_norm:
                raise NftError("after loading, the live table differs from the desired one; "
                               "another process may have changed it concurrently")

    def check(self, content):
        """Report drift (live vs desired) and persisted-file drift; change nothing."""
        self._check_content(content)
        live = self.live_listing()
        live_norm = normalize_listing(live) if live is not None else None
        desired_norm, method = self._desired(content)
        equal = self._equal(content, live_norm, desired_norm, method)
        after = live_norm if equal else (desired_norm if method != "applied_record" else content)
        persist_now = read_text(self.persist_path)
        persist_want = self._persist_desired(content)
        return {
            "changed": False, "drift": not equal, "persist_drift": persist_now != persist_want,
            "unified_diff": _unified(live_norm, after),
            "diff": self._diffs(live_norm, after, persist_now, persist_want),
            "table_present": live is not None, "live_sha256": claimed_hash(live),
            "desired_sha256": claimed_hash(content), "compare_method": method,
            "rollback_scheduled": False, "rollback_pending": self._timer_active(),
            "rollback_unit": self.unit,
        }

    def confirm(self):
        """Cancel a pending rollback: the new ruleset is kept.

        If nothing is pending but the live table is not the one last applied,
        the rollback has already run (the confirmation came too late, or the
        controller was locked out): that is an error, not a quiet no-op, so
        the play does not go on believing its ruleset is in place.
        """
        marker = os.path.exists(self._path(PENDING))
        active = self._timer_active()
        live = self.live_listing()
        if not (marker or active):
            record = self._read_json(APPLIED)
            if record and record.get("table") == self.table and claimed_hash(live) != record.get("stamp"):
                raise NftError(
                    "nothing to confirm, and the live table %s (content-sha256 %s) is not the one last applied "
                    "(content-sha256 %s): the rollback has already restored the previous state, so the new "
                    "ruleset was not confirmed within confirm_timeout (%ss)"
                    % (self.table, claimed_hash(live), record.get("stamp"), record.get("confirm_timeout")))
        result = {"changed": marker or active, "cancelled": active, "rollback_scheduled": False,
                  "rollback_pending": False, "rollback_unit": self.unit, "diff": [],
                  "table_present": live is not None, "live_sha256": claimed_hash(live)}
        if self.check_mode:
            result["rollback_pending"] = active
            return result
        if active:
            result["cancelled"] = self.timer.cancel(self.unit)
        if marker:
            os.unlink(self._path(PENDING))
        return result

    def rollback(self):
        """Restore the saved previous state now and cancel any timer."""
        live = self.live_listing()
        previous = read_text(self._path(PREVIOUS_NFT))
        if previous is None:
            raise NftError("nothing to roll back: %s does not exist" % self._path(PREVIOUS_NFT))
        result = {"changed": True, "cancelled": False, "rollback_scheduled": False,
                  "rollback_pending": False, "rollback_unit": self.unit,
                  "diff": [{"before_header": "nft list table %s (live)" % self.table,
                            "after_header": "saved previous state",
                            "before": normalize_listing(live) if live else "", "after": previous}],
                  "table_present": live is not None, "live_sha256": claimed_hash(live)}
        if self.check_mode:
            return result
        if self._timer_active():
            result["cancelled"] = self.timer.cancel(self.unit)
        self.restore_previous()
        return result


def _sha256(text):
    import hashlib
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unified(before, after):
    return "".join(difflib.unified_diff((before or "").splitlines(True), (after or "").splitlines(True),
                                        "live", "desired"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            content=dict(type="str"),
            table=dict(type="str", default="inet airgap_firewall"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            action=dict(type="str", choices=["apply", "confirm", "check", "rollback"], default="apply"),
            confirm_timeout=dict(type="int", default=0),
            rollback_dir=dict(type="path", default="/var/lib/airgap-firewall"),
            persist_path=dict(type="path", default="/etc/nftables.d/airgap_firewall.nft"),
            rollback_unit=dict(type="str", default="airgap-firewall-rollback"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["confirm_timeout"] < 0 or p["confirm_timeout"] > 86400:
        module.fail_json(msg="confirm_timeout: %d must be between 0 (no rollback) and 86400 seconds"
                         % p["confirm_timeout"])
    for key in ("rollback_dir", "persist_path"):
        if not os.path.isabs(p[key]):
            module.fail_json(msg="%s: %r must be an absolute path" % (key, p[key]))
    content = p["content"] if p["state"] == "present" else None
    if p["action"] in ("apply", "check") and p["state"] == "present" and not (content or "").strip():
        module.fail_json(msg="content is required (and must not be empty) with state=present and "
                             "action=%s" % p["action"])

    def run(argv, data=None):
        return module.run_command(list(argv), data=data, binary_data=True)

    nft = module.get_bin_path("nft", required=True)
    unshare = module.get_bin_path("unshare")
    try:
        engine = NftRuleset(
            run, table=p["table"], nft_cmd=[nft],
            scratch_cmd=[unshare, "--net", "--"] if unshare else None,
            timer=SystemdRunTimer(run, module.get_bin_path("systemd-run") or "systemd-run",
                                  module.get_bin_path("systemctl") or "systemctl"),
            rollback_dir=p["rollback_dir"], persist_path=p["persist_path"], unit=p["rollback_unit"],
            check_mode=module.check_mode)
    except ValueError as exc:
        module.fail_json(msg="table/rollback_unit: %s" % exc)
    try:
        if p["action"] == "apply":
            result = engine.apply(content, p["confirm_timeout"])
        elif p["action"] == "check":
            result = engine.check(content)
        elif p["action"] == "confirm":
            result = engine.confirm()
        else:
            result = engine.rollback()
    except NftError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        # Listings of large allowlists are long; send them only when --diff asks.
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
