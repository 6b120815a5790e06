# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controls catalogue (controls/*.yml) keeps the promises DESIGN.md makes.

These tests read the real catalogue. enforced_by is not written in it: the
report derives it from the task names (tests/unit/test_control_traceability.py).
"""

import os
import re

import pytest
import yaml

from ansible.module_utils import airgap_report as rep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTROLS = os.path.join(ROOT, "controls")

# DESIGN.md section 4, "Control IDs that must exist".
DESIGN_CONTROLS = (
    "NET-EGRESS-DENY", "NET-EGRESS-ALLOWLIST", "NET-INGRESS-RESTRICT", "NET-VLAN",
    "REPO-MIRROR-ONLY", "GPU-DRIVER-PINNED", "GPU-HEALTH", "RUNTIME-CDI",
    "WEIGHTS-INTEGRITY", "VLLM-OFFLINE", "VLLM-HARDENED", "MON-ACTIVE", "MON-KILLSWITCH",
)
HOST_CONTROLS = ("HOST-SSHD", "HOST-SYSCTL", "HOST-JOURNAL", "HOST-LISTENERS")
# DESIGN.md section 3, the roles.
ROLES = rep.PROJECT_ROLES
AREA_FILES = ("network.yml", "repos.yml", "gpu.yml", "weights.yml", "vllm.yml", "monitor.yml", "host.yml")


@pytest.fixture(scope="module")
def catalogue():
    return rep.load_catalogue(CONTROLS)


def raw_entries():
    for name in sorted(os.listdir(CONTROLS)):
        if name.endswith(".yml"):
            with open(os.path.join(CONTROLS, name), encoding="utf-8") as handle:
                for item in yaml.safe_load(handle) or []:
                    yield name, item


def test_one_file_per_area():
    present = set(n for n in os.listdir(CONTROLS) if n.endswith(".yml"))
    assert set(AREA_FILES) <= present


@pytest.mark.parametrize("cid", DESIGN_CONTROLS + HOST_CONTROLS)
def test_required_control_exists(catalogue, cid):
    assert cid in catalogue


def test_no_lab_controls_in_catalogue(catalogue):
    assert not [cid for cid in catalogue if cid.startswith("LAB")]


@pytest.mark.parametrize("name,entry", list(raw_entries()), ids=lambda v: v if isinstance(v, str) else v.get("id"))
def test_entry_is_complete(name, entry):
    """Every entry, as written in the file, carries everything an auditor needs."""
    assert entry["rationale"].strip() and len(entry["rationale"].split()) >= 15, "rationale too thin"
    assert "enforced_by" not in entry, "enforced_by is derived from the task names; do not write it"
    assert entry["severity"] in rep.SEVERITIES
    assert entry["role"] in ROLES
    assert re.match(r"^roles/[a-z_]+/tasks/verify\.yml$", entry["verified_by"])
    assert entry["verified_by"].split("/")[1] in ROLES
    for framework in ("bsi", "nist_800_53", "hipaa"):
        refs = entry["frameworks"].get(framework)
        assert refs and all(isinstance(r, str) and r for r in refs), "%s has no %s reference" % (
            entry["id"], framework)
    assert entry["applies_to"] == ["gpu_nodes"]


def test_every_entry_passes_the_loader_schema(catalogue):
    assert len(catalogue) == len(list(raw_entries()))


def test_file_matches_area_prefix():
    prefix = {"network.yml": "NET-", "repos.yml": "REPO-", "gpu.yml": ("GPU-", "RUNTIME-"),
              "weights.yml": "WEIGHTS-", "vllm.yml": "VLLM-", "monitor.yml": "MON-", "host.yml": "HOST-"}
    for name, entry in raw_entries():
        assert entry["id"].startswith(prefix[name]), "%s belongs in another file than %s" % (entry["id"], name)


def test_framework_reference_formats(catalogue):
    """Shapes of the three reference systems (catches 'SC7', '164.312e1', 'NET1.1')."""
    for cid, entry in catalogue.items():
        for ref in entry["frameworks"]["bsi"]:
            # Module (e.g. NET.3.2, OPS.1.1.3) or module requirement (e.g. NET.3.2.A2).
            assert re.match(r"^(APP|CON|DER|INF|IND|ISMS|NET|OPS|ORP|SYS)(\.[0-9]+){1,3}(\.A[0-9]+)?$", ref), ref
        for ref in entry["frameworks"]["nist_800_53"]:
            assert re.match(r"^(AC|AT|AU|CA|CM|CP|IA|IR|MA|MP|PE|PL|PM|PS|PT|RA|SA|SC|SI|SR)-[0-9]+(\([0-9]+\))?$",
                            ref), ref
        for ref in entry["frameworks"]["hipaa"]:
            # Security Rule: technical (164.312), administrative (164.308), physical (164.310) safeguards.
            assert re.match(r"^164\.3(08|10|12)\([a-e]\)(\([0-9]+\))?(\([ivx]+\))?(\([A-Z]\))?$", ref), ref


def test_severity_of_isolation_core_is_critical(catalogue):
    """The guarantees that keep patient data inside are rated critical."""
    for cid in ("NET-EGRESS-DENY", "REPO-MIRROR-ONLY", "WEIGHTS-INTEGRITY", "VLLM-OFFLINE",
                "MON-ACTIVE", "MON-KILLSWITCH"):
        assert catalogue[cid]["severity"] == "critical", cid


def test_each_role_with_controls_has_a_verify_file_reference(catalogue):
    roles = set(e["role"] for e in catalogue.values())
    assert roles <= set(ROLES)
    # Every role that configures a guarantee on the host is represented.
    assert {"airgap_repos", "network_vlan", "firewall", "nvidia_driver", "container_runtime",
            "model_weights", "vllm_server", "isolation_monitor"} <= roles
