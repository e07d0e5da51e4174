"""What reaches the terminal: names and text from files never act on it, signals end in one line."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from qa.interface import cli, progress
from qa.interface.cli import app
from tests.conftest import ROOT

runner = CliRunner()
SPOOF_NAME = "\x1b]8;;mailto:x@evil.example\x07\x1b[2K\x1b[1A\u009b31mnews.txt"
SPOOF_TITLE = "Harbor \x1b[2K\x1b[1Anews \u009b31m\u202eweiv"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / SPOOF_NAME).write_text(
        f"{SPOOF_TITLE}\n\nThe harbor authority approved a new ferry terminal on Friday. "
        "Construction will cost 40 million euros and finish in 2027.", encoding="utf-8")
    (corpus / "binary.txt").write_bytes(b"\x00\x01 not an article")
    return corpus, root / "index"


def _invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("command", [("ask", "Who approved the ferry terminal?"), ("search", "ferry terminal")])
def test_names_and_titles_from_files_never_reach_the_terminal_raw(hostile, command):
    corpus, index = hostile
    result = _invoke(*command, "--corpus", str(corpus), "--index", str(index))
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u009b" not in result.output and "\u202e" not in result.output
    assert "\\x1b" in result.output  # shown, escaped


@pytest.mark.parametrize("command", [("ask", "Who approved the ferry terminal?"), ("search", "ferry terminal")])
def test_json_escapes_c1_controls_and_carries_the_warnings(hostile, command):
    corpus, index = hostile
    shutil.rmtree(index, ignore_errors=True)  # so this command builds, and skips binary.txt
    result = _invoke(*command, "--json", "--corpus", str(corpus), "--index", str(index))
    assert result.exit_code == 0, result.output
    line = result.stdout
    assert all(c.isprintable() for c in line.rstrip("\n"))  # C0, DEL, C1 and bidi overrides escaped
    data = json.loads(line)
    assert data["passages"][0]["source"] == SPOOF_NAME and data["passages"][0]["title"] == SPOOF_TITLE
    assert any("binary.txt" in w and "skipped" in w for w in data["warnings"])


def test_an_interrupted_progress_bar_gives_the_cursor_back(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=80))
    bar = progress.embedding(cli.err)

    def embed_then_ctrl_c():
        bar(0, 100)
        bar(10, 100)
        raise KeyboardInterrupt

    with pytest.raises(cli.typer.Exit) as stop:
        cli._run(embed_then_ctrl_c)
    assert stop.value.exit_code == 130
    shown = screen.getvalue()
    assert "\x1b[?25l" in shown and shown.rindex("\x1b[?25h") > shown.rindex("\x1b[?25l")
    assert "interrupted" in shown and not progress._live


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qa", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_until(predicate, process, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None and not predicate():
        time.sleep(0.01)
    assert process.poll() is None, "the command ended before the signal could be sent"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the imports under way")
def test_ctrl_c_while_still_importing_is_one_line_and_130(tmp_path):
    process = _start(["ask", "who built Stargate data centers", "--index", str(tmp_path / "i")], ROOT)
    maps = Path(f"/proc/{process.pid}/maps")
    _wait_until(lambda: "_multiarray_umath" in maps.read_text(), process)  # numpy loading: imports under way
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == "error: interrupted" and "Traceback" not in stderr


def test_sigterm_during_a_build_is_one_line_143_and_leaves_no_staging(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "seeds", corpus)
    index = tmp_path / "index"
    process = _start(["index", "--corpus", str(corpus), "--index", str(index)], ROOT)
    _wait_until(lambda: index.is_dir() and any(p.name.startswith(".build-") for p in index.iterdir()), process,
                seconds=240)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1].endswith("terminated") and "Traceback" not in stderr
    assert not [p.name for p in index.iterdir() if p.name.startswith((".build-", "gen-"))]


def test_a_damaged_model_file_is_named_not_called_offline(tmp_path):
    from qa.search.embed import packaged_model_dir

    model = tmp_path / "model"
    shutil.copytree(packaged_model_dir(), model)
    weights = model / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("A\n\nThe ferry terminal opened on Friday.", encoding="utf-8")
    result = _invoke("index", "--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "i"),
                     "--model", str(model))
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "model.safetensors are damaged" in line and "offline" not in line


def test_an_index_path_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("A\n\nThe ferry terminal opened on Friday.", encoding="utf-8")
    (tmp_path / "i").write_text("mine", encoding="utf-8")
    result = _invoke("index", "--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "i"))
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    assert "File exists" not in result.output and (tmp_path / "i").read_text(encoding="utf-8") == "mine"
