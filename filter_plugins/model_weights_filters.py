# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence for WEIGHTS-INTEGRITY, built from the model_weights role's verify observations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import sys

try:
    from ansible.module_utils.airgap_evidence import make_record
    from ansible.module_utils.airgap_plan import mirror_endpoint, whole_number
except ImportError:
    # Controller-side plugins do not see the configured module_utils path.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from airgap_evidence import make_record  # noqa: E402
    from airgap_plan import mirror_endpoint, whole_number  # noqa: E402

ROLE = "model_weights"
CONTROL = "WEIGHTS-INTEGRITY"


def _owner_of(stat):
    return str(stat.get("pw_name", stat.get("uid"))), str(stat.get("gr_name", stat.get("gid")))


def _permission_problems(entries, owner, group, file_mode, dir_mode):
    """Entries (stat/find results) whose owner or mode differs from the declaration."""
    bad = []
    for entry in entries:
        if entry.get("islnk"):
            continue
        want = dir_mode if entry.get("isdir") else file_mode
        reasons = []
        if entry.get("wgrp") or entry.get("woth"):
            reasons.append("writable by group or others")
        if not entry.get("roth"):
            reasons.append("not readable by others")
        have_owner, have_group = _owner_of(entry)
        if (have_owner, have_group) != (str(owner), str(group)):
            reasons.append("owner %s:%s, declared %s:%s" % (have_owner, have_group, owner, group))
        if entry.get("mode") != want:
            reasons.append("mode %s, declared %s" % (entry.get("mode"), want))
        if reasons:
            bad.append({"path": entry.get("path"), "problems": reasons})
    return bad


def model_weights_evidence(models, verified, gate, root, files, by_name, perms):
    """One WEIGHTS-INTEGRITY record per declared model.

    models: model_weights_models; verified/gate/root/files: the registered
    loop results of the verify step (weights_sync mode=verify, the start-time
    check command, stat of the folder, find of its content), in model order;
    by_name: model_weights_by_name (its check_command is shown); perms: {owner, group, file_mode,
    dir_mode}. A model passes only if the manifest check passed, the
    start-time gate exits 0 and nobody but the owner can write its files.
    """
    if not models:
        return [make_record(CONTROL, ROLE, "not_applicable",
                            {"models": [], "detail": "model_weights_models is empty: no model is declared for this host"})]
    records = []
    for index, model in enumerate(models):
        sync = verified[index]
        gate_run = gate[index]
        root_stat = root[index].get("stat", {})
        entries = ([dict(root_stat, path=model["dest"])] if root_stat.get("exists") else []) \
            + list(files[index].get("files", []))
        bad = _permission_problems(entries, perms["owner"], perms["group"], perms["file_mode"], perms["dir_mode"])
        sync_record = sync.get("evidence")
        if isinstance(sync_record, dict):
            evidence = dict(sync_record.get("evidence", {}))
            sync_status = sync_record.get("status", "error")
        else:
            evidence = {"model": model["name"], "dest": model["dest"],
                        "error": sync.get("msg", "weights_sync returned no evidence")}
            sync_status = "error"
        gate_rc = gate_run.get("rc")
        evidence["start_gate"] = {
            "command": by_name.get(model["name"], {}).get("check_command"), "rc": gate_rc, "passed": gate_rc == 0,
            "output": (list(gate_run.get("stdout_lines", [])) + list(gate_run.get("stderr_lines", [])))[:20]}
        evidence["permissions"] = {
            "owner": perms["owner"], "group": perms["group"], "file_mode": perms["file_mode"],
            "dir_mode": perms["dir_mode"], "entries_checked": len([e for e in entries if not e.get("islnk")]),
            "deviations": bad[:50], "deviations_total": len(bad)}
        if sync_status == "error":
            status = "error"
        elif sync_status == "pass" and gate_rc == 0 and not bad:
            status = "pass"
        else:
            status = "fail"
        records.append(make_record(CONTROL, ROLE, status, evidence))
    return records


# --------------------------------------------------------------------------
# Input validation (WEIGHTS-INTEGRITY): every problem at once, each naming the
# variable, the entry and the model, before any host changes.

