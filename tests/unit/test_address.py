"""Address parsing: table-driven cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirecat.address import Address, format_hostport, is_service_name, parse_address, parse_port, parse_ports
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


# -- ports by service name (issue 12): looked up only through the lookup the caller passes ------------

#: A stand-in for the services database: no file is read, and it says which protocol was asked.
SERVICES = {
    ("http", "tcp"): 80,
    ("http-alt", "tcp"): 8080,
    ("domain", "udp"): 53,
    ("kerberos_master", "tcp"): 751,
}


def stand_in_services(name: str, datagram: bool) -> int:
    try:
        return SERVICES[name, "udp" if datagram else "tcp"]
    except KeyError:
        raise UsageError(f"bad port {name!r}: no such service") from None


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("localhost", "http"), Address("localhost", 80)),
        (("localhost:http-alt",), Address("localhost", 8080)),
        (("[::1]:http",), Address("::1", 80)),
        (("udp:127.0.0.1:domain",), Address("127.0.0.1", 53, datagram=True)),
        (("kerberos_master",), Address("", 751)),  # a bare name where a bare port goes (listen http)
        (("localhost", "8080"), Address("localhost", 8080)),  # numbers never reach the lookup
    ],
)
def test_a_port_may_be_a_service_name_where_a_lookup_is_given(
    words: tuple[str, ...], expected: Address
) -> None:
    assert parse_address(*words, service=stand_in_services) == expected


def test_the_protocol_of_the_lookup_follows_the_transport() -> None:
    assert parse_address("127.0.0.1", "domain", datagram=True, service=stand_in_services).port == 53
    with pytest.raises(UsageError, match="no such service"):
        parse_address("127.0.0.1", "domain", service=stand_in_services)  # a TCP lookup


@pytest.mark.parametrize(
    ("words", "message"),
    [
        # Without a lookup (the library's default), a name is a bad port, as before.
        (("localhost", "http"), "bad port 'http': give a number from 0 to 65535"),
        # With one: what cannot be a name never reaches it; an unknown name is its error.
        (
            ("localhost", "ht tp"),
            "bad port 'ht tp': give a number from 0 to 65535, or a service name such as http",
        ),
        (("localhost", "nosuch"), "bad port 'nosuch': no such service"),
        # A bare word that is no service is a host without its port.
        (("nosuch",), "address 'nosuch' has no port: write HOST:PORT"),
    ],
)
def test_service_name_errors(words: tuple[str, ...], message: str) -> None:
    lookup = stand_in_services if words != ("localhost", "http") else None
    with pytest.raises(UsageError) as caught:
        parse_address(*words, service=lookup)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http", True),
        ("http-alt", True),
        ("kerberos_master", True),
        ("x25", True),
        ("80", False),
        ("8000-8100", False),
        ("-", False),
        ("", False),
        ("ht tp", False),
        ("ssh\0", False),
        ("héllo", False),
        ("a" * 33, False),
    ],
)
def test_what_has_the_form_of_a_service_name(text: str, expected: bool) -> None:
    assert is_service_name(text) is expected


def test_port_lists_take_service_names_but_ranges_take_numbers() -> None:
    assert parse_ports("http,22,http-alt,8000-8001", service=stand_in_services) == [22, 80, 8000, 8001, 8080]
    with pytest.raises(UsageError, match="bad port 'http-8000': no such service"):
        parse_ports("http-8000", service=stand_in_services)  # a range of names is not one


@given(st.text(max_size=30), st.text(max_size=20))
def test_parse_address_with_a_lookup_fails_only_with_usage_error(text: str, port: str) -> None:
    for words in ((text,), (text, port)):
        try:
            parse_address(*words, service=stand_in_services)
        except UsageError:
            pass


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("tls:example.com:443",), Address("example.com", 443, tls=True)),
        (("tls:[::1]:8443",), Address("::1", 8443, tls=True)),
        (("TLS:127.0.0.1", "9000"), Address("127.0.0.1", 9000, tls=True)),
        (("tls:unix:/run/app.sock",), Address(path="/run/app.sock", tls=True)),
    ],
)
def test_tls_prefix(words: tuple[str, ...], expected: Address) -> None:
    assert parse_address(*words) == expected
    assert str(parse_address(*words)) == str(expected._replace(tls=False))  # names stay as written


def test_tls_over_udp_is_refused() -> None:
    with pytest.raises(UsageError, match="DTLS is not supported"):
        parse_address("tls:udp:127.0.0.1:9000")
