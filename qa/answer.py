"""Extractive answering: the reader's best span among the retrieved passages, cited exactly.

Every answer is a slice of an article; nothing is generated. The reader (qa/read.py, or a user's
transformers model through qa/reader.py) scores the spans of all passages read together; the
best span's margin over "no answer" becomes the confidence through the reader's calibration, and
below the calibration's threshold the answerer abstains.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Protocol, Sequence

from qa.chunk import Passage, split_sentences
from qa.read import Calibration
from qa.spans import SpanChoice

SPANS_PER_WINDOW = 3
CITE_MARGIN = 1.0
"""Another article is cited beside the best span when it holds the same answer with a margin at most
this much lower (a fact several articles report is cited in each of them)."""
_EDGE_PUNCTUATION = set(" \t\n,.;:!?\"'“”‘’([{)]}")


class SpanReader(Protocol):
    calibration: Calibration

    def spans(self, question: str, passages: Sequence[str], per_window: int = 1) -> list[SpanChoice]: ...


@dataclass
class Citation:
    source: str
    title: str
    date: str | None
    start: int
    end: int
    quote: str


@dataclass
class Answer:
    question: str
    answer: str | None
    confidence: float
    sentence: str | None
    sentence_start: int | None  # absolute offsets of `sentence` in the first cited article
    answer_start: int | None
    answer_end: int | None
    citations: list[Citation]
    readings: list[SpanChoice | None]  # each passage's best span, in passage order: why this answer


def normalize(text: str) -> str:
    """SQuAD normalization: lowercase, punctuation deleted (ASCII and Unicode, curly quotes too),
    a/an/the dropped, whitespace collapsed."""
    text = "".join(c for c in text.lower() if c not in string.punctuation and not unicodedata.category(c).startswith("P"))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def read_spans(question: str, passages: Sequence[Passage], reader: SpanReader) -> list[SpanChoice]:
    """The reader's candidate spans of the passages (in retrieval order), widened to whole words,
    best first by their margin less the calibration's rank penalty."""
    penalty = reader.calibration.rank_penalty
    found = []
    for span in reader.spans(question, [p.text for p in passages], SPANS_PER_WINDOW) if passages else []:
        start, end = _whole_words(passages[span.passage].text, span.start, span.end)
        if start < end:
            found.append(SpanChoice(span.passage, start, end, span.margin - penalty * span.passage))
    return sorted(found, key=lambda span: -span.margin)


def answer(question: str, passages: Sequence[Passage], reader: SpanReader) -> Answer:
    """The best span of the passages read, or an abstention when the reader is not confident enough."""
    found = read_spans(question, passages, reader)
    readings = _best_per_passage(found, len(passages))
    if not found:
        return Answer(question, None, 0.0, None, None, None, None, [], readings)
    best = found[0]
    confidence = reader.calibration.confidence(best.margin)
    if confidence < reader.calibration.threshold:
        return Answer(question, None, confidence, None, None, None, None, [], readings)
    passage = passages[best.passage]
    overlapping = [(a, b) for a, b in split_sentences(passage.text) if a < best.end and b > best.start]
    sentence_start = min([a for a, _ in overlapping] + [best.start])
    sentence_end = max([b for _, b in overlapping] + [best.end])
    return Answer(question, passage.text[best.start : best.end], confidence,
                  passage.text[sentence_start:sentence_end], passage.start + sentence_start,
                  passage.start + best.start, passage.start + best.end, _citations(found, passages), readings)


def _best_per_passage(found: Sequence[SpanChoice], count: int) -> list[SpanChoice | None]:
    best: list[SpanChoice | None] = [None] * count
    for span in found:  # best first, so the first of each passage is its best
        if best[span.passage] is None:
            best[span.passage] = span
    return best


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """A span of word pieces widened to whole words and stripped of the punctuation around it."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
        end += 1
    while start < end and text[start] in _EDGE_PUNCTUATION:
        start += 1
    while end > start and text[end - 1] in _EDGE_PUNCTUATION:
        end -= 1
    return start, end


def _citations(found: Sequence[SpanChoice], passages: Sequence[Passage]) -> list[Citation]:
    """The best span, then the same answer in every other article where it scores nearly as well."""
    best = found[0]
    key = normalize(passages[best.passage].text[best.start : best.end])
    cited: dict[str, Citation] = {}
    for span in found:
        if span.margin < best.margin - CITE_MARGIN:
            break
        passage = passages[span.passage]
        quote = passage.text[span.start : span.end]
        if passage.source in cited or normalize(quote) != key:
            continue
        cited[passage.source] = Citation(passage.source, passage.title, passage.date, passage.start + span.start,
                                         passage.start + span.end, quote)
    return list(cited.values())
