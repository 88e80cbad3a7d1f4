"""The file-transfer protocol's state machines (wirecat.protocol.transfer): table cases and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecat.errors import TransferProtocolError
from wirecat.protocol.transfer import (
    DIGEST_NAME,
    DIGEST_SIZE,
    Data,
    DataStart,
    Digest,
    End,
    Event,
    FileHeader,
    Finished,
    Hello,
    Kind,
    Offer,
    OfferAction,
    Receiver,
    Sender,
    Verdict,
    VerdictKind,
    encode_hello,
)

names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30
)


@st.composite
def entries(draw: st.DrawFn) -> tuple[FileHeader, bytes]:
    kind = draw(st.sampled_from(list(Kind)))
    data = draw(st.binary(max_size=300)) if kind is Kind.FILE else b""
    header = FileHeader(
        draw(names),
        len(data),
        draw(st.integers(0, 0o7777)),
        draw(st.integers(-(2**63), 2**63 - 1)),
        kind,
        draw(names) if kind is Kind.SYMLINK else "",
    )
    return header, data


def feed_split(machine: Sender | Receiver, data: bytes, cuts: list[int]) -> list[Event]:
    """Feed ``data`` cut at ``cuts``; merge the Data events (their split is the cut's)."""
    events: list[Event] = []
    points = sorted({c % (len(data) + 1) for c in cuts}) if data else []
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            events += machine.feed(data[start:point])
            start = point
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def conversation(
    items: list[tuple[FileHeader, bytes]], actions: list[int], cuts: list[int]
) -> tuple[list[Event], list[Event], Sender, Receiver]:
    """A whole transfer, each flight fed cut at ``cuts``: (receiver's events, sender's events)."""
    sender, receiver = Sender(), Receiver()
    flight = sender.encode(Hello()) + b"".join(sender.encode(h) for h, _ in items)
    got = feed_split(receiver, flight, cuts)
    back = receiver.encode(Hello())
    offers: list[tuple[FileHeader, bytes, int]] = []
    for index, (header, data) in enumerate(items):
        action = actions[index % len(actions)] if actions else 0
        if header.kind is not Kind.FILE:
            back += receiver.encode(
                Offer(OfferAction.REFUSE if action == 1 else OfferAction.DONE, reason="r")
            )
        elif action == 1:
            back += receiver.encode(Offer(OfferAction.REFUSE, reason="exists"))
        elif action == 2:
            back += receiver.encode(Offer(OfferAction.SKIP, reason="skip"))
        else:
            offset = (action - 3) % (len(data) + 1) if action >= 3 else 0
            prefix = hashlib.sha256(data[:offset]).digest() if offset else bytes(DIGEST_SIZE)
            back += receiver.encode(Offer(OfferAction.ACCEPT, offset, prefix))
            offers.append((header, data, offset))
    heard = feed_split(sender, back, cuts)
    flight = b""
    for _header, data, offset in offers:
        flight += sender.encode(DataStart(offset))
        sender.sent(len(data) - offset)
        flight += data[offset:] + sender.encode(Digest(hashlib.sha256(data).digest()))
    flight += sender.encode(End(len(items)))
    got += feed_split(receiver, flight, [c * 7 for c in cuts])
    back = b"".join(
        receiver.encode(Verdict(VerdictKind.OK, hashlib.sha256(d).digest())) for _, d, _ in offers
    )
    back += receiver.encode(receiver.finished())
    heard += feed_split(sender, back, cuts)
    assert receiver.feed(b"") == []
    assert sender.feed(b"") == []
    return got, heard, sender, receiver


@settings(max_examples=200, deadline=None)
@given(st.lists(entries(), max_size=8), st.lists(st.integers(0, 40), max_size=5))
def test_round_trip(items: list[tuple[FileHeader, bytes]], actions: list[int]) -> None:
    got, heard, _, _ = conversation(items, actions, [])
    headers = [e for e in got if isinstance(e, FileHeader)]
    assert headers == [h for h, _ in items]
    starts = [e for e in got if isinstance(e, DataStart)]
    datas = iter(e.data for e in got if isinstance(e, Data))
    for start in starts:
        assert start.header is not None
        expected = dict((h, d) for h, d in items)[start.header][start.offset :]
        if expected:
            assert next(datas) == expected
    assert isinstance(heard[-1], Finished)
    assert heard[-1].ok + heard[-1].failed + sum(
        isinstance(e, Offer) and e.action is OfferAction.SKIP for e in heard
    ) == len(items)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(entries(), max_size=6),
    st.lists(st.integers(0, 40), max_size=5),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_any_split_gives_the_same_events(
    items: list[tuple[FileHeader, bytes]], actions: list[int], cuts: list[int]
) -> None:
    whole = conversation(items, actions, [])
    split = conversation(items, actions, cuts)
    assert whole[0] == split[0]
    assert whole[1] == split[1]


def test_byte_at_a_time() -> None:
    items = [(FileHeader("a", 3), b"abc"), (FileHeader("d", kind=Kind.DIRECTORY), b"")]
    whole = conversation(items, [3], [])
    one = conversation(items, [3], list(range(2000)))
    assert whole[:2] == one[:2]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_garbage_never_crashes_the_receiver(data: bytes, greet: bool) -> None:
    receiver = Receiver(max_record=256)
    receiver.encode(Hello())
    try:
        for event in receiver.feed((encode_hello() if greet else b"") + data):
            if isinstance(event, FileHeader):
                receiver.encode(
                    Offer(OfferAction.ACCEPT) if event.kind is Kind.FILE else Offer(OfferAction.DONE)
                )
        receiver.pending()
        receiver.feed(b"")
    except TransferProtocolError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.booleans(), st.integers(0, 3))
