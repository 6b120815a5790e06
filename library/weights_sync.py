#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: copy model weights from the internal mirror, verified by sha256."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: weights_sync
short_description: Copy model weights from the internal mirror and verify them against a sha256 manifest
description:
  - Downloads a model's C(sha256sum)-format manifest from the internal mirror, then makes the
    destination folder hold exactly the files it lists, each one verified by sha256.
  - Files are downloaded to a hidden C(.<file>.partial) name in the target folder, hashed while
    they stream, and renamed to their final name (after fsync) only if the hash matches, so a
    final name never holds unverified bytes. An interrupted download is resumed with an HTTP
    Range request on the next run; a server that ignores Range (status 200 instead of 206) gets
    a full download instead.
  - A present file is kept when it verifies. In C(verify=cache) mode a file whose size, mtime,
    ctime and inode are unchanged since it was last verified, and whose expected hash is the one
    verified then, is accepted without reading it (see C(module_utils/airgap_manifest.py)); a
    re-run costs one stat per file, not a read of every byte. C(verify=full) re-hashes every byte.
  - A corrupted present file is detected, fetched again and listed in RV(replaced).
  - After a sync the module stores the manifest as C(<dest>/.airgap-manifest) and the
    verification record as C(<dest>/.airgap-verified.json). The vLLM unit's C(ExecStartPre) runs
    C(python3 airgap_manifest.py check --dest <dest>), which reads no weights and refuses to start
    the server unless the folder is exactly what was last fully verified.
  - Extra files (in the destination but not in the manifest) are reported in RV(extras) and make
    the WEIGHTS-INTEGRITY evidence C(fail), because an unlisted file in a model folder could be a
    substituted weight or an injected config that the server would load. They are deleted only
    with O(remove_extras=true).
  - C(mode=verify) never downloads and never writes; it is the read-only check used by
    C(playbooks/audit.yml). Integrity problems are reported in RV(evidence) rather than failing
    the task, so the audit goes on and the report shows them.
  - Uses only the Python standard library (urllib). Proxy variables in the environment are
    ignored and redirects to another host are refused, so the mirror is the only source.
version_added: "1.0.0"
author:
  - contributors to this project
options:
  mode:
    description:
      - C(sync) downloads what is missing or wrong. C(verify) only verifies, never changes anything.
    type: str
    choices: [sync, verify]
    default: sync
  base_url:
    description:
      - Base URL of the internal model mirror (C(http) or C(https)), e.g. C(airgap_mirror_url).
      - Required unless O(mode=verify) with O(manifest_local).
    type: str
  name:
    description: Model name, used in messages and evidence (letters, digits, C(.), C(_), C(-)).
    type: str
    required: true
  manifest:
    description:
      - Path of the manifest on the mirror, relative to O(base_url), e.g. C(models/demo-model/SHA256SUMS).
      - Paths listed in it are relative to its folder on the mirror and to O(dest).
      - Required unless O(manifest_local) is given in O(mode=verify).
    type: str
  manifest_local:
    description:
      - Path on the managed host of a manifest to verify against, instead of fetching O(manifest).
      - Only with O(mode=verify).
    type: path
  manifest_sha256:
    description:
      - Expected sha256 of the manifest file itself. When set, a manifest with another hash is
        refused before any file is touched. Pins the model version independently of the transport.
    type: str
  dest:
    description: Absolute path of the model folder on the managed host.
    type: path
    required: true
  verify:
    description:
      - C(cache) trusts the verification record for files whose identity is unchanged; C(full)
        re-hashes every file.
    type: str
    choices: [cache, full]
    default: cache
  workers:
    description: Files hashed or downloaded in parallel (1 to 64).
    type: int
    default: 2
  remove_extras:
    description: Delete files in O(dest) that the manifest does not list.
    type: bool
    default: false
  timeout:
    description: Seconds to wait to connect and for each read from the mirror.
    type: int
    default: 60
  validate_certs:
    description: Verify the mirror's TLS certificate (HTTPS only).
    type: bool
    default: true
  ca_path:
    description: PEM file of the CA that signed the mirror's certificate (HTTPS only).
    type: path
