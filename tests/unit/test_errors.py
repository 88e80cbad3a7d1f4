"""The error tree: distinct exit codes, one-line messages with hints."""

from __future__ import annotations

import errno
import socket

import pytest

from wirecat import errors
from wirecat.sockets import Op, translate_os_error


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
    ("code", "op", "cls"),
    [
        (errno.ECONNREFUSED, Op.CONNECT, errors.ConnectError),
        (errno.EHOSTUNREACH, Op.CONNECT, errors.ConnectError),
        (errno.ETIMEDOUT, Op.CONNECT, errors.ConnectTimeout),
        (errno.EADDRINUSE, Op.LISTEN, errors.BindError),
        (errno.EACCES, Op.LISTEN, errors.BindError),
        (errno.ECONNRESET, Op.RECEIVE, errors.PeerReset),
        (errno.EPIPE, Op.SEND, errors.PeerReset),
        (errno.ENOTCONN, Op.SEND, errors.PeerReset),
        (errno.ENOENT, Op.CONNECT, errors.ConnectError),
        (errno.EACCES, Op.CONNECT, errors.NetworkError),  # permission to listen is another matter
    ],
)
def test_os_errors_translate(code: int, op: Op, cls: type[errors.WirecatError]) -> None:
    exc = OSError(code, "x")
    translated = translate_os_error(exc, op, "127.0.0.1:1")
    assert type(translated) is cls
    assert "\n" not in str(translated)
    assert translated.__cause__ is exc  # the errno stays reachable


@pytest.mark.parametrize("op", [Op.RECEIVE, Op.SEND, Op.TALK])
def test_a_timeout_on_an_open_connection_is_not_a_connect_timeout(op: Op) -> None:
    """ETIMEDOUT while receiving is the kernel giving up on the peer: no -w would help."""
    translated = translate_os_error(OSError(errno.ETIMEDOUT, "x"), op, "127.0.0.1:1")
    assert type(translated) is errors.Timeout
    assert translated.setting == ""
    assert "timed out" in translated.message


def test_tls_errors_are_looked_at_first() -> None:
    import ssl

    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    translated = translate_os_error(exc, Op.CONNECT, "127.0.0.1:1")
    assert isinstance(translated, errors.TLSError)
    assert translated.message == "the server 127.0.0.1:1 did not answer TLS: is it plain TCP?"
    assert translated.__cause__ is exc


def test_resolver_errors_translate() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert isinstance(translate_os_error(exc, Op.CONNECT, "x:1"), errors.ResolveError)
