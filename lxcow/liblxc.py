"""The one place where lxcow talks to liblxc.

It uses the C extension ``_lxc`` that python3-lxc ships: the pure-Python ``lxc`` wrapper on
top of it adds nothing lxcow needs and costs ten milliseconds of imports (it pulls in
``subprocess``).  liblxc reports failure as ``False``; every such answer becomes an lxcow
exception here, with the last error lines of the container's log where there are any.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from pathlib import Path

from lxcow.errors import NotFound, SystemFailure, UsageError
from lxcow.log import get as get_logger

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

LOG_NAME = "lxc.log"


class State(enum.StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    ABORTING = "ABORTING"
    FREEZING = "FREEZING"
    FROZEN = "FROZEN"
    THAWED = "THAWED"


def _module() -> Any:
    try:
        import _lxc
    except ImportError:
        raise SystemFailure("the lxc Python module is missing", hint="run ./install.sh") from None
    return _lxc


def _container(name: str, lxcpath: Path) -> Any:
    return _module().Container(name, os.fspath(lxcpath))


def _log_tail(name: str, lxcpath: Path) -> str:
    try:
        with open(lxcpath / name / LOG_NAME, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if " ERROR " in line]
    if not errors:
        return ""
    # "lxc-start NAME 20261203... ERROR conf - file.c:func:42 - message"
    return errors[-1].split(" - ")[-1].strip()


def _failed(what: str, name: str, lxcpath: Path) -> SystemFailure:
    reason = _log_tail(name, lxcpath)
    return SystemFailure(f"{what} {name}: {reason or 'liblxc reported failure'}",
                         hint=f"see {lxcpath / name / LOG_NAME}")


def version() -> str:
    return str(_module().get_version())


def state(name: str, lxcpath: Path) -> State:
    return State(_container(name, lxcpath).state)


def init_pid(name: str, lxcpath: Path) -> int | None:
    pid = _container(name, lxcpath).init_pid
    return pid if pid > 0 else None


def start(name: str, lxcpath: Path) -> None:
    c = _container(name, lxcpath)
    if not c.defined:
        raise NotFound(f"container {name} not found")
    log.debug("liblxc: start %s", name)
    # close_fds: the monitor process liblxc forks must not keep our lock files open.
    if not c.start(daemonize=True, close_fds=True):
        raise _failed("cannot start", name, lxcpath)
    if not c.wait("RUNNING", 10):
        raise _failed("container did not reach RUNNING:", name, lxcpath)


def stop(name: str, lxcpath: Path, *, timeout: int, force: bool) -> None:
    """Stop cleanly within ``timeout`` seconds, then kill; ``force`` kills at once."""
    c = _container(name, lxcpath)
    if not force:
        log.debug("liblxc: shutdown %s (timeout %d s)", name, timeout)
        if c.shutdown(timeout):
            return
        log.info("%s did not stop within %d s, killing it", name, timeout)
    log.debug("liblxc: stop %s", name)
    if not c.stop():
        raise _failed("cannot stop", name, lxcpath)
    if not c.wait("STOPPED", 10):
        raise _failed("container did not stop:", name, lxcpath)


def freeze(name: str, lxcpath: Path) -> None:
    log.debug("liblxc: freeze %s", name)
    if not _container(name, lxcpath).freeze():
        raise _failed("cannot freeze", name, lxcpath)


def unfreeze(name: str, lxcpath: Path) -> None:
    log.debug("liblxc: unfreeze %s", name)
    if not _container(name, lxcpath).unfreeze():
        raise _failed("cannot unfreeze", name, lxcpath)


def ipv4_addresses(name: str, lxcpath: Path) -> list[str]:
    log.debug("liblxc: get_ips %s", name)
    return list(_container(name, lxcpath).get_ips(family="inet") or ())


def attach(name: str, lxcpath: Path, argv: Sequence[str], env: dict[str, str]) -> int:
    """Run ``argv`` inside the running container; return its exit status."""
    lxc = _module()
    c = _container(name, lxcpath)
    log.debug("liblxc: attach %s: %s", name, " ".join(argv))
    status: int = c.attach_wait(
        lxc.attach_run_command,
        (argv[0], list(argv)),
        env_policy=lxc.LXC_ATTACH_CLEAR_ENV,
        extra_env_vars=[f"{k}={v}" for k, v in env.items()],
    )
    if status < 0:
        raise _failed("cannot attach to", name, lxcpath)
    # liblxc hands back the raw wait status.
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return status


def config(name: str, lxcpath: Path) -> _ConfigView:
    """An open liblxc view of a container's config, for get/set/clear and save."""
    c = _container(name, lxcpath)
    if not c.defined:
        raise NotFound(f"container {name} not found")
    return _ConfigView(c, name)


class _ConfigView:
    def __init__(self, container: Any, name: str) -> None:
        self._c = container
        self._name = name

    def get(self, key: str) -> str | None:
        try:
            value = self._c.get_config_item(key)
        except KeyError:
            raise UsageError(f"unknown LXC config key {key}") from None
        if isinstance(value, (list, tuple)):
            return "\n".join(value) if value else None
        return value or None

    def set(self, key: str, value: str) -> None:
        log.debug("liblxc: set_config_item %s %s=%s", self._name, key, value)
        if not self._c.set_config_item(key, value):
            raise UsageError(f"cannot set {key} = {value} on {self._name}: liblxc refused it")

    def clear(self, key: str) -> None:
        log.debug("liblxc: clear_config_item %s %s", self._name, key)
        if not self._c.clear_config_item(key):
            raise UsageError(f"cannot unset {key} on {self._name}: liblxc refused it")

    def save(self, path: Path) -> None:
        if not self._c.save_config(os.fspath(path)):
            raise SystemFailure(f"cannot write the config of {self._name} to {path}")

    def set_cgroup(self, key: str, value: str) -> None:
        log.debug("liblxc: set_cgroup_item %s %s=%s", self._name, key, value)
        if not self._c.set_cgroup_item(key, value):
            raise SystemFailure(f"cannot apply {key} = {value} to running {self._name}")
