# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the airgap_repos role: input validation and the files it writes.

The role's validate step calls :func:`airgap_repos_settings` once per host,
before anything changes. It checks every input and collects *all* problems,
each naming the variable (and the list index), into one error, so a bad
inventory stops the play with one readable message.

The result ("settings") is the only thing the later steps use: the apt
source, the pin and the apt configuration are rendered from it here, in
Python, so that configure.yml writes exactly the text that verify.yml later
compares the live files with (no second rendering that could differ by a
newline).

Design decisions an auditor should find in one place:

* **Every URL is the mirror's.** ``airgap_mirror_url`` must be http(s) with a
  host and no credentials; the key URL must lie under it; no other input may
  contain a URL at all. A typo can then not send the host to the internet.
* **A downloaded key must be pinned.** The mirror serving its own signing key
  proves nothing: whoever controls the mirror controls that key. A key taken
  from ``airgap_repos_key_url`` is trusted only with
  ``airgap_repos_key_sha256``, checked before the file is put in place.
  A key given inline (``airgap_repos_key_content``) is its own pin.
* **The pin is "first match wins".** apt gives a version the priority of the
  first general record that matches it, so the mirror's record comes first
  (990) and a catch-all ``origin *`` record (-1: never install) second. The
  installed packages (dpkg status) are not an origin and keep 100, so the
  pin never makes apt remove what is already there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import posixpath
import re
import sys

from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

try:
    from ansible.module_utils.airgap_evidence import make_record
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record  # noqa: E402

ROLE = "airgap_repos"
CONTROL = "REPO-MIRROR-ONLY"
MIRROR_PRIORITY = 990

# Debian policy 5.6.1 / 5.6.12: package names and versions.
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
VERSION_RE = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$")
# RPM names are looser (upper case, underscores); still no spaces or shell characters.
RPM_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
# A suite name, or a flat repository's path ("./", "stable/"); never "..".
SUITE_RE = re.compile(r"^(?!.*\.\.)(\./|[A-Za-z0-9][A-Za-z0-9._/-]*)$")
COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
PATH_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~+-]+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
URL_IN_TEXT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Characters apt's URItoFileName() quotes as %xx (apt-pkg/contrib/strutl.cc).
_APT_QUOTED = set('\\|{}[]<>"^~_=!@#$%^&*')
ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
MANAGED = "Managed by Ansible (role airgap_repos)"

# The names of the inputs, as the user writes them (errors name these).
V_MIRROR = "airgap_mirror_url"
V_PATH = "airgap_repos_apt_path"
V_SUITE = "airgap_repos_suite"
V_COMPONENTS = "airgap_repos_components"
V_KEY_URL = "airgap_repos_key_url"
V_KEY_CONTENT = "airgap_repos_key_content"
V_KEY_SHA = "airgap_repos_key_sha256"
V_HELD = "airgap_repos_held_packages"
V_REMOVE = "airgap_repos_remove_other_sources"
V_RECOMMENDS = "airgap_repos_install_recommends"
V_DNF = "airgap_repos_dnf_repos"
V_FAMILY = "ansible_facts.os_family"


class RepoConfigError(ValueError):
    """Invalid airgap_repos input; the message lists every problem found."""


# --------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------

def parse_mirror_url(value):
    """Split airgap_mirror_url into its parts, or raise RepoConfigError naming the variable."""
    text = value if isinstance(value, str) else None
    shown = repr(value)
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise RepoConfigError("%s must be an http:// or https:// URL with a host name, got %s" % (V_MIRROR, shown))
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise RepoConfigError("%s %s is not a valid URL (%s)" % (V_MIRROR, shown, exc))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RepoConfigError("%s must be an http:// or https:// URL with a host name, got %s" % (V_MIRROR, shown))
    if parts.username is not None or parts.password is not None:
        raise RepoConfigError(
            "%s %s carries credentials; they would be written into the apt source in clear. "
            "Put them in /etc/apt/auth.conf.d instead" % (V_MIRROR, shown))
    if parts.query or parts.fragment:
        raise RepoConfigError("%s %s must not have a query or fragment" % (V_MIRROR, shown))
    path = parts.path.rstrip("/")
    for segment in [s for s in path.split("/") if s]:
        if segment in (".", "..") or not PATH_SEGMENT_RE.match(segment):
            raise RepoConfigError("%s %s has an unusual path segment %r" % (V_MIRROR, shown, segment))
    host = parts.hostname.lower()
    netloc = ("[%s]" % host if ":" in host else host) + ("" if port is None else ":%d" % port)
    return {"scheme": parts.scheme, "host": host, "port": port,
            "url": "%s://%s%s" % (parts.scheme, netloc, path), "path": path}


