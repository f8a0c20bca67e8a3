"""What can go wrong in the `tasker` command, each with the exit status it ends with.

The statuses are the command's contract: 2 the caller's mistake (bad usage, or an API answer
that says the request was wrong), 4 the API cannot be reached or cannot answer, 130 Ctrl-C.
"""

from __future__ import annotations

USAGE = 2
UNREACHABLE = 4
INTERRUPTED = 130  # as a shell reports SIGINT
BROKEN_PIPE = 141  # as a shell reports SIGPIPE


class ClientError(Exception):
    """Base of the command's errors: one line for stderr, and the exit status."""

    exit_status = USAGE


class UsageError(ClientError):
    """The command line asks for something the command cannot do."""


class ApiRefused(ClientError):
    """The API answered an error that is the caller's to fix (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__("%s (HTTP %d)" % (message, status))
        self.status = status
        self.message = message


class Unreachable(ClientError):
    """The API cannot be reached, did not answer in time, or could not serve (5xx)."""

    exit_status = UNREACHABLE


class Interrupted(ClientError):
    """Ctrl-C: what was going on, and what goes on without the command."""

    exit_status = INTERRUPTED


class PipeClosed(Exception):
    """The reader of stdout went away (`tasker list | head -1`): nothing more can be printed."""
