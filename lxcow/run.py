"""The one place where lxcow starts external programs.

Every command runs with a clean environment and stdin from /dev/null unless a pipe is asked
for; the shell-quoted command line is logged at debug level; a failure becomes a
:class:`CommandFailed` whose message is one line naming the command and its last error line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

from lxcow.errors import CommandFailed, NotFound
from lxcow.log import get as get_logger

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from subprocess import CompletedProcess
    from typing import IO

log = get_logger(__name__)

CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
}


def _quote(argv: Sequence[str | os.PathLike[str]]) -> str:
    import shlex

    return " ".join(shlex.quote(os.fspath(a)) for a in argv)


def _failure(argv: list[str], returncode: int, stderr: str) -> CommandFailed:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {returncode}"
    return CommandFailed(
        f"command failed: {_quote(argv)}: {reason}",
        argv=argv,
        returncode=returncode,
        stderr=stderr,
    )


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    input: bytes | None = None,
) -> CompletedProcess[str]:
    """Run a command to completion and capture its output as text."""
    import subprocess

    args = [os.fspath(a) for a in argv]
    log.debug("run: %s", _quote(args))
    try:
        proc = subprocess.run(
            args,
            input=input.decode() if input is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=CLEAN_ENV,
            close_fds=True,
        )
    except FileNotFoundError:
        raise NotFound(f"program not found: {args[0]}", hint="run ./install.sh") from None
    if check and proc.returncode != 0:
        raise _failure(args, proc.returncode, proc.stderr)
    return proc


@contextlib.contextmanager
def reading(
    argv: Sequence[str | os.PathLike[str]], *, stdin: IO[bytes] | int | None = None
) -> Iterator[IO[bytes]]:
    """Start a command and yield its stdout as a binary stream.

    On leaving the block the command is waited for; a non-zero exit (or an early exit of the
    block by exception) makes it fail.  The process is killed if the block raises.
    """
    import subprocess
    import tempfile

    args = [os.fspath(a) for a in argv]
    log.debug("run: %s |", _quote(args))
    # stderr goes to a file so that a chatty command can never block on a full pipe.
    with tempfile.TemporaryFile() as errfile:
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=subprocess.PIPE,
                stderr=errfile,
                env=CLEAN_ENV,
                close_fds=True,
            )
        except FileNotFoundError:
            raise NotFound(f"program not found: {args[0]}", hint="run ./install.sh") from None
        assert proc.stdout is not None
        try:
            yield proc.stdout
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if proc.wait() != 0:
            errfile.seek(0)
            raise _failure(args, proc.returncode, errfile.read().decode(errors="replace"))


@contextlib.contextmanager
def writing(argv: Sequence[str | os.PathLike[str]]) -> Iterator[IO[bytes]]:
    """Start a command and yield its stdin; on leaving the block, close it and wait.

    A non-zero exit raises CommandFailed; if the block raises, the command is killed.
    """
    import subprocess
    import tempfile

    args = [os.fspath(a) for a in argv]
    log.debug("run: | %s", _quote(args))
    with tempfile.TemporaryFile() as errfile:
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=errfile, env=CLEAN_ENV, close_fds=True)
        except FileNotFoundError:
            raise NotFound(f"program not found: {args[0]}", hint="run ./install.sh") from None
        assert proc.stdin is not None
        try:
            yield proc.stdin
            proc.stdin.close()
        except BrokenPipeError:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.wait() != 0:
            errfile.seek(0)
            raise _failure(args, proc.returncode, errfile.read().decode(errors="replace"))
