# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traceability between the controls catalogue and the roles' tasks.

An auditor follows a control from controls/*.yml to the tasks that enforce it
(``enforced_by``, the tasks whose names lead with its id) and the file that verifies it
(``verified_by``). These tests keep both links true:

- ``enforced_by`` is derived by the report from the task names that lead
  with the control id (one bookkeeping): every control of a written role has
  at least one such task, and ``verified_by`` is an existing file;
- a role that does not exist yet must at least be one of the roles DESIGN.md
  names, so a typo in ``role:`` fails instead of being excused as "not written yet";
- every task whose name starts with control ids ("NET-EGRESS-DENY | ...")
  names only ids that exist in the catalogue.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

import pytest
import yaml

from ansible.module_utils.airgap_evidence import CONTROL_ID_RE
from ansible.module_utils.airgap_report import load_catalogue

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES_DIR = os.path.join(ROOT, "roles")

from ansible.module_utils.airgap_report import PROJECT_ROLES as DESIGN_ROLES  # noqa: E402

# Keys under which Ansible nests further tasks.
NESTED_KEYS = ("block", "rescue", "always")

# "ID | ID | rest": leading segments that look like control ids.
_SEGMENT_SEP = " | "

CATALOGUE = load_catalogue(os.path.join(ROOT, "controls"))


def walk_tasks(items):
    """Yield every task mapping in a task list, descending into block/rescue/always."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in NESTED_KEYS:
            if isinstance(item.get(key), list):
                for inner in walk_tasks(item[key]):
                    yield inner


def task_files():
    """Every YAML file under roles/*/tasks/ (sub-folders included)."""
    files = []
    for role_tasks in sorted(glob.glob(os.path.join(ROLES_DIR, "*", "tasks"))):
        for dirpath, _dirs, names in os.walk(role_tasks):
            files += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith((".yml", ".yaml"))]
    return files


def task_names():
    """{task name: [relative file paths]} over every role's task files."""
    names = {}
    for path in task_files():
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        for task in walk_tasks(data if isinstance(data, list) else []):
            name = task.get("name")
            if isinstance(name, str):
                names.setdefault(name, []).append(os.path.relpath(path, ROOT))
    return names


def leading_control_ids(name):
    """Control ids a task name starts with: "A-B | C-D | text" gives ["A-B", "C-D"]."""
    ids = []
    parts = name.split(_SEGMENT_SEP)
    for part in parts[:-1]:
        if not CONTROL_ID_RE.match(part):
            break
        ids.append(part)
    return ids


TASK_NAMES = task_names()


# --------------------------------------------------------------------------
# The helpers themselves (so a broken walker cannot make everything pass)
# --------------------------------------------------------------------------

def test_walk_tasks_descends_into_blocks():
    tasks = [
        {"name": "top"},
        {"name": "outer", "block": [
            {"name": "in block"},
            {"block": [{"name": "deep"}], "rescue": [{"name": "in rescue"}], "always": [{"name": "in always"}]},
        ]},
        "not a task",
    ]
    names = [t.get("name") for t in walk_tasks(tasks)]
    assert [n for n in names if n] == ["top", "outer", "in block", "deep", "in rescue", "in always"]


def test_leading_control_ids():
    assert leading_control_ids("NET-EGRESS-DENY | Load the table") == ["NET-EGRESS-DENY"]
    assert leading_control_ids("NET-EGRESS-DENY | NET-INGRESS-RESTRICT | Render") == [
        "NET-EGRESS-DENY", "NET-INGRESS-RESTRICT"]
    assert leading_control_ids("Install nftables") == []
    assert leading_control_ids("NET-EGRESS-DENY") == []  # no " | ": not a prefix
    assert leading_control_ids("Check | NET-VLAN | x") == []


def test_task_names_are_found_in_nested_blocks():
    assert TASK_NAMES, "no task names found under roles/*/tasks"
    if os.path.isdir(os.path.join(ROLES_DIR, "firewall")):
        # This one sits inside the block of the firewall's validate step.
        assert "NET-EGRESS-ALLOWLIST | Normalise and validate firewall_egress_allow, firewall_ingress_allow and the plan's entries" in TASK_NAMES


