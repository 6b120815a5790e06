# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for module_utils/airgap_report.py: catalogue, waivers, report files."""

import datetime
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from ansible.module_utils.airgap_evidence import STATUSES, make_record
from ansible.module_utils import airgap_report as rep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTROLS = os.path.join(ROOT, "controls")
TS = "20261122T224500Z"
TODAY = datetime.date(2026, 11, 22)


# ---------------------------------------------------------------- helpers

def entry(cid="NET-TEST", **over):
    """A valid catalogue entry; override fields to break it."""
    base = {
        "id": cid, "title": "A test control", "rationale": "Because.", "role": "firewall",
        "verified_by": "roles/firewall/tasks/verify.yml",
        "severity": "high", "applies_to": ["gpu_nodes"],
        "frameworks": {"bsi": ["NET.3.2.A2"], "nist_800_53": ["SC-7"], "hipaa": ["164.312(e)(1)"]},
    }
    base.update(over)
    return base


def write_catalogue(tmp_path, files):
    folder = tmp_path / "controls"
    folder.mkdir(exist_ok=True)
    for name, entries in files.items():
        (folder / name).write_text(yaml.safe_dump(entries, sort_keys=False))
    return str(folder)


@pytest.fixture(scope="module")
def catalogue():
    return rep.load_catalogue(CONTROLS)


def all_pass(catalogue, checked_at="2026-11-22T22:40:00Z"):
    return [make_record(cid, e["role"], "pass", {"probe": "test double", "result": "ok"}, checked_at=checked_at)
            for cid, e in catalogue.items()]


def with_status(records, cid, status, evidence=None):
    out = []
    for record in records:
        if record["id"] == cid:
            record = dict(record, status=status, evidence=evidence or record["evidence"])
        out.append(record)
    return out


def waiver(control="GPU-DRIVER-PINNED", **over):
    base = {"control": control, "justification": "Driver 535 is the validated one",
            "approver": "CISO Dr. Example", "expires": "2027-01-31"}
    base.update(over)
    return base


def by_id(controls):
    return dict((c["id"], c) for c in controls)


# ---------------------------------------------------------------- catalogue

def test_real_catalogue_loads_in_area_order(catalogue):
    ids = list(catalogue)
    assert ids[0] == "NET-EGRESS-DENY"
    assert ids.index("REPO-MIRROR-ONLY") < ids.index("GPU-DRIVER-PINNED") < ids.index("HOST-SSHD")


@pytest.mark.parametrize("field", ["title", "rationale", "role", "verified_by",
                                   "severity", "frameworks", "applies_to"])
def test_catalogue_missing_field_is_named(tmp_path, field):
    bad = entry()
    del bad[field]
    folder = write_catalogue(tmp_path, {"network.yml": [entry("NET-OK"), bad]})
    with pytest.raises(rep.CatalogueError) as exc:
        rep.load_catalogue(folder)
    msg = str(exc.value)
    assert "network.yml entry 1" in msg and "NET-TEST" in msg and repr(field) in msg


def test_catalogue_duplicate_id_across_files(tmp_path):
    folder = write_catalogue(tmp_path, {"network.yml": [entry("NET-DUP")], "host.yml": [entry("NET-DUP")]})
    with pytest.raises(rep.CatalogueError, match=r"duplicate control id NET-DUP \(first defined in network.yml\)"):
        rep.load_catalogue(folder)


def test_catalogue_bad_severity(tmp_path):
    folder = write_catalogue(tmp_path, {"network.yml": [entry(severity="urgent")]})
    with pytest.raises(rep.CatalogueError, match="severity 'urgent' is not one of critical, high, medium, low"):
        rep.load_catalogue(folder)


@pytest.mark.parametrize("framework", ["bsi", "nist_800_53", "hipaa"])
def test_catalogue_empty_framework(tmp_path, framework):
    e = entry()
    e["frameworks"][framework] = []
    folder = write_catalogue(tmp_path, {"network.yml": [e]})
    with pytest.raises(rep.CatalogueError, match="frameworks.%s is empty" % framework):
        rep.load_catalogue(folder)


