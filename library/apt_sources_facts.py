#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: read the live apt sources, keys and holds; judge REPO-MIRROR-ONLY."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: apt_sources_facts
short_description: Read the live apt sources, signing keys and holds, and build the REPO-MIRROR-ONLY record
description:
  - Reads every apt source the host would use, in both formats, from the
    places apt itself reads them (C(Dir::Etc::SourceList) and
    C(Dir::Etc::SourceParts), asked from C(apt-config)), that is one-line
    C(.list) files and deb822 C(.sources) files. Returns every
    enabled source with its URIs, suites, components, Signed-By and options.
  - Cross-checks its own reading with apt's (C(apt-get indextargets)), so a
    source that apt uses but this parser missed still shows up.
  - Reports the held packages (C(apt-mark showhold)), the installed version
    and selection of the packages asked for (C(dpkg-query)), the keyrings the
    sources name (sha256, format, OpenPGP fingerprints and user ids) and the
    globally trusted keyrings.
  - With O(update_probe=true) it runs C(apt-get update) against the live
    sources with a private, temporary lists folder and no post-update hooks,
    so the host's package lists and caches are not touched, and reports
    which repositories were contacted and whether every one succeeded.
    The folder is removed afterwards. The probe also runs in check mode,
    because it changes nothing on the host.
  - With O(expect) it judges the control REPO-MIRROR-ONLY and returns one
    evidence record (the shape of C(module_utils/airgap_evidence.py)).
  - Changes nothing; C(changed) is always false.
version_added: "1.0.0"
author:
  - contributors to this project
options:
  sources_list:
    description: The one-line sources file. Default is what C(apt-config) says (normally C(/etc/apt/sources.list)).
    type: path
  sources_parts:
    description: The folder of C(.list) and C(.sources) files. Default from C(apt-config) (normally C(/etc/apt/sources.list.d)).
    type: path
  trusted_parts:
    description: The folder of globally trusted keyrings. Default from C(apt-config) (normally C(/etc/apt/trusted.gpg.d)).
    type: path
  preferences_parts:
    description: The folder of apt preferences files, listed in the result. Default from C(apt-config).
    type: path
  apt_view:
    description: Also ask apt which repositories it uses (C(apt-get indextargets)) and compare.
    type: bool
    default: true
  packages:
    description: Package names whose installed version and hold state to report.
    type: list
    elements: str
    default: []
  update_probe:
    description:
      - Run C(apt-get update) against the live sources into a private
        temporary lists folder (nothing else on the host is written).
    type: bool
    default: false
  update_timeout:
    description: Seconds apt may wait for each connection during the probe (1 to 600).
    type: int
    default: 30
  expect:
    description:
      - The declared state. When given, the module returns the REPO-MIRROR-ONLY record.
      - C(uri) (required) the only repository URI allowed; C(suites) and
        C(components) allowed for it; C(signed_by) the keyring every source
        must name; C(key_sha256) that keyring's sha256; C(held_packages) a list
        of C({name, version}) (version null for "any") that must be installed
        and held; C(managed_files) a dict of path to exact content.
    type: dict
  role:
    description: Role name written into the record.
    type: str
    default: airgap_repos
attributes:
  check_mode:
    support: full
notes:
  - Debian family only. The module needs C(apt-config), C(apt-get), C(apt-mark)
    and C(dpkg-query), all part of apt and dpkg.
  - A key given inline in a deb822 C(Signed-By) field is reported by its sha256
    and fingerprints; it never equals O(expect.signed_by), which names a file.
"""

EXAMPLES = r"""
- name: Read the live apt sources
  apt_sources_facts:
  register: sources

- name: Judge REPO-MIRROR-ONLY, probing the mirror with a private apt-get update
  apt_sources_facts:
    update_probe: true
    packages: [hello]
    expect:
      uri: http://mirror.lab.internal/debian
      suites: [bookworm]
      components: [main]
      signed_by: /etc/apt/keyrings/airgap-mirror.gpg
      key_sha256: "{{ airgap_repos_key_sha256 }}"
      held_packages: [{name: hello, version: "2.10-3"}]
  register: repo_check

- name: Record it
  ansible.builtin.set_fact:
    compliance_evidence: "{{ compliance_evidence | default([]) + [repo_check.record] }}"
"""

RETURN = r"""
sources:
  description: Every enabled source, one item per entry (line or deb822 stanza).
  returned: always
  type: list
  elements: dict
  sample:
    - {file: /etc/apt/sources.list.d/airgap-mirror.sources, line: 3, format: deb822, types: [deb],
       uris: ["http://mirror.lab.internal/debian"], suites: [bookworm], components: [main],
       signed_by: [/etc/apt/keyrings/airgap-mirror.gpg], trusted: false, options: {}}
