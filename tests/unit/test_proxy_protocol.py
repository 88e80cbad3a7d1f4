"""The PROXY protocol codec: table-driven cases, and hypothesis properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirecat.errors import ProxyProtocolError
from wirecat.protocol.proxy import V1_MAX, ProxyHeader, ProxyHeaderReader, encode_v1, encode_v2


def read_all(chunks: list[bytes]) -> tuple[ProxyHeader | None, bytes]:
    reader = ProxyHeaderReader()
    header = None
    for chunk in chunks:
        if chunk:
            header = reader.feed(chunk)
    return header, reader.rest


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_v1_examples_from_the_specification() -> None:
    header, rest = read_all([b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nGET /"])
    assert header == ProxyHeader(1, "TCP4", "255.255.255.255", 65535, "255.255.255.255", 65535)
    assert rest == b"GET /"
    header, _ = read_all([b"PROXY TCP6 ffff:f::ffff ffff:f::ffff 65535 65535\r\n"])
    assert header == ProxyHeader(1, "TCP6", "ffff:f::ffff", 65535, "ffff:f::ffff", 65535)
    assert read_all([b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"])[0] == ProxyHeader(1, "UNKNOWN")


def test_v1_encoding() -> None:
    assert encode_v1("127.0.0.1", 51234, "127.0.0.1", 80) == b"PROXY TCP4 127.0.0.1 127.0.0.1 51234 80\r\n"
    assert encode_v1() == b"PROXY UNKNOWN\r\n"
    assert len(encode_v1("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "ffff::1", 65535)) <= V1_MAX


def test_v2_encoding_layout() -> None:
    header = encode_v2("127.0.0.1", 0x1234, "127.0.0.2", 80)
    assert header[:12] == b"\r\n\r\n\x00\r\nQUIT\n"
    assert header[12:14] == b"\x21\x11"  # version 2, PROXY; TCP over IPv4
    assert header[14:16] == (12).to_bytes(2, "big")
    assert header[16:] == bytes([127, 0, 0, 1, 127, 0, 0, 2, 0x12, 0x34, 0, 80])
    assert encode_v2()[12:] == b"\x20\x00\x00\x00"  # LOCAL, no addresses


def test_v2_tlvs_are_skipped_and_local_has_no_addresses() -> None:
    body = bytes([127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2]) + b"\x04\x00\x01X"  # a NOOP TLV
    header = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + len(body).to_bytes(2, "big") + body
    assert read_all([header + b"rest"]) == (ProxyHeader(2, "TCP4", "127.0.0.1", 1, "127.0.0.1", 2), b"rest")
    assert read_all([encode_v2()])[0] == ProxyHeader(2, "LOCAL")


@pytest.mark.parametrize(
    "bad",
    [
        b"GET / HTTP/1.0\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 999.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY SCTP 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 " + b"1" * 200,
        b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12),  # version 3
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04" + bytes(4),  # too short for IPv4
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",  # a 64 KiB address block
        b"\r\n\r\nXXXXXXXX",
    ],
)
def test_malformed_headers_are_refused(bad: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        read_all([bad])


def test_end_of_stream_inside_the_header() -> None:
    reader = ProxyHeaderReader()
    assert reader.feed(b"PROXY TCP4 1.2.3.4") is None
    with pytest.raises(ProxyProtocolError):
        reader.feed(b"")


def test_only_the_versions_asked_for() -> None:
    with pytest.raises(ProxyProtocolError):
        ProxyHeaderReader(versions=(2,)).feed(encode_v1("1.2.3.4", 1, "5.6.7.8", 2))
    with pytest.raises(ProxyProtocolError):
        ProxyHeaderReader(versions=(1,)).feed(encode_v2("1.2.3.4", 1, "5.6.7.8", 2))


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(min_value=0, max_value=65535)
addresses = st.one_of(st.tuples(ipv4, ports, ipv4, ports), st.tuples(ipv6, ports, ipv6, ports))


@pytest.mark.parametrize("encode", [encode_v1, encode_v2])
@given(address=addresses, rest=st.binary(max_size=50), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_round_trip_under_any_split(encode, address, rest: bytes, cuts: list[int]) -> None:
    source, source_port, destination, destination_port = address
    wire = encode(source, source_port, destination, destination_port) + rest
    header, after = read_all(split(wire, cuts))
    assert header is not None
    assert (header.source, header.source_port, header.destination, header.destination_port) == address
    assert after == rest


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_any_bytes_give_a_header_or_proxy_protocol_error(data: bytes, cuts: list[int]) -> None:
    """Fuzz: nothing but a header, 'not yet', or ProxyProtocolError; the same for any split."""

    def outcome(chunks: list[bytes]) -> object:
        try:
            return read_all(chunks)
        except ProxyProtocolError:
            return "error"

    whole = outcome([data])
    assert outcome(split(data, cuts)) == whole


@given(data=st.binary(min_size=1, max_size=300).map(lambda b: b"PROXY " + b))
def test_v1_garbage_after_the_keyword(data: bytes) -> None:
    try:
        read_all([data])
    except ProxyProtocolError:
        pass
