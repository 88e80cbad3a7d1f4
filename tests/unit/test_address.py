"""Address parsing: table-driven cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirecat.address import Address, format_hostport, parse_address, parse_port, parse_ports
from wirecat.errors import UsageError

GOOD = [
    (("example.com:80",), Address("example.com", 80)),
    (("127.0.0.1:0",), Address("127.0.0.1", 0)),
    (("[::1]:8080",), Address("::1", 8080)),
    (("::1", "8080"), Address("::1", 8080)),
    (("[::1]", "8080"), Address("::1", 8080)),
    (("localhost", "65535"), Address("localhost", 65535)),
    (("unix:/tmp/a.sock",), Address(path="/tmp/a.sock")),
    (("unix:@abstract",), Address(path="@abstract")),
    (("udp:127.0.0.1:53",), Address("127.0.0.1", 53, datagram=True)),
    (("tcp:127.0.0.1:53",), Address("127.0.0.1", 53)),
    ((":9000",), Address("", 9000)),
]


@pytest.mark.parametrize(("words", "expected"), GOOD)
def test_good_addresses(words: tuple[str, ...], expected: Address) -> None:
    assert parse_address(*words) == expected


@pytest.mark.parametrize(
    "words",
    [
        ("example.com",),  # no port
        ("::1:80",),  # ambiguous without brackets
        ("[::1]80",),
        ("host:65536",),
        ("host:-1",),
        ("host:http",),
        ("unix:",),
        ("unix:/x", "80"),
        ("", "80"),
    ],
)
def test_bad_addresses_are_usage_errors(words: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        parse_address(*words)


def test_default_host_fills_a_bare_port() -> None:
    assert parse_address("9000", default_host="127.0.0.1") == Address("127.0.0.1", 9000)


def test_abstract_unix_name_becomes_nul_prefixed() -> None:
    assert parse_address("unix:@name").sockaddr_path == "\0name"


@pytest.mark.parametrize(
    ("text", "ports"),
    [("22", [22]), ("22,80", [22, 80]), ("8000-8003", [8000, 8001, 8002, 8003]), ("80, 22,80", [22, 80])],
)
def test_port_lists(text: str, ports: list[int]) -> None:
    assert parse_ports(text) == ports


@pytest.mark.parametrize("text", ["", "a", "10-5", "1-70000", "22,,80"])
def test_bad_port_lists(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ports(text)


@given(st.integers(0, 65535))
def test_any_port_round_trips(port: int) -> None:
    assert parse_port(str(port)) == port


@given(
    st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)),
    st.integers(0, 65535),
)
def test_format_then_parse_is_identity(host: str, port: int) -> None:
    assert parse_address(format_hostport(host, port)) == Address(host, port)
    assert str(Address(host, port)) == format_hostport(host, port)


@given(st.text(max_size=30))
def test_parse_address_fails_only_with_usage_error(text: str) -> None:
    try:
        parse_address(text)
    except UsageError:
        pass
