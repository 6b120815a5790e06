# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network_vlan role's logic: validation, rendering, zones and state.

Used from three places, so it imports only the standard library:

* the controller (``filter_plugins/network_vlan_filters.py``): validating
  ``network_vlan_interfaces`` before any host changes, rendering the
  systemd-networkd ``.netdev``/``.network`` files or NetworkManager keyfiles,
  and turning the declared purposes into firewall zones;
* the target (``library/network_vlan_facts.py`` and
  ``library/network_vlan_apply.py``): parsing ``ip -j -d link``/``ip -j
  addr``/``ip -j route`` and ``/proc/net/vlan``, and the owned-file marker;
* pytest.

Decisions an auditor should find in one place:

* **Purposes are a closed list** (management, inference, storage, mirror).
  The firewall scopes services by purpose, so a typo must fail, not create a
  zone nobody refers to.
* **Subnets may not overlap across VLANs on one host.** Overlapping subnets
  make the kernel's choice of interface (and so the firewall zone a packet
  belongs to) depend on route order rather than on the declaration.
* **Every file the role writes starts with MARKER** and carries the
  interfaces it concerns; only files with the project prefix *and* the
  marker are ever removed, so an administrator's file is never deleted.
* **A VLAN that cannot exist is not "pass".** Where the kernel has no 802.1Q
  support, declared VLANs are reported as ``error`` with that reason.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import ipaddress
import json
import os
import re
import uuid

PURPOSES = ("management", "inference", "storage", "mirror")
PROVIDERS = ("networkd", "networkmanager")
ENTRY_KEYS = ("id", "name", "parent", "purpose", "addresses", "gateway", "mtu", "routes", "comment")
ROUTE_KEYS = ("to", "via", "metric")

MARKER = "# airgap network_vlan: managed file, do not edit"
INTERFACES_TAG = "# airgap-vlan-interfaces:"
NETWORKD_DIR = "/etc/systemd/network"
NM_DIR = "/etc/NetworkManager/system-connections"
# Project prefix of every file the role owns. The order number sorts VLAN
# files after a typical administrator's 10-/20- files for the parents.
NETWORKD_PREFIX = "30-airgap-vlan-"
NM_PREFIX = "airgap-vlan-"
DROPIN_NAME = "airgap-vlan.conf"
# uuid5 namespace for NetworkManager connection UUIDs: stable per VLAN name,
# so re-rendering gives byte-identical keyfiles.
_NM_NAMESPACE = uuid.UUID("6f1b7c52-3c1e-5d0b-9a55-8b0e2f1d4a10")

# IFNAMSIZ is 16 including the NUL. '/' and whitespace are refused by the
# kernel; ':' and '@' confuse ip(8) output, '.' alone and '..' are reserved.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_COMMENT_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,200}$")
MTU_MIN = 68
MTU_MAX = 65535
IPV6_MIN_MTU = 1280


class VlanConfigError(ValueError):
    """Invalid VLAN input; ``errors`` lists every problem found."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(VlanConfigError, self).__init__(
            "%d VLAN configuration error(s):\n  - %s" % (len(self.errors), "\n  - ".join(self.errors)))


# ---------------------------------------------------------------------------
# Validation (controller side)
# ---------------------------------------------------------------------------

def _label(var, index, entry):
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and name:
        return "%s[%d] '%s'" % (var, index, name)
    return "%s[%d]" % (var, index)


def _int(value):
    """An int from an int or a digit string (extra vars arrive as strings); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^[0-9]{1,6}$", value.strip()):
        return int(value.strip())
    return None


def parse_interface_address(value):
    """'10.10.0.21/24' -> (IPv4Interface, None) or (None, reason).

    A prefix length is required: without one the subnet (and so the zone
    and the overlap check) would be a guess.
    """
    if not isinstance(value, str) or "/" not in value:
        return None, "%r must be an address with a prefix length, e.g. 10.10.0.21/24 or fd00:10::21/64" % (value,)
    try:
        iface = ipaddress.ip_interface(value.strip())
    except ValueError:
        return None, "%r is not a valid IPv4/IPv6 address with prefix length" % (value,)
    ip = iface.ip
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local:
        return None, "%r is not a usable host address (unspecified, loopback, multicast or link-local)" % (value,)
    if iface.version == 6 and ip.ipv4_mapped is not None:
        return None, "%r is an IPv4-mapped IPv6 address; write the IPv4 form" % (value,)
    net = iface.network
    if iface.version == 4 and net.prefixlen <= 30 and ip in (net.network_address, net.broadcast_address):
        return None, "%r is the network or broadcast address of %s, not a host address" % (value, net)
    return iface, None