def _relative_path(value, var):
    """A path below the mirror (no scheme, no '..'), without surrounding slashes."""
    if not isinstance(value, str) or not value.strip("/"):
        raise RepoConfigError("%s must be a non-empty path below %s, got %r" % (var, V_MIRROR, value))
    if URL_IN_TEXT_RE.search(value) or value.startswith("//"):
        raise RepoConfigError("%s must be a path below %s, not a URL: %r" % (var, V_MIRROR, value))
    segments = value.strip("/").split("/")
    for segment in segments:
        if segment in (".", "..") or not PATH_SEGMENT_RE.match(segment):
            raise RepoConfigError("%s %r has an invalid path segment %r" % (var, value, segment))
    return "/".join(segments)


def resolve_on_mirror(value, mirror, var):
    """Resolve a URL or a path relative to the mirror; refuse anything not under the mirror."""
    if not isinstance(value, str) or not value:
        raise RepoConfigError("%s must be a URL on the internal mirror or a path below %s, got %r" % (var, V_MIRROR, value))
    if not URL_IN_TEXT_RE.match(value):
        return mirror["url"] + "/" + _relative_path(value, var)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise RepoConfigError("%s %r is not a valid URL (%s)" % (var, value, exc))
    if parts.scheme not in ("http", "https"):
        raise RepoConfigError("%s %r must be http:// or https:// on the internal mirror" % (var, value))
    if parts.username is not None or parts.query or parts.fragment:
        raise RepoConfigError("%s %r must not carry credentials, a query or a fragment" % (var, value))
    same_host = (parts.hostname or "").lower() == mirror["host"] and port == mirror["port"]
    path = posixpath.normpath(parts.path) if parts.path else ""
    under = path.startswith(mirror["path"] + "/") and ".." not in parts.path.split("/")
    if not same_host or not under:
        raise RepoConfigError("%s %r is not on the internal mirror: it must lie under %s %s"
                              % (var, value, V_MIRROR, mirror["url"]))
    return "%s://%s%s" % (parts.scheme, mirror["url"].split("://", 1)[1].split("/", 1)[0], path)


def apt_list_prefix(uri, suite):
    """The file name prefix apt uses in /var/lib/apt/lists for a source.

    Mirrors apt's URItoFileName(): drop the scheme, quote the characters apt
    quotes (and control and non-ASCII bytes) as %xx, then replace '/' with '_'.
    Flat repositories (suite ending in '/') have no 'dists/' part.
    """
    base = uri.split("://", 1)[-1].rstrip("/") + "/"
    base += suite if suite.endswith("/") else "dists/%s/" % suite
    out = []
    for char in base.encode("utf-8"):
        if chr(char) in _APT_QUOTED or char <= 0x20 or char >= 0x7F:
            out.append("%%%02x" % char)
        else:
            out.append(chr(char))
    return "".join(out).replace("/", "_")


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

def _held_entry(index, entry, family, errors):
    """Normalise one airgap_repos_held_packages entry, collecting errors."""
    where = "%s[%d]" % (V_HELD, index)
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        errors.append("%s must be a package name or {name, version}, got %r" % (where, entry))
        return None
    unknown = sorted(set(entry) - {"name", "version"})
    if unknown:
        errors.append("%s has unknown keys %s (allowed: name, version)" % (where, ", ".join(unknown)))
    name = entry.get("name")
    version = entry.get("version")
    if version is not None and not isinstance(version, str):
        version = str(version)  # YAML reads 2.10 as a float; keep what the user most likely meant
    if not isinstance(name, str) or not name:
        errors.append("%s has no package name" % where)
        return None
    if family == "RedHat":
        base, arch = name, None
        ok = bool(RPM_NAME_RE.match(name))
    else:
        base, _sep, arch = name.partition(":")
        ok = bool(PACKAGE_RE.match(base)) and (not arch or bool(ARCH_RE.match(arch)))
    if not ok:
        errors.append("%s: %r is not a valid package name (lower case letters, digits, '+', '-', '.', "
                      "at least 2 characters; optionally ':arch')" % (where, name))
        return None
    if version is not None and (not version or not VERSION_RE.match(version)):
        errors.append("%s %r: version %r is not a valid package version" % (where, name, version))
        return None
    if version is None:
        spec = name
    elif family == "RedHat":
        spec = "%s-%s" % (name, version)
    else:
        spec = "%s=%s" % (name, version)
    return {"name": name, "package": base, "arch": arch or None, "version": version, "spec": spec}