def test_garbage_never_crashes_the_sender(data: bytes, greet: bool, headers: int) -> None:
    sender = Sender(max_record=256)
    sender.encode(Hello())
    for index in range(headers):
        sender.encode(FileHeader(f"f{index}", index))
    try:
        sender.feed((encode_hello() if greet else b"") + data)
        sender.feed(b"")
    except TransferProtocolError:
        pass


def header_bytes(header: FileHeader) -> bytes:
    sender = Sender()
    sender.encode(Hello())
    return sender.encode(header)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "does not speak"),
        (b"WCXF\x01\0\0\0", "version 1, this wirecat 2"),
        (b"WCXF\x03", "version 3, this wirecat 2"),
        (b"WCXF\x02\0\0\0", "names a digest of 0 bytes"),
        (b"WCXF\x02\0\0\x21" + b"x" * 33, "names a digest of 33 bytes"),
        (encode_hello(digest="sha256"), "hashes with 'sha256', this wirecat with blake3"),
        (encode_hello() + b"H" + (1 << 20).to_bytes(4, "big"), "over the limit"),
        (encode_hello() + b"Z\0\0\0\0", "unknown record type"),
        (encode_hello() + b"S\0\0\0\x08" + bytes(8), "no offer accepted"),
        (encode_hello() + b"D\0\0\0\x20" + bytes(32), "a digest with no file"),
        (encode_hello() + b"E\0\0\0\x08" + (5).to_bytes(8, "big"), "says 5 entries"),
        (encode_hello() + b"H\0\0\0\x03abc", "too short"),
    ],
)
def test_bad_streams(stream: bytes, message: str) -> None:
    with pytest.raises(TransferProtocolError, match=message):
        Receiver().feed(stream)


def test_limits_are_enforced_on_both_sides() -> None:
    sender = Sender(max_name=10, max_size=100, max_files=2)
    sender.encode(Hello())
    with pytest.raises(TransferProtocolError, match="name of 11 bytes"):
        sender.encode(FileHeader("x" * 11))
    with pytest.raises(TransferProtocolError, match="over the limit of 100"):
        sender.encode(FileHeader("x", 101))
    sender.encode(FileHeader("a"))
    sender.encode(FileHeader("b"))
    with pytest.raises(TransferProtocolError, match="more than 2 entries"):
        sender.encode(FileHeader("c"))
    big = encode_hello() + header_bytes(FileHeader("y" * 11))
    with pytest.raises(TransferProtocolError, match="name of 11 bytes"):
        Receiver(max_name=10).feed(big)
    with pytest.raises(TransferProtocolError, match="over the limit of 100"):
        Receiver(max_size=100).feed(encode_hello() + header_bytes(FileHeader("y", 101)))
    three = encode_hello() + b"".join(header_bytes(FileHeader(n)) for n in "abc")
    with pytest.raises(TransferProtocolError, match="more than 2 entries"):
        Receiver(max_files=2).feed(three)


