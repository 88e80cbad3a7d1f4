"""Argument parsing and dispatch; see :func:`run`."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

from wirecat.cli.output import JsonOutput, TextOutput
from wirecat.errors import EXIT_INTERRUPTED, ProgramError, ResolveError, UsageError, WirecatError

__all__ = ["Parser", "run"]

#: Subcommands, in the order ``--help`` lists them: (name, module, one line, example).
#: A two-word name (``tls probe``) is one command written as two words; the
#: module may name its register function (``module:function``, default ``register``).
SUBCOMMANDS: list[tuple[str, str, str, str]] = [
    (
        "connect",
        "wirecat.cli.connect",
        "connect to a server; stdin → socket → stdout",
        "wirecat connect example.com 80",
    ),
    ("listen", "wirecat.cli.listen", "wait for clients; socket ↔ stdin/stdout", "wirecat listen 9000"),
    (
        "echo",
        "wirecat.cli.echo",
        "a server that sends every message back",
        "wirecat echo 9000 --lines",
    ),
    (
        "chat",
        "wirecat.cli.chat",
        "a chat room: lines from one client go to all (like ncat --chat)",
        "wirecat chat 9000",
    ),
    (
        "broker",
        "wirecat.cli.broker",
        "bytes from one client go to all others (like ncat --broker)",
        "wirecat broker 9000",
    ),
    (
        "relay",
        "wirecat.cli.relay",
        "forward a port: each client gets its own connection to the target",
        "wirecat relay 8080 127.0.0.1:80",
    ),
    (
        "send",
        "wirecat.cli.send",
        "send files and directories, verified end to end (to wirecat recv)",
        "wirecat send report.pdf photos/ 127.0.0.1:9000",
    ),
    (
        "recv",
        "wirecat.cli.recv",
        "receive files from wirecat send: checked names, atomic, resumable",
        "wirecat recv --dir inbox 9000",
    ),
    ("scan", "wirecat.cli.scan", "find open TCP ports", "wirecat scan 127.0.0.1 22,80,8000-8100"),
    (
        "tls probe",
        "wirecat.cli.tls:register_probe",
        "a TLS server's protocol, chain and verdict, readable (an s_client that ends)",
        "wirecat tls probe example.com:443",
    ),
    (
        "tls cert",
        "wirecat.cli.tls:register_cert",
        "write a certificate and key: self-signed, or signed by a local CA (--ca DIR)",
        "wirecat tls cert --ca ~/.wirecat-ca localhost",
    ),
    ("demo", "wirecat.cli.demo", "watch a TCP server and client talk, step by step", "wirecat demo"),
    (
        "explain",
        "wirecat.cli.explain",
        "the socket API cheat sheet: each call, its pitfalls, the server steps",
        "wirecat explain recv",
    ),
]

_EPILOG_NETCAT = """\
netcat spellings work too:
  wirecat HOST PORT            = wirecat connect HOST PORT
  wirecat -l [-p] PORT         = wirecat listen PORT
  wirecat -z HOST PORTS        = wirecat scan HOST PORTS
a PORT may be a service name (http, ssh), from /etc/services.

