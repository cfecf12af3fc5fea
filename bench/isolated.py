"""Run one section of the benchmark in a forked child of this process.

The in-process systems leave traces in the process that measures them: liblxc forks each
container's monitor from it, and python3-lxc's ``lxc.Container`` wrapper keeps the
container's log file open (one descriptor per object; the ``_lxc`` extension that lxcow and
this benchmark use does not).  Anything like that would keep a pool busy until this process
exits.  Measuring each section in a child that exits before its pool is torn down keeps the
parent clean; the child is still in the same process tree.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from harness import BenchError
from hostpool import shielded


def run_isolated(work: Callable[[], Any]) -> Any:
    """``work()`` in a child process; its JSON-able result, or its error raised here."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        _child(work, writer)
    os.close(writer)
    try:
        with os.fdopen(reader) as f:
            payload = f.read()
    except BaseException:
        _reap(pid, stop=True)
        raise
    _reap(pid, stop=False)
    if not payload:
        raise BenchError("the benchmark's child process died without a result")
    answer = json.loads(payload)
    if "error" in answer:
        raise BenchError(answer["error"])
    return answer["result"]


def _child(work: Callable[[], Any], writer: int) -> None:
    """Never returns: the parent's cleanup handlers must not run in the child."""
    status = 1
    try:
        answer = {"result": work()}
        status = 0
    except BaseException as err:  # everything, even Ctrl-C, is reported to the parent
        answer = {"error": str(err) if isinstance(err, BenchError) else
                  f"{type(err).__name__} in the measuring process: {err}"}
    try:
        with os.fdopen(writer, "w") as f:
            json.dump(answer, f)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _reap(pid: int, *, stop: bool) -> None:
    """Wait for the child; when we are leaving early, tell it to stop first."""
    with shielded():
        if stop:
            os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
