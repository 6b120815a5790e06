# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host hardening: parse what the live host reports and judge it.

Used by the ``host_hardening`` role (its filters and the
``listening_sockets`` module). Each function takes the text a standard tool
printed (``ss``, ``sshd -T``, ``systemd-analyze cat-config``,
``journalctl --header``, ``grep -H '' /proc/sys/...``) and the declared
state, and returns plain data; none of them runs anything, so pytest feeds
them recorded output.

Stdlib only, so the module, the filters and plain scripts can all import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import ipaddress
import re

WILDCARDS = ("*", "0.0.0.0", "::")

# --------------------------------------------------------------------------
# Listening sockets (HOST-LISTENERS)
# --------------------------------------------------------------------------

_USERS_RE = re.compile(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)')


def split_endpoint(text):
    """Split an ``ss`` endpoint such as ``[::1]%lo:53`` into (address, interface, port).

    ``ss`` prints IPv6 addresses in brackets, a bound interface after ``%``,
    and ``*`` for "any address of any family". The port is always after the
    last colon.
    """
    host, _sep, port = text.rpartition(":")
    iface = None
    if "%" in host:
        host, iface = host.split("%", 1)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, iface, port


def parse_ss(output):
    """Parse ``ss -H -tulpn`` into one dict per listening socket.

    Each: proto (tcp/udp), address, interface (or None), port (int),
    wildcard (bool), processes ([{name, pid}]). Lines that do not have the
    expected columns are returned separately so a reader sees them.
    """
    sockets, unparsed = [], []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
            unparsed.append(line)
            continue
        host, iface, port = split_endpoint(fields[4])
        if not port.isdigit():
            unparsed.append(line)
            continue
        rest = " ".join(fields[6:])
        procs = [{"name": m.group(1), "pid": int(m.group(2))} for m in _USERS_RE.finditer(rest)]
        # One socket shared by several processes (a forking daemon) is one listener.
        seen, uniq = set(), []
        for proc in procs:
            if (proc["name"], proc["pid"]) not in seen:
                seen.add((proc["name"], proc["pid"]))
                uniq.append(proc)
        sockets.append({
            "proto": fields[0],
            "address": host,
            "interface": iface,
            "port": int(port),
            "wildcard": host in WILDCARDS,
            "processes": uniq,
        })
    return sockets, unparsed


def _same_address(a, b):
    """Compare two addresses as addresses (so ``::0`` equals ``::``), else as text."""
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _process_names(sock):
    return sorted({p["name"] for p in sock["processes"]})


def entry_allows(entry, sock):
    """Return 'ok', 'wildcard' (allowed but bound wider than declared) or None.

    An entry with a wildcard address allows the port on any address. An entry
    naming an address allows only that address; the same port bound to a
    wildcard address is 'wildcard', a violation the report names.
    """
    if entry.get("proto") != sock["proto"] or int(entry.get("port")) != sock["port"]:
        return None
    process = entry.get("process")
    if process and process not in _process_names(sock):
        return None
    address = str(entry.get("address", "*"))
    if address in WILDCARDS:
        return "ok"
    if sock["wildcard"]:
        return "wildcard"
    return "ok" if _same_address(address, sock["address"]) else None


def _describe(sock):
    addr = sock["address"]
    shown = "[%s]" % addr if ":" in addr else addr
    if sock.get("interface"):
        shown += "%" + sock["interface"]
    names = ",".join(_process_names(sock)) or "unknown process"
    return "%s %s:%d (%s)" % (sock["proto"], shown, sock["port"], names)


def judge_listeners(sockets, allowed):
    """Compare live sockets with the allowed entries.

    Returns {status, unexpected, wider_than_declared, allowed_unused, matched}:
    unexpected sockets match no entry; wider_than_declared are bound to a
    wildcard where their entry names one address. Any of those is a fail.
    """
    unexpected, wider, matched = [], [], []
    used = set()
    for sock in sockets:
        verdicts = [(i, entry_allows(e, sock)) for i, e in enumerate(allowed)]
        ok = [i for i, v in verdicts if v == "ok"]
        wide = [i for i, v in verdicts if v == "wildcard"]
        shown = dict(sock, socket=_describe(sock))
        if ok:
            used.update(ok)
            matched.append(dict(shown, allowed_by=ok))
        elif wide:
            used.update(wide)
            wider.append(dict(shown, declared=[allowed[i] for i in wide],
                              problem="bound to a wildcard address; declared only for %s"
                              % ", ".join(str(allowed[i].get("address")) for i in wide)))
        else:
            unexpected.append(dict(shown, problem="not in the allowed listeners"))
    unused = [e for i, e in enumerate(allowed) if i not in used]
    status = "fail" if unexpected or wider else "pass"
    return {"status": status, "unexpected": unexpected, "wider_than_declared": wider,
            "allowed_unused": unused, "matched": matched}


