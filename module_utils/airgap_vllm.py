# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vllm_server role's logic: validation, unit rendering, live evidence.

Standard library only (``ipaddress``, not netaddr), so the filter plugin,
the modules and pytest share one implementation.

What is decided here, in one place an auditor can read:

* **Input** (``validate``): every problem is listed at once, each naming the
  variable, the entry and the model, before any host changes. A model must be
  declared in ``model_weights_models`` (it is only served after that role has
  verified it); ports must not clash; the image must be pinned by digest
  unless explicitly allowed; the bind address must lie on an inference
  network; the host firewall must let the front end reach the backend and
  let inference clients reach the front end.
* **The container** (``podman_run_args``): offline variables, an absolute
  local model path, all capabilities dropped, no-new-privileges, read-only
  root with a tmpfs for scratch, a non-root user, the model mounted
  read-only, a dedicated ``--internal`` podman network (no route out, nothing
  published), the API key as a podman secret (never on a command line), GPUs
  through CDI or none.
* **The unit** (``render_unit`` for podman without quadlet, in the style of
  ``podman generate systemd --new``; ``render_quadlet`` for podman >= 4.5):
  ExecStartPre runs model_weights' start-time check, so unverified weights
  never start (fail closed).
* **The front end** (``render_nginx``): nginx on the inference bind address;
  ``/v1/`` for inference networks only, ``/health`` and ``/metrics`` for the
  management networks and the host itself, everything else denied.
* **Evidence** (``hardened_evidence``, ``offline_evidence``): judged from the
  live container (``podman inspect`` and ``/proc/<pid>/status``), never from
  the template.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

try:
    from ansible.module_utils import airgap_allowlist as allowlist
    from ansible.module_utils.airgap_plan import container_name, secret_name, unit_name, vlan_networks
except ImportError:  # pytest and controller-side plugins import module_utils from its folder
    import airgap_allowlist as allowlist
    from airgap_plan import container_name, secret_name, unit_name, vlan_networks

ROLE = "vllm_server"
LABEL_MODEL = "airgap.vllm_server.model"
LABEL_MANAGED = "airgap.vllm_server.managed"
# vLLM and the Hugging Face libraries read these; together they stop every
# download attempt, the usage-statistics post and other telemetry.
OFFLINE_ENV = (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("VLLM_NO_USAGE_STATS", "1"),
    ("DO_NOT_TRACK", "1"),
)
# A non-root user on a read-only root has no writable home: point every cache
# at the tmpfs so nothing tries to write elsewhere.
SCRATCH_ENV = (
    ("HOME", "/tmp"),
    ("XDG_CACHE_HOME", "/tmp/.cache"),
    ("HF_HOME", "/tmp/hf"),
    ("VLLM_CACHE_ROOT", "/tmp/vllm"),
)
API_KEY_ENV = "VLLM_API_KEY"
# Flags the role sets itself; in args they would override its choices (or,
# for --api-key, put the key on a command line and in the process list).
RESERVED_ARGS = ("--model", "--served-model-name", "--host", "--port", "--api-key", "--download-dir",
                 "--trust-remote-code", "--tokenizer")
MODEL_KEYS = ("name", "port", "gpus", "served_model_name", "backend_address", "args", "env",
              "api_key_file", "trust_remote_code")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DIGEST_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")
