"""wirecat.transfer end to end on loopback: real files in temporary directories."""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from wirecat.errors import (
    ChecksumMismatch,
    IdleTimeout,
    PeerReset,
    TransferError,
    TransferProtocolError,
    UnsafePath,
    UsageError,
)
from wirecat.protocol.transfer import (
    DataStart,
    Digest,
    End,
    FileHeader,
    Hello,
    Kind,
    Offer,
    OfferAction,
    Sender,
    Verdict,
)
from wirecat.transfer import TransferResult, part_name, receive_files, send_files


class Receiving:
    """receive_files in a thread: its port, then its result or error."""

    def __init__(self, directory: Path, **settings: Any) -> None:
        self.ready = threading.Event()
        self.address = ""
        self.result: TransferResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(directory, settings), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the receiver did not start listening"

    def _listening(self, names: list[str]) -> None:
        self.address = names[0]
        self.ready.set()

    def _run(self, directory: Path, settings: dict[str, Any]) -> None:
        try:
            self.result = receive_files(directory, 0, on_listening=self._listening, timeout=20, **settings)
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def wait(self) -> TransferResult:
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def tree_of(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Each path under root: (kind, mode, mtime_ns or 0 for links, content hash or target)."""
    out: dict[str, tuple[str, int, int, str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[name] = ("link", 0, st.st_mtime_ns, os.readlink(path))
        elif path.is_dir():
            out[name] = ("dir", st.st_mode & 0o7777, st.st_mtime_ns, "")
        else:
            out[name] = (
                "file",
                st.st_mode & 0o7777,
                st.st_mtime_ns,
                blake3(path.read_bytes()).hexdigest(),
            )
    return out


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    source, target = tmp_path / "from", tmp_path / "to"
    source.mkdir()
    target.mkdir()
    return source, target


def transfer_files(paths: list[Path], target: Path, **settings: Any) -> tuple[TransferResult, TransferResult]:
    receiving = Receiving(target, **settings)
    sent = send_files(paths, receiving.address)
    return sent, receiving.wait()


def test_a_tree_with_modes_mtimes_links_and_empties(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    tree = source / "tree"
    (tree / "sub" / "empty dir").mkdir(parents=True)
    (tree / "sub" / "deeper").mkdir()
    (tree / "a.txt").write_bytes(b"hello\n")
    (tree / "empty").write_bytes(b"")
    (tree / "sub" / "deeper" / "bin").write_bytes(os.urandom(300_000))
    (tree / "ünïcödé name.txt").write_bytes(b"\x00\xff")
    (tree / "script").write_bytes(b"#!/bin/sh\n")
    os.chmod(tree / "script", 0o751)
    os.chmod(tree / "a.txt", 0o600)
    os.symlink("a.txt", tree / "link")
    os.symlink("../a.txt", tree / "sub" / "uplink")
    os.chmod(tree / "sub" / "deeper", 0o700)
    for i, path in enumerate(sorted(tree.rglob("*"), reverse=True)):
        os.utime(
            path,
            ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i * 1000),
            follow_symlinks=False,
        )
    os.utime(tree, ns=(1, 1_500_000_000_123_456_789))
    sent, received = transfer_files([tree], target)
    assert sent.ok
    assert received.ok
    assert tree_of(target) == {"tree": tree_of(source)["tree"], **tree_of(source)}
    assert [r.name for r in sent.files] == [r.name for r in received.files]  # in the order sent
    digests = {r.name: r.digest for r in received.files if r.kind == "file"}
    assert digests["tree/a.txt"] == blake3(b"hello\n").hexdigest()
    assert not list(target.rglob("*.wirecat-part"))


def test_a_large_file(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    big = source / "big.bin"
    block = random.Random(1).randbytes(1 << 20)
    with big.open("wb") as f:
        for i in range(256):
            f.write(block[i:] + block[:i])
    sent, received = transfer_files([big], target)
    assert sent.ok
    assert received.ok
    assert sent.files[0].digest == blake3(big.read_bytes()).hexdigest()
    assert (target / "big.bin").read_bytes() == big.read_bytes()


def test_a_2_gib_file(dirs: tuple[Path, Path]) -> None:
    """The issue's size: 2 GiB arrive exact. Sparse with random blocks strewn in, so the
    source costs no time to write while the bytes that cross still differ everywhere."""
    source, target = dirs
    big = source / "big.bin"
    rng = random.Random(2)
    with big.open("wb") as f:
        f.truncate(2 << 30)
        for _ in range(64):
            f.seek(rng.randrange(0, (2 << 30) - (1 << 20)))
            f.write(rng.randbytes(1 << 20))
    sent, received = transfer_files([big], target)
    assert sent.ok
    assert received.ok
    assert received.bytes == 2 << 30
    expected = blake3(max_threads=blake3.AUTO)
    with big.open("rb") as f:
        while chunk := f.read(64 << 20):
            expected.update(chunk)
    assert sent.files[0].digest == expected.hexdigest()
    got = blake3(max_threads=blake3.AUTO)
    with (target / "big.bin").open("rb") as f:
        while chunk := f.read(64 << 20):
            got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()


def test_many_small_files_and_a_deep_tree(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    many = source / "many"
    many.mkdir()
    for i in range(2100):
        (many / f"f{i:05d}").write_bytes(os.urandom(i % 5000))
    deep = source / "deep"
    path = deep
    for level in range(60):
        path = path / f"level{level}"
    path.mkdir(parents=True)
    (path / "bottom.txt").write_bytes(b"bottom")
    sent, received = transfer_files([many, deep], target)
    assert sent.ok
    assert received.ok
    assert len(received.files) == 1 + 2100 + 1 + 60 + 1
    assert tree_of(target) == tree_of(source)


@pytest.mark.parametrize(
    ("policy", "content", "extra"),
    [
        ("overwrite", b"new", []),
        ("skip", b"old", []),
        ("rename", b"old", ["a (1).txt", "a (2).txt"]),
    ],
)
def test_overwrite_policies(dirs: tuple[Path, Path], policy: str, content: bytes, extra: list[str]) -> None:
    source, target = dirs
    (source / "a.txt").write_bytes(b"new")
    (target / "a.txt").write_bytes(b"old")
    if policy == "rename":
        (target / "a (1).txt").write_bytes(b"older")
    sent, received = transfer_files([source / "a.txt"], target, policy=policy)
    assert sent.ok
    assert received.ok
    assert (target / "a.txt").read_bytes() == content
    assert sorted(p.name for p in target.iterdir()) == sorted(["a.txt", *extra])
    if policy == "rename":
        assert (target / "a (2).txt").read_bytes() == b"new"
        assert received.files[0].saved_as == "a (2).txt"
    if policy == "skip":
        assert sent.files[0].verdict == "skipped"


def test_an_existing_file_is_refused_by_default(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    (source / "a.txt").write_bytes(b"new")
    (source / "b.txt").write_bytes(b"b")
    (target / "a.txt").write_bytes(b"old")
    sent, _received = transfer_files([source / "a.txt", source / "b.txt"], target)
    assert not sent.ok
    assert [r.verdict for r in sent.files] == ["refused", "ok"]
    assert "exists" in sent.files[0].reason
    assert (target / "a.txt").read_bytes() == b"old"
    assert (target / "b.txt").read_bytes() == b"b"
    with pytest.raises(TransferError, match=r"1 of 2 not delivered: a\.txt: refused"):
        sent.check()


def test_max_size(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    (source / "small").write_bytes(b"x" * 10)
    (source / "large").write_bytes(b"x" * 11)
    sent, _ = transfer_files([source / "small", source / "large"], target, max_size=10)
    assert [r.verdict for r in sent.files] == ["ok", "refused"]
    assert "over the receiver's limit of 10" in sent.files[1].reason
    assert not (target / "large").exists()


def test_udp_and_off_loopback_are_refused(dirs: tuple[Path, Path]) -> None:
    source, _ = dirs
    (source / "a").write_bytes(b"a")
    with pytest.raises(UsageError, match="needs a stream, not UDP"):
        send_files([source / "a"], "udp:127.0.0.1:9")
    with pytest.raises(UsageError, match="a transfer off loopback runs over TLS"):
        send_files([source / "a"], "192.0.2.1:9")  # refused before any connection is tried
    with pytest.raises(UsageError, match="plain and TLS cannot go together"):
        send_files([source / "a"], "127.0.0.1:9", plain=True, tls=True)


def test_tls_with_a_pin(dirs: tuple[Path, Path]) -> None:
    from wirecat import tls

    source, target = dirs
    (source / "a").write_bytes(os.urandom(3_000_000))
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    server = tls.ServerTLS(
        tls.server_context(certificate=certificate), certificate.fingerprint, ephemeral=True
    )
    receiving = Receiving(target, tls=server)
    client = tls.ClientTLS(tls.client_context(pin=certificate.fingerprint), pin=certificate.fingerprint)
    sent = send_files([source / "a"], receiving.address, tls=client)
    assert sent.ok
    assert receiving.wait().ok
    assert (target / "a").read_bytes() == (source / "a").read_bytes()


# -- a hand-made sender that lies --------------------------------------------------------------
class Liar:
    """A sender made of the sans-IO encoder, over a real socket, that can say anything."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=20)
        self.machine = Sender()
        self.sock.sendall(self.machine.encode(Hello()))
        self.events: list[object] = []

    def headers(self, *headers: FileHeader) -> list[Offer]:
        self.sock.sendall(b"".join(self.machine.encode(h) for h in headers))
        return [e for e in self.until(lambda: self.machine.unanswered == 0) if isinstance(e, Offer)]

    def until(self, done: Callable[[], bool]) -> list[object]:
        events: list[object] = []
        while not done():
            data = self.sock.recv(65536)
            if not data:
                break
            events += self.machine.feed(data)
        return events

    def file(self, data: bytes, *, digest: bytes | None = None, start: int = 0) -> None:
        self.sock.sendall(self.machine.encode(DataStart(start)))
        self.machine.sent(len(data) - start)
        self.sock.sendall(data[start:])
        self.sock.sendall(self.machine.encode(Digest(digest or blake3(data).digest())))

    def end(self, count: int) -> list[object]:
        self.sock.sendall(self.machine.encode(End(count)))
        return self.until(lambda: self.machine.finished is not None)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (FileHeader("../evil", 1), "'..' component"),
        (FileHeader("a/../../evil", 1), "'..' component"),
        (FileHeader("/tmp/evil", 1), "absolute"),
        (FileHeader("C:evil", 1), "drive letter"),
        (FileHeader("evil\x00.txt", 1), "control character"),
        (FileHeader("evil\x1b[2J", 1), "control character"),
        (FileHeader("x" * 256, 1), "over 255 bytes"),
        (FileHeader("up", kind=Kind.SYMLINK, target="../.."), "outside"),
        (FileHeader("abs", kind=Kind.SYMLINK, target="/etc"), "absolute"),
    ],
)
def test_unsafe_names_are_refused_end_to_end(dirs: tuple[Path, Path], header: FileHeader, why: str) -> None:
    _, target = dirs
    receiving = Receiving(target)
    liar = Liar(receiving.address)
    offers = liar.headers(header, FileHeader("fine.txt", 2))
    assert offers[0].action is OfferAction.REFUSE
    assert why in offers[0].reason
    assert offers[1].action is OfferAction.ACCEPT
    liar.file(b"ok")
    liar.end(2)
    liar.close()
    result = receiving.wait()
    assert [r.verdict for r in result.files] == ["refused", "ok"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["from", "to"]  # nothing outside
    assert [p.name for p in target.iterdir()] == ["fine.txt"]
    with pytest.raises(UnsafePath):
        result.check()


def test_a_planted_symlink_and_a_normalisation_twin(dirs: tuple[Path, Path]) -> None:
    _, target = dirs
    receiving = Receiving(target)
    liar = Liar(receiving.address)
    offers = liar.headers(
        FileHeader("door", kind=Kind.SYMLINK, target="."),
        FileHeader("door/x", 1),
        FileHeader("caf\u00e9", 1),
        FileHeader("cafe\u0301", 1),
    )
    assert [o.action for o in offers] == [
        OfferAction.DONE,
        OfferAction.REFUSE,
        OfferAction.ACCEPT,
        OfferAction.REFUSE,
    ]
    assert "passes through the symlink" in offers[1].reason
    assert "Unicode normalisation" in offers[3].reason
    liar.file(b"1")
    liar.end(4)
    liar.close()
    receiving.wait()


def test_a_symlink_already_on_disk_is_not_followed_out(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    _, target = dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, target / "escape")
    receiving = Receiving(target)
    liar = Liar(receiving.address)
    offers = liar.headers(FileHeader("escape/x", 1))
    assert offers[0].action is OfferAction.REFUSE
    assert "symlink out of the target directory" in offers[0].reason
    liar.end(1)
    liar.close()
    receiving.wait()
    assert list(outside.iterdir()) == []


def test_a_digest_lie_discards_the_part(dirs: tuple[Path, Path]) -> None:
    _, target = dirs
    receiving = Receiving(target)
    liar = Liar(receiving.address)
    liar.headers(FileHeader("a", 5))
    liar.file(b"hello", digest=bytes(32))
    events = liar.end(1)
    verdicts = [e for e in events if isinstance(e, Verdict)]
    assert verdicts[0].kind.name == "MISMATCH"
    assert verdicts[0].digest == blake3(b"hello").digest()
    liar.close()
    result = receiving.wait()
    assert result.files[0].verdict == "mismatch"
    assert list(target.iterdir()) == []
    with pytest.raises(ChecksumMismatch):
        result.check()


@pytest.mark.parametrize("extra", [b"!", b""])
def test_size_lies_either_way(dirs: tuple[Path, Path], extra: bytes) -> None:
    _, target = dirs
    receiving = Receiving(target)
    liar = Liar(receiving.address)
    liar.headers(FileHeader("a", 10))
    liar.sock.sendall(liar.machine.encode(DataStart(0)))
    body = b"0123456789" + extra if extra else b"012345678"  # one byte more, or one less
    liar.sock.sendall(body + b"D" + (32).to_bytes(4, "big") + bytes(32))
    liar.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(TransferProtocolError):
        receiving.wait()
    liar.close()
    assert list(target.iterdir()) == []  # the part is discarded: it came from a liar


def test_a_stalled_sender_times_out(dirs: tuple[Path, Path]) -> None:
    _, target = dirs
    receiving = Receiving(target, idle_timeout=0.5)
    liar = Liar(receiving.address)
    liar.headers(FileHeader("a", 10))
    liar.sock.sendall(liar.machine.encode(DataStart(0)) + b"0123")
    with pytest.raises(IdleTimeout):
        receiving.wait()
    liar.close()


@pytest.mark.parametrize("seed", range(6))
def test_a_killed_sender_then_resume(dirs: tuple[Path, Path], seed: int) -> None:
    source, target = dirs
    rng = random.Random(seed)
    size = rng.choice([1000, 300_000, 3_000_000])
    data = rng.randbytes(size)
    (source / "f.bin").write_bytes(data)
    cut = rng.randrange(1, size)
    receiving = Receiving(target)
    liar = Liar(receiving.address)
    liar.headers(FileHeader("f.bin", size))
    liar.sock.sendall(liar.machine.encode(DataStart(0)) + data[:cut])
    liar.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    liar.close()  # a reset, as when the sender is killed
    with pytest.raises((TransferProtocolError, PeerReset)):
        receiving.wait()
    part = target / part_name("f.bin")
    assert part.stat().st_size <= cut
    held = part.stat().st_size
    if seed % 3 == 2:  # a part that is not a prefix of the file: the sender starts over
        with part.open("r+b") as f:
            f.write(b"\xff" * min(10, held))
    sent, received = transfer_files([source / "f.bin"], target)
    assert sent.ok
    assert received.ok
    expected = 0 if seed % 3 == 2 and held else held
    assert received.files[0].resumed_from == expected
    assert (target / "f.bin").read_bytes() == data
    assert not part.exists()
    if expected == 0:
        assert received.bytes == size
    else:
        assert received.bytes == size - held


def test_killed_twenty_times_then_whole(dirs: tuple[Path, Path]) -> None:
    """One file, its sender killed 20 times at random points: each try resumes where the last
    left off (the receiver's offer), and the file that lands is exact."""
    source, target = dirs
    rng = random.Random(20)
    size = 4_000_000
    data = rng.randbytes(size)
    (source / "f.bin").write_bytes(data)
    part = target / part_name("f.bin")
    offsets = []
    for _ in range(20):
        receiving = Receiving(target)
        liar = Liar(receiving.address)
        (offer,) = liar.headers(FileHeader("f.bin", size))
        assert offer.action == OfferAction.ACCEPT
        assert offer.offset == (part.stat().st_size if part.exists() else 0)
        assert offer.prefix_digest == (blake3(data[: offer.offset]).digest() if offer.offset else bytes(32))
        offsets.append(offer.offset)
        cut = rng.randrange(offer.offset + 1, size)  # never the whole file
        liar.sock.sendall(liar.machine.encode(DataStart(offer.offset)) + data[offer.offset : cut])
        liar.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        liar.close()  # a reset, as when the sender is killed
        with pytest.raises((TransferProtocolError, PeerReset)):
            receiving.wait()
        assert part.stat().st_size <= cut
    assert offsets == sorted(offsets)  # what was held is never lost
    assert offsets[-1] > 0
    held = part.stat().st_size
    sent, received = transfer_files([source / "f.bin"], target)
    assert sent.ok
    assert received.ok
    assert received.files[0].resumed_from == held
    assert (target / "f.bin").read_bytes() == data
    assert not part.exists()


def test_no_resume_starts_over(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    (source / "f").write_bytes(b"abcdef")
    (target / part_name("f")).write_bytes(b"abc")
    sent, received = transfer_files([source / "f"], target, resume=False)
    assert sent.ok
    assert received.bytes == 6
    assert (target / "f").read_bytes() == b"abcdef"


def test_part_file_names_are_the_receivers_own(dirs: tuple[Path, Path]) -> None:
    _, target = dirs
    receiving = Receiving(target)
    liar = Liar(receiving.address)
    offers = liar.headers(FileHeader(".a.wirecat-part", 1))
    assert offers[0].action is OfferAction.REFUSE
    assert "the receiver's own" in offers[0].reason
    liar.end(1)
    liar.close()
    receiving.wait()


def test_a_file_another_sender_is_sending_is_refused(dirs: tuple[Path, Path]) -> None:
    from wirecat import transfer

    source, target = dirs
    (source / "a").write_bytes(b"a")
    busy = os.path.join(os.path.realpath(target), part_name("a"))
    transfer._IN_USE.add(busy)  # as a concurrent transfer of recv -k holds it
    try:
        sent, _ = transfer_files([source / "a"], target)
    finally:
        transfer._IN_USE.discard(busy)
    assert sent.files[0].verdict == "refused"
    assert "another sender" in sent.files[0].reason
    sent, _ = transfer_files([source / "a"], target)
    assert sent.ok


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only: elsewhere the test is skipped)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_file_larger_than_the_free_space_is_refused_before_a_byte(
    dirs: tuple[Path, Path], small_disk: Path
) -> None:
    source, _ = dirs
    (source / "big").write_bytes(b"x" * 2_000_000)
    (source / "small").write_bytes(b"y" * 1000)
    sent, received = transfer_files([source / "big", source / "small"], small_disk)
    assert [r.verdict for r in sent.files] == ["refused", "ok"]
    assert "no space" in sent.files[0].reason
    assert sorted(p.name for p in small_disk.iterdir()) == ["small"]
    assert not received.ok


def test_a_disk_that_fills_up_while_writing(small_disk: Path) -> None:
    receiving = Receiving(small_disk)
    liar = Liar(receiving.address)
    data = os.urandom(700_000)
    offers = liar.headers(FileHeader("a", len(data)), FileHeader("b", 3))
    assert offers[0].action is OfferAction.ACCEPT
    (small_disk / "filler").write_bytes(b"f" * 600_000)  # someone else takes the space meanwhile
    liar.file(data)
    liar.file(b"abc")
    events = liar.end(2)
    verdicts = [e for e in events if isinstance(e, Verdict)]
    assert [v.kind.name for v in verdicts] == ["FAILED", "OK"]
    assert "no space left on device" in verdicts[0].reason
    liar.close()
    result = receiving.wait()
    assert [r.verdict for r in result.files] == ["failed", "ok"]
    assert sorted(p.name for p in small_disk.iterdir()) == ["b", "filler"]  # the part was discarded


def test_many_long_refusals_between_large_files_do_not_stall(dirs: tuple[Path, Path]) -> None:
    """Both ends write while the other writes (answers against data): a batch's
    answers must fit in the socket buffers, however long the names refused."""
    source, target = dirs
    tree = source / "tree"
    tree.mkdir()
    for i in range(300):
        (tree / (f"{i:03d}\x01" + "n" * 240)).write_bytes(b"x")  # refused: a control character
        if i % 50 == 0:
            (tree / f"{i:03d}big").write_bytes(os.urandom(3_000_000))
    sent, received = transfer_files([tree], target)
    verdicts = [r.verdict for r in sent.files]
    assert verdicts.count("refused") == 300
    assert verdicts.count("ok") == 1 + 6
    assert [r.verdict for r in received.files] == verdicts
    assert all(len(r.reason) < 200 for r in sent.files)
