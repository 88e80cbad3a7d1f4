"""The one binder: where every wirecat server listens, and how its sockets are made.

``listen`` (one client, ``-k``, ``--exec``, UDP), ``echo``/``chat``/``broker``,
the relay (stream and UDP) and the library's ``serve()`` all bind with
:func:`bind`, so these rules live here once:

* **the default host** is loopback in the family asked for: ``127.0.0.1``,
  or ``::1`` with ``-6`` (``AF_INET6``); nothing listens on every interface
  unless an address says so (:func:`default_host`, :func:`listen_address`);
* ``-4``/``-6`` (the ``family``) limit what a host name resolves to;
* every address the host resolves to gets a socket; IPv6 sockets are
  IPv6-only, so ``::`` and ``0.0.0.0`` can be bound side by side;
* **port 0** is the kernel's pick, the same port on every address, and
  :attr:`Bound.names` says which (``127.0.0.1:40123``): servers print it;
* ``SO_REUSEADDR``, so a restart does not fail while old connections sit in
  TIME_WAIT; ``reuse_port`` (``SO_REUSEPORT``) is the place for several
  worker processes on one port;
* **Unix socket files**: a file left by a listener that died is replaced
  (said under ``-v``: a Note of origin ``bind``), a live socket or any other
  file never; the file is removed on close.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from types import TracebackType

from wirecat.address import Address, as_address, check_unix_path, format_hostport, format_sockaddr
from wirecat.errors import BindError, ProgramError, UsageError
from wirecat.events import Note, emit
from wirecat.limits import DEFAULT_BACKLOG
from wirecat.resolve import resolve
from wirecat.sockets import Op, translate_os_error
from wirecat.trace import new_socket

__all__ = [
    "DEFAULT_HOST",
    "Bound",
    "bind",
    "bind_listeners",
    "bind_unix",
    "check_backlog",
    "default_host",
    "listen_address",
]

#: Where a server listens when no host is given: loopback, so nothing is exposed unless asked.
DEFAULT_HOST = "127.0.0.1"


def default_host(family: socket.AddressFamily = socket.AF_UNSPEC) -> str:
    """The host a server listens on when none is given: loopback, in ``family`` (-6: ``::1``)."""
    return "::1" if family == socket.AF_INET6 else DEFAULT_HOST


def listen_address(
    address: str | int | Address, *, family: socket.AddressFamily = socket.AF_UNSPEC
) -> Address:
    """An address to listen on, from any form the API takes; no host means :func:`default_host`.

    ``8080``, ``"8080"``, ``":8080"``, ``"host:8080"``, ``"[::1]:8080"``,
    ``"unix:/path"``, ``"udp:8080"`` or an :class:`~wirecat.address.Address`.

    Raises:
        UsageError: a malformed address.
    """
    address = as_address(address, port_alone=True)
    if not address.is_unix and not address.host:
        address = address._replace(host=default_host(family))
    return address


class Bound:
    """Listening sockets made by :func:`bind`.

    ``close()`` (or leaving a ``with`` block) closes them and removes a Unix socket file.
    """

    def __init__(self, sockets: list[socket.socket], unix_path: str | None) -> None:
        #: The sockets, one per address the host resolved to (one for a Unix path).
        self.sockets = sockets
        #: The Unix socket file to remove on close, or None.
        self.unix_path = unix_path
        #: Each socket's address with the real port (``127.0.0.1:40123``, ``unix:/path``).
        self.names = [format_sockaddr(sock.getsockname()) for sock in sockets]

    def close(self) -> None:
        """Close every socket and remove the Unix socket file. Idempotent."""
        for sock in self.sockets:
            sock.close()
        if self.unix_path is not None:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass
            self.unix_path = None

    def __enter__(self) -> Bound:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_backlog(value: object) -> int:
    """A ``backlog`` argument checked: a whole number from 0 to 65535 (the kernel
    clamps it to ``net.core.somaxconn`` anyway).

    Raises:
        UsageError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise UsageError(f"bad backlog {value!r}", "give a whole number from 0 to 65535")
    return value


def bind(
    address: str | int | Address,
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    backlog: int = DEFAULT_BACKLOG,
    blocking: bool = True,
    reuse_port: bool = False,
    numeric: bool = False,
) -> Bound:
    """Bind (and for streams, listen on) ``address``: the one way every server starts.

    Args:
        address: any form :func:`listen_address` takes; ``udp:`` (or an
            Address with ``datagram``) binds datagram sockets.
        family: ``AF_INET``/``AF_INET6`` for ``-4``/``-6``; it also picks the
            default host.
        backlog: the ``listen()`` queue (not a client limit).
        blocking: False for sockets an event loop will watch.
        reuse_port: set ``SO_REUSEPORT``, so that several processes may
            listen on the same port (the kernel spreads connections).
        numeric: the host must be an IP address (``-n``): no lookup.

    Raises:
        UsageError, ResolveError, BindError, ProgramError.
    """
    target = listen_address(address, family=family)
    check_backlog(backlog)
    if target.is_unix:
        sockets = [bind_unix(target, backlog=backlog)]
        path = target.sockaddr_path
        unix_path = None if path.startswith("\0") else path
    else:
        sockets = bind_listeners(
            target.host,
            target.port,
            family=family,
            datagram=target.datagram,
            backlog=backlog,
            reuse_port=reuse_port,
            numeric=numeric,
        )
        unix_path = None
    for sock in sockets:
        sock.setblocking(blocking)
    return Bound(sockets, unix_path)