notes:
  - Supports check mode; it reports RV(would_fetch), RV(would_replace) and RV(would_remove) and
    writes nothing (no download, no verification record).
  - The destination keeps its files readable by all (0644), since the vLLM container reads them
    as an unprivileged user.
seealso:
  - name: airgap_manifest.py
    description: C(module_utils/airgap_manifest.py), the manifest parser, hasher and C(check) CLI.
"""

EXAMPLES = r"""
- name: Copy and verify demo-model from the mirror
  weights_sync:
    base_url: "{{ airgap_mirror_url }}"
    name: demo-model
    manifest: models/demo-model/SHA256SUMS
    dest: /srv/models/demo-model
    workers: 2
  register: demo_weights

- name: Audit (read-only, re-hash everything)
  weights_sync:
    mode: verify
    verify: full
    name: demo-model
    manifest_local: /srv/models/demo-model/.airgap-manifest
    dest: /srv/models/demo-model
  register: demo_audit

- name: Pin the manifest and drop files it does not list
  weights_sync:
    base_url: https://mirror.hospital.internal
    ca_path: /etc/ssl/certs/hospital-ca.pem
    name: demo-model
    manifest: models/demo-model/SHA256SUMS
    manifest_sha256: "3f1c...e9"
    dest: /srv/models/demo-model
    remove_extras: true
"""

RETURN = r"""
fetched:
  description: Manifest paths that were missing and have been downloaded and verified.
  returned: always
  type: list
  elements: str
replaced:
  description: Manifest paths that were present but did not verify (wrong hash, symlink) and were downloaded again.
  returned: always
  type: list
  elements: str
resumed:
  description: Paths whose download continued a partial file with an HTTP Range request.
  returned: always
  type: list
  elements: str
would_fetch:
  description: In check mode, the paths that would be downloaded because they are missing.
  returned: always
  type: list
  elements: str
would_replace:
  description: In check mode, the paths that are present but do not verify.
  returned: always
  type: list
  elements: str
would_remove:
  description: In check mode with O(remove_extras), the extras that would be deleted.
  returned: always
  type: list
  elements: str
extras:
  description: Files in O(dest) not listed in the manifest (verification record, manifest copy and partials excepted).
  returned: always
  type: list
  elements: str
removed:
  description: Extras deleted because O(remove_extras=true).
  returned: always
  type: list
  elements: str
missing:
  description: Manifest paths absent from O(dest) at the end of the run.
  returned: always
  type: list
  elements: str
mismatches:
  description: Files that still do not verify at the end of the run (in check and verify mode, the ones found).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "model-00001.safetensors", "expected": "ab..", "actual": "cd.."}]
verified_files:
  description: Number of manifest files verified at the end of the run.
  returned: always
  type: int
files_total:
  description: Number of files the manifest lists.
  returned: always
  type: int
cache_hits:
  description: Files accepted from the verification record without hashing.
  returned: always
  type: int
bytes_hashed:
  description: Bytes of present files read and hashed to verify them (downloads not counted).
  returned: always
  type: int
bytes_downloaded:
  description: Bytes received from the mirror for weight files.
  returned: always
  type: int
method:
  description: How present files were verified, C(cache) or C(full).
  returned: always
  type: str
manifest_sha256:
  description: sha256 of the manifest used; pin it with O(manifest_sha256) or pass it to the C(check) CLI.
  returned: when the manifest could be read
  type: str
msg:
  description: In O(mode=verify), why the manifest could not be used (the evidence status is then C(error)).
  returned: when mode=verify and the manifest was unreadable or refused
  type: str
manifest_source:
  description: URL or local path the manifest was read from.
  returned: always
  type: str
evidence:
  description:
    - A WEIGHTS-INTEGRITY evidence record (role C(model_weights)) built with
      C(airgap_evidence.make_record). Status C(pass) only if every manifest file verified, no
      mismatch remains and no extra file remains; C(fail) otherwise; C(error) if the manifest could
      not be read or was refused.
  returned: always
  type: dict
