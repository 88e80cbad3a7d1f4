"""Errors that help (issue 12): each names the real problem, and the nearest command or flag.

Every case asserts the whole of stderr: one ``wirecat: …`` line (the message,
then what to do) and the documented exit code. No test looks a name up in
the real DNS: where a name must fail to resolve, a child Python replaces
``getaddrinfo`` with a stand-in that knows only the names the test gives it.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import WIRECAT, run_wirecat
from tests.integration.test_connect import TIMEOUT, Peer
from wirecat.testing import free_port, read_line_matching

pytestmark = pytest.mark.timeout(60)

COMMANDS = ["connect", "listen", "echo", "chat", "broker", "relay", "scan", "demo", "explain"]


def assert_error(argv: list[str], code: int, line: str) -> None:
    """``wirecat ARGV`` prints exactly ``line`` (and nothing else) and exits ``code``."""
    result = run_wirecat(*argv)
    assert (result.returncode, result.stderr.decode(), result.stdout) == (code, line + "\n", b"")


#: Runs wirecat's CLI in a child Python whose resolver knows only NAMES (each an
#: address), and whose services database only SERVICES: nothing asks the real ones.
STAND_IN_SHIM = r"""
import json, socket, sys
names, services = json.loads(sys.argv[1]), json.loads(sys.argv[2])
_real = socket.getaddrinfo
def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    name = host.decode() if isinstance(host, bytes) else host
    if name is None or flags & socket.AI_NUMERICHOST:
        return _real(host, port, family, type, proto, flags)
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
    except OSError:
        if name not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return _real(names[name], port, family, type, proto, flags | socket.AI_NUMERICHOST)
    return _real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
def _getservbyname(name, protocol=None):
    if name in services:
        return services[name]
    raise OSError("service/proto not found")
socket.getaddrinfo, socket.getservbyname = _getaddrinfo, _getservbyname
from wirecat.cli import main
sys.exit(main(sys.argv[3:]))
"""


def stand_in_argv(
    *args: str, names: dict[str, str] | None = None, services: dict[str, int] | None = None
) -> list[str]:
    return [sys.executable, "-c", STAND_IN_SHIM, json.dumps(names or {}), json.dumps(services or {}), *args]


def run_stand_in(
    *args: str,
    names: dict[str, str] | None = None,
    services: dict[str, int] | None = None,
    stdin: bytes = b"",
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        stand_in_argv(*args, names=names, services=services),
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )


# -- unknown commands -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["conect", "127.0.0.1", "9000"], "wirecat: unknown command 'conect': did you mean 'connect'?"),
        (["exlpain", "recv"], "wirecat: unknown command 'exlpain': did you mean 'explain'?"),
        (["-v", "lsiten", "-k", "9000", "x"], "wirecat: unknown command 'lsiten': did you mean 'listen'?"),
        (
            ["frobnicate"],
            "wirecat: unknown command 'frobnicate': see 'wirecat --help' for the commands; to connect to"
            " host 'frobnicate', give a port too",
        ),
        (["frob", "ni", "cate"], "wirecat: unknown command 'frob': see 'wirecat --help' for the commands"),
    ],
)
def test_a_word_that_is_no_command_nor_a_host_and_port(argv: list[str], line: str) -> None:
    assert_error(argv, 2, line)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        # Two words are a host and a port: what is wrong with them is said, not "unknown command".
        (
            ["localhost", "nosuchservice"],
            "wirecat: bad port 'nosuchservice': no such service in /etc/services: give a number from 1 to"
            " 65535, or a service name such as http",
        ),
        (
            ["myhost", "99999"],
            "wirecat: bad port '99999': give a number from 0 to 65535, or a service name such as http",
        ),
    ],
)
def test_a_host_and_a_bad_port_is_about_the_port(argv: list[str], line: str) -> None:
    assert_error(argv, 2, line)


def test_a_mistyped_command_that_can_be_a_host_is_tried_as_one_then_named() -> None:
    # `wirecat lisen 9000` is `nc lisen 9000`: a host may have any name. When
    # none has this one, the error names the command it was close to.
    result = run_stand_in("lisen", "9000")
    assert (result.returncode, result.stderr.decode()) == (
        3,
        "wirecat: unknown host 'lisen': 'lisen' is not a command either:"
        " did you mean 'wirecat listen 9000'?\n",
    )


def test_a_host_named_like_a_command_is_still_a_host() -> None:
    """`wirecat broker1 1883` connects to the host broker1: nc's spelling is not broken."""
    with Peer(lambda conn, peer: conn.sendall(b"from broker1\n")) as peer:
        result = run_stand_in("broker1", str(peer.port), names={"broker1": "127.0.0.1"})
    assert (result.returncode, result.stdout) == (0, b"from broker1\n"), result.stderr