def _parse_ip(value):
    try:
        return ipaddress.ip_address(str(value).strip()) if isinstance(value, str) else None
    except ValueError:
        return None


def _normalize_gateways(label, raw, ifaces, errors):
    """Gateways as {'4': str, '6': str}; each must be on-link in one of the VLAN's subnets."""
    if raw in (None, "", []):
        return {}
    items = raw if isinstance(raw, list) else [raw]
    out = {}
    for item in items:
        ip = _parse_ip(item)
        if ip is None:
            errors.append("%s: gateway %r is not an IP address" % (label, item))
            continue
        fam = str(ip.version)
        if fam in out:
            errors.append("%s: gateway: more than one IPv%s gateway (%s, %s)" % (label, fam, out[fam], ip))
            continue
        if not any(i.version == ip.version and ip in i.network for i in ifaces):
            errors.append("%s: gateway %s is not inside any of this VLAN's IPv%s subnets (%s)"
                          % (label, ip, fam, ", ".join(str(i.network) for i in ifaces if i.version == ip.version)
                             or "none"))
            continue
        out[fam] = str(ip)
    return out


def _normalize_routes(label, raw, ifaces, errors):
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        errors.append("%s: routes must be a list of {to, via, metric}, got %r" % (label, raw))
        return []
    out = []
    for i, route in enumerate(raw):
        at = "%s: routes[%d]" % (label, i)
        if not isinstance(route, dict):
            errors.append("%s: must be a mapping {to, via, metric}, got %r" % (at, route))
            continue
        unknown = sorted(set(route) - set(ROUTE_KEYS))
        if unknown:
            errors.append("%s: unknown key(s) %s (allowed: %s)" % (at, ", ".join(map(str, unknown)), ", ".join(ROUTE_KEYS)))
        try:
            dest = ipaddress.ip_network(str(route.get("to", "")).strip(), strict=True)
        except ValueError:
            errors.append("%s: to %r must be a network in CIDR form without host bits, e.g. 10.30.0.0/16"
                          % (at, route.get("to")))
            continue
        if dest.prefixlen == 0:
            errors.append("%s: to %s is a default route; use gateway for that" % (at, dest))
            continue
        entry = {"to": str(dest)}
        if route.get("via") not in (None, ""):
            via = _parse_ip(route.get("via"))
            if via is None or via.version != dest.version:
                errors.append("%s: via %r must be an IPv%d address" % (at, route.get("via"), dest.version))
                continue
            if not any(x.version == via.version and via in x.network for x in ifaces):
                errors.append("%s: via %s is not inside any of this VLAN's subnets" % (at, via))
                continue
            entry["via"] = str(via)
        if route.get("metric") is not None:
            metric = _int(route.get("metric"))
            if metric is None or metric > 4294967295:
                errors.append("%s: metric %r must be a whole number" % (at, route.get("metric")))
                continue
            entry["metric"] = metric
        out.append(entry)
    return out