# --------------------------------------------------------------------------
# sshd (HOST-SSHD)
# --------------------------------------------------------------------------

# sshd -T prints the first spelling of a value in its table, so
# "prohibit-password" comes back as "without-password".
SSHD_ALIASES = {
    "permitrootlogin": {"without-password": "prohibit-password"},
}


def parse_sshd_t(output):
    """Parse ``sshd -T`` into {lower-case keyword: value}; repeated keywords keep a list."""
    out = {}
    for line in output.splitlines():
        line = line.strip()
        if not line:
            continue
        key, _sep, value = line.partition(" ")
        key = key.lower()
        value = SSHD_ALIASES.get(key, {}).get(value.strip(), value.strip())
        if key in out:
            prev = out[key] if isinstance(out[key], list) else [out[key]]
            out[key] = prev + [value]
        else:
            out[key] = value
    return out


def judge_sshd(effective, expected):
    """Compare the effective settings with the expected ones (keywords case-insensitive).

    Returns a list of {setting, expected, effective, ok}.
    """
    checks = []
    for key, want in expected.items():
        low = key.lower()
        want = SSHD_ALIASES.get(low, {}).get(str(want), str(want))
        have = effective.get(low)
        have_cmp = " ".join(have) if isinstance(have, list) else have
        ok = have_cmp is not None and have_cmp.lower() == want.lower()
        checks.append({"setting": key, "expected": want, "effective": have_cmp, "ok": ok})
    return checks


def include_position(sshd_config_text, include_dir="/etc/ssh/sshd_config.d"):
    """Where the main sshd_config includes the drop-in folder.

    sshd keeps the first value it reads for most keywords, so the drop-in
    only wins if it is included before the main file sets anything. Returns
    {included, first, directives_before}: directives_before lists the
    keywords the main file sets before the Include line.
    """
    before = []
    for raw in sshd_config_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        word, _sep, rest = line.partition(" ")
        if word.lower() == "include" and include_dir in rest:
            return {"included": True, "first": not before, "directives_before": before}
        if word.lower() == "match":
            break
        before.append(word)
    return {"included": False, "first": False, "directives_before": before}


# --------------------------------------------------------------------------
# sysctl (HOST-SYSCTL)
# --------------------------------------------------------------------------

SYSCTL_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.([A-Za-z0-9_-]+|\*))+$")
SYSCTL_VALUE_RE = re.compile(r"^-?[0-9]+([ \t]+-?[0-9]+)*$")


def is_namespaced(key):
    """True for keys that belong to the network namespace (net.*).

    A container owns its network namespace, so it may set these. Other keys
    (kernel.*, fs.*, vm.*) are the host kernel's global settings: written
    from a container they would change the machine the container runs on.
    """
    return key.startswith("net.")


def key_to_path(key):
    """``net.ipv4.conf.all.rp_filter`` -> ``/proc/sys/net/ipv4/conf/all/rp_filter``."""
    return "/proc/sys/" + key.replace(".", "/")


def path_to_key(path):
    """Inverse of key_to_path; a dot inside a path part (an interface eth0.10) stays a dot."""
    parts = path[len("/proc/sys/"):].split("/")
    return ".".join(parts)


def probe_paths(keys):
    """Paths for one ``grep -r -H ''`` call that reads every key (a glob reads its folder)."""
    paths = []
    for key in keys:
        parts = key.split(".")
        if "*" in parts:
            path = "/proc/sys/" + "/".join(parts[:parts.index("*")])
        else:
            path = key_to_path(key)
        if path not in paths:
            paths.append(path)
    return paths