PATH_RE = re.compile(r"^(/[A-Za-z0-9_.+-]+)+$")
SIZE_RE = re.compile(r"^[0-9]+[kmg]?$")
USER_RE = re.compile(r"^[0-9]+(:[0-9]+)?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CDI_RE = re.compile(r"^[a-z0-9.-]+/[a-z0-9.-]+=[A-Za-z0-9_.:-]+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Characters a systemd ExecStart word may hold without quoting.
_UNIT_SAFE_RE = re.compile(r"^[A-Za-z0-9_./:=,@+-]+$")

VAR = "vllm_server_"


class VllmConfigError(ValueError):
    """Invalid vllm_server input; ``errors`` lists every problem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(VllmConfigError, self).__init__("\n".join(self.errors))


# --------------------------------------------------------------------------
# Addresses


def _net(value):
    """Parse an address or CIDR into an ip_network (host bits allowed, as in interface addresses)."""
    return ipaddress.ip_network(str(value), strict=False)


def _addr(value):
    return ipaddress.ip_address(str(value))


def vlan_inference_networks(vlan_interfaces):
    """Subnets of the network_vlan_interfaces entries whose purpose is inference (the site plan's)."""
    return vlan_networks(vlan_interfaces, "inference")


def inference_networks(cfg):
    """vllm_server_inference_networks, or the inference VLAN subnets when it is empty."""
    declared = cfg.get("inference_networks") or []
    return list(declared) if declared else vlan_inference_networks(cfg.get("network_vlan_interfaces"))


def _check_networks(var, values, errors):
    """Parse a list of CIDRs, appending an error per bad entry; return the parsed ones."""
    out = []
    if not isinstance(values, (list, tuple)):
        errors.append("%s: must be a list of networks in CIDR notation, got %r" % (var, values))
        return out
    for index, value in enumerate(values):
        try:
            out.append(ipaddress.ip_network(str(value), strict=True))
        except ValueError as exc:
            errors.append("%s[%d]: '%s' is not a network in CIDR notation (%s)" % (var, index, value, exc))
    return out


def backend_addresses(models, subnet):
    """The container address of each model: its backend_address, or subnet host 10 + its index."""
    net = _net(subnet)
    out = []
    for index, model in enumerate(models):
        given = model.get("backend_address") if isinstance(model, dict) else None
        out.append(str(given) if given else str(net.network_address + 10 + index))
    return out


# --------------------------------------------------------------------------
# Validation


def _gpu_set(gpus):
    """Normalise gpus: 'none' -> [], 'all' -> ['all'], ints/strings -> CDI device names."""
    if gpus in (None, "none", [], "") or gpus is False:
        return []
    if gpus == "all":
        return ["nvidia.com/gpu=all"]
    if isinstance(gpus, (int, str)) and not isinstance(gpus, bool):
        gpus = [gpus]
    out = []
    for gpu in gpus:
        text = str(gpu)
        out.append(text if "=" in text else "nvidia.com/gpu=" + text)
    return out


def _validate_model(index, model, cfg, ctx, errors):
    """Check one vllm_server_models entry; record what later entries are compared against."""
    models_var = cfg.get("models_var") or VAR + "models"
    at = "%s[%d]" % (models_var, index)
    if not isinstance(model, dict):
        errors.append("%s: '%s' must be a mapping with name and port" % (at, model))
        return
    name = model.get("name")
    at = at + (" '%s'" % name if isinstance(name, str) else "")
    unknown = sorted(set(model) - set(MODEL_KEYS))
    if unknown:
        errors.append("%s: unknown key(s) %s (allowed: %s)" % (at, ", ".join(map(str, unknown)), ", ".join(MODEL_KEYS)))
    if not isinstance(name, str) or not NAME_RE.match(name):
        errors.append("%s: name %r must be 1-63 lower-case letters, digits, '.', '_' or '-'" % (at, name))
    elif name not in ctx["weights"]:
        errors.append("%s: name '%s' is not in model_weights_models (declared there: %s); the model_weights role"
                      " must sync and verify a model before vllm_server may serve it"
                      % (at, name, ", ".join(sorted(ctx["weights"])) or "none"))
    elif ctx["by_name"] is not None and not (ctx["by_name"].get(name) or {}).get("check_argv"):
        errors.append("%s: model_weights_by_name has no start-time check for '%s'; run the model_weights role"
                      " first (without the check the unit could not fail closed)" % (at, name))
    elif name in ctx["names"]:
        errors.append("%s: name '%s' is already used by %s[%d]" % (at, name, models_var, ctx["names"][name]))
    else:
        ctx["names"][name] = index

    port = model.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errors.append("%s: port %r must be a whole number from 1 to 65535" % (at, port))
    elif port in ctx["ports"]:
        other = ctx["ports"][port]
        errors.append("%s: port %d is already used by %s[%d] '%s'; each model needs its own port on %s"
                      % (at, port, models_var, other[0], other[1], cfg.get("bind_address")))
    else:
        ctx["ports"][port] = (index, name)

    gpus = model.get("gpus", "none")
    devices = []
    if not (gpus in ("none", "all") or isinstance(gpus, (list, int))) or isinstance(gpus, bool):
        errors.append("%s: gpus %r must be none, all, a GPU index or a list of indexes or CDI names" % (at, gpus))
    else:
        devices = _gpu_set(gpus)
        for dev in devices:
            if not CDI_RE.match(dev):
                errors.append("%s: gpus entry '%s' is not a CDI device name such as nvidia.com/gpu=0" % (at, dev))
        for dev in devices:
            for seen_dev, seen_at in ctx["gpus"]:
                if dev == seen_dev or "nvidia.com/gpu=all" in (dev, seen_dev):
                    errors.append("%s: GPU %s is already given to %s; models must not share GPUs" % (at, dev, seen_at))
        ctx["gpus"].extend((dev, at) for dev in devices)

    served = model.get("served_model_name", name)
    if not isinstance(served, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$", served):
        errors.append("%s: served_model_name %r must be 1-128 letters, digits, '.', '_', '/' or '-'" % (at, served))

    backend = ctx["backends"][index]
    try:
        addr = _addr(backend)
        if ctx["subnet"] is not None and (addr not in ctx["subnet"] or addr in (
                ctx["subnet"].network_address, ctx["subnet"].network_address + 1, ctx["subnet"].broadcast_address)):
            errors.append("%s: backend_address %s must be a host address in %snetwork_subnet %s other than the"
                          " gateway (first address)" % (at, backend, VAR, ctx["subnet"]))
        elif backend in ctx["backend_seen"]:
            errors.append("%s: backend_address %s is already used by %s" % (at, backend, ctx["backend_seen"][backend]))
        ctx["backend_seen"][backend] = at
    except ValueError:
        errors.append("%s: backend_address '%s' is not an IP address" % (at, backend))

    args = model.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        errors.append("%s: args must be a list of strings (extra vLLM flags), got %r" % (at, args))
    else:
        _check_args(at + ": args", args, bool(model.get("trust_remote_code", cfg.get("trust_remote_code"))), errors)
    _check_env(at + ": env", model.get("env", {}), errors)
    key_file = model.get("api_key_file")
    if key_file is not None and (not isinstance(key_file, str) or not PATH_RE.match(key_file)):
        errors.append("%s: api_key_file %r must be an absolute path" % (at, key_file))
    trc = model.get("trust_remote_code")
    if trc is not None and not isinstance(trc, bool):
        errors.append("%s: trust_remote_code %r must be true or false" % (at, trc))


def _check_args(at, args, trust_ok, errors):
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag == "--trust-remote-code":
            if not trust_ok:
                errors.append("%s: --trust-remote-code runs Python code shipped with the model; set trust_remote_code:"
                              " true on the model (or %strust_remote_code) to allow it explicitly" % (at, VAR))
        elif flag in RESERVED_ARGS:
            errors.append("%s: %s is set by the role and must not be given in args" % (at, flag))
        if "\n" in arg or "\x00" in arg:
            errors.append("%s: %r contains a newline or NUL" % (at, arg))


def _check_env(at, env, errors):
    if not isinstance(env, dict):
        errors.append("%s: must be a mapping of NAME: value, got %r" % (at, env))
        return
    reserved = dict(OFFLINE_ENV)
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            errors.append("%s: %r is not an environment variable name" % (at, name))
        elif name in reserved:
            errors.append("%s: %s is fixed to %s by the role (offline mode) and must not be overridden"
                          % (at, name, reserved[name]))
        elif name == API_KEY_ENV:
            errors.append("%s: %s comes from the API key file through a podman secret; never set it here"
                          % (at, name))
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or "\n" in str(value):
            errors.append("%s: %s: value %r must be one line of text" % (at, name, value))


def _validate_image(cfg, errors):
    image = cfg.get("image")
    if not isinstance(image, str) or not image:
        errors.append("%simage: is required: the serving image as name@sha256:<digest>" % VAR)
    elif not IMAGE_RE.match(image):
        errors.append("%simage: '%s' is not an image reference (lower-case name, optional @sha256:<64 hex>)"
                      % (VAR, image))
    elif not DIGEST_RE.match(image) and cfg.get("image_allow_unpinned") is not True:
        errors.append("%simage: '%s' is not pinned by digest (name@sha256:<64 hex digits>); a tag can point at other"
                      " content tomorrow. Pin it, or set %simage_allow_unpinned: true to accept that explicitly"
                      % (VAR, image, VAR))
    source = cfg.get("image_source")
    if source not in ("archive", "registry", "preloaded"):
        errors.append("%simage_source: %r must be archive, registry or preloaded" % (VAR, source))
    elif source == "archive":
        archive = cfg.get("image_archive")
        if not isinstance(archive, str) or not archive or archive.startswith("/") or ".." in archive.split("/"):
            errors.append("%simage_archive: %r must be the archive's path on the mirror, relative to airgap_mirror_url"
                          " (image_source archive)" % (VAR, archive))
        if not isinstance(cfg.get("image_archive_sha256"), str) or not SHA256_RE.match(cfg.get("image_archive_sha256")):
            errors.append("%simage_archive_sha256: %r must be the archive's sha256 (64 lower-case hex digits)"
                          % (VAR, cfg.get("image_archive_sha256")))


def _validate_settings(cfg, errors):
    for key in ("api_key_file", "podman_path", "checker_root"):
        if key in cfg and (not isinstance(cfg[key], str) or not PATH_RE.match(cfg[key])):
            errors.append("%s%s: %r must be an absolute path" % (VAR, key, cfg[key]))
    for key in ("tmpfs_size", "shm_size"):
        if not isinstance(cfg.get(key), str) or not SIZE_RE.match(cfg.get(key)):
            errors.append("%s%s: %r must be a size like 256m or 1g" % (VAR, key, cfg.get(key)))
    user = str(cfg.get("user"))
    if not USER_RE.match(user) or user.split(":")[0] == "0" or user.split(":")[-1] == "0":
        errors.append("%suser: %r must be a numeric non-root UID[:GID] (not 0)" % (VAR, cfg.get("user")))
    port = cfg.get("container_port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
        errors.append("%scontainer_port: %r must be a whole number from 1024 to 65535 (the user is not root)"
                      % (VAR, port))
    timeout = cfg.get("health_timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 7200:
        errors.append("%shealth_timeout: %r must be a whole number of seconds from 1 to 7200" % (VAR, timeout))
    if not isinstance(cfg.get("network_name"), str) or not NAME_RE.match(cfg.get("network_name")):
        errors.append("%snetwork_name: %r must be a podman network name of [a-z0-9._-]" % (VAR, cfg.get("network_name")))
    for key in ("trust_remote_code", "firewall_check", "image_allow_unpinned"):
        if key in cfg and not isinstance(cfg[key], bool):
            errors.append("%s%s: %r must be true or false" % (VAR, key, cfg[key]))
    if cfg.get("unit_style") not in ("auto", "systemd", "quadlet"):
        errors.append("%sunit_style: %r must be auto, systemd or quadlet" % (VAR, cfg.get("unit_style")))
    extra = cfg.get("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        errors.append("%sextra_args: must be a list of strings, got %r" % (VAR, extra))
    else:
        _check_args(VAR + "extra_args", extra, cfg.get("trust_remote_code") is True, errors)
    _check_env(VAR + "env", cfg.get("env", {}), errors)


def _validate_network(cfg, errors):
    """Bind address on an inference network; backend subnet apart from every other; return (subnet, infer, mgmt)."""
    infer = _check_networks(VAR + "inference_networks", inference_networks(cfg), errors)
    mgmt = _check_networks(VAR + "management_networks", cfg.get("management_networks", []), errors)
    subnet = None
    try:
        subnet = ipaddress.ip_network(str(cfg.get("network_subnet")), strict=True)
        if subnet.version != 4 or subnet.prefixlen > 28:
            errors.append("%snetwork_subnet: %s must be an IPv4 network of at least 16 addresses (/28 or larger)"
                          % (VAR, subnet))
        for what, nets in (("inference_networks", infer), ("management_networks", mgmt)):
            for net in nets:
                if net.version == subnet.version and net.overlaps(subnet):
                    errors.append("%snetwork_subnet: %s overlaps %s%s entry %s; the container network must be"
                                  " a subnet of its own" % (VAR, subnet, VAR, what, net))
        for net in cfg.get("host_networks") or []:
            try:
                parsed = _net(net)
            except ValueError:
                continue
            if parsed.version == subnet.version and parsed.overlaps(subnet) and str(parsed) != str(subnet):
                errors.append("%snetwork_subnet: %s overlaps the host's network %s; pick an unused subnet"
                              % (VAR, subnet, parsed))
    except ValueError as exc:
        errors.append("%snetwork_subnet: %r is not a network in CIDR notation (%s)" % (VAR, cfg.get("network_subnet"), exc))

    bind = cfg.get("bind_address")
    try:
        bind_addr = _addr(bind)
    except ValueError:
        errors.append("%sbind_address: %r must be the host's IP address on the inference network" % (VAR, bind))
        return subnet, infer, mgmt
    if bind_addr.is_unspecified or bind_addr.is_loopback:
        errors.append("%sbind_address: %s would listen on every network or only locally; give the inference address"
                      % (VAR, bind))
    elif not infer:
        errors.append("%sbind_address: %s cannot be checked: no inference network is known (give network_vlan_interfaces"
                      " an entry with purpose inference, or set %sinference_networks)" % (VAR, bind, VAR))
    elif not any(bind_addr in net for net in infer):
        errors.append("%sbind_address: %s is not on the inference network (%s); the model server must listen only"
                      " there" % (VAR, bind, ", ".join(str(n) for n in infer)))
    host = cfg.get("host_addresses")
    if host is not None and str(bind_addr) not in [str(a).split("%")[0] for a in host]:
        errors.append("%sbind_address: %s is not an address of this host (it has %s)"
                      % (VAR, bind, ", ".join(map(str, host)) or "none"))
    return subnet, infer, mgmt


def _validate_firewall(cfg, models, backends, infer, errors):
    """The host firewall must admit nginx -> backend (egress) and inference clients -> nginx (ingress)."""
    port = cfg.get("container_port")
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        try:
            backend = _addr(backends[index])
        except ValueError:
            continue
        at = "%smodels[%d] '%s'" % (VAR, index, model.get("name"))
        if allowlist.admitting(cfg.get("firewall_egress_allow"), "egress", backend, "tcp", port) is None:
            errors.append("firewall_egress_allow: no entry allows tcp to %s port %s, the backend of %s; the firewall"
                          " would block the front end from reaching it. Add e.g. {name: vllm-backend, dest: %s,"
                          " proto: tcp, ports: [%s]}" % (backend, port, at, cfg.get("network_subnet"), port))
        mport = model.get("port")
        # On the inference zone: an entry bound to another zone does not let clients in.
        if isinstance(mport, int) and infer and not any(allowlist.admitting_from_network(
                cfg.get("firewall_ingress_allow"), "ingress", net, "tcp", mport, zone="inference",
                interface_roles=cfg.get("interface_roles")) for net in infer):
            errors.append("firewall_ingress_allow: no entry admits tcp port %s from the inference network (%s) on"
                          " the inference zone for %s; clients could not reach it"
                          % (mport, ", ".join(str(n) for n in infer), at))


def validate(cfg):
    """Return every problem in the vllm_server input as a list of messages (empty when valid)."""
    errors = []
    models = cfg.get("models")
    if not isinstance(models, list):
        return ["%smodels: must be a list of {name, port, gpus}, got %r" % (VAR, models)]
    weights = [m.get("name") for m in cfg.get("model_weights_models") or [] if isinstance(m, dict)]
    if not models:
        return errors
    _validate_image(cfg, errors)
    _validate_settings(cfg, errors)
    subnet, infer, _mgmt = _validate_network(cfg, errors)
    backends = backend_addresses(models, subnet) if subnet is not None else [
        (m.get("backend_address") if isinstance(m, dict) else None) or "0.0.0.0" for m in models]
    ctx = {"weights": set(weights), "names": {}, "ports": {}, "gpus": [], "subnet": subnet,
           "backends": backends, "backend_seen": {},
           "by_name": cfg.get("model_weights_by_name") if "model_weights_by_name" in cfg else None}
    for index, model in enumerate(models):
        _validate_model(index, model, cfg, ctx, errors)
    if cfg.get("firewall_check", True) is True:
        _validate_firewall(cfg, models, backends, infer, errors)
    return errors


# --------------------------------------------------------------------------
# Plan and rendering


def plan(cfg):
    """Everything the tasks and templates need per model, after validate() found nothing."""
    errors = validate(cfg)
    if errors:
        raise VllmConfigError(errors)
    models = cfg["models"]
    backends = backend_addresses(models, cfg["network_subnet"])
    by_name = cfg.get("model_weights_by_name") or {}
    weights = dict((m["name"], m) for m in cfg.get("model_weights_models") or [])
    infer = [str(n) for n in inference_networks(cfg)]
    out = []
    for index, model in enumerate(models):
        name = model["name"]
        gate = by_name.get(name, {})
        dest = gate.get("dest") or weights[name]["dest"]
        trust = bool(model.get("trust_remote_code", cfg.get("trust_remote_code", False)))
        env = dict(OFFLINE_ENV)
        env.update(SCRATCH_ENV)
        env.update(dict((k, str(v)) for k, v in (cfg.get("env") or {}).items()))
        env.update(dict((k, str(v)) for k, v in (model.get("env") or {}).items()))
        mount = "/models/" + name
        out.append({
            "name": name,
            "unit": unit_name(name),
            "container": container_name(name),
            "secret": secret_name(name),
            "api_key_file": model.get("api_key_file") or cfg["api_key_file"],
            "port": model["port"],
            "bind_address": str(_addr(cfg["bind_address"])),
            "backend_address": backends[index],
            "container_port": cfg["container_port"],
            "model_dir": dest,
            "mount_path": mount,
            "served_model_name": model.get("served_model_name", name),
            "devices": _gpu_set(model.get("gpus", "none")),
            "trust_remote_code": trust,
            "env": env,
            "check_argv": list(gate.get("check_argv") or []),
            "vllm_args": ["--model", mount, "--served-model-name", model.get("served_model_name", name),
                          "--host", backends[index], "--port", str(cfg["container_port"])]
                         + (["--trust-remote-code"] if trust and "--trust-remote-code" not in
                            list(cfg.get("extra_args") or []) + list(model.get("args") or []) else [])
                         + list(cfg.get("extra_args") or []) + list(model.get("args") or []),
            "inference_networks": infer,
            "management_networks": [str(n) for n in cfg.get("management_networks") or []],
        })
    return out


def podman_run_args(entry, cfg):
    """The podman run options for one model (without the leading 'podman run' and the unit's own flags)."""
    args = [
        "--name", entry["container"],
        "--label", "%s=%s" % (LABEL_MODEL, entry["name"]),
        "--label", "%s=true" % LABEL_MANAGED,
        "--network", cfg["network_name"],
        "--ip", entry["backend_address"],
        "--dns", "none",
        "--cap-drop", "all",
        "--security-opt", "no-new-privileges",
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=%s" % cfg["tmpfs_size"],
        "--shm-size", cfg["shm_size"],
        "--user", str(cfg["user"]),
        "--pids-limit", "4096",
        "--volume", "%s:%s:ro" % (entry["model_dir"], entry["mount_path"]),
        "--secret", "%s,type=env,target=%s" % (entry["secret"], API_KEY_ENV),
    ]
    for key in sorted(entry["env"]):
        args += ["--env", "%s=%s" % (key, entry["env"][key])]
    for dev in entry["devices"]:
        args += ["--device", dev]
    return args


def systemd_quote(word):
    """Quote one ExecStart word: systemd splits on spaces and expands % and $."""
    text = str(word).replace("%", "%%").replace("$", "$$")
    if _UNIT_SAFE_RE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_line(key, words, raw_prefix=()):
    """A unit line; raw_prefix words carry our own %t/%n specifiers and are not escaped."""
    quoted = [systemd_quote(w) for w in words]
    # An option and its value stay on one line, so the unit reads like the command.
    chunks, index = [], 0
    while index < len(quoted):
        word = quoted[index]
        if word.startswith("-") and "=" not in word and index + 1 < len(quoted) and not quoted[index + 1].startswith("-"):
            chunks.append(word + " " + quoted[index + 1])
            index += 2
        else:
            chunks.append(word)
            index += 1
    parts = list(raw_prefix) + chunks
    lines = []
    line = key + "=" + parts[0]
    for part in parts[1:]:
        if len(line) + len(part) > 100:
            lines.append(line + " \\")
            line = "    " + part
        else:
            line += " " + part
    lines.append(line)
    return "\n".join(lines)


def _header(entry):
    return ["# Managed by Ansible (role vllm_server). Local changes are overwritten.",
            "# Model %s: container %s, front end %s:%s (nginx), backend %s:%s."
            % (entry["name"], entry["container"], entry["bind_address"], entry["port"],
               entry["backend_address"], entry["container_port"])]


def render_unit(entry, cfg):
    """A plain systemd unit in the style of `podman generate systemd --new` (podman without quadlet)."""
    podman = cfg["podman_path"]
    lines = _header(entry) + [
        "[Unit]",
        "Description=vLLM model server %s (container %s)" % (entry["name"], entry["container"]),
        "Documentation=https://docs.vllm.ai/",
        "Wants=network-online.target",
        "After=network-online.target nginx.service",
        "RequiresMountsFor=%t/containers " + entry["model_dir"],
        "# A start refused by the weights check is retried a few times, then left failed.",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Environment=PODMAN_SYSTEMD_UNIT=%n",
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStartSec=%d" % max(cfg["health_timeout"], 90),
        "TimeoutStopSec=70",
        "# Fail closed: model_weights' start-time check refuses unverified weights.",
        _exec_line("ExecStartPre", entry["check_argv"]),
        "ExecStartPre=/bin/rm -f %t/%n.ctr-id",
        _exec_line("ExecStart", ["--cgroups=no-conmon", "--rm", "--sdnotify=conmon", "--replace", "-d"]
                   + podman_run_args(entry, cfg) + [cfg["image"]] + entry["vllm_args"],
                   raw_prefix=[systemd_quote(podman), "run", "--cidfile=%t/%n.ctr-id"]),
        "ExecStop=%s stop --ignore -t 10 --cidfile=%%t/%%n.ctr-id" % systemd_quote(podman),
        "ExecStopPost=%s rm -f --ignore -t 10 --cidfile=%%t/%%n.ctr-id" % systemd_quote(podman),
        "Type=notify",
        "NotifyAccess=all",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def render_quadlet(entry, cfg):
    """A quadlet .container for podman >= 4.5 (PodmanArgs= carries what quadlet has no key for)."""
    user, _, group = str(cfg["user"]).partition(":")
    lines = _header(entry) + [
        "[Unit]",
        "Description=vLLM model server %s (container %s)" % (entry["name"], entry["container"]),
        "Wants=network-online.target",
        "After=network-online.target nginx.service",
        "RequiresMountsFor=" + entry["model_dir"],
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Container]",
        "ContainerName=" + entry["container"],
        "Image=" + cfg["image"],
        "Label=%s=%s" % (LABEL_MODEL, entry["name"]),
        "Label=%s=true" % LABEL_MANAGED,
        "Network=" + cfg["network_name"],
        "DropCapability=all",
        "NoNewPrivileges=true",
        "ReadOnly=true",
        "User=" + user,
    ]
    if group:
        lines.append("Group=" + group)
    lines.append("Volume=%s:%s:ro" % (entry["model_dir"], entry["mount_path"]))
    for key in sorted(entry["env"]):
        lines.append("Environment=%s=%s" % (key, systemd_quote(entry["env"][key])))
    podman_args = ["--ip", entry["backend_address"], "--dns", "none", "--read-only-tmpfs=false",
                   "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=%s" % cfg["tmpfs_size"],
                   "--shm-size", cfg["shm_size"], "--pids-limit", "4096",
                   "--secret", "%s,type=env,target=%s" % (entry["secret"], API_KEY_ENV)]
    for dev in entry["devices"]:
        podman_args += ["--device", dev]
    lines.append("PodmanArgs=" + " ".join(systemd_quote(a) for a in podman_args))
    lines.append("Exec=" + " ".join(systemd_quote(a) for a in entry["vllm_args"]))
    lines += [
        "",
        "[Service]",
        "# Fail closed: model_weights' start-time check refuses unverified weights.",
        _exec_line("ExecStartPre", entry["check_argv"]),
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStartSec=%d" % max(cfg["health_timeout"], 90),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def render_nginx(entry):
    """The nginx server block in front of one model: the only listener, on the inference address."""
    bind = entry["bind_address"]
    listen = ("[%s]" % bind if ":" in bind else bind) + ":%d" % entry["port"]
    backend = "http://%s:%d" % (entry["backend_address"], entry["container_port"])
    local = ["127.0.0.1", "::1", bind]
    ops = entry["management_networks"] + [a for a in local if a not in entry["management_networks"]]

    def allow(nets):
        return ["        allow %s;" % n for n in nets] + ["        deny all;"]

    proxy = ["        proxy_pass %s;" % backend,
             "        proxy_http_version 1.1;",
             "        proxy_set_header Host $host;",
             "        proxy_set_header X-Forwarded-For $remote_addr;",
             "        proxy_set_header Connection \"\";"]
    lines = list(_header(entry))
    lines += [
        "# /v1/ for the inference networks; /health and /metrics (open in vLLM even",
        "# with --api-key) for the management networks and this host; nothing else.",
        "server {",
        "    listen %s;" % listen,
        "    server_name _;",
        "    access_log /var/log/nginx/%s.access.log;" % entry["container"],
        "    error_log /var/log/nginx/%s.error.log;" % entry["container"],
        "    server_tokens off;",
        "    client_max_body_size 16m;",
        "",
        "    location /v1/ {",
    ] + allow(entry["inference_networks"]) + proxy + [
        "        proxy_buffering off;",
        "        proxy_read_timeout 3600s;",
        "    }",
        "",
        "    location = /health {",
    ] + allow(ops) + proxy + [
        "    }",
        "",
        "    location = /metrics {",
    ] + allow(ops) + proxy + [
        "    }",
        "",
        "    location / {",
        "        deny all;",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Evidence from the live container


def caps_from_status(text):
    """Effective, permitted, bounding and ambient capability masks (ints) from /proc/<pid>/status."""
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            try:
                out[key] = int(value.strip(), 16)
            except ValueError:
                continue
        elif key in ("NoNewPrivs", "Uid", "Gid"):
            out[key] = value.split()
    return out


def redact_env(env_list, keep=()):
    """Env entries as NAME=value, with every value not in ``keep`` replaced (the API key is in there)."""
    out = {}
    for item in env_list or []:
        name, _, value = str(item).partition("=")
        out[name] = value if name in keep else "<redacted>"
    return out


def _mount_for(inspect, destination):
    for mount in inspect.get("Mounts") or []:
        if mount.get("Destination") == destination:
            return mount
    return None


def hardened_evidence(entry, cfg, inspect, proc_status, running):
    """VLLM-HARDENED for one model, judged from podman inspect and the container process' status."""
    problems = []
    if not inspect:
        return "fail", {"model": entry["name"], "container": entry["container"],
                        "problems": ["container %s does not exist" % entry["container"]]}
    host = inspect.get("HostConfig") or {}
    config = inspect.get("Config") or {}
    caps = caps_from_status(proc_status)
    if not running:
        problems.append("container is not running (state %s)" % (inspect.get("State") or {}).get("Status"))
    for key in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
        if caps.get(key, 0) != 0:
            problems.append("process %s is 0x%x, not 0 (capabilities left)" % (key, caps[key]))
    if running and "CapEff" not in caps:
        problems.append("could not read the container process' capabilities")
    if host.get("CapAdd"):
        problems.append("capabilities added: %s" % ", ".join(host["CapAdd"]))
    if running and caps.get("NoNewPrivs") != ["1"]:
        problems.append("no_new_privs is %s, not 1" % caps.get("NoNewPrivs"))
    if "no-new-privileges" not in (host.get("SecurityOpt") or []) and "no-new-privileges:true" not in (
            host.get("SecurityOpt") or []):
        problems.append("security option no-new-privileges not set")
    if host.get("Privileged"):
        problems.append("container is privileged")
    if not host.get("ReadonlyRootfs"):
        problems.append("root filesystem is writable")
    user = str(config.get("User") or "")
    if user in ("", "0", "root") or user.startswith("0:") or user.startswith("root"):
        problems.append("runs as user '%s' (root)" % user)
    if running and caps.get("Uid") and "0" in caps["Uid"]:
        problems.append("process uid %s includes 0" % " ".join(caps["Uid"]))
    model_mount = _mount_for(inspect, entry["mount_path"])
    if model_mount is None:
        problems.append("model folder is not mounted at %s" % entry["mount_path"])
    else:
        if model_mount.get("RW"):
            problems.append("model mount %s is writable" % entry["mount_path"])
        if model_mount.get("Source") != entry["model_dir"]:
            problems.append("model mount source %s, declared %s" % (model_mount.get("Source"), entry["model_dir"]))
    writable = [m.get("Destination") for m in inspect.get("Mounts") or []
                if m.get("RW") and m.get("Type") == "bind"]
    if writable:
        problems.append("writable bind mounts: %s" % ", ".join(writable))
    netmode = host.get("NetworkMode")
    networks = sorted(((inspect.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    if netmode == "host" or "host" in networks:
        problems.append("uses the host network")
    if networks != [cfg["network_name"]]:
        problems.append("attached to networks %s, declared only %s" % (networks, cfg["network_name"]))
    # An image's EXPOSE shows up with no binding (None); only a host port publishes.
    ports = dict((port, binds) for port, binds in (host.get("PortBindings") or {}).items()
                 if any((b or {}).get("HostPort") for b in binds or []))
    if ports:
        problems.append("publishes ports %s (nothing may be published)" % ", ".join(sorted(ports)))
    address = ((((inspect.get("NetworkSettings") or {}).get("Networks") or {}).get(cfg["network_name"]) or {})
               .get("IPAddress"))
    if address != entry["backend_address"]:
        problems.append("container address %s, declared %s" % (address, entry["backend_address"]))
    labels = config.get("Labels") or {}
    if labels.get(LABEL_MODEL) != entry["name"]:
        problems.append("label %s is %r, expected %r" % (LABEL_MODEL, labels.get(LABEL_MODEL), entry["name"]))
    evidence = {
        "model": entry["name"], "container": entry["container"], "running": bool(running),
        "user": user, "read_only_rootfs": bool(host.get("ReadonlyRootfs")),
        "cap_drop": host.get("CapDrop") or [], "cap_add": host.get("CapAdd") or [],
        "process_capabilities": dict((k, "0x%016x" % v) for k, v in caps.items() if k.startswith("Cap")),
        "no_new_privs": (caps.get("NoNewPrivs") or [None])[0],
        "security_opt": host.get("SecurityOpt") or [],
        "mounts": [{"source": m.get("Source"), "destination": m.get("Destination"), "type": m.get("Type"),
                    "rw": m.get("RW")} for m in inspect.get("Mounts") or []],
        "tmpfs": host.get("Tmpfs") or {},
        "networks": networks, "container_address": address, "published_ports": sorted(ports),
        "front_end": "%s:%s" % (entry["bind_address"], entry["port"]),
        "image": inspect.get("ImageName") or config.get("Image"),
        "problems": problems,
    }
    return ("pass" if not problems else "fail"), evidence


def offline_evidence(entry, cfg, inspect, probe, listeners, image_digest):
    """VLLM-OFFLINE for one model: env, model path, egress from the container's netns, listeners, image pin."""
    problems = []
    if not inspect:
        return "fail", {"model": entry["name"], "container": entry["container"],
                        "problems": ["container %s does not exist" % entry["container"]]}
    config = inspect.get("Config") or {}
    env = redact_env(config.get("Env"), keep=[k for k, _ in OFFLINE_ENV] + [k for k, _ in SCRATCH_ENV])
    for key, value in OFFLINE_ENV:
        if env.get(key) != value:
            problems.append("%s is %r, not %r" % (key, env.get(key), value))
    argv = list(config.get("Cmd") or [])
    model_path = None
    if "--model" in argv and argv.index("--model") + 1 < len(argv):
        model_path = argv[argv.index("--model") + 1]
    if model_path != entry["mount_path"]:
        problems.append("--model is %r, not the local mount %s" % (model_path, entry["mount_path"]))
    elif _mount_for(inspect, model_path) is None:
        problems.append("--model %s is not a mounted local folder" % model_path)
    if "--trust-remote-code" in argv and not entry["trust_remote_code"]:
        problems.append("--trust-remote-code is set but not allowed")
    if "--api-key" in argv:
        problems.append("--api-key is on the command line")
    if API_KEY_ENV not in env:
        problems.append("%s is not set: /v1 would answer without a key" % API_KEY_ENV)
    image = inspect.get("ImageName") or config.get("Image") or ""
    pinned = "@sha256:" in cfg["image"]
    if pinned and image_digest and image_digest != cfg["image"].split("@", 1)[1]:
        problems.append("container image digest %s, pinned %s" % (image_digest, cfg["image"].split("@", 1)[1]))
    probe = probe or {}
    results = probe.get("results") or []
    forbidden = [r for r in results if r.get("expect") != "reachable"]
    controls = [r for r in results if r.get("expect") == "reachable"]
    if not forbidden:
        problems.append("no egress probe results from the container's network namespace")
    for result in forbidden:
        if result.get("status") != "blocked":
            problems.append("from the container: %s is %s (%s)" % (result.get("name"), result.get("status"),
                                                                   result.get("reason")))
    # The positive control (the container's own port, from inside its
    # namespace) shows the prober really worked in there: without it,
    # "blocked" could mean a prober that never sent a packet.
    for result in controls:
        if result.get("status") != "reachable":
            problems.append("positive control %s is %s (%s): the probe from the container cannot be trusted"
                            % (result.get("name"), result.get("status"), result.get("reason")))
    wanted = "%s:%d" % (("[%s]" % entry["bind_address"]) if ":" in entry["bind_address"] else entry["bind_address"],
                        entry["port"])
    bound = [l for l in listeners or [] if l.endswith(":%d" % entry["port"])]
    if wanted not in bound:
        problems.append("nothing listens on %s" % wanted)
    others = [l for l in bound if l != wanted]
    if others:
        problems.append("port %d also listens on %s" % (entry["port"], ", ".join(others)))
    evidence = {
        "model": entry["name"], "container": entry["container"],
        "offline_env": dict((k, env.get(k)) for k, _ in OFFLINE_ENV),
        "env_names": sorted(env), "model_path": model_path, "image": image, "image_digest": image_digest,
        "image_pinned": cfg["image"],
        "egress_from_container": [{"name": r.get("name"), "status": r.get("status"), "reason": r.get("reason"),
                                   "expect": r.get("expect") or "blocked"} for r in results],
        "egress_summary": probe.get("summary"),
        "listeners_on_port": bound, "bind_address": entry["bind_address"],
        "problems": problems,
    }
    return ("pass" if not problems else "fail"), evidence


def parse_listeners(ss_output):
    """Local listening addresses (ADDR:PORT, IPv6 in brackets) from `ss -Hltn` output."""
    out = []
    for line in (ss_output or "").splitlines():
        fields = line.split()
        if len(fields) >= 4:
            local = fields[3]
            host, _, port = local.rpartition(":")
            host = host.split("%")[0]
            if host.startswith("[") or ":" not in host:
                out.append("%s:%s" % (host, port))
            else:
                out.append("[%s]:%s" % (host, port))
    return out