def _normalize_one(var, index, entry, errors):
    label = _label(var, index, entry)
    if not isinstance(entry, dict):
        errors.append("%s: must be a mapping with id, name, parent, purpose and addresses, got %r" % (label, entry))
        return None
    start = len(errors)
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        errors.append("%s: unknown key(s) %s (allowed: %s)" % (label, ", ".join(map(str, unknown)), ", ".join(ENTRY_KEYS)))
    vid = _int(entry.get("id"))
    if vid is None or not 1 <= vid <= 4094:
        errors.append("%s: id %r must be a VLAN id from 1 to 4094 (0 and 4095 are reserved by 802.1Q)"
                      % (label, entry.get("id")))
    name = entry.get("name")
    if not isinstance(name, str) or not _IFNAME_RE.match(name):
        errors.append("%s: name %r must be an interface name of 1-15 letters, digits, '_', '.' or '-'" % (label, name))
    parent = entry.get("parent")
    if not isinstance(parent, str) or not _IFNAME_RE.match(parent):
        errors.append("%s: parent %r must be the name of an existing interface (1-15 characters)" % (label, parent))
    elif parent == name:
        errors.append("%s: parent %r cannot be the VLAN interface itself" % (label, parent))
    purpose = entry.get("purpose")
    if purpose not in PURPOSES:
        errors.append("%s: purpose %r must be one of %s" % (label, purpose, ", ".join(PURPOSES)))
    raw = entry.get("addresses")
    ifaces = []
    if isinstance(raw, str) or not isinstance(raw, list) or not raw:
        errors.append("%s: addresses must be a non-empty list of IPv4/IPv6 addresses with prefix length, got %r"
                      % (label, raw))
    else:
        for item in raw:
            iface, why = parse_interface_address(item)
            if why:
                errors.append("%s: addresses: %s" % (label, why))
            elif any(i.ip == iface.ip for i in ifaces):
                errors.append("%s: addresses: %s is listed twice" % (label, iface.ip))
            else:
                ifaces.append(iface)
    mtu = None
    if entry.get("mtu") is not None:
        mtu = _int(entry.get("mtu"))
        if mtu is None or not MTU_MIN <= mtu <= MTU_MAX:
            errors.append("%s: mtu %r must be a whole number from %d to %d" % (label, entry.get("mtu"), MTU_MIN, MTU_MAX))
            mtu = None
        elif mtu < IPV6_MIN_MTU and any(i.version == 6 for i in ifaces):
            errors.append("%s: mtu %d is below %d, the minimum for IPv6 (the VLAN has IPv6 addresses)"
                          % (label, mtu, IPV6_MIN_MTU))
    gateways = _normalize_gateways(label, entry.get("gateway"), ifaces, errors)
    routes = _normalize_routes(label, entry.get("routes"), ifaces, errors)
    comment = entry.get("comment", "")
    if not isinstance(comment, str) or not _COMMENT_RE.match(comment):
        errors.append("%s: comment must be one line of at most 200 printable characters" % label)
    if len(errors) != start:
        return None
    return {
        "id": vid, "name": name, "parent": parent, "purpose": purpose,
        "addresses": [str(i) for i in ifaces],
        "ipv4": [str(i) for i in ifaces if i.version == 4],
        "ipv6": [str(i) for i in ifaces if i.version == 6],
        "subnets": sorted(set(str(i.network) for i in ifaces)),
        "gateway": gateways, "routes": routes, "mtu": mtu, "comment": comment, "index": index,
    }


def normalize(entries, var="network_vlan_interfaces"):
    """Validate ``network_vlan_interfaces`` and return normalised entries.

    Checks each entry (id 1-4094, name, parent, purpose, addresses, gateway,
    routes, MTU) and the list as a whole (names unique on the host, ids
    unique per parent, no subnet overlapping another VLAN's). Raises
    VlanConfigError listing every problem, each naming the variable and entry.
    """
    if entries is None:
        entries = []
    if isinstance(entries, (str, dict)) or not isinstance(entries, (list, tuple)):
        raise VlanConfigError(["%s: must be a list of VLAN entries, got %s" % (var, type(entries).__name__)])
    errors = []
    out = []
    for index, entry in enumerate(entries):
        norm = _normalize_one(var, index, entry, errors)
        if norm is not None:
            out.append(norm)
    errors.extend(_cross_checks(var, out))
    if errors:
        raise VlanConfigError(errors)
    return out


def _cross_checks(var, vlans):
    errors = []
    names, ids = {}, {}
    parents = set(v["parent"] for v in vlans)
    for v in vlans:
        label = "%s[%d] '%s'" % (var, v["index"], v["name"])
        if v["name"] in names:
            errors.append("%s: name '%s' is already used by %s[%d]; interface names must be unique on a host"
                          % (label, v["name"], var, names[v["name"]]))
        else:
            names[v["name"]] = v["index"]
        if v["name"] in parents:
            errors.append("%s: name '%s' is also used as a parent; VLANs on VLANs (QinQ) are not supported"
                          % (label, v["name"]))
        key = (v["parent"], v["id"])
        if key in ids:
            errors.append("%s: id %d on parent %s is already used by %s[%d]; VLAN ids must be unique per parent"
                          % (label, v["id"], v["parent"], var, ids[key]))
        else:
            ids[key] = v["index"]
    for i, a in enumerate(vlans):
        for b in vlans[i + 1:]:
            for na in a["subnets"]:
                for nb in b["subnets"]:
                    x, y = ipaddress.ip_network(na), ipaddress.ip_network(nb)
                    if x.version == y.version and x.overlaps(y):
                        errors.append("%s[%d] '%s': subnet %s overlaps %s of %s[%d] '%s'; each VLAN needs its own subnets"
                                      % (var, b["index"], b["name"], nb, na, var, a["index"], a["name"]))
    return errors