def _normalise_held(value, family, errors):
    if value is None:
        value = []
    if not isinstance(value, list):
        errors.append("%s must be a list, got %r" % (V_HELD, value))
        return []
    held, seen = [], {}
    for index, entry in enumerate(value):
        item = _held_entry(index, entry, family, errors)
        if item is None:
            continue
        if item["name"] in seen:
            errors.append("%s[%d]: %r is listed twice (also at index %d)" % (V_HELD, index, item["name"], seen[item["name"]]))
            continue
        seen[item["name"]] = index
        held.append(item)
    return held


def _normalise_key(inputs, mirror, keyring_dir, key_name, family, errors):
    url = inputs.get(V_KEY_URL) or ""
    content = inputs.get(V_KEY_CONTENT) or ""
    pin = inputs.get(V_KEY_SHA) or ""
    if not isinstance(pin, str) or (pin and not SHA256_RE.match(pin.strip().lower())):
        errors.append("%s must be 64 hexadecimal characters (the sha256 of the key file), got %r" % (V_KEY_SHA, pin))
        pin = ""
    pin = pin.strip().lower()
    if url and content:
        errors.append("set only one of %s and %s" % (V_KEY_URL, V_KEY_CONTENT))
        return None
    if not url and not content:
        errors.append("the mirror's signing key is missing: set %s (with %s) or %s" % (V_KEY_URL, V_KEY_SHA, V_KEY_CONTENT))
        return None
    if content:
        if not isinstance(content, str) or ARMOR_BEGIN not in content or ARMOR_END not in content:
            errors.append("%s must be an ASCII-armoured public key (%s ... %s)" % (V_KEY_CONTENT, ARMOR_BEGIN, ARMOR_END))
            return None
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        if pin and pin != digest:
            errors.append("%s %s does not match the sha256 of %s (%s)" % (V_KEY_SHA, pin, V_KEY_CONTENT, digest))
        return {"source": "content", "url": None, "content": content, "sha256": digest, "armored": True,
                "file": "%s/%s.asc" % (keyring_dir, key_name)}
    try:
        resolved = resolve_on_mirror(url, mirror, V_KEY_URL)
    except RepoConfigError as exc:
        errors.append(str(exc))
        return None
    if not pin:
        errors.append("%s is required with %s: the mirror serving its own signing key proves nothing "
                      "unless the key's sha256 was obtained out of band" % (V_KEY_SHA, V_KEY_URL))
        return None
    armored = resolved.lower().endswith(".asc")
    if family == "RedHat" and not armored:
        errors.append("%s %r: on the RedHat family the key must be ASCII-armoured and named *.asc (rpm reads no "
                      "binary keyrings)" % (V_KEY_URL, url))
        return None
    return {"source": "url", "url": resolved, "content": None, "sha256": pin, "armored": armored,
            "file": "%s/%s.%s" % (keyring_dir, key_name, "asc" if armored else "gpg")}


def _normalise_words(value, var, regex, errors, allow_empty=False, what="name"):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or (not value and not allow_empty):
        errors.append("%s must be a non-empty list, got %r" % (var, value))
        return []
    out = []
    for index, item in enumerate(value):
        if isinstance(item, str) and URL_IN_TEXT_RE.search(item):
            errors.append("%s[%d] %r is a URL; the only URL this role accepts is %s" % (var, index, item, V_MIRROR))
        elif not isinstance(item, str) or not regex.match(item):
            errors.append("%s[%d] %r is not a valid %s" % (var, index, item, what))
        elif item in out:
            errors.append("%s[%d] %r is listed twice" % (var, index, item))
        else:
            out.append(item)
    return out


