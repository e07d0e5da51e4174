"""SQuAD-format questions as training and scoring examples for the reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qa.answer import normalize
from qa.chunk import split_sentences
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


def without_evidence(example: Example) -> str | None:
    """The example's paragraph with every sentence that holds a gold answer removed: the same
    article and topic, but nothing that answers the question. SQuAD 2.0's own unanswerable
    questions are few here (348), and a reader that has only seen "no answer" on unrelated
    paragraphs learns to abstain on topic, not on evidence. None when too little is left or an
    answer still occurs in what is left (a name repeated in another sentence)."""
    if not example.answers:
        return None
    sentences = split_sentences(example.context)
    kept = [(a, b) for a, b in sentences
            if not any(a < start + len(text) and start < b for start, text in example.answers)]
    if len(kept) < 2:
        return None
    rest = " ".join(example.context[a:b] for a, b in kept)
    words = f" {normalize(rest)} "
    if any(f" {normalize(text)} " in words for _, text in example.answers):
        return None
    return rest