def parse_proc_sys(output):
    """Parse ``grep -r -H '' <paths>`` into {path: value} (whitespace normalised)."""
    values = {}
    for line in output.splitlines():
        if not line.startswith("/proc/sys/"):
            continue
        path, _sep, value = line.partition(":")
        values[path] = " ".join(value.split())
    return values


def expand_key(key, live):
    """The live paths a key names: itself, or every match of its '*' (an interface)."""
    if "*" not in key.split("."):
        path = key_to_path(key)
        return [path] if path in live else []
    pattern = "/proc/sys/" + "/".join(key.split("."))
    return sorted(p for p in live if fnmatch.fnmatchcase(p, pattern) and p.count("/") == pattern.count("/"))


def _norm(value):
    return " ".join(str(value).split())


def sysctl_plan(expected, live, container, container_global=False, exempt=None):
    """Decide, per expected key, whether this host applies it and why not.

    expected: {key: value}; live: {path: value} from parse_proc_sys; container:
    whether the host is a container. Returns {apply: {key: value},
    skipped: [{key, value, status, reason}], pending: [keys whose live value
    differs]}. pending is what a run would change.
    """
    exempt = exempt or {}
    apply, skipped, pending = {}, [], []
    for key, value in expected.items():
        value = _norm(value)
        if key in exempt:
            skipped.append({"key": key, "value": value, "status": "not_applicable",
                            "reason": "exempted by host_hardening_sysctl_exempt: %s" % exempt[key]})
            continue
        if container and not container_global and not is_namespaced(key):
            skipped.append({"key": key, "value": value, "status": "not_applicable",
                            "reason": "global kernel setting and this host is a container: it belongs to the "
                                      "kernel of the machine the container runs on, so it is not written here"})
            continue
        paths = expand_key(key, live)
        if not paths:
            skipped.append({"key": key, "value": value, "status": "not_applicable",
                            "reason": "this kernel has no such parameter (%s is missing)" % key_to_path(key)})
            continue
        apply[key] = value
        if any(live[p] != value for p in paths):
            pending.append(key)
    return {"apply": apply, "skipped": skipped, "pending": pending}


def judge_sysctl(plan, live):
    """One check per key: pass/fail for applied keys (every expanded path), the skip reason otherwise."""
    checks = []
    for key, value in plan["apply"].items():
        paths = expand_key(key, live)
        if not paths:
            checks.append({"key": key, "expected": value, "status": "error",
                           "reason": "could not be read from %s" % key_to_path(key)})
            continue
        wrong = {path_to_key(p): live[p] for p in paths if live[p] != value}
        check = {"key": key, "expected": value, "status": "fail" if wrong else "pass"}
        if "*" in key:
            check["instances"] = len(paths)
        if wrong:
            # A glob names the interfaces that differ; a plain key just its value.
            check["live"] = wrong if "*" in key else live[paths[0]]
        else:
            check["live"] = live[paths[0]] if len(paths) == 1 else value
        checks.append(check)
    for skip in plan["skipped"]:
        path = key_to_path(skip["key"])
        checks.append({"key": skip["key"], "expected": skip["value"], "status": skip["status"],
                       "reason": skip["reason"], "live": live.get(path)})
    return checks


# --------------------------------------------------------------------------
# journald (HOST-JOURNAL)
# --------------------------------------------------------------------------


def parse_cat_config(output, section="Journal"):
    """Effective [section] settings from ``systemd-analyze cat-config``: the last assignment wins.

    Returns ({key: value}, {key: source file}); cat-config prints each file
    after a ``# /path`` comment line, in the order systemd reads them.
    """
    values, sources = {}, {}
    current, source = None, None
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("# /"):
            source = line[2:].strip()
            current = None
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        if current == section and "=" in line:
            key, _sep, value = line.partition("=")
            values[key.strip()] = value.strip()
            sources[key.strip()] = source
    return values, sources


def parse_journal_header(output):
    """Journal files from ``journalctl --header``: [{path, state}]."""
    files, current = [], None
    for line in output.splitlines():
        key, _sep, value = line.partition(":")
        key = key.strip().lower()
        if key == "file path":
            current = {"path": value.strip(), "state": None}
            files.append(current)
        elif key == "state" and current is not None:
            current["state"] = value.strip()
    return files