def check_against_host(vlans, facts, var="network_vlan_interfaces"):
    """Host-side checks before any change: parents exist, MTU fits, names free.

    ``facts`` is the result of the network_vlan_facts module (``links``).
    Returns a list of error messages (empty when the host can take the VLANs).
    """
    links = (facts or {}).get("links") or {}
    errors = []
    for v in vlans:
        label = "%s[%d] '%s'" % (var, v["index"], v["name"])
        parent = links.get(v["parent"])
        if parent is None:
            errors.append("%s: parent '%s' is not an interface on this host (present: %s)"
                          % (label, v["parent"], ", ".join(sorted(links)) or "none"))
            continue
        pmtu = parent.get("mtu")
        if v["mtu"] is not None and isinstance(pmtu, int) and v["mtu"] > pmtu:
            errors.append("%s: mtu %d is larger than the MTU %d of its parent %s; raise the parent's MTU first"
                          % (label, v["mtu"], pmtu, v["parent"]))
        if v["mtu"] is None and isinstance(pmtu, int) and pmtu < IPV6_MIN_MTU and v["ipv6"]:
            errors.append("%s: inherits MTU %d from %s, below the IPv6 minimum %d" % (label, pmtu, v["parent"], IPV6_MIN_MTU))
        live = links.get(v["name"])
        if live is not None and live.get("kind") != "vlan":
            errors.append("%s: an interface named '%s' already exists and is not a VLAN (kind %s); choose another name"
                          % (label, v["name"], live.get("kind") or "physical"))
    return errors


# ---------------------------------------------------------------------------
# Zones: the data the firewall role consumes
# ---------------------------------------------------------------------------

def zones(vlans):
    """{purpose: {'interfaces': [...], 'subnets': [...], 'addresses': [...], 'vlan_ids': [...]}}.

    Only purposes that have at least one VLAN appear, so an empty declaration
    gives {} and the firewall renders exactly what it renders without VLANs.
    """
    out = {}
    for v in vlans:
        zone = out.setdefault(v["purpose"], {"interfaces": [], "subnets": [], "addresses": [], "vlan_ids": []})
        zone["interfaces"].append(v["name"])
        zone["subnets"].extend(v["subnets"])
        zone["addresses"].extend(a.split("/")[0] for a in v["addresses"])
        zone["vlan_ids"].append(v["id"])
    for zone in out.values():
        for key in zone:
            zone[key] = sorted(set(zone[key]), key=lambda x: (str(type(x)), x))
    return out


def interface_roles(vlans):
    """{ifname: purpose}, the firewall role's firewall_interface_roles."""
    return dict((v["name"], v["purpose"]) for v in vlans)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

def _header(interfaces, what):
    return [MARKER, "%s %s" % (INTERFACES_TAG, " ".join(interfaces)), "# %s" % what]


def _desc(v):
    return "airgap VLAN %d (%s)%s" % (v["id"], v["purpose"], (": " + v["comment"]) if v["comment"] else "")


