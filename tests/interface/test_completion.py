"""Shell completion through the protocol the installed scripts use (typer's, for bash, zsh, fish)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

QA_SCRIPT = shutil.which("qa", path=str(Path(sys.executable).parent)) or shutil.which("qa")
pytestmark = pytest.mark.skipif(QA_SCRIPT is None, reason="the qa script is not installed")


def complete(**env: str) -> str:
    result = subprocess.run([QA_SCRIPT], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bash_completes_option_values():
    assert complete(_QA_COMPLETE="complete_bash", COMP_WORDS="qa ask --retriever ", COMP_CWORD="3").split() == [
        "hybrid", "bm25", "dense"]


def test_zsh_completes_commands_with_their_help():
    shown = complete(_QA_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="qa ch")
    assert '"chat"' in shown and "Ask one question after another" in shown and '"ask"' not in shown


def test_fish_completes_options():
    shown = complete(_QA_COMPLETE="complete_fish", _TYPER_COMPLETE_ARGS="qa ask --prec",
                     _TYPER_COMPLETE_FISH_ACTION="get-args")
    assert shown.startswith("--precision\t")
