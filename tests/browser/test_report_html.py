# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render the compliance report's index.html in headless Chromium and check it.

The page is opened from disk (file://), the way an auditor opens it offline.
Chromium's --dump-dom gives the DOM after the page's script ran, so these
tests see what a reader sees: summary counts, matrix cells, filters, and the
filter logic itself (driven through the URL fragment, as a shared link would).
Printing to PDF must show every result in full and no filter controls.

Needs Debian's `chromium` (and `pdftotext` from poppler-utils for the PDF text
check). Without Chromium the tests skip, unless AIRGAP_REQUIRE_BROWSER=1.
Set AIRGAP_UPDATE_SCREENSHOT=1 to refresh docs/report-screenshot.png.
"""

import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest

from ansible.module_utils.airgap_evidence import make_record
from ansible.module_utils import airgap_report as rep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTROLS = os.path.join(ROOT, "controls")
SCREENSHOT = os.path.join(ROOT, "docs", "report-screenshot.png")
TS = "20261122T224500Z"


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("AIRGAP_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required (apt-get install chromium) but was not found")
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")


def run_chromium(args, tmp_path, timeout=120):
    """Run headless Chromium with a throwaway profile; return stdout."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-extensions", "--hide-scrollbars",
           "--user-data-dir=%s" % (tmp_path / "chromium-profile")] + args
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def sample_report(root):
    """A lab-like fleet: one clean node, one with a failure, a waiver and an expired
    waiver, one without a GPU (not_applicable), one unreachable."""
    catalogue = rep.load_catalogue(CONTROLS)
    when = "2026-11-22T22:44:10Z"

    def node(overrides):
        records = []
        for cid, entry in catalogue.items():
            status, evidence = overrides.get(cid, ("pass", {"probe": "verify step of %s" % entry["role"],
                                                            "result": "as required"}))
            records.append(make_record(cid, entry["role"], status, evidence, checked_at=when))
        return records

    hosts = {
        "gpu-node-1": node({"NET-EGRESS-DENY": ("pass", {
            "probes": [{"dest": "203.0.113.10", "proto": "tcp", "port": 443, "family": "ipv4", "reached": False},
                       {"dest": "2001:db8::10", "proto": "udp", "port": 53, "family": "ipv6", "reached": False}],
            "positive_control": {"dest": "10.89.0.10", "proto": "tcp", "port": 80, "reached": True},
            "canary_log_lines": 0})}),
        "gpu-node-2": node({
            "NET-EGRESS-DENY": ("fail", {"probe": "udp 2001:db8::10 port 53 (IPv6 DNS)", "reached": True,
                                         "canary_log": "2026-11-22T22:44:09Z udp6 from fd00:89::21 <leak>"}),
            "GPU-DRIVER-PINNED": ("fail", {"installed": "535.261.03", "pinned": "535.230.02", "held": True}),
            "HOST-SYSCTL": ("fail", {"setting": "net.ipv6.conf.all.accept_ra", "expected": 0, "actual": 1}),
        }),
        "gpu-node-3": node({"GPU-HEALTH": ("not_applicable", {"detail": "no NVIDIA GPU on this host"}),
                            "GPU-DRIVER-PINNED": ("not_applicable", {"detail": "no NVIDIA GPU on this host"})}),
    }
    waivers = [
        {"control": "GPU-DRIVER-PINNED", "hosts": ["gpu-node-2"], "approver": "CISO Dr. A. Example",
         "justification": "535.261.03 is the vendor's security update; pin moves at the next change window",
         "expires": "2027-01-31"},
        {"control": "HOST-SYSCTL", "approver": "Head of IT", "justification": "Router advertisements needed "
         "during the IPv6 migration", "expires": "2026-10-31"},
    ]
    return rep.write_report(output_root=str(root), hosts=hosts, catalogue_dir=CONTROLS,
                            unreachable=["gpu-node-4"], waivers=waivers, timestamp=TS, today="2026-11-22")


