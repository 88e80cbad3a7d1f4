"""Words the command line does not know, and what was meant by them.

argparse alone says "unrecognized arguments" against the top-level program,
and "the following arguments are required" before it mentions a flag it does
not know; and the netcat spelling (``wirecat HOST PORT``) makes any first
word a host. So the CLI asks here instead, and says:

* for a flag the command does not have, the nearest one it has, or the
  commands that have it: ``unknown flag '--max-con' for listen: did you mean
  '--max-conns'? see 'wirecat listen --help'``;
* for a first word that is no command and cannot be a host and port
  either, the nearest command: ``unknown command 'conect': did you mean
  'connect'?``;
* for a first word close to a command that can be a host (``wirecat lisen
  9000``), nothing at first: it is tried as a host, as nc would (a host may
  have any name), and if no host has that name the error names the command
  it may have been (:func:`typo_hint`).

Suggestions use ``difflib``, imported only when one is being made: it costs
~9 ms of start-up, and ``wirecat HOST PORT`` must not pay it.
"""

from __future__ import annotations

import argparse

from wirecat.errors import UsageError

__all__ = [
    "check_netcat_words",
    "close_match",
    "close_matches",
    "flags_of",
    "no_command",
    "typo_hint",
    "unexpected_word",
    "unknown_flag",
    "unknown_flag_error",
]

#: How alike a word must be to a command or flag to be suggested (difflib's
#: ratio): "lisen" → "listen" is 0.91, "scna" → "scan" 0.75; unrelated words
#: ("frobnicate", "localhost") stay under 0.5 against every command.
_CUTOFF = 0.7
#: Netcat's mode letters, which name a command rather than a flag of one.
_MODES = {"-l": "listen", "--listen": "listen", "-z": "scan"}
_MODE_FORMS = {"listen": "PORT", "scan": "HOST PORTS"}


def close_matches(word: str, choices: list[str], n: int = 1) -> list[str]:
    """The (at most ``n``) choices nearest to ``word`` that are near enough to be what was meant."""
    import difflib  # here: only on the error path

    near = difflib.get_close_matches(word, choices, n=len(choices), cutoff=_CUTOFF)
    # A word that begins a longer choice (an abbreviation: --keep) most likely
    # meant one of those: they come first, in difflib's order.
    if len(word.lstrip("-")) >= 3:
        near.sort(key=lambda choice: not choice.startswith(word))
    return near[:n]


def close_match(word: str, choices: list[str]) -> str | None:
    """The choice nearest to ``word``, if one is near enough to be what was meant."""
    found = close_matches(word, choices)
    return found[0] if found else None


def flags_of(parser: argparse.ArgumentParser, *, hidden: bool = True) -> list[str]:
    """The option strings ``parser`` accepts (``-v``, ``--verbose``...);
    without those kept out of ``--help`` when ``hidden`` is False."""
    # argparse keeps no public table of its flags; this one has been there,
    # unchanged, since Python 2.7 (argcomplete reads it too).
    actions = parser._option_string_actions
    return [flag for flag, action in actions.items() if hidden or action.help != argparse.SUPPRESS]


def unknown_flag(words: list[str], known: list[str]) -> str | None:
    """The first word of ``words`` that argparse would take for a flag and is
    none of ``known`` (argparse would report it only after the others)."""
    for word in words:
        if word == "--":
            return None
        # argparse's own rule for "a flag": a leading dash, more than one
        # character, not a negative number, no space; "--flag=value" counts.
        is_flag = len(word) > 1 and word[0] == "-" and " " not in word and not _is_negative_number(word)
        if is_flag and word.split("=", 1)[0] not in known:
            return word
    return None


def _is_negative_number(word: str) -> bool:
    """argparse's ``^-\\d+$|^-\\d*\\.\\d+$``, a value and not a flag (no regex: start-up)."""
    whole, dot, fraction = word[1:].partition(".")
    if not dot:
        return whole.isascii() and whole.isdigit()
    return (not whole or (whole.isascii() and whole.isdigit())) and fraction.isascii() and fraction.isdigit()


