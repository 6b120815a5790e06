# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for library/weights_sync.py against a real HTTP server on 127.0.0.1.

Python's SimpleHTTPRequestHandler ignores Range, so RangeFileHandler below
serves a folder with Range support, logs every request and can drop a
connection part way through a body (the mirror going away mid-download).
"""

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from ansible.module_utils import airgap_manifest as am
from ansible.module_utils.testing import patch_module_args

import weights_sync as ws

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "module_utils", "airgap_manifest.py")
MODEL = "demo-model"
MANIFEST = "models/demo-model/SHA256SUMS"


# --------------------------------------------------------------------------- test server

class RangeFileHandler(BaseHTTPRequestHandler):
    """Serve files under server.root with single-range support and a request log."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        with srv.lock:
            srv.requests.append({"path": rel, "range": self.headers.get("Range")})
        if rel in srv.redirects:
            self.send_response(302)
            self.send_header("Location", srv.redirects[rel])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = os.path.join(srv.root, *rel.split("/"))
        if ".." in rel.split("/") or not os.path.isfile(path):
            self.send_error(404)
            return
        self._send_file(srv, rel, path)

    def _send_file(self, srv, rel, path):
        size = os.path.getsize(path)
        start, status = 0, 200
        match = re.match(r"^bytes=(\d+)-$", self.headers.get("Range") or "")
        if match and srv.honour_range:
            start, status = int(match.group(1)), 206
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(status)
        self.send_header("Content-Length", str(size - start))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        self.end_headers()
        abort_after = srv.abort_after.pop(rel, None)
        with open(path, "rb") as fileobj:
            fileobj.seek(start)
            sent = 0
            while True:
                chunk = fileobj.read(64 * 1024)
                if not chunk:
                    break
                if abort_after is not None and sent + len(chunk) > abort_after:
                    chunk = chunk[:abort_after - sent]
                self.wfile.write(chunk)
                sent += len(chunk)
                with srv.lock:
                    srv.bytes_sent[rel] = srv.bytes_sent.get(rel, 0) + len(chunk)
                if abort_after is not None and sent >= abort_after:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    if srv.stop_on_abort:
                        threading.Thread(target=_stop_server, args=(srv,)).start()
                    return


def _stop_server(httpd):
    """Stop serving and close the listening socket: later connections are refused."""
    httpd.shutdown()
    httpd.server_close()