def render_networkd(vlans, parent_files=None, directory=NETWORKD_DIR):
    """Files for systemd-networkd: [{path, content, mode, interfaces}].

    Per VLAN a ``.netdev`` (name, kind, id: what needs the link recreated when
    it changes) and a ``.network`` (addresses, gateway, routes, MTU). The
    parent gets its ``VLAN=`` lines through a drop-in for the ``.network``
    file that already manages it (``parent_files`` maps parent -> path, from
    network_vlan_facts), or, where none does, a ``.network`` of the role's own.
    """
    parent_files = parent_files or {}
    files = []
    by_parent = {}
    for v in sorted(vlans, key=lambda x: x["name"]):
        by_parent.setdefault(v["parent"], []).append(v)
        base = "%s/%sif-%s" % (directory, NETWORKD_PREFIX, v["name"])
        netdev = _header([v["name"]], "802.1Q VLAN %d on %s, purpose %s" % (v["id"], v["parent"], v["purpose"])) + [
            "[NetDev]", "Name=%s" % v["name"], "Kind=vlan", "Description=%s" % _desc(v), "",
            "[VLAN]", "Id=%d" % v["id"]]
        network = _header([v["name"]], "addresses and routes of VLAN %d" % v["id"]) + [
            "[Match]", "Name=%s" % v["name"], "Type=vlan", ""]
        if v["mtu"] is not None:
            network += ["[Link]", "MTUBytes=%d" % v["mtu"], ""]
        network += ["[Network]", "Description=%s" % _desc(v)]
        network += ["Address=%s" % a for a in v["addresses"]]
        for fam in ("4", "6"):
            if fam in v["gateway"]:
                network.append("Gateway=%s" % v["gateway"][fam])
        # Static addressing only: no DHCP, no router advertisements deciding routes in an air gap.
        network += ["DHCP=no", "IPv6AcceptRA=no",
                    "LinkLocalAddressing=%s" % ("ipv6" if v["ipv6"] else "no"),
                    "ConfigureWithoutCarrier=yes"]
        for r in v["routes"]:
            network += ["", "[Route]", "Destination=%s" % r["to"]]
            if "via" in r:
                network.append("Gateway=%s" % r["via"])
            else:
                network.append("Scope=link")
            if "metric" in r:
                network.append("Metric=%d" % r["metric"])
        files.append({"path": base + ".netdev", "content": "\n".join(netdev) + "\n", "mode": "0644",
                      "interfaces": [v["name"]], "kind": "netdev"})
        files.append({"path": base + ".network", "content": "\n".join(network) + "\n", "mode": "0644",
                      "interfaces": [v["name"]], "kind": "network"})
    for parent in sorted(by_parent):
        names = [v["name"] for v in by_parent[parent]]
        lines = ["[Network]"] + ["VLAN=%s" % n for n in names]
        existing = parent_files.get(parent)
        if existing:
            path = "%s/%s.d/%s" % (directory, existing.rsplit("/", 1)[-1], DROPIN_NAME)
            head = _header([parent], "VLANs carried by %s (drop-in for %s)" % (parent, existing))
        else:
            path = "%s/%sparent-%s.network" % (directory, NETWORKD_PREFIX, parent)
            head = _header([parent], "VLANs carried by %s (no other .network manages it)" % parent)
            # KeepConfiguration: an interface nobody configured through networkd
            # may carry addresses set by others (ifupdown, the lab's podman);
            # networkd must not drop them when it takes the parent over.
            lines = ["[Match]", "Name=%s" % parent, ""] + lines + [
                "LinkLocalAddressing=no", "IPv6AcceptRA=no", "ConfigureWithoutCarrier=yes", "KeepConfiguration=yes"]
        files.append({"path": path, "content": "\n".join(head + lines) + "\n", "mode": "0644",
                      "interfaces": [parent], "kind": "parent"})
    return files


def nm_uuid(name):
    """Stable connection UUID for a VLAN name."""
    return str(uuid.uuid5(_NM_NAMESPACE, name))


def render_networkmanager(vlans, directory=NM_DIR):
    """NetworkManager keyfiles, one per VLAN (mode 0600, as NM requires)."""
    files = []
    for v in sorted(vlans, key=lambda x: x["name"]):
        cid = "%s%s" % (NM_PREFIX, v["name"])
        lines = _header([v["name"]], "802.1Q VLAN %d on %s, purpose %s" % (v["id"], v["parent"], v["purpose"])) + [
            "[connection]", "id=%s" % cid, "uuid=%s" % nm_uuid(v["name"]), "type=vlan",
            "interface-name=%s" % v["name"], "autoconnect=true", ""]
        if v["mtu"] is not None:
            lines += ["[ethernet]", "mtu=%d" % v["mtu"], ""]
        lines += ["[vlan]", "id=%d" % v["id"], "parent=%s" % v["parent"], "flags=1", ""]
        for fam, key in (("4", "ipv4"), ("6", "ipv6")):
            addrs = v[key]
            lines.append("[%s]" % key)
            if not addrs:
                lines += ["method=disabled", ""]
                continue
            lines.append("method=manual")
            lines += ["address%d=%s" % (i + 1, a) for i, a in enumerate(addrs)]
            if fam in v["gateway"]:
                lines.append("gateway=%s" % v["gateway"][fam])
            else:
                lines.append("never-default=true")
            routes = [r for r in v["routes"] if ipaddress.ip_network(r["to"]).version == int(fam)]
            for i, r in enumerate(routes):
                value = r["to"] + ("," + r["via"] if "via" in r else "")
                if "metric" in r:
                    value += ("," if "via" in r else ",,") + str(r["metric"])
                lines.append("route%d=%s" % (i + 1, value))
            if fam == "6":
                lines.append("addr-gen-mode=stable-privacy")
            lines.append("")
        files.append({"path": "%s/%s.nmconnection" % (directory, cid), "content": "\n".join(lines).rstrip("\n") + "\n",
                      "mode": "0600", "interfaces": [v["name"]], "kind": "keyfile"})
    return files


