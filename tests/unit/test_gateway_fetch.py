"""gateway.fetch: which addresses are public, and which hosts an operator's allow-list admits."""

from __future__ import annotations

import pytest

from gateway.fetch import FetchPolicy, is_public


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1%eth0", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1", "240.0.0.1"],
)  # fmt: skip
def test_private_loopback_link_local_and_reserved_addresses_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_global_addresses_are_public(address: str) -> None:
    assert is_public(address)


def test_the_allow_list_takes_exact_hosts_and_star_subdomains() -> None:
    policy = FetchPolicy(frozenset({"images.example.com", "*.cdn.example.org"}), False, 1, 1.0)
    assert policy.host_allowed("images.example.com") and policy.host_allowed("IMAGES.example.com.")
    assert policy.host_allowed("a.cdn.example.org") and policy.host_allowed("a.b.cdn.example.org")
    assert not policy.host_allowed("cdn.example.org") and not policy.host_allowed("evilcdn.example.org")
    assert not policy.host_allowed("example.com") and not policy.host_allowed("images.example.com.evil.net")