class MirrorServer(object):
    """A ThreadingHTTPServer on 127.0.0.1 in a background thread."""

    def __init__(self, root):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeFileHandler)
        self.httpd.daemon_threads = True
        self.httpd.root = str(root)
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.bytes_sent = {}
        self.httpd.abort_after = {}
        self.httpd.redirects = {}
        self.httpd.honour_range = True
        self.httpd.stop_on_abort = False
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def __getattr__(self, name):
        return getattr(self.httpd, name)

    def __setattr__(self, name, value):
        # Switches such as honour_range live on the server the handler sees.
        if name in ("httpd", "url", "thread"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.httpd, name, value)

    def file_requests(self):
        return [r for r in self.httpd.requests if not r["path"].endswith("SHA256SUMS")]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mirror(tmp_path):
    """A mirror folder with demo-model and a running server; yields (server, files)."""
    root = tmp_path / "mirror"
    model_dir = root / "models" / "demo-model"
    files = {
        "config.json": b'{"architectures": ["Demo"]}\n',
        "model-00001-of-00002.safetensors": os.urandom(3 * am.CHUNK_SIZE + 4321),
        "model-00002-of-00002.safetensors": os.urandom(am.CHUNK_SIZE // 2 + 7),
        "tokenizer/tokenizer.json": b'{"vocab": {}}\n',
    }
    for rel, data in files.items():
        path = model_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (model_dir / "SHA256SUMS").write_text(am.format_manifest((r, sha(d)) for r, d in files.items()))
    server = MirrorServer(root)
    yield server, files
    server.stop()


def params(server_url, dest_dir, **over):
    p = dict(mode="sync", base_url=server_url, name=MODEL, manifest=MANIFEST, manifest_local=None,
             manifest_sha256=None, dest=str(dest_dir), verify="cache", workers=2, remove_extras=False,
             timeout=10, validate_certs=True, ca_path=None)
    p.update(over)
    return p


def tree(folder):
    """Snapshot of a folder: relpath -> (size, mtime_ns, inode, sha256)."""
    out = {}
    for root, _dirs, names in os.walk(str(folder)):
        for name in names:
            path = os.path.join(root, name)
            st = os.lstat(path)
            with open(path, "rb") as fileobj:
                digest = sha(fileobj.read())
            out[os.path.relpath(path, str(folder))] = (st.st_size, st.st_mtime_ns, st.st_ino, digest)
    return out


def assert_dest_matches(dest, files):
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data, rel
    partials = [n for _r, _d, names in os.walk(str(dest)) for n in names if n.endswith(".partial")]
    assert partials == []


# --------------------------------------------------------------------------- sync

def test_fresh_sync_fetches_verifies_and_records(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "srv" / "demo-model"
    result = ws.run(params(server.url, dest))
    assert result["changed"] is True
    assert result["fetched"] == sorted(files)
    assert result["replaced"] == [] and result["resumed"] == [] and result["extras"] == []
    assert result["verified_files"] == result["files_total"] == 4
    assert result["bytes_downloaded"] == sum(len(d) for d in files.values())
    assert result["evidence"]["id"] == "WEIGHTS-INTEGRITY"
    assert result["evidence"]["role"] == "model_weights"
    assert result["evidence"]["status"] == "pass"
    assert_dest_matches(dest, files)
    manifest = (tmp_path / "mirror" / MANIFEST).read_bytes()
    assert (dest / am.MANIFEST_COPY_NAME).read_bytes() == manifest
    assert result["manifest_sha256"] == sha(manifest)
    assert am.check_verified(str(dest)) == (True, [])
    assert oct(os.stat(str(dest / "config.json")).st_mode & 0o777) == "0o644"


def test_rerun_is_idempotent_and_downloads_nothing(mirror, tmp_path):
    server, _files = mirror
    dest = tmp_path / "dest"
    ws.run(params(server.url, dest))
    before = tree(dest)
    del server.requests[:]
    result = ws.run(params(server.url, dest))
    assert result["changed"] is False
    assert result["fetched"] == [] and result["replaced"] == []
    assert result["cache_hits"] == 4 and result["bytes_hashed"] == 0
    assert server.file_requests() == []
    assert tree(dest) == before
    assert result["evidence"]["status"] == "pass"


def test_cache_hit_does_not_hash_but_full_mode_does(mirror, tmp_path, monkeypatch):
    server, files = mirror
    dest = tmp_path / "dest"
    ws.run(params(server.url, dest))
    calls = []
    real = am.hash_entry

    def counting_hash_entry(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(am, "hash_entry", counting_hash_entry)
    result = ws.run(params(server.url, dest))
    assert calls == [] and result["method"] == "cache"
    result = ws.run(params(server.url, dest, verify="full"))
    assert sorted(calls) == sorted(files) and result["method"] == "full"
    assert result["changed"] is False and result["bytes_hashed"] == sum(len(d) for d in files.values())


def test_flipped_byte_is_detected_refetched_and_reported(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    ws.run(params(server.url, dest))
    target = dest / "model-00001-of-00002.safetensors"
    st = os.stat(str(target))
    with open(str(target), "r+b") as fileobj:
        fileobj.seek(2 * am.CHUNK_SIZE + 5)
        byte = fileobj.read(1)
        fileobj.seek(-1, 1)
        fileobj.write(bytes([byte[0] ^ 0x01]))
    os.utime(str(target), ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime look untouched

    audit = ws.run(params(server.url, dest, mode="verify"))
    assert audit["changed"] is False
    assert [m["path"] for m in audit["mismatches"]] == ["model-00001-of-00002.safetensors"]
    assert audit["evidence"]["status"] == "fail"

    del server.requests[:]
    result = ws.run(params(server.url, dest))
    assert result["replaced"] == ["model-00001-of-00002.safetensors"]
    assert result["fetched"] == [] and result["changed"] is True
    assert result["mismatches"] == [] and result["evidence"]["status"] == "pass"
    assert [r["path"] for r in server.file_requests()] == [
        "models/demo-model/model-00001-of-00002.safetensors"]
    assert_dest_matches(dest, files)
    assert am.check_verified(str(dest))[0]


def test_truncated_partial_is_resumed_with_range(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    dest.mkdir()
    name = "model-00001-of-00002.safetensors"
    data = files[name]
    have = am.CHUNK_SIZE + 1000
    (dest / am.partial_name(name)).write_bytes(data[:have])
    result = ws.run(params(server.url, dest))
    assert result["resumed"] == [name]
    rel = "models/demo-model/" + name
    assert [r["range"] for r in server.requests if r["path"] == rel] == ["bytes=%d-" % have]
    assert server.bytes_sent[rel] == len(data) - have
    total = sum(len(d) for d in files.values())
    assert result["bytes_downloaded"] == total - have
    assert_dest_matches(dest, files)
    assert result["evidence"]["status"] == "pass"


def test_server_ignoring_range_gets_a_full_download(mirror, tmp_path):
    server, files = mirror
    server.honour_range = False
    dest = tmp_path / "dest"
    dest.mkdir()
    name = "model-00001-of-00002.safetensors"
    (dest / am.partial_name(name)).write_bytes(files[name][:5000])
    result = ws.run(params(server.url, dest))
    assert result["resumed"] == []
    assert server.bytes_sent["models/demo-model/" + name] == len(files[name])
    assert_dest_matches(dest, files)


def test_corrupt_partial_is_discarded_and_file_fetched_again(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    dest.mkdir()
    name = "model-00001-of-00002.safetensors"
    (dest / am.partial_name(name)).write_bytes(b"\0" * 5000)  # not a prefix of the real file
    result = ws.run(params(server.url, dest))
    rel = "models/demo-model/" + name
    assert [r["range"] for r in server.requests if r["path"] == rel] == ["bytes=5000-", None]
    assert result["resumed"] == [] and result["fetched"] == sorted(files)
    assert_dest_matches(dest, files)


def test_symlink_planted_as_partial_is_not_written_through(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    dest.mkdir()
    precious = tmp_path / "precious"
    precious.write_bytes(b"do not overwrite")
    os.symlink(str(precious), str(dest / am.partial_name("config.json")))
    result = ws.run(params(server.url, dest))
    assert precious.read_bytes() == b"do not overwrite"
    assert result["resumed"] == [] and "config.json" in result["fetched"]
    assert_dest_matches(dest, files)


def test_server_stopping_mid_download_fails_cleanly_then_resumes(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    name = "model-00001-of-00002.safetensors"
    rel = "models/demo-model/" + name
    server.abort_after[rel] = 2 * am.CHUNK_SIZE
    server.stop_on_abort = True
    with pytest.raises(ws.WeightsSyncError) as err:
        ws.run(params(server.url, dest, workers=1))
    msg = str(err.value)
    assert msg.startswith("model demo-model:") and name in msg
    assert "interrupted" in msg or "cannot download" in msg
    assert not (dest / name).exists()
    assert err.value.result["evidence"]["status"] == "fail"
    partial = dest / am.partial_name(name)
    assert partial.exists() and partial.stat().st_size == 2 * am.CHUNK_SIZE
    assert not am.check_verified(str(dest))[0]
    server.thread.join(5)
    assert not server.thread.is_alive()  # the mirror really went away

    again = MirrorServer(tmp_path / "mirror")
    try:
        result = ws.run(params(again.url, dest))
        assert name in result["resumed"]
        assert [r["range"] for r in again.requests if r["path"] == rel] == [
            "bytes=%d-" % (2 * am.CHUNK_SIZE)]
        assert again.bytes_sent[rel] == len(files[name]) - 2 * am.CHUNK_SIZE
    finally:
        again.stop()
    assert_dest_matches(dest, files)
    assert am.check_verified(str(dest)) == (True, [])


def test_unreachable_mirror_fails_naming_model(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(ws.WeightsSyncError) as err:
        ws.run(params("http://127.0.0.1:%d" % port, tmp_path / "dest"))
    assert "model demo-model: manifest refused" in str(err.value)
    assert "cannot download" in str(err.value)
    assert err.value.result["evidence"]["status"] == "error"
    assert not (tmp_path / "dest").exists()


def test_dotdot_manifest_is_refused_before_touching_dest(mirror, tmp_path):
    server, _files = mirror
    bad = tmp_path / "mirror" / "models" / "evil" / "SHA256SUMS"
    bad.parent.mkdir(parents=True)
    bad.write_text("%s  ok.bin\n%s  ../demo-model/config.json\n" % ("a" * 64, "b" * 64))
    dest = tmp_path / "dest"
    with pytest.raises(ws.WeightsSyncError) as err:
        ws.run(params(server.url, dest, manifest="models/evil/SHA256SUMS"))
    msg = str(err.value)
    assert msg.startswith("model demo-model: manifest refused:")
    assert "models/evil/SHA256SUMS: line 2" in msg and "'..' component" in msg
    assert not dest.exists()
    assert server.file_requests() == []


def test_hash_mismatch_on_download_fails_naming_file_and_leaves_nothing(mirror, tmp_path):
    server, files = mirror
    model_dir = tmp_path / "mirror" / "models" / "demo-model"
    (model_dir / "config.json").write_bytes(b'{"architectures": ["Evil"]}\n')  # mirror tampered
    dest = tmp_path / "dest"
    with pytest.raises(ws.WeightsSyncError) as err:
        ws.run(params(server.url, dest))
    msg = str(err.value)
    assert msg.startswith("model demo-model: 1 of 4 download(s) failed: config.json:")
    assert "sha256 mismatch" in msg
    assert not (dest / "config.json").exists()
    assert not (dest / am.partial_name("config.json")).exists()
    result = err.value.result
    assert result["missing"] == ["config.json"] and result["verified_files"] == 3
    assert result["evidence"]["status"] == "fail"
    ok, problems = am.check_verified(str(dest))
    assert not ok and "last verification was not complete" in problems


def test_each_file_is_fsynced_before_its_rename_and_each_folder_once(mirror, tmp_path, monkeypatch):
    """Durability order: the verified bytes reach the disk before the final name exists."""
    server, files = mirror
    dest = tmp_path / "dest"
    events = []
    real_fsync, real_replace, real_fsync_dir = os.fsync, os.replace, ws.fsync_dir

    def fsync(fd):
        events.append(("fsync", os.readlink("/proc/self/fd/%d" % fd)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(src), str(dst)))
        return real_replace(src, dst)

    def fsync_dir(folder):
        events.append(("fsync_dir", str(folder)))
        return real_fsync_dir(folder)
    monkeypatch.setattr(ws.os, "fsync", fsync)
    monkeypatch.setattr(ws.os, "replace", replace)
    monkeypatch.setattr(ws, "fsync_dir", fsync_dir)
    ws.run(params(server.url, dest))
    assert_dest_matches(dest, files)
    for rel in files:
        final = str(dest / rel)
        partial = os.path.join(os.path.dirname(final), am.partial_name(os.path.basename(final)))
        renamed = events.index(("rename", partial, final))
        assert ("fsync", partial) in events[:renamed], rel
    dir_syncs = [e[1] for e in events if e[0] == "fsync_dir"]
    assert sorted(dir_syncs) == sorted({str(dest), str(dest / "tokenizer")})
    finals = set(str(dest / rel) for rel in files)
    last_rename = max(i for i, e in enumerate(events) if e[0] == "rename" and e[2] in finals)
    assert all(events.index(("fsync_dir", d)) > last_rename for d in dir_syncs)


def test_extras_reported_fail_evidence_and_removed_on_request(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    ws.run(params(server.url, dest))
    (dest / "swapped.safetensors").write_bytes(b"x")
    (dest / "extra_dir").mkdir()
    (dest / "extra_dir" / "hook.py").write_text("print(1)")
    warnings = []
    result = ws.run(params(server.url, dest), warn=warnings.append)
    assert result["extras"] == ["extra_dir/hook.py", "swapped.safetensors"]
    assert result["removed"] == [] and result["changed"] is False
    assert result["evidence"]["status"] == "fail"
    assert result["evidence"]["evidence"]["extras"] == result["extras"]
    assert warnings and "not in the manifest" in warnings[0]
    assert (dest / "swapped.safetensors").exists()

    result = ws.run(params(server.url, dest, remove_extras=True))
    assert result["removed"] == ["extra_dir/hook.py", "swapped.safetensors"]
    assert result["changed"] is True and result["evidence"]["status"] == "pass"
    assert not (dest / "swapped.safetensors").exists() and not (dest / "extra_dir").exists()
    assert_dest_matches(dest, files)
    assert am.check_verified(str(dest)) == (True, [])


def test_check_mode_touches_nothing(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    result = ws.run(params(server.url, dest), check_mode=True)
    assert result["changed"] is True and result["would_fetch"] == sorted(files)
    assert result["fetched"] == [] and not dest.exists()

    ws.run(params(server.url, dest))
    (dest / "config.json").write_bytes(b"tampered")
    (dest / "extra.bin").write_bytes(b"x")
    os.unlink(str(dest / "tokenizer" / "tokenizer.json"))
    before = tree(dest)
    del server.requests[:]
    result = ws.run(params(server.url, dest, remove_extras=True), check_mode=True)
    assert result["changed"] is True
    assert result["would_fetch"] == ["tokenizer/tokenizer.json"]
    assert result["would_replace"] == ["config.json"]
    assert result["would_remove"] == ["extra.bin"]
    assert result["fetched"] == result["replaced"] == result["removed"] == []
    assert result["evidence"]["status"] == "fail"
    assert tree(dest) == before
    assert server.file_requests() == []


def test_check_mode_reports_no_change_when_in_sync(mirror, tmp_path):
    server, _files = mirror
    dest = tmp_path / "dest"
    ws.run(params(server.url, dest))
    result = ws.run(params(server.url, dest), check_mode=True)
    assert result["changed"] is False and result["evidence"]["status"] == "pass"


def test_symlink_in_place_of_weight_is_replaced(mirror, tmp_path):
    server, files = mirror
    dest = tmp_path / "dest"
    ws.run(params(server.url, dest))
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(files["config.json"])
    os.unlink(str(dest / "config.json"))
    os.symlink(str(elsewhere), str(dest / "config.json"))
    result = ws.run(params(server.url, dest))
    assert result["replaced"] == ["config.json"]
    assert not os.path.islink(str(dest / "config.json"))
    assert_dest_matches(dest, files)


def test_manifest_pin_mismatch_is_refused(mirror, tmp_path):
    server, _files = mirror
    with pytest.raises(ws.WeightsSyncError, match="manifest_sha256 pins"):
        ws.run(params(server.url, tmp_path / "dest", manifest_sha256="c" * 64))
    assert not (tmp_path / "dest").exists()


def test_redirect_off_the_mirror_is_refused(mirror, tmp_path):
    server, _files = mirror
    port = server.server_address[1]
    server.redirects["models/moved/SHA256SUMS"] = "http://127.0.0.2:%d/%s" % (port, MANIFEST)
    with pytest.raises(ws.WeightsSyncError, match="redirect off the mirror"):
        ws.run(params(server.url, tmp_path / "dest", manifest="models/moved/SHA256SUMS"))
    server.redirects["models/moved/SHA256SUMS"] = "/" + MANIFEST  # same host: followed
    result = ws.run(params(server.url, tmp_path / "dest", manifest="models/moved/SHA256SUMS",
                           remove_extras=False), check_mode=True)
    assert len(result["would_fetch"]) == 4


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_https_mirror_with_internal_ca(mirror, tmp_path):
    """A mirror behind TLS: trusted through ca_path, refused without it."""
    server, files = mirror
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls = MirrorServer(tmp_path / "mirror")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    tls.httpd.socket = context.wrap_socket(tls.httpd.socket, server_side=True)
    url = tls.url.replace("http://", "https://")
    try:
        with pytest.raises(ws.WeightsSyncError, match="CERTIFICATE_VERIFY_FAILED"):
            ws.run(params(url, tmp_path / "dest"))
        result = ws.run(params(url, tmp_path / "dest", ca_path=str(cert)))
        assert result["fetched"] == sorted(files) and result["evidence"]["status"] == "pass"
        result = ws.run(params(url, tmp_path / "dest2", validate_certs=False))
        assert result["fetched"] == sorted(files)
    finally:
        tls.stop()


# --------------------------------------------------------------------------- verify mode

def test_verify_mode_with_local_manifest_never_downloads(mirror, tmp_path):
    server, _files = mirror
    dest = tmp_path / "dest"
    ws.run(params(server.url, dest))
    del server.requests[:]
    p = params(None, dest, mode="verify", manifest=None,
               manifest_local=str(dest / am.MANIFEST_COPY_NAME), verify="full")
    before = tree(dest)
    result = ws.run(p)
    assert result["changed"] is False and result["evidence"]["status"] == "pass"
    assert result["bytes_hashed"] > 0 and server.requests == []
    os.unlink(str(dest / "config.json"))
    result = ws.run(p)
    assert result["missing"] == ["config.json"] and result["evidence"]["status"] == "fail"
    assert result["fetched"] == [] and server.requests == []
    before.pop("config.json")
    assert tree(dest) == before


def test_verify_mode_reports_unreadable_manifest_as_error_record(tmp_path):
    p = params(None, tmp_path, mode="verify", manifest=None,
               manifest_local=str(tmp_path / "absent"))
    result = ws.run(p)
    assert result["evidence"]["status"] == "error"
    assert "model demo-model: manifest refused" in result["msg"]


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("over, fragment", [
    ({"name": "bad name"}, "name: 'bad name'"),
    ({"dest": "relative/dir"}, "dest: 'relative/dir' must be an absolute path"),
    ({"dest": "/"}, "dest: refusing '/'"),
    ({"workers": 0}, "workers must be an integer from 1 to 64"),
    ({"timeout": 0}, "timeout: 0"),
    ({"manifest": "../x/SHA256SUMS"}, "manifest: '../x/SHA256SUMS' is not a safe relative path"),
    ({"manifest": "/abs/SHA256SUMS"}, "manifest: '/abs/SHA256SUMS' is not a safe relative path"),
    ({"manifest": None}, "manifest: required"),
    ({"base_url": "ftp://mirror"}, "base_url: 'ftp://mirror' must be an http"),
    ({"base_url": None}, "base_url: required"),
    ({"base_url": "http://m/?q=1"}, "must not have a query"),
    ({"manifest_sha256": "xyz"}, "manifest_sha256: 'xyz' is not 64"),
    ({"manifest_local": "/tmp/x"}, "manifest_local: only allowed with mode=verify"),
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path: '/nonexistent/ca.pem' is not a file"),
])
def test_bad_parameters_are_refused_naming_the_parameter(tmp_path, over, fragment):
    with pytest.raises(ws.WeightsSyncError) as err:
        ws.run(params("http://127.0.0.1:9", tmp_path / "d", **over))
    assert fragment in str(err.value)


def test_urls_are_relative_to_the_manifest_folder():
    assert ws.file_url("http://m/base/", "models/x/SHA256SUMS", "sub/a b.bin") == \
        "http://m/base/models/x/sub/a%20b.bin"
    assert ws.manifest_url("https://m", "SHA256SUMS") == "https://m/SHA256SUMS"


# --------------------------------------------------------------------------- through Ansible

def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            ws.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_module_entry_point_check_mode_and_failure(mirror, tmp_path, capsys):
    server, files = mirror
    dest = tmp_path / "dest"
    args = dict(base_url=server.url, name=MODEL, manifest=MANIFEST, dest=str(dest),
                _ansible_check_mode=True)
    code, out = run_module(args, capsys)
    assert code == 0 and out["changed"] is True and out["would_fetch"] == sorted(files)
    assert not dest.exists()
    args.update(_ansible_check_mode=False, manifest="models/none/SHA256SUMS")
    code, out = run_module(args, capsys)
    assert code == 1 and out["failed"] is True
    assert "model demo-model: manifest refused" in out["msg"] and "HTTP 404" in out["msg"]
    assert out["evidence"]["status"] == "error"


def test_check_cli_fails_after_a_synced_file_is_modified(mirror, tmp_path):
    server, _files = mirror
    dest = tmp_path / "dest"
    result = ws.run(params(server.url, dest))
    cmd = [sys.executable, CLI, "check", "--dest", str(dest),
           "--manifest-sha256", result["manifest_sha256"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with open(str(dest / "model-00002-of-00002.safetensors"), "r+b") as fileobj:
        fileobj.write(b"\x00")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "model-00002-of-00002.safetensors: changed since verification" in proc.stderr
    assert "NOT verified, refusing" in proc.stderr
