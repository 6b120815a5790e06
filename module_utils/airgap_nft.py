# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall role's allowlist logic and nftables rendering.

Two halves live here, used from two places:

* On the controller (through ``filter_plugins/firewall_filters.py``):
  normalising and validating ``firewall_egress_allow`` /
  ``firewall_ingress_allow`` / forward entries, rendering the one
  ``table inet airgap_firewall`` that enforces them, and the lockout-guard
  question "does the ingress allowlist admit the controller's connection?".
  This half needs ``netaddr``, imported lazily so that the other half works
  on a target host that does not have it.
* On the target (through ``library/nft_ruleset.py``): content hashes,
  checking that a ruleset text touches only its own table, the
  replace-in-one-transaction wrapper, and normalising ``nft list`` output
  for drift comparison. Standard library only.

Design decisions that an auditor should be able to find in one place:

* **One inet table, policy drop on input, output and forward.** IPv4 and IPv6
  share every rule, so IPv6 can never be the forgotten family.
* **Hook priority -10 (``filter - 10``) by default.** Netfilter runs every
  base chain registered on a hook, in priority order. A drop verdict in any
  chain is final; an accept only ends that one chain and the packet goes on
  to the next one. So a packet that podman/netavark's (or anybody's) tables
  accept still traverses ours and meets our policy drop: no other table can
  bypass it, whatever its priority. The value only decides *where* we run:
  after conntrack (-200) so ``ct state`` is known, and after destination NAT
  (-100) so we match the real, translated destination (a DNAT rule cannot
  smuggle a packet past the allowlist by rewriting an allowed address into a
  forbidden one); before the usual filter tables (0) so that our drop and its
  log line come first. The renderer refuses priorities outside -99..99.
* **Allowlists are named sets with ``flags interval`` and concatenated keys**
  (``ipv4_addr . inet_service`` etc.), one rule per set, so the rule count is
  fixed and the per-packet cost does not grow like a rule chain's.
  The kernel refuses an element whose start lies inside another element, so
  overlapping allowlist entries are merged before rendering.
* **Host bits set are an error, not silently normalised.** ``10.0.0.5/24`` may
  mean the host ``10.0.0.5/32`` or the network ``10.0.0.0/24``; guessing the
  network would open 255 more addresses than the author may have meant.
* **A prefix of length 0 (0.0.0.0/0, ::/0) is refused** unless the caller
  passes ``allow_any=True`` *and* a non-empty reason; the reason is written
  into the rendered file's header so the exception is on the record.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import hashlib
import re

try:
    from ansible.module_utils import airgap_allowlist as allowlist
except ImportError:  # pytest and controller-side plugins import module_utils from its folder
    import airgap_allowlist as allowlist

try:
    import netaddr
except ImportError:  # the target-side half must import without netaddr
    netaddr = None

PROTOS = ("tcp", "udp", "icmp", "icmpv6")
FAMILIES = ("ip", "ip6")
DEFAULT_TABLE = "airgap_firewall"
DEFAULT_PRIORITY = -10

LOG_PREFIX = {
    "output": "airgap-fw drop out: ",
    "input": "airgap-fw drop in: ",
    "forward": "airgap-fw drop fwd: ",
}

HASH_PLACEHOLDER = "@CONTENT_SHA256@"
_HASH_RE = re.compile(r"(content-sha256:)([0-9a-f]{64})")

# Names end up inside nft comments and the file header; the character set is
# narrow on purpose so that no name can close a string or start a new line.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$")
# IFNAMSIZ is 16 including the terminating NUL.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_NFT_FAMILIES = ("inet", "ip", "ip6", "arp", "bridge", "netdev")

ENTRY_KEYS = {
    "egress": ("name", "dest", "proto", "ports", "interfaces", "purposes", "zone", "comment"),
    "ingress": ("name", "src", "proto", "ports", "interfaces", "purposes", "zone", "comment"),
    "forward": ("name", "src", "dest", "proto", "ports", "comment"),
}
ADDRESS_KEYS = {"egress": ("dest",), "ingress": ("src",), "forward": ("src", "dest")}
DEFAULT_VARS = {
    "egress": "firewall_egress_allow",
    "ingress": "firewall_ingress_allow",
    "forward": "firewall_forward_allow",
}

DEFAULT_OPTIONS = {
    "table_name": DEFAULT_TABLE,
    "priority": DEFAULT_PRIORITY,
    "log": True,
    "log_rate": 10,          # log lines per second per chain
    "log_burst": 20,
    "egress_reject": True,   # local programs fail fast instead of hanging
    "accept_router_advert": False,
    "icmpv6_mld": True,
    "dhcp_client": False,
    "forward": [],           # normalised forward entries
    "interface_roles": {},   # {ifname: purpose}, e.g. from the VLAN role
    "isolate_interfaces": [],  # no forwarding between (or within) these, e.g. the VLAN interfaces
    "header_note": "",
}


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}