def test_an_unknown_host_far_from_any_command_keeps_its_hint() -> None:
    result = run_stand_in("nosuchhost", "80")
    assert (result.returncode, result.stderr.decode()) == (
        3,
        "wirecat: unknown host 'nosuchhost': check the spelling, or give an IP address\n",
    )


def test_no_arguments_shows_the_commands_then_one_error_line() -> None:
    result = run_wirecat()
    lines = result.stderr.decode().splitlines()
    assert (result.returncode, result.stdout) == (2, b"")
    assert "commands:" in lines
    assert any(line.startswith("  connect ") for line in lines)
    assert lines[-1] == (
        "wirecat: no command given: e.g. 'wirecat connect HOST PORT' or 'wirecat listen PORT';"
        " see 'wirecat --help'"
    )


def test_no_arguments_under_json_is_json_only() -> None:
    result = run_wirecat("--json")
    assert (result.returncode, result.stdout) == (2, b"")
    (line,) = result.stderr.decode().splitlines()  # no help text in a JSON stream
    event = json.loads(line)
    assert (event["event"], event["exit_code"]) == ("error", 2)
    assert event["message"].startswith("no command given: ")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["-v"],
            "wirecat: no command given: e.g. 'wirecat connect HOST PORT' or 'wirecat listen PORT';"
            " see 'wirecat --help'",
        ),
        (
            ["9000"],
            "wirecat: no host to connect to on port 9000: write 'wirecat connect HOST 9000'; to wait for"
            " clients on it, 'wirecat listen 9000'",
        ),
        (
            ["connect", ":9000"],
            "wirecat: no host to connect to on port 9000: write 'wirecat connect HOST 9000'; to wait for"
            " clients on it, 'wirecat listen 9000'",
        ),
        (
            ["connect", "--exec", "cat", "127.0.0.1", "9"],
            "wirecat: connect needs HOST PORT before --exec: everything after --exec is the program's:"
            " e.g. wirecat connect HOST PORT --exec PROG",
        ),
        (
            ["-l", "--exec", "cat"],
            "wirecat: listen needs PORT before --exec: everything after --exec is the program's:"
            " e.g. wirecat listen PORT --exec PROG",
        ),
        (
            ["explain", "recv", "send"],
            "wirecat: unexpected 'send' after the arguments of explain: see 'wirecat explain --help'",
        ),
    ],
)
def test_nothing_to_do_says_what_is_missing(argv: list[str], line: str) -> None:
    assert_error(argv, 2, line)


# -- unknown flags ----------------------------------------------------------------------------------