def render(vlans, provider, parent_files=None):
    """Files for ``provider`` (networkd or networkmanager)."""
    if provider == "networkd":
        return render_networkd(vlans, parent_files)
    if provider == "networkmanager":
        return render_networkmanager(vlans)
    raise VlanConfigError(["network_vlan_provider: %r must be one of %s" % (provider, ", ".join(PROVIDERS))])


def owned_paths(dirs, read):
    """Sorted paths of the files under ``dirs`` that this role owns (owned_file).

    ``read`` returns a file's text (the callers differ in how they treat an
    unreadable file); folders that do not exist are skipped.
    """
    found = []
    for folder in dirs:
        if not os.path.isdir(folder):
            continue
        for root, _, names in os.walk(folder):
            for base in names:
                path = os.path.join(root, base)
                if owned_file(path, read(path)):
                    found.append(path)
    return sorted(found)


def owned_file(path, content):
    """True when a file is the role's: project prefix in its name and the marker on line 1."""
    base = path.rsplit("/", 1)[-1]
    named = (base.startswith(NETWORKD_PREFIX) or base.startswith(NM_PREFIX) or base == DROPIN_NAME)
    return named and (content or "").split("\n", 1)[0] == MARKER


def file_interfaces(content):
    """The interfaces an owned file says it concerns."""
    for line in (content or "").splitlines()[:3]:
        if line.startswith(INTERFACES_TAG):
            return line[len(INTERFACES_TAG):].split()
    return []


# ---------------------------------------------------------------------------
# Live state (target side): parsing ip(8) JSON and /proc
# ---------------------------------------------------------------------------

def parse_links(link_json, addr_json):
    """{ifname: {kind, vlan_id, vlan_protocol, parent, operstate, mtu, addresses}} from
    ``ip -j -d link show`` and ``ip -j addr show``."""
    links = {}
    for item in json.loads(link_json or "[]"):
        info = item.get("linkinfo") or {}
        data = info.get("info_data") or {}
        kind = info.get("info_kind")
        links[item.get("ifname")] = {
            "kind": kind,
            "vlan_id": data.get("id") if kind == "vlan" else None,
            "vlan_protocol": data.get("protocol") if kind == "vlan" else None,
            "parent": item.get("link") if kind == "vlan" else None,
            "operstate": item.get("operstate"),
            "flags": item.get("flags") or [],
            "mtu": item.get("mtu"),
            "addresses": [],
        }
    for item in json.loads(addr_json or "[]"):
        entry = links.get(item.get("ifname"))
        if entry is None:
            continue
        for a in item.get("addr_info") or []:
            if a.get("scope") == "link":
                continue  # fe80::/10: automatic, never declared
            entry["addresses"].append("%s/%s" % (a.get("local"), a.get("prefixlen")))
    return links


def parse_routes(route_json):
    """[{dst, gateway, dev}] from ``ip -j route show``."""
    out = []
    for item in json.loads(route_json or "[]"):
        out.append({"dst": item.get("dst"), "gateway": item.get("gateway"), "dev": item.get("dev")})
    return out


def vlan_support(proc_vlan_exists, module_loaded, module_available, kernel_release):
    """{supported, reason}: whether this kernel can have 802.1Q interfaces at all."""
    if proc_vlan_exists or module_loaded:
        return {"supported": True, "reason": "802.1Q support active (/proc/net/vlan present)"}
    if module_available:
        return {"supported": True, "reason": "8021q module available for kernel %s (loaded on first use)" % kernel_release}
    return {"supported": False,
            "reason": "kernel %s has no 802.1Q support: /proc/net/vlan is absent, the 8021q module is not loaded "
                      "and not available under /lib/modules/%s (e.g. a container without module loading)"
                      % (kernel_release, kernel_release)}


