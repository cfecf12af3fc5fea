"""Logging that costs nothing until something is logged.

The standard ``logging`` module takes about ten milliseconds to import, a third of what a
simple command may take in all, so it is imported only when a message is emitted at a level
that is switched on.  Messages go to the standard loggers named ``lxcow.*``; as a library,
lxcow leaves their configuration to the program (the CLI configures them in ``configure``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any


DEBUG, INFO, WARNING = 10, 20, 30


class _Settings:
    level = WARNING
    cli = False


def configure(*, debug: bool) -> None:
    """Called by the CLI: log to stderr as ``lxcow: message``; everything with ``debug``."""
    _Settings.level = DEBUG if debug else WARNING
    _Settings.cli = True
    if debug:
        _setup()


def enable(level: int = DEBUG) -> None:
    """For library users: emit messages from ``level`` on to the standard loggers."""
    _Settings.level = level


def _setup() -> None:
    import logging

    if _Settings.cli and not logging.getLogger().handlers:
        logging.basicConfig(level=_Settings.level, format="lxcow: %(message)s",
                            stream=__import__("sys").stderr)


class Logger:
    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(self, level: int, msg: str, args: tuple[Any, ...]) -> None:
        import logging

        _setup()
        logging.getLogger(self.name).log(level, msg, *args)

    def debug(self, msg: str, *args: Any) -> None:
        if _Settings.level <= DEBUG:
            self._emit(DEBUG, msg, args)

    def info(self, msg: str, *args: Any) -> None:
        if _Settings.level <= INFO:
            self._emit(INFO, msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        if _Settings.level <= WARNING:
            self._emit(WARNING, msg, args)


def get(name: str) -> Logger:
    return Logger(name)