"""

import contextlib
import hashlib
import os
import posixpath
import re
import ssl
import stat
import concurrent.futures

try:  # Python 3
    from urllib import request as urllib_request
    from urllib.error import HTTPError, URLError
    from urllib.parse import quote, urlsplit
    import http.client as http_client
except ImportError:  # pragma: no cover - targets run Python 3
    urllib_request = None

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_evidence import make_record
from ansible.module_utils.airgap_manifest import (
    CHUNK_SIZE, MANIFEST_COPY_NAME, ManifestError, atomic_write, build_cache,
    check_relative_path, check_workers, find_extras, fsync_dir, hash_stream, local_path,
    parse_manifest, partial_name, read_cache, same_cache, sha256_bytes, verify_entries,
    write_cache, file_identity)

CONTROL_ID = "WEIGHTS-INTEGRITY"
ROLE = "model_weights"
MAX_MANIFEST_BYTES = 16 << 20  # a manifest of a million files is ~100 MB; 16 MiB is plenty for models
WRITEBACK_WINDOW = 8 << 20     # start disk writeback every 8 MiB of a download
EVIDENCE_LIST_LIMIT = 100      # keep reports readable; counts are always complete
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
EXTRAS_POLICY = ("an unlisted file in a model folder could be a substituted weight or config "
                 "that the server would load, so extras fail this control until removed")

ARG_SPEC = dict(
    mode=dict(type="str", choices=["sync", "verify"], default="sync"),
    base_url=dict(type="str"),
    name=dict(type="str", required=True),
    manifest=dict(type="str"),
    manifest_local=dict(type="path"),
    manifest_sha256=dict(type="str"),
    dest=dict(type="path", required=True),
    verify=dict(type="str", choices=["cache", "full"], default="cache"),
    workers=dict(type="int", default=2),
    remove_extras=dict(type="bool", default=False),
    timeout=dict(type="int", default=60),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
)


class WeightsSyncError(Exception):
    """A failure to report with fail_json; ``result`` carries what was done so far."""

    def __init__(self, msg, result=None):
        Exception.__init__(self, msg)
        self.result = result or {}


class FetchError(Exception):
    """One file could not be downloaded and verified."""

    def __init__(self, msg, resumed=False, mismatch=False, received=0):
        Exception.__init__(self, msg)
        self.resumed = resumed
        self.mismatch = mismatch
        self.received = received


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

def validate_params(p):
    """Raise WeightsSyncError naming the parameter for any bad input."""
    def bad(msg):
        raise WeightsSyncError(msg)

    if not p.get("name") or not NAME_RE.match(p["name"]):
        bad("name: %r must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
            % (p.get("name"),))
    model = "model %s: " % p["name"]
    if not p.get("dest") or not os.path.isabs(p["dest"]):
        bad(model + "dest: %r must be an absolute path" % (p.get("dest"),))
    if os.path.normpath(p["dest"]) == "/":
        bad(model + "dest: refusing '/' as a model folder")
    try:
        check_workers(p.get("workers"))
    except ValueError as exc:
        bad(model + str(exc))
    if not isinstance(p.get("timeout"), int) or p["timeout"] < 1:
        bad(model + "timeout: %r must be a positive number of seconds" % (p.get("timeout"),))
    if p.get("manifest_sha256") and not HEX64_RE.match(p["manifest_sha256"]):
        bad(model + "manifest_sha256: %r is not 64 hexadecimal digits" % (p["manifest_sha256"],))
    if p.get("manifest_local"):
        if p.get("mode") != "verify":
            bad(model + "manifest_local: only allowed with mode=verify (sync needs the mirror's manifest)")
        return
    if not p.get("manifest"):
        bad(model + "manifest: required (path of the manifest on the mirror, relative to base_url)")
    try:
        check_relative_path(p["manifest"])
    except ValueError as exc:
        bad(model + "manifest: %r is not a safe relative path: %s" % (p["manifest"], exc))
    _validate_base_url(p, model)


def _validate_base_url(p, model):
    url = p.get("base_url")
    if not url:
        raise WeightsSyncError(model + "base_url: required (URL of the internal model mirror)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WeightsSyncError(model + "base_url: %r must be an http:// or https:// URL with a host" % url)
    if parts.query or parts.fragment:
        raise WeightsSyncError(model + "base_url: %r must not have a query or fragment" % url)
    if p.get("ca_path") and not os.path.isfile(p["ca_path"]):
        raise WeightsSyncError(model + "ca_path: %r is not a file" % p["ca_path"])


def manifest_url(base_url, manifest):
    """URL of the manifest on the mirror."""
    return base_url.rstrip("/") + "/" + quote(manifest, safe="/")


def file_url(base_url, manifest, relpath):
    """URL of a listed file: relative to the manifest's folder on the mirror."""
    return manifest_url(base_url, posixpath.join(posixpath.dirname(manifest), relpath))


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class _SameHostRedirect(urllib_request.HTTPRedirectHandler):
    """Follow redirects only within the mirror (same scheme and host:port)."""

    def __init__(self, origin):
        urllib_request.HTTPRedirectHandler.__init__(self)
        self.origin = origin

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urlsplit(newurl)
        if (target.scheme, target.netloc) != self.origin:
            raise HTTPError(newurl, code, "redirect off the mirror to %s refused" % newurl,
                            headers, fp)
        return urllib_request.HTTPRedirectHandler.redirect_request(
            self, req, fp, code, msg, headers, newurl)