class FirewallConfigError(ValueError):
    """Invalid allowlist or options; ``errors`` lists every problem found."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(FirewallConfigError, self).__init__(
            "%d firewall configuration error(s):\n  - %s"
            % (len(self.errors), "\n  - ".join(self.errors)))


def _require_netaddr():
    if netaddr is None:
        raise FirewallConfigError(["the python 'netaddr' library is required on the controller "
                                   "for firewall allowlist filters (pip install netaddr)"])


# ---------------------------------------------------------------------------
# Normalisation and validation (controller side, netaddr)
# ---------------------------------------------------------------------------

def parse_cidr(value):
    """Parse an address or CIDR strictly. Return (IPNetwork, None) or (None, reason).

    Strict means: inet_pton address syntax (no ``10.1``, no leading zeros, no
    zone ids), a decimal prefix length, no host bits set, and no IPv4-mapped
    IPv6 addresses (such traffic leaves as IPv4, so an ip6 rule would never
    match it and the entry would silently do nothing).
    """
    _require_netaddr()
    if isinstance(value, bool) or not isinstance(value, str) or not value.strip():
        return None, "%r is not an IP address or CIDR string" % (value,)
    text = value.strip()
    addr_text, sep, plen_text = text.partition("/")
    try:
        addr = netaddr.IPAddress(addr_text, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None, "%r is not a valid IPv4/IPv6 address or CIDR" % (value,)
    maxlen = 32 if addr.version == 4 else 128
    if sep:
        if not re.match(r"^[0-9]{1,3}$", plen_text) or int(plen_text) > maxlen:
            return None, "%r has an invalid prefix length (0-%d for IPv%d)" % (value, maxlen, addr.version)
        plen = int(plen_text)
    else:
        plen = maxlen
    if addr.version == 6 and addr.is_ipv4_mapped():
        return None, ("%r is an IPv4-mapped IPv6 address; write the IPv4 form %s instead"
                      % (value, addr.ipv4()))
    net = netaddr.IPNetwork("%s/%d" % (addr, plen))
    if net.ip != net.network:
        return None, ("%r has host bits set; write %s for the network or %s/%d for the single host"
                      % (value, net.cidr, addr, maxlen))
    return net.cidr, None


def _label(var, index, entry):
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and name:
        return "%s[%d] '%s'" % (var, index, name)
    return "%s[%d] (no name)" % (var, index)


def _parse_port(value):
    """Return an int port for ints and digit strings, else None (booleans refused)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^[0-9]{1,6}$", value.strip()):
        return int(value.strip())
    return None


def _check_name_list(label, key, value, regex, what, errors):
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        errors.append("%s: field '%s': must be a list of %s, got %r" % (label, key, what, value))
        return []
    out = []
    for item in value:
        if not isinstance(item, str) or not regex.match(item):
            errors.append("%s: field '%s': %r is not a valid %s" % (label, key, item, what))
        elif item not in out:
            out.append(item)
    return sorted(out)


def _normalize_one(direction, var, index, entry, allow_any, errors):
    """Validate one entry; append messages to ``errors``; return the normalised dict or None."""
    label = _label(var, index, entry)
    if not isinstance(entry, dict):
        errors.append("%s: must be a mapping with keys %s, got %r"
                      % (label, ", ".join(ENTRY_KEYS[direction][:4]), entry))
        return None
    start = len(errors)
    unknown = sorted(set(entry) - set(ENTRY_KEYS[direction]))
    if unknown:
        errors.append("%s: unknown field(s) %s (allowed: %s)"
                      % (label, ", ".join(map(str, unknown)), ", ".join(ENTRY_KEYS[direction])))
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        errors.append("%s: field 'name': %r must match %s" % (label, name, _NAME_RE.pattern))

    nets = {}
    for key in ADDRESS_KEYS[direction]:
        if key not in entry or entry[key] in (None, ""):
            errors.append("%s: field '%s' is required" % (label, key))
            continue
        net, why = parse_cidr(entry[key])
        if why:
            errors.append("%s: field '%s': %s" % (label, key, why))
            continue
        if net.prefixlen == 0 and not allow_any:
            errors.append("%s: field '%s': %s matches every address; refused unless allow_any is true "
                          "and allow_any_reason is given" % (label, key, net))
        nets[key] = net
    versions = set(n.version for n in nets.values())
    if len(versions) > 1:
        errors.append("%s: fields %s mix IPv4 and IPv6" % (label, " and ".join(sorted(nets))))
    family = None
    if len(versions) == 1:
        family = "ip" if versions.pop() == 4 else "ip6"

    proto = entry.get("proto")
    if proto not in PROTOS:
        errors.append("%s: field 'proto': %r is not one of %s" % (label, proto, ", ".join(PROTOS)))
        proto = None
    elif family == "ip6" and proto == "icmp":
        proto = "icmpv6"  # "icmp" towards an IPv6 address can only mean ICMPv6
    elif family == "ip" and proto == "icmpv6":
        errors.append("%s: field 'proto': icmpv6 needs an IPv6 address, %s is IPv4"
                      % (label, ", ".join(str(n) for n in nets.values())))

    ports = _normalize_ports(label, proto, entry.get("ports"), errors)

    out = {
        "name": name, "direction": direction, "var": var, "index": index,
        "family": family, "proto": proto, "ports": ports,
        "any": any(n.prefixlen == 0 for n in nets.values()),
        "comment": entry.get("comment") or "",
    }
    for key, net in nets.items():
        out[key] = str(net)
    if direction != "forward":
        out["addr"] = out.get(ADDRESS_KEYS[direction][0])
        out["interfaces"] = _check_name_list(label, "interfaces", entry.get("interfaces"),
                                             _IFNAME_RE, "interface name", errors)
        # 'zone' is the network_vlan role's word for a purpose: one name or a list.
        zone = entry.get("zone")
        zone = [zone] if isinstance(zone, str) else zone
        out["purposes"] = sorted(set(
            _check_name_list(label, "purposes", entry.get("purposes"), _PURPOSE_RE, "purpose", errors)
            + _check_name_list(label, "zone", zone, _PURPOSE_RE, "zone (purpose)", errors)))
    if not isinstance(out["comment"], str) or not re.match(r'^[^\x00-\x1f\x7f"]{0,200}$', out["comment"]):
        errors.append("%s: field 'comment': must be one line of at most 200 printable characters "
                      "without double quotes" % label)
    return out if len(errors) == start else None