class DomIndex(HTMLParser):
    """Collect every element's attributes and the text inside elements with an id."""

    def __init__(self):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.elements = []
        self._stack = []
        self.text_by_id = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag not in ("br", "input", "meta", "img", "hr", "link"):
            self._stack.append(attrs.get("id"))

    def handle_endtag(self, tag):
        if tag not in ("br", "input", "meta", "img", "hr", "link") and self._stack:
            self._stack.pop()

    def handle_data(self, data):
        for ident in self._stack:
            if ident:
                self.text_by_id[ident] = self.text_by_id.get(ident, "") + data

    def find(self, tag=None, **attrs):
        out = []
        for name, have in self.elements:
            if tag and name != tag:
                continue
            if all(have.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(have)
        return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return sample_report(tmp_path_factory.mktemp("reports"))


def dump(report, tmp_path, fragment=""):
    out = run_chromium(["--virtual-time-budget=3000", "--dump-dom",
                        "file://%s%s" % (report["index"], fragment)], tmp_path)
    dom = DomIndex()
    dom.feed(out)
    return out, dom


def classes(attrs):
    return (attrs.get("class") or "").split()


def test_script_ran_and_summary_counts(report, tmp_path):
    out, dom = dump(report, tmp_path)
    assert dom.find("body", data_js_ready="true"), "the page's script did not run to the end"
    assert "js" in classes(dom.find("html")[0])
    counts = dict((s, int(n)) for s, n in re.findall(r'data-count="([a-z_]+)"><span class="n">(\d+)</span>', out))
    assert counts == report["counts"]
    # Two failures (one under an expired waiver), one active waiver, two n/a on the GPU-less node.
    assert counts["fail"] == 2 and counts["waived"] == 1 and counts["not_applicable"] == 2
    assert counts["error"] == len(rep.load_catalogue(CONTROLS))  # gpu-node-4 is unreachable
    assert "Fleet verdict: FAIL" in out
    failing = dom.text_by_id["hosts-failing"]
    assert "gpu-node-2" in failing and "gpu-node-4" in failing and "gpu-node-1" not in failing
    assert "HOST-SYSCTL" in dom.text_by_id["expired-waivers"]


def test_matrix_cells(report, tmp_path):
    _, dom = dump(report, tmp_path)
    cells = dict((a["data-cell"], a["data-status"]) for a in dom.find("td") if "data-cell" in a)
    n = len(rep.load_catalogue(CONTROLS))
    assert len(cells) == 4 * n
    assert cells["gpu-node-2|NET-EGRESS-DENY"] == "fail"
    assert cells["gpu-node-2|GPU-DRIVER-PINNED"] == "waived"
    assert cells["gpu-node-2|HOST-SYSCTL"] == "fail"
    assert cells["gpu-node-3|GPU-HEALTH"] == "not_applicable"
    assert cells["gpu-node-1|NET-EGRESS-DENY"] == "pass"
    assert set(v for k, v in cells.items() if k.startswith("gpu-node-4|")) == {"error"}
    rows = [a["data-host-row"] for a in dom.find("tr") if "data-host-row" in a]
    assert rows == ["gpu-node-1", "gpu-node-2", "gpu-node-3", "gpu-node-4"]


def test_filter_controls_present(report, tmp_path):
    _, dom = dump(report, tmp_path)
    boxes = [a["value"] for a in dom.find("input", name="status")]
    assert boxes == ["pass", "fail", "waived", "not_applicable", "error"]
    assert dom.find("select", id="f-role") and dom.find("select", id="f-fw") and dom.find("select", id="f-host")
    roles = [a["value"] for a in dom.find("option") if a.get("value") in ("firewall", "vllm_server")]
    assert roles == ["firewall", "vllm_server"]
    assert dom.find("option", value="nist_800_53:SC-7(5)") and dom.find("option", value="hipaa:164.312(e)(1)")
    assert dom.find("option", value="bsi:NET.3.2.A2")
    total = 4 * len(rep.load_catalogue(CONTROLS))
    assert dom.text_by_id["f-count"].strip() == "Showing %d of %d results" % (total, total)


def test_results_collapse_by_status_but_failures_stay_open(report, tmp_path):
    _, dom = dump(report, tmp_path)
    results = [a for a in dom.find("article") if a.get("data-result")]
    assert results
    for attrs in results:
        collapsed = "collapsed" in classes(attrs)
        assert collapsed == (attrs["data-status"] in ("pass", "not_applicable")), attrs["id"]


def test_status_filter_from_link(report, tmp_path):
    out, dom = dump(report, tmp_path, "#status=fail")
    results = [a for a in dom.find("article") if a.get("data-result")]
    shown = [a for a in results if "f-hidden" not in classes(a)]
    assert [(a["data-host"], a["data-control"]) for a in shown] == [
        ("gpu-node-2", "NET-EGRESS-DENY"), ("gpu-node-2", "HOST-SYSCTL")]
    assert dom.text_by_id["f-count"].strip() == "Showing 2 of %d results" % len(results)
    dimmed = [a for a in dom.find("td") if "data-cell" in a and "dim" in classes(a)]
    assert all(a["data-status"] != "fail" for a in dimmed) and dimmed


def test_role_and_framework_filter_from_link(report, tmp_path):
    _, dom = dump(report, tmp_path, "#role=vllm_server&fw=" + "nist_800_53%3AAC-6")
    columns = [a for a in dom.find("th") if "data-col" in a]
    visible = [a["data-col"] for a in columns if "f-hidden" not in classes(a)]
    assert visible == ["VLLM-HARDENED"]
    shown = [a for a in dom.find("article") if a.get("data-result") and "f-hidden" not in classes(a)]
    assert set(a["data-control"] for a in shown) == {"VLLM-HARDENED"}
    assert len(shown) == 4


def test_host_filter_from_link(report, tmp_path):
    _, dom = dump(report, tmp_path, "#host=gpu-node-3")
    rows = [a for a in dom.find("tr") if "data-host-row" in a]
    assert [a["data-host-row"] for a in rows if "f-hidden" not in classes(a)] == ["gpu-node-3"]
    sections = [a for a in dom.find("section") if "host" in classes(a)]
    assert [a["id"] for a in sections if "f-hidden" not in classes(a)] == ["h-gpu-node-3"]


def png_size(path):
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def test_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    run_chromium(["--window-size=1400,1800", "--virtual-time-budget=3000", "--screenshot=%s" % shot,
                  "file://%s" % report["index"]], tmp_path)
    assert png_size(str(shot)) == (1400, 1800)
    assert os.path.getsize(str(shot)) > 50000, "screenshot looks empty"
    if os.environ.get("AIRGAP_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(str(shot), SCREENSHOT)


def test_print_to_pdf_shows_everything_and_no_filters(report, tmp_path):
    pdf = tmp_path / "report.pdf"
    run_chromium(["--no-pdf-header-footer", "--virtual-time-budget=3000", "--print-to-pdf=%s" % pdf,
                  "file://%s#status=fail" % report["index"]], tmp_path)
    with open(str(pdf), "rb") as handle:
        assert handle.read(5) == b"%PDF-"
    assert os.path.getsize(str(pdf)) > 20000
    if not shutil.which("pdftotext"):
        # `make test` installs poppler-utils and sets AIRGAP_REQUIRE_BROWSER=1: there a missing tool fails.
        if os.environ.get("AIRGAP_REQUIRE_BROWSER") == "1":
            pytest.fail("pdftotext (poppler-utils) is required (AIRGAP_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("pdftotext (poppler-utils) not installed: PDF text not checked")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = " ".join(text.split())
    # A passing result is collapsed on screen and filtered out by the link; print shows it in full.
    assert "positive_control" in flat and "10.89.0.10" in flat
    assert "no NVIDIA GPU on this host" in flat
    assert "Reset filters" not in flat and "Hide details" not in flat
    assert "Printed copy" in flat
    assert "WAIVER EXPIRED" in flat and "Fleet verdict: FAIL" in flat