def test_an_unknown_flag_alone_is_named_before_the_missing_address() -> None:
    assert_error(["--frobnicate"], 2, "wirecat: unknown flag '--frobnicate': see 'wirecat --help'")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_names_an_unknown_flag_and_its_own_help(command: str) -> None:
    # Before the missing positional arguments, which argparse would name first.
    assert_error(
        [command, "--frobnicate"],
        2,
        f"wirecat: unknown flag '--frobnicate' for {command}: see 'wirecat {command} --help'",
    )


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["listen", "-k", "--max-con", "3", "0"],
            "wirecat: unknown flag '--max-con' for listen: did you mean '--max-conns'?"
            " see 'wirecat listen --help'",
        ),
        # Never abbreviated: the same would work today and break when a flag is added.
        (
            ["listen", "--keep", "0"],
            "wirecat: unknown flag '--keep' for listen: did you mean '--keepalive' or '--keep-open'?"
            " see 'wirecat listen --help'",
        ),
        (
            ["echo", "--max-conns=4", "--line", "0"],
            "wirecat: unknown flag '--line' for echo: did you mean '--lines' or '--max-line'?"
            " see 'wirecat echo --help'",
        ),
        (
            ["-l", "-k", "--max-con=3", "0"],
            "wirecat: unknown flag '--max-con=3': did you mean '--max-conns'? see 'wirecat listen --help'",
        ),
        (
            ["connect", "127.0.0.1", "9", "--bogus"],
            "wirecat: unknown flag '--bogus' for connect: see 'wirecat connect --help'",
        ),
        (["-x", "127.0.0.1", "9"], "wirecat: unknown flag '-x': see 'wirecat connect --help'"),
        (
            ["chat", "--lines", "0"],
            "wirecat: unknown flag '--lines' for chat: --lines is a flag of echo; see 'wirecat chat --help'",
        ),
        (
            ["connect", "-l", "9000"],
            "wirecat: unknown flag '-l' for connect: -l is netcat's listen:"
            " write 'wirecat listen PORT' instead",
        ),
        (
            ["listen", "-z", "127.0.0.1", "1"],
            "wirecat: unknown flag '-z' for listen: -z is netcat's scan:"
            " write 'wirecat scan HOST PORTS' instead",
        ),
    ],
)
def test_an_unknown_flag_names_the_nearest_one(argv: list[str], line: str) -> None:
    assert_error(argv, 2, line)


def test_a_flag_with_its_value_after_an_equals_sign_is_known() -> None:
    # `--flag=value` is the flag: its value is checked by the flag (a negative one refused).
    assert_error(
        ["connect", "--idle-timeout=-5", "127.0.0.1", "9"],
        2,
        "wirecat: argument -i/--idle-timeout: bad number of seconds '-5': give a number from 0 to 1e+06"
        " (11 days): see 'wirecat connect --help'",
    )


def test_flags_may_come_after_the_address() -> None:
    """`wirecat connect HOST -v PORT`: argparse alone took HOST for the address and left PORT over."""
    with Peer(lambda conn, peer: conn.sendall(b"flags anywhere\n")) as peer:
        result = run_wirecat("127.0.0.1", "-v", str(peer.port), "-w", "5")
    assert (result.returncode, result.stdout) == (0, b"flags anywhere\n"), result.stderr
    assert f"connecting to 127.0.0.1:{peer.port}".encode() in result.stderr


# -- -4/-6 and the address's own family; port 0 ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["connect", "-4", "::1", "80"],
            "wirecat: ::1 is an IPv6 address but -4 was given: drop -4, or give an IPv4 address",
        ),
        (
            ["-6", "127.0.0.1", "80"],
            "wirecat: 127.0.0.1 is an IPv4 address but -6 was given: drop -6, or give an IPv6 address",
        ),
        (
            ["connect", "-u", "-4", "::1", "53"],
            "wirecat: ::1 is an IPv6 address but -4 was given: drop -4, or give an IPv4 address",
        ),
        (
            ["connect", "-4", "-s", "::1", "127.0.0.1", "9"],
            "wirecat: ::1 is an IPv6 address but -4 was given: drop -4, or give an IPv4 address",
        ),
        (
            ["listen", "-4", "::1", "0"],
            "wirecat: ::1 is an IPv6 address but -4 was given: drop -4, or give an IPv4 address",
        ),
        (
            ["-l", "-6", "127.0.0.1", "0"],
            "wirecat: 127.0.0.1 is an IPv4 address but -6 was given: drop -6, or give an IPv6 address",
        ),
        (
            ["echo", "-4", "[::1]:0"],
            "wirecat: ::1 is an IPv6 address but -4 was given: drop -4, or give an IPv4 address",
        ),
        (
            ["scan", "-6", "127.0.0.1", "80"],
            "wirecat: 127.0.0.1 is an IPv4 address but -6 was given: drop -6, or give an IPv6 address",
        ),
        (
            ["relay", "-4", "[::1]:0", "127.0.0.1:9"],
            "wirecat: ::1 is an IPv6 address but -4 was given: drop -4, or give an IPv4 address",
        ),
    ],
)
def test_an_address_of_the_other_family_than_4_or_6_is_a_usage_error(argv: list[str], line: str) -> None:
    assert_error(argv, 2, line)