uris:
  description: Sorted, de-duplicated URIs of the enabled sources (and of apt's own view).
  returned: always
  type: list
  elements: str
disabled_sources:
  description: "Entries present but disabled: deb822 stanzas with C(Enabled: no) (commented-out one-line entries are not listed)."
  returned: always
  type: list
  elements: dict
files:
  description: C({read, ignored, errors}) - source files read, files in the folder that apt ignores, parse errors.
  returned: always
  type: dict
apt_view:
  description: "What apt itself uses: C({uri, suite, type, entry}) per repository; null when not asked or apt failed."
  returned: always
  type: list
  elements: dict
holds:
  description: Held packages as C(apt-mark showhold) lists them.
  returned: always
  type: list
  elements: str
packages:
  description: "C({name: {version, selection, status}}) for O(packages); version null when not installed."
  returned: always
  type: dict
keyrings:
  description: "C({path: {exists, sha256, format, keys, secret_material, owner_uid, mode}}) for every keyring a source names."
  returned: always
  type: dict
trusted_keyrings:
  description: Globally trusted keyring files (used only by sources without Signed-By).
  returned: always
  type: list
  elements: str
preferences_files:
  description: Files in the preferences folder.
  returned: always
  type: list
  elements: str
update_probe:
  description:
    - "C({ran, rc, ok, contacted, errors, warnings, failed_items, items, lines}); C(ran=false) unless O(update_probe)."
    - C(ok) is true when apt-get exited 0 with no error and no warning. C(failed_items) are the C(Err:) lines,
      which apt also prints for a compression it falls back from.
  returned: always
  type: dict
record:
  description: The REPO-MIRROR-ONLY evidence record; only with O(expect).
  returned: when expect is given
  type: dict
status:
  description: The record's status; only with O(expect).
  returned: when expect is given
  type: str
changed:
  description: Always false.
  returned: always
  type: bool
"""

import base64
import glob
import hashlib
import os
import re
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.airgap_evidence import make_record, worst_status

CONTROL = "REPO-MIRROR-ONLY"
DEFAULT_DIRS = {
    "sources_list": "/etc/apt/sources.list",
    "sources_parts": "/etc/apt/sources.list.d",
    "trusted_parts": "/etc/apt/trusted.gpg.d",
    "preferences_parts": "/etc/apt/preferences.d",
}
APT_CONFIG_KEYS = {
    "sources_list": "Dir::Etc::sourcelist/f",
    "sources_parts": "Dir::Etc::sourceparts/d",
    "trusted_parts": "Dir::Etc::trustedparts/d",
    "preferences_parts": "Dir::Etc::preferencesparts/d",
}
# apt reads only files whose names consist of these characters (sources.list(5)).
APT_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Options that let apt accept what is not signed by the declared key.
INSECURE_OPTIONS = ("trusted", "allow-insecure", "allow-weak", "allow-downgrade-to-insecure")
UPDATE_LINE_RE = re.compile(r"^(Hit|Get|Ign|Err):\d+\s+(\S+)\s*(.*)$")
ARMOR_RE = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.S)


class SourceParseError(ValueError):
    """A sources file apt would reject or that this module cannot read."""


# --------------------------------------------------------------------------
# Parsing sources
# --------------------------------------------------------------------------

def _split_values(value):
    """apt option values are comma separated (one-line) or space separated (deb822)."""
    return [v for v in re.split(r"[,\s]+", value.strip()) if v]


def _truthy(value):
    return str(value).strip().lower() in ("yes", "true", "1", "on")


def parse_one_line(text, path):
    """Parse one-line format text; return (entries, errors).

    Comments run from '#' to the end of the line, as in apt. Options in
    brackets are key=value (also key+= and key-=), values comma separated.
    """
    entries, errors = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^(\S+)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if not match or match.group(1) not in ("deb", "deb-src"):
            errors.append("%s:%d: not a valid source line: %r" % (path, number, raw.strip()))
            continue
        kind, opts_text, uri, suite, rest = match.groups()
        options = {}
        for item in (opts_text or "").split():
            key, sep, value = item.partition("=")
            if not sep:
                errors.append("%s:%d: option %r has no value" % (path, number, item))
                continue
            options[key.rstrip("+-").lower()] = _split_values(value)
        components = rest.split()
        if not suite.endswith("/") and not components:
            errors.append("%s:%d: suite %r needs at least one component" % (path, number, suite))
            continue
        entries.append(_entry(path, number, "one-line", [kind], [uri], [suite], components, options))
    return entries, errors


def _deb822_stanzas(text):
    """Yield (first line number, {field lower: (Field, value)}) for each stanza."""
    fields, start, current = {}, None, None
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield start, fields
            fields, start, current = {}, None, None
            continue
        if raw[0] in " \t":
            if current is None:
                raise SourceParseError("line %d: continuation line outside a field" % number)
            extra = raw.strip()
            fields[current] = (fields[current][0], fields[current][1] + "\n" + ("" if extra == "." else extra))
            continue
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise SourceParseError("line %d: not a 'Field: value' line: %r" % (number, raw))
        current = name.strip().lower()
        if start is None:
            start = number
        fields[current] = (name.strip(), value.strip())
    if fields:
        yield start, fields


def parse_deb822(text, path):
    """Parse deb822 (.sources) text; return (entries, disabled entries, errors)."""
    entries, disabled, errors = [], [], []
    try:
        stanzas = list(_deb822_stanzas(text))
    except SourceParseError as exc:
        return [], [], ["%s: %s" % (path, exc)]
    for number, fields in stanzas:
        missing = [f for f in ("types", "uris", "suites") if not fields.get(f, ("", ""))[1].strip()]
        if missing:
            errors.append("%s:%d: stanza lacks %s" % (path, number, ", ".join(m.capitalize() for m in missing)))
            continue
        suites = fields["suites"][1].split()
        components = fields.get("components", ("", ""))[1].split()
        if any(not s.endswith("/") for s in suites) and not components:
            errors.append("%s:%d: Components is required unless every suite is a flat path ending in '/'" % (path, number))
            continue
        options = {}
        for key, (_name, value) in fields.items():
            if key in ("types", "uris", "suites", "components"):
                continue
            if key == "signed-by" and "BEGIN PGP" in value:
                options[key] = ["inline:" + hashlib.sha256(value.encode("utf-8")).hexdigest()]
                options["_inline_key"] = [value]
            else:
                options[key] = _split_values(value)
        entry = _entry(path, number, "deb822", fields["types"][1].split(), fields["uris"][1].split(),
                       suites, components, options)
        if "enabled" in options and not _truthy(" ".join(options["enabled"])):
            disabled.append(entry)
        else:
            entries.append(entry)
    return entries, disabled, errors


def _entry(path, line, fmt, types, uris, suites, components, options):
    inline = options.pop("_inline_key", None)
    entry = {
        "file": path, "line": line, "format": fmt, "types": types,
        "uris": [u.rstrip("/") for u in uris], "suites": suites, "components": components,
        "signed_by": options.get("signed-by", []),
        "trusted": _truthy(" ".join(options.get("trusted", ["no"]))),
        "options": dict((k, v) for k, v in options.items() if k != "signed-by"),
    }
    if inline:
        entry["inline_key"] = inline[0]
    return entry


def read_sources(sources_list, sources_parts):
    """Read every file apt reads; return {entries, disabled, files: {read, ignored, errors}}."""
    result = {"entries": [], "disabled": [], "files": {"read": [], "ignored": [], "errors": []}}
    candidates = [(sources_list, "one-line")]
    if sources_parts and os.path.isdir(sources_parts):
        for name in sorted(os.listdir(sources_parts)):
            path = os.path.join(sources_parts, name)
            if not os.path.isfile(path):
                continue
            if name.endswith(".list") and APT_FILE_NAME_RE.match(name):
                candidates.append((path, "one-line"))
            elif name.endswith(".sources") and APT_FILE_NAME_RE.match(name):
                candidates.append((path, "deb822"))
            else:
                result["files"]["ignored"].append(path)
    for path, fmt in candidates:
        if not path or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except (IOError, OSError) as exc:
            result["files"]["errors"].append("%s: cannot read (%s)" % (path, exc))
            continue
        result["files"]["read"].append(path)
        if fmt == "one-line":
            entries, errors = parse_one_line(text, path)
            disabled = []
        else:
            entries, disabled, errors = parse_deb822(text, path)
        result["entries"] += entries
        result["disabled"] += disabled
        result["files"]["errors"] += errors
    return result


def source_uris(entries):
    return sorted(set(u for e in entries for u in e["uris"]))


# --------------------------------------------------------------------------
# Keyrings (OpenPGP, RFC 4880 / RFC 9580), standard library only
# --------------------------------------------------------------------------

def dearmor(text):
    """Return the binary packets of the first ASCII-armoured public key block, or None."""
    match = ARMOR_RE.search(text)
    if not match:
        return None
    # Armor headers ("Comment: ...") contain ':' and the CRC line starts with
    # '='; neither can occur in a line of base64 data.
    data = "".join(line.strip() for line in match.group(1).splitlines()
                   if line.strip() and ":" not in line and not line.strip().startswith("="))
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, TypeError):
        return None


def iter_packets(data):
    """Yield (tag, body) for each OpenPGP packet; raise ValueError on a malformed stream."""
    pos = 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x80:
            raise ValueError("byte %d is not a packet header" % pos)
        if header & 0x40:
            tag = header & 0x3F
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 2:pos + 6], "big"), pos + 6
            else:
                raise ValueError("partial body length in a key packet")
        else:
            tag = (header >> 2) & 0x0F
            kind = header & 0x03
            if kind == 3:
                length, pos = len(data) - pos - 1, pos + 1
            else:
                size = (1, 2, 4)[kind]
                length, pos = int.from_bytes(data[pos + 1:pos + 1 + size], "big"), pos + 1 + size
        body = data[pos:pos + length]
        if len(body) != length:
            raise ValueError("packet of tag %d is truncated" % tag)
        pos += length
        yield tag, body


def key_fingerprint(body):
    """Fingerprint of a public (sub)key packet body: SHA-1 for v4, SHA-256 for v5 and v6."""
    version = body[0]
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    return None


def describe_key_data(data):
    """Primary keys (fingerprint, version, subkeys, user ids) and warnings for keyring bytes."""
    keys, warnings, secret = [], [], False
    try:
        for tag, body in iter_packets(data):
            if tag == 6:
                keys.append({"fingerprint": key_fingerprint(body), "version": body[0], "subkeys": [], "uids": []})
            elif tag == 14 and keys:
                keys[-1]["subkeys"].append(key_fingerprint(body))
            elif tag == 13 and keys:
                keys[-1]["uids"].append(body.decode("utf-8", "replace"))
            elif tag in (5, 7):
                secret = True
    except (ValueError, IndexError) as exc:
        warnings.append("not a valid OpenPGP keyring: %s" % exc)
    for key in keys:
        if key["fingerprint"] is None:
            warnings.append("a version %d key has no supported fingerprint" % key["version"])
    return keys, warnings, secret


def describe_keyring(path):
    """What an auditor needs to know about one keyring file."""
    info = {"path": path, "exists": False}
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        info["error"] = str(exc)
        return info
    info.update(exists=True, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                owner_uid=st.st_uid, mode="%04o" % stat.S_IMODE(st.st_mode),
                world_writable=bool(st.st_mode & stat.S_IWOTH))
    if data[8:12] == b"KBXf":
        info.update(format="keybox", keys=[], secret_material=False,
                    warnings=["GnuPG keybox format: apt cannot use it (export the key with gpg --export)"])
        return info
    text = data.decode("ascii", "replace")
    if "-----BEGIN PGP" in text:
        packets = dearmor(text)
        info["format"] = "armored"
        if packets is None:
            info.update(keys=[], secret_material="PRIVATE KEY" in text,
                        warnings=["the armoured block could not be decoded"])
            return info
    else:
        packets = data
        info["format"] = "binary"
    keys, warnings, secret = describe_key_data(packets)
    if not keys:
        warnings.append("no public key found")
    info.update(keys=keys, secret_material=secret, warnings=warnings)
    return info


# --------------------------------------------------------------------------
# Commands (read-only)
# --------------------------------------------------------------------------

def apt_config_dirs(module):
    """Resolve the source, trusted and preference locations as apt sees them."""
    dirs = dict(DEFAULT_DIRS)
    args = ["apt-config", "shell"]
    for key, spec in APT_CONFIG_KEYS.items():
        args += [key.upper(), spec]
    rc, out, _err = module.run_command(args, environ_update={"LC_ALL": "C"})
    if rc == 0:
        for line in out.splitlines():
            name, _sep, value = line.partition("=")
            key = name.strip().lower()
            if key in dirs:
                dirs[key] = value.strip().strip("'\"").rstrip("/") or dirs[key]
    for key in dirs:
        if module.params.get(key):
            dirs[key] = module.params[key]
    return dirs


def parse_indextargets(text):
    """Rows of `apt-get indextargets --format ...` (tab separated) into unique repositories."""
    seen, out = set(), []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        row = (parts[0].rstrip("/"), parts[1], parts[2], parts[3].rsplit(":", 1)[0])
        if row not in seen:
            seen.add(row)
            out.append({"uri": row[0], "suite": row[1], "type": row[2], "entry": parts[3]})
    return out


def apt_view(module):
    fmt = "$(REPO_URI)\t$(RELEASE)\t$(TARGET_OF)\t$(SOURCESENTRY)"
    rc, out, err = module.run_command(["apt-get", "indextargets", "--no-release-info", "--format", fmt],
                                      environ_update={"LC_ALL": "C"})
    if rc != 0:
        return None, "apt-get indextargets failed (rc %d): %s" % (rc, err.strip())
    return parse_indextargets(out), None


def parse_showhold(text):
    return sorted(set(line.strip() for line in text.splitlines() if line.strip()))


def parse_dpkg_query(text):
    """`dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n'` output into {name: {...}}."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        name, version, status = parts[0], parts[1], parts[2].split()
        installed = len(status) == 3 and status[2] in ("installed", "half-configured", "unpacked")
        out[name] = {"version": version if installed and version else None,
                     "selection": status[0] if status else None,
                     "status": " ".join(status)}
    return out


def package_state(module, names):
    """Installed version, selection (install/hold) and status of each package."""
    if not names:
        return {}, None
    bases = sorted(set(n.split(":", 1)[0] for n in names))
    rc, out, err = module.run_command(["dpkg-query", "-W", "-f=${Package}\t${Version}\t${Status}\n"] + bases,
                                      environ_update={"LC_ALL": "C"})
    # rc 1 only means some package is unknown to dpkg: the others are still listed.
    if rc not in (0, 1):
        return {}, "dpkg-query failed (rc %d): %s" % (rc, err.strip())
    found = parse_dpkg_query(out)
    state = {}
    for name in names:
        state[name] = found.get(name.split(":", 1)[0], {"version": None, "selection": None, "status": "not-installed"})
    return state, None


def parse_update_output(text):
    """Lines of `apt-get update` into contacted repositories, errors and warnings.

    "Err:" lines are kept apart from errors: apt prints one for each
    compression it tries and falls back from. What failed for good is in the
    "E:" lines and the exit code (every warning is an error in the probe).
    """
    contacted, errors, warnings, failed, items = [], [], [], [], []
    for line in text.splitlines():
        match = UPDATE_LINE_RE.match(line.strip())
        if match:
            status, uri, what = match.groups()
            items.append({"status": status, "uri": uri.rstrip("/"), "what": what})
            if uri.rstrip("/") not in contacted:
                contacted.append(uri.rstrip("/"))
            if status == "Err" and line.strip() not in failed:
                failed.append(line.strip())
        elif line.startswith("E:"):
            errors.append(line.strip())
        elif line.startswith("W:"):
            warnings.append(line.strip())
    return {"contacted": contacted, "errors": errors, "warnings": warnings, "failed_items": failed, "items": items}


def probe_config(lists_dir, timeout):
    """apt configuration for the probe: private lists, no caches, no hooks, every warning an error."""
    return "\n".join([
        # Hooks (command-not-found, appstream ...) would write outside the private folder.
        "#clear APT::Update::Pre-Invoke;",
        "#clear APT::Update::Post-Invoke;",
        "#clear APT::Update::Post-Invoke-Success;",
        'Dir::State::Lists "%s/";' % lists_dir,
        'Dir::Cache::pkgcache "";',
        'Dir::Cache::srcpkgcache "";',
        'APT::Update::Error-Mode "any";',
        'Acquire::Retries "0";',
        'Acquire::http::Timeout "%d";' % timeout,
        'Acquire::https::Timeout "%d";' % timeout,
    ]) + "\n"


def run_update_probe(module, timeout):
    """apt-get update against the live sources into a private folder, removed afterwards."""
    work = tempfile.mkdtemp(prefix="airgap-apt-probe-")
    try:
        # apt downloads as the unprivileged _apt user, which must reach partial/.
        os.chmod(work, 0o755)
        lists = os.path.join(work, "lists")
        os.makedirs(os.path.join(lists, "partial"))
        os.chmod(lists, 0o755)
        conf = os.path.join(work, "probe.conf")
        with open(conf, "w") as handle:
            handle.write(probe_config(lists, timeout))
        rc, out, err = module.run_command(["apt-get", "-c", conf, "update"], environ_update={"LC_ALL": "C"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    parsed = parse_update_output(out + "\n" + err)
    parsed.update(ran=True, rc=rc, ok=(rc == 0 and not parsed["errors"] and not parsed["warnings"]),
                  lines=[line for line in (out + "\n" + err).splitlines() if line.strip()][-60:])
    return parsed


# --------------------------------------------------------------------------
# Judging REPO-MIRROR-ONLY
# --------------------------------------------------------------------------

def _check(name, status, detail, **extra):
    item = {"check": name, "status": status, "detail": detail}
    item.update(extra)
    return item


def check_sources(observed, expect):
    """Every enabled source (ours and apt's view) is the declared mirror, suite and components."""
    uri = expect["uri"].rstrip("/")
    suites = set(expect.get("suites") or [])
    components = set(expect.get("components") or [])
    problems = []
    for entry in observed["sources"]:
        where = "%s:%d" % (entry["file"], entry["line"])
        for src in entry["uris"]:
            if src != uri:
                problems.append("%s: %s is not the internal mirror %s" % (where, src, uri))
        if suites and set(entry["suites"]) - suites:
            problems.append("%s: suites %s not declared" % (where, sorted(set(entry["suites"]) - suites)))
        if components and set(entry["components"]) - components:
            problems.append("%s: components %s not declared" % (where, sorted(set(entry["components"]) - components)))
    parsed = set(source_uris(observed["sources"]))
    for row in observed.get("apt_view") or []:
        # Rows this parser already reported are not repeated; the others are sources it missed.
        if row["uri"] != uri and row["uri"] not in parsed:
            problems.append("apt uses %s %s (%s), which is not the internal mirror" % (row["uri"], row["suite"], row["entry"]))
    for error in observed["files"]["errors"]:
        problems.append("unreadable source: %s" % error)
    if not observed["sources"]:
        problems.append("no enabled apt source at all")
    if observed.get("apt_view_error"):
        # Without apt's own view nothing can be said about sources this parser missed.
        return _check("sources", "error", "; ".join([observed["apt_view_error"]] + problems))
    if problems:
        return _check("sources", "fail", "; ".join(problems))
    return _check("sources", "pass", "every enabled source is %s (apt's own view agrees)" % uri)


def check_signed_by(observed, expect):
    """Every source names the declared keyring and no option waives signature checks."""
    problems = []
    for entry in observed["sources"]:
        where = "%s:%d" % (entry["file"], entry["line"])
        if entry["signed_by"] != [expect["signed_by"]]:
            problems.append("%s: Signed-By is %s, not %s" % (where, entry["signed_by"] or "missing", expect["signed_by"]))
        waived = [o for o in INSECURE_OPTIONS if o in entry["options"] and _truthy(" ".join(entry["options"][o]))]
        if waived:
            problems.append("%s: %s weakens signature checks" % (where, ", ".join(waived)))
    if problems:
        return _check("signed_by", "fail", "; ".join(problems))
    if not observed["sources"]:
        return _check("signed_by", "fail", "no source to check")
    return _check("signed_by", "pass", "every source is checked against %s only" % expect["signed_by"])


def check_key(observed, expect):
    """The keyring exists, is the pinned file, is usable by apt and only root can change it."""
    path = expect["signed_by"]
    info = observed["keyrings"].get(path) or {"exists": False}
    if not info.get("exists"):
        return _check("signing_key", "fail", "%s does not exist" % path)
    problems = []
    want = (expect.get("key_sha256") or "").lower()
    if not want:
        problems.append("no expected sha256 was declared")
    elif info["sha256"] != want:
        problems.append("sha256 %s is not the pinned %s" % (info["sha256"], want))
    if info.get("format") == "armored" and not path.endswith(".asc"):
        problems.append("an armoured key must be named *.asc for apt")
    if info.get("format") == "binary" and path.endswith(".asc"):
        problems.append("a binary keyring must not be named *.asc")
    if info.get("format") == "keybox":
        problems.append("keybox format is not usable by apt")
    if not info.get("keys"):
        problems.append("no public key in it")
    if info.get("secret_material"):
        problems.append("it contains secret key material")
    if info.get("owner_uid") != 0 or info.get("world_writable"):
        problems.append("owner uid %s, mode %s: must be owned by root and not world-writable"
                        % (info.get("owner_uid"), info.get("mode")))
    fingerprints = [k["fingerprint"] for k in info.get("keys", [])]
    if problems:
        return _check("signing_key", "fail", "%s: %s" % (path, "; ".join(problems)), fingerprints=fingerprints)
    return _check("signing_key", "pass", "%s is the pinned key (sha256 %s)" % (path, info["sha256"]),
                  fingerprints=fingerprints)


def check_update(observed, expect):
    probe = observed["update_probe"]
    if not probe.get("ran"):
        return _check("update_probe", "skipped", "apt-get update was not probed (update_probe=false)")
    uri = expect["uri"].rstrip("/")
    others = [u for u in probe["contacted"] if u != uri]
    if others:
        return _check("update_probe", "fail", "apt-get update contacted %s besides the mirror" % ", ".join(others),
                      contacted=probe["contacted"])
    if not probe["ok"] or not probe["contacted"]:
        reason = "; ".join(probe["errors"] + probe.get("warnings", []) + probe.get("failed_items", [])) or (
            "nothing was fetched" if not probe["contacted"] else "rc %s" % probe["rc"])
        return _check("update_probe", "fail", "apt-get update against the live sources failed: %s" % reason,
                      contacted=probe["contacted"])
    return _check("update_probe", "pass", "apt-get update succeeded, signature checked, and contacted only %s" % uri,
                  contacted=probe["contacted"])


def check_held(observed, expect):
    wanted = expect.get("held_packages") or []
    if observed.get("package_error"):
        return _check("held_packages", "error", observed["package_error"])
    if not wanted:
        return _check("held_packages", "pass", "no packages are declared as held", packages={})
    holds = set(observed["holds"])
    problems, seen = [], {}
    for item in wanted:
        name, version = item["name"], item.get("version")
        state = observed["packages"].get(name) or {}
        seen[name] = {"version": state.get("version"), "held": name in holds or name.split(":")[0] in holds,
                      "expected_version": version}
        if not state.get("version"):
            problems.append("%s is not installed" % name)
            continue
        if version and state["version"] != version:
            problems.append("%s is at %s, not %s" % (name, state["version"], version))
        if not seen[name]["held"] or state.get("selection") != "hold":
            problems.append("%s is not held" % name)
    if problems:
        return _check("held_packages", "fail", "; ".join(problems), packages=seen)
    return _check("held_packages", "pass", "%d package(s) installed at the declared version and held" % len(wanted),
                  packages=seen)


def check_managed_files(expected_files):
    drifted = []
    for path, content in sorted((expected_files or {}).items()):
        try:
            with open(path, "rb") as handle:
                live = handle.read().decode("utf-8", "replace")
        except (IOError, OSError):
            drifted.append("%s is missing" % path)
            continue
        if live != content:
            drifted.append("%s differs from the declared content" % path)
    if drifted:
        return _check("managed_files", "fail", "; ".join(drifted))
    return _check("managed_files", "pass", "%d managed file(s) as declared" % len(expected_files or {}),
                  files=sorted(expected_files or {}))


def build_record(observed, expect, role="airgap_repos"):
    """The REPO-MIRROR-ONLY evidence record from what was observed and what was declared."""
    checks = [check_sources(observed, expect), check_signed_by(observed, expect), check_key(observed, expect),
              check_update(observed, expect), check_held(observed, expect),
              check_managed_files(expect.get("managed_files"))]
    deciding = [c["status"] for c in checks if c["status"] != "skipped"]
    status = worst_status(deciding)
    failing = [c for c in checks if c["status"] not in ("pass", "skipped")]
    summary = ("; ".join("%s: %s" % (c["check"], c["detail"]) for c in failing) if failing
               else "only the internal mirror %s is configured, signed by the pinned key, reachable, and "
                    "the declared packages are held" % expect["uri"])
    evidence = {
        "result": summary,
        "checks": checks,
        "mirror": expect["uri"],
        "sources": [{k: e[k] for k in ("file", "line", "format", "types", "uris", "suites", "components",
                                       "signed_by", "trusted")} for e in observed["sources"]],
        "apt_view": observed.get("apt_view"),
        "keyring": observed["keyrings"].get(expect["signed_by"]),
        "trusted_keyrings": observed.get("trusted_keyrings"),
        "preferences_files": observed.get("preferences_files"),
        "holds": observed["holds"],
        "update_probe": {k: observed["update_probe"].get(k)
                         for k in ("ran", "rc", "ok", "contacted", "errors", "failed_items")},
        "ignored_files": observed["files"]["ignored"],
    }
    return make_record(CONTROL, role, status, evidence)


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------

def validate_expect(expect):
    """Return an error message for a malformed expect, else None."""
    if expect is None:
        return None
    if not isinstance(expect.get("uri"), str) or "://" not in expect.get("uri", ""):
        return "expect.uri must be the mirror's repository URL, got %r" % (expect.get("uri"),)
    if not isinstance(expect.get("signed_by"), str) or not expect["signed_by"].startswith("/"):
        return "expect.signed_by must be the absolute path of the keyring, got %r" % (expect.get("signed_by"),)
    for key in ("suites", "components", "held_packages"):
        if not isinstance(expect.get(key, []), list):
            return "expect.%s must be a list" % key
    for index, item in enumerate(expect.get("held_packages", [])):
        if not isinstance(item, dict) or not item.get("name"):
            return "expect.held_packages[%d] must be {name, version}" % index
    if not isinstance(expect.get("managed_files", {}) or {}, dict):
        return "expect.managed_files must be a dict of path to content"
    return None


def observe(module, dirs, packages, update_probe, timeout, expect):
    """Everything the module reads from the host."""
    read = read_sources(dirs["sources_list"], dirs["sources_parts"])
    observed = {"sources": read["entries"], "disabled_sources": read["disabled"], "files": read["files"],
                "apt_view": None, "apt_view_error": None}
    if module.params["apt_view"]:
        observed["apt_view"], observed["apt_view_error"] = apt_view(module)
    rc, out, err = module.run_command(["apt-mark", "showhold"], environ_update={"LC_ALL": "C"})
    observed["holds"] = parse_showhold(out) if rc == 0 else []
    names = list(packages) + [h["name"] for h in (expect or {}).get("held_packages", []) if h["name"] not in packages]
    observed["packages"], observed["package_error"] = package_state(module, names)
    if rc != 0:
        observed["package_error"] = "apt-mark showhold failed (rc %d): %s" % (rc, err.strip())
    keyrings = set(p for e in read["entries"] for p in e["signed_by"] if p.startswith("/"))
    if expect:
        keyrings.add(expect["signed_by"])
    observed["keyrings"] = dict((p, describe_keyring(p)) for p in sorted(keyrings))
    for entry in read["entries"]:
        if entry.get("inline_key"):
            keys, warnings, _secret = describe_key_data(dearmor(entry["inline_key"]) or b"")
            observed["keyrings"][entry["signed_by"][0]] = {"inline": True, "keys": keys, "warnings": warnings}
            del entry["inline_key"]
    trusted = dirs["trusted_parts"]
    observed["trusted_keyrings"] = sorted(glob.glob(os.path.join(trusted, "*.gpg")) + glob.glob(os.path.join(trusted, "*.asc")))
    if os.path.exists("/etc/apt/trusted.gpg"):
        observed["trusted_keyrings"].insert(0, "/etc/apt/trusted.gpg")
    prefs = dirs["preferences_parts"]
    observed["preferences_files"] = sorted(os.path.join(prefs, n) for n in os.listdir(prefs)) if os.path.isdir(prefs) else []
    observed["update_probe"] = run_update_probe(module, timeout) if update_probe else {
        "ran": False, "rc": None, "ok": None, "contacted": [], "errors": [], "warnings": [], "failed_items": [],
        "lines": []}
    return observed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sources_list=dict(type="path"),
            sources_parts=dict(type="path"),
            trusted_parts=dict(type="path"),
            preferences_parts=dict(type="path"),
            apt_view=dict(type="bool", default=True),
            packages=dict(type="list", elements="str", default=[]),
            update_probe=dict(type="bool", default=False),
            update_timeout=dict(type="int", default=30),
            expect=dict(type="dict"),
            role=dict(type="str", default="airgap_repos"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not 1 <= params["update_timeout"] <= 600:
        module.fail_json(msg="update_timeout must be from 1 to 600 seconds, got %d" % params["update_timeout"])
    problem = validate_expect(params["expect"])
    if problem:
        module.fail_json(msg=problem)
    dirs = apt_config_dirs(module)
    observed = observe(module, dirs, params["packages"], params["update_probe"], params["update_timeout"], params["expect"])
    result = {
        "changed": False,
        "sources": observed["sources"],
        "disabled_sources": observed["disabled_sources"],
        "uris": sorted(set(source_uris(observed["sources"])) | set(r["uri"] for r in observed["apt_view"] or [])),
        "files": observed["files"],
        "apt_view": observed["apt_view"],
        "apt_view_error": observed["apt_view_error"],
        "holds": observed["holds"],
        "packages": observed["packages"],
        "keyrings": observed["keyrings"],
        "trusted_keyrings": observed["trusted_keyrings"],
        "preferences_files": observed["preferences_files"],
        "update_probe": observed["update_probe"],
        "dirs": dirs,
    }
    if params["expect"]:
        record = build_record(observed, params["expect"], params["role"])
        result.update(record=record, status=record["status"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
