"""Many questions in one process (`qa ask --file`): one JSON object per question line, in order.

Lines are read as bytes and decoded one at a time, so a line that is not UTF-8 is one bad line
and not the end of the file: it gets an object with its number and the error, and the questions
after it are still answered; only a problem of the index or model stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

from qa.api import QA, json_shape


@dataclass
class Question:
    line: int  # 1-based line number in the file
    text: str | None
    problem: str | None = None


def read_questions(stream: BinaryIO) -> Iterator[Question]:
    """The question lines of a file; blank lines are skipped, lines that are not UTF-8 reported."""
    for number, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff" if number == 1 else "")
        except UnicodeDecodeError as exc:
            yield Question(number, None, f"not UTF-8 (byte {exc.start + 1})")
            continue
        if text.strip():
            yield Question(number, text.strip())


def answer_each(qa: QA, questions: Iterator[Question], on_answered: Callable[[], None] | None = None,
                **ask_options) -> Iterator[dict]:
    """`QA.ask` for each question, each object carrying its line number and the notices it caused."""
    for question in questions:
        notices_before = len(qa.warnings)
        if question.problem is None:
            result = {"line": question.line, **json_shape(qa.ask(question.text, **ask_options))}
        else:
            result = {"line": question.line, "question": None, "error": question.problem}
        result["warnings"] = qa.warnings[notices_before:]
        if on_answered is not None:
            on_answered()
        yield result

