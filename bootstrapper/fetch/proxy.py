"""Which hosts skip the proxy: the Mac's "Bypass proxy settings for these Hosts & Domains" list.

macOS keeps the list as `ExceptionsList` (with `ExcludeSimpleHostnames`) beside the proxy in
`scutil --proxy`. The entries are read the way CPython's `urllib.request` reads that same list on a Mac
(`_proxy_bypass_macosx_sysconf`), without its DNS lookup:

- `host.example.com`: that name only (macOS does not extend a bare name to its subdomains);
- `*.example.com`, `*.local`: a glob over the whole name; `.example.com` is read as `*.example.com`;
- `10.1.2.3`, `169.254/16`, `10.0.0.0/8`, `10/8`: IPv4 networks, missing octets read as 0 and a
  missing prefix covering the octets written (`10.1` is `10.1.0.0/16`); `fd00::/8`, `::1`: IPv6;
- `ExcludeSimpleHostnames`: a name without a dot (`intranet`), never an IP address.

Addresses are matched only when the URL holds one: a name is not resolved to decide how to reach it.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field

_IPV4 = re.compile(r"(?P<octets>\d{1,3}(?:\.\d{1,3}){0,3})(?:/(?P<prefix>\d{1,3}))?")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _Rules:
    names: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    networks: tuple[_Network, ...] = ()


@dataclass(frozen=True)
class ProxyBypass:
    """Hosts fetched directly although a proxy is set; entries no form fits never match anything."""

    exceptions: tuple[str, ...] = ()
    exclude_simple: bool = False
    _rules: _Rules = field(init=False, repr=False, compare=False, default=_Rules())

    def __post_init__(self) -> None:
        names: set[str] = set()
        globs: list[str] = []
        networks: list[_Network] = []
        for raw in self.exceptions:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            network = _network(entry)
            if network is not None:
                networks.append(network)
            elif ":" in entry or "/" in entry:
                continue  # an IPv6 form or prefix that does not parse: the system ignores it too
            elif entry.startswith("."):
                globs.append("*" + entry)
            elif any(c in entry for c in "*?["):
                globs.append(entry)
            else:
                names.add(entry)
        object.__setattr__(self, "_rules", _Rules(frozenset(names), tuple(globs), tuple(networks)))

    def __bool__(self) -> bool:
        return self.exclude_simple or any(e.strip() for e in self.exceptions)

    def applies_to(self, host: str) -> bool:
        """True when `host` (a URL's host: a name, or an IP address without brackets) goes direct."""
        host = host.strip("[]").lower().rstrip(".")
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        rules = self._rules
        if address is None and self.exclude_simple and "." not in host:
            return True
        if host in rules.names or any(fnmatch.fnmatchcase(host, g) for g in rules.globs):
            return True
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == n.version and address in n for n in rules.networks)


def _network(entry: str) -> _Network | None:
    """`entry` as a network when it is written as an address or a prefix, else None."""
    match = _IPV4.fullmatch(entry)
    if match is not None:
        octets = [int(o) for o in match["octets"].split(".")]
        prefix = 8 * len(octets) if match["prefix"] is None else int(match["prefix"])
        if any(o > 255 for o in octets) or prefix > 32:
            return None
        padded = ".".join(str(o) for o in (*octets, 0, 0, 0)[:4])
        return ipaddress.IPv4Network(f"{padded}/{prefix}", strict=False)
    if ":" in entry:
        try:
            return ipaddress.IPv6Network(entry.strip("[]"), strict=False)
        except ValueError:
            return None
    return None
