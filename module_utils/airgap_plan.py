# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site plan: one declaration per fact, turned into what every role reads.

An operator declares each model once, in ``airgap_models``, and the mirror
once, in ``airgap_mirror_url`` and ``airgap_mirror_addresses``. This module
derives, from those declarations and nothing else:

* the weights to copy and verify (``weights_models``, read by model_weights)
  and the models to serve (``server_models``, read by vllm_server);
* each model's systemd unit and container name (``unit_name``,
  ``container_name``: the only place these names are made);
* the firewall entries the models and the mirror need: ingress to each
  model's front-end port from the networks it serves, egress from the front
  end to the containers' backend subnet, egress to the mirror's port on each
  of its addresses (``firewall_ingress``, ``firewall_egress``);
* the sockets the host may listen on for them (``listeners``: nginx per
  model, aardvark-dns on the backend network's gateway);
* the isolation monitor's serving units and its default positive control
  (the mirror, which must stay reachable every round).

Operators add what cannot be derived through the roles' own lists
(``firewall_egress_allow``, ``firewall_ingress_allow``,
``host_hardening_extra_listeners``, ``model_weights_models_extra``). The
per-role model lists of earlier releases (``model_weights_models``,
``vllm_server_models`` set in the inventory) are refused by ``plan()`` with
an error that names ``airgap_models``: two copies of one model can disagree.

Standard library only: it runs in filter plugins on the controller and is
unit-tested on its own.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

VAR = "airgap_models"
NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,62}\Z")
WEIGHTS_KEYS = ("name", "manifest", "dest", "manifest_sha256")
SERVER_KEYS = ("name", "port", "gpus", "served_model_name", "backend_address", "args", "env",
               "api_key_file", "trust_remote_code")
PLAN_KEYS = ("networks",)
MODEL_KEYS = tuple(sorted(set(WEIGHTS_KEYS + SERVER_KEYS + PLAN_KEYS)))
REQUIRED = ("name", "manifest", "dest", "port")

# Defaults of the settings that more than one role reads. They live here, once.
BACKEND_SUBNET = "10.213.0.0/24"
CONTAINER_PORT = 8000
# model_weights installs the start-time check here; vllm_server runs it as ExecStartPre.
CHECKER_PATH = "/usr/local/lib/airgap/airgap_manifest.py"
PYTHON = "/usr/bin/python3"

REPLACED = {
    "model_weights_models": "airgap_models (name, manifest, dest) or model_weights_models_extra for weights "
                            "that no server uses",
    "vllm_server_models": "airgap_models (name, port, gpus and the other server keys, next to the weights)",
}

_URL_RE = re.compile(r"\A(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(/[^?#\s]*)?\Z")


def unit_name(model_name):
    """The systemd unit that serves a model."""
    return "vllm-%s.service" % model_name


def container_name(model_name):
    """The podman container (and network alias) of a model."""
    return "vllm-%s" % model_name


def secret_name(model_name):
    """The podman secret that holds a model's backend API key."""
    return "vllm-%s-api-key" % model_name


def weights_by_name(models, mirror_url, python=PYTHON, checker=CHECKER_PATH):
    """Per model: its folder, manifest URL and the start-time check its unit runs as ExecStartPre.

    The contract between model_weights (which installs the check) and
    vllm_server (which runs it before every start, fail closed): computed from
    the declaration alone, so neither role needs the other to have run.
    """
    out = {}
    base = str(mirror_url or "").rstrip("/")
    for model in models or []:
        pin = str(model.get("manifest_sha256") or "").lower()
        argv = [python, checker, "check", "--dest", model["dest"]] + (["--manifest-sha256", pin] if pin else [])
        out[model["name"]] = {
            "dest": model["dest"],
            "manifest_url": base + "/" + model["manifest"],
            "manifest_sha256": pin,
            "check_command": " ".join(argv),
            "check_argv": argv,
        }
    return out


def _is_list(value):
    return isinstance(value, (list, tuple))


def whole_number(value, low, high):
    """An int from an int or ASCII digits within [low, high], else None.

    Booleans are not numbers, and only ASCII digits count: int() also reads
    "1_0", " 1 " and non-ASCII digits, which would turn a typo into a value.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.match(r"\A[0-9]{1,6}\Z", value):
        number = int(value)
    else:
        return None
    return number if low <= number <= high else None


def _port(value):
    """A TCP port from an int or a string of ASCII digits, else None."""
    return whole_number(value, 1, 65535)


def _network(value):
    """An ip_network from CIDR text (host bits must be zero), else None."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError:
        return None


def _address(value):
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None


def mirror_endpoint(url):
    """(scheme, host, port) of the mirror URL, or None when it is not an http(s) URL with a host."""
    if not isinstance(url, str):
        return None
    match = _URL_RE.match(url)  # not stripped: a stray space or newline would reach every URL built from it
    if not match:
        return None
    scheme, host, port = match.group(1), match.group(2), match.group(3)
    number = int(port) if port else (443 if scheme == "https" else 80)
    if not 1 <= number <= 65535:
        return None
    return scheme, host.strip("[]"), number


