"""``--exec`` and ``--sh-exec``: a program behind a socket (inetd, ``ncat -e``), done safely.

The program's stdin and stdout are pipes joined to the connection by the same
session as ``connect``/``listen`` (so the same lifetime rule):

* what the peer sends goes to the program's stdin; the peer's end of stream
  closes the program's stdin, so a program that reads until EOF then answers
  works (``sort``, ``wc``); if the program stops reading, the rest is dropped
  and its output still goes out;
* the program's stdout goes to the peer; its end (the program closed stdout
  or exited) half-closes the socket (FIN), after everything it wrote;
* stderr stays on wirecat's stderr unless ``--exec-stderr`` sends it to the
  peer too;
* no shell unless ``--sh-exec`` is used; the program gets the peer in its
  environment: ``WIRECAT_PEER_ADDR``, ``WIRECAT_PEER_PORT``,
  ``WIRECAT_LOCAL_ADDR``, ``WIRECAT_LOCAL_PORT``.

Safe by default: a listener with ``--exec`` bound to anything but loopback
must say who may connect (``--allow``); :func:`check_exposure` refuses
otherwise. A program that does not exist is refused before listening.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from wirecat.access import AccessList
from wirecat.address import Address, format_sockaddr
from wirecat.bind import bind
from wirecat.errors import ProgramError, UsageError, WirecatError
from wirecat.events import Accepted, Listening, Note, emit
from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT
from wirecat.options import ListenOptions
from wirecat.report import Reporter, quiet
from wirecat.session import SessionOptions, SessionResult, run_session, session_closed
from wirecat.sockets import abort, accept_one

if TYPE_CHECKING:
    from wirecat.tls import ServerTLS
    from wirecat.tls_endpoint import TLSEndpoint

__all__ = ["Program", "ProgramResult", "ProgramServer", "check_exposure", "listen_programs", "run_program"]

#: Seconds a program may take to exit once both directions are done, before
#: it gets SIGTERM (and as long again before SIGKILL).
_EXIT_GRACE = 5.0


class Program(NamedTuple):
    """The program to run for a connection.

    Attributes:
        argv: the program and its arguments (``--exec PROG ARGS...``), or
            ``["/bin/sh", "-c", COMMAND]`` for ``--sh-exec``.
        stderr_to_peer: ``--exec-stderr``: the program's stderr goes to the
            peer too (merged with stdout).
    """

    argv: tuple[str, ...]
    stderr_to_peer: bool = False

    @classmethod
    def from_flags(
        cls, exec_argv: list[str] | None, sh_exec: str | None, *, stderr_to_peer: bool
    ) -> Program | None:
        """The Program the flags ask for, or None; checks that it can be run.

        Raises:
            UsageError: both flags, or an empty command (exit 2).
            ProgramError: a program that does not exist or cannot be run
                (exit 9, "bad local resource", as a file that cannot be
                opened); checked before any listening or connecting.
        """
        if exec_argv is not None and sh_exec is not None:
            raise UsageError("--exec and --sh-exec cannot go together", "give one of them")
        if sh_exec is not None:
            if not sh_exec.strip():
                raise UsageError("--sh-exec needs a command", 'e.g. --sh-exec "tr a-z A-Z"')
            return cls(("/bin/sh", "-c", sh_exec), stderr_to_peer)
        if exec_argv is None:
            if stderr_to_peer:
                raise UsageError("--exec-stderr needs --exec or --sh-exec")
            return None
        if not exec_argv:
            raise UsageError("--exec needs a program", "e.g. --exec /bin/cat (it must come last)")
        path = exec_argv[0]
        found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
        if found is None or os.path.isdir(found):
            # The command line was well formed: what is wrong is a file on
            # this machine, the same kind of failure as a program the kernel
            # will not start (run_program), hence ProgramError and not usage.
            if os.sep in path and os.path.isdir(path):
                raise ProgramError(f"cannot run {path!r}: it is a directory", "give the program inside it")
            if os.sep in path and os.path.exists(path):
                raise ProgramError(
                    f"cannot run {path!r}: it is not an executable file", "check its permissions"
                )
            raise ProgramError(f"program {path!r} not found", "give a full path, or check PATH")
        return cls((found, *exec_argv[1:]), stderr_to_peer)

    def __str__(self) -> str:
        return " ".join(self.argv[2:] if self.argv[:2] == ("/bin/sh", "-c") else self.argv)


class ProgramResult(NamedTuple):
    """How a connection with a program went: the session, and the program's exit status."""

    session: SessionResult
    #: As subprocess gives it: the exit status, or -N when signal N ended it.
    returncode: int

    @property
    def exit_code(self) -> int:
        """The status for wirecat to exit with: the program's own, or 128 + N
        when signal N killed it, as a shell reports it (never 256 - N)."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode


def check_exposure(hosts: list[str], access: AccessList, *, unix: bool) -> None:
    """Refuse ``--exec`` on a listener reachable from the network without ``--allow``.

    Only allow rules count: a deny list still lets everyone else in.

    Raises:
        UsageError: a non-loopback address and no allow rule.
    """
    if unix or access.allow:
        return
    for host in hosts:
        try:
            is_loopback = ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
        except ValueError:
            is_loopback = host == "localhost"
        if not is_loopback:
            raise UsageError(
                f"refusing to run a program for anyone who connects to {host}",
                "say who may connect with --allow ADDR[/BITS], or listen on 127.0.0.1",
            )


def _environment(connection: socket.socket | TLSEndpoint) -> dict[str, str]:
    env = dict(os.environ)
    if isinstance(connection, socket.socket):
        sock = connection
    else:
        sock = connection.socket
        der = connection.peer_certificate
        if der is not None:  # mutual TLS: who the client proved to be
            from wirecat.tls import fingerprint

            env["WIRECAT_PEER_CERT_SUBJECT"] = connection.peer_subject or ""
            env["WIRECAT_PEER_CERT_SHA256"] = fingerprint(der).removeprefix("sha256:")
    for prefix, getter in (("PEER", sock.getpeername), ("LOCAL", sock.getsockname)):
        try:
            address = getter()
        except OSError:
            continue
        if isinstance(address, tuple):
            env[f"WIRECAT_{prefix}_ADDR"] = str(address[0])
            env[f"WIRECAT_{prefix}_PORT"] = str(address[1])
        else:
            env[f"WIRECAT_{prefix}_ADDR"] = format_sockaddr(address)
            env[f"WIRECAT_{prefix}_PORT"] = ""
    return env


def run_program(
    sock: socket.socket | TLSEndpoint,
    program: Program,
    *,
    peer: str,
    options: SessionOptions = SessionOptions(),
    report: Reporter = quiet,
    processes: set[subprocess.Popen[bytes]] | None = None,
) -> ProgramResult:
    """Run ``program`` with its stdin and stdout joined to ``sock``; wait for it to exit.

    The socket is left open (the caller closes it). ``processes``, if given,
    holds the program's process while it runs (for a server to stop them all).
    A :class:`~wirecat.tls_endpoint.TLSEndpoint` (handshake done) runs the
    program over TLS; a peer's certificate is in its environment
    (``WIRECAT_PEER_CERT_SUBJECT``, ``WIRECAT_PEER_CERT_SHA256``).
    """
    # Our own pipes, so that we own the raw descriptors we hand to the session.
    made: list[int] = []
    try:
        made.extend(os.pipe2(os.O_CLOEXEC))
        made.extend(os.pipe2(os.O_CLOEXEC))
        to_program_r, to_program_w, from_program_r, from_program_w = made
        process = subprocess.Popen(
            program.argv,
            stdin=to_program_r,
            stdout=from_program_w,
            stderr=subprocess.STDOUT if program.stderr_to_peer else None,
            env=_environment(sock),
            close_fds=True,
            # Its own process group, so that stopping it reaches what it
            # started too (`a | b` under --sh-exec): they hold its pipes.
            process_group=0,
        )
    except OSError as exc:
        for fd in made:
            os.close(fd)
        # It passed the checks before listening, yet the kernel would not run
        # it (a broken executable, a missing #! interpreter): the peer gets
        # no program, and a reset, not an empty answer.
        abort(sock) if isinstance(sock, socket.socket) else sock.abort()
        raise ProgramError(
            f"cannot run {program}: {(exc.strerror or str(exc)).lower()}",
            "check that it is a working program for this machine",
        ) from exc
    os.close(to_program_r)  # the program's ends: only the program holds them now
    os.close(from_program_w)
    if processes is not None:
        processes.add(process)
    report(f"started {program} (pid {process.pid}) for {peer}")
    input_open = [True]

    def close_input() -> None:
        if input_open[0]:
            input_open[0] = False
            os.close(to_program_w)

    def end_program() -> None:
        # The session ended early: stop the program, so that its pipes close
        # and the pumps waiting on them wake up before we close our ends.
        _stop(process)

    result: SessionResult | None = None
    try:
        result = run_session(
            sock,
            peer=peer,
            options=options,
            stdin_fd=from_program_r,
            stdout_fd=to_program_w,
            output_is_program=True,
            on_peer_eof=close_input,
            on_abort=end_program,
        )
    finally:
        if result is None:
            _stop(process)  # a signal or an error: no grace period for its output
        returncode = _wait(process, report)
        if processes is not None:
            processes.discard(process)
        if result is not None and result.pumps_running:
            # Something the program started still holds its pipes and a pump
            # waits on them: closing our ends would let a reused descriptor
            # number catch bytes meant for this connection. Leave them.
            report(f"{program}: its pipes stay open, held by a process that outlived it")
            if isinstance(sock, socket.socket):  # (a TLS session has no pump threads)
                sock.detach()  # and the socket's number stays taken too: the caller's close is a no-op
        else:
            close_input()
            os.close(from_program_r)
    emit(session_closed(result, peer, "exec"))
    report(f"{program} exited with status {returncode}")
    return ProgramResult(result, returncode)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the program's process group: itself and what it started.

    Only while the program is not reaped (a zombie still holds its pid, so the
    group id cannot be anyone else's); afterwards this does nothing.
    """
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # all of them are gone already


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM its group, then SIGKILL after a grace period: the program is reaped when this returns."""
    if process.returncode is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(_EXIT_GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _wait(process: subprocess.Popen[bytes], report: Reporter) -> int:
    """The program's exit status; one that lingers after its output ended is stopped."""
    try:
        return process.wait(_EXIT_GRACE)
    except subprocess.TimeoutExpired:
        pass
    report(f"pid {process.pid} did not exit {_EXIT_GRACE:g} s after its output ended; stopping it")
    _stop(process)
    return process.wait()