def test_catalogue_empty_frameworks_mapping(tmp_path):
    folder = write_catalogue(tmp_path, {"network.yml": [entry(frameworks={})]})
    with pytest.raises(rep.CatalogueError, match="missing field 'frameworks'"):
        rep.load_catalogue(folder)


@pytest.mark.parametrize("framework,ref", [("nist_800_53", "SC7"), ("hipaa", "164.312e1"), ("bsi", "net.1.1")])
def test_catalogue_malformed_reference(tmp_path, framework, ref):
    e = entry()
    e["frameworks"][framework] = [ref]
    folder = write_catalogue(tmp_path, {"network.yml": [e]})
    with pytest.raises(rep.CatalogueError, match="not a well-formed reference"):
        rep.load_catalogue(folder)


def test_catalogue_refuses_a_written_enforced_by(tmp_path):
    """One bookkeeping: the links come from the task names, never from a second list."""
    folder = write_catalogue(tmp_path, {"network.yml": [entry(enforced_by=["NET-TEST | Load the table"])]})
    with pytest.raises(rep.CatalogueError, match="'enforced_by' is derived from the task names"):
        rep.load_catalogue(folder)


def test_enforced_by_is_derived_from_the_task_names_outside_verify(tmp_path):
    folder = write_catalogue(tmp_path, {"network.yml": [entry("NET-TEST"), entry("NET-OTHER")]})
    tasks = tmp_path / "roles" / "firewall" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(yaml.safe_dump([
        {"name": "NET-TEST | Load the table", "ansible.builtin.debug": {}},
        {"name": "Group", "block": [{"name": "NET-TEST | NET-OTHER | Render", "ansible.builtin.debug": {}}]},
        {"name": "Mentions NET-OTHER | but does not lead with it", "ansible.builtin.debug": {}}]))
    (tasks / "verify.yml").write_text(yaml.safe_dump([{"name": "NET-OTHER | Probe", "ansible.builtin.debug": {}}]))
    catalogue = rep.load_catalogue(folder)
    assert catalogue["NET-TEST"]["enforced_by"] == ["NET-TEST | Load the table", "NET-TEST | NET-OTHER | Render"]
    assert catalogue["NET-OTHER"]["enforced_by"] == ["NET-TEST | NET-OTHER | Render"]


def test_catalogue_unknown_field_and_bad_id(tmp_path):
    folder = write_catalogue(tmp_path, {"network.yml": [entry(owner="me")]})
    with pytest.raises(rep.CatalogueError, match="unknown field 'owner'"):
        rep.load_catalogue(folder)
    folder = write_catalogue(tmp_path, {"network.yml": [entry("net-lower")]})
    with pytest.raises(rep.CatalogueError, match="not of the form AREA-NAME"):
        rep.load_catalogue(folder)


def test_catalogue_file_must_be_a_list_and_dir_must_exist(tmp_path):
    folder = tmp_path / "controls"
    folder.mkdir()
    (folder / "network.yml").write_text("id: NET-X\n")
    with pytest.raises(rep.CatalogueError, match="must be a list"):
        rep.load_catalogue(str(folder))
    with pytest.raises(rep.CatalogueError, match="does not exist"):
        rep.load_catalogue(str(tmp_path / "nope"))