def _normalize_ports(label, proto, raw, errors):
    if proto in ("icmp", "icmpv6"):
        if raw not in (None, [], ()):
            errors.append("%s: field 'ports': %s has no ports; remove 'ports' (got %r)" % (label, proto, raw))
        return []
    if raw is None or raw == [] or raw == ():
        if proto is not None:
            errors.append("%s: field 'ports': %s needs at least one port (1-65535)" % (label, proto))
        return []
    if isinstance(raw, (str, int)) and not isinstance(raw, bool):
        raw = [raw]  # a single port written without brackets
    if not isinstance(raw, (list, tuple)):
        errors.append("%s: field 'ports': must be a list of port numbers, got %r" % (label, raw))
        return []
    ports = set()
    for item in raw:
        port = _parse_port(item)
        if port is None:
            errors.append("%s: field 'ports': %r is not a port number" % (label, item))
        elif not 1 <= port <= 65535:
            errors.append("%s: field 'ports': %d is outside 1-65535" % (label, port))
        else:
            ports.add(port)
    return sorted(ports)


def _normalize(direction, entries, allow_any, allow_any_reason, var):
    var = var or DEFAULT_VARS[direction]
    errors = []
    if entries is None:
        entries = []
    if isinstance(entries, (str, dict)) or not isinstance(entries, (list, tuple)):
        raise FirewallConfigError(["%s: must be a list of entries, got %s" % (var, type(entries).__name__)])
    reason = allow_any_reason if isinstance(allow_any_reason, str) else ""
    reason = reason.strip()
    if allow_any and not reason:
        errors.append("%s: allow_any is true but allow_any_reason is empty; say why this host may "
                      "talk to any address" % var)
    if reason and not re.match(r"^[^\x00-\x1f\x7f]{1,300}$", reason):
        errors.append("%s: allow_any_reason must be one line of at most 300 printable characters" % var)
    permit_any = bool(allow_any) and not errors
    out, seen = [], {}
    for index, entry in enumerate(entries):
        norm = _normalize_one(direction, var, index, entry, permit_any, errors)
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            if name in seen:
                errors.append("%s: duplicate name '%s' (also used by %s[%d])" % (_label(var, index, entry),
                                                                                  name, var, seen[name]))
            else:
                seen[name] = index
        if norm is not None:
            if norm["any"]:
                norm["any_reason"] = reason
            out.append(norm)
    if errors:
        raise FirewallConfigError(errors)
    return out


def normalize_egress(entries, allow_any=False, allow_any_reason="", var=None):
    """Validate and normalise egress entries ``{name, dest, proto, ports[, interfaces, purposes]}``.

    Returns a list of dicts with canonical ``dest``/``addr`` CIDR, ``family``
    (ip|ip6), ``proto`` (icmp on IPv6 becomes icmpv6), sorted unique
    ``ports``, plus ``name``, ``var``, ``index``, ``interfaces``,
    ``purposes``, ``any``. Raises FirewallConfigError listing every problem.
    """
    return _normalize("egress", entries, allow_any, allow_any_reason, var)


def normalize_ingress(entries, allow_any=False, allow_any_reason="", var=None):
    """Validate and normalise ingress entries ``{name, src, proto, ports[, interfaces, purposes]}``."""
    return _normalize("ingress", entries, allow_any, allow_any_reason, var)


def normalize_forward(entries, allow_any=False, allow_any_reason="", var=None):
    """Validate and normalise forward entries ``{name, src, dest, proto, ports}`` (routed traffic)."""
    return _normalize("forward", entries, allow_any, allow_any_reason, var)


def scope_to_zones(entries, services, interface_roles):
    """Bind unbound entries of zone-scoped services to their zone's interfaces.

    ``services`` is [{name, zone: purpose or [purposes], direction, proto, ports}],
    e.g. SSH (tcp/22) to management, the model API to inference, mirror
    traffic to mirror/storage. An entry without ``interfaces``/``purposes``
    whose direction and proto match a service and whose ports all belong to
    it gets the service's zones that exist in ``interface_roles`` as
    ``purposes``. Where none of a service's zones exists (no VLANs declared),
    nothing changes, so the rendered ruleset is the same as without zones.
    An entry mixing ports of a scoped service with other ports is refused:
    it could not be scoped without opening or closing too much.
    """
    present = set((interface_roles or {}).values())
    errors = []
    out = []
    for entry in entries or []:
        entry = dict(entry)
        if not (entry.get("interfaces") or entry.get("purposes")) and entry.get("ports"):
            for svc in services or []:
                zones = svc.get("zone")
                zones = [zones] if isinstance(zones, str) else list(zones or [])
                live = sorted(z for z in zones if z in present)
                if not live or svc.get("direction") != entry["direction"] or svc.get("proto") != entry["proto"]:
                    continue
                ports = set(int(p) for p in svc.get("ports") or [])
                hit = set(entry["ports"]) & ports
                if not hit:
                    continue
                if set(entry["ports"]) - ports:
                    errors.append("%s[%d] '%s': ports %s belong to the %s service, which is admitted only on zone(s) %s; "
                                  "put them in an entry of their own"
                                  % (entry["var"], entry["index"], entry["name"], ",".join(map(str, sorted(hit))),
                                     svc.get("name", "?"), ", ".join(live)))
                    break
                entry["purposes"] = live
                break
        out.append(entry)
    if errors:
        raise FirewallConfigError(errors)
    return out