class ProgramServer:
    """``listen -k --exec``: one program per connection, in a thread each.

    Used by :func:`wirecat.apps.listen.listen_programs`.
    """

    def __init__(
        self,
        program: Program,
        options: SessionOptions,
        report: Reporter,
        *,
        tls: ServerTLS | None = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.program = program
        self.options = options
        self.report = report
        self._lock = threading.Lock()
        self._active: set[threading.Thread] = set()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._sockets: set[socket.socket] = set()
        self.served = 0

    @property
    def active(self) -> int:
        """Connections being served now (the accept loop holds them against the limit)."""
        with self._lock:
            return len(self._active)

    def start(self, sock: socket.socket, peer: str) -> None:
        """Serve ``sock`` in a new thread (the caller's accept loop applied the limit)."""
        thread = threading.Thread(target=self._serve, args=(sock, peer), name=f"exec {peer}", daemon=True)
        with self._lock:
            self._active.add(thread)
        thread.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        with self._lock:
            self._sockets.add(sock)
        try:
            with sock:
                connection = _secured(sock, self.tls, peer, self.handshake_timeout, self.report)
                run_program(
                    connection,
                    self.program,
                    peer=peer,
                    options=self.options,
                    report=self.report,
                    processes=self._processes,
                )
        except WirecatError as exc:  # one connection's failure must not end the server
            emit(Note(f"{peer}: {exc}", "warning", "exec"))  # -v or not: every client may fail the same way
        except Exception as exc:
            emit(Note(f"{peer}: {exc!r}", "error", "exec"))
        finally:
            with self._lock:
                self._sockets.discard(sock)
                self._active.discard(threading.current_thread())
                self.served += 1

    def stop(self, *, announce: bool = False) -> None:
        """End every connection and program still running (the server is ending), and its thread.

        The connections are reset (so no session waits for its peer, and no
        peer takes the cut for an end), the programs get SIGTERM, and SIGKILL
        if still there after the grace period. ``announce`` says, on stderr,
        how many connections were cut.
        """
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._active)
        for sock in sockets:
            # Cut off: a reset tells each peer so (a FIN would say "that was
            # all"), and wakes the session's pumps waiting on the socket.
            abort(sock)
        if sockets and announce:
            n = len(sockets)
            emit(Note(f"stopped: {n} connection{'s' if n != 1 else ''} cut off (reset)", "warning", "exec"))
        for process in list(self._processes):
            _signal_group(process, signal.SIGTERM)
        for process in list(self._processes):
            _stop(process)
        deadline = time.monotonic() + _EXIT_GRACE
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _secured(
    sock: socket.socket, tls: ServerTLS | None, peer: str, timeout: float | None, report: Reporter
) -> socket.socket | TLSEndpoint:
    """``sock`` itself, or with ``tls`` a TLS endpoint over it, its handshake done (within ``timeout``)."""
    if tls is None:
        return sock
    from wirecat.tls_endpoint import secure

    endpoint = secure(sock, tls, server_side=True, timeout=timeout, peer=peer, report=report)
    return endpoint


