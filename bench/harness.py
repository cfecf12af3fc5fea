"""Timing: steps run interleaved (A B C, B C A, ...) after a warm-up, and their statistics.

A *step* is one system's way of doing the operation under test: an untimed setup, the timed
action and an untimed teardown, each given the repetition number so that every repetition
can use fresh names.  A step whose action fails is dropped with the reason, and the others
go on: a peer that cannot do an operation (``lxc-snapshot`` of a running container) shows up
in the report as "not supported" rather than stopping the run.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

Hook = Callable[[int], object]
COMMAND_TIMEOUT = 300.0


class BenchError(Exception):
    """A command or call the benchmark depends on failed; the message is one line."""


class Role(enum.StrEnum):
    LXCOW = "lxcow"
    PEER = "peer"
    FLOOR = "floor"
    REFERENCE = "reference"


@dataclasses.dataclass(frozen=True)
class Step:
    key: str
    label: str
    role: Role
    action: Hook
    setup: Hook | None = None
    teardown: Hook | None = None


@dataclasses.dataclass
class Outcome:
    """The samples (seconds, or bytes for space) one system produced in one table."""

    key: str
    label: str
    role: Role
    samples: list[float] = dataclasses.field(default_factory=list)
    skipped: str | None = None

    def stats(self) -> dict[str, float] | None:
        return summarize(self.samples) if self.samples and not self.skipped else None

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "label": self.label, "role": self.role.value,
                "samples": self.samples, "skipped": self.skipped, "stats": self.stats()}


@dataclasses.dataclass
class Table:
    """One operation's results: a row per system, ratios are computed when it is rendered."""

    id: str
    title: str
    what: str
    outcomes: list[Outcome]
    unit: str = "time"
    per: str = "operation"
    notes: list[str] = dataclasses.field(default_factory=list)
    group: str | None = None
    level: int | None = None

    def outcome(self, key: str) -> Outcome | None:
        return next((o for o in self.outcomes if o.key == key), None)

    def median(self, key: str) -> float | None:
        found = self.outcome(key)
        stats = found.stats() if found else None
        return stats["median"] if stats else None

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "what": self.what, "unit": self.unit,
                "per": self.per, "notes": self.notes, "group": self.group,
                "level": self.level, "systems": [o.to_json() for o in self.outcomes]}


def summarize(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if len(ordered) >= 2:
        p25, _, p75 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        p25 = p75 = ordered[0]
    return {"n": len(ordered), "median": statistics.median(ordered), "p25": p25, "p75": p75,
            "min": ordered[0], "max": ordered[-1]}


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- running commands -----------------------------------------------------------------------


def command(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command to completion, return its stdout; a failure raises :class:`BenchError`."""
    return _run(argv, env, timeout, capture=True)


def quiet(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
    """Run a timed command: its stdout is thrown away, its stderr kept to name a failure."""
    _run(argv, env, COMMAND_TIMEOUT, capture=False)


def _run(argv: Sequence[str], env: Mapping[str, str] | None, timeout: float, *,
         capture: bool) -> str:
    try:
        proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=_environment(env), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(argv)}: no answer after {timeout:.0f} s") from None
    except FileNotFoundError:
        raise BenchError(f"{argv[0]}: not installed") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.decode(errors="replace").splitlines()
                 if line.strip()]
        reason = lines[-1].strip() if lines else "no message"
        raise BenchError(f"{' '.join(argv)}: exit status {proc.returncode}: {reason}")
    return proc.stdout.decode() if capture else ""


def _environment(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if extra is None:
        return None
    return {**os.environ, **extra}


# -- measuring ------------------------------------------------------------------------------


def measure(steps: Sequence[Step], reps: int, *, warmup: int = 1) -> list[Outcome]:
    """Run every step ``warmup + reps`` times, rotating the order in each round."""
    outcomes = {s.key: Outcome(s.key, s.label, s.role) for s in steps}
    for rnd in range(warmup + reps):
        shift = rnd % len(steps)
        for step in [*steps[shift:], *steps[:shift]]:
            outcome = outcomes[step.key]
            if outcome.skipped is not None:
                continue
            elapsed = _once(step, rnd, outcome, warming=rnd < warmup)
            if elapsed is not None and rnd >= warmup:
                outcome.samples.append(elapsed)
    return [outcomes[s.key] for s in steps]


def _once(step: Step, rnd: int, outcome: Outcome, *, warming: bool) -> float | None:
    if step.setup is not None:
        step.setup(rnd)
    try:
        start = time.perf_counter()
        step.action(rnd)
        elapsed = time.perf_counter() - start
    except Exception as err:  # a failing system is reported, the others go on
        reason = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
        outcome.skipped = f"{'not supported' if warming else 'failed'}: {reason}"
        progress(f"{step.label}: {outcome.skipped}")
        if step.teardown is not None:
            _quietly(step.teardown, rnd)
        return None
    if step.teardown is not None:
        step.teardown(rnd)
    return elapsed


def _quietly(hook: Hook, rnd: int) -> None:
    try:
        hook(rnd)
    except BenchError as err:
        progress(f"ignored while cleaning up after a failure: {err}")