def network_file_for(ifname, files):
    """The .network file systemd-networkd would apply to ``ifname``.

    ``files`` is [(basename, path, text)] from /etc, /run and /usr/lib
    (earlier directories shadowing later ones for the same basename).
    networkd takes the first file in lexical order of basename whose [Match]
    matches; only Name= (with globs) is evaluated here, and a file with other
    match keys is skipped, so a wrong guess errs towards the role's own file.
    Used when networkd cannot be asked (``networkctl status``).
    """
    seen = set()
    for base, path, text in sorted(files, key=lambda f: f[0]):
        if base in seen:
            continue
        seen.add(base)
        section, names, other = None, [], False
        for line in (text or "").splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Match" and "=" in line:
                key, _, value = line.partition("=")
                if key.strip() == "Name":
                    names += value.split()
                else:
                    other = True
        if names and not other and any(fnmatch.fnmatchcase(ifname, n) for n in names):
            return path
    return None


# ---------------------------------------------------------------------------
# Evidence (NET-VLAN)
# ---------------------------------------------------------------------------

def vlan_observations(vlans, facts):
    """Compare each declared VLAN with the live link; return (status, evidence)."""
    facts = facts or {}
    support = facts.get("vlan_support") or {}
    declared = [{"name": v["name"], "id": v["id"], "parent": v["parent"], "purpose": v["purpose"],
                 "addresses": v["addresses"], "mtu": v["mtu"]} for v in vlans]
    if not vlans:
        return "not_applicable", {"reason": "no VLANs declared for this host (network_vlan_interfaces is empty)",
                                  "vlan_support": support}
    if not support.get("supported"):
        return "error", {"reason": support.get("reason") or "802.1Q support unknown",
                         "declared": declared, "vlan_support": support,
                         "rendered_files": facts.get("owned_files", [])}
    links = facts.get("links") or {}
    results = []
    for v in vlans:
        live = links.get(v["name"])
        problems = []
        if live is None:
            problems.append("interface %s does not exist" % v["name"])
        else:
            if live.get("kind") != "vlan":
                problems.append("%s is not a VLAN interface (kind %s)" % (v["name"], live.get("kind")))
            if live.get("vlan_id") != v["id"]:
                problems.append("VLAN id is %s, declared %d" % (live.get("vlan_id"), v["id"]))
            if live.get("parent") != v["parent"]:
                problems.append("parent is %s, declared %s" % (live.get("parent"), v["parent"]))
            if live.get("vlan_protocol") not in (None, "802.1Q"):
                problems.append("protocol is %s, not 802.1Q" % live.get("vlan_protocol"))
            have = set(_canon(a) for a in live.get("addresses") or [])
            want = set(_canon(a) for a in v["addresses"])
            if want - have:
                problems.append("missing address(es) %s" % ", ".join(sorted(want - have)))
            if have - want:
                problems.append("undeclared address(es) %s" % ", ".join(sorted(have - want)))
            if "UP" not in (live.get("flags") or []):
                problems.append("interface is administratively down")
            elif live.get("operstate") not in ("UP", "UNKNOWN"):
                problems.append("operational state %s" % live.get("operstate"))
            if v["mtu"] is not None and live.get("mtu") != v["mtu"]:
                problems.append("MTU is %s, declared %d" % (live.get("mtu"), v["mtu"]))
        results.append({"name": v["name"], "id": v["id"], "parent": v["parent"], "purpose": v["purpose"],
                        "ok": not problems, "problems": problems,
                        "live": None if live is None else {
                            "vlan_id": live.get("vlan_id"), "parent": live.get("parent"),
                            "addresses": live.get("addresses"), "operstate": live.get("operstate"),
                            "mtu": live.get("mtu")}})
    status = "pass" if all(r["ok"] for r in results) else "fail"
    return status, {"vlans": results, "vlan_support": support, "provider": facts.get("provider")}


def _canon(cidr):
    try:
        return str(ipaddress.ip_interface(cidr))
    except ValueError:
        return str(cidr)