exit codes: 0 ok, 1 other failure, 2 usage, 3 unknown host, 4 refused or
unreachable, 5 cannot listen, 6 timeout, 7 reset by peer, 8 cut off (-q, a
server's drain timeout), 9 bad local file or program (an --exec program that
is not there or cannot run), 130 interrupted (Ctrl-C).
"""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one ``wirecat: …`` line and exit 2.

    Long flags are never abbreviated (``allow_abbrev=False``): an
    abbreviation that works today would change meaning, or stop working,
    the day a flag with the same start is added, and scripts are where
    wirecat runs. A near miss gets a did-you-mean instead (cli/unknown.py).
    """

    #: The command parsers, by name (set by :func:`build_parser` on the top-level one).
    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see '{self.prog} --help'")

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        """Print the help to stdout; a closed or full stdout is exit 9, not silence."""
        if file is not None:
            super().print_help(file)
            return
        from wirecat.stdio import print_out

        print_out(self.format_help())

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse asks shutil for the terminal width (shutil imports bz2, lzma,
        # fnmatch: ~3 ms) every time it builds a formatter, help or not.
        try:
            width = os.get_terminal_size(1).columns - 2  # fd 1: sys.stdout may be None
        except (OSError, ValueError):
            width = 78
        return self.formatter_class(prog=self.prog, width=width)  # type: ignore[call-arg]


def _top_help() -> str:
    from wirecat import __version__

    width = max(len(name) for name, *_ in SUBCOMMANDS)
    lines = [
        f"wirecat {__version__}: connect, listen, serve, scan and learn sockets",
        "",
        "usage: wirecat COMMAND [options] ...   (wirecat COMMAND --help for its options)",
        "",
        "commands:",
    ]
    for name, _, summary, example in SUBCOMMANDS:
        lines.append(f"  {name:<{width}}  {summary}")
        lines.append(f"  {'':<{width}}    e.g. {example}")
    lines += [
        "",
        _EPILOG_NETCAT.rstrip(),
        "",
        "global flags: -v (say what happens), --trace[=explain|bytes] (print each socket call),",
        "              --json (events as JSON lines on stderr), --log-json FILE (the same, to FILE),",
        "              --debug (tracebacks), --version",
    ]
    return "\n".join(lines) + "\n"


def build_parser(only: str | None = None) -> Parser:
    """The parser, with one subparser per entry of :data:`SUBCOMMANDS` (or just ``only``)."""
    parser = Parser(prog="wirecat", add_help=False, allow_abbrev=False)
    parser.commands = {}
    commands = parser.add_subparsers(dest="command", parser_class=Parser)
    for name, module, summary, example in SUBCOMMANDS:
        if only is not None and name != only:
            continue  # its module is not even imported: start-up time
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary}\n\nexample: {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        parser.commands[name] = sub
        sub.add_argument("--debug", action="store_true", help="show a traceback on errors")
        if name != "explain":
            sub.add_argument(
                "--trace",
                dest="trace_help",
                action="store_true",
                help="print each socket call on stderr as it is made; --trace=explain adds what each"
                " call is for, --trace=bytes a hex dump of the data",
            )
        module_name, _, function = module.partition(":")
        getattr(importlib.import_module(module_name), function or "register")(sub)
    return parser


def parse_command_line(argv: list[str]) -> tuple[argparse.Namespace, list[str], list[str]]:
    """Translate and parse ``argv``: (the arguments, the ``--exec`` program's
    words, the words of a netcat spelling whose first may be a mistyped command).

    Raises:
        UsageError: for an unknown flag or command (named with the nearest
            real one), a missing address, and argparse's own complaints.
    """
    from wirecat.cli.netcat import first_positional, named_command, split_program, translate
    from wirecat.cli.unknown import check_netcat_words, flags_of, unknown_flag

    known = [name for name, *_ in SUBCOMMANDS]
    argv, program = split_program(argv)  # `--exec PROG ARGS...`: the program's words
    argv, trace_mode = _take_trace(argv)
    argv = _join_group(argv)
    named = named_command(argv, known) is not None
    argv = translate(argv, known)
    command, rest = argv[0], argv[1:]
    if program and command in ("connect", "listen") and first_positional(rest) is None:
        what = "HOST PORT" if command == "connect" else "PORT"
        raise UsageError(
            f"{command} needs {what} before --exec",
            f"everything after --exec is the program's: e.g. wirecat {command} {what} --exec PROG",
        )
    parser = build_parser(command)
    # Unknown flags first: argparse would complain of a missing HOST PORT
    # before it mentions the flag it did not know (`wirecat --frobnicate`).
    flag = unknown_flag(rest, flags_of(parser.commands[command]))
    if flag is not None:
        from wirecat.cli.unknown import unknown_flag_error

        has_words = first_positional(rest) is not None
        raise unknown_flag_error(flag, command, build_parser().commands, named=named, has_words=has_words)
    if not named and command == "connect" and first_positional(rest) is None:
        from wirecat.cli.unknown import no_command

        raise no_command()  # `wirecat -v`: flags, and nothing to run or connect to
    # The command's own parser, intermixed: flags may come after the address
    # (`wirecat connect host -v 80`), as they may in nc; argparse's plain
    # parse takes "host" alone for HOST PORT and leaves "80" over.
    args, extras = parser.commands[command].parse_known_intermixed_args(rest)
    args.command = command
    if extras:
        from wirecat.cli.unknown import unexpected_word

        raise unexpected_word(extras[0], command)
    args.trace = trace_mode
    typo_words: list[str] = []
    if not named and command == "connect" and not args.unix:
        from wirecat.cli.common import address_from

        try:
            target = address_from(args.target, args)
        except UsageError:
            is_address = False
        else:
            is_address = target.is_unix or bool(target.host)
        check_netcat_words(args.target, [*known, *GROUPS], is_address=is_address)
        typo_words = args.target
    return args, program, typo_words


#: Commands written as two words (``tls probe``), by their first word.
GROUPS = {"tls": ("probe", "cert")}


def _join_group(argv: list[str]) -> list[str]:
    """``tls probe ARGS`` → ``"tls probe" ARGS``: one command name, as SUBCOMMANDS holds it.

    Raises:
        UsageError: the group's word alone, or with a second word it does not have.
    """
    if not argv or argv[0] not in GROUPS:
        return argv
    group, actions = argv[0], GROUPS[argv[0]]
    if len(argv) > 1 and argv[1] in actions:
        return [f"{group} {argv[1]}", *argv[2:]]
    choices = " or ".join(f"'wirecat {group} {a}'" for a in actions)
    if len(argv) == 1 or argv[1].startswith("-"):
        raise UsageError(
            f"{group} needs one of {', '.join(actions)}", f"e.g. {choices}; see 'wirecat help {group}'"
        )
    from wirecat.cli.unknown import close_match

    near = close_match(argv[1], list(actions))
    hint = f"did you mean '{group} {near}'?" if near else f"say {choices}"
    raise UsageError(f"unknown command '{group} {argv[1]}'", hint)


def _group_help(group: str) -> str:
    """The help for a group's word alone: its commands, as the top-level help shows them."""
    lines = [f"usage: wirecat {group} COMMAND [options] ...", "", "commands:"]
    for name, _, summary, example in SUBCOMMANDS:
        if name.partition(" ")[0] == group and " " in name:
            lines += [f"  {name:<10}  {summary}", f"  {'':<10}    e.g. {example}"]
    lines.append(f"\nwirecat {group} COMMAND --help for a command's options")
    return "\n".join(lines) + "\n"


def _command_help(name: str) -> None:
    """Print ``wirecat NAME --help``.

    Raises:
        UsageError: no command has that name (with the nearest one).
    """
    known = [command for command, *_ in SUBCOMMANDS]
    if name in GROUPS:
        from wirecat.stdio import print_out

        print_out(_group_help(name))
        return
    if name not in known:
        from wirecat.cli.unknown import close_match

        near = close_match(name, known)
        hint = f"did you mean {near!r}?" if near else "see 'wirecat --help' for the commands"
        raise UsageError(f"unknown command {name!r}", hint)
    build_parser(name).commands[name].print_help()


def _on_sigterm(signum: int, frame: object) -> None:
    # Unwind like Ctrl-C so `finally` blocks run (a Unix listener removes its file).
    raise SystemExit(128 + signum)


def _take_trace(argv: list[str]) -> tuple[list[str], str | None]:
    """Take ``--trace`` / ``--trace=MODE`` out of ``argv``: (the rest, the mode or None).

    Done before argparse, which cannot tell ``--trace 127.0.0.1`` (a flag, then
    a host) from ``--trace calls`` for an optional value.
    """
    from wirecat.trace import MODES

    rest: list[str] = []
    mode = None
    for index, word in enumerate(argv):
        if word in ("--", "--exec"):  # the rest is a program's command line
            rest += argv[index:]
            break
        if word == "--trace":
            mode = "calls"
        elif word.startswith("--trace="):
            mode = word.partition("=")[2]
            if mode not in MODES:
                raise UsageError(f"bad --trace={mode}", _trace_hint(mode))
        else:
            rest.append(word)
    return rest, mode


def _trace_hint(mode: str) -> str:
    """What to say for a ``--trace=MODE`` we do not know: the nearest of the spellings --help shows."""
    import difflib

    # --help shows --trace, --trace=explain and --trace=bytes; "calls" is
    # what --trace alone means (accepted, never suggested as a word to type).
    spellings = {"calls": "--trace", "explain": "--trace=explain", "bytes": "--trace=bytes"}
    near = difflib.get_close_matches(mode.lower(), list(spellings), n=1, cutoff=0.5)
    if near:
        return f"did you mean {spellings[near[0]]}?"
    return "use --trace (each call), --trace=explain (and what it is for) or --trace=bytes (and the data)"


def _take_json(argv: list[str]) -> tuple[list[str], bool, str | None]:
    """Take ``--json`` and ``--log-json FILE`` out of ``argv``: (the rest, --json, the file or None).

    Done before argparse, like ``--trace``: every command has them, and the
    output must be set up before anything can go wrong.
    """
    rest: list[str] = []
    as_json, log_file = False, None
    words = iter(enumerate(argv))
    for index, word in words:
        if word in ("--", "--exec"):  # the rest is a program's command line
            rest += argv[index:]
            break
        if word == "--json":
            as_json = True
        elif word == "--log-json" or word.startswith("--log-json="):
            if "=" in word:
                log_file = word.partition("=")[2]
            else:
                taken = next(words, None)
                if taken is None:
                    raise UsageError("--log-json needs a file", "e.g. --log-json events.jsonl")
                log_file = taken[1]
            if not log_file:
                raise UsageError("--log-json needs a file", "e.g. --log-json events.jsonl")
        else:
            rest.append(word)
    return rest, as_json, log_file


def _set_up_output(as_json: bool, log_file: str | None) -> list[TextOutput | JsonOutput]:
    """Subscribe the CLI's outputs to the event channel (and the library's logging off it)."""
    from wirecat import events

    outputs: list[TextOutput | JsonOutput] = [JsonOutput() if as_json else TextOutput()]
    if log_file is not None:
        try:
            sink = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        except OSError as exc:
            raise ProgramError(
                f"cannot open --log-json {log_file}: {(exc.strerror or str(exc)).lower()}"
            ) from exc
        outputs.append(JsonOutput(sink))
    events.default.clear()
    for output in outputs:
        events.subscribe(output)
    return outputs


def run(argv: list[str]) -> int:
    """Parse ``argv``, run the subcommand, and return the exit code."""
    debug = "--debug" in argv
    from wirecat import events
    from wirecat.stdio import StdoutClosed, ensure_standard_fds, print_out

    ensure_standard_fds()  # before any socket can take fd 0, 1 or 2
    outputs: list[TextOutput | JsonOutput] = []
    typo_words: list[str] = []
    try:
        argv, as_json, log_file = _take_json(argv)
        outputs = _set_up_output(as_json, log_file)
        if not argv:
            if not as_json:  # (stderr carries JSON lines only under --json)
                _say(_top_help().rstrip("\n"))  # a usage error: the help goes where errors go
            from wirecat.cli.unknown import no_command

            raise no_command()
        if argv[0] in ("-h", "--help", "help"):
            if argv[0] == "help" and len(argv) > 1:  # `wirecat help listen`, as git has it
                _command_help(" ".join(argv[1:3]) if argv[1] in GROUPS and len(argv) > 2 else argv[1])
                return 0
            print_out(_top_help())
            return 0
        if argv[0] in GROUPS and argv[1:2] in (["-h"], ["--help"]):
            print_out(_group_help(argv[0]))  # `wirecat tls --help`
            return 0
        args, program, typo_words = parse_command_line(argv)
        args.json = as_json  # (a command whose stdout is a report prints it as JSON: tls probe)
        trace_mode = args.trace
        for output in outputs:
            output.verbose = getattr(args, "verbose", 0)
        if program:
            if "exec_argv" not in args:
                raise UsageError(f"{args.command} has no --exec", "use it with connect or listen")
            args.exec_argv = program[1:]
        if trace_mode is not None and args.command not in ("demo", "explain"):
            from wirecat.trace import Tracer, enable

            enable(Tracer(trace_mode, lambda line: events.emit(events.Trace(line))))
        signal.signal(signal.SIGTERM, _on_sigterm)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # (nohup: stays ignored)
            # A hang-up (terminal closed, ssh gone) unwinds like SIGTERM, so an
            # --exec program, in its own process group, is stopped too.
            signal.signal(signal.SIGHUP, _on_sigterm)
        return int(args.handler(args))
    except WirecatError as exc:
        if debug:
            raise
        if isinstance(exc, ResolveError) and typo_words:
            # `wirecat lisen 9000`: tried as a host, as nc would; none has that name.
            from wirecat.cli.unknown import typo_hint

            exc.hint = typo_hint(typo_words, [*(name for name, *_ in SUBCOMMANDS), *GROUPS]) or exc.hint
        if outputs:
            events.emit(events.Failed(describe(exc), exc.exit_code, origin="cli"))
        else:  # the output could not be set up (--log-json): say it plainly
            _say(f"wirecat: {describe(exc)}")
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        return EXIT_INTERRUPTED
    except (BrokenPipeError, StdoutClosed):
        # stdout closed under us (`| head`): end quietly, and keep Python's
        # own flush at exit from complaining about it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return 0


#: The flag that sets each library setting an error names (WirecatError.setting).
FLAGS = {
    "timeout": "-w",
    "accept_timeout": "-w",
    "idle_timeout": "-i",
    "quit_after_eof": "-q",
    "frame_timeout": "--frame-timeout",
    "drain_timeout": "--drain-timeout",
    "connect_timeout": "--connect-timeout",
    "udp_idle": "--udp-idle",
}


def describe(exc: WirecatError) -> str:
    """An error's one line, with the flag that governs it (the library names no flags)."""
    message = exc.message
    if exc.setting == "verbose":
        return f"{message}: run with -v to see each address's failure"
    flag = FLAGS.get(exc.setting)
    if flag is not None:
        message += f" ({flag})"
    hint = exc.cli_hint or exc.hint
    return f"{message}: {hint}" if hint else message


def _say(line: str) -> None:
    from wirecat.report import say

    say(line)
