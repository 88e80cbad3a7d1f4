"""Named limits and defaults, each with the reason for its value, and the check of a duration."""

from __future__ import annotations

import math

from wirecat.errors import UsageError

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_BULK_CHUNK",
    "DEFAULT_CLIENT_QUEUE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_FRAME_TIMEOUT",
    "DEFAULT_HAPPY_EYEBALLS_DELAY",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_FRAME",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_PROGRAMS",
    "DEFAULT_PIPE_SIZE",
    "DEFAULT_RECEIVE_QUEUE",
    "DEFAULT_SCAN_CONCURRENCY",
    "DEFAULT_SCAN_TIMEOUT",
    "DEFAULT_SEND_QUEUE",
    "DEFAULT_UDP_IDLE",
    "MAX_DATAGRAM",
    "MAX_SECONDS",
    "check_seconds",
]

#: Programs run at once by ``listen -k --exec``: each connection is a process
#: (memory, a process slot), not a few KiB, so this limit is its own; ncat's
#: ``--max-conns`` default is also 100.
DEFAULT_MAX_PROGRAMS = 100
#: listen() backlog: the kernel clamps it to net.core.somaxconn (4096 on Linux ≥5.4).
#: It is the queue of connections waiting for accept(), not a client limit.
DEFAULT_BACKLOG = 128
#: RFC 8305 §5 recommends 250 ms between connection attempts.
DEFAULT_HAPPY_EYEBALLS_DELAY = 0.25
#: Bulk I/O size. ≥128 KiB measured fastest here; ncat and socat use 8 KiB and are slower.
DEFAULT_BULK_CHUNK = 1024 * 1024
#: Pipe buffer asked of F_SETPIPE_SZ for splice(); 1 MiB is the default
#: /proc/sys/fs/pipe-max-size, so unprivileged users get it too.
DEFAULT_PIPE_SIZE = 1024 * 1024
#: Bytes of stdin queued for one client of ``listen -k``; over it, stdin pauses
#: until the slowest client catches up. Memory is bounded by about
#: max-conns × (this + one 256 KiB read): at most 512 MiB at the defaults, and
#: only if a thousand clients all stop reading at once.
DEFAULT_CLIENT_QUEUE = 256 * 1024
#: Largest UDP payload sent from one stdin read: the IPv4 maximum (65535 - 20 - 8).
MAX_DATAGRAM = 65507
#: Seconds a UDP listener keeps a silent peer's session.
DEFAULT_UDP_IDLE = 60.0
#: Ports probed at once by ``scan``; well under the default 1024 open files.
DEFAULT_SCAN_CONCURRENCY = 256
#: Seconds ``scan`` waits for one port before calling it filtered.
DEFAULT_SCAN_TIMEOUT = 1.0
#: Longest line of ``Lines`` framing: asyncio's StreamReader limit is the same
#: 64 KiB ("a security feature", as its source says), ample for any text protocol.
DEFAULT_MAX_LINE = 64 * 1024
#: Largest frame of ``LengthPrefixed`` framing: gRPC's default maximum received
#: message is 4 MiB too. A header can announce 4 GiB; we never buffer that.
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
#: Received frames held for a handler that has not asked for them; reading
#: from that socket pauses above it (asyncio streams pause at 2 × 64 KiB).
DEFAULT_RECEIVE_QUEUE = 1024 * 1024
#: Concurrent connections of every server: ``listen -k``, the library's
#: ``serve``, echo, chat, broker, the relay (and UDP peers or sessions). nginx's
#: worker_connections is 512 by default, 1024 in its sample configuration.
#: (``--exec`` runs a process per connection: DEFAULT_MAX_PROGRAMS.)
DEFAULT_MAX_CONNECTIONS = 1024
#: Seconds a server connection may stay silent both ways before it is closed:
#: a slowloris client holds a slot for at most this long. nginx closes idle
#: keep-alive connections after 75 s; five minutes leaves chat users time to think.
DEFAULT_IDLE_TIMEOUT = 300.0
#: Seconds a frame (a line, a length-prefixed message, a PROXY header) may
#: take from its first byte to its last. Every byte restarts the idle clock, so
#: without this a client dripping a byte now and then (slowloris) holds its
#: slot for ever; web servers bound a request header the same way (Apache's
#: mod_reqtimeout: 20 s, then 1 s more per 500 bytes up to 40 s; HAProxy
#: recommends 10 s). 30 s lets a 4 MiB frame (DEFAULT_MAX_FRAME) arrive at
#: 140 kB/s, and a person type a line in a character-at-a-time client.
DEFAULT_FRAME_TIMEOUT = 30.0
#: Seconds a graceful shutdown (SIGINT/SIGTERM) lets busy handlers finish
#: before their connections are closed. Handlers idle between frames end at once.
DEFAULT_DRAIN_TIMEOUT = 10.0
#: Bytes queued for one slow chat or broker client before it is disconnected:
#: on loopback the kernel buffers several MiB more before this one fills.
DEFAULT_SEND_QUEUE = 1024 * 1024
#: Seconds a relay waits for its target to accept a connection: socat and
#: ncat wait for the kernel's own (about two minutes); a relay should give up
#: sooner and tell its client at once.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds a TLS handshake may take, from the accept (server) or the
#: connect (client). A handshake is a few round trips and a signature: on
#: any live link it takes well under a second; a client that sends nothing,
#: or drips its ClientHello, is cut at this bound and holds no slot. HAProxy's
#: `timeout client` is commonly 10 s; asyncio's own default (60 s) lets 1024
#: idle sockets hold a server for a minute.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

#: The longest duration any timeout takes: 11.6 days. Past about 24.8 days
#: (2^31 ms) the operating system's waits overflow (threading, poll); nothing
#: useful needs more, and a value this big is a slip (a port or a byte count).
MAX_SECONDS = 1_000_000.0


def check_seconds(value: object, what: str, *, none_ok: bool = True) -> float | None:
    """A duration argument checked: a number from 0 to :data:`MAX_SECONDS`, or None where allowed.

    Raises:
        UsageError: (also a ``ValueError``) not a number, negative, NaN, infinite,
            too large, or None where a number is needed.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"bad {what} {value!r}: give a number of seconds")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0 or seconds > MAX_SECONDS:
        raise UsageError(
            f"bad {what} {value!r}", f"give a number of seconds from 0 to {MAX_SECONDS:g} (11 days)"
        )
    return seconds
