#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark weight verification and download against standard tools, same run.

Measures, on generated data under /var/tmp (deleted afterwards unless --keep):

1. full verify throughput of airgap_manifest (1 and 2 worker threads) against
   coreutils ``sha256sum`` over the same files (one process, and two processes
   for the 2-worker comparison);
2. a cache re-check of an unchanged model (200 files, 10 GiB by default) against
   a full verify of the same model, plus the start-time ``check``;
3. weights_sync (1, 2 and 4 workers) downloading from nginx on 127.0.0.1 (the
   lab mirror's server, in a podman container of the lab's base image) against
   ``curl -s -o /dev/null`` for the same files, against ``cp`` + ``sync`` of
   the same files (what the disk needs to make these bytes durable, with no
   network at all) and against curl to disk + sync + sha256sum (the same work
   weights_sync does);
4. peak RSS of a verify of one large file (5 GiB by default) in a child process,
   against the 100 MiB target.

Ratios are ours / baseline in wall time: below 1.0 we are faster, above slower.
Both sides read files that are in the page cache (every run follows a warm-up
pass), so the figures compare CPU and I/O-path cost, not the disk.

Usage: .venv/bin/python bench/bench_weights.py [--scale 0.2] [--repeat 3]
Writes bench/results/weights.json next to this file.
"""

from __future__ import absolute_import, division, print_function

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODULE_UTILS = os.path.join(ROOT, "module_utils")
LIBRARY = os.path.join(ROOT, "library")
sys.path.insert(0, MODULE_UTILS)
sys.path.insert(0, LIBRARY)

import ansible.module_utils  # noqa: E402  (weights_sync imports through this namespace)

if MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(MODULE_UTILS)

from ansible.module_utils import airgap_manifest as am  # noqa: E402
import weights_sync  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
RSS_TARGET_MIB = 100


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def file_sizes(total, count):
    """Deterministic uneven sizes (0.5x to 1.5x the mean) that add up to ``total``."""
    weights = [0.5 + ((i * 37) % 101) / 100.0 for i in range(count)]
    scale = total / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    sizes[-1] += total - sum(sizes)
    return sizes


def write_file(path, size, block, tag):
    """Write ``size`` bytes: a unique header, then a random block repeated at a shifting offset.

    Real random bytes (nothing sparse or compressible), generated at disk speed.
    """
    header = ("%s\n" % tag).encode() + os.urandom(32)
    with open(path, "wb") as fileobj:
        written = fileobj.write(header[:size])
        shift = 0
        while written < size:
            piece = block[shift:] if shift else block
            n = fileobj.write(piece[:size - written])
            written += n
            shift = (shift + 4099) % len(block)


def make_model(folder, total, count, block):
    """Generate ``count`` files totalling ``total`` bytes plus SHA256SUMS; return relpaths."""
    os.makedirs(folder)
    relpaths = []
    for i, size in enumerate(file_sizes(total, count)):
        rel = "model-%05d-of-%05d.safetensors" % (i + 1, count)
        write_file(os.path.join(folder, rel), size, block, rel)
        relpaths.append(rel)
    done, problems = am.hash_files(folder, relpaths, workers=2)  # also warms the page cache
    assert not problems, problems
    text = am.format_manifest((rel, done[rel][0]) for rel in relpaths)
    with open(os.path.join(folder, "SHA256SUMS"), "w") as fileobj:
        fileobj.write(text)
    return relpaths


# ---------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------

def best_of(repeat, func, setup=None):
    """Run ``func`` ``repeat`` times (``setup`` untimed before each); return the fastest
    wall time and its last result."""
    best, result = None, None
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def run_checked(cmd, cwd=None):
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (cmd[0], proc.stderr.decode(errors="replace")))


def split_balanced(folder, relpaths, parts):
    """Split files into ``parts`` lists of about equal bytes (for parallel sha256sum)."""
    buckets = [[0, []] for _ in range(parts)]
    for rel in sorted(relpaths, key=lambda r: -os.path.getsize(os.path.join(folder, r))):
        bucket = min(buckets, key=lambda b: b[0])
        bucket[0] += os.path.getsize(os.path.join(folder, rel))
        bucket[1].append(rel)
    return [b[1] for b in buckets if b[1]]


def sha256sum_parallel(folder, groups):
    """Run one sha256sum process per group at once; wait for all."""
    procs = [subprocess.Popen(["sha256sum", "--"] + g, cwd=folder, stdout=subprocess.DEVNULL)
             for g in groups]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError("sha256sum failed")


def ratio(ours, base):
    return round(ours / base, 3) if base else None


def mib_s(nbytes, seconds):
    return round(nbytes / MIB / seconds, 1) if seconds else None


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------

def bench_full_verify(folder, relpaths, total, repeat):
    """Full verify, 1 and 2 workers, against sha256sum with 1 and 2 processes."""
    entries = am.parse_manifest(open(os.path.join(folder, "SHA256SUMS"), "rb").read(), "bench")
    halves = split_balanced(folder, relpaths, 2)
    out = {}
    t_sum1, _ = best_of(repeat, lambda: run_checked(["sha256sum", "--"] + relpaths, cwd=folder))
    t_sum2, _ = best_of(repeat, lambda: sha256sum_parallel(folder, halves))
    for workers, base, base_name in ((1, t_sum1, "sha256sum (1 process)"),
                                     (2, t_sum2, "sha256sum (2 processes)")):
        t_ours, report = best_of(repeat, lambda: am.verify_entries(
            folder, entries, mode="full", workers=workers))
        assert report.complete and report.bytes_hashed == total, "verify did not cover every byte"
        out["workers_%d" % workers] = {
            "ours_s": round(t_ours, 3), "ours_mib_s": mib_s(total, t_ours),
            "baseline": base_name, "baseline_s": round(base, 3),
            "baseline_mib_s": mib_s(total, base), "ratio": ratio(t_ours, base)}
    return out


def bench_cache(folder, total, repeat):
    """Cache re-check and start-time check of an unchanged model vs a full verify."""
    report, _extras, _sha = am.verify_dest(folder, mode="full", workers=2, write=True)
    assert report.complete
    t_full, _ = best_of(1, lambda: am.verify_dest(folder, mode="full", workers=2, write=False))
    t_cache, (report, _x, _s) = best_of(repeat, lambda: am.verify_dest(
        folder, mode="cache", workers=2, write=False))
    assert report.bytes_hashed == 0 and len(report.cache_hits) == len(report.ok)
    t_check, (ok, problems) = best_of(repeat, lambda: am.check_verified(folder))
    assert ok, problems
    return {"files": len(report.ok), "bytes": total,
            "full_verify_s": round(t_full, 3), "cache_verify_s": round(t_cache, 4),
            "check_s": round(t_check, 4), "ratio_cache_vs_full": ratio(t_cache, t_full),
            "ratio_check_vs_full": ratio(t_check, t_full)}


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


NGINX_CONF = """worker_processes 2;
daemon off;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    server { listen 127.0.0.1:%d; root /srv/www; }
}
"""


def wait_for_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("%s did not start" % what)


def start_http_server(root, scratch, image):
    """Serve ``root`` on 127.0.0.1 as the lab mirror does: nginx (sendfile) in a podman
    container of the lab's base image, on the host network. Returns (stop, url, server).

    Falls back to ``python3 -m http.server`` only when podman or the image is missing
    (the figure is then recorded as such: that server is slower than nginx).
    """
    port = free_port()
    if shutil.which("podman") and subprocess.run(
            ["podman", "image", "exists", image], capture_output=True).returncode == 0:
        conf = os.path.join(scratch, "nginx-bench.conf")
        with open(conf, "w") as fileobj:
            fileobj.write(NGINX_CONF % port)
        name = "bench-weights-nginx-%d" % os.getpid()
        proc = subprocess.Popen(
            ["podman", "run", "--rm", "--name", name, "--network", "host",
             "-v", "%s:/srv/www:ro" % root, "-v", "%s:/etc/nginx/bench.conf:ro" % conf,
             image, "nginx", "-c", "/etc/nginx/bench.conf"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port, proc, "nginx in podman")

        def stop():
            subprocess.run(["podman", "stop", "-t", "2", name], capture_output=True)
            proc.wait(30)
        return stop, "http://127.0.0.1:%d" % port, "nginx (%s, podman, host network)" % image
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", root, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, "http.server")

    def stop_py():
        proc.terminate()
        proc.wait(10)
    return stop_py, "http://127.0.0.1:%d" % port, "python3 -m http.server (no podman image)"


DOWNLOAD_WORKERS = (1, 2, 4)


def bench_download(mirror_root, relpaths, total, scratch, repeat, image):
    """weights_sync against curl for the same files from one local nginx.

    Three baselines, each timed in the same run: ``curl -o /dev/null`` (the
    issue's; no disk, no hash), ``cp`` of the same files from the page cache
    plus ``sync`` (the disk's floor for making these bytes durable, with no
    network and no hash), and curl to disk + ``sync`` + ``sha256sum`` (the
    same work weights_sync does). weights_sync fsyncs every file before its
    rename, so it can never beat the second.
    """
    stop, url, server = start_http_server(mirror_root, scratch, image)
    base = url + "/models/bench-model/"
    urls = [base + rel for rel in relpaths]
    src = os.path.join(mirror_root, "models", "bench-model")
    disk = os.path.join(scratch, "baseline-disk")

    def fresh(folder):
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.sync()  # nobody's dirty pages are written on someone else's clock

    try:
        curl_args = ["curl", "-s", "-f"]
        for u in urls:
            curl_args += ["-o", "/dev/null", u]
        t_curl, _ = best_of(repeat, lambda: run_checked(curl_args))

        def cp_and_sync():
            run_checked(["cp", "-r", src, disk])
            run_checked(["sync", "-f", disk])
        t_cp, _ = best_of(repeat, cp_and_sync, setup=lambda: fresh(disk))

        def curl_to_disk_and_hash():
            os.makedirs(disk)
            args = ["curl", "-s", "-f"]
            for rel, u in zip(relpaths, urls):
                args += ["-o", os.path.join(disk, rel), u]
            run_checked(args)
            run_checked(["sync", "-f", disk])
            run_checked(["sha256sum", "--"] + relpaths, cwd=disk)
        t_curl_disk, _ = best_of(repeat, curl_to_disk_and_hash, setup=lambda: fresh(disk))
        fresh(disk)
        out = {"server": server,
               "curl_devnull_s": round(t_curl, 3), "curl_devnull_mib_s": mib_s(total, t_curl),
               "cp_sync_s": round(t_cp, 3), "cp_sync_mib_s": mib_s(total, t_cp),
               "disk_floor_vs_curl_devnull": ratio(t_cp, t_curl),
               "curl_disk_sync_sha256sum_s": round(t_curl_disk, 3)}
        for workers in DOWNLOAD_WORKERS:
            dest = os.path.join(scratch, "dest-%d" % workers)

            def sync():
                return weights_sync.run(dict(
                    mode="sync", base_url=url, name="bench-model",
                    manifest="models/bench-model/SHA256SUMS", manifest_local=None,
                    manifest_sha256=None, dest=dest, verify="cache", workers=workers,
                    remove_extras=False, timeout=60, validate_certs=True, ca_path=None))
            t_ours, result = best_of(repeat, sync, setup=lambda: fresh(dest))
            assert result["bytes_downloaded"] == total and result["evidence"]["status"] == "pass"
            fresh(dest)
            out["workers_%d" % workers] = {
                "ours_s": round(t_ours, 3), "ours_mib_s": mib_s(total, t_ours),
                "ratio_vs_curl_devnull": ratio(t_ours, t_curl),
                "ratio_vs_cp_sync": ratio(t_ours, t_cp),
                "ratio_vs_curl_disk_sync_sha256sum": ratio(t_ours, t_curl_disk)}
        return out
    finally:
        stop()


# The child reports VmHWM (peak resident set of its own address space). ru_maxrss
# is not used: Linux carries the maximum over execve, so a child forked from
# this (large) benchmark process would report the parent's size, not its own.
_RSS_CHILD = r"""
import json, runpy, sys
mu, folder, what = sys.argv[1:4]
sys.path.insert(0, mu)
import airgap_manifest as am
if what == "library":
    report, extras, _ = am.verify_dest(folder, mode="full", workers=2, write=False)
    assert report.complete and not extras, "verify failed"
elif what == "cli":
    sys.argv = ["airgap_manifest.py", "verify", "--dest", folder, "--full", "--no-write"]
    try:
        runpy.run_path(mu + "/airgap_manifest.py", run_name="__main__")
    except SystemExit as exc:
        assert not exc.code, "CLI verify failed"
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
print(json.dumps({k: int(status[k].split()[0]) for k in ("VmHWM", "VmRSS")}))
"""


def child_rss(folder, what):
    """Run a fresh interpreter doing ``what``; return its VmHWM in KiB."""
    proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, MODULE_UTILS, folder, what],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("RSS child (%s) failed: %s" % (what, proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])["VmHWM"]


def bench_rss(scratch, size, block):
    """Peak RSS of a full verify of one ``size``-byte file, and of the bare interpreter."""
    folder = os.path.join(scratch, "rss")
    os.makedirs(folder)
    write_file(os.path.join(folder, "big.safetensors"), size, block, "big")
    digest = am.sha256_file(os.path.join(folder, "big.safetensors"))
    with open(os.path.join(folder, "SHA256SUMS"), "w") as fileobj:
        fileobj.write("%s  big.safetensors\n" % digest)
    idle = child_rss(folder, "idle")
    start = time.perf_counter()
    library = child_rss(folder, "library")
    elapsed = time.perf_counter() - start
    cli = child_rss(folder, "cli")
    shutil.rmtree(folder)
    peak_mib = max(library, cli) / 1024.0
    return {"file_bytes": size, "verify_s": round(elapsed, 2),
            "interpreter_only_kib": idle, "library_verify_vmhwm_kib": library,
            "cli_verify_vmhwm_kib": cli, "peak_mib": round(peak_mib, 1),
            "target_mib": RSS_TARGET_MIB, "within_target": peak_mib < RSS_TARGET_MIB,
            "measure": "VmHWM of a fresh child interpreter (2 hashing threads)"}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def machine_info():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fileobj:
            cpu = next((l.split(":", 1)[1].strip() for l in fileobj if l.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(),
            "sha256sum": subprocess.run(["sha256sum", "--version"], capture_output=True,
                                        text=True).stdout.splitlines()[0],
            "curl": subprocess.run(["curl", "--version"], capture_output=True,
                                   text=True).stdout.split("\n")[0]}


def print_table(res):
    rows = [("measurement", "ours", "baseline", "ratio")]
    for w in (1, 2):
        r = res["full_verify"]["workers_%d" % w]
        rows.append(("full verify, %d worker%s" % (w, "s" if w > 1 else ""),
                     "%.2f s (%.0f MiB/s)" % (r["ours_s"], r["ours_mib_s"]),
                     "%s %.2f s (%.0f MiB/s)" % (r["baseline"], r["baseline_s"], r["baseline_mib_s"]),
                     "%.3f" % r["ratio"]))
    c = res["cache_recheck"]
    rows.append(("re-check %d files (cache)" % c["files"], "%.4f s" % c["cache_verify_s"],
                 "full verify %.2f s" % c["full_verify_s"], "%.4f" % c["ratio_cache_vs_full"]))
    rows.append(("start check (check CLI core)", "%.4f s" % c["check_s"],
                 "full verify %.2f s" % c["full_verify_s"], "%.4f" % c["ratio_check_vs_full"]))
    d = res["download"]
    rows.append(("download server: %s" % d["server"], "", "", ""))
    rows.append(("  disk floor: cp + sync, no network", "%.2f s" % d["cp_sync_s"],
                 "curl -o /dev/null %.2f s" % d["curl_devnull_s"],
                 "%.3f" % d["disk_floor_vs_curl_devnull"]))
    for w in DOWNLOAD_WORKERS:
        r = d["workers_%d" % w]
        rows.append(("download, %d worker%s" % (w, "s" if w > 1 else ""),
                     "%.2f s (%.0f MiB/s)" % (r["ours_s"], r["ours_mib_s"]),
                     "curl -o /dev/null %.2f s" % d["curl_devnull_s"],
                     "%.3f" % r["ratio_vs_curl_devnull"]))
        rows.append(("  same, vs cp + sync (disk floor)", "", "%.2f s" % d["cp_sync_s"],
                     "%.3f" % r["ratio_vs_cp_sync"]))
        rows.append(("  same, vs curl to disk + sync + sha256sum", "",
                     "%.2f s" % d["curl_disk_sync_sha256sum_s"],
                     "%.3f" % r["ratio_vs_curl_disk_sync_sha256sum"]))
    m = res["peak_rss"]
    rows.append(("peak RSS, verify %.1f GiB file" % (m["file_bytes"] / GIB), "%.1f MiB" % m["peak_mib"],
                 "target < %d MiB (interpreter alone %.1f MiB)" % (m["target_mib"],
                                                                  m["interpreter_only_kib"] / 1024.0),
                 "OK" if m["within_target"] else "OVER"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("ratio = ours / baseline wall time (below 1.0: faster than the baseline)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the model size (e.g. 0.1 for a quick run)")
    parser.add_argument("--size-gib", type=float, default=10.0, help="model size at scale 1")
    parser.add_argument("--files", type=int, default=200, help="files in the model")
    parser.add_argument("--rss-gib", type=float, default=5.0, help="size of the RSS test file")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (best kept)")
    parser.add_argument("--workdir", default="/var/tmp", help="where generated data goes")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "weights.json"))
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--image", default=os.environ.get("AIRGAP_LAB_IMAGE",
                                                          "localhost/airgap-lab-base:bookworm"),
                        help="image whose nginx serves the downloads (the lab mirror's)")
    args = parser.parse_args(argv)
    # podman needs the project's settings on this kind of machine (ENVIRONMENT.md)
    os.environ.setdefault("CONTAINERS_CONF", os.path.join(ROOT, "lab", "containers.conf"))
    for tool in ("sha256sum", "curl"):
        if shutil.which(tool) is None:
            parser.error("%s is needed as the baseline" % tool)
    total = int(args.size_gib * args.scale * GIB)
    rss_size = int(args.rss_gib * GIB)
    scratch = tempfile.mkdtemp(prefix="bench-weights-", dir=args.workdir)
    started = time.time()
    load_before = os.getloadavg()  # other work on the machine skews every figure; record it
    try:
        block = os.urandom(16 * MIB)
        mirror_root = os.path.join(scratch, "mirror")
        folder = os.path.join(mirror_root, "models", "bench-model")
        print("generating %d files, %.2f GiB in %s ..." % (args.files, total / GIB, folder))
        relpaths = make_model(folder, total, args.files, block)
        res = {}
        print("full verify vs sha256sum ...")
        res["full_verify"] = bench_full_verify(folder, relpaths, total, args.repeat)
        print("downloads vs curl ...")
        res["download"] = bench_download(mirror_root, relpaths, total, scratch, args.repeat, args.image)
        print("cache re-check ...")
        res["cache_recheck"] = bench_cache(folder, total, args.repeat)
        print("peak RSS (%.1f GiB file) ..." % (rss_size / GIB))
        res["peak_rss"] = bench_rss(scratch, rss_size, block)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    doc = {"generated_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "machine": machine_info(),
           "params": {"scale": args.scale, "model_bytes": total, "files": args.files,
                      "rss_file_bytes": rss_size, "repeat": args.repeat,
                      "chunk_bytes": am.CHUNK_SIZE, "page_cache": "warm for every side"},
           "wall_s": round(time.time() - started, 1),
           "loadavg_1_5_15": {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()]},
           "results": res}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fileobj:
        json.dump(doc, fileobj, indent=2, sort_keys=True)
        fileobj.write("\n")
    print()
    print_table(res)
    print("load average before %s, after %s (cores: %d)" % (
        doc["loadavg_1_5_15"]["before"], doc["loadavg_1_5_15"]["after"], os.cpu_count()))
    print("written %s (data %s)" % (args.out, "kept in " + scratch if args.keep else "deleted"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