def normalize_options(options):
    """Merge ``options`` over DEFAULT_OPTIONS and validate; raise FirewallConfigError."""
    options = {} if options is None else options
    errors = []
    if not isinstance(options, dict):
        raise FirewallConfigError(["firewall render options must be a mapping, got %r" % (options,)])
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        errors.append("firewall render options: unknown key(s) %s (allowed: %s)"
                      % (", ".join(map(str, unknown)), ", ".join(sorted(DEFAULT_OPTIONS))))
    opts = dict(DEFAULT_OPTIONS)
    opts.update({k: v for k, v in options.items() if k in DEFAULT_OPTIONS and v is not None})
    # Values from extra vars (-e) arrive as strings: accept the unambiguous spellings.
    for key in ("priority", "log_rate", "log_burst"):
        if isinstance(opts[key], str) and re.match(r"^-?[0-9]{1,6}$", opts[key].strip()):
            opts[key] = int(opts[key].strip())
    for key in ("log", "egress_reject", "accept_router_advert", "icmpv6_mld", "dhcp_client"):
        if isinstance(opts[key], str) and opts[key].strip().lower() in _BOOL_WORDS:
            opts[key] = _BOOL_WORDS[opts[key].strip().lower()]
    if not isinstance(opts["table_name"], str) or not _TABLE_NAME_RE.match(opts["table_name"]):
        errors.append("option 'table_name': %r must match %s" % (opts["table_name"], _TABLE_NAME_RE.pattern))
    prio = opts["priority"]
    if isinstance(prio, bool) or not isinstance(prio, int) or not -99 <= prio <= 99:
        errors.append("option 'priority': %r must be an integer in -99..99 (after conntrack -200 and "
                      "destination NAT -100, so rules see the translated destination)" % (prio,))
    for key in ("log", "egress_reject", "accept_router_advert", "icmpv6_mld", "dhcp_client"):
        if not isinstance(opts[key], bool):
            errors.append("option '%s': %r must be true or false" % (key, opts[key]))
    for key, top in (("log_rate", 10000), ("log_burst", 100000)):
        val = opts[key]
        if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= top:
            errors.append("option '%s': %r must be an integer in 1..%d" % (key, val, top))
    roles = opts["interface_roles"]
    if not isinstance(roles, dict):
        errors.append("option 'interface_roles': must be a mapping {ifname: purpose}, got %r" % (roles,))
    else:
        for ifname, purpose in roles.items():
            if not isinstance(ifname, str) or not _IFNAME_RE.match(ifname):
                errors.append("option 'interface_roles': %r is not a valid interface name" % (ifname,))
            if not isinstance(purpose, str) or not _PURPOSE_RE.match(purpose):
                errors.append("option 'interface_roles': purpose %r of %r must match %s"
                              % (purpose, ifname, _PURPOSE_RE.pattern))
    note = opts["header_note"]
    if not isinstance(note, str) or re.search(r"[\x00-\x09\x0b-\x1f\x7f]", note):
        errors.append("option 'header_note': must be printable text")
    if not isinstance(opts["forward"], list):
        errors.append("option 'forward': must be a list of entries from firewall_normalize_forward")
    iso = opts["isolate_interfaces"]
    if not isinstance(iso, list) or not all(isinstance(i, str) and _IFNAME_RE.match(i) for i in iso):
        errors.append("option 'isolate_interfaces': must be a list of interface names, got %r" % (iso,))
    if errors:
        raise FirewallConfigError(errors)
    return opts


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_ADDR_TYPE = {"ip": "ipv4_addr", "ip6": "ipv6_addr"}
_FAM_DIGIT = {"ip": "4", "ip6": "6"}
_ECHO = {"icmp": "icmp type echo-request", "icmpv6": "icmpv6 type echo-request"}


def _require_normalized(entries, direction):
    errors = []
    if not isinstance(entries, list):
        raise FirewallConfigError(["%s entries must be a list, got %r" % (direction, type(entries).__name__)])
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("direction") != direction or "family" not in entry:
            errors.append("%s entry %d is not normalised; pass the list through "
                          "firewall_normalize_%s first" % (direction, i, direction))
    if errors:
        raise FirewallConfigError(errors)


def _resolve_interfaces(entry, roles, errors):
    """Interface names an entry is bound to (names plus purposes via interface_roles)."""
    names = set(entry.get("interfaces") or [])
    for purpose in entry.get("purposes") or []:
        matched = sorted(ifn for ifn, p in roles.items() if p == purpose)
        if not matched:
            errors.append("%s[%d] '%s': field 'purposes': no interface in interface_roles has purpose '%s' "
                          "(refusing to render an entry that would silently match nothing)"
                          % (entry["var"], entry["index"], entry["name"], purpose))
        names.update(matched)
    return sorted(names)


def _fmt_net(net):
    """nft element syntax: a bare address for a single host, a prefix otherwise."""
    return str(net.ip) if net.size == 1 else str(net.cidr)


def _comment_for(names):
    names = sorted(set(names))
    text = ",".join(names)
    if len(text) > 100:
        kept = []
        for n in names:
            if len(",".join(kept + [n])) > 90:
                break
            kept.append(n)
        text = "%s,+%d more" % (",".join(kept), len(names) - len(kept))
    return text


