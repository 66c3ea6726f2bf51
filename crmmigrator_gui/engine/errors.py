"""Typed errors that carry a user-facing, one-line message and a CLI exit code.

The engine raises these; the CLI prints ``str(err)`` and exits with ``err.exit_code``;
the GUI shows the same message in a dialog. Nothing here knows who is listening.
"""

from __future__ import annotations


class MigratorError(Exception):
    """Base class: a failure the user can understand and act on (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MigratorError):
    """The command was called wrongly (exit code 2)."""

    exit_code = 2


class BlockedError(MigratorError):
    """Work refused on purpose: unconfirmed map, missing schema, no sign-off (exit code 3)."""

    exit_code = 3


class InputError(MigratorError):
    """A bad input file. The message names the file, and the row and column when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        where = []
        if file:
            where.append(file)
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class CancelledError(MigratorError):
    """The user cancelled; the state left behind is resumable."""


class DestinationError(MigratorError):
    """The destination answered with an error that stops the whole step (not a per-record failure)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
