"""The process's standard descriptors, as the jobs use them.

* :func:`ensure_standard_fds` runs first thing in the CLI: a descriptor 0, 1
  or 2 that the caller closed (``wirecat ... <&-``) is opened on /dev/null,
  so the first socket we create cannot land on fd 0 and be read as stdin.
  A closed stdin then simply reads as empty: end of input, FIN sent. A
  closed stdout or stderr is opened *read-only*, so that it still holds its
  number but every write fails (EBADF) as it would have: what a peer sends is
  never dropped into /dev/null in silence (``>&-`` is exit 9, one line).
* :func:`write_stdout` writes all of a chunk, and turns a closed stdout
  (``| head``) into :class:`StdoutClosed`, which the jobs end on quietly.
"""

from __future__ import annotations

import errno
import os

from wirecat.errors import ProgramError

__all__ = [
    "StdoutClosed",
    "ensure_standard_fds",
    "fd_is_open",
    "print_out",
    "read_stdin",
    "stdin_error",
    "stdout_error",
    "write_stdout",
]


class StdoutClosed(Exception):
    """stdout went away (``| head``): the job ends quietly, exit 0."""


def fd_is_open(fd: int) -> bool:
    """Whether ``fd`` refers to an open file."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def ensure_standard_fds() -> None:
    """Open /dev/null on whichever of fds 0, 1 and 2 is closed: readable for 0,
    read-only for 1 and 2 too, so that writing there fails as on a closed one."""
    for fd in (0, 1, 2):
        if not fd_is_open(fd):
            null = os.open(os.devnull, os.O_RDONLY)
            if null != fd:  # lower fds were open, so os.open picked a higher one
                os.dup2(null, fd)
                os.close(null)


def write_stdout(data: memoryview | bytes) -> None:
    """Write all of ``data`` to fd 1.

    Raises:
        StdoutClosed: the reader of stdout is gone (EPIPE).
        ProgramError: any other write error (a full disk: never silent; exit 9).
    """
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(1, view) :]
    except BrokenPipeError:
        raise StdoutClosed from None
    except OSError as exc:
        raise stdout_error(exc) from exc


def read_stdin(size: int) -> bytes | None:
    """One read of fd 0: bytes, ``b""`` at its end, None when a non-blocking stdin has nothing now.

    Raises:
        ProgramError: stdin cannot be read (exit 9), never taken for its end.
    """
    try:
        return os.read(0, size)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise stdin_error(exc) from exc


def stdin_error(exc: OSError) -> ProgramError:
    """The error for a failed read of stdin, in the words every job uses."""
    return ProgramError(f"cannot read standard input: {_reason(exc)}").caused_by(exc)


def stdout_error(exc: OSError) -> ProgramError:
    """The error for a failed write to stdout (other than EPIPE), in the words every job uses."""
    reason = "it is closed" if exc.errno == errno.EBADF else _reason(exc)
    return ProgramError(f"cannot write standard output: {reason}").caused_by(exc)


def print_out(text: str) -> None:
    """Write ``text`` to stdout now (the CLI's own output: help, explain, demo, scan).

    Through fd 1, not ``sys.stdout``, which is None when Python started with
    fd 1 closed.

    Raises:
        StdoutClosed: the reader went away (``| head``): end quietly.
        ProgramError: stdout cannot be written (closed, a full disk): exit 9.
    """
    write_stdout(text.encode(errors="replace"))


def _reason(exc: OSError) -> str:
    return str(exc.strerror or exc).lower()
