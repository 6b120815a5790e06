# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The podman smoke check at the end of `make setup` (scripts/smoke_podman.sh).

The kernel-and-podman tests run the real script against the real podman:
once as it is, and once with /usr/sbin left off PATH, which hides iptables
from netavark exactly as a fresh Debian 12 machine without the package does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "smoke_podman.sh")
IMAGE = "localhost/airgap-lab-base:bookworm"


def _hint(message):
    return subprocess.run([SCRIPT, "--hint", message], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("message, names", [
    ("Error: netavark: No such file or directory (os error 2)", "apt-get install iptables"),
    ("crun: cgroups in hybrid mode not supported", "runtime = \"runc\""),
    ("setrlimit RLIMIT_NOFILE: Operation not permitted", "default_ulimits"),
    ("Error: default OCI runtime \"runc\" not found: invalid argument", "apt-get install runc"),
    ("Error: localhost/airgap-lab-base:bookworm: image not known", "make image"),
    ("podman: command not found", "apt-get install podman"),
    ("something nobody has seen", "unknown"),
])
def test_each_known_failure_names_its_likely_cause(message, names):
    assert names in _hint(message)


def _podman_ready():
    if os.geteuid() != 0 or not shutil.which("podman"):
        return False
    return subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True).returncode == 0


needs_podman = pytest.mark.skipif(not _podman_ready(), reason="needs root, podman and the lab's base image")


@needs_podman
def test_smoke_check_passes_where_podman_works():
    run = subprocess.run([SCRIPT], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "got IPv4 and IPv6 addresses" in run.stdout


@needs_podman
def test_smoke_check_names_iptables_when_netavark_cannot_find_it():
    path = ":".join(p for p in os.environ.get("PATH", "").split(":") if not p.endswith("sbin"))
    if shutil.which("iptables", path=path):
        pytest.skip("iptables is reachable without an sbin folder on PATH")
    run = subprocess.run([SCRIPT], capture_output=True, text=True, env=dict(os.environ, PATH=path))
    assert run.returncode == 1
    assert "likely cause: netavark runs 'iptables --version' and iptables is missing: apt-get install iptables" \
        in run.stderr
