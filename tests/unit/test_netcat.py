"""Netcat spellings translate to subcommands; ambiguous letters are refused."""

from __future__ import annotations

import pytest

from wirecat.cli.netcat import translate
from wirecat.errors import UsageError

COMMANDS = ["connect", "listen", "scan", "demo"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["example.com", "80"], ["connect", "example.com", "80"]),
        (["-v", "-w5", "h", "80"], ["connect", "-v", "-w", "5", "h", "80"]),
        (["-l", "9000"], ["listen", "9000"]),
        (["-l", "-p", "9000"], ["listen", "9000"]),
        (["-lvp", "9000"], ["listen", "-v", "9000"]),
        (["-lvnp9000"], ["listen", "-v", "-n", "9000"]),
        (["-l", "-p", "9000", "127.0.0.1"], ["listen", "127.0.0.1", "9000"]),
        (["-lk", "9000"], ["listen", "-k", "9000"]),
        (["-zv", "h", "20-30"], ["scan", "-v", "h", "20-30"]),
        (["connect", "-q0", "h", "1"], ["connect", "-q", "0", "h", "1"]),
        (["connect", "--send-only", "h", "1"], ["connect", "--send-only", "h", "1"]),
        (["-v", "connect", "h", "1"], ["connect", "-v", "h", "1"]),
        (["--debug", "-w", "5", "listen", "9"], ["listen", "--debug", "-w", "5", "9"]),
        (["-v", "h", "connect"], ["connect", "-v", "h", "connect"]),
    ],
)
def test_translation(argv: list[str], expected: list[str]) -> None:
    assert translate(argv, COMMANDS) == expected


@pytest.mark.parametrize(("flag", "long"), [("-d", "--recv-only"), ("-c", "--sh-exec"), ("-e", "--exec")])
def test_ambiguous_letters_name_the_long_option(flag: str, long: str) -> None:
    with pytest.raises(UsageError, match=long):
        translate([flag, "h", "80"], COMMANDS)


def test_listen_p_without_port_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        translate(["-l", "-p"], COMMANDS)
