"""The egress policy: names, wildcards, IP literals in every disguise, and resolved addresses."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from actana.runs.egress_policy import (
    EgressPolicy,
    EgressRefused,
    EgressUnresolvable,
    address_problem,
    check_host,
    checked_addresses,
    domain_allowed,
)

ALLOW = EgressPolicy.build("allowlist", ["example.com", "*.pypi.org"])
OPEN = EgressPolicy.build("open", [])


def refused(policy: EgressPolicy, host: str) -> str:
    with pytest.raises(EgressRefused) as caught:
        check_host(policy, host)
    return str(caught.value)


def test_none_refuses_everything() -> None:
    policy = EgressPolicy.build("none", [])
    for host in ("example.com", "8.8.8.8", "localhost"):
        assert "policy is none" in refused(policy, host)


def test_unknown_mode_fails_closed() -> None:
    assert EgressPolicy.build("anything", ["example.com"]).mode == "none"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("EXAMPLE.com.", True),  # case and the root dot do not matter
        ("www.example.com", False),  # an exact entry is not a wildcard
        ("files.pypi.org", True),
        ("a.b.pypi.org", True),
        ("pypi.org", False),  # *. means subdomains only
        ("evilpypi.org", False),
        ("pypi.org.evil.com", False),
        ("example.com.evil.com", False),
    ],
)
def test_allowlist_matching(host: str, allowed: bool) -> None:
    if allowed:
        assert check_host(ALLOW, host)[1] is None
    else:
        assert refused(ALLOW, host) == "not in the environment's allowed domains"


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f.1", "0x7f000001", "017700000001", "0177.0.0.1", "127.1", "10.1", "1.0x1"],
)
def test_ip_addresses_in_disguise_are_refused_under_every_policy(host: str) -> None:
    for policy in (ALLOW, OPEN):
        assert "IP address in disguise" in refused(policy, host)


@pytest.mark.parametrize("host", ["93.184.216.34", "[2606:4700::1111]", "2606:4700::1111"])
def test_raw_ips_refused_under_allowlist_but_public_ones_pass_open(host: str) -> None:
    assert "raw IP addresses are refused" in refused(ALLOW, host)
    assert check_host(OPEN, host)[1] is not None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),  # documentation range
        ("198.18.0.1", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback address, embedded"),
        ("::ffff:169.254.169.254", "link-local address (includes cloud metadata"),
        ("::127.0.0.1", "loopback address, embedded"),
        ("64:ff9b::a00:1", "private address, embedded"),
        ("2002:a00:1::", "private address, embedded"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None
    assert reason in problem
    assert reason in refused(OPEN, address)


def test_public_addresses_pass() -> None:
    for address in ("8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert address_problem(ipaddress.ip_address(address)) is None


def test_exempt_networks_lift_only_the_range_rule() -> None:
    policy = EgressPolicy.build("allowlist", ["localhost"], ["127.0.0.0/8"])
    assert address_problem(ipaddress.ip_address("127.0.0.5"), policy.exempt_networks) is None
    assert address_problem(ipaddress.ip_address("::ffff:127.0.0.5"), policy.exempt_networks) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), policy.exempt_networks) is not None
    assert "raw IP addresses" in refused(policy, "127.0.0.1")  # still a literal
    assert "not in the environment's" in refused(policy, "vm")  # still the list


def test_exempt_networks_must_be_networks() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        EgressPolicy.build("open", [], ["not-a-net"])


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("exa mple.com", "not a valid host name"),
        ("-bad.example.com", "not a valid host name"),
        ("a..b", "not a valid host name"),
        ("bücher.de", "xn-- form"),
        ("x" * 64 + ".com", "not a valid host name"),
    ],
)
def test_malformed_names(host: str, reason: str) -> None:
    assert reason in refused(OPEN, host)


def test_wildcard_helper_needs_a_label() -> None:
    assert not domain_allowed(".pypi.org", ["*.pypi.org"])
    assert domain_allowed("x.pypi.org", ["*.pypi.org"])


def _resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(-2, "Name or service not known")
        return answers[host]

    return resolve


def check(policy: EgressPolicy, host: str, answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    return asyncio.run(checked_addresses(policy, host, 443, _resolver(answers)))


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    answers = {"example.com": ["93.184.216.34", "10.0.0.7"]}
    with pytest.raises(EgressRefused, match=r"example.com resolves to 10.0.0.7: private"):
        check(ALLOW, "example.com", answers)


def test_a_name_resolving_to_metadata_is_refused() -> None:
    with pytest.raises(EgressRefused, match=r"169\.254\.169\.254: link-local"):
        check(OPEN, "metadata.evil.test", {"metadata.evil.test": ["169.254.169.254"]})


def test_checked_addresses_are_the_ones_connected_to() -> None:
    name, addresses = check(ALLOW, "Example.COM", {"example.com": ["93.184.216.34"]})
    assert name == "example.com"
    assert addresses == [ipaddress.ip_address("93.184.216.34")]


def test_unresolvable_names() -> None:
    with pytest.raises(EgressUnresolvable, match=r"cannot resolve example\.com"):
        check(ALLOW, "example.com", {})


def test_the_real_resolver_sees_localhost_as_loopback() -> None:
    """The host's own resolver (getaddrinfo): `localhost` is refused for where it points."""
    with pytest.raises(EgressRefused, match=r"localhost resolves to .*loopback"):
        asyncio.run(checked_addresses(OPEN, "localhost", 80))


def test_ports_out_of_range() -> None:
    with pytest.raises(EgressRefused, match="port 0"):
        asyncio.run(checked_addresses(OPEN, "example.com", 0))
