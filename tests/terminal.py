"""A real pseudo-terminal around a `qa` process: what a person at a terminal types and sees."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\r")


# Makes the pty (stdin) the controlling terminal of the new session, then becomes `qa`. A
# subprocess rather than pty.fork(): forking a test process that runs onnxruntime's threads and
# then running Python before exec can deadlock in the child; subprocess forks and execs in C.
_BECOME_QA = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
              "os.execv(sys.executable, [sys.executable, '-m', 'qa', *sys.argv[1:]])")


class Terminal:
    """`python -m qa ARGS` with the pty as its controlling terminal, so Ctrl-C is a keystroke."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path):
        self.fd, child = pty.openpty()
        self.process = subprocess.Popen([sys.executable, "-c", _BECOME_QA, *args], stdin=child, stdout=child,
                                        stderr=child, env=env, cwd=cwd, start_new_session=True)
        os.close(child)
        self.seen = ""  # everything shown so far, escape sequences removed
        self._read_to = 0

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def expect(self, text: str, seconds: float = 90) -> str:
        """Wait until `text` is shown after what earlier calls consumed; return the output up to it."""
        deadline = time.time() + seconds
        while text not in self.seen[self._read_to:]:
            if time.time() > deadline:
                raise AssertionError(f"{text!r} not shown in {seconds} s; shown:\n{self.seen[self._read_to:]}")
            if not self._read(deadline - time.time()):
                raise AssertionError(f"the process ended before showing {text!r}; shown:\n{self.seen[self._read_to:]}")
        end = self.seen.index(text, self._read_to) + len(text)
        shown, self._read_to = self.seen[self._read_to:end], end
        return shown

    def _read(self, seconds: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(seconds, 0.01))
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return False
            if not chunk:
                return False
            self.seen += ANSI.sub("", chunk.decode("utf-8", "replace"))
        return True

    def wait(self, seconds: float = 30) -> int:
        """The exit status, reading what is shown meanwhile (a full pty would block the child)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.process.poll() is not None:
                for _ in range(100):  # what it showed last, until the closed terminal reads as ended
                    if not self._read(0.05):
                        break
                os.close(self.fd)
                return self.process.returncode
            self._read(0.05)
        self.process.kill()
        self.process.wait()
        os.close(self.fd)
        raise AssertionError(f"still running after {seconds} s; shown:\n{self.seen}")


def environment(**extra: str) -> dict[str, str]:
    """The test's environment (its reader cache too) with a wide, colourless terminal."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QA_HYPERLINKS")}
    return {**env, "COLUMNS": "200", "LINES": "60", "TERM": "xterm", "NO_COLOR": "1", **extra}
