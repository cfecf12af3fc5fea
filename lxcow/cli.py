"""The ``lxcow`` command: a thin layer over :class:`lxcow.api.Lxcow`.

Data goes to stdout, logs and errors to stderr.  Each lxcow error maps to its documented
exit status; ``exec`` passes the command's own status through.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from lxcow import log
from lxcow.errors import ExitCode, Interrupted, LxcowError
from lxcow.parser import build_parser, parse_args

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["build_parser", "main", "parse_args"]


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted("terminated")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    log.configure(debug=args.debug)
    signal.signal(signal.SIGTERM, _on_sigterm)
    from lxcow.api import Lxcow

    lx = Lxcow(args.state_dir, lock_timeout=args.lock_timeout)
    try:
        return int(args.func(lx, args))
    except LxcowError as err:
        print(f"lxcow: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    except BrokenPipeError:
        return int(ExitCode.FAILURE)
    except OSError as err:
        from lxcow.errors import from_oserror

        mapped = from_oserror(err, err.filename or "system call")
        print(f"lxcow: error: {mapped}", file=sys.stderr)
        return int(mapped.exit_code)
    except KeyboardInterrupt:
        print("lxcow: error: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