def _merge_addrs(pairs):
    """Merge (IPNetwork, name) pairs into disjoint CIDRs, each with the names it covers."""
    nets = netaddr.cidr_merge([n for n, _ in pairs])  # sorted and disjoint
    firsts = [int(n.first) for n in nets]
    names = [[] for _ in nets]
    for net, name in pairs:
        # the one merged prefix that contains this entry: the last one starting at or before it
        names[bisect.bisect_right(firsts, int(net.first)) - 1].append(name)
    return list(zip(nets, names))


def _overlap(a, b):
    return a.first <= b.last and b.first <= a.last


def _disjoint_pairs(rects):
    """Make (src, dst, names) rectangles disjoint: the kernel rejects an element
    whose start key lies inside an existing one, whatever the insertion order."""
    rects = [(s, d, set(n)) for s, d, n in rects]
    changed = True
    while changed:
        changed = False
        for i in range(len(rects)):
            for j in range(len(rects)):
                if i == j:
                    continue
                (s1, d1, n1), (s2, d2, n2) = rects[i], rects[j]
                if not (_overlap(s1, s2) and _overlap(d1, d2)):
                    continue
                if s2 in s1 and d2 in d1:      # j inside i: drop j, keep its names
                    n1.update(n2)
                    del rects[j]
                elif s1 in s2 and d2 in d1:    # cross: cut s1 out of j's source
                    pieces = [(p, d2, set(n2)) for p in (netaddr.IPSet([s2]) - netaddr.IPSet([s1])).iter_cidrs()]
                    n1.update(n2)
                    del rects[j]
                    rects.extend(pieces)
                else:
                    continue
                changed = True
                break
            if changed:
                break
    return rects


def _elements(entries, bound, roles, errors):
    """Group entries into set contents.

    Returns {set_key: [(element_text, comment, sort_key)]} where set_key is
    (direction, family, proto_group, bound). Only entries whose interface
    binding matches ``bound`` are included.
    """
    groups = {}
    for e in entries:
        ifaces = _resolve_interfaces(e, roles, errors) if e["direction"] != "forward" else []
        if bool(ifaces) != bound:
            continue
        pgroup = "icmp" if e["proto"] in ("icmp", "icmpv6") else e["proto"]
        key = (e["direction"], e["family"], pgroup, bound)
        ports = e["ports"] or [None]
        for port in ports:
            for ifn in (ifaces or [None]):
                if e["direction"] == "forward":
                    groups.setdefault(key, []).append(
                        ((port,), (netaddr.IPNetwork(e["src"]), netaddr.IPNetwork(e["dest"])), e["name"]))
                else:
                    groups.setdefault(key, []).append(((ifn, port), netaddr.IPNetwork(e["addr"]), e["name"]))
    out = {}
    for key, items in groups.items():
        by_rest = {}
        for rest, net, name in items:
            by_rest.setdefault(rest, []).append((net, name))
        elems = []
        for rest, pairs in by_rest.items():
            if key[0] == "forward":
                rects = _disjoint_pairs([(s, d, [n]) for (s, d), n in pairs])
                for s, d, names in rects:
                    parts = [_fmt_net(s), _fmt_net(d)] + ([str(rest[0])] if rest[0] is not None else [])
                    elems.append((" . ".join(parts), _comment_for(names),
                                  (rest[0] or 0, int(s.first), s.prefixlen, int(d.first), d.prefixlen)))
                continue
            ifn, port = rest
            for net, names in _merge_addrs(pairs):
                parts = (['"%s"' % ifn] if ifn else []) + [_fmt_net(net)] + ([str(port)] if port is not None else [])
                elems.append((" . ".join(parts), _comment_for(names),
                              (ifn or "", int(net.first), net.prefixlen, port or 0)))
        elems.sort(key=lambda x: x[2])
        out[key] = elems
    return out


def _set_name(direction, family, pgroup, bound):
    return "%s%s_%s%s" % (direction, _FAM_DIGIT[family], pgroup, "_if" if bound else "")


def _set_type(direction, family, pgroup, bound):
    parts = []
    if bound:
        parts.append("ifname")
    parts.append(_ADDR_TYPE[family])
    if direction == "forward":
        parts.append(_ADDR_TYPE[family])
    if pgroup != "icmp":
        parts.append("inet_service")
    return " . ".join(parts)


def _set_rule(direction, family, pgroup, bound):
    """The one rule that consults a set."""
    addr_dir = {"egress": "daddr", "ingress": "saddr"}
    ifkey = {"egress": "oifname", "ingress": "iifname"}
    keys = []
    if bound:
        keys.append(ifkey[direction])
    if direction == "forward":
        keys += ["%s saddr" % family, "%s daddr" % family]
    else:
        keys.append("%s %s" % (family, addr_dir[direction]))
    if pgroup != "icmp":
        keys.append("%s dport" % pgroup)
    match = " . ".join(keys) + " @" + _set_name(direction, family, pgroup, bound)
    if pgroup == "icmp":
        match += " " + _ECHO["icmp" if family == "ip" else "icmpv6"]
    what = {"egress": "egress", "ingress": "ingress", "forward": "forward"}[direction]
    label = "%s allowlist %s/IPv%s%s" % (what, pgroup, _FAM_DIGIT[family], " per interface" if bound else "")
    return '%s accept comment "%s"' % (match, label)


def _priority_text(prio):
    if prio == 0:
        return "filter"
    return "filter %s %d" % ("-" if prio < 0 else "+", abs(prio))