def unknown_flag_error(
    word: str, command: str, parsers: dict[str, argparse.ArgumentParser], *, named: bool, has_words: bool
) -> UsageError:
    """The error for ``word``, a flag ``command`` does not have.

    Args:
        word: the flag as written (``--max-con``, ``--max-con=3``, ``-x``).
        command: the command it was given to.
        parsers: every command's parser, to find the ones that have it.
        named: the command was written (``wirecat listen ...``), not implied
            by a netcat spelling (``wirecat -l ...``, ``wirecat HOST PORT``).
        has_words: words other than flags were given (a host, a port).
    """
    flag = word.split("=", 1)[0]
    # `wirecat --frobnicate` alone implies no command the user can see: the
    # top-level help, which lists the commands, is where to look.
    where = f"wirecat {command} --help" if named or has_words or command != "connect" else "wirecat --help"
    message = f"unknown flag {word!r} for {command}" if named else f"unknown flag {word!r}"
    mode = _MODES.get(flag)
    if mode is not None and mode != command:
        form = _MODE_FORMS[mode]
        return UsageError(message, f"{flag} is netcat's {mode}: write 'wirecat {mode} {form}' instead")
    # A flag of another command, spelled right, is the likelier mistake
    # (`chat --lines`: echo's) than a near miss of one of this command's.
    others = [
        name for name, parser in parsers.items() if name != command and flag in flags_of(parser, hidden=False)
    ]
    if others:
        return UsageError(message, f"{flag} is a flag of {' and '.join(others)}; see '{where}'")
    own = [f for f in flags_of(parsers[command], hidden=False) if f.startswith("--")]
    # Two, where two are as near: `--keep` is as close to --keepalive as to --keep-open.
    near = close_matches(flag, own, n=2) if flag.startswith("--") else []
    if near:
        return UsageError(message, f"did you mean {' or '.join(map(repr, near))}? see '{where}'")
    return UsageError(message, f"see '{where}'")


def unexpected_word(word: str, command: str) -> UsageError:
    """The error for a word after all of ``command``'s arguments (``explain recv send``)."""
    return UsageError(
        f"unexpected {word!r} after the arguments of {command}", f"see 'wirecat {command} --help'"
    )


def no_command() -> UsageError:
    """The error for a command line with no command and nothing to connect to."""
    return UsageError(
        "no command given", "e.g. 'wirecat connect HOST PORT' or 'wirecat listen PORT'; see 'wirecat --help'"
    )


def _may_be_a_command(word: str) -> bool:
    """Whether ``word`` could be a mistyped command: a dotted name, an IP
    address, a port, ``unix:``/``udp:`` forms and ``[v6]`` are addresses
    whatever follows, and their errors are about the address."""
    return bool(word) and not any(c in word for c in ".:[/@") and not word.isdigit()


def check_netcat_words(words: list[str], commands: list[str], *, is_address: bool) -> None:
    """Check the words of a netcat spelling (``wirecat WORDS...``, connect implied).

    Args:
        words: the positional words, the first being what would be the host.
        commands: the command names.
        is_address: whether ``words`` parse as a host and a port by connect's rules.

    Raises:
        UsageError: ``unknown command 'X'``: the first word cannot be a host
            with these words: a name with no dot or colon, and a count of
            words an address does not have, or two words that are no host
            and port and a first one close to a command (``exlpain recv``).
    """
    first = words[0]
    if is_address or not _may_be_a_command(first):
        return
    near = close_match(first, commands)
    if near is None and len(words) == 2:
        return  # a host and a bad port (`wirecat myhost 99999`): the port's error says so
    if near is not None:
        hint = f"did you mean {near!r}?"
    elif len(words) == 1:
        hint = f"see 'wirecat --help' for the commands; to connect to host {first!r}, give a port too"
    else:
        hint = "see 'wirecat --help' for the commands"
    raise UsageError(f"unknown command {first!r}", hint)


def typo_hint(words: list[str], commands: list[str]) -> str | None:
    """For "unknown host 'lisen'" after ``wirecat lisen 9000``: the hint that
    names the command it may have been, or None if it is close to none."""
    if len(words) != 2 or not _may_be_a_command(words[0]):
        return None
    near = close_match(words[0], commands)
    if near is None:
        return None
    return f"{words[0]!r} is not a command either: did you mean 'wirecat {near} {words[1]}'?"