def test_data_before_the_offer_waits_then_is_refused_past_the_limit() -> None:
    receiver = Receiver(max_record=64)
    receiver.encode(Hello())
    stream = encode_hello() + header_bytes(FileHeader("a", 1000))
    assert isinstance(receiver.feed(stream)[-1], FileHeader)
    start = b"S\0\0\0\x08" + bytes(8)
    assert receiver.feed(start) == []  # waits for the offer
    receiver.encode(Offer(OfferAction.ACCEPT))
    assert isinstance(receiver.pending()[0], DataStart)
    other = Receiver(max_record=64)
    other.encode(Hello())
    other.feed(stream)
    with pytest.raises(TransferProtocolError, match="before its offer"):
        other.feed(start + bytes(200))


def test_lies_about_size_and_order() -> None:
    sender = Sender()
    sender.encode(Hello())
    sender.encode(FileHeader("a", 5))
    with pytest.raises(TransferProtocolError, match="no file was accepted"):
        sender.encode(DataStart(0))
    receiver = Receiver()
    hello = receiver.encode(Hello())
    receiver.feed(encode_hello() + header_bytes(FileHeader("a", 5)))
    sender.feed(hello + receiver.encode(Offer(OfferAction.ACCEPT, 2, b"p" * 32)))
    with pytest.raises(TransferProtocolError, match="offer was 2"):
        sender.encode(DataStart(1))
    receiver.feed(sender.encode(DataStart(2)))
    with pytest.raises(TransferProtocolError, match="3 bytes of 'a' are still"):
        sender.encode(Digest(bytes(32)))
    with pytest.raises(TransferProtocolError, match="4 bytes sent, 3 were left"):
        sender.sent(4)
    # a sender that sends one byte too many: the receiver sees a bad record after the data
    with pytest.raises(TransferProtocolError, match="must be followed by its digest"):
        receiver.feed(b"abcX" + b"D\0\0\0\x20" + bytes(32))
    cut = Receiver()
    cut.encode(Hello())
    cut.feed(encode_hello() + header_bytes(FileHeader("a", 5)))
    cut.encode(Offer(OfferAction.ACCEPT))
    cut.feed(b"S\0\0\0\x08" + bytes(8) + b"ab")
    with pytest.raises(TransferProtocolError, match="ended 3 bytes before"):
        cut.feed(b"")


def test_receiver_out_of_turn() -> None:
    receiver = Receiver()
    with pytest.raises(TransferProtocolError, match="greeting comes first"):
        receiver.encode(Offer(OfferAction.ACCEPT))
    receiver.encode(Hello())
    with pytest.raises(TransferProtocolError, match="offer for no header"):
        receiver.encode(Offer(OfferAction.ACCEPT))
    with pytest.raises(TransferProtocolError, match="verdict for no file"):
        receiver.encode(Verdict(VerdictKind.OK))
    with pytest.raises(TransferProtocolError, match="last word"):
        receiver.encode(Finished(0, 0))
    receiver.feed(encode_hello() + header_bytes(FileHeader("d", kind=Kind.DIRECTORY)))
    with pytest.raises(TransferProtocolError, match="cannot accept"):
        receiver.encode(Offer(OfferAction.ACCEPT))


def test_a_stream_that_ends_before_the_end_is_an_error() -> None:
    receiver = Receiver()
    receiver.feed(encode_hello())
    with pytest.raises(TransferProtocolError, match="before the end of the transfer"):
        receiver.feed(b"")
    sender = Sender()
    sender.encode(Hello())
    with pytest.raises(TransferProtocolError, match="before the end"):
        sender.feed(b"")


def test_the_greeting_names_the_digest() -> None:
    hello = encode_hello()
    assert hello == b"WCXF\x02\0\0\x06blake3"
    assert DIGEST_NAME == "blake3"
    receiver = Receiver()
    assert receiver.feed(hello[:9]) == []  # a greeting cut inside its name waits for the rest
    assert receiver.feed(hello[9:]) == [Hello(2, "blake3")]
    sender = Sender()
    sender.encode(Hello())
    with pytest.raises(TransferProtocolError, match="the receiver hashes with 'md5'"):
        sender.feed(encode_hello(digest="md5"))
    with pytest.raises(TransferProtocolError, match="a digest name of 33 bytes"):
        Sender().encode(Hello(digest="x" * 33))
