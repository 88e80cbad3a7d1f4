"""Netcat spellings → wirecat subcommands, and the letters that mean different things.

``wirecat HOST PORT``, ``wirecat -l [-p] PORT``, ``wirecat -lvnp 9000`` and
``wirecat -zv HOST 20-30`` work as they do in nc. Short flags may be bundled
(``-lvk``); a value may be glued on (``-w5``, ``-p9000``).

Where nc, ncat and socat give one letter different meanings, wirecat picks one
and refuses the uses that would surprise (see the README's table):

====  ==========================================  ==========================
flag  others                                      wirecat
====  ==========================================  ==========================
-k    keep listening (ncat, OpenBSD) /            ``--keep-open``, listen only
      SO_KEEPALIVE (traditional nc)
-i    idle timeout (ncat) / line interval (nc)    idle timeout
-d    delay (ncat) / don't read stdin (OpenBSD)   refused: ``--recv-only``
-c    shell exec (ncat) / TLS (OpenBSD) /         refused: ``--sh-exec``,
      close on EOF (GNU)                          ``--tls``
-e    exec (ncat, traditional) / TLS name         refused: ``--exec``
-p    source port (connect) / port (listen)       the same, by mode
====  ==========================================  ==========================
"""

from __future__ import annotations

from wirecat.errors import UsageError

__all__ = ["first_positional", "named_command", "split_program", "translate"]

#: Short flags that take a value, in every subcommand that has them.
_VALUED = set("pwiqs")

_AMBIGUOUS = {
    "-d": "-d means 'delay' in ncat but 'do not read stdin' in OpenBSD nc; use --recv-only to not read stdin",
    "-c": "-c means a shell command in ncat, TLS in OpenBSD nc and 'close on EOF' in GNU nc; "
    "wirecat closes on EOF by itself; use --sh-exec COMMAND for a command",
    "-e": "-e means 'run a program' in ncat but a TLS name in OpenBSD nc; use --exec PROGRAM [ARGS...]",
}


def _unbundle(argv: list[str]) -> list[str]:
    """``-lvp9000`` → ``-l -v -p 9000``; long options and values pass through."""
    out: list[str] = []
    take_value = False
    for arg in argv:
        if take_value or arg == "--" or arg.startswith("--") or not arg.startswith("-") or len(arg) <= 2:
            out.append(arg)
            take_value = arg in {f"-{c}" for c in _VALUED}
            continue
        if arg[1].isdigit():  # a negative number is a value, not flags
            out.append(arg)
            continue
        for i, letter in enumerate(arg[1:], start=1):
            out.append(f"-{letter}")
            if letter in _VALUED:
                rest = arg[i + 1 :]
                if rest:
                    out.append(rest)
                else:
                    take_value = True
                break
    return out


def _first_positional(words: list[str]) -> int | None:
    """Index of the first word that is neither a flag nor a flag's value."""
    take_value = False
    for i, word in enumerate(words):
        if take_value:
            take_value = False
        elif word == "--":
            return i + 1 if i + 1 < len(words) else None
        elif word.startswith("-") and len(word) > 1:
            take_value = word in {f"-{c}" for c in _VALUED}
        else:
            return i
    return None


def first_positional(words: list[str]) -> str | None:
    """The first word of (unbundled) ``words`` that is neither a flag nor a short flag's value."""
    at = _first_positional(words)
    return None if at is None else words[at]


def named_command(argv: list[str], subcommands: list[str]) -> str | None:
    """The subcommand ``argv`` names, or None where it is a netcat spelling
    (``wirecat HOST PORT``, ``wirecat -l PORT``) and the command is implied."""
    word = first_positional(_unbundle(split_program(argv)[0]))
    return word if word in subcommands else None


def translate(argv: list[str], subcommands: list[str]) -> list[str]:
    """Rewrite netcat-style ``argv`` into ``SUBCOMMAND args...``.

    Everything from ``--exec`` on is the program's command line and passes
    through untouched (``--exec sort -rn`` must not become ``-r -n``).

    Raises:
        UsageError: an ambiguous netcat letter was used (see the module table).
    """
    argv, program = split_program(argv)
    return [*_translate(argv, subcommands), *program]


def split_program(argv: list[str]) -> tuple[list[str], list[str]]:
    """(wirecat's own words, ``--exec PROG ARGS...`` to the end) — the second may be empty."""
    for index, word in enumerate(argv):
        if word == "--":
            break
        if word == "--exec":
            return argv[:index], argv[index:]
    return argv, []


def _translate(argv: list[str], subcommands: list[str]) -> list[str]:
    words = _unbundle(argv)
    at = _first_positional(words)
    if at is not None and words[at] in subcommands:
        # `wirecat -v connect ...`: flags before the command belong to it.
        command, rest = words[at], words[:at] + words[at + 1 :]
    else:
        rest = words
        if "-l" in rest or "--listen" in rest:
            command = "listen"
        elif "-z" in rest:
            command = "scan"
        else:
            command = "connect"
        rest = [a for a in rest if a not in ("-l", "--listen", "-z")]
    for flag, message in _AMBIGUOUS.items():
        if flag in rest[: rest.index("--")] if "--" in rest else flag in rest:
            raise UsageError(message)
    if command == "listen" and "-p" in rest:
        # nc -l -p PORT [HOST]: the port becomes the last positional.
        i = rest.index("-p")
        if i + 1 >= len(rest):
            raise UsageError("-p needs a port")
        port = rest[i + 1]
        rest = rest[:i] + rest[i + 2 :] + [port]
    return [command, *rest]