def build_opener(base_url, validate_certs=True, ca_path=None):
    """A urllib opener that ignores proxy variables and stays on the mirror."""
    if validate_certs:
        context = ssl.create_default_context(cafile=ca_path)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    parts = urlsplit(base_url)
    return urllib_request.build_opener(
        urllib_request.ProxyHandler({}),
        urllib_request.HTTPSHandler(context=context),
        _SameHostRedirect((parts.scheme, parts.netloc)))


def fetch_manifest(opener, url, timeout):
    """Download the manifest (bounded size); return its bytes."""
    try:
        with contextlib.closing(opener.open(url, timeout=timeout)) as resp:
            data = resp.read(MAX_MANIFEST_BYTES + 1)
    except HTTPError as exc:
        raise ManifestError("%s: HTTP %s %s" % (url, exc.code, exc.reason))
    except (URLError, OSError, http_client.HTTPException) as exc:
        raise ManifestError("%s: cannot download: %s" % (url, getattr(exc, "reason", exc)))
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("%s: larger than %d bytes, refused" % (url, MAX_MANIFEST_BYTES))
    return data


def _hash_partial(path):
    """Hash what a previous run left in a partial file (to continue the digest)."""
    with open(path, "rb", buffering=0) as fileobj:
        return hash_stream(fileobj)


def _open_range(opener, url, offset, timeout):
    """Request ``url`` from ``offset``; return (response, offset actually used)."""
    req = urllib_request.Request(url)
    if offset:
        req.add_header("Range", "bytes=%d-" % offset)
    try:
        resp = opener.open(req, timeout=timeout)
    except HTTPError as exc:
        if offset and exc.code == 416:
            return None, offset  # partial is as long as (or longer than) the file: start over
        raise FetchError("%s: HTTP %s %s" % (url, exc.code, exc.reason))
    except (URLError, OSError, http_client.HTTPException) as exc:
        raise FetchError("%s: cannot download: %s" % (url, getattr(exc, "reason", exc)))
    status = resp.getcode()
    if offset and status == 206:
        match = CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == offset:
            return resp, offset
        resp.close()
        return None, offset  # a range we did not ask for: start over
    if status == 200:
        return resp, 0  # the server ignored Range (or none was asked): full body
    resp.close()
    raise FetchError("%s: unexpected HTTP status %s" % (url, status))


def _check_space(folder, needed, url):
    """Fail early rather than fill the disk halfway through a large shard."""
    try:
        vfs = os.statvfs(folder)
    except OSError:
        return
    free = vfs.f_bavail * vfs.f_frsize
    if needed > free:
        raise FetchError("%s: needs %d bytes, only %d free in %s" % (url, needed, free, folder))


