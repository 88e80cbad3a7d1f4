"""Unknown commands and flags, and the nearest real ones (cli/unknown.py, issue 12)."""

from __future__ import annotations

import pytest

from wirecat.cli.netcat import named_command
from wirecat.cli.run import build_parser
from wirecat.cli.unknown import check_netcat_words, flags_of, typo_hint, unknown_flag, unknown_flag_error
from wirecat.errors import UsageError

COMMANDS = ["connect", "listen", "echo", "chat", "broker", "relay", "scan", "demo", "explain"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["connect", "h", "1"], "connect"),
        (["-v", "listen", "9"], "listen"),
        (["-w", "5", "scan", "h", "1"], "scan"),  # -w's value is not the command
        (["-w5", "connect", "h", "1"], "connect"),
        (["h", "connect"], None),  # a host called connect? the first word decides
        (["-l", "9000"], None),
        (["conect", "h", "1"], None),
        (["--exec", "connect"], None),  # the program's words are not ours
        ([], None),
    ],
)
def test_named_command(argv: list[str], expected: str | None) -> None:
    assert named_command(argv, COMMANDS) == expected


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["-v", "--max-conns", "3"], None),
        (["--max-con", "3"], "--max-con"),
        (["--max-conns=3", "--lines=x"], "--lines=x"),
        (["-5", "-.5", "-1.25"], None),  # negative numbers are values, as argparse takes them
        (["--", "--whatever"], None),  # after --, words are words
        (["-", "x"], None),  # "-" alone is a word
        (["--sh-exec", "-v; echo"], None),  # a space: a value (argparse's rule)
        (["-x"], "-x"),
    ],
)
def test_unknown_flag_finds_the_first_flag_not_known(words: list[str], expected: str | None) -> None:
    assert unknown_flag(words, ["-v", "--max-conns", "--sh-exec"]) == expected


def test_hidden_flags_are_not_suggested_from_other_commands() -> None:
    parsers = build_parser().commands
    assert "-k" in flags_of(parsers["connect"])  # (there, to explain itself)
    assert "-k" not in flags_of(parsers["connect"], hidden=False)
    error = unknown_flag_error("-k", "echo", parsers, named=True, has_words=True)
    assert (
        str(error) == "unknown flag '-k' for echo: -k is a flag of listen and recv; see 'wirecat echo --help'"
    )


@pytest.mark.parametrize(
    ("words", "is_address", "message"),
    [
        (["conect", "127.0.0.1", "9000"], False, "unknown command 'conect': did you mean 'connect'?"),
        (["lisen", "x"], False, "unknown command 'lisen': did you mean 'listen'?"),
        (
            ["frobnicate"],
            False,
            "unknown command 'frobnicate': see 'wirecat --help' for the commands; to connect to host"
            " 'frobnicate', give a port too",
        ),
    ],
)
def test_words_that_are_no_command_nor_an_address(words: list[str], is_address: bool, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_netcat_words(words, COMMANDS, is_address=is_address)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "words",
    [
        ["lisen", "9000"],  # a host and a port: tried as such (typo_hint if no host has the name)
        ["example.com", "80", "x"],  # a dotted name: the address's own error says what is wrong
        ["127.0.0.1"],
        ["9000"],
        ["unix:/x", "y"],
        ["[::1]", "80", "x"],
        ["localhost", "nosuchservice"],  # a host and a bad port: the port's own error
        ["myhost", "99999"],
    ],
)
def test_addresses_are_left_to_connect(words: list[str]) -> None:
    check_netcat_words(words, COMMANDS, is_address=words == ["lisen", "9000"])


@pytest.mark.parametrize(
    ("words", "hint"),
    [
        (["lisen", "9000"], "'lisen' is not a command either: did you mean 'wirecat listen 9000'?"),
        (["broker1", "1883"], "'broker1' is not a command either: did you mean 'wirecat broker 1883'?"),
        (["nosuchhost", "80"], None),
        (["lisen.example", "80"], None),
    ],
)
def test_typo_hint(words: list[str], hint: str | None) -> None:
    assert typo_hint(words, COMMANDS) == hint


@pytest.mark.parametrize(
    "argv", [["127.0.0.1", "{port}"], ["connect", "-v", "127.0.0.1", "{port}", "-w", "5"]]
)
def test_difflib_is_loaded_only_to_say_a_mistake(argv: list[str]) -> None:
    """It costs ~9 ms of start-up: a netcat spelling that works (here: refused) never loads it."""
    import subprocess
    import sys

    from wirecat.testing import free_port

    words = [a.format(port=free_port()) for a in argv]
    code = (
        "import sys\n"
        "from wirecat.cli import main\n"
        f"code = main({words!r})\n"
        "print(code, 'difflib' in sys.modules, 'asyncio' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["4", "False", "False"]  # (4: refused, so the whole path ran)
