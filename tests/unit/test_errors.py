"""Exit statuses of lxcow's exceptions and the mapping from OSError."""

from __future__ import annotations

import errno

import pytest

from lxcow import errors
from lxcow.errors import ExitCode


@pytest.mark.parametrize(("cls", "code"), [
    (errors.LxcowError, 1),
    (errors.UsageError, 2),
    (errors.NotFound, 3),
    (errors.AlreadyExists, 4),
    (errors.Busy, 5),
    (errors.PreconditionFailed, 6),
    (errors.BadData, 7),
    (errors.NoSpace, 8),
    (errors.SystemFailure, 1),
    (errors.Interrupted, 130),
])
def test_exit_codes(cls: type[errors.LxcowError], code: int) -> None:
    err = cls("boom")

    assert err.exit_code == code
    assert isinstance(err, errors.LxcowError)


def test_command_failed_is_a_system_failure_that_keeps_the_command() -> None:
    err = errors.CommandFailed("btrfs failed", argv=["btrfs", "send"], returncode=3,
                               stderr="oops")

    assert err.exit_code == 1
    assert isinstance(err, errors.SystemFailure)
    assert (err.argv, err.returncode, err.stderr) == (["btrfs", "send"], 3, "oops")


def test_exit_code_values() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "FAILURE": 1, "USAGE": 2, "NOT_FOUND": 3, "EXISTS": 4, "BUSY": 5,
        "PRECONDITION": 6, "BAD_DATA": 7, "NO_SPACE": 8, "INTERRUPTED": 130,
    }


def test_message_and_hint() -> None:
    assert str(errors.NotFound("image x not found")) == "image x not found"
    err = errors.NotFound("image x not found", hint="see 'lxcow image list'")
    assert str(err) == "image x not found (see 'lxcow image list')"
    assert err.message == "image x not found"


@pytest.mark.parametrize(("code", "cls"), [
    (errno.ENOSPC, errors.NoSpace),
    (errno.EDQUOT, errors.NoSpace),
    (errno.ENOENT, errors.NotFound),
    (errno.EEXIST, errors.AlreadyExists),
    (errno.EBUSY, errors.Busy),
    (errno.ETXTBSY, errors.Busy),
    (errno.EIO, errors.SystemFailure),
    (errno.EPERM, errors.SystemFailure),
])
def test_from_oserror(code: int, cls: type[errors.LxcowError]) -> None:
    err = errors.from_oserror(OSError(code, "reason"), "create web1")

    assert type(err) is cls
    assert str(err).startswith("create web1: ")


def test_from_oserror_keeps_the_reason() -> None:
    err = errors.from_oserror(FileNotFoundError(errno.ENOENT, "No such file"), "image x")

    assert str(err) == "image x: No such file"
    assert err.exit_code == 3