def test_a_relay_target_address_keeps_its_own_family(spawn) -> None:
    """-4/-6 are the listening side's family; a target given as an address keeps its own (README)."""
    relay = spawn(WIRECAT, "relay", "-6", "0", f"127.0.0.1:{free_port()}")
    assert relay.listening_port() > 0


SOURCE_MISMATCH = (
    "wirecat: source address '::1' is an IPv6 address but the target '127.0.0.1' is an IPv4 one:"
    " a connection has one family: give a source address of the target's family"
)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["connect", "-s", "::1", "127.0.0.1", "9"], SOURCE_MISMATCH),
        (["connect", "-u", "-s", "::1", "127.0.0.1", "9"], SOURCE_MISMATCH),
        (["relay", "-s", "::1", "0", "127.0.0.1:9"], SOURCE_MISMATCH),
        (
            ["connect", "-u", "-s", "foo", "127.0.0.1", "9"],
            "wirecat: source address 'foo' is not an IP address: give -s an IP address",
        ),
        (
            ["relay", "-s", "foo", "0", "127.0.0.1:9"],
            "wirecat: source address 'foo' is not an IP address: give -s an IP address",
        ),
        (
            ["relay", "-s", "127.0.0.1", "0", "unix:/nonexistent/x.sock"],
            "wirecat: a source address applies to TCP targets only, and the target is a Unix socket:"
            " drop the source address",
        ),
        (
            ["relay", "-s", "127.0.0.1", "udp:0", "udp:127.0.0.1:9"],
            "wirecat: a source address applies to TCP targets only, and the target is UDP:"
            " drop the source address",
        ),
    ],
)
def test_a_source_address_that_cannot_work_is_a_usage_error(argv: list[str], line: str) -> None:
    assert_error(argv, 2, line)


PORT_0 = "port 0 cannot be connected to: 0 asks a listener for any free port; give the port it printed"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["connect", "127.0.0.1", "0"], f"wirecat: {PORT_0}"),
        (["connect", "-u", "127.0.0.1", "0"], f"wirecat: {PORT_0}"),
        (
            ["scan", "127.0.0.1", "0"],
            "wirecat: bad port 0: give a number from 1 to 65535 (port 0 cannot be connected to)",
        ),
        (
            ["relay", "0", "127.0.0.1:0"],
            "wirecat: the target 127.0.0.1:0 has port 0, which cannot be connected to: 0 asks a listener for"
            " any free port; give the port the target listens on",
        ),
        (
            ["relay", "8080", "80"],  # a port alone is where to listen, not where to go
            "wirecat: the target :80 has no host: write HOST:PORT, e.g. 127.0.0.1:80",
        ),
        (
            ["relay", "udp:0", "udp:127.0.0.1:0"],
            "wirecat: the target 127.0.0.1:0 has port 0, which cannot be connected to: 0 asks a listener for"
            " any free port; give the port the target listens on",
        ),
    ],
)
def test_port_0_or_no_host_to_connect_to_is_refused_before_any_client(argv: list[str], line: str) -> None:
    # The relay's used to listen, then reset every client with a warning.
    assert_error(argv, 2, line)


# -- ports by service name ----------------------------------------------------------------------------


def test_connect_takes_a_service_name() -> None:
    with Peer(lambda conn, peer: conn.sendall(b"hello from a named port\n")) as peer:
        result = run_stand_in("127.0.0.1", "wirecat-test", services={"wirecat-test": peer.port})
    assert (result.returncode, result.stdout) == (0, b"hello from a named port\n"), result.stderr


def test_listen_takes_a_service_name(spawn) -> None:
    port = free_port()
    listener = spawn(
        *stand_in_argv("-l", "wirecat-test", services={"wirecat-test": port}), stdin=subprocess.DEVNULL
    )
    assert listener.listening_port() == port
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"to the named port\n")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""
    code, out, _ = listener.finish(timeout=TIMEOUT)  # (its stdin was empty: it sent FIN at once)
    assert (code, out) == (0, b"to the named port\n")