def _log_rule(opts, chain):
    if not opts["log"]:
        return []
    return ['counter limit rate %d/second burst %d packets log prefix "%s"'
            % (opts["log_rate"], opts["log_burst"], LOG_PREFIX[chain])]


def _icmpv6_onlink(opts, chain):
    """Minimum ICMPv6 for an IPv6 host on its link (RFC 4890 section 4.4.1).

    Hop limit 255 proves the sender is on-link (routers decrement it), so
    these rules cannot admit anything from beyond the local segment. They sit
    before ``ct state invalid drop`` because conntrack does not track neighbour
    discovery (current kernels mark it untracked; older ones invalid).
    """
    rules = ['icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept '
             'comment "IPv6 neighbour discovery (on-link only)"']
    if chain == "input":
        if opts["accept_router_advert"]:
            rules.append('icmpv6 type nd-router-advert ip6 saddr fe80::/10 ip6 hoplimit 255 accept '
                         'comment "router advertisements (accept_router_advert)"')
        if opts["icmpv6_mld"]:
            rules.append('icmpv6 type mld-listener-query ip6 saddr fe80::/10 ip6 hoplimit 1 accept '
                         'comment "MLD queries (multicast snooping keeps ND working)"')
    else:
        if opts["accept_router_advert"]:
            rules.append('icmpv6 type nd-router-solicit ip6 hoplimit 255 accept '
                         'comment "router solicitation (accept_router_advert)"')
        if opts["icmpv6_mld"]:
            rules.append('icmpv6 type { mld-listener-report, mld2-listener-report } ip6 daddr ff02::/16 '
                         'ip6 hoplimit 1 accept comment "MLD reports (multicast snooping keeps ND working)"')
    return rules


def _dhcp(opts, chain):
    if not opts["dhcp_client"]:
        return []
    if chain == "output":
        return ['udp sport 68 udp dport 67 accept comment "DHCPv4 client (dhcp_client)"',
                'udp sport 546 udp dport 547 accept comment "DHCPv6 client (dhcp_client)"']
    return ['udp sport 67 udp dport 68 accept comment "DHCPv4 client (dhcp_client)"',
            'ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 client (dhcp_client)"']


def _midstream_rule(family, bound, set_name):
    """Output rule for the host's side of an admitted inbound TCP flow that conntrack picks up mid-stream.

    Netfilter tracks a network namespace only once some rule there uses
    conntrack. On a host where nothing did before, loading this table starts
    tracking while the controller's SSH session is already open, and the
    first packet conntrack sees of that session is often the host's own
    reply: a "new" flow in the output direction, to the controller's
    ephemeral port, which the egress allowlist does not name. Dropping it
    stalls the session until the confirm timer rolls the rules back (measured
    in the lab: 27 s for one task). This rule admits exactly the mirror image
    of the ingress allowlist (source port an admitted ingress port, destination
    an admitted ingress source), only for packets with ACK set and SYN clear:
    a normal socket cannot send one without a handshake, which the egress
    allowlist still judges, so no new outbound connection is admitted by it.
    Once the controller's next packet passes, the flow is established.
    """
    keys = (["oifname"] if bound else []) + ["%s daddr" % family, "tcp sport"]
    return ('%s @%s ct state new tcp flags & (syn | ack) == ack accept comment '
            '"host side of an admitted inbound TCP flow picked up mid-stream/IPv%s%s"'
            % (" . ".join(keys), set_name, _FAM_DIGIT[family], " per interface" if bound else ""))


def _chain_rules(chain, opts, set_keys):
    direction = {"output": "egress", "input": "ingress", "forward": "forward"}[chain]
    rules = []
    if chain == "forward" and opts["isolate_interfaces"]:
        # First in the chain: no forward allowlist entry can reopen a path between VLANs.
        names = ", ".join('"%s"' % i for i in sorted(set(opts["isolate_interfaces"])))
        rules.append('iifname { %s } oifname { %s } drop comment "no forwarding between VLANs"' % (names, names))
    if chain == "input":
        rules += ['iif "lo" accept comment "loopback"',
                  'iif != "lo" ip saddr 127.0.0.0/8 drop comment "spoofed loopback source"',
                  'iif != "lo" ip6 saddr ::1 drop comment "spoofed loopback source"']
    elif chain == "output":
        rules.append('oif "lo" accept comment "loopback"')
    rules.append('ct state established,related accept comment "replies and ICMP errors of admitted flows"')
    if chain != "forward":
        rules += _icmpv6_onlink(opts, chain)
    rules.append('ct state invalid drop comment "not part of any valid flow"')
    rules += _dhcp(opts, chain) if chain != "forward" else []
    if chain == "output":
        rules += [_midstream_rule(key[1], key[3], _set_name(*key))
                  for key in set_keys if key[0] == "ingress" and key[2] == "tcp"]
    for key in set_keys:
        if key[0] == direction:
            rules.append(_set_rule(*key))
    rules += _log_rule(opts, chain)
    if chain == "output" and opts["egress_reject"]:
        rules.append('reject with icmpx admin-prohibited comment "fail fast; policy drop stays as backstop"')
    return rules


def _by_name(entry):
    return entry["name"]