def test_catalogue_has_controls():
    assert len(CATALOGUE) >= 13


# --------------------------------------------------------------------------
# Catalogue -> tasks
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cid", sorted(CATALOGUE))
def test_control_role_is_a_design_role(cid):
    role = CATALOGUE[cid]["role"]
    assert role in DESIGN_ROLES, "control %s names role %r, which is not a role of DESIGN.md (%s)" % (
        cid, role, ", ".join(DESIGN_ROLES))


def role_written(control, cid):
    """True when roles/<role> exists; otherwise the role must at least be a DESIGN.md role."""
    if os.path.isdir(os.path.join(ROLES_DIR, control["role"])):
        return True
    assert control["role"] in DESIGN_ROLES, (
        "control %s names role %r: no such folder under roles/ and not a role of DESIGN.md"
        % (cid, control["role"]))
    return False


@pytest.mark.parametrize("cid", sorted(CATALOGUE))
def test_enforced_by_names_real_tasks(cid):
    control = CATALOGUE[cid]
    if not role_written(control, cid):
        return
    missing = [name for name in control["enforced_by"] if name not in TASK_NAMES]
    assert not missing, "control %s: enforced_by names no task under roles/*/tasks/: %s" % (cid, missing)


@pytest.mark.parametrize("cid", sorted(CATALOGUE))
def test_verified_by_is_an_existing_file(cid):
    control = CATALOGUE[cid]
    if not role_written(control, cid):
        return
    path = os.path.join(ROOT, control["verified_by"])
    assert os.path.isfile(path), "control %s: verified_by %s does not exist" % (cid, control["verified_by"])


# --------------------------------------------------------------------------
# Tasks -> catalogue
# --------------------------------------------------------------------------

def test_control_prefixed_tasks_name_known_controls():
    unknown = []
    for name, files in sorted(TASK_NAMES.items()):
        for cid in leading_control_ids(name):
            if cid not in CATALOGUE:
                unknown.append("%s (task %r in %s)" % (cid, name, ", ".join(files)))
    assert not unknown, "task names carry control ids that are not in controls/*.yml: %s" % unknown


def test_some_task_names_carry_control_ids():
    """The prefix check above must have something to check."""
    assert any(leading_control_ids(n) for n in TASK_NAMES)


# Catch a near-miss prefix: upper-case words with dashes that fail the id pattern
# (e.g. "NET-EGRESS-DENY  |" or "NET_EGRESS_DENY |") would silently escape the check above.
_LOOKS_LIKE_ID = re.compile(r"^[A-Z][A-Z0-9_-]*[-_][A-Z0-9_-]+\s*\|")


def test_no_malformed_control_prefixes():
    bad = [n for n in TASK_NAMES if _LOOKS_LIKE_ID.match(n) and not leading_control_ids(n)]
    assert not bad, "task names that look like a control prefix but are not 'ID | ...': %s" % bad



@pytest.mark.parametrize("cid", sorted(CATALOGUE))
def test_every_written_control_has_an_enforcing_task(cid):
    """The report's enforced_by is derived from the task names: a control of a written role needs one."""
    control = CATALOGUE[cid]
    if not role_written(control, cid):
        return
    assert control["enforced_by"], "control %s: no task outside verify.yml leads with '%s | '" % (cid, cid)


def test_derived_links_are_exactly_the_tasks_that_lead_with_each_id():
    """An independent walk (this file's) agrees with the report's derivation."""
    mine = {}
    for name, paths in TASK_NAMES.items():
        if all(os.path.basename(p) == "verify.yml" for p in paths):
            continue
        for cid in leading_control_ids(name):
            mine.setdefault(cid, set()).add(name)
    for cid, control in CATALOGUE.items():
        assert set(control["enforced_by"]) == mine.get(cid, set()), cid