def test_catalogue_digest_matches_cat_sha256sum():
    """The documented shell command gives the hash written into fleet.json."""
    digest = rep.catalogue_digest(CONTROLS)
    out = subprocess.run("LC_ALL=C cat controls/*.yml | sha256sum", shell=True, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()[0]
    assert digest["sha256"] == out
    assert set(digest["files"]) == set(n for n in os.listdir(CONTROLS) if n.endswith(".yml"))


# ---------------------------------------------------------------- waivers

@pytest.mark.parametrize("field", ["justification", "approver", "expires", "control"])
def test_waiver_missing_field_refused(catalogue, field):
    bad = waiver()
    del bad[field]
    with pytest.raises(rep.WaiverError) as exc:
        rep.validate_waivers([waiver(), bad], catalogue)
    assert "compliance_waivers[1].%s: missing" % field in str(exc.value)


@pytest.mark.parametrize("value", ["2027-02-30", "31.01.2027", "2027-1-5", "soon", 20270131])
def test_waiver_bad_date_refused(catalogue, value):
    with pytest.raises(rep.WaiverError) as exc:
        rep.validate_waivers([waiver(expires=value)], catalogue)
    assert "compliance_waivers[0].expires" in str(exc.value)


def test_waiver_unknown_control_and_field_refused(catalogue):
    with pytest.raises(rep.WaiverError, match=r"compliance_waivers\[0\].control: 'GPU-DRIVER-PINED' is not a control"):
        rep.validate_waivers([waiver("GPU-DRIVER-PINED")], catalogue)
    with pytest.raises(rep.WaiverError, match=r"compliance_waivers\[0\].expiry: unknown field"):
        rep.validate_waivers([dict(waiver(), expiry="2027-01-01")], catalogue)
    with pytest.raises(rep.WaiverError, match=r"compliance_waivers\[0\].hosts"):
        rep.validate_waivers([waiver(hosts=[])], catalogue)
    with pytest.raises(rep.WaiverError, match=r"compliance_waivers\[0\].approver: missing"):
        rep.validate_waivers([waiver(approver="   ")], catalogue)


def test_waiver_accepts_yaml_date_objects(catalogue):
    parsed = yaml.safe_load("- {control: GPU-DRIVER-PINNED, justification: j, approver: a, expires: 2027-01-31}")
    assert isinstance(parsed[0]["expires"], datetime.date)
    assert rep.validate_waivers(parsed, catalogue)[0]["expires"] == "2027-01-31"


def _host_result(catalogue, records, waivers, today=TODAY, host="gpu-node-1"):
    norm = rep.validate_waivers(waivers, catalogue)
    controls, problems = rep.build_host_results(host, records, catalogue, norm, today, "2026-11-22T22:45:00Z")
    return by_id(controls), problems


def test_active_waiver_turns_fail_into_waived_and_keeps_evidence(catalogue):
    evidence = {"installed": "535.261.03", "pinned": "535.230.02"}
    records = with_status(all_pass(catalogue), "GPU-DRIVER-PINNED", "fail", evidence)
    result, _ = _host_result(catalogue, records, [waiver()])
    control = result["GPU-DRIVER-PINNED"]
    assert control["status"] == "waived"
    assert control["evidence"] == evidence
    assert control["waiver"]["original_status"] == "fail"
    assert control["waiver"]["expired"] is False
    assert control["waiver"]["approver"] == "CISO Dr. Example"


def test_active_waiver_also_covers_error(catalogue):
    records = [r for r in all_pass(catalogue) if r["id"] != "GPU-DRIVER-PINNED"]
    result, _ = _host_result(catalogue, records, [waiver()])
    assert result["GPU-DRIVER-PINNED"]["status"] == "waived"
    assert result["GPU-DRIVER-PINNED"]["waiver"]["original_status"] == "error"


def test_waiver_valid_through_expiry_day_then_expired(catalogue):
    records = with_status(all_pass(catalogue), "GPU-DRIVER-PINNED", "fail")
    on_day, _ = _host_result(catalogue, records, [waiver(expires="2026-11-22")])
    assert on_day["GPU-DRIVER-PINNED"]["status"] == "waived"
    after, _ = _host_result(catalogue, records, [waiver(expires="2026-11-21")])
    control = after["GPU-DRIVER-PINNED"]
    assert control["status"] == "fail"
    assert control["waiver"]["expired"] is True and control["waiver"]["original_status"] == "fail"


@pytest.mark.parametrize("status", ["pass", "not_applicable"])
def test_waivers_never_touch_pass_or_not_applicable(catalogue, status):
    records = with_status(all_pass(catalogue), "GPU-DRIVER-PINNED", status)
    for expires in ("2027-01-31", "2020-01-01"):
        result, _ = _host_result(catalogue, records, [waiver(expires=expires)])
        assert result["GPU-DRIVER-PINNED"]["status"] == status
        assert result["GPU-DRIVER-PINNED"]["waiver"] is None


def test_host_scoped_waiver(catalogue):
    records = with_status(all_pass(catalogue), "GPU-DRIVER-PINNED", "fail")
    scoped = [waiver(hosts=["gpu-node-2"])]
    mine, _ = _host_result(catalogue, records, scoped, host="gpu-node-1")
    other, _ = _host_result(catalogue, records, scoped, host="gpu-node-2")
    assert mine["GPU-DRIVER-PINNED"]["status"] == "fail" and mine["GPU-DRIVER-PINNED"]["waiver"] is None
    assert other["GPU-DRIVER-PINNED"]["status"] == "waived"


def test_active_waiver_wins_over_expired_one(catalogue):
    records = with_status(all_pass(catalogue), "GPU-DRIVER-PINNED", "fail")
    result, _ = _host_result(catalogue, records, [waiver(expires="2020-01-01"), waiver(approver="B")])
    assert result["GPU-DRIVER-PINNED"]["status"] == "waived"
    assert result["GPU-DRIVER-PINNED"]["waiver"]["approver"] == "B"


def test_emitter_supplied_waiver_is_ignored(catalogue):
    """Only compliance_waivers can waive; a role cannot waive its own failure."""
    records = with_status(all_pass(catalogue), "NET-VLAN", "fail")
    records = [dict(r, waiver={"control": "NET-VLAN"}) if r["id"] == "NET-VLAN" else r for r in records]
    result, _ = _host_result(catalogue, records, [])
    assert result["NET-VLAN"]["status"] == "fail" and result["NET-VLAN"]["waiver"] is None


# ---------------------------------------------------------------- fail closed, merging

def test_missing_evidence_is_error_never_pass(catalogue):
    records = [r for r in all_pass(catalogue) if r["id"] != "MON-KILLSWITCH"]
    result, problems = _host_result(catalogue, records, [])
    control = result["MON-KILLSWITCH"]
    assert control["status"] == "error"
    assert control["evidence"]["detail"] == "no evidence collected"
    assert control["evidence"]["expected_from"] == "roles/isolation_monitor/tasks/verify.yml"
    assert problems == []


def test_host_with_no_records_is_all_error(catalogue):
    result, _ = _host_result(catalogue, [], [])
    assert set(result) == set(catalogue)
    assert set(c["status"] for c in result.values()) == {"error"}


def test_control_not_applying_to_host_is_left_out(catalogue):
    controls, _ = rep.build_host_results("mirror", [], catalogue, [], TODAY, "2026-11-22T22:45:00Z",
                                         groups=["mirrors"])
    assert controls == []


def test_merge_worst_status_wins_and_keeps_observations(catalogue):
    records = all_pass(catalogue)
    records.append(make_record("NET-EGRESS-DENY", "vllm_server", "fail",
                               {"probe": "from the container", "result": "connected"}))
    result, _ = _host_result(catalogue, records, [])
    control = result["NET-EGRESS-DENY"]
    assert control["status"] == "fail"
    assert [o["probe"] for o in control["evidence"]["observations"]] == ["test double", "from the container"]
    # The catalogue, not the emitter, decides role and title.
    assert control["role"] == "firewall" and control["title"] == catalogue["NET-EGRESS-DENY"]["title"]
    assert control["frameworks"] == catalogue["NET-EGRESS-DENY"]["frameworks"]


def test_merge_pass_and_not_applicable_gives_not_applicable(catalogue):
    records = all_pass(catalogue) + [make_record("GPU-HEALTH", "nvidia_driver", "not_applicable",
                                                 {"detail": "no NVIDIA GPU"})]
    result, _ = _host_result(catalogue, records, [])
    assert result["GPU-HEALTH"]["status"] == "not_applicable"


def test_unknown_control_id_is_error_and_a_problem(catalogue):
    records = all_pass(catalogue) + [make_record("NET-TYPO", "firewall", "pass", {"x": 1})]
    result, problems = _host_result(catalogue, records, [])
    assert result["NET-TYPO"]["status"] == "error"
    assert result["NET-TYPO"]["evidence"]["reported_status"] == "pass"
    assert any("NET-TYPO" in p for p in problems)
    assert list(result)[-1] == "NET-TYPO"


def test_malformed_record_for_known_control_is_error(catalogue):
    records = all_pass(catalogue)
    records.append({"id": "VLLM-OFFLINE", "role": "vllm_server", "status": "ok", "evidence": {}})
    records.append({"nonsense": True})
    result, problems = _host_result(catalogue, records, [])
    assert result["VLLM-OFFLINE"]["status"] == "error"
    assert "malformed" in result["VLLM-OFFLINE"]["evidence"]["observations"][1]["detail"]
    assert len(problems) == 1 and "record" in problems[0]


# ---------------------------------------------------------------- whole report

def sample_hosts(catalogue):
    """Three hosts: one clean, one with a failure and a waived control, one with GPU n/a."""
    clean = all_pass(catalogue)
    bad = with_status(all_pass(catalogue), "NET-EGRESS-DENY", "fail",
                      {"probe": "tcp 203.0.113.10:443 via IPv6", "result": "connected", "canary_logged": True})
    bad = with_status(bad, "GPU-DRIVER-PINNED", "fail", {"installed": "535.261.03", "pinned": "535.230.02"})
    nogpu = with_status(all_pass(catalogue), "GPU-HEALTH", "not_applicable", {"detail": "no NVIDIA GPU found"})
    return {"gpu-node-1": clean, "gpu-node-2": bad, "gpu-node-3": nogpu}


def make_report(tmp_path, catalogue, **kw):
    args = dict(output_root=str(tmp_path / "reports"), hosts=sample_hosts(catalogue), catalogue_dir=CONTROLS,
                timestamp=TS, today="2026-11-22",
                waivers=[waiver(hosts=["gpu-node-2"]), waiver("NET-VLAN", expires="2026-01-01")])
    args.update(kw)
    return rep.write_report(**args)


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_host_json_has_exactly_the_design_shape(tmp_path, catalogue):
    result = make_report(tmp_path, catalogue)
    data = read_json(result["host_files"]["gpu-node-2"])
    assert list(data) == ["host", "generated_at", "controls"]
    assert data["host"] == "gpu-node-2" and data["generated_at"] == "2026-11-22T22:45:00Z"
    assert len(data["controls"]) == len(catalogue)
    for control in data["controls"]:
        assert list(control) == ["id", "title", "role", "status", "evidence", "frameworks", "waiver"]
        assert control["status"] in STATUSES
        assert set(control["frameworks"]) >= {"bsi", "nist_800_53", "hipaa"}
    controls = by_id(data["controls"])
    assert controls["NET-EGRESS-DENY"]["status"] == "fail"
    assert controls["GPU-DRIVER-PINNED"]["status"] == "waived"


def test_fleet_json_counts_verdict_and_waivers(tmp_path, catalogue):
    result = make_report(tmp_path, catalogue)
    fleet = read_json(result["fleet"])
    n = len(catalogue)
    assert fleet["counts"] == {"pass": 3 * n - 3, "fail": 1, "waived": 1, "not_applicable": 1, "error": 0}
    assert fleet["verdict"] == "fail" and result["verdict"] == "fail"
    assert fleet["hosts"]["gpu-node-1"]["verdict"] == "pass"
    assert fleet["hosts"]["gpu-node-2"]["verdict"] == "fail"
    assert fleet["hosts"]["gpu-node-2"]["failing"] == ["NET-EGRESS-DENY"]
    assert fleet["hosts"]["gpu-node-2"]["waived"] == ["GPU-DRIVER-PINNED"]
    assert fleet["hosts_failing"] == ["gpu-node-2"]
    assert fleet["tool"]["version"] == rep.TOOL_VERSION
    assert fleet["catalogue"]["sha256"] == rep.catalogue_digest(CONTROLS)["sha256"]
    assert fleet["catalogue"]["controls"] == n
    assert fleet["generated_at"] == "2026-11-22T22:45:00Z"
    assert [w["control"] for w in fleet["expired_waivers"]] == ["NET-VLAN"]
    active = [w for w in fleet["waivers"] if w["active"]]
    assert active[0]["applied_to"] == [{"host": "gpu-node-2", "status": "waived", "original_status": "fail"}]
    assert fleet["controls"]["NET-EGRESS-DENY"]["severity"] == "critical"


def test_fleet_passes_only_without_fail_or_error(tmp_path, catalogue):
    hosts = {"gpu-node-1": all_pass(catalogue),
             "gpu-node-2": with_status(all_pass(catalogue), "GPU-DRIVER-PINNED", "fail")}
    result = make_report(tmp_path, catalogue, hosts=hosts, waivers=[waiver()])
    assert result["verdict"] == "pass"
    assert result["counts"]["waived"] == 1
    result = make_report(tmp_path, catalogue, hosts=hosts, waivers=[], timestamp="20261122T224501Z")
    assert result["verdict"] == "fail"


def test_unreachable_host_is_all_error(tmp_path, catalogue):
    result = make_report(tmp_path, catalogue, unreachable=["gpu-node-9"])
    fleet = read_json(result["fleet"])
    summary = fleet["hosts"]["gpu-node-9"]
    assert summary["reachable"] is False and summary["verdict"] == "fail"
    assert summary["counts"]["error"] == len(catalogue)
    data = read_json(result["host_files"]["gpu-node-9"])
    assert {c["evidence"]["detail"] for c in data["controls"]} == {rep.UNREACHABLE}
    assert fleet["unreachable"] == ["gpu-node-9"]


def test_junit_one_testcase_per_host_and_control(tmp_path, catalogue):
    result = make_report(tmp_path, catalogue)
    tree = ET.parse(result["junit"])
    root = tree.getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
    cases = root.findall("testsuite/testcase")
    assert len(cases) == 3 * len(catalogue)
    pairs = {(c.get("classname"), c.get("name").split(" ")[0]) for c in cases}
    assert len(pairs) == len(cases)
    failed = [c for c in cases if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name").split(" ")[0]) for c in failed] == [("gpu-node-2", "NET-EGRESS-DENY")]
    assert "connected" in failed[0].find("failure").get("message")
    assert failed[0].get("name").startswith("NET-EGRESS-DENY All outbound")
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert [(c.get("classname"), c.get("name").split(" ")[0]) for c in skipped] == [("gpu-node-3", "GPU-HEALTH")]
    waived = [c for c in cases if c.find("system-out") is not None]
    assert len(waived) == 1 and "Waiver for GPU-DRIVER-PINNED" in waived[0].find("system-out").text
    assert waived[0].find("failure") is None and waived[0].find("error") is None
    assert root.get("failures") == "1" and root.get("tests") == str(3 * len(catalogue))


def test_junit_error_for_missing_evidence_and_bad_characters(tmp_path, catalogue):
    records = [r for r in all_pass(catalogue) if r["id"] != "HOST-SSHD"]
    records = with_status(records, "HOST-JOURNAL", "fail", {"journal": "line\x00with\x1bcontrol <&> chars"})
    result = make_report(tmp_path, catalogue, hosts={"gpu-node-1": records}, waivers=[])
    root = ET.parse(result["junit"]).getroot()
    errors = [c for c in root.iter("testcase") if c.find("error") is not None]
    assert [c.get("name").split(" ")[0] for c in errors] == ["HOST-SSHD"]
    assert "no evidence collected" in errors[0].find("error").get("message")
    failure = [c for c in root.iter("testcase") if c.find("failure") is not None][0]
    assert "<&>" in failure.find("failure").text


def run_sha256sum(folder):
    return subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)


def test_sha256sums_verify_and_detect_tampering(tmp_path, catalogue):
    result = make_report(tmp_path, catalogue)
    latest = os.path.join(str(tmp_path / "reports"), "latest")
    listed = sorted(line.split("  ", 1)[1] for line in read_text(result["sums"]).splitlines())
    assert listed == ["fleet.json", "hosts/gpu-node-1.json", "hosts/gpu-node-2.json", "hosts/gpu-node-3.json",
                      "index.html", "junit.xml"]
    ok = run_sha256sum(latest)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with open(os.path.join(latest, "hosts", "gpu-node-2.json"), "r+", encoding="utf-8") as handle:
        text = handle.read().replace('"status": "fail"', '"status": "pass"', 1)
        handle.seek(0)
        handle.write(text)
        handle.truncate()
    bad = run_sha256sum(latest)
    assert bad.returncode != 0
    assert "hosts/gpu-node-2.json: FAILED" in bad.stdout


def test_latest_points_at_newest_relative_and_reports_are_never_overwritten(tmp_path, catalogue):
    root = tmp_path / "reports"
    first = make_report(tmp_path, catalogue, timestamp="20261122T100000Z")
    assert os.readlink(str(root / "latest")) == "20261122T100000Z"
    make_report(tmp_path, catalogue, timestamp="20261123T100000Z")
    assert os.readlink(str(root / "latest")) == "20261123T100000Z"
    # An older report written later does not steal "latest".
    make_report(tmp_path, catalogue, timestamp="20261121T100000Z")
    assert os.readlink(str(root / "latest")) == "20261123T100000Z"
    with pytest.raises(rep.ReportError, match="already exists"):
        make_report(tmp_path, catalogue, timestamp="20261122T100000Z")
    assert os.path.isfile(first["index"])
    leftovers = [n for n in os.listdir(str(root)) if n.startswith(".")]
    assert leftovers == []


def test_failed_run_leaves_nothing_behind(tmp_path, catalogue):
    root = tmp_path / "reports"
    with pytest.raises(rep.ReportError, match="signing.key"):
        make_report(tmp_path, catalogue, signing={"method": "ssh", "key": str(tmp_path / "missing")})
    assert not root.exists() or os.listdir(str(root)) == []


def test_bad_timestamp_and_host_names_refused(tmp_path, catalogue):
    with pytest.raises(rep.ReportError, match="YYYYMMDDTHHMMSSZ"):
        make_report(tmp_path, catalogue, timestamp="2026-11-22")
    with pytest.raises(rep.ReportError, match="not a valid time"):
        make_report(tmp_path, catalogue, timestamp="20261399T000000Z")
    for name in ("../etc", ".hidden", "a/b", "new\nline"):
        with pytest.raises(rep.ReportError, match="cannot be used as a report file name"):
            make_report(tmp_path, catalogue, hosts={name: []})
    with pytest.raises(rep.ReportError, match="no hosts"):
        make_report(tmp_path, catalogue, hosts={})


def test_latest_refuses_to_replace_a_real_directory(tmp_path, catalogue):
    (tmp_path / "reports" / "latest").mkdir(parents=True)
    with pytest.raises(rep.ReportError, match="not a symlink"):
        make_report(tmp_path, catalogue)


def test_today_defaults_to_report_date(tmp_path, catalogue):
    hosts = {"gpu-node-1": with_status(all_pass(catalogue), "GPU-DRIVER-PINNED", "fail")}
    early = make_report(tmp_path, catalogue, hosts=hosts, today=None, timestamp="20270131T235959Z",
                        waivers=[waiver(expires="2027-01-31")])
    assert early["counts"]["waived"] == 1
    late = make_report(tmp_path, catalogue, hosts=hosts, today=None, timestamp="20270201T000000Z",
                       waivers=[waiver(expires="2027-01-31")])
    assert late["counts"]["waived"] == 0 and late["counts"]["fail"] == 1
    assert [w["control"] for w in late["expired_waivers"]] == ["GPU-DRIVER-PINNED"]


# ---------------------------------------------------------------- HTML (static checks; tests/browser runs it)

def test_html_is_self_contained_and_escaped(tmp_path, catalogue):
    hosts = sample_hosts(catalogue)
    hosts["gpu-node-2"] = with_status(hosts["gpu-node-2"], "VLLM-HARDENED", "fail",
                                      {"cmdline": "<script>alert('x')</script>", "url": "https://example.invalid/x.js"})
    result = make_report(tmp_path, catalogue, hosts=hosts)
    page = read_text(result["index"])
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    lowered = page.lower()
    assert "<link" not in lowered and " src=" not in lowered and "url(" not in lowered and "@import" not in lowered
    assert "default-src &#x27;none&#x27;" in page
    assert page.count("<script>") == 1
    assert 'data-status="fail"' in page and "WAIVER EXPIRED" in page


def test_render_value_readable():
    html = rep.render_value({"probes": [{"dest": "203.0.113.10", "ok": False}], "n": 3, "none": None,
                             "log": "a\nb"})
    assert "<dt>probes</dt>" in html and "<ol" in html and "<code>false</code>" in html
    assert "<code>3</code>" in html and "null" in html and "<pre>a\nb</pre>" in html


# ---------------------------------------------------------------- signatures

def test_ssh_signature_round_trip(tmp_path, catalogue):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed (Debian package openssh-client)")
    key = tmp_path / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "report-signer", "-f", str(key)],
                   check=True)
    result = make_report(tmp_path, catalogue, signing={"method": "ssh", "key": str(key)})
    assert result["signature"].endswith("SHA256SUMS.sig")
    folder = os.path.join(str(tmp_path / "reports"), "latest")
    assert os.path.isfile(os.path.join(folder, "SHA256SUMS.sig"))
    allowed = tmp_path / "allowed_signers"
    allowed.write_text("auditor@hospital %s" % (tmp_path / "signing_key.pub").read_text())

    def verify():
        with open(os.path.join(folder, "SHA256SUMS"), "rb") as sums:
            return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "auditor@hospital",
                                   "-n", "airgap-report", "-s", os.path.join(folder, "SHA256SUMS.sig")],
                                  stdin=sums, capture_output=True, text=True)

    good = verify()
    assert good.returncode == 0, good.stderr
    with open(os.path.join(folder, "SHA256SUMS"), "a") as sums:
        sums.write("0" * 64 + "  extra.txt\n")
    assert verify().returncode != 0


def test_gpg_signature_round_trip(tmp_path, catalogue):
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gen = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
                          "Report Signer <signer@example.invalid>", "ed25519", "sign", "never"],
                         capture_output=True, text=True)
    if gen.returncode != 0:
        pytest.skip("gpg cannot create a key here: %s" % gen.stderr)
    result = make_report(tmp_path, catalogue, signing={"method": "gpg", "key": "signer@example.invalid",
                                                       "homedir": str(home)})
    assert result["signature"].endswith("SHA256SUMS.asc")
    assert read_text(result["signature"]).startswith("-----BEGIN PGP SIGNATURE-----")
    check = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--verify", result["signature"],
                            result["sums"]], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with open(result["sums"], "a") as sums:
        sums.write("tampered\n")
    check = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--verify", result["signature"],
                            result["sums"]], capture_output=True, text=True)
    assert check.returncode != 0


def test_signing_option_validation(tmp_path, catalogue):
    with pytest.raises(rep.ReportError, match="signing.method"):
        make_report(tmp_path, catalogue, signing={"method": "x509"})
    with pytest.raises(rep.ReportError, match="signing.colour: unknown option"):
        make_report(tmp_path, catalogue, signing={"method": "gpg", "colour": "blue"})
