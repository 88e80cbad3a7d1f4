"""The command line: parse flags, call the library, turn errors into exit codes.

``main()`` is the console script. It answers ``--version`` before importing
anything else (start-up time matters to shell loops), maps netcat spellings
(``wirecat HOST PORT``, ``wirecat -l -p PORT``, ``wirecat -z HOST PORTS``) to
subcommands, and catches every :class:`~wirecat.errors.WirecatError` once, to
print one line and exit with its code.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run wirecat with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        from wirecat import __version__
        from wirecat.errors import ProgramError
        from wirecat.stdio import StdoutClosed, print_out

        try:
            print_out(f"wirecat {__version__}\n")
        except StdoutClosed:
            pass
        except ProgramError as exc:
            from wirecat.report import say

            say(f"wirecat: {exc}")
            return exc.exit_code
        return 0
    from wirecat.cli.run import run

    return run(args)
