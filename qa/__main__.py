"""The `qa` command (and `python -m qa`).

Signals are set up before the slow imports (typer, rich, numpy) start, so Ctrl-C or SIGTERM at any
moment gives one line and exit 130 or 143, never a traceback, and a build in progress removes its
staging folder on the way out (qa/index/build.py cleans up on any exception).
"""

import signal
import sys

from qa.errors import Terminated, interruption


def _terminate(signum, frame):
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from qa.interface.cli import app

        app()
    except KeyboardInterrupt as exc:  # before the CLI's own handling is in place, or after it
        message, code = interruption(exc)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(code)


if __name__ == "__main__":
    main()
