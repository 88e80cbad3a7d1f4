"""Fuzz the file-transfer state machines (wirecat.protocol.transfer).

Feeds each machine inputs made from valid conversations, mutated (bytes
flipped, inserted, deleted, cut, records spliced), and plain random bytes,
in random chunks; the receiver answers every header as a real one would
(accept at a random offset, refuse, skip, done). Any exception but
``TransferProtocolError`` is a bug: the script stops and prints the input.

    python benchmarks/fuzz_transfer.py --inputs 1000000 --seconds 600

Prints the number of inputs, how many were refused with the module's own
error, and the rate. Deterministic for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time

from wirecat.errors import TransferProtocolError
from wirecat.protocol.transfer import (
    DataStart,
    Digest,
    End,
    FileHeader,
    Hello,
    Kind,
    Offer,
    OfferAction,
    Receiver,
    Sender,
    Verdict,
    VerdictKind,
)


def valid_streams(rng: random.Random) -> tuple[bytes, bytes]:
    """(what a sender sends, what a receiver answers) for a random small transfer."""
    sender, receiver = Sender(), Receiver()
    items = []
    for index in range(rng.randint(0, 4)):
        kind = rng.choice(list(Kind))
        data = rng.randbytes(rng.randint(0, 40)) if kind is Kind.FILE else b""
        target = "t" * rng.randint(1, 5) if kind is Kind.SYMLINK else ""
        items.append(
            (FileHeader(f"d/f{index}é", len(data), 0o644, rng.randint(0, 2**40), kind, target), data)
        )
    out = sender.encode(Hello()) + b"".join(sender.encode(h) for h, _ in items)
    receiver.feed(out)
    back = receiver.encode(Hello())
    accepted = []
    for header, data in items:
        if header.kind is not Kind.FILE:
            back += receiver.encode(Offer(OfferAction.DONE))
        elif rng.random() < 0.2:
            back += receiver.encode(Offer(OfferAction.REFUSE, reason="exists"))
        else:
            offset = rng.randint(0, len(data))
            back += receiver.encode(Offer(OfferAction.ACCEPT, offset, hashlib.sha256(data[:offset]).digest()))
            accepted.append((data, offset))
    sender.feed(back)
    flight = b""
    for data, offset in accepted:
        start = rng.choice([0, offset])
        flight += sender.encode(DataStart(start))
        sender.sent(len(data) - start)
        flight += data[start:] + sender.encode(Digest(hashlib.sha256(data).digest()))
    flight += sender.encode(End(len(items)))
    receiver.feed(flight)
    for _ in accepted:
        back += receiver.encode(Verdict(VerdictKind.OK, bytes(32)))
    back += receiver.encode(receiver.finished())
    return out + flight, back


def mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        position = rng.randint(0, len(buffer))
        if choice == 0 and buffer:
            buffer[position % len(buffer)] ^= 1 << rng.randrange(8)
        elif choice == 1:
            buffer[position:position] = rng.randbytes(rng.randint(1, 8))
        elif choice == 2:
            del buffer[position : position + rng.randint(1, 8)]
        elif choice == 3:
            del buffer[position:]
        elif choice == 4 and buffer:
            buffer[position % len(buffer)] = rng.choice([0, 255, 0x7F, ord("H"), ord("S")])
        elif choice == 5 and len(buffer) > 8:
            start = rng.randrange(len(buffer) - 4)
            buffer[position:position] = buffer[start : start + rng.randint(1, 30)]
    return bytes(buffer)


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        size = rng.choice([1, 2, 5, 17, 64, len(data)])
        out.append(data[start : start + size])
        start += size
    return out


def run_receiver(rng: random.Random, data: bytes) -> None:
    receiver = Receiver(max_record=512, max_files=50)
    receiver.encode(Hello())
    for chunk in [*chunks(rng, data), b""]:
        events = receiver.feed(chunk)
        while True:
            answered = False
            for event in events:
                if isinstance(event, FileHeader):
                    if event.kind is not Kind.FILE:
                        receiver.encode(Offer(OfferAction.DONE))
                    elif rng.random() < 0.2:
                        receiver.encode(Offer(OfferAction.SKIP, reason="skip"))
                    else:
                        receiver.encode(Offer(OfferAction.ACCEPT, rng.randint(0, event.size)))
                    answered = True
                elif isinstance(event, Digest):
                    receiver.encode(Verdict(VerdictKind.OK))
            if not answered:
                break
            events = receiver.pending()


def run_sender(rng: random.Random, data: bytes) -> None:
    sender = Sender(max_record=512)
    sender.encode(Hello())
    for index in range(rng.randint(0, 3)):
        sender.encode(FileHeader(f"f{index}", rng.randint(0, 50)))
    for chunk in [*chunks(rng, data), b""]:
        sender.feed(chunk)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus = [valid_streams(rng) for _ in range(200)]
    start = time.monotonic()
    count = refused = 0
    while count < args.inputs and time.monotonic() - start < args.seconds:
        forward, back = rng.choice(corpus)
        roll = rng.random()
        if roll < 0.05:
            data = rng.randbytes(rng.randint(0, 200))
        elif roll < 0.1:
            data = b"WCXF\x01\0\0\0" + rng.randbytes(rng.randint(0, 200))
        else:
            data = mutate(rng, forward if roll < 0.75 else back)
        try:
            if roll < 0.75 or roll < 0.1:
                run_receiver(rng, data)
            else:
                run_sender(rng, data)
        except TransferProtocolError:
            refused += 1
        except Exception:
            print(f"BUG after {count} inputs: {data!r}", file=sys.stderr)
            raise
        count += 1
    elapsed = time.monotonic() - start
    print(
        f"{count} inputs in {elapsed:.1f} s ({count / elapsed:,.0f}/s): {refused} refused with"
        f" TransferProtocolError, {count - refused} accepted, 0 other exceptions"
    )
    return 0 if count >= args.inputs else 1


if __name__ == "__main__":
    sys.exit(main())