def _start_writeback(fileobj, begin, end):
    """Ask the kernel to start writing ``begin..end`` to disk now; return ``end``.

    On Linux, POSIX_FADV_DONTNEED starts asynchronous writeback of dirty pages
    (and drops pages that are already clean). Without it a whole shard sits
    dirty in memory and the fsync before the rename waits for all of it; with
    it the disk writes while the network reads, and the fsync only waits for
    the last window.
    """
    if hasattr(os, "posix_fadvise"):
        fileobj.flush()
        try:
            os.posix_fadvise(fileobj.fileno(), begin, end - begin, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # advisory only
    return end


def _stream_to(resp, fileobj, hasher, url):
    """Copy the response body into ``fileobj`` in fixed chunks, hashing as it goes."""
    expected = resp.headers.get("Content-Length")
    expected = int(expected) if expected and expected.isdigit() else None
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    received = 0
    kicked = start = fileobj.tell()
    try:
        while True:
            n = resp.readinto(buf)
            if not n:
                break
            hasher.update(view[:n])
            fileobj.write(view[:n])
            received += n
            if start + received - kicked >= WRITEBACK_WINDOW:
                kicked = _start_writeback(fileobj, kicked, start + received)
    except (OSError, http_client.HTTPException) as exc:
        raise FetchError("%s: download interrupted after %d bytes (%s); the partial file is kept "
                         "and the next run resumes it" % (url, received, exc))
    if expected is not None and received != expected:
        raise FetchError("%s: download interrupted after %d of %d bytes (connection closed); the "
                         "partial file is kept and the next run resumes it" % (url, received, expected))
    return received


def _usable_partial(partial):
    """Size of a partial download that can be continued; 0 (after removing it) otherwise."""
    try:
        st = os.lstat(partial)
    except FileNotFoundError:
        return 0
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    os.unlink(partial)  # a symlink or other oddity under our temp name: never write through it
    return 0


def _open_partial(partial, append):
    """Open the partial file without following a symlink planted under its name."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    return os.fdopen(os.open(partial, flags, 0o600), "ab" if append else "wb")


def _fetch_once(opener, url, dest, relpath, expected, timeout, allow_resume):
    """One attempt: (resume and) download and hash into the partial file.

    Returns (bytes received, resumed, partial path) once the sha256 matches; the
    partial is not yet durable nor renamed (see ``commit_file``).
    """
    final = local_path(dest, relpath)
    folder = os.path.dirname(final)
    partial = os.path.join(folder, partial_name(os.path.basename(final)))
    offset = _usable_partial(partial) if allow_resume else 0
    resp, used = _open_range(opener, url, offset, timeout)
    if resp is None:  # the partial cannot be continued: discard it and fetch everything
        os.unlink(partial)
        offset = 0
        resp, used = _open_range(opener, url, 0, timeout)
    resumed = used > 0
    with contextlib.closing(resp):
        if resumed:
            hasher, have = _hash_partial(partial)
            if have != used:
                raise FetchError("%s: partial file changed while resuming" % url)
            fileobj = _open_partial(partial, append=True)
        else:
            hasher = hashlib.sha256()
            fileobj = _open_partial(partial, append=False)
        with fileobj:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit():
                _check_space(folder, int(length), url)
            received = _stream_to(resp, fileobj, hasher, url)
    digest = hasher.hexdigest()
    if digest != expected:
        os.unlink(partial)
        raise FetchError("%s: sha256 mismatch after download: expected %s, got %s; partial deleted"
                         % (url, expected, digest), resumed=resumed, mismatch=True,
                         received=received)
    return received, resumed, partial


def download_file(opener, url, dest, relpath, expected, timeout):
    """Download one listed file into its partial name; return (bytes, resumed, partial).

    If a resumed download ends in a hash mismatch the old partial was the
    culprit (left by a different file version or damaged): it is discarded
    and the file is downloaded once more from the start.
    """
    os.makedirs(os.path.dirname(local_path(dest, relpath)), mode=0o755, exist_ok=True)
    try:
        return _fetch_once(opener, url, dest, relpath, expected, timeout, allow_resume=True)
    except FetchError as exc:
        if not (exc.resumed and exc.mismatch):
            raise
        wasted = exc.received
    received, _resumed, partial = _fetch_once(opener, url, dest, relpath, expected, timeout,
                                              allow_resume=False)
    return wasted + received, False, partial


def commit_file(partial, final):
    """Make a verified partial durable, then give it its final name; return its stat.

    The data is fsynced before the rename, so a crash can never leave a final
    name pointing at bytes that were not verified. The folder's fsync (the
    durability of the name itself) is left to the caller, once per folder:
    losing a rename in a crash only means the next run finds the complete
    partial and fetches it again.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(partial, flags)
    try:
        os.fsync(fd)
        os.fchmod(fd, 0o644)
    finally:
        os.close(fd)
    os.replace(partial, final)
    return os.lstat(final)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def empty_result(p):
    """Every documented return key, before anything happened."""
    return dict(changed=False, fetched=[], replaced=[], resumed=[], would_fetch=[],
                would_replace=[], would_remove=[], extras=[], removed=[], missing=[],
                mismatches=[], verified_files=0, files_total=0, cache_hits=0, bytes_hashed=0,
                bytes_downloaded=0, method=p.get("verify") or "cache", manifest_source="",
                evidence=None)


