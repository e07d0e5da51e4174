"""`qa ask --file`: one JSON object per question line, in order, bad lines reported and passed over."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from qa.interface.batch import read_questions
from qa.interface.cli import app
from tests.conftest import ROOT, SEEDS
from tests.terminal import Terminal, environment

runner = CliRunner()
FIRST, SECOND = "Who is the chairman of Oracle?", "What is the price of an Nvidia H100 GPU?"


def test_question_lines_skip_blanks_and_report_bytes_that_are_not_utf8():
    stream = io.BytesIO(b"\xef\xbb\xbfFirst?\n\n   \nbad \xff line\r\nLast?")
    questions = list(read_questions(stream))
    assert [(q.line, q.text) for q in questions] == [(1, "First?"), (4, None), (5, "Last?")]
    assert questions[1].problem == "not UTF-8 (byte 5)"


@pytest.mark.slow
def test_a_file_of_questions_gives_json_lines_in_order_past_a_bad_line(seeds_qa, seeds_index, tmp_path):
    questions = tmp_path / "questions.txt"
    questions.write_bytes(f"{FIRST}\n\n\xff\n{SECOND}\n".encode("latin-1"))
    result = runner.invoke(app, ["ask", "--file", str(questions), "--corpus", str(SEEDS), "--index", str(seeds_index)])
    assert result.exit_code == 1  # some lines were bad; every other one was still answered
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 3, 4]
    assert rows[1] == {"line": 3, "question": None, "error": "not UTF-8 (byte 1)", "warnings": []}
    for row, question in ((rows[0], FIRST), (rows[2], SECOND)):
        single = seeds_qa.ask(question)
        single.pop("answer_in_sentence")
        assert {key: row[key] for key in single} == single
        assert set(row) == {"line", *single, "warnings"}
    assert result.stderr.strip() == "error: line 3: not UTF-8 (byte 1)"


def test_questions_on_stdin(seeds_qa, seeds_index):
    result = runner.invoke(app, ["ask", "-f", "-", "--corpus", str(SEEDS), "--index", str(seeds_index)],
                           input=f"{SECOND}\n{FIRST}\n".encode())
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(row["line"], row["answer"]) for row in rows] == [
        (1, seeds_qa.ask(SECOND)["answer"]), (2, seeds_qa.ask(FIRST)["answer"])]


def test_a_question_and_a_file_together_is_one_line_of_error(tmp_path):
    result = runner.invoke(app, ["ask", FIRST, "--file", "-", "--index", str(tmp_path / "i")])
    assert result.exit_code == 2 and "not both" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_progress_bar_runs_on_stderr_when_it_is_a_terminal(seeds_index, tmp_path):
    questions = tmp_path / "questions.txt"
    questions.write_text(f"{FIRST}\n{SECOND}\n", encoding="utf-8")
    terminal = Terminal(["ask", "--file", str(questions), "--corpus", str(SEEDS), "--index", str(seeds_index)],
                        environment(), ROOT)
    terminal.expect('{"line": 2')
    assert terminal.wait() == 0
    assert "answering" in terminal.seen and "/2" in terminal.seen
