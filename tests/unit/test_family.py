"""An IP address and the family asked for (``-4``/``-6``, a source address): issue 12.

No lookup can change an address's family, so a mismatch is a usage error
before any lookup or socket (it used to be "'::1' has no IPv4 address",
exit 3). Every case here is an IP literal: getaddrinfo is never called with
a name (a stand-in refuses names, to be sure).
"""

from __future__ import annotations

import socket

import pytest

from wirecat.address import ip_version
from wirecat.dial import source_family
from wirecat.errors import UsageError
from wirecat.resolve import resolve


@pytest.fixture(autouse=True)
def no_names(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def numeric_only(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if ip_version(name) is None:
            raise AssertionError(f"a name reached the resolver: {name!r}")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", 4),
        ("::1", 6),
        ("fe80::1%lo", 6),
        ("::ffff:127.0.0.1", 6),
        ("localhost", None),
        ("", None),
    ],
)
def test_ip_version(host: str, expected: int | None) -> None:
    assert ip_version(host) == expected


@pytest.mark.parametrize(
    ("host", "family", "message"),
    [
        (
            "::1",
            socket.AF_INET,
            "::1 is an IPv6 address, but only IPv4 was asked for: give an IPv4 address,"
            " or allow both families",
        ),
        (
            "127.0.0.1",
            socket.AF_INET6,
            "127.0.0.1 is an IPv4 address, but only IPv6 was asked for: give an IPv6 address,"
            " or allow both families",
        ),
    ],
)
def test_resolve_refuses_an_address_of_the_other_family(
    host: str, family: socket.AddressFamily, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        resolve(host, 80, family=family)
    assert str(caught.value) == message
    assert caught.value.setting == "family"  # the library names no flag; the CLI says -4/-6


@pytest.mark.parametrize("family", [socket.AF_UNSPEC, socket.AF_INET])
def test_resolve_takes_an_address_of_the_family_asked_for(family: socket.AddressFamily) -> None:
    assert [str(a) for a in resolve("127.0.0.1", 80, family=family)] == ["127.0.0.1:80"]


@pytest.mark.parametrize(
    ("source", "family", "target", "expected"),
    [
        ("127.0.0.1", socket.AF_UNSPEC, "127.0.0.2", socket.AF_INET),
        ("::1", socket.AF_UNSPEC, "example.com", socket.AF_INET6),  # a name: its lookup is in that family
        ("::1", socket.AF_INET6, "", socket.AF_INET6),
    ],
)
def test_a_source_pins_the_family(
    source: str, family: socket.AddressFamily, target: str, expected: socket.AddressFamily
) -> None:
    assert source_family(source, family, target) == expected


@pytest.mark.parametrize(
    ("source", "family", "target", "message"),
    [
        (
            "::1",
            socket.AF_UNSPEC,
            "127.0.0.1",
            "source address '::1' is an IPv6 address but the target"
            " '127.0.0.1' is an IPv4 one: a connection has one family:"
            " give a source address of the target's family",
        ),
        (
            "127.0.0.1",
            socket.AF_UNSPEC,
            "::1",
            "source address '127.0.0.1' is an IPv4 address but the target"
            " '::1' is an IPv6 one: a connection has one family:"
            " give a source address of the target's family",
        ),
        ("::1", socket.AF_INET, "example.com", "source address '::1' is not an IPv4 address"),
        (
            "myhost",
            socket.AF_UNSPEC,
            "127.0.0.1",
            "source address 'myhost' is not an IP address: give -s an IP address",
        ),
    ],
)
def test_a_source_that_cannot_work_is_a_usage_error(
    source: str, family: socket.AddressFamily, target: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        source_family(source, family, target)
    assert str(caught.value) == message
