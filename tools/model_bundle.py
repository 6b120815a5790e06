#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build and check model weight manifests on the connected staging machine.

    python3 tools/model_bundle.py build DIR [--workers N]
        hash every file under DIR and write DIR/SHA256SUMS (sorted, relative
        paths, sha256sum format), the manifest that weights_sync and the GPU
        hosts verify against.
    python3 tools/model_bundle.py verify DIR [--workers N]
        re-hash every file and exit non-zero on any mismatch, missing or
        extra file, so a bundle is checked before it is carried to the mirror.

The manifest rules (safe relative paths, reserved names) and the hashing come
from module_utils/airgap_manifest.py, so what is built here is exactly what
the hosts will accept. A progress bar uses rich when it is installed and
plain lines on stderr otherwise.

Exit status: 0 all good, 1 verification found problems, 2 the bundle or the
manifest cannot be used (unsafe name, symlink, unreadable manifest).
"""

from __future__ import absolute_import, division, print_function

import argparse
import os
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))

import airgap_manifest as am  # noqa: E402  (needs the path above)

try:
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)
    HAVE_RICH = True
except ImportError:  # plain progress lines instead
    HAVE_RICH = False


class BundleError(Exception):
    """The bundle cannot be turned into (or checked against) a manifest."""


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------

class PlainProgress(object):
    """Thread-safe byte counter that prints a line to stderr every few seconds."""

    def __init__(self, label, total, stream=None, every=2.0):
        self.label, self.total, self.every = label, total, every
        self.stream = stream or sys.stderr
        self.done = 0
        self.lock = threading.Lock()
        self.started = self.last = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._print(time.monotonic())

    def advance(self, nbytes):
        with self.lock:
            self.done += nbytes
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                self._print(now)

    def _print(self, now):
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.done / max(now - self.started, 1e-9) / (1 << 20)
        self.stream.write("%s: %d/%d MiB (%.0f%%), %.0f MiB/s\n"
                          % (self.label, self.done >> 20, self.total >> 20, pct, rate))
        self.stream.flush()


class RichProgress(object):
    """A rich progress bar on stderr, advanced from several hashing threads."""

    def __init__(self, label, total):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def advance(self, nbytes):
        self.progress.update(self.task, advance=nbytes)  # rich locks internally


class NoProgress(object):
    """Progress disabled (--no-progress)."""

    def __init__(self, *_args):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def advance(self, nbytes):
        pass


def make_progress(label, total, enabled):
    if not enabled:
        return NoProgress()
    if HAVE_RICH:
        return RichProgress(label, total)
    return PlainProgress(label, total)


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------

def list_bundle(folder, manifest_name):
    """Return sorted relative paths of the regular files to list; refuse what cannot be listed."""
    found = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        rel_root = os.path.relpath(root, folder)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        for name in list(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = rel_root + name
            if not rel_root and name == manifest_name:
                continue
            if am.is_reserved(rel):
                continue  # verifier bookkeeping and partial downloads are not weights
            st = os.lstat(os.path.join(root, name))
            if stat.S_ISLNK(st.st_mode):
                raise BundleError("%s: is a symlink; a bundle must hold regular files only "
                                  "(copy the target in place)" % rel)
            if not stat.S_ISREG(st.st_mode):
                raise BundleError("%s: is not a regular file" % rel)
            try:
                norm = am.check_relative_path(rel)
            except ValueError as exc:
                raise BundleError("%s: name cannot go in a manifest: %s" % (rel, exc))
            found.append(norm)
    if not found:
        raise BundleError("%s: no files to list" % folder)
    return sorted(found)


def total_size(folder, relpaths):
    return sum(os.lstat(am.local_path(folder, rel)).st_size for rel in relpaths)


def build(folder, workers=2, manifest_name=am.DEFAULT_MANIFEST_NAME, progress=True, out=None):
    """Hash every file under ``folder`` and write ``folder/manifest_name``; return its sha256."""
    out = out or sys.stdout
    relpaths = list_bundle(folder, manifest_name)
    size = total_size(folder, relpaths)
    started = time.monotonic()
    with make_progress("hashing", size, progress) as bar:
        done, problems = am.hash_files(folder, relpaths, workers=workers, progress=bar.advance)
    if problems:
        raise BundleError("; ".join(str(p) for p in problems))
    text = am.format_manifest((rel, done[rel][0]) for rel in relpaths)
    path = os.path.join(folder, manifest_name)
    am.parse_manifest(text, path)  # what we write must be what the hosts accept
    data = text.encode("utf-8")
    am.atomic_write(path, data)
    elapsed = time.monotonic() - started
    digest = am.sha256_bytes(data)
    out.write("wrote %s: %d files, %d bytes, %.1f s (%.0f MiB/s), manifest sha256 %s\n"
              % (path, len(relpaths), size, elapsed, size / max(elapsed, 1e-9) / (1 << 20), digest))
    return digest


# ---------------------------------------------------------------------------
# Verify
# ---------------------------------------------------------------------------

def verify(folder, workers=2, manifest_path=None, progress=True, out=None):
    """Re-hash ``folder`` against its manifest; return the list of problem lines."""
    out = out or sys.stdout
    manifest_path = manifest_path or os.path.join(folder, am.DEFAULT_MANIFEST_NAME)
    try:
        with open(manifest_path, "rb") as fileobj:
            data = fileobj.read()
    except OSError as exc:
        raise BundleError("%s: cannot read manifest: %s" % (manifest_path, exc.strerror or exc))
    try:
        entries = am.parse_manifest(data, manifest_path)
    except am.ManifestError as exc:
        raise BundleError(str(exc))
    present = [e for e in entries if os.path.isfile(am.local_path(folder, e.path))]
    size = sum(os.lstat(am.local_path(folder, e.path)).st_size for e in present)
    ignore = []
    if os.path.realpath(os.path.dirname(os.path.abspath(manifest_path))) == os.path.realpath(folder):
        ignore = [os.path.basename(manifest_path)]
    started = time.monotonic()
    with make_progress("verifying", size, progress) as bar:
        report = am.verify_entries(folder, entries, mode="full", workers=workers,
                                   progress=bar.advance)
    extras = am.find_extras(folder, entries, ignore=ignore)
    problems = am.describe_report(report, extras)
    elapsed = time.monotonic() - started
    for line in problems:
        out.write("PROBLEM %s\n" % line)
    out.write("%s: %s: %d of %d files verified, %d missing, %d mismatched, %d unreadable or not "
              "regular, %d extra; %d bytes hashed in %.1f s; manifest %s sha256 %s\n"
              % (folder, "OK" if not problems else "FAILED", len(report.ok), len(entries),
                 len(report.missing), len(report.mismatches), len(report.problems), len(extras),
                 report.bytes_hashed, elapsed, manifest_path, am.sha256_bytes(data)))
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(prog="model_bundle.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    b = sub.add_parser("build", help="hash DIR and write DIR/SHA256SUMS")
    v = sub.add_parser("verify", help="re-hash DIR against its manifest")
    for cmd in (b, v):
        cmd.add_argument("dir", help="model folder")
        cmd.add_argument("--workers", type=int, default=2, help="files hashed in parallel (default 2)")
        cmd.add_argument("--no-progress", action="store_true", help="no progress output")
    b.add_argument("--output", default=am.DEFAULT_MANIFEST_NAME,
                   help="manifest file name inside DIR (default SHA256SUMS)")
    v.add_argument("--manifest", help="manifest path (default DIR/SHA256SUMS)")
    args = parser.parse_args(argv)
    folder = os.path.abspath(args.dir)
    try:
        am.check_workers(args.workers)
        if not os.path.isdir(folder):
            raise BundleError("%s: not a folder" % folder)
        if args.command == "build":
            if "/" in args.output or args.output in ("", ".", ".."):
                raise BundleError("--output: %r must be a plain file name" % args.output)
            build(folder, args.workers, args.output, progress=not args.no_progress)
            return 0
        problems = verify(folder, args.workers, args.manifest, progress=not args.no_progress)
        return 1 if problems else 0
    except (BundleError, ValueError) as exc:
        sys.stderr.write("model_bundle: error: %s\n" % exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