def _capped(items):
    items = list(items)
    if len(items) <= EVIDENCE_LIST_LIMIT:
        return items
    return items[:EVIDENCE_LIST_LIMIT] + ["... and %d more" % (len(items) - EVIDENCE_LIST_LIMIT)]


def integrity_record(p, result, error=None):
    """Build the WEIGHTS-INTEGRITY evidence record from a result."""
    remaining_extras = sorted(set(result["extras"]) - set(result["removed"]))
    evidence = {
        "model": p.get("name"),
        "dest": p.get("dest"),
        "mode": p.get("mode"),
        "manifest_source": result.get("manifest_source"),
        "manifest_sha256": result.get("manifest_sha256"),
        "method": result["method"],
        "files_total": result["files_total"],
        "files_verified": result["verified_files"],
        "cache_hits": result["cache_hits"],
        "bytes_hashed": result["bytes_hashed"],
        "missing": _capped(result["missing"]),
        "mismatches": _capped(result["mismatches"]),
        "extras": _capped(remaining_extras),
        "extras_policy": EXTRAS_POLICY,
        "fetched": _capped(result["fetched"]),
        "replaced": _capped(result["replaced"]),
        "removed": _capped(result["removed"]),
    }
    if error:
        evidence["error"] = error
        status = "error"
    elif (result["files_total"] > 0 and result["verified_files"] == result["files_total"]
          and not result["mismatches"] and not result["missing"] and not remaining_extras):
        status = "pass"
    else:
        status = "fail"
    return make_record(CONTROL_ID, ROLE, status, evidence)


def _load_manifest(p, result):
    """Return (entries, manifest bytes); records the source in ``result``."""
    if p.get("manifest_local"):
        source = p["manifest_local"]
        result["manifest_source"] = source
        try:
            with open(source, "rb") as fileobj:
                data = fileobj.read(MAX_MANIFEST_BYTES + 1)
        except OSError as exc:
            raise ManifestError("%s: cannot read: %s" % (source, exc.strerror or exc))
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError("%s: larger than %d bytes, refused" % (source, MAX_MANIFEST_BYTES))
    else:
        source = manifest_url(p["base_url"], p["manifest"])
        result["manifest_source"] = source
        opener = build_opener(p["base_url"], p["validate_certs"], p.get("ca_path"))
        data = fetch_manifest(opener, source, p["timeout"])
    result["manifest_sha256"] = sha256_bytes(data)
    if p.get("manifest_sha256") and result["manifest_sha256"] != p["manifest_sha256"].lower():
        raise ManifestError("%s: sha256 is %s, but manifest_sha256 pins %s"
                            % (source, result["manifest_sha256"], p["manifest_sha256"].lower()))
    return parse_manifest(data, source), data