@pytest.mark.parametrize("command", [["connect"], []])
def test_an_unknown_service_name_is_a_usage_error(command: list[str]) -> None:
    assert_error(
        [*command, "127.0.0.1", "nosuchservice"],
        2,
        "wirecat: bad port 'nosuchservice': no such service in /etc/services: give a number from 1 to 65535,"
        " or a service name such as http",
    )


def _database_has(*names: str) -> bool:
    try:
        for name in names:
            socket.getservbyname(name, "tcp")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _database_has("http", "ssh"), reason="no services database (netbase) here")
def test_scan_reads_the_systems_services_database() -> None:
    result = run_wirecat("scan", "-v", "-w", "1", "127.0.0.1", "http,ssh")
    reported = result.stdout.decode() + result.stderr.decode()
    assert "127.0.0.1:22 " in reported, reported
    assert "127.0.0.1:80 " in reported, reported
    assert "scanned 2 ports of 127.0.0.1" in reported, reported


# -- a relay whose target is down ---------------------------------------------------------------------

#: One client reset, said at once (without -v), and the count of those that followed.
RESET_LINE = re.compile(
    r"^wirecat: 127\.0\.0\.1:\d+: connection refused by 127\.0\.0\.1:(\d+): nothing is listening there;"
    r" check the port; the client was reset$"
)
HELD_LINE = re.compile(
    r"^wirecat: (\d+) more clients? (?:were|was) reset: connection refused by 127\.0\.0\.1:(\d+):"
    r" nothing is listening there; check the port$"
)


def test_a_relay_whose_target_is_down_says_why_and_the_client_sees_a_reset(spawn) -> None:
    down = free_port()
    relay = spawn(WIRECAT, "relay", "0", f"127.0.0.1:{down}")  # no -v
    port = relay.listening_port()
    result = run_wirecat("connect", "127.0.0.1", str(port))
    # What the client sees (README, relay): a reset, exit 7, and where to look.
    assert (result.returncode, result.stderr.decode()) == (
        7,
        f"wirecat: connection with 127.0.0.1:{port} was reset by the peer: nothing came first, as when a"
        " relay's target is down (the relay's log says why)\n",
    )
    match = read_line_matching(relay.popen.stderr, RESET_LINE.pattern, timeout=TIMEOUT)
    assert int(match.group(1)) == down


def test_a_flood_of_clients_to_a_dead_target_is_not_a_line_each(spawn) -> None:
    down = free_port()
    relay = spawn(WIRECAT, "relay", "0", f"127.0.0.1:{down}")
    port = relay.listening_port()
    clients = 40
    for _ in range(clients):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            try:
                assert sock.recv(1) == b""
            except ConnectionResetError:
                pass  # the reset: the relay has counted this client by now
    relay.popen.send_signal(signal.SIGTERM)  # the end says what the rate limit held back
    code, _, err = relay.finish(timeout=TIMEOUT)
    assert code == 0, err
    lines = err.decode().splitlines()
    said = [line for line in lines if RESET_LINE.match(line)]
    held = [HELD_LINE.match(line) for line in lines]
    counts = [int(m.group(1)) for m in held if m]
    # Every client accounted for, in fewer lines than clients: at most one a second.
    assert len(said) + sum(counts) == clients, lines
    assert len(said) + len(counts) < clients, lines
    assert said, lines  # the first one at once, with its reason


def test_the_help_and_the_exit_code_of_a_program_that_cannot_run_agree() -> None:
    # README's table says the same: 9, a bad local resource (test_exec.py runs the cases).
    text = run_wirecat("--help").stdout.decode()
    assert "9 bad local file or program (an --exec program that\nis not there or cannot run)" in text


def test_help_with_a_command_is_that_commands_help() -> None:
    result = run_wirecat("help", "scan")
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout.decode().startswith("usage: wirecat scan ")
    assert_error(["help", "sacn"], 2, "wirecat: unknown command 'sacn': did you mean 'scan'?")