_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,62}\Z")
_REL_RE = re.compile(r"\A[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*\Z")
# dest goes unquoted into systemd unit lines and container mount options.
_ABS_RE = re.compile(r"\A(/[A-Za-z0-9_.+-]+)+\Z")
_ACCOUNT_RE = re.compile(r"\A([a-z_][a-z0-9_.-]{0,31}|[0-9]+)\Z")
_MODE_RE = re.compile(r"\A0?[0-7]{3}\Z")
_SHA_RE = re.compile(r"\A[0-9a-fA-F]{64}\Z")
MODEL_KEYS = ("name", "manifest", "dest", "manifest_sha256")
SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
               "/libx32", "/usr", "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/tmp", "/var/mail",
               "/var/backups", "/tmp", "/root")


def _settings_errors(s, has_models):
    errors = []
    if has_models:
        url = s.get("airgap_mirror_url")
        if url is None:
            errors.append("airgap_mirror_url is not defined; it must be the http:// or https:// URL of the internal "
                          "model mirror")
        elif mirror_endpoint(url) is None:  # the site plan's reading of the URL, the only one
            errors.append("airgap_mirror_url: '%s' must be an http:// or https:// URL with a host and no query, "
                          "fragment or credentials" % (url,))
    if s.get("model_weights_verify") not in ("cache", "full"):
        errors.append("model_weights_verify: '%s' must be cache or full" % (s.get("model_weights_verify"),))
    if whole_number(s.get("model_weights_workers"), 1, 64) is None:
        errors.append("model_weights_workers: '%s' must be a whole number from 1 to 64" % (s.get("model_weights_workers"),))
    if whole_number(s.get("model_weights_timeout"), 1, 3600) is None:
        errors.append("model_weights_timeout: '%s' must be a whole number of seconds from 1 to 3600"
                      % (s.get("model_weights_timeout"),))
    for var in ("model_weights_remove_extras", "model_weights_validate_certs"):
        if not isinstance(s.get(var), bool):
            errors.append("%s: '%s' must be true or false" % (var, s.get(var)))
    for var in ("model_weights_owner", "model_weights_group"):
        if not _ACCOUNT_RE.match(str(s.get(var))):
            errors.append("%s: '%s' is not a user or group name" % (var, s.get(var)))
    mode = s.get("model_weights_mode")
    if not isinstance(mode, str) or not _MODE_RE.match(mode):
        errors.append("model_weights_mode: '%s' must be a quoted octal mode like '0644' (no setuid, setgid or sticky "
                      "bit)" % (mode,))
    elif mode[-2] in "2367" or mode[-1] in "2367" or mode[-1] not in "4567":
        errors.append("model_weights_mode: '%s' must let others read (o+r) and nobody but the owner write (no g+w, "
                      "no o+w)" % (mode,))
    for var in ("model_weights_checker_path", "model_weights_python"):
        if not _ABS_RE.match(str(s.get(var))):
            errors.append("%s: '%s' must be an absolute path of letters, digits, '.', '_', '+' or '-'"
                          % (var, s.get(var)))
    ca_path = s.get("model_weights_ca_path") or ""
    if not isinstance(ca_path, str) or (ca_path and not ca_path.startswith("/")):
        errors.append("model_weights_ca_path: '%s' must be an absolute path or empty" % (ca_path,))
    return errors


def _under_system(dest):
    for system in SYSTEM_DIRS:
        if (dest + "/").startswith(system + "/"):
            return system
    return None


def _dest_error(at, dest):
    """The problem with a dest, or None when it is a model folder of its own."""
    if not isinstance(dest, str) or not dest:
        return "%s: dest is required (the model's absolute folder on the host)" % at
    if not dest.startswith("/"):
        return "%s: dest '%s' must be an absolute path" % (at, dest)
    if dest == "/":
        return "%s: dest '/' cannot be a model folder" % at
    parts = dest.split("/")
    if not _ABS_RE.match(dest) or ".." in parts or "." in parts:
        return ("%s: dest '%s' must be a normalised absolute path (no '..', '.', '//' or trailing '/') of letters, "
                "digits, '.', '_', '+' or '-'" % (at, dest))
    if len(parts) < 3 or dest in SYSTEM_DIRS:
        return ("%s: dest '%s' is a top-level or system folder; give each model its own folder such as "
                "/srv/models/<name>" % (at, dest))
    system = _under_system(dest)
    if system:
        return ("%s: dest '%s' is inside the system folder %s; give each model its own folder such as "
                "/srv/models/<name>" % (at, dest, system))
    return None