def _vlan_interfaces(interfaces, purpose):
    """ip_interface of every address of the VLANs declared with a purpose (network_vlan_interfaces)."""
    for vlan in interfaces or []:
        if not isinstance(vlan, dict) or vlan.get("purpose") != purpose:
            continue
        for address in vlan.get("addresses") or []:
            try:
                yield ipaddress.ip_interface(str(address))
            except ValueError:
                continue


def vlan_networks(interfaces, purpose):
    """The subnets of the VLANs declared with a purpose, each once."""
    out = []
    for iface in _vlan_interfaces(interfaces, purpose):
        if str(iface.network) not in out:
            out.append(str(iface.network))
    return out


def vlan_addresses(interfaces, purpose):
    """The host's own addresses on the VLANs with a purpose, without prefix length."""
    return [str(iface.ip) for iface in _vlan_interfaces(interfaces, purpose)]


def _model_errors(models):
    errors = []
    if not _is_list(models):
        return ["%s must be a list of models {name, manifest, dest, port, gpus}, got %r" % (VAR, models)]
    names, ports = {}, {}
    for index, model in enumerate(models):
        at = "%s[%d]" % (VAR, index)
        if not isinstance(model, dict):
            errors.append("%s: %r must be a mapping with name, manifest, dest and port" % (at, model))
            continue
        name = model.get("name")
        if isinstance(name, str):
            at += " '%s'" % name
        unknown = sorted(str(k) for k in set(model) - set(MODEL_KEYS))
        if unknown:
            errors.append("%s: unknown key(s) %s (allowed: %s)" % (at, ", ".join(unknown), ", ".join(MODEL_KEYS)))
        missing = [k for k in REQUIRED if model.get(k) in (None, "")]
        if missing:
            errors.append("%s: %s required" % (at, " and ".join(missing) + (" is" if len(missing) == 1 else " are")))
        if name not in (None, ""):
            if not isinstance(name, str) or not NAME_RE.match(name):
                errors.append("%s: name %r must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with "
                              "a letter or digit" % (at, name))
            elif name in names:
                errors.append("%s: name '%s' is already used by %s[%d]; names must be unique"
                              % (at, name, VAR, names[name]))
            else:
                names[name] = index
        if model.get("port") not in (None, ""):
            port = _port(model.get("port"))
            if port is None:
                errors.append("%s: port %r must be a TCP port from 1 to 65535" % (at, model.get("port")))
            elif port in ports:
                errors.append("%s: port %d is already used by %s[%d]" % (at, port, VAR, ports[port]))
            else:
                ports[port] = index
        if "networks" in model:
            nets = model.get("networks")
            if not _is_list(nets) or not nets:
                errors.append("%s: networks %r must be a non-empty list of networks in CIDR notation (or leave it "
                              "out to serve the inference networks)" % (at, nets))
            else:
                for j, net in enumerate(nets):
                    parsed = _network(net)
                    if parsed is None:
                        errors.append("%s: networks[%d] %r is not a network in CIDR notation with the host bits "
                                      "zero" % (at, j, net))
                    elif parsed.prefixlen == 0:
                        errors.append("%s: networks[%d] %r would admit every address; name the inference "
                                      "networks" % (at, j, net))
    return errors


def _mirror_errors(url, addresses, needed):
    errors = []
    if url is None:
        if needed:
            errors.append("airgap_mirror_url is not defined; it must be the http:// or https:// URL of the "
                          "internal mirror")
    elif mirror_endpoint(url) is None:
        errors.append("airgap_mirror_url: %r must be an http:// or https:// URL with a host and no query, "
                      "fragment or credentials" % (url,))
    if not _is_list(addresses):
        errors.append("airgap_mirror_addresses: %r must be a list of the mirror's IPv4 and IPv6 addresses"
                      % (addresses,))
        return errors
    seen = set()
    for index, value in enumerate(addresses):
        addr = _address(value)
        if addr is None:
            errors.append("airgap_mirror_addresses[%d]: %r is not an IP address (a single address, no prefix)"
                          % (index, value))
        elif addr.is_unspecified or addr.is_multicast:
            errors.append("airgap_mirror_addresses[%d]: %r cannot be a mirror's address" % (index, value))
        elif addr in seen:
            errors.append("airgap_mirror_addresses[%d]: %r is listed twice" % (index, value))
        else:
            seen.add(addr)
    return errors


