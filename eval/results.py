"""Results as data: a script's figures are written with the command and the commit that made them,
so eval/README.md's tables can be checked against them (tests/test_results.py)."""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "eval" / "results"


def provenance() -> dict:
    """How to make these figures again: the command as typed from the repository root, and the commit."""
    script = Path(sys.argv[0])
    command = f"python -m eval.{script.stem} " if script.suffix == ".py" else f"{sys.argv[0]} "
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {"command": (command + shlex.join(sys.argv[1:])).strip(), "commit": commit, "uncommitted_changes": dirty,
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def write_results(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report, "provenance": provenance()}, indent=1, ensure_ascii=False) + "\n",
                    encoding="utf-8")
