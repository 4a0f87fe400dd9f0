"""Which destinations a run's sandbox may reach: the environment's network policy, decided on
names and addresses the egress proxy (`actana.runs.egress`) is asked for.

Rules, in the order they apply:

- `none`: nothing is allowed.
- The host must be a plain host name (ASCII letters, digits, `-`, `_`, dots; IDNs in their
  `xn--` form) or, under `open` only, a canonical IP address. Every other spelling a resolver
  would read as an address (`2130706433`, `0x7f.1`, `017.0.0.1`, `127.1`) is refused: they exist
  to slip an address past a name check.
- `allowlist`: the name must equal an entry, or be a subdomain of a `*.example.com` entry (the
  wildcard does not match `example.com` itself). Raw IP addresses are refused.
- Every address the name resolves to must be public: loopback, private, link-local (including
  the cloud metadata address 169.254.169.254), CGNAT, multicast, reserved and unspecified ranges
  are refused, also when embedded in IPv6 (v4-mapped, v4-compatible, NAT64, 6to4, Teredo). One
  bad address refuses the name: a resolver may hand out either, so none may be bad. The
  deployment's exempt networks (`egress_allowed_networks`) skip this rule only.

The proxy then connects to one of the addresses checked here and never resolves again, so a DNS
answer that changes between check and use (rebinding) changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
PolicyMode = Literal["none", "allowlist", "open"]

_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_-]{1,63})*$")
# A name whose last label is a number is read as an IPv4 address by inet_aton and by browsers
# (the URL standard's "ends in a number"): decimal, octal (leading 0) or hex (0x).
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class EgressRefused(Exception):
    """The policy refuses a destination; the message is the one-line reason (no host in it)."""


@dataclass(frozen=True)
class EgressPolicy:
    """A run's network policy plus the deployment's exemptions.

    Attributes:
        mode: `none`, `allowlist` or `open`.
        allowed_domains: normalised entries (`example.com`, `*.example.com`), allowlist only.
        exempt_networks: networks the private-range rule does not apply to (e.g. a proxy the
            operator runs on 10.0.0.5, or loopback in tests).
    """

    mode: PolicyMode = "none"
    allowed_domains: tuple[str, ...] = ()
    exempt_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def build(
        cls, mode: str, allowed_domains: Iterable[str], exempt_networks: Iterable[str] = ()
    ) -> EgressPolicy:
        """A policy from stored values; an unknown mode is treated as `none` (fail closed).

        Raises:
            ValueError: an exempt network that is not a network (`10.0.0.0/8`, `::1/128`).
        """
        checked: PolicyMode = mode if mode in ("allowlist", "open") else "none"  # type: ignore[assignment]
        domains = tuple(d.strip().lower().rstrip(".") for d in allowed_domains if d.strip())
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in exempt_networks)
        return cls(checked, domains, networks)


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells in canonical form (`10.0.0.1`, `::1`), else None.

    Raises:
        EgressRefused: a non-canonical spelling of an IPv4 address (decimal, octal, hex or
            shortened), which only serves to get an address past a name check.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(bare.rsplit(".", 1)[-1]):
        raise EgressRefused("an IP address in disguise (numeric, octal or hex form)")
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64) or (
        address in _V4_COMPATIBLE and int(address) > 1  # `::` and `::1` are v6's own
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _range_problem(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT address (100.64.0.0/10)"
    checks = (
        (address.is_unspecified, "unspecified address"),
        (address.is_loopback, "loopback address"),
        (address.is_link_local, "link-local address (includes cloud metadata 169.254.169.254)"),
        (address.is_multicast, "multicast address"),
        (address.is_reserved, "reserved address"),
        (address.is_private, "private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for bad, reason in checks if bad), None)


def address_problem(address: IPAddress, exempt: Sequence[IPNetwork] = ()) -> str | None:
    """Why the proxy must not connect to `address`, or None when it may.

    An address inside an exempt network is fine; otherwise the address (or the IPv4 address an
    IPv6 one embeds, where the traffic really goes) must be public unicast.
    """
    inner = embedded_ipv4(address)
    if any(a in net for net in exempt for a in (address, inner) if a is not None):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.teredo is not None:
        return "Teredo tunnel address (it embeds another host)"
    if inner is not None:
        # The packet ends up at the IPv4 address (mapping, NAT64 or 6to4): that one decides.
        problem = _range_problem(inner)
        return None if problem is None else f"{problem}, embedded in {address}"
    return _range_problem(address)


def domain_allowed(host: str, allowed: Iterable[str]) -> bool:
    """True when `host` equals an entry or is a subdomain of a `*.`-entry's domain."""
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


def check_host(policy: EgressPolicy, host: str) -> tuple[str, IPAddress | None]:
    """Check a destination host before any resolution.

    Returns:
        (the normalised host, its address when it is an IP literal).

    Raises:
        EgressRefused: with the reason.
    """
    if policy.mode == "none":
        raise EgressRefused("the network policy is none (no egress at all)")
    name = host.strip().lower()
    name = name[:-1] if name.endswith(".") and not name.endswith("..") else name
    address = literal_address(name)
    if address is not None:
        if policy.mode == "allowlist":
            raise EgressRefused("raw IP addresses are refused under the allowlist policy")
        problem = address_problem(address, policy.exempt_networks)
        if problem is not None:
            raise EgressRefused(problem)
        return str(address), address
    if not name.isascii():
        raise EgressRefused("not an ASCII host name (give an IDN in its xn-- form)")
    if not _HOST_NAME.match(name):
        raise EgressRefused("not a valid host name")
    if policy.mode == "allowlist" and not domain_allowed(name, policy.allowed_domains):
        raise EgressRefused("not in the environment's allowed domains")
    return name, None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the host's resolver gives for `host` (TCP), in its order, deduplicated."""
    import asyncio  # here: the policy checks themselves need no event loop

    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressUnresolvable(Exception):
    """The name does not resolve (502 rather than 403: not a policy decision)."""


async def checked_addresses(
    policy: EgressPolicy, host: str, port: int, resolver: Resolver = system_resolver
) -> tuple[str, list[IPAddress]]:
    """Check a destination fully: the host, then every address it resolves to.

    Returns:
        (the normalised host, the addresses to connect to, each one checked).

    Raises:
        EgressRefused: the policy refuses the host or one of its addresses.
        EgressUnresolvable: the name has no address.
    """
    if not 0 < port < 65536:
        raise EgressRefused(f"port {port} is out of range")
    name, literal = check_host(policy, host)
    if literal is not None:
        return name, [literal]
    try:
        raw = await resolver(name, port)
    except OSError as exc:
        raise EgressUnresolvable(f"cannot resolve {name}: {exc.strerror or exc}") from None
    addresses: list[IPAddress] = []
    for text in raw:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop a v6 scope id
        problem = address_problem(address, policy.exempt_networks)
        if problem is not None:
            raise EgressRefused(f"{name} resolves to {address}: {problem}")
        addresses.append(address)
    if not addresses:
        raise EgressUnresolvable(f"cannot resolve {name}: no address")
    return name, addresses
