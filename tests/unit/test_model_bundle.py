# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for tools/model_bundle.py (build and verify manifests on the staging machine)."""

import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "model_bundle.py")
MANIFEST_CLI = os.path.join(ROOT, "module_utils", "airgap_manifest.py")

_spec = importlib.util.spec_from_file_location("model_bundle", TOOL)
mb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mb)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def bundle(tmp_path):
    files = {
        "config.json": b"{}\n",
        "weights/model-00001.safetensors": os.urandom(2 * (1 << 20) + 99),
        "weights/model-00002.safetensors": os.urandom(12345),
        "tokenizer.json": b'{"v": 1}\n',
    }
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path, files


def test_build_writes_sorted_relative_sha256sum_manifest(bundle):
    folder, files = bundle
    (folder / ".airgap-verified.json").write_text("{}")  # verifier bookkeeping is not listed
    (folder / "weights" / ".model-00003.safetensors.partial").write_bytes(b"x")
    proc = run_tool("build", str(folder), "--workers", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    text = (folder / "SHA256SUMS").read_text()
    expected = "".join("%s  %s\n" % (sha(files[rel]), rel) for rel in sorted(files))
    assert text == expected
    assert "4 files" in proc.stdout and sha(text.encode()) in proc.stdout


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum not installed")
def test_built_manifest_is_accepted_by_coreutils_sha256sum(bundle):
    folder, _files = bundle
    assert run_tool("build", str(folder), "--no-progress").returncode == 0
    proc = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=str(folder),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rebuild_is_stable_and_does_not_list_itself(bundle):
    folder, _files = bundle
    run_tool("build", str(folder), "--no-progress")
    first = (folder / "SHA256SUMS").read_bytes()
    run_tool("build", str(folder), "--no-progress")
    assert (folder / "SHA256SUMS").read_bytes() == first
    assert b"SHA256SUMS" not in first


def test_verify_passes_then_reports_mismatch_missing_and_extra(bundle):
    folder, _files = bundle
    run_tool("build", str(folder), "--no-progress")
    proc = run_tool("verify", str(folder), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ": OK: 4 of 4 files verified" in proc.stdout

    with open(str(folder / "weights" / "model-00001.safetensors"), "r+b") as fileobj:
        fileobj.seek(1 << 20)
        fileobj.write(b"\xff")
    os.unlink(str(folder / "tokenizer.json"))
    (folder / "weights" / "stray.bin").write_bytes(b"x")
    proc = run_tool("verify", str(folder), "--no-progress", "--workers", "3")
    assert proc.returncode == 1
    assert "PROBLEM weights/model-00001.safetensors: sha256 mismatch" in proc.stdout
    assert "PROBLEM tokenizer.json: missing" in proc.stdout
    assert "PROBLEM weights/stray.bin: not listed in the manifest" in proc.stdout
    assert "FAILED: 2 of 4 files verified, 1 missing, 1 mismatched, 0 unreadable or not regular, " \
           "1 extra" in proc.stdout


def test_built_bundle_verifies_with_the_host_cli(bundle):
    folder, _files = bundle
    run_tool("build", str(folder), "--no-progress")
    proc = subprocess.run([sys.executable, MANIFEST_CLI, "verify", "--dest", str(folder), "--full",
                           "--no-write"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_build_refuses_symlinks_and_unsafe_names(bundle, tmp_path_factory):
    folder, _files = bundle
    os.symlink(str(folder / "config.json"), str(folder / "alias.json"))
    proc = run_tool("build", str(folder), "--no-progress")
    assert proc.returncode == 2 and "alias.json: is a symlink" in proc.stderr
    assert not (folder / "SHA256SUMS").exists()

    other = tmp_path_factory.mktemp("odd")
    (other / "a\\b.bin").write_bytes(b"x")
    proc = run_tool("build", str(other), "--no-progress")
    assert proc.returncode == 2 and "backslash" in proc.stderr


def test_build_refuses_empty_folder_and_bad_arguments(tmp_path):
    proc = run_tool("build", str(tmp_path), "--no-progress")
    assert proc.returncode == 2 and "no files to list" in proc.stderr
    (tmp_path / "a").write_bytes(b"x")
    proc = run_tool("build", str(tmp_path), "--workers", "0")
    assert proc.returncode == 2 and "workers must be an integer" in proc.stderr
    proc = run_tool("build", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_verify_refuses_unsafe_or_absent_manifest(tmp_path):
    proc = run_tool("verify", str(tmp_path), "--no-progress")
    assert proc.returncode == 2 and "cannot read manifest" in proc.stderr
    (tmp_path / "SHA256SUMS").write_text("%s  /etc/shadow\n" % ("0" * 64))
    proc = run_tool("verify", str(tmp_path), "--no-progress")
    assert proc.returncode == 2 and "line 1: unsafe path '/etc/shadow'" in proc.stderr


def test_progress_rich_and_plain(bundle, monkeypatch):
    folder, _files = bundle
    proc = run_tool("build", str(folder))  # default: progress on stderr (rich in the venv)
    assert proc.returncode == 0 and proc.stderr.strip() != ""
    monkeypatch.setattr(mb, "HAVE_RICH", False)
    assert isinstance(mb.make_progress("x", 10, True), mb.PlainProgress)
    assert isinstance(mb.make_progress("x", 10, False), mb.NoProgress)
    stream = io.StringIO()
    with mb.PlainProgress("hashing", 4 << 20, stream=stream, every=0) as bar:
        bar.advance(1 << 20)
        bar.advance(1 << 20)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("hashing: 1/4 MiB (25%)")
    assert lines[-1].startswith("hashing: 2/4 MiB (50%)")


def test_build_function_returns_manifest_digest(bundle):
    folder, _files = bundle
    out = io.StringIO()
    digest = mb.build(str(folder), workers=2, progress=False, out=out)
    assert digest == sha((folder / "SHA256SUMS").read_bytes())
    assert mb.verify(str(folder), workers=1, progress=False, out=out) == []