def _classify(report):
    """Split a local report into (to_fetch, to_replace); raise on what cannot be repaired."""
    to_fetch = list(report.missing)
    to_replace = [m["path"] for m in report.mismatches]
    for problem in report.problems:
        # A symlink or a file rewritten under our feet is replaced by a verified copy;
        # a directory or an unreadable path needs a human.
        if problem.kind in ("symlink", "changed") and "folder on its path" not in problem.detail:
            to_replace.append(problem.path)
        else:
            raise FetchError("%s: %s; fix it by hand" % (problem.path, problem.detail))
    return sorted(to_fetch), sorted(to_replace)


def run(p, check_mode=False, warn=None):
    """Do the whole job for one model; return the result dict or raise WeightsSyncError."""
    validate_params(p)
    warn = warn or (lambda msg: None)
    result = empty_result(p)
    model = "model %s" % p["name"]
    try:
        entries, manifest_data = _load_manifest(p, result)
    except ManifestError as exc:
        return _fail_or_report(p, result, "%s: manifest refused: %s" % (model, exc))
    result["files_total"] = len(entries)
    dest = p["dest"]
    if os.path.lexists(dest) and not os.path.isdir(dest):
        return _fail_or_report(p, result, "%s: dest %s exists and is not a folder" % (model, dest))
    cache, _reason = read_cache(dest) if os.path.isdir(dest) else (None, None)
    report = verify_entries(dest, entries, mode=p["verify"], workers=p["workers"],
                            cache_files=cache["files"] if cache else None)
    extras = find_extras(dest, entries)
    _fill_from_report(result, report, extras)
    if p["mode"] == "verify":
        result["evidence"] = integrity_record(p, result)
        return result
    try:
        to_fetch, to_replace = _classify(report)
    except FetchError as exc:
        return _fail_or_report(p, result, "%s: %s" % (model, exc))
    if check_mode:
        return _check_mode_result(p, result, report, to_fetch, to_replace, extras, cache,
                                  manifest_data)
    return _sync(p, result, entries, report, to_fetch, to_replace, extras, cache, manifest_data,
                 warn)


def _fail_or_report(p, result, msg):
    """Sync fails the task; the read-only audit reports an error record instead."""
    result["evidence"] = integrity_record(p, result, error=msg)
    if p["mode"] == "verify":
        result["msg"] = msg
        return result
    raise WeightsSyncError(msg, result)


def _fill_from_report(result, report, extras):
    result.update(
        method=report.method, verified_files=len(report.ok), cache_hits=len(report.cache_hits),
        bytes_hashed=report.bytes_hashed, missing=list(report.missing),
        mismatches=list(report.mismatches), extras=list(extras))
    # A problem path (symlink, unreadable) is neither verified nor a plain mismatch.
    result["mismatches"] += [{"path": pr.path, "expected": None, "actual": pr.detail}
                             for pr in report.problems]


def _check_mode_result(p, result, report, to_fetch, to_replace, extras, cache, manifest_data):
    """Report what a real run would do; write nothing."""
    result["would_fetch"] = to_fetch
    result["would_replace"] = to_replace
    result["would_remove"] = list(extras) if p["remove_extras"] else []
    new_cache = build_cache(result["manifest_sha256"], report.ok,
                            complete=not (to_fetch or to_replace))
    result["changed"] = bool(to_fetch or to_replace or result["would_remove"]
                             or _manifest_copy_differs(p["dest"], manifest_data)
                             or not same_cache(cache, new_cache))
    result["evidence"] = integrity_record(p, result)
    return result


def _manifest_copy_differs(dest, data):
    try:
        with open(os.path.join(dest, MANIFEST_COPY_NAME), "rb") as fileobj:
            return fileobj.read(len(data) + 1) != data
    except OSError:
        return True