def _header(opts, egress, ingress, forward):
    lines = [
        "# airgap-firewall: the host firewall of an air-gapped inference host.",
        "# Rendered by the firewall role; do not edit. A hand edit is reported as drift",
        "# and replaced at the next run.",
        "# content-sha256:%s" % HASH_PLACEHOLDER,
        "#",
        "# One table, inet family: IPv4 and IPv6 share every rule. Base chains input,",
        "# output and forward have policy drop. Allowlists are sets with interval flags,",
        "# one rule per set, so lookup cost does not grow like a chain of rules.",
        "#",
        "# Hook priority %d (%s) on every chain. Netfilter runs every base chain on a" % (
            opts["priority"], _priority_text(opts["priority"])),
        "# hook; a drop in any table is final, an accept only ends that one chain. So a",
        "# packet accepted by podman/netavark (or any other table) still traverses this",
        "# table and meets its drop. The priority is after conntrack (-200) and after",
        "# destination NAT (-100), so rules see the real (translated) destination, and",
        "# before the usual filter tables (0), so this table's drop and log come first.",
        "# Not covered by netfilter at all: AF_PACKET raw sockets (do not grant CAP_NET_RAW",
        "# to workloads) and L2 bridging between containers on one bridge.",
        "#",
        "# Dropped packets are logged, rate-limited, with prefixes %s" % ", ".join(
            '"%s"' % LOG_PREFIX[c] for c in ("output", "input", "forward")),
    ]
    if opts["header_note"]:
        lines.append("# Note: %s" % opts["header_note"].replace("\n", " "))
    lines.append("#")
    lines.append("# Allowlist entries (direction name proto address ports interfaces):")
    # Sorted, so that reordering an inventory list changes neither the text nor its hash.
    everything = sorted(egress, key=_by_name) + sorted(ingress, key=_by_name) + sorted(forward, key=_by_name)
    for e in everything:
        addr = e.get("addr") or "%s -> %s" % (e["src"], e["dest"])
        bound = e.get("interfaces", []) + ["purpose:" + p for p in e.get("purposes", [])]
        line = "#   %-7s %-24s %-6s %-30s %s" % (
            e["direction"], e["name"], e["proto"], addr, ",".join(str(p) for p in e["ports"]) or "-")
        if bound:
            line += " on " + ",".join(bound)
        if e.get("comment"):
            line += "  (%s)" % e["comment"]
        lines.append(line.rstrip())
    anys = [e for e in everything if e.get("any")]
    for e in anys:
        lines.append("# allow_any granted to %s '%s': %s" % (e["var"], e["name"], e.get("any_reason", "")))
    if not (egress or ingress or forward):
        lines.append("#   (none: this host may send and accept nothing but the on-link basics)")
    return lines