def listen_programs(
    address: Address,
    program: Program,
    options: ListenOptions = ListenOptions(),
    session: SessionOptions = SessionOptions(),
    *,
    tls: ServerTLS | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    report: Reporter = quiet,
    on_listening: Callable[[list[str]], None] | None = None,
) -> ProgramResult | None:
    """Listen on ``address`` and run ``program`` for each client (``--exec``).

    One client by default: returns its :class:`ProgramResult`. With
    ``keep_open``, one program per connection at once, up to ``max_conns``
    (more are refused and logged), until interrupted; programs still running
    then get SIGTERM. With ``tls``, each client's handshake comes first
    (bounded by ``handshake_timeout``); under ``keep_open`` a client that
    fails it is logged in one line and the server goes on.
    """
    with bind(address, family=options.family, numeric=options.numeric) as bound:
        listeners = bound.sockets
        emit(Listening(tuple(bound.names), "exec"))
        if on_listening is not None:
            on_listening(bound.names)
        if options.keep_open:
            server = ProgramServer(program, session, report, tls=tls, handshake_timeout=handshake_timeout)
            try:
                while True:
                    sock, peer = accept_one(
                        listeners,
                        options.admission,
                        active=lambda: server.active,
                        keepalive=options.keepalive,
                        report=report,
                        origin="exec",
                    )
                    emit(Accepted(peer, bound.names[0], server.active + 1, "exec"))
                    server.start(sock, peer)
            except (KeyboardInterrupt, SystemExit):
                server.stop(announce=True)  # a signal: say what it cut
                raise
            finally:
                server.stop()
        sock, peer = accept_one(
            listeners,
            options.admission,
            timeout=options.accept_timeout,
            keepalive=options.keepalive,
            report=report,
            origin="exec",
        )
    with sock:
        emit(Accepted(peer, bound.names[0], 1, "exec"))
        connection = _secured(sock, tls, peer, handshake_timeout, report)
        return run_program(connection, program, peer=peer, options=session, report=report)
