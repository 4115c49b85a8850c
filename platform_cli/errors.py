"""Errors the CLI reports as one line on stderr, each with the exit code it ends the process with."""

from __future__ import annotations

EXIT_FAILURE = 1  # the platform said no, or did not finish in time: the input was fine
EXIT_USAGE = 2  # the command line or the input files are wrong (argparse uses 2 as well)


class CliError(Exception):
    """A problem the user can act on: the message says what went wrong and what to do."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class UsageError(CliError):
    """Bad arguments or input files (exit 2)."""

    exit_code = EXIT_USAGE


class CommandFailedError(CliError):
    """The platform ran the request and it failed, or it did not finish before the timeout (exit 1)."""

    exit_code = EXIT_FAILURE