def render(egress, ingress, options=None):
    """Render the complete nftables text (one table) for normalised entries.

    ``options`` keys: see DEFAULT_OPTIONS. ``options['forward']`` takes
    entries from normalize_forward(). Raises FirewallConfigError.
    """
    _require_netaddr()
    opts = normalize_options(options)
    egress = egress or []
    ingress = ingress or []
    _require_normalized(egress, "egress")
    _require_normalized(ingress, "ingress")
    forward = opts["forward"]
    _require_normalized(forward, "forward")
    errors = []
    roles = opts["interface_roles"]
    sets = {}
    for bound in (False, True):
        sets.update(_elements(egress + ingress + forward, bound, roles, errors))
    if errors:
        raise FirewallConfigError(sorted(set(errors)))
    order = {"egress": 0, "ingress": 1, "forward": 2}
    pg_order = {"tcp": 0, "udp": 1, "icmp": 2}
    set_keys = sorted(sets, key=lambda k: (order[k[0]], k[3], k[1], pg_order[k[2]]))

    lines = _header(opts, egress, ingress, forward)
    lines.append("table inet %s {" % opts["table_name"])
    lines.append('\tcomment "airgap-firewall content-sha256:%s"' % HASH_PLACEHOLDER)
    for key in set_keys:
        lines.append("")
        lines.append("\tset %s {" % _set_name(*key))
        lines.append("\t\ttype %s" % _set_type(*key))
        lines.append("\t\tflags interval")
        elems = sets[key]
        lines.append("\t\telements = {")
        for i, (text, comment, _) in enumerate(elems):
            lines.append('\t\t\t%s comment "%s"%s' % (text, comment, "," if i < len(elems) - 1 else ""))
        lines.append("\t\t}")
        lines.append("\t}")
    for chain, hook in (("input", "input"), ("output", "output"), ("forward", "forward")):
        lines.append("")
        lines.append("\tchain %s {" % chain)
        lines.append("\t\ttype filter hook %s priority %s; policy drop;" % (hook, _priority_text(opts["priority"])))
        for rule in _chain_rules(chain, opts, set_keys):
            lines.append("\t\t" + rule)
        lines.append("\t}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    return stamp_hash(text)


# ---------------------------------------------------------------------------
# Content hash (both sides)
# ---------------------------------------------------------------------------

def stamp_hash(text):
    """Replace every placeholder with the sha256 of the text with placeholders in."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text.replace(HASH_PLACEHOLDER, digest)


def content_hash(text):
    """Recompute the content hash of a rendered text (the stamped hash excluded)."""
    unstamped = _HASH_RE.sub(lambda m: m.group(1) + HASH_PLACEHOLDER, text)
    return hashlib.sha256(unstamped.encode("utf-8")).hexdigest()


def claimed_hash(text):
    """The hash a text claims in its ``content-sha256:`` stamp, or None."""
    match = _HASH_RE.search(text or "")
    return match.group(2) if match else None


def verify_content_hash(text):
    """Return (ok, claimed, actual): does the stamped hash match the text?"""
    claimed = claimed_hash(text)
    actual = content_hash(text)
    return claimed == actual, claimed, actual


# ---------------------------------------------------------------------------
# Target side: scope check, transaction wrapper, listing normalisation
# ---------------------------------------------------------------------------

def parse_table_spec(spec):
    """'inet airgap_firewall' -> ('inet', 'airgap_firewall'); raise ValueError."""
    parts = (spec or "").split()
    if len(parts) != 2 or parts[0] not in _NFT_FAMILIES or not _TABLE_NAME_RE.match(parts[1]):
        raise ValueError("table %r must be '<family> <name>' with family one of %s and name matching %s"
                         % (spec, "/".join(_NFT_FAMILIES), _TABLE_NAME_RE.pattern))
    return parts[0], parts[1]


def _strip_comments(text):
    """Drop '#' comments outside double-quoted strings; keep line structure."""
    out = []
    for line in text.splitlines():
        buf, in_str = [], False
        for ch in line:
            if ch == '"':
                in_str = not in_str
            elif ch == "#" and not in_str:
                break
            buf.append(ch)
        out.append("".join(buf))
    return "\n".join(out)


def check_content_scope(content, family, name):
    """Return a list of reasons why ``content`` is not exactly one definition of our table.

    The module must never touch another table (podman's, the distribution's),
    nor flush the ruleset, whatever text it is given: so the top level may
    hold only ``table <family> <name> { ... }`` and nothing may ``include``
    other files.
    """
    problems = []
    text = _strip_comments(content or "")
    depth, in_str, top_tokens, token = 0, False, [], ""
    tables = 0
    for ch in text + "\n":
        if in_str:
            if ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
            continue
        if depth == 0 and (ch.isspace() or ch in "{};"):
            if token:
                top_tokens.append(token)
                token = ""
        elif depth == 0:
            token += ch
        if ch == "{":
            if depth == 0:
                if top_tokens[-3:] != ["table", family, name] or len(top_tokens) != 3:
                    problems.append("top level must be 'table %s %s { ... }', found %r"
                                    % (family, name, " ".join(top_tokens) or "{"))
                tables += 1
                top_tokens = []
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                problems.append("unbalanced '}'")
                depth = 0
        elif ch == ";" and depth == 0 and top_tokens:
            problems.append("top-level statement %r is not allowed" % " ".join(top_tokens))
            top_tokens = []
    if top_tokens:
        problems.append("top-level statement %r is not allowed" % " ".join(top_tokens))
    if in_str:
        problems.append("unterminated string")
    if depth != 0:
        problems.append("unbalanced braces")
    if tables != 1 and not problems:
        problems.append("expected exactly one 'table %s %s' block, found %d" % (family, name, tables))
    if re.search(r"(^|\s)include(\s|$)", re.sub(r'"[^"\n]*"', '""', text)):
        problems.append("'include' is not allowed")
    return problems


def transaction_text(family, name, content):
    """One nft -f file that replaces the table atomically.

    ``table X {}`` creates the table if absent, so ``delete table X`` cannot
    fail; the new definition follows in the same batch. The kernel commits the
    batch as a whole or not at all, and no other table is touched.
    """
    return "table %s %s {}\ndelete table %s %s\n%s" % (family, name, family, name, content)


def delete_transaction_text(family, name):
    """One nft -f file that removes the table whether or not it exists."""
    return "table %s %s {}\ndelete table %s %s\n" % (family, name, family, name)


_COUNTER_RE = re.compile(r"counter packets \d+ bytes \d+")


def normalize_listing(text):
    """Normalise ``nft list table`` output for comparison: counter values are
    traffic, not configuration, and trailing blanks are noise."""
    text = _COUNTER_RE.sub("counter", text or "")
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------------
# Lockout guard (controller side)
# ---------------------------------------------------------------------------

def _client_address(client_ip):
    _require_netaddr()
    try:
        addr = netaddr.IPAddress(str(client_ip).strip(), flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise FirewallConfigError(["client address %r is not an IP address" % (client_ip,)])
    if addr.version == 6 and addr.is_ipv4_mapped():
        addr = addr.ipv4()  # sshd on a dual-stack socket reports IPv4 clients this way
    return addr


def admitting_entry(ingress_norm, client_ip, server_port, interface=None, interface_roles=None):
    """Name of the ingress entry that admits a new TCP connection from
    ``client_ip`` to local ``server_port``, 'loopback' for loopback, or None.

    Entries bound to interfaces only count when ``interface`` is given and
    is one of them: when in doubt the guard says "not admitted", because a
    wrong "yes" locks the operator out.
    """
    _require_normalized(ingress_norm or [], "ingress")
    addr = _client_address(client_ip)
    port = _parse_port(server_port)
    if port is None or not 1 <= port <= 65535:
        raise FirewallConfigError(["server port %r is not a port number" % (server_port,)])
    if addr.is_loopback():
        return "loopback"
    # What admits what is airgap_allowlist's, shared with the model server's
    # and the isolation monitor's checks.
    return allowlist.admitting(ingress_norm, "ingress", str(addr), "tcp", port, interface, interface_roles)


def connection_admitted(ingress_norm, client_ip, server_port, interface=None, interface_roles=None):
    """True if the ingress allowlist admits the controller's connection.

    ``client_ip`` and ``server_port`` are fields 1 and 4 of SSH_CONNECTION.
    """
    return admitting_entry(ingress_norm, client_ip, server_port, interface, interface_roles) is not None