def _normalise_dnf(value, mirror, errors):
    if not isinstance(value, list) or not value:
        errors.append("%s must be a non-empty list of {name, path}, got %r" % (V_DNF, value))
        return []
    repos = []
    for index, entry in enumerate(value):
        where = "%s[%d]" % (V_DNF, index)
        if not isinstance(entry, dict) or set(entry) - {"name", "path"}:
            errors.append("%s must be {name, path}, got %r" % (where, entry))
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not REPO_ID_RE.match(name):
            errors.append("%s: name %r is not a valid repository id" % (where, name))
            continue
        try:
            path = _relative_path(entry.get("path"), where + ".path")
        except RepoConfigError as exc:
            errors.append(str(exc))
            continue
        repos.append({"id": "airgap-" + name, "name": name, "baseurl": mirror["url"] + "/" + path})
    return repos


def _bool(inputs, var, default, errors):
    """A boolean as Ansible reads one (true/false, yes/no ...), else an error."""
    value = inputs.get(var, default)
    try:
        return boolean(value, strict=True)
    except TypeError:
        errors.append("%s must be true or false, got %r" % (var, value))
        return default


def repos_settings(mirror_url, inputs, paths=None, family="Debian"):
    """Validate the role's input and return its normalised settings.

    ``inputs`` maps each variable name (``airgap_repos_suite`` ...) to its
    value; ``paths`` holds the OS family's fixed file locations
    (vars/<family>.yml). Raises RepoConfigError listing every problem.
    """
    inputs = dict(inputs or {})
    paths = dict(paths or {})
    errors = []
    if family not in ("Debian", "RedHat"):
        raise RepoConfigError("%s %r is not supported: airgap_repos manages the Debian and RedHat families only"
                              % (V_FAMILY, family))
    try:
        mirror = parse_mirror_url(mirror_url)
    except RepoConfigError as exc:
        # Everything else is judged relative to the mirror; report it alone.
        raise RepoConfigError(str(exc))
    settings = {"family": family, "mirror": mirror, "mirror_url": mirror["url"], "mirror_host": mirror["host"],
                "priority": MIRROR_PRIORITY,
                "remove_other_sources": _bool(inputs, V_REMOVE, True, errors),
                "install_recommends": _bool(inputs, V_RECOMMENDS, False, errors),
                "paths": paths}
    settings["key"] = _normalise_key(inputs, mirror, paths.get("keyring_dir", "/etc/apt/keyrings"),
                                     paths.get("key_name", "airgap-mirror"), family, errors)
    settings["held"] = _normalise_held(inputs.get(V_HELD), family, errors)
    if family == "Debian":
        try:
            settings["apt_uri"] = mirror["url"] + "/" + _relative_path(inputs.get(V_PATH, "debian"), V_PATH)
        except RepoConfigError as exc:
            errors.append(str(exc))
            settings["apt_uri"] = None
        suite = inputs.get(V_SUITE)
        if isinstance(suite, str) and URL_IN_TEXT_RE.search(suite):
            errors.append("%s %r is a URL; the only URL this role accepts is %s" % (V_SUITE, suite, V_MIRROR))
            suite = None
        elif not isinstance(suite, str) or not SUITE_RE.match(suite):
            errors.append("%s %r is not a valid suite name (for example bookworm)" % (V_SUITE, suite))
            suite = None
        settings["suite"] = suite
        flat = bool(suite and suite.endswith("/"))
        components = _normalise_words(inputs.get(V_COMPONENTS), V_COMPONENTS, COMPONENT_RE, errors,
                                      allow_empty=flat, what="component name")
        if flat and components:
            errors.append("%s must be empty for a flat repository (%s %r ends with '/')" % (V_COMPONENTS, V_SUITE, suite))
        settings["components"] = components
        if settings["apt_uri"] and suite:
            settings["list_prefix"] = apt_list_prefix(settings["apt_uri"], suite)
    else:
        settings["dnf_repos"] = _normalise_dnf(inputs.get(V_DNF), mirror, errors)
    if errors:
        raise RepoConfigError("airgap_repos: invalid input, nothing was changed: " + "; ".join(errors))
    return settings


# --------------------------------------------------------------------------
# The files the role writes (Debian)
# --------------------------------------------------------------------------

def sources_content(settings):
    """The one deb822 source: the mirror, with its key as the only one apt may use for it."""
    lines = ["# %s. The only package source of this host: the internal" % MANAGED,
             "# mirror, whose Release files must be signed by the key in Signed-By.",
             "Types: deb",
             "URIs: %s" % settings["apt_uri"],
             "Suites: %s" % settings["suite"]]
    if settings["components"]:
        lines.append("Components: %s" % " ".join(settings["components"]))
    lines.append("Signed-By: %s" % settings["key"]["file"])
    return "\n".join(lines) + "\n"


