# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model weight manifests: parsing, streamed hashing, verification cache.

A manifest is in ``sha256sum`` format: one ``<64 hex>  <relative path>`` line
per file (``<hex> *<path>``, the binary marker, is accepted too). Listed paths
are relative to the manifest's folder on the mirror and to the model's
destination folder on the GPU host.

Three users share this file, so it imports nothing outside the standard
library and nothing from Ansible:

* ``library/weights_sync.py`` (through ``ansible.module_utils``) downloads and
  verifies weights and records what it verified;
* each vLLM unit's ``ExecStartPre`` runs ``python3 airgap_manifest.py check
  --dest DIR``, which refuses to let the server start unless the destination
  is exactly what was last verified (fail closed);
* ``tools/model_bundle.py`` builds and re-checks manifests on the connected
  staging machine.

The verification cache
----------------------
Weights are hundreds of GB, so re-hashing on every run or every service start
is not an option. After a file's sha256 has been computed and matched, its
identity (size, mtime_ns, ctime_ns, inode) is stored with the verified hash in
``<dest>/.airgap-verified.json`` (written atomically), together with the
sha256 of the manifest it was checked against. A later ``cache`` run accepts
a file without reading it when its identity is unchanged and the manifest
still expects the hash that was verified, so a re-check costs O(files), not
O(bytes). ctime is included because user space cannot set it: rewriting a
file and restoring its mtime (``touch -d``) still invalidates the entry.
Copying the folder elsewhere changes inodes and forces one full re-hash,
which is the safe direction. ``full`` mode ignores the cache and re-hashes.

Reserved names inside a destination (never treated as weights or extras):
the cache file (and its temporary siblings), the manifest copy
``.airgap-manifest`` that weights_sync stores beside the weights, and partial
downloads named ``.<file name>.partial``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import collections
import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import stat
import sys
import tempfile

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough for hashlib to drop the GIL, small enough to bound memory
CACHE_NAME = ".airgap-verified.json"
MANIFEST_COPY_NAME = ".airgap-manifest"
DEFAULT_MANIFEST_NAME = "SHA256SUMS"
CACHE_FORMAT = 1
MAX_WORKERS = 64

