# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for module_utils/airgap_manifest.py: parsing, hashing, cache, check CLI."""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import pytest

import airgap_manifest as am

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "module_utils", "airgap_manifest.py")
H1 = "a" * 64
H2 = "b" * 64


def sha(data):
    return hashlib.sha256(data).hexdigest()


def make_model(folder, files):
    """Write ``files`` (relpath -> bytes) under ``folder`` plus a SHA256SUMS; return entries."""
    for rel, data in files.items():
        path = os.path.join(str(folder), *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fileobj:
            fileobj.write(data)
    text = am.format_manifest((rel, sha(data)) for rel, data in files.items())
    with open(os.path.join(str(folder), "SHA256SUMS"), "w") as fileobj:
        fileobj.write(text)
    return am.parse_manifest(text, "test")


@pytest.fixture
def model(tmp_path):
    files = {
        "config.json": b'{"a": 1}\n',
        "model-00001.safetensors": os.urandom(3 * am.CHUNK_SIZE + 17),
        "tokenizer/vocab.txt": b"hello\nworld\n",
    }
    entries = make_model(tmp_path, files)
    return tmp_path, files, entries


# --------------------------------------------------------------------------- parsing

def test_parse_accepts_text_and_binary_markers_crlf_and_dot_slash():
    text = "%s  a.bin\r\n\n%s *./sub/b.bin\n" % (H1.upper(), H2)
    entries = am.parse_manifest(text, "m")
    assert [(e.path, e.sha256, e.line) for e in entries] == [("a.bin", H1, 1), ("sub/b.bin", H2, 3)]


def test_parse_accepts_bytes_and_spaces_in_names():
    entries = am.parse_manifest(("%s  my file.bin\n" % H1).encode(), "m")
    assert entries[0].path == "my file.bin"


@pytest.mark.parametrize("text, fragment", [
    ("%s  ok\nnot a checksum line\n" % H1, "line 2: malformed"),
    ("%s\n" % H1, "line 1: malformed"),
    (" %s  a\n" % H1, "line 1: malformed"),
    ("%s  a\n" % ("g" * 64), "is not 64 hexadecimal digits"),
    ("%s  a\n" % ("a" * 63), "has 63 hex digits"),
    ("%s  a\n" % ("a" * 128), "has 128 hex digits"),
    ("%s  /etc/passwd\n" % H1, "absolute path"),
    ("%s  ../x\n" % H1, "'..' component"),
    ("%s  a/../../x\n" % H1, "'..' component"),
    ("%s  a\\b\n" % H1, "backslash"),
    ("%s  a\x01b\n" % H1, "control character"),
    ("%s  a//b\n" % H1, "empty component"),
    ("%s  dir/\n" % H1, "empty component"),
    ("%s  a\n%s  ./a\n" % (H1, H2), "line 2: duplicate path 'a' (first listed on line 1)"),
    ("", "empty manifest"),
    ("\n\n  \n", "empty manifest"),
    ("%s  a\x00b\n" % H1, "NUL"),
    ("\\%s  a\\nb\n" % H1, "escaped file name"),
    ("SHA256 (a) = %s\n" % H1, "BSD tag format"),
    ("%s  .airgap-verified.json\n" % H1, "reserved"),
    ("%s  sub/.x.bin.partial\n" % H1, "reserved"),
    ("%s  a\n%s  a/b\n" % (H1, H2), "inside 'a'"),
])
def test_parse_refuses_bad_manifests_naming_source_and_line(text, fragment):
    with pytest.raises(am.ManifestError) as err:
        am.parse_manifest(text, "http://mirror/models/x/SHA256SUMS")
    assert fragment in str(err.value)
    assert str(err.value).startswith("http://mirror/models/x/SHA256SUMS")


def test_parse_refuses_non_utf8():
    with pytest.raises(am.ManifestError, match="not UTF-8"):
        am.parse_manifest(b"\xff\xfe" + H1.encode() + b"  a\n", "m")


def test_format_manifest_round_trips_sorted():
    text = am.format_manifest([("b", H2), ("a", H1)])
    assert text == "%s  a\n%s  b\n" % (H1, H2)
    assert [e.path for e in am.parse_manifest(text)] == ["a", "b"]


# --------------------------------------------------------------------------- hashing

def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = os.urandom(2 * am.CHUNK_SIZE + 12345)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert am.sha256_file(str(path)) == sha(data)
    assert am.sha256_file(str(path), chunk_size=4096) == sha(data)


class FakeReaderDouble(object):
    """Test double: a reader that records the size of every buffer it is given."""

    def __init__(self, data):
        self.data, self.pos, self.sizes = data, 0, []

    def readinto(self, buf):
        self.sizes.append(len(buf))
        chunk = self.data[self.pos:self.pos + len(buf)]
        buf[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def test_hash_stream_reuses_one_fixed_buffer():
    data = os.urandom(5 * 1000 + 3)
    reader = FakeReaderDouble(data)
    hasher, total = am.hash_stream(reader, chunk_size=1000)
    assert hasher.hexdigest() == sha(data) and total == len(data)
    assert set(reader.sizes) == {1000}
    assert len(reader.sizes) == 7  # 6 reads with data, one that returns 0


def test_hash_entry_reports_a_file_changed_while_hashing(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(os.urandom(3 * am.CHUNK_SIZE))
    calls = []

    def grow_file(_n):
        if not calls:
            with open(str(path), "ab") as fileobj:
                fileobj.write(b"x")
        calls.append(1)

    with pytest.raises(am.FileProblem) as err:
        am.hash_entry(str(tmp_path), "w.bin", progress=grow_file)
    assert err.value.kind == "changed"


def test_hash_entry_does_not_follow_symlinks(tmp_path):
    (tmp_path / "real").write_bytes(b"x")
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    with pytest.raises(am.FileProblem):
        am.hash_entry(str(tmp_path), "link")


# --------------------------------------------------------------------------- verification

def test_full_verify_finds_ok_missing_mismatch_and_symlink(model, tmp_path):
    dest, files, entries = model
    os.unlink(str(dest / "config.json"))
    (dest / "tokenizer" / "vocab.txt").write_bytes(b"HELLO\nworld\n")
    target = tmp_path.parent / ("outside-%d" % os.getpid())
    target.write_bytes(files["model-00001.safetensors"])
    os.unlink(str(dest / "model-00001.safetensors"))
    os.symlink(str(target), str(dest / "model-00001.safetensors"))
    try:
        report = am.verify_entries(str(dest), entries, mode="full", workers=2)
    finally:
        target.unlink()
    assert report.missing == ["config.json"]
    assert [m["path"] for m in report.mismatches] == ["tokenizer/vocab.txt"]
    assert [(p.path, p.kind) for p in report.problems] == [("model-00001.safetensors", "symlink")]
    assert report.ok == {} and not report.complete


def test_symlinked_folder_is_a_problem_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(b"secret")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(outside), str(dest / "sub"))
    entries = am.parse_manifest("%s  sub/w.bin\n" % sha(b"secret"))
    report = am.verify_entries(str(dest), entries, mode="full")
    assert [p.kind for p in report.problems] == ["symlink"]
    assert report.ok == {}


def test_cache_hit_skips_hashing_and_full_mode_rehashes(model, monkeypatch):
    dest, _files, entries = model
    am.verify_dest(str(dest), mode="full")
    calls = []
    real = am.hash_entry

    def counting_hash_entry(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(am, "hash_entry", counting_hash_entry)
    report, extras, _ = am.verify_dest(str(dest), mode="cache")
    assert calls == [] and report.complete and extras == []
    assert report.cache_hits == sorted(e.path for e in entries)
    report, _, _ = am.verify_dest(str(dest), mode="full")
    assert sorted(calls) == sorted(e.path for e in entries) and report.complete


def test_cache_is_invalidated_by_rewrite_even_with_mtime_restored(model):
    dest, files, _entries = model
    am.verify_dest(str(dest), mode="full")
    path = dest / "model-00001.safetensors"
    st = os.stat(str(path))
    data = bytearray(files["model-00001.safetensors"])
    data[1000] ^= 0xFF
    time.sleep(0.01)
    with open(str(path), "r+b") as fileobj:
        fileobj.write(bytes(data))
    os.utime(str(path), ns=(st.st_atime_ns, st.st_mtime_ns))  # an attacker hides the edit
    report, _, _ = am.verify_dest(str(dest), mode="cache")
    assert [m["path"] for m in report.mismatches] == ["model-00001.safetensors"]


def test_cache_not_trusted_when_manifest_expects_another_hash(model):
    dest, files, entries = model
    am.verify_dest(str(dest), mode="full")
    cache, _ = am.read_cache(str(dest))
    changed = [am.ManifestEntry(e.path, H1 if e.path == "config.json" else e.sha256, e.line)
               for e in entries]
    report = am.verify_entries(str(dest), changed, mode="cache", cache_files=cache["files"])
    assert report.hashed == ["config.json"]
    assert [m["path"] for m in report.mismatches] == ["config.json"]


def test_workers_bound_concurrency(tmp_path):
    files = dict(("f%02d" % i, os.urandom(1000)) for i in range(12))
    entries = make_model(tmp_path, files)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow_hash_double(dest, rel, chunk_size=am.CHUNK_SIZE, progress=None):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        try:
            return am.hash_entry(dest, rel, chunk_size, progress)
        finally:
            with lock:
                state["now"] -= 1

    report = am.verify_entries(str(tmp_path), entries, mode="full", workers=2,
                               hash_func=slow_hash_double)
    assert report.complete and state["peak"] == 2


@pytest.mark.parametrize("workers", [0, -1, 65, "2", True])
def test_bad_worker_counts_are_refused(tmp_path, workers):
    with pytest.raises(ValueError, match="workers"):
        am.verify_entries(str(tmp_path), [], mode="full", workers=workers)


def test_find_extras_skips_reserved_names(model):
    dest, _files, entries = model
    (dest / "evil.bin").write_bytes(b"x")
    (dest / "tokenizer" / "extra.txt").write_bytes(b"x")
    (dest / ".config.json.partial").write_bytes(b"x")
    (dest / am.CACHE_NAME).write_text("{}")
    (dest / (am.CACHE_NAME + ".abc.tmp")).write_text("{}")
    (dest / am.MANIFEST_COPY_NAME).write_text("x")
    assert am.find_extras(str(dest), entries, ignore=["SHA256SUMS"]) == [
        "evil.bin", "tokenizer/extra.txt"]
    assert "SHA256SUMS" in am.find_extras(str(dest), entries)


def test_cache_written_atomically_without_leftovers(model):
    dest, _files, entries = model
    am.verify_dest(str(dest), mode="full")
    cache, reason = am.read_cache(str(dest))
    assert reason is None and cache["complete"] is True
    assert set(cache["files"]) == set(e.path for e in entries)
    rec = cache["files"]["config.json"]
    assert set(rec) == {"sha256", "size", "mtime_ns", "ctime_ns", "inode"}
    assert not [n for n in os.listdir(str(dest)) if n.endswith(".tmp")]


# --------------------------------------------------------------------------- check

def test_check_verified_passes_only_after_complete_verification(model):
    dest, _files, _entries = model
    ok, problems = am.check_verified(str(dest))
    assert not ok and "never verified" in problems[0]
    am.verify_dest(str(dest), mode="full")
    assert am.check_verified(str(dest)) == (True, [])


def test_check_fails_on_modified_extra_missing_and_incomplete(model):
    dest, _files, _entries = model
    am.verify_dest(str(dest), mode="full")
    with open(str(dest / "config.json"), "ab") as fileobj:
        fileobj.write(b" ")
    ok, problems = am.check_verified(str(dest))
    assert not ok and any("config.json: changed since verification" in p for p in problems)
    am.verify_dest(str(dest), mode="full")  # now a mismatch: recorded as incomplete
    ok, problems = am.check_verified(str(dest))
    assert not ok and "last verification was not complete" in problems


def test_check_fails_on_extra_file(model):
    dest, _files, _entries = model
    am.verify_dest(str(dest), mode="full")
    (dest / "tokenizer" / "injected.py").write_text("import os")
    ok, problems = am.check_verified(str(dest))
    assert not ok and problems == ["tokenizer/injected.py: not listed in the manifest (unexpected file)"]


def test_check_fails_on_manifest_change_pin_and_corrupt_cache(model):
    dest, files, _entries = model
    am.verify_dest(str(dest), mode="full")
    manifest = (dest / "SHA256SUMS").read_text()
    ok, problems = am.check_verified(str(dest), expected_manifest_sha256=H1)
    assert not ok and "expected " + H1 in problems[0]
    assert am.check_verified(str(dest), expected_manifest_sha256=sha(manifest.encode()))[0]
    ok, problems = am.check_verified(str(dest), manifest + "%s  other.bin\n" % H2)
    assert not ok and any("verification record is for manifest" in p for p in problems)
    (dest / am.CACHE_NAME).write_text("{not json")
    ok, problems = am.check_verified(str(dest))
    assert not ok and "unreadable" in problems[0]


# --------------------------------------------------------------------------- CLI

def run_cli(*args):
    return subprocess.run([sys.executable, CLI] + list(args), capture_output=True, text=True,
                          timeout=60)


def test_cli_verify_then_check_then_tamper(model):
    dest, _files, _entries = model
    proc = run_cli("check", "--dest", str(dest))
    assert proc.returncode == 1 and "NOT verified" in proc.stderr
    proc = run_cli("verify", "--dest", str(dest), "--full")
    assert proc.returncode == 0, proc.stderr
    assert "3/3 files verified" in proc.stdout
    proc = run_cli("check", "--dest", str(dest))
    assert proc.returncode == 0, proc.stderr
    with open(str(dest / "tokenizer" / "vocab.txt"), "r+b") as fileobj:
        fileobj.write(b"J")
    proc = run_cli("check", "--dest", str(dest))
    assert proc.returncode == 1
    assert "tokenizer/vocab.txt: changed since verification" in proc.stderr
    proc = run_cli("verify", "--dest", str(dest))
    assert proc.returncode == 1 and "sha256 mismatch" in proc.stderr


def test_cli_verify_bad_manifest_exits_2(tmp_path):
    (tmp_path / "SHA256SUMS").write_text("%s  ../escape\n" % H1)
    proc = run_cli("verify", "--dest", str(tmp_path))
    assert proc.returncode == 2 and "'..' component" in proc.stderr
    proc = run_cli("check", "--dest", str(tmp_path))
    assert proc.returncode == 1 and "'..' component" in proc.stderr


def test_cli_check_missing_dest_fails_closed(tmp_path):
    proc = run_cli("check", "--dest", str(tmp_path / "nope"))
    assert proc.returncode == 1 and "does not exist" in proc.stderr


def test_cache_json_is_readable_by_humans(model):
    dest, _files, _entries = model
    am.verify_dest(str(dest), mode="full")
    with open(str(dest / am.CACHE_NAME)) as fileobj:
        data = json.load(fileobj)
    assert data["format"] == am.CACHE_FORMAT and data["manifest_sha256"] == sha(
        (dest / "SHA256SUMS").read_bytes())