def plan(cfg):
    """The site plan from the declarations in ``cfg`` (a mapping of variable names).

    Keys read: airgap_models, airgap_mirror_url, airgap_mirror_addresses,
    model_weights_models_extra, network_vlan_interfaces,
    vllm_server_inference_networks, vllm_server_bind_address,
    vllm_server_network_subnet, vllm_server_container_port,
    model_weights_python, model_weights_checker_path, and the replaced
    variables (present means set in the inventory). Returns a dict with
    ``errors`` (every problem, each naming its variable) and, when there are
    none, the derived lists.
    """
    cfg = cfg or {}
    models = cfg.get("airgap_models")
    models = [] if models is None else models
    extra = cfg.get("model_weights_models_extra")
    extra = [] if extra is None else extra
    errors = []
    for old, new in sorted(REPLACED.items()):
        if cfg.get(old) is not None:
            errors.append("%s is no longer set in the inventory: declare each model once in %s" % (old, new))
    errors += _model_errors(models)
    if not _is_list(extra):
        errors.append("model_weights_models_extra: %r must be a list of {name, manifest, dest}" % (extra,))
        extra = []
    addresses = cfg.get("airgap_mirror_addresses")
    addresses = [] if addresses is None else addresses
    errors += _mirror_errors(cfg.get("airgap_mirror_url"), addresses, bool(models or extra))
    subnet_text = cfg.get("vllm_server_network_subnet") or BACKEND_SUBNET
    subnet = _network(subnet_text)
    if subnet is None or subnet.version != 4 or subnet.prefixlen > 28:
        errors.append("vllm_server_network_subnet: %r must be an IPv4 network in CIDR notation, /28 or larger, "
                      "with the host bits zero" % (subnet_text,))
    container_port = cfg.get("vllm_server_container_port")
    container_port = CONTAINER_PORT if container_port in (None, "") else container_port
    if _port(container_port) is None:
        errors.append("vllm_server_container_port: %r must be a TCP port from 1 to 65535" % (container_port,))
    if errors:
        return {"errors": errors}
    container_port = _port(container_port)
    vlans = cfg.get("network_vlan_interfaces") or []
    inference = list(cfg.get("vllm_server_inference_networks") or []) or vlan_networks(vlans, "inference")
    bind = cfg.get("vllm_server_bind_address") or (vlan_addresses(vlans, "inference") or [""])[0]

    weights, servers, units, ingress, listeners = [], [], [], [], []
    for model in models:
        name = model["name"]
        weights.append(dict((k, model[k]) for k in WEIGHTS_KEYS if k in model))
        server = dict((k, model[k]) for k in SERVER_KEYS if k in model)
        server["port"] = _port(model["port"])
        servers.append(server)
        units.append(unit_name(name))
        nets = [str(n) for n in (model.get("networks") or inference)]
        for index, net in enumerate(nets):
            ingress.append({"name": "vllm-%s-%d" % (name, index), "src": net, "proto": "tcp",
                            "ports": [server["port"]]})
        if bind:
            listeners.append({"name": "vllm-front-%s" % name, "proto": "tcp", "address": str(bind),
                              "port": server["port"], "process": "nginx"})
    labels = ["%s[%d]" % (VAR, i) for i in range(len(weights))]
    labels += ["model_weights_models_extra[%d]" % i for i in range(len(extra))]
    weights += list(extra)

    egress = []
    endpoint = mirror_endpoint(cfg.get("airgap_mirror_url")) if cfg.get("airgap_mirror_url") is not None else None
    mirror_port = endpoint[2] if endpoint else None
    for index, value in enumerate(addresses):
        addr = _address(value)
        egress.append({"name": "mirror-%d" % index, "dest": "%s/%d" % (addr, addr.max_prefixlen),
                       "proto": "tcp", "ports": [mirror_port]})
    positive = {}
    if addresses and mirror_port:
        first = sorted(addresses, key=lambda a: _address(a).version)[0]
        positive = {"name": "mirror", "dest": str(_address(first)), "proto": "tcp", "port": mirror_port}
    if servers:
        gateway = str(subnet.network_address + 1)
        egress.append({"name": "vllm-backend", "dest": str(subnet), "proto": "tcp", "ports": [container_port]})
        listeners += [
            {"name": "vllm-network-dns-udp", "proto": "udp", "address": gateway, "port": 53, "process": "aardvark-dns"},
            {"name": "vllm-network-dns-tcp", "proto": "tcp", "address": gateway, "port": 53, "process": "aardvark-dns"},
        ]
    python = cfg.get("model_weights_python") or PYTHON
    checker = cfg.get("model_weights_checker_path") or CHECKER_PATH
    usable = [m for m in weights if isinstance(m, dict) and isinstance(m.get("name"), str)
              and isinstance(m.get("dest"), str) and isinstance(m.get("manifest"), str)]
    return {
        "errors": [],
        "weights_models": weights,
        "weights_check": {"python": python, "checker_path": checker},
        "weights_by_name": weights_by_name(usable, cfg.get("airgap_mirror_url"), python, checker),
        "weights_labels": labels,
        "server_models": servers,
        "serving_units": units,
        "inference_networks": [str(n) for n in inference],
        "bind_address": str(bind),
        "backend": {"subnet": str(subnet), "container_port": container_port},
        "mirror": {"url": cfg.get("airgap_mirror_url"), "addresses": [str(_address(a)) for a in addresses],
                   "port": mirror_port},
        "firewall_egress": egress,
        "firewall_ingress": ingress,
        "listeners": listeners,
        "positive_control": positive,
    }