def bind_listeners(
    host: str,
    port: int,
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    datagram: bool = False,
    backlog: int = DEFAULT_BACKLOG,
    reuse_port: bool = False,
    numeric: bool = False,
) -> list[socket.socket]:
    """Bind (and for streams, listen on) every address ``host`` resolves to.

    ``host`` must be given (:func:`bind` supplies loopback). ``SO_REUSEADDR`` is set so a
    restart does not fail while old connections sit in TIME_WAIT; IPv6
    sockets are IPv6-only, so ``::`` and ``0.0.0.0`` can be bound side by side.
    With port 0 and several addresses, all of them get the port the kernel
    picked for the first.

    Raises:
        ResolveError, BindError.
    """
    endpoints = resolve(host, port, family=family, datagram=datagram, passive=True, numeric=numeric)
    kind = socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM
    listeners: list[socket.socket] = []
    try:
        for endpoint in endpoints:
            sock = new_socket(endpoint.family, kind)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if endpoint.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sockaddr = endpoint.sockaddr
            if port == 0 and len(listeners) > 1:
                sockaddr = (sockaddr[0], listeners[0].getsockname()[1], *sockaddr[2:])
            try:
                sock.bind(sockaddr)
                if not datagram:
                    sock.listen(backlog)
            except OSError as exc:
                raise translate_os_error(exc, Op.LISTEN, format_hostport(sockaddr[0], sockaddr[1])) from exc
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def _listed_as_bound(path: str) -> bool | None:
    """Whether Linux's /proc/net/unix lists a socket bound to ``path``.

    None when it cannot tell: no /proc, or an entry with the same file name
    under another spelling (a relative path bound from another directory).
    """
    try:
        with open("/proc/net/unix") as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        return None
    absolute, name, unsure = os.path.abspath(path), os.path.basename(path), False
    for row in rows:
        fields = row.split(None, 7)
        if len(fields) == 8:
            if fields[7] in (path, absolute):
                return True
            unsure = unsure or os.path.basename(fields[7]) == name
    return None if unsure else False


def _is_live_socket(path: str, kind: int) -> bool:
    """Whether a listener is alive on ``path``.

    /proc/net/unix first: a connect() probe would be accepted, as its one
    client, by a live one-shot listener (``wirecat listen unix:PATH``), which
    would then end. The probe is the fallback where /proc cannot tell.
    """
    listed = _listed_as_bound(path)
    if listed is not None:
        return listed
    probe = new_socket(socket.AF_UNIX, kind)  # a real connect(): --trace shows it
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_unix(address: Address, *, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """Bind (and for streams, listen on) a Unix socket.

    A socket file left by a listener that died is replaced: we remove it only
    if no socket is bound to it (see :func:`_is_live_socket`). A live socket or any
    other kind of file is never removed. The caller removes the file on exit.

    Raises:
        BindError: the path is in use by a live listener, or cannot be created.
        ProgramError: the path is a regular file or a directory.
    """
    check_unix_path(address.path or "")
    kind = socket.SOCK_DGRAM if address.datagram else socket.SOCK_STREAM
    path = address.sockaddr_path
    if not path.startswith("\0"):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(mode):
                raise ProgramError(
                    f"{path} exists and is not a socket", "remove it yourself or choose another path"
                )
            if _is_live_socket(path, kind):
                raise BindError(
                    f"another listener is using {address}", "stop it first, or choose another path"
                )
            os.unlink(path)  # stale: its listener is gone
            # Under -v: a file was removed, and the user may wonder where it went.
            emit(Note(f"replaced the stale socket file {path} (no listener was using it)", origin="bind"))
    sock = new_socket(socket.AF_UNIX, kind)
    try:
        sock.bind(path)
        if not address.datagram:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise BindError(f"cannot listen on {address}: {reason.lower()}", _path_hint(exc)) from exc
    return sock


def _path_hint(exc: OSError) -> str | None:
    """What to do about an error on a Unix socket path (the port hints do not fit)."""
    return {
        errno.ENOENT: "its directory does not exist: create it, or choose another path",
        errno.EACCES: "no permission there: choose a directory you may write to",
        errno.EROFS: "the file system is read-only: choose another path",
        errno.ENAMETOOLONG: "Unix socket paths are limited to 107 bytes: choose a shorter one",
    }.get(exc.errno or 0)
