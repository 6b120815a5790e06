# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an allowlist entry admits: the one meaning, shared by every role.

An entry of ``firewall_egress_allow`` / ``firewall_ingress_allow`` (or one the
site plan derives) admits a packet when all of these hold:

* the address on the far side (``dest`` for egress, ``src`` for ingress) lies
  in the entry's address or CIDR, of the same IP version;
* the protocol on the wire matches (``icmp`` towards an IPv6 address means
  ICMPv6, as the firewall renders it);
* the port is one of the entry's ports (ICMP has none);
* when the entry is bound to interfaces or zones (``interfaces``,
  ``purposes``, ``zone``: the network_vlan purposes), the packet crosses one
  of those interfaces. A question that names no interface is answered "no"
  for a bound entry: when in doubt, not admitted.

Who asks:

* the firewall's lockout guard (``airgap_nft.admitting_entry``): does the
  ingress list admit the controller's SSH connection?
* the model server's check (``airgap_vllm``): does egress admit the front end
  to the backend, and does ingress admit the model port from the inference
  networks, on the inference zone?
* the isolation monitor's contradiction check (``conflicts``): is a target it
  must find blocked admitted by design?

Validation (what an entry may look like) stays with the firewall's
normaliser; this module reads entries leniently and skips what it cannot
parse, because the firewall refuses those before anything is loaded.
Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

ADDRESS_KEY = {"egress": "dest", "ingress": "src"}


def wire_proto(proto, version):
    """The protocol on the wire: ``icmp`` towards IPv6 is ICMPv6."""
    return "icmpv6" if proto == "icmp" and version == 6 else proto


def ports_of(entry):
    """The entry's ports as a set of ints (a single port may be written without brackets)."""
    ports = entry.get("ports")
    if isinstance(ports, (int, str)) and not isinstance(ports, bool):
        ports = [ports]
    out = set()
    for port in ports or []:
        if isinstance(port, bool):
            continue
        try:
            out.add(int(str(port).strip()))
        except ValueError:
            continue
    return out


def network_of(entry, key):
    """The entry's address or CIDR as an ip_network, or None when it does not parse."""
    try:
        return ipaddress.ip_network(str(entry.get(key, "")).strip(), strict=False)
    except ValueError:
        return None


def _listify(value):
    if value in (None, ""):
        return []
    return [value] if isinstance(value, str) else list(value)


def zones_of(entry):
    """The purposes (zones) an entry is bound to."""
    return set(_listify(entry.get("purposes")) + _listify(entry.get("zone")))


def bound_interfaces(entry, interface_roles=None):
    """Interfaces an entry is bound to: its own plus those whose purpose is one of its zones.

    None means the entry is not bound at all (it admits on every interface).
    """
    interfaces = set(_listify(entry.get("interfaces")))
    zones = zones_of(entry)
    if not interfaces and not zones:
        return None
    roles = interface_roles or {}
    return interfaces | set(name for name, role in roles.items() if role in zones)


def _proto_port_match(entry, version, proto, port):
    if wire_proto(entry.get("proto"), version) != wire_proto(proto, version):
        return False
    if port is None:
        return True
    return port in ports_of(entry)


def admitting(entries, direction, address, proto, port, interface=None, interface_roles=None):
    """Name of the first entry that admits a packet to or from ``address`` (None: not admitted).

    ``direction`` is egress (``address`` is the destination) or ingress (the
    source); ``port`` is None for ICMP.
    """
    key = ADDRESS_KEY[direction]
    addr = ipaddress.ip_address(str(address).strip())
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        net = network_of(entry, key)
        if net is None or net.version != addr.version or addr not in net:
            continue
        if not _proto_port_match(entry, addr.version, proto, port):
            continue
        bound = bound_interfaces(entry, interface_roles)
        if bound is not None and (interface is None or interface not in bound):
            continue
        return entry.get("name") or "?"
    return None


def admitting_from_network(entries, direction, network, proto, port, zone=None, interface_roles=None):
    """Names of the entries that admit some of ``network`` (egress: towards it; ingress: from it).

    ``zone`` is the purpose of the interfaces the traffic crosses (e.g.
    inference for model clients): an entry bound elsewhere does not count.
    An unbound entry counts wherever the traffic comes in.
    """
    key = ADDRESS_KEY[direction]
    want = ipaddress.ip_network(str(network).strip(), strict=False)
    names = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        net = network_of(entry, key)
        if net is None or net.version != want.version or not net.overlaps(want):
            continue
        if not _proto_port_match(entry, want.version, proto, port):
            continue
        bound = bound_interfaces(entry, interface_roles)
        if bound is not None:
            zones = zones_of(entry)
            on_zone = zone is not None and (zone in zones or any(
                (interface_roles or {}).get(i) == zone for i in bound))
            if not on_zone:
                continue
        names.append(entry.get("name") or "?")
    return names


def conflicts(targets, entries, targets_var, entries_var, wire_of, port_of, label_of):
    """Messages for targets (that must stay blocked) which an egress list admits by design.

    Zones are not considered: an entry bound to one interface still admits
    the target there, so a conflict on any zone is reported.
    """
    problems = []
    for i, target in enumerate(targets or []):
        if not isinstance(target, dict):
            continue
        try:
            addr = ipaddress.ip_address(str(target.get("dest", "")).strip())
        except ValueError:
            continue
        wire, port = wire_of(target, addr), port_of(target)
        for j, entry in enumerate(entries or []):
            if not isinstance(entry, dict):
                continue
            unbound = dict(entry)
            for key in ("interfaces", "purposes", "zone"):
                unbound.pop(key, None)
            if admitting([unbound], "egress", addr, wire, port) is None:
                continue
            net = network_of(entry, "dest")
            problems.append("%s[%d] (%s) is allowed by %s[%d] (%s: %s %s%s): a forbidden target must not be on "
                            "the egress allowlist" % (targets_var, i, label_of(target), entries_var, j,
                                                      entry.get("name", "?"), wire_proto(entry.get("proto"),
                                                                                         addr.version), net,
                                                      "" if port is None else " port %d" % port))
    return problems
