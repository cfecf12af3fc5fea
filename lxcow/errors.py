"""Exceptions raised by lxcow, each carrying the exit status the CLI returns for it.

The library raises these and never exits; ``lxcow.cli`` turns them into one line on stderr
and the exit status below.  The same table is documented in the README.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    EXISTS = 4
    BUSY = 5
    PRECONDITION = 6
    BAD_DATA = 7
    NO_SPACE = 8
    INTERRUPTED = 130


class LxcowError(Exception):
    """Base class: a one-line message for the user and an exit status."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(LxcowError):
    """Invalid names, options or values: refused before anything changes."""

    exit_code = ExitCode.USAGE


class NotFound(LxcowError):
    exit_code = ExitCode.NOT_FOUND


class AlreadyExists(LxcowError):
    exit_code = ExitCode.EXISTS


class Busy(LxcowError):
    """Another command holds the lock on the object."""

    exit_code = ExitCode.BUSY


class PreconditionFailed(LxcowError):
    """The object is in the wrong state: running, stopped, pool not set up, ..."""

    exit_code = ExitCode.PRECONDITION


class BadData(LxcowError):
    """A corrupt, truncated or unsafe file was given."""

    exit_code = ExitCode.BAD_DATA


class NoSpace(LxcowError):
    exit_code = ExitCode.NO_SPACE


class SystemFailure(LxcowError):
    """A kernel call, a library call or an external command failed."""

    exit_code = ExitCode.FAILURE


class CommandFailed(SystemFailure):
    """An external command exited non-zero."""

    def __init__(self, message: str, *, argv: list[str], returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class Interrupted(LxcowError):
    """SIGINT or SIGTERM arrived; cleanup has run on the way out."""

    exit_code = ExitCode.INTERRUPTED


def from_oserror(err: OSError, what: str) -> LxcowError:
    """Map an OSError met while working on ``what`` to the matching lxcow error."""
    import errno

    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return NoSpace(f"{what}: no space left on the pool", hint="free space or grow the pool")
    if err.errno == errno.ENOENT:
        return NotFound(f"{what}: {reason}")
    if err.errno == errno.EEXIST:
        return AlreadyExists(f"{what}: {reason}")
    if err.errno in (errno.EBUSY, errno.ETXTBSY):
        return Busy(f"{what}: {reason}")
    return SystemFailure(f"{what}: {reason}")