def sources_list_content(settings):
    """What /etc/apt/sources.list keeps: a pointer to the one source, no entries."""
    return ("# %s.\n# This host's only package source is %s (the internal mirror).\n"
            "# Do not add sources here: airgap_repos removes them and its audit reports them.\n"
            % (MANAGED, settings["paths"].get("source_file", "/etc/apt/sources.list.d/airgap-mirror.sources")))


def preferences_content(settings):
    """The pin: the mirror's versions at 990, every other origin at -1 (first match wins)."""
    host = settings["mirror_host"]
    return "\n".join([
        "# %s." % MANAGED,
        "# Packages may come only from the internal mirror. apt uses the first general",
        "# record that matches a version: the mirror's versions get %d, every other" % settings["priority"],
        "# origin -1 (never installed), even for a source that is added later.",
        "# Installed packages (dpkg status) are no origin and keep their priority of 100.",
        "Package: *",
        'Pin: origin "%s"' % host,
        "Pin-Priority: %d" % settings["priority"],
        "",
        "Package: *",
        "Pin: origin *",
        "Pin-Priority: -1",
    ]) + "\n"


def apt_conf_content(settings):
    """apt settings: no unsigned or downgraded repositories, recommends as declared."""
    recommends = "true" if settings["install_recommends"] else "false"
    return "\n".join([
        "// %s." % MANAGED,
        "// Only signed metadata from the internal mirror; nothing installed beyond what",
        "// is asked for, so the installed set is the reviewed one.",
        'Acquire::AllowInsecureRepositories "false";',
        'Acquire::AllowDowngradeToInsecureRepositories "false";',
        'APT::Get::AllowUnauthenticated "false";',
        'APT::Install-Recommends "%s";' % recommends,
        'APT::Install-Suggests "false";',
        'Acquire::Languages "none";',
    ]) + "\n"


def managed_files(settings):
    """{path: content} of every text file the role manages on a Debian host."""
    paths = settings["paths"]
    files = {
        paths["source_file"]: sources_content(settings),
        paths["preferences_file"]: preferences_content(settings),
        paths["apt_conf_file"]: apt_conf_content(settings),
    }
    if settings["remove_other_sources"]:
        files[paths["sources_list"]] = sources_list_content(settings)
    if settings["key"] and settings["key"]["source"] == "content":
        files[settings["key"]["file"]] = settings["key"]["content"]
    return files


def expectation(settings):
    """The ``expect`` argument of the apt_sources_facts module for this host's settings."""
    return {
        "uri": settings["apt_uri"],
        "suites": [settings["suite"]],
        "components": settings["components"],
        "signed_by": settings["key"]["file"],
        "key_sha256": settings["key"]["sha256"],
        "held_packages": [{"name": h["name"], "version": h["version"]} for h in settings["held"]],
        "managed_files": managed_files(settings),
    }


def unverified_record(family, reason=None):
    """REPO-MIRROR-ONLY for a host whose package manager the verify step cannot read (fails closed)."""
    return make_record(CONTROL, ROLE, "error", {
        "result": reason or ("no verification for the %s family: the live repositories were not read, "
                             "so nothing is claimed" % family),
        "os_family": family})


# --------------------------------------------------------------------------
# Filter wrappers
# --------------------------------------------------------------------------

def _wrap(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except RepoConfigError as exc:
        raise AnsibleFilterError(str(exc))


def airgap_repos_settings(mirror_url, inputs, paths=None, family="Debian"):
    """Validate airgap_mirror_url and the airgap_repos_* inputs; return the settings."""
    return _wrap(repos_settings, mirror_url, inputs, paths, family)


def airgap_repos_files(settings):
    """{path: content} of the files the role writes on a Debian host."""
    return managed_files(settings)


def airgap_repos_expect(settings):
    """The apt_sources_facts ``expect`` dict for these settings."""
    return expectation(settings)


def airgap_repos_unverified_record(family, reason=None):
    """An `error` REPO-MIRROR-ONLY record for a host that was not verified."""
    return unverified_record(family, reason)


class FilterModule(object):
    """airgap_repos filters."""

    def filters(self):
        return {
            "airgap_repos_settings": airgap_repos_settings,
            "airgap_repos_files": airgap_repos_files,
            "airgap_repos_expect": airgap_repos_expect,
            "airgap_repos_unverified_record": airgap_repos_unverified_record,
        }
