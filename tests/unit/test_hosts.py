"""Host names and Unix paths are checked before any lookup or socket (issue 10, item 4).

The property tests feed arbitrary text where a user writes a host: every
input is either accepted or a one-line ``UsageError``, never a traceback
(``UnicodeError`` from the IDNA codec, ``ValueError`` for a NUL). Lookups are
numeric (``-n``: no DNS), or go to a stand-in resolver that checks what would
have reached the real one: no test here sends a query anywhere.
"""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirecat.address import MAX_UNIX_PATH, _ascii_host, check_host, check_unix_path, parse_address
from wirecat.errors import UsageError, WirecatError
from wirecat.resolve import resolve

#: Text shaped like what users type where a host goes: labels, dots, colons,
#: brackets, percent signs, any Unicode (with surrogates, as argv decodes bad bytes).
_LABEL = st.text(alphabet=st.characters(codec=None), min_size=0, max_size=70)
hosts = st.one_of(
    st.text(max_size=300),
    st.lists(_LABEL, min_size=1, max_size=6).map(".".join),
    st.lists(st.sampled_from(["a", "1", ":", ".", "[", "]", "%", "-", "ä", "\0", " "]), max_size=40).map(
        "".join
    ),
    st.integers(0, 400).map(lambda n: "a" * n),
)


@given(hosts)
def test_check_host_accepts_or_gives_a_usage_error(host: str) -> None:
    try:
        assert check_host(host) == host
    except UsageError as exc:
        message = str(exc)
    else:
        return
    assert "\n" not in message


@given(hosts, st.sampled_from(["80", "0", "99999", "http", ""]))
def test_parse_address_gives_an_address_or_a_usage_error(host: str, port: str) -> None:
    for words in ((host, port), (f"{host}:{port}",), (f"[{host}]:{port}",), (host,)):
        try:
            parse_address(*words)
        except UsageError:
            pass


@given(hosts)
def test_numeric_resolve_never_raises_anything_else(host: str) -> None:
    # -n: AI_NUMERICHOST, so getaddrinfo parses and never asks a resolver.
    try:
        resolve(host, 80, numeric=True)
    except WirecatError:
        pass


@given(hosts)
def test_only_well_formed_names_reach_the_resolver(host: str) -> None:
    asked: list[str] = []

    def stand_in(name: str | bytes, *args: object) -> list[object]:
        # An ASCII name is handed over as bytes (no "idna" codec import); others as str.
        asked.append(name.decode("ascii") if isinstance(name, bytes) else name)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    real, socket.getaddrinfo = socket.getaddrinfo, stand_in  # type: ignore[assignment]
    try:
        resolve(host, 80)
    except WirecatError:
        pass
    finally:
        socket.getaddrinfo = real
    for name in asked:
        encoded = name.encode("idna")  # what CPython hands the resolver: must not raise
        assert b"\0" not in encoded
        assert all(0 < len(label) <= 63 for label in encoded.rstrip(b".").split(b"."))


@given(st.one_of(st.text(alphabet=st.characters(max_codepoint=127), max_size=300), hosts))
def test_the_ascii_fast_path_checks_as_the_idna_codec_does(host: str) -> None:
    # check_host skips the "idna" codec for ASCII names (start-up): it must
    # accept and refuse exactly what the codec would.
    if not host.isascii():
        return
    try:
        expected: bytes | None = host.encode("idna")
    except UnicodeError:
        expected = None
    try:
        got: bytes | None = _ascii_host(host)
    except UnicodeError:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("a" * 64, "1 to 63"),
        ("a..b", "1 to 63"),
        (".a", "1 to 63"),
        ("a\0b", "holds"),
        ("a b", "holds"),
        ("[::1", "[::1]:PORT"),
        ("::1]", "[::1]:PORT"),
        ("::1x", "not an IPv6 address"),
        ("\udcff.example", "not a valid host name"),
        (".".join(["a" * 63] * 5), "too long"),
    ],
)
def test_bad_hosts_say_why(host: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        check_host(host)


@pytest.mark.parametrize("host", ["example.com", "example.com.", "münchen.de", "a_b", "::1", "fe80::1%lo"])
def test_good_hosts_pass(host: str) -> None:
    assert check_host(host) == host


def test_numeric_with_a_name_is_a_usage_error_without_a_lookup() -> None:
    def stand_in(*args: object) -> list[object]:
        raise AssertionError("no lookup with -n")

    real, socket.getaddrinfo = socket.getaddrinfo, stand_in  # type: ignore[assignment]
    try:
        with pytest.raises(UsageError, match="-n"):
            resolve("localhost", 80, numeric=True)
    finally:
        socket.getaddrinfo = real


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/" + "a" * (MAX_UNIX_PATH - 1), True),
        ("/" + "a" * MAX_UNIX_PATH, False),
        ("@" + "a" * MAX_UNIX_PATH, True),
        ("@" + "a" * (MAX_UNIX_PATH + 1), False),
        ("/tmp/" + "é" * 52, False),  # 104 characters, 109 bytes: the limit is in bytes
        ("@", False),
    ],
)
def test_unix_path_limit(path: str, ok: bool) -> None:
    if ok:
        assert check_unix_path(path) == path
    else:
        with pytest.raises(UsageError, match=r"107|empty"):
            check_unix_path(path)
