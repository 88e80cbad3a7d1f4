"""Zero-copy byte moving, and the kernel's quirks with it, in one place.

Both byte engines move bytes with ``splice(2)`` when they can: the blocking
pump (:mod:`wirecat.pump`, one thread per direction: connect, listen,
``--exec``) and the relay's event-loop engine (:mod:`wirecat.forwarding.engine`).
What the kernel does that they must both get right lives here, once:

* **A private pipe.** ``splice`` needs a pipe on one side, so socket to socket
  (or to a file) goes socket → pipe → destination. The pipe is grown to
  :data:`~wirecat.limits.DEFAULT_PIPE_SIZE` (1 MiB, the default
  ``fs.pipe-max-size``, so any user gets it) with ``F_SETPIPE_SZ``: fewer,
  larger splices. Where that is refused the 64 KiB default stays.
* **The urgent mark.** ``splice()`` from a TCP socket stops at the urgent mark
  of a ``MSG_OOB`` byte: it says ``EAGAIN`` while ``poll()`` says readable (a
  spinning core), or ``0`` once the peer's FIN is in (the bytes after the mark
  lost, the stream taken for ended). One ``read()`` passes the mark (dropping
  the urgent byte, as nc and socat do) or confirms the end:
  :func:`read_past_urgent_mark`.
* **Refusals.** Some files and devices refuse ``splice`` with ``EINVAL`` (a
  file opened ``O_APPEND``, ``>> log``), ``sendfile`` with ``EINVAL`` or
  ``ENOSYS``; before any byte moved that means "copy instead", never an error:
  :func:`refused`.

A TLS endpoint has no descriptor the kernel may splice (the bytes must be
encrypted in user space): the engines splice only when both ends offer one
(:attr:`wirecat.endpoint.Endpoint.zero_copy_fds`).
"""

from __future__ import annotations

import errno
import os
from typing import Final

from wirecat.limits import DEFAULT_PIPE_SIZE

__all__ = [
    "HAS_SPLICE",
    "SPLICE_FLAGS",
    "URGENT_STEP",
    "grow_pipe",
    "open_pipe",
    "read_past_urgent_mark",
    "refused",
]

#: splice(2) exists (Linux).
HAS_SPLICE: Final = hasattr(os, "splice")
#: SPLICE_F_NONBLOCK makes the pipe side non-blocking; a socket side must be
#: non-blocking itself (O_NONBLOCK), or splice() would hold the pipe's lock
#: while it waits for the socket (see wirecat.pump).
SPLICE_FLAGS: Final = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
#: Bytes one read() takes to step over TCP's urgent mark.
URGENT_STEP: Final = 64 * 1024
#: fcntl.F_SETPIPE_SZ (Linux ≥ 2.6.35); fcntl names it only on 3.10+ Linux.
_F_SETPIPE_SZ: Final = 1031
_F_GETPIPE_SZ: Final = 1032


def grow_pipe(fd: int, size: int = DEFAULT_PIPE_SIZE) -> int:
    """Ask for a larger pipe buffer (fewer, larger splices); return the size it has. Best effort."""
    import fcntl

    try:
        return int(fcntl.fcntl(fd, _F_SETPIPE_SZ, size))
    except OSError:  # EPERM above pipe-max-size, or EBUSY: keep what it has
        try:
            return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))
        except OSError:
            return 64 * 1024


def open_pipe(*, nonblocking: bool) -> tuple[int, int, int]:
    """A private pipe for socket → pipe → destination: (read end, write end, capacity in bytes)."""
    flags = os.O_CLOEXEC | (os.O_NONBLOCK if nonblocking else 0)
    read_end, write_end = os.pipe2(flags)
    return read_end, write_end, grow_pipe(write_end)


def refused(exc: OSError, *, moved_any: bool) -> bool:
    """Whether ``exc`` is the kernel refusing zero-copy here (copy instead), not a real error."""
    return not moved_any and exc.errno in (errno.EINVAL, errno.ENOSYS)


def read_past_urgent_mark(fd: int, size: int = URGENT_STEP) -> bytes:
    """One ``read()`` where ``splice()`` stopped: past TCP's urgent mark, or the real end.

    ``b""`` is the end of the stream. The urgent byte itself is dropped, as
    ``read()`` drops it for nc and socat too.

    Raises:
        BlockingIOError: nothing after all (a spurious wake-up).
        OSError: the read failed.
    """
    return os.read(fd, size)
