"""The error tree: distinct exit codes, one-line messages with hints."""

from __future__ import annotations

import errno
import socket

import pytest

from wirecat import errors
from wirecat.sockets import translate_os_error


def test_exit_codes_tell_the_kinds_apart() -> None:
    codes = {
        errors.UsageError: 2,
        errors.ResolveError: 3,
        errors.ConnectError: 4,
        errors.BindError: 5,
        errors.ConnectTimeout: 6,
        errors.IdleTimeout: 6,
        errors.PeerReset: 7,
        errors.Truncated: 8,
        errors.ProgramError: 9,
    }
    for cls, code in codes.items():
        assert cls("x").exit_code == code


def test_message_and_hint_make_one_line() -> None:
    assert str(errors.ConnectError("refused", "check the port")) == "refused: check the port"
    assert str(errors.ConnectError("refused", "")) == "refused"


@pytest.mark.parametrize(
    ("code", "action", "cls"),
    [
        (errno.ECONNREFUSED, "connect to", errors.ConnectError),
        (errno.EHOSTUNREACH, "connect to", errors.ConnectError),
        (errno.ETIMEDOUT, "connect to", errors.ConnectTimeout),
        (errno.EADDRINUSE, "listen on", errors.BindError),
        (errno.EACCES, "listen on", errors.BindError),
        (errno.ECONNRESET, "receive from", errors.PeerReset),
        (errno.EPIPE, "send to", errors.PeerReset),
    ],
)
def test_os_errors_translate(code: int, action: str, cls: type[errors.WirecatError]) -> None:
    translated = translate_os_error(OSError(code, "x"), action, "127.0.0.1:1")
    assert type(translated) is cls
    assert "\n" not in str(translated)


def test_resolver_errors_translate() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert isinstance(translate_os_error(exc, "connect to", "x:1"), errors.ResolveError)