_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
_LINE_RE = re.compile(r"^(\S+) ([ *])(.*)$")
_PARTIAL_RE = re.compile(r"^\..+\.partial$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

ManifestEntry = collections.namedtuple("ManifestEntry", "path sha256 line")


class ManifestError(ValueError):
    """A manifest that cannot be trusted: malformed, unsafe or empty."""


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

def partial_name(basename):
    """Return the hidden temporary name used while ``basename`` is downloaded."""
    return "." + basename + ".partial"


def is_reserved(relpath):
    """True for names this tool owns inside a destination (cache, manifest copy, partials)."""
    parts = relpath.split("/")
    # Prefix match: atomic_write's temporary siblings (NAME.XXXX.tmp) are ours too.
    if len(parts) == 1 and (parts[0].startswith(MANIFEST_COPY_NAME) or parts[0].startswith(CACHE_NAME)):
        return True
    return bool(_PARTIAL_RE.match(parts[-1]))


def check_relative_path(path):
    """Return ``path`` normalised, or raise ValueError saying why it is unsafe.

    Paths come from a file fetched over the network and are joined onto a
    destination folder, so anything that could leave that folder or be read
    two ways is refused rather than repaired.
    """
    if path == "":
        raise ValueError("empty path")
    if "\x00" in path:
        raise ValueError("path contains a NUL byte")
    if "\\" in path:
        raise ValueError("path contains a backslash (only '/' separates folders)")
    if _CONTROL_RE.search(path):
        raise ValueError("path contains a control character")
    if path.startswith("/"):
        raise ValueError("absolute path (must be relative to the manifest's folder)")
    parts = path.split("/")
    if ".." in parts:
        raise ValueError("path has a '..' component")
    # "./x" is what `sha256sum ./x` prints; dropping "." is unambiguous.
    parts = [p for p in parts if p != "."]
    if not parts or "" in parts:
        raise ValueError("path has an empty component (a '//' or a trailing '/')")
    norm = "/".join(parts)
    if is_reserved(norm):
        raise ValueError("path uses a name reserved for the verifier (%s, %s or .*.partial)"
                         % (CACHE_NAME, MANIFEST_COPY_NAME))
    return norm


def _decode(text, source):
    """Return manifest text as str; bytes must be UTF-8."""
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError("%s: not UTF-8 text (byte %d)" % (source, exc.start))
    return text


def _parse_line(line, lineno, source):
    """Parse one non-blank manifest line into (sha256, path)."""
    where = "%s: line %d" % (source, lineno)
    if line.startswith("\\"):
        raise ManifestError("%s: escaped file name (leading backslash) is not supported" % where)
    if line.startswith("SHA256 (") or line.startswith("SHA256(") or line.startswith("SHA512 ("):
        raise ManifestError("%s: BSD tag format; expected '<sha256>  <path>' as sha256sum prints" % where)
    match = _LINE_RE.match(line)
    if not match:
        raise ManifestError("%s: malformed line %r; expected '<sha256>  <path>'" % (where, line[:120]))
    digest, path = match.group(1), match.group(3)
    if not _HEX64_RE.match(digest):
        if _HEX_RE.match(digest):
            raise ManifestError("%s: checksum has %d hex digits; a SHA-256 has 64"
                                % (where, len(digest)))
        raise ManifestError("%s: checksum %r is not 64 hexadecimal digits" % (where, digest[:80]))
    try:
        path = check_relative_path(path)
    except ValueError as exc:
        raise ManifestError("%s: unsafe path %r: %s" % (where, path[:200], exc))
    return digest.lower(), path


def parse_manifest(text, source="manifest"):
    """Parse sha256sum-format ``text`` (str or UTF-8 bytes) into ManifestEntry tuples.

    ``source`` names the manifest in every error (a URL or a file path).
    Blank lines are skipped, CRLF line ends are accepted; anything else that
    is not a valid, safe, unique entry raises ManifestError naming the line.
    """
    text = _decode(text, source)
    if "\x00" in text:
        raise ManifestError("%s: contains a NUL byte" % source)
    entries = []
    seen = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip():
            continue
        digest, path = _parse_line(line, lineno, source)
        if path in seen:
            raise ManifestError("%s: line %d: duplicate path %r (first listed on line %d)"
                                % (source, lineno, path, seen[path]))
        seen[path] = lineno
        entries.append(ManifestEntry(path, digest, lineno))
    if not entries:
        raise ManifestError("%s: empty manifest (no files listed)" % source)
    _check_file_dir_clash(entries, source)
    return entries


def _check_file_dir_clash(entries, source):
    """Refuse a manifest that lists both ``a`` and ``a/b``: ``a`` cannot be both."""
    paths = {e.path: e.line for e in entries}
    for entry in entries:
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in paths:
                raise ManifestError("%s: line %d: %r is inside %r, which line %d lists as a file"
                                    % (source, entry.line, entry.path, prefix, paths[prefix]))


def format_manifest(pairs):
    """Render (path, sha256) pairs as sha256sum text, sorted by path."""
    return "".join("%s  %s\n" % (digest, path) for path, digest in sorted(pairs))


# ---------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------

def sha256_bytes(data):
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def hash_stream(fileobj, hasher=None, chunk_size=CHUNK_SIZE, progress=None):
    """Feed ``fileobj`` into ``hasher`` in fixed chunks; return (hasher, bytes read).

    One preallocated buffer is reused through readinto, so memory stays at
    ``chunk_size`` whatever the file size.
    """
    hasher = hasher or hashlib.sha256()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    total = 0
    while True:
        n = fileobj.readinto(buf)
        if not n:
            break
        hasher.update(view[:n])
        total += n
        if progress is not None:
            progress(n)
    return hasher, total


def sha256_file(path, chunk_size=CHUNK_SIZE, progress=None):
    """Return the hex sha256 of the file at ``path``, streamed in fixed chunks."""
    with open(path, "rb", buffering=0) as fileobj:
        return hash_stream(fileobj, chunk_size=chunk_size, progress=progress)[0].hexdigest()


def file_identity(st):
    """The stat fields that must not change for a cached verification to stay valid."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "inode": st.st_ino}


_IDENTITY_KEYS = ("size", "mtime_ns", "ctime_ns", "inode")


def _same_identity(cached, st):
    return all(cached.get(k) == v for k, v in file_identity(st).items())


class FileProblem(Exception):
    """A manifest path that cannot be verified as a plain file (kind says why)."""

    def __init__(self, path, kind, detail):
        Exception.__init__(self, "%s: %s" % (path, detail))
        self.path, self.kind, self.detail = path, kind, detail


def local_path(dest, relpath):
    """Join a checked relative manifest path onto ``dest``."""
    return os.path.join(dest, *relpath.split("/"))


def _check_inside(dest_real, dest, relpath):
    """Raise FileProblem if a folder on the way to ``relpath`` is a symlink out of dest."""
    parent = os.path.dirname(relpath)
    if not parent:
        return
    expected = os.path.join(dest_real, *parent.split("/"))
    if os.path.realpath(os.path.join(dest, *parent.split("/"))) != expected:
        raise FileProblem(relpath, "symlink", "a folder on its path is a symlink")


def stat_entry(dest, relpath, dest_real=None):
    """lstat a manifest path; return the stat, None if missing, or raise FileProblem."""
    dest_real = dest_real or os.path.realpath(dest)
    _check_inside(dest_real, dest, relpath)
    try:
        st = os.lstat(local_path(dest, relpath))
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise FileProblem(relpath, "not_regular", "a folder on its path is a file")
    except OSError as exc:
        raise FileProblem(relpath, "unreadable", "cannot stat: %s" % exc.strerror)
    if stat.S_ISLNK(st.st_mode):
        raise FileProblem(relpath, "symlink", "is a symlink, not a regular file")
    if stat.S_ISDIR(st.st_mode):
        raise FileProblem(relpath, "directory", "is a directory, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(relpath, "not_regular", "is not a regular file")
    return st


def hash_entry(dest, relpath, chunk_size=CHUNK_SIZE, progress=None):
    """Hash one file without following a final symlink; return (sha256, stat).

    The file is stat'ed through the open descriptor before and after reading,
    so a file rewritten while it is hashed is reported rather than cached
    under an identity that does not match what was read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(local_path(dest, relpath), flags)
    except OSError as exc:
        raise FileProblem(relpath, "unreadable", "cannot open: %s" % exc.strerror)
    with os.fdopen(fd, "rb", buffering=0) as fileobj:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FileProblem(relpath, "not_regular", "is not a regular file")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        try:
            hasher, nread = hash_stream(fileobj, chunk_size=chunk_size, progress=progress)
        except OSError as exc:
            raise FileProblem(relpath, "unreadable", "read error: %s" % exc.strerror)
        after = os.fstat(fd)
    if file_identity(before) != file_identity(after) or nread != after.st_size:
        raise FileProblem(relpath, "changed", "changed while it was being hashed")
    return hasher.hexdigest(), after


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------

class VerifyReport(object):
    """What a verification saw, per manifest path.

    ``ok`` maps path -> cache record (sha256 + identity) for every file that
    matched; ``missing``, ``mismatches`` (dicts with path/expected/actual) and
    ``problems`` (FileProblem) hold the rest.
    """

    def __init__(self, method):
        self.method = method
        self.ok = {}
        self.cache_hits = []
        self.hashed = []
        self.missing = []
        self.mismatches = []
        self.problems = []
        self.bytes_hashed = 0

    @property
    def complete(self):
        """True when every manifest entry matched."""
        return not (self.missing or self.mismatches or self.problems)

    def bytes_verified(self):
        """Total size of the files that matched."""
        return sum(rec["size"] for rec in self.ok.values())

    def sort(self):
        """Order every list by path so reports and results are deterministic."""
        self.cache_hits.sort()
        self.hashed.sort()
        self.missing.sort()
        self.mismatches.sort(key=lambda m: m["path"])
        self.problems.sort(key=lambda p: p.path)


def _cache_record(digest, st):
    rec = file_identity(st)
    rec["sha256"] = digest
    return rec


def _valid_cache_entry(rec):
    return (isinstance(rec, dict) and isinstance(rec.get("sha256"), str)
            and _HEX64_RE.match(rec["sha256"]) is not None
            and all(isinstance(rec.get(k), int) and not isinstance(rec.get(k), bool)
                    for k in _IDENTITY_KEYS))


def check_workers(workers):
    """Return ``workers`` as an int in 1..MAX_WORKERS or raise ValueError."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError("workers must be an integer from 1 to %d, got %r" % (MAX_WORKERS, workers))
    return workers


def verify_entries(dest, entries, mode="cache", workers=2, cache_files=None, progress=None,
                   hash_func=None):
    """Verify ``entries`` under ``dest``; return a VerifyReport. Writes nothing.

    ``mode`` is ``cache`` (accept files whose identity and expected hash
    match ``cache_files``, hash the rest) or ``full`` (hash everything).
    Hashing runs on at most ``workers`` threads; hashlib releases the GIL
    on 1 MiB updates, so threads use several cores. ``hash_func`` replaces
    hash_entry (tests count calls through it).
    """
    if mode not in ("cache", "full"):
        raise ValueError("mode must be 'cache' or 'full', got %r" % (mode,))
    check_workers(workers)
    hash_func = hash_func or hash_entry
    cache_files = cache_files if (mode == "cache" and isinstance(cache_files, dict)) else {}
    report = VerifyReport(mode)
    dest_real = os.path.realpath(dest)
    todo = []
    for entry in entries:
        try:
            st = stat_entry(dest, entry.path, dest_real)
        except FileProblem as exc:
            report.problems.append(exc)
            continue
        if st is None:
            report.missing.append(entry.path)
            continue
        cached = cache_files.get(entry.path)
        if (_valid_cache_entry(cached) and cached["sha256"] == entry.sha256
                and _same_identity(cached, st)):
            report.ok[entry.path] = _cache_record(entry.sha256, st)
            report.cache_hits.append(entry.path)
            continue
        todo.append((st.st_size, entry))
    # Largest first, so one huge shard does not start last and run alone.
    todo.sort(key=lambda item: (-item[0], item[1].path))
    _hash_all(dest, [e for _, e in todo], workers, report, progress, hash_func)
    report.sort()
    return report


def _hash_all(dest, entries, workers, report, progress, hash_func):
    """Hash ``entries`` on a bounded thread pool and file each result in ``report``."""
    if not entries:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(hash_func, dest, e.path, CHUNK_SIZE, progress): e for e in entries}
        for future in concurrent.futures.as_completed(futures):
            entry = futures[future]
            try:
                digest, st = future.result()
            except FileProblem as exc:
                report.problems.append(exc)
                continue
            report.hashed.append(entry.path)
            report.bytes_hashed += st.st_size
            if digest == entry.sha256:
                report.ok[entry.path] = _cache_record(digest, st)
            else:
                report.mismatches.append({"path": entry.path, "expected": entry.sha256,
                                          "actual": digest})


def hash_files(dest, relpaths, workers=2, progress=None):
    """Hash ``relpaths`` under ``dest`` on a bounded pool; return ({path: (sha256, stat)}, problems)."""
    check_workers(workers)
    done, problems = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(hash_entry, dest, rel, CHUNK_SIZE, progress): rel for rel in relpaths}
        for future in concurrent.futures.as_completed(futures):
            try:
                done[futures[future]] = future.result()
            except FileProblem as exc:
                problems.append(exc)
    problems.sort(key=lambda p: p.path)
    return done, problems


def find_extras(dest, entries, ignore=()):
    """Return sorted relative paths under ``dest`` that the manifest does not list.

    Reserved names (cache, manifest copy, partials) and the top-level names in
    ``ignore`` are skipped. Symlinks count as extras, and are not followed.
    """
    listed = set(e.path for e in entries)
    ignore = set(ignore)
    extras = []
    if not os.path.isdir(dest):
        return extras
    for root, dirs, files in os.walk(dest, followlinks=False):
        rel_root = os.path.relpath(root, dest)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        names = list(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in names:
            rel = rel_root + name
            if rel in listed or is_reserved(rel) or (not rel_root and name in ignore):
                continue
            extras.append(rel)
    return sorted(extras)


# ---------------------------------------------------------------------------
# Cache file
# ---------------------------------------------------------------------------

def cache_path(dest):
    """Where the verification cache of ``dest`` lives."""
    return os.path.join(dest, CACHE_NAME)


def read_cache(dest):
    """Return (cache dict, None) or (None, reason) if absent or unusable."""
    path = cache_path(dest)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, "%s is not a regular file" % path
        with open(path, "rb") as fileobj:
            data = json.loads(fileobj.read(64 << 20).decode("utf-8"))
    except FileNotFoundError:
        return None, "no verification record %s (never verified)" % path
    except (OSError, ValueError) as exc:
        return None, "verification record %s is unreadable: %s" % (path, exc)
    if (not isinstance(data, dict) or data.get("format") != CACHE_FORMAT
            or not isinstance(data.get("files"), dict)
            or not isinstance(data.get("manifest_sha256"), str)):
        return None, "verification record %s has an unknown format" % path
    return data, None


def build_cache(manifest_sha256, report_ok, complete, verified_at=None):
    """Assemble the cache document from verified file records."""
    return {
        "format": CACHE_FORMAT,
        "manifest_sha256": manifest_sha256,
        "complete": bool(complete),
        "verified_at": verified_at or datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": dict(sorted(report_ok.items())),
    }


def same_cache(old, new):
    """True when two cache documents record the same verification (timestamps aside)."""
    if not isinstance(old, dict):
        return False
    keys = ("format", "manifest_sha256", "complete", "files")
    return all(old.get(k) == new.get(k) for k in keys)


def atomic_write(path, data, mode=0o644, makedirs=False):
    """Write ``data`` (bytes or text) so readers see the old file or the new one, never half of it.

    A temporary sibling, fsync, chmod, rename, then fsync of the folder so
    the rename survives a crash. The project's one implementation: this file
    also runs on its own on the host (the start-time check) and so cannot
    import it; the modules (weights_sync, nft_ruleset, network_vlan_apply,
    vllm_secret) import it from here.
    """
    folder = os.path.dirname(path) or "."
    if makedirs:
        os.makedirs(folder, exist_ok=True)
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fileobj:
            fileobj.write(data)
            fileobj.flush()
            os.fsync(fileobj.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def fsync_dir(folder):
    """fsync a folder so a rename in it survives a crash."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_cache(dest, cache):
    """Write the verification cache of ``dest`` atomically."""
    data = json.dumps(cache, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    atomic_write(cache_path(dest), data)


# ---------------------------------------------------------------------------
# High-level operations used by the CLI
# ---------------------------------------------------------------------------

def _read_manifest_arg(dest, manifest_path_or_text):
    """Return (manifest bytes, source name, top-level name to ignore in dest)."""
    if manifest_path_or_text is None:
        for name in (MANIFEST_COPY_NAME, DEFAULT_MANIFEST_NAME):
            candidate = os.path.join(dest, name)
            if os.path.isfile(candidate):
                manifest_path_or_text = candidate
                break
        else:
            raise ManifestError("%s: no manifest (%s or %s) and none given"
                                % (dest, MANIFEST_COPY_NAME, DEFAULT_MANIFEST_NAME))
    if isinstance(manifest_path_or_text, bytes):
        return manifest_path_or_text, "manifest text", None
    if "\n" in manifest_path_or_text:
        return manifest_path_or_text.encode("utf-8"), "manifest text", None
    path = manifest_path_or_text
    try:
        with open(path, "rb") as fileobj:
            data = fileobj.read()
    except OSError as exc:
        raise ManifestError("%s: cannot read manifest: %s" % (path, exc.strerror or exc))
    ignore = None
    if os.path.realpath(os.path.dirname(path) or ".") == os.path.realpath(dest):
        ignore = os.path.basename(path)
    return data, path, ignore


def check_verified(dest, manifest_path_or_text=None, expected_manifest_sha256=None):
    """Cheap start-time check: is ``dest`` exactly what was last fully verified?

    Reads no weight bytes. Returns (ok, problems). ``ok`` is True only when
    the cache exists, was written for this very manifest, says every entry
    was verified, every listed file still has the recorded size, mtime,
    ctime and inode, and the folder holds no unlisted file. Anything odd
    (unreadable cache, a symlink, an extra file) is a problem: fail closed.

    ``manifest_path_or_text``: a manifest file path, manifest text (str with
    newlines, or bytes), or None for ``<dest>/.airgap-manifest`` (falling
    back to ``<dest>/SHA256SUMS``). ``expected_manifest_sha256`` pins the
    manifest itself, e.g. to the hash weights_sync reported at deploy time.
    """
    problems = []
    if not os.path.isdir(dest):
        return False, ["%s: destination folder does not exist" % dest]
    try:
        data, source, ignore = _read_manifest_arg(dest, manifest_path_or_text)
        entries = parse_manifest(data, source)
    except ManifestError as exc:
        return False, [str(exc)]
    manifest_sha = sha256_bytes(data)
    if expected_manifest_sha256 and manifest_sha != expected_manifest_sha256.lower():
        problems.append("manifest %s has sha256 %s, expected %s"
                        % (source, manifest_sha, expected_manifest_sha256.lower()))
    cache, reason = read_cache(dest)
    if cache is None:
        return False, problems + [reason]
    if cache.get("manifest_sha256") != manifest_sha:
        problems.append("verification record is for manifest %s, current manifest is %s"
                        % (cache.get("manifest_sha256"), manifest_sha))
    if cache.get("complete") is not True:
        problems.append("last verification was not complete")
    problems.extend(_check_identities(dest, entries, cache["files"]))
    for extra in find_extras(dest, entries, ignore=[ignore] if ignore else ()):
        problems.append("%s: not listed in the manifest (unexpected file)" % extra)
    return not problems, problems


def _check_identities(dest, entries, cache_files):
    """Compare every manifest entry's current stat with its cached verification."""
    problems = []
    dest_real = os.path.realpath(dest)
    for entry in entries:
        cached = cache_files.get(entry.path)
        if not _valid_cache_entry(cached) or cached["sha256"] != entry.sha256:
            problems.append("%s: not verified against the current manifest" % entry.path)
            continue
        try:
            st = stat_entry(dest, entry.path, dest_real)
        except FileProblem as exc:
            problems.append(str(exc))
            continue
        if st is None:
            problems.append("%s: missing" % entry.path)
        elif not _same_identity(cached, st):
            changed = sorted(k for k, v in file_identity(st).items() if cached.get(k) != v)
            problems.append("%s: changed since verification (%s)" % (entry.path, ", ".join(changed)))
    return problems


def verify_dest(dest, manifest_path_or_text=None, mode="cache", workers=2, write=True,
                progress=None):
    """Verify ``dest`` against its manifest and (if ``write``) update the cache.

    Returns (report, extras, manifest_sha256). The cache records every file
    that matched, and is marked complete only if all of them did.
    """
    data, source, ignore = _read_manifest_arg(dest, manifest_path_or_text)
    entries = parse_manifest(data, source)
    manifest_sha = sha256_bytes(data)
    cache, _reason = read_cache(dest)
    cache_files = cache["files"] if cache else None
    report = verify_entries(dest, entries, mode=mode, workers=workers,
                            cache_files=cache_files, progress=progress)
    extras = find_extras(dest, entries, ignore=[ignore] if ignore else ())
    if write:
        new = build_cache(manifest_sha, report.ok, report.complete)
        if not same_cache(cache, new):
            write_cache(dest, new)
    return report, extras, manifest_sha


def describe_report(report, extras):
    """Human-readable problem lines for a VerifyReport plus extras."""
    lines = ["%s: missing" % p for p in report.missing]
    lines += ["%s: sha256 mismatch (expected %s, got %s)" % (m["path"], m["expected"], m["actual"])
              for m in report.mismatches]
    lines += [str(p) for p in report.problems]
    lines += ["%s: not listed in the manifest (unexpected file)" % e for e in extras]
    return lines


def main(argv=None):
    """CLI: ``check`` (start-time gate, reads no weights) and ``verify``."""
    parser = argparse.ArgumentParser(
        prog="airgap_manifest.py",
        description="Verify model weights against a sha256sum manifest.")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    for name, help_text in (("check", "exit 0 only if DEST is exactly what was last fully verified"),
                            ("verify", "verify DEST (cache or full) and update its cache")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--dest", required=True, help="model folder")
        cmd.add_argument("--manifest", help="manifest path (default DEST/%s, then DEST/%s)"
                         % (MANIFEST_COPY_NAME, DEFAULT_MANIFEST_NAME))
    sub.choices["check"].add_argument("--manifest-sha256", help="expected sha256 of the manifest")
    verify = sub.choices["verify"]
    verify.add_argument("--full", action="store_true", help="re-hash every file, ignore the cache")
    verify.add_argument("--workers", type=int, default=2, help="parallel hashing threads")
    verify.add_argument("--no-write", action="store_true", help="do not update the cache")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _cli_check(args)
    return _cli_verify(args)


def _cli_check(args):
    try:
        ok, problems = check_verified(args.dest, args.manifest, args.manifest_sha256)
    except Exception as exc:  # fail closed: any surprise blocks the start
        ok, problems = False, ["unexpected error: %r" % (exc,)]
    for problem in problems:
        sys.stderr.write("airgap-manifest: %s: %s\n" % (args.dest, problem))
    if ok:
        sys.stdout.write("airgap-manifest: %s: verified\n" % args.dest)
        return 0
    sys.stderr.write("airgap-manifest: %s: NOT verified, refusing\n" % args.dest)
    return 1


def _cli_verify(args):
    try:
        check_workers(args.workers)
        report, extras, manifest_sha = verify_dest(
            args.dest, args.manifest, mode="full" if args.full else "cache",
            workers=args.workers, write=not args.no_write)
    except (ManifestError, ValueError, OSError) as exc:
        sys.stderr.write("airgap-manifest: %s\n" % exc)
        return 2
    problems = describe_report(report, extras)
    for problem in problems:
        sys.stderr.write("airgap-manifest: %s: %s\n" % (args.dest, problem))
    sys.stdout.write("airgap-manifest: %s: %d/%d files verified (%d from cache, %d hashed, "
                     "%d bytes hashed), manifest sha256 %s, method %s: %s\n"
                     % (args.dest, len(report.ok), len(report.ok) + len(report.missing)
                        + len(report.mismatches) + len(report.problems), len(report.cache_hits),
                        len(report.hashed), report.bytes_hashed, manifest_sha, report.method,
                        "OK" if not problems else "FAILED"))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
