"""SQuAD-format questions as training and scoring examples for the reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qa.squad import squad_paragraphs


@dataclass
class Example:
    id: str
    title: str
    context: str
    question: str
    answers: list[tuple[int, str]]  # (character start, text); empty when unanswerable


def load_examples(path: Path) -> list[Example]:
    """Every question of a SQuAD file; an answer not found at its `answer_start` is looked up in the
    context (COVID-QA has 234 such), and dropped when the context does not hold it."""
    paragraphs, _ = squad_paragraphs(path)
    out = []
    for paragraph in paragraphs:
        for qid, question, answers in paragraph.questions:
            placed = []
            for start, text in answers:
                if paragraph.context[start : start + len(text)] != text:
                    start = paragraph.context.find(text)
                if start >= 0 and text.strip():
                    placed.append((start, text))
            if answers and not placed:
                continue
            out.append(Example(qid, paragraph.title, paragraph.context, question, placed))
    return out