def _download_all(p, entries, paths):
    """Download ``paths`` on up to ``workers`` threads; return (done, errors).

    The download threads only receive, hash and write; this thread makes each
    verified file durable and renames it as it completes. The threads never
    wait for the disk's flush, and the files that complete while one fsync
    waits share the filesystem's next journal commit instead of forcing one
    each.
    """
    by_path = dict((e.path, e) for e in entries)
    opener = build_opener(p["base_url"], p["validate_certs"], p.get("ca_path"))
    done, errors, folders = {}, {}, set()
    with concurrent.futures.ThreadPoolExecutor(max_workers=p["workers"]) as pool:
        futures = {}
        for path in paths:
            url = file_url(p["base_url"], p["manifest"], path)
            futures[pool.submit(download_file, opener, url, p["dest"], path, by_path[path].sha256,
                                p["timeout"])] = path
        for future in concurrent.futures.as_completed(futures):
            path = futures[future]
            try:
                received, resumed, partial = future.result()
                final = local_path(p["dest"], path)
                st = commit_file(partial, final)
                folders.add(os.path.dirname(final))
                done[path] = (received, resumed, st)
            except (FetchError, OSError) as exc:
                errors[path] = str(exc)
    for folder in sorted(folders):
        fsync_dir(folder)
    return done, errors


def _remove_extras(dest, extras):
    """Delete extra files (never folders' worth of listed files); return what went."""
    removed = []
    for rel in extras:
        path = local_path(dest, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            continue
        os.unlink(path)
        removed.append(rel)
        _prune_empty_parents(dest, os.path.dirname(path))
    return removed


def _prune_empty_parents(dest, folder):
    dest = os.path.normpath(dest)
    while os.path.normpath(folder) != dest and folder.startswith(dest + os.sep):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)


def _sync(p, result, entries, report, to_fetch, to_replace, extras, cache, manifest_data, warn):
    """Download what is needed, record the verification, remove extras if asked."""
    dest = p["dest"]
    model = "model %s" % p["name"]
    if not os.path.isdir(dest):
        os.makedirs(dest, mode=0o755)
        result["changed"] = True
    done, errors = _download_all(p, entries, to_fetch + to_replace)
    ok = dict(report.ok)
    by_path = dict((e.path, e.sha256) for e in entries)
    for path, (received, resumed, st) in sorted(done.items()):
        record = file_identity(st)
        record["sha256"] = by_path[path]
        ok[path] = record
        result["bytes_downloaded"] += received
        if resumed:
            result["resumed"].append(path)
    result["fetched"] = sorted(p_ for p_ in to_fetch if p_ in done)
    result["replaced"] = sorted(p_ for p_ in to_replace if p_ in done)
    complete = len(ok) == len(entries)
    if _manifest_copy_differs(dest, manifest_data):
        atomic_write(os.path.join(dest, MANIFEST_COPY_NAME), manifest_data)
        result["changed"] = True
    new_cache = build_cache(result["manifest_sha256"], ok, complete)
    if not same_cache(cache, new_cache):
        write_cache(dest, new_cache)
        result["changed"] = True
    if done:
        result["changed"] = True
    if p["remove_extras"] and extras:
        result["removed"] = _remove_extras(dest, extras)
        result["changed"] = result["changed"] or bool(result["removed"])
    elif extras:
        warn("%s: %d file(s) in %s are not in the manifest (%s); WEIGHTS-INTEGRITY fails until "
             "they are removed (remove_extras: true)" % (model, len(extras), dest,
                                                         ", ".join(extras[:5])))
    result["verified_files"] = len(ok)
    result["missing"] = sorted(p_ for p_ in to_fetch if p_ not in done)
    failed = set(errors)
    result["mismatches"] = [m for m in result["mismatches"] if m["path"] in failed]
    if errors:
        msg = "%s: %d of %d download(s) failed: %s" % (
            model, len(errors), len(to_fetch) + len(to_replace),
            "; ".join("%s: %s" % (k, v) for k, v in sorted(errors.items())))
        result["evidence"] = integrity_record(p, result)
        raise WeightsSyncError(msg, result)
    result["evidence"] = integrity_record(p, result)
    return result


def main():
    """Module entry point."""
    module = AnsibleModule(argument_spec=ARG_SPEC, supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode, warn=module.warn)
    except WeightsSyncError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    if result.get("msg"):
        module.warn(result["msg"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