def _manifest_error(at, manifest):
    if not isinstance(manifest, str) or not manifest:
        return "%s: manifest is required (the manifest's path on the mirror, relative to airgap_mirror_url)" % at
    if manifest.startswith("/"):
        return "%s: manifest '%s' must be relative to airgap_mirror_url, not absolute" % (at, manifest)
    parts = manifest.split("/")
    if ".." in parts or "." in parts:
        return "%s: manifest '%s' must not contain a '..' or '.' component" % (at, manifest)
    if not _REL_RE.match(manifest):
        return ("%s: manifest '%s' must be folder names of letters, digits, '.', '_', '+' or '-' separated by "
                "single '/'" % (at, manifest))
    return None


def model_weights_errors(models, settings, labels=None):
    """Every problem in the weights to sync and the model_weights_ settings (empty list when valid).

    ``models`` is the list the role syncs (the site plan's weights_models);
    ``labels`` names where each entry was declared (``airgap_models[0]``,
    ``model_weights_models_extra[0]``), so that an error points at the line
    the operator wrote.
    """
    if not isinstance(models, (list, tuple)):
        return ["model weights must be a list of {name, manifest, dest}, got '%s'" % (models,)]
    labels = list(labels or [])
    errors = _settings_errors(settings or {}, bool(models))
    seen = []
    for index, model in enumerate(models):
        where = labels[index] if index < len(labels) else "model_weights_models_extra[%d]" % index
        if not isinstance(model, dict):
            errors.append("%s: '%s' must be a mapping with name, manifest and dest" % (where, model))
            continue
        name = model.get("name")
        at = where + (" '%s'" % name if isinstance(name, str) else "")
        unknown = sorted(str(k) for k in set(model) - set(MODEL_KEYS))
        if unknown:
            errors.append("%s: unknown key(s) %s (allowed: %s)" % (at, ", ".join(unknown), ", ".join(MODEL_KEYS)))
        if name is None:
            errors.append("%s: name is required (1-63 lower-case letters, digits, '.', '_' or '-')" % at)
        elif not isinstance(name, str) or not _NAME_RE.match(name):
            errors.append("%s: name '%s' must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit" % (at, name))
        else:
            for other in seen:
                if other["name"] == name:
                    errors.append("%s: name '%s' is already used by %s; names must be unique" % (at, name, other["at"]))
                    break
        problem = _manifest_error(at, model.get("manifest"))
        if problem:
            errors.append(problem)
        dest = model.get("dest")
        problem = _dest_error(at, dest)
        if problem:
            errors.append(problem)
            dest = None
        else:
            for other in seen:
                if other["dest"] and (other["dest"] == dest or (dest + "/").startswith(other["dest"] + "/")
                                      or (other["dest"] + "/").startswith(dest + "/")):
                    errors.append("%s: dest '%s' overlaps %s dest '%s'; each model needs its own folder, not nested "
                                  "in another's" % (at, dest, other["at"], other["dest"]))
        pin = model.get("manifest_sha256")
        if pin is not None and (not isinstance(pin, str) or not _SHA_RE.match(pin)):
            errors.append("%s: manifest_sha256 '%s' must be the manifest's sha256, 64 hexadecimal digits" % (at, pin))
        seen.append({"name": name if isinstance(name, str) else None, "at": where, "dest": dest})
    return errors


def model_weights_sync_defaults(settings):
    """The weights_sync arguments every model shares, from the model_weights_ settings.

    Used as the tasks' module_defaults, so the sync, the re-own pass and the
    audit's verify run with one set of arguments, written once. ca_path is
    left out when empty (the system trust store).
    """
    s = dict(settings or {})
    out = {
        "base_url": s.get("airgap_mirror_url"),
        "verify": s.get("model_weights_verify"),
        "workers": int(s.get("model_weights_workers")),
        "timeout": int(s.get("model_weights_timeout")),
        "validate_certs": s.get("model_weights_validate_certs"),
    }
    if s.get("model_weights_ca_path"):
        out["ca_path"] = s["model_weights_ca_path"]
    return out


class FilterModule(object):
    """model_weights filters."""

    def filters(self):
        return {
            "model_weights_evidence": model_weights_evidence,
            "model_weights_errors": model_weights_errors,
            "model_weights_sync_defaults": model_weights_sync_defaults,
        }
