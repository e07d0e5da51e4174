"""Extractive answering: the reader's best spans among the retrieved passages, cited exactly.

Every answer is a slice of an article; nothing is generated. The reader (qa/reading/read.py, or a user's
transformers model through qa/reading/transformers_reader.py) scores the spans of all passages read together. The best
span's evidence (its margin over "no answer", its lead over the best other answer, how many
passages agree on it) becomes a confidence through the reader's calibration, which says one of
three things: an answer; below its threshold, a best guess marked as unsure; below the guess
threshold, no answer. Runners-up (distinct answers, best first) come with either of the first two.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from qa.corpus.chunk import Passage, split_sentences
from qa.reading.read import LEAD_CAP, Calibration, Evidence
from qa.reading.spans import SpanChoice

SPANS_PER_WINDOW = 3
EARLY_PASSAGES = 2
"""Read first (one window each on two cores: one round); the passages ranked below them only when the
calibration's `early_margin` is not reached there."""
CITE_MARGIN = 1.0
"""Another article is cited beside the best span when it holds the same answer with a margin at most
this much lower (a fact several articles report is cited in each of them)."""
_EDGE_PUNCTUATION = set(" \t\n,.;:!?\"'“”‘’([{)]}")
_BRACKETS = ("()", "[]", "{}")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # no answer runs from one paragraph into the next (a byline into the story)


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
    author: str | None = None
    sitename: str | None = None
    page: int | None = None  # a PDF's page (from 1) the quote is on


def cite(passage: Passage, start: int, end: int) -> Citation:
    """Where text[start:end] of a passage lies in its article, with what is known of the article."""
    return Citation(passage.source, passage.title, passage.date, passage.start + start, passage.start + end,
                    passage.text[start:end], passage.author, passage.sitename, passage.page)


@dataclass
class Candidate:
    """A span offered as a best guess or a runner-up: its confidence, its sentence, where it is."""

    answer: str
    confidence: float
    sentence: str
    answer_in_sentence: tuple[int, int]
    citation: Citation


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
    evidence: Evidence | None = None  # of the best span, which the confidence was computed from
    best_guess: Candidate | None = None  # the best span when it is below the answering threshold only
    alternatives: list[Candidate] = field(default_factory=list)  # runners-up after the answer or best guess
    header: str | None = None  # "byline" or "dateline": answered from the article's header (qa/reading/about.py)
    read: int | None = None  # how many of the passages (the first ones) the reader read; None: not answered by it


def normalize(text: str) -> str:
    """SQuAD normalization: lowercase, punctuation deleted (ASCII and Unicode, curly quotes too),
    a/an/the dropped, whitespace collapsed."""
    text = "".join(c for c in text.lower() if c not in string.punctuation and not unicodedata.category(c).startswith("P"))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def same_answer(key: str, other: str) -> bool:
    """Two normalized spans give the same answer when one is the other or a run of its words: "Altman"
    is "Sam Altman" said shorter, not a competing answer."""
    if not key or not other:
        return key == other
    return f" {key} " in f" {other} " or f" {other} " in f" {key} "


def read_spans(question: str, passages: Sequence[Passage], reader: SpanReader, early: bool = True) -> list[SpanChoice]:
    """The reader's candidate spans of the passages (in retrieval order), widened to whole words,
    none across a blank line, best first by their margin less the calibration's rank penalty. With
    `early`, the passages after the first EARLY_PASSAGES are read only when those give no span from
    the calibration's `early_margin` (`passages_read`); without, all are (for runners-up)."""
    stops = early and reader.calibration.early_margin is not None
    first = min(EARLY_PASSAGES, len(passages)) if stops else len(passages)
    found = _spans_of(question, passages, 0, first, reader)
    if passages_read(found, len(passages), reader.calibration) > first:
        found = sorted(found + _spans_of(question, passages, first, len(passages), reader), key=lambda span: -span.margin)
    return found


def passages_read(found: Sequence[SpanChoice], count: int, calibration: Calibration) -> int:
    """How many of `count` passages `read_spans` reads, given the spans of the first EARLY_PASSAGES:
    a span from `early_margin` there is rarely beaten by a lower-ranked passage (the rank penalty
    holds those back; docs/experiments.md), so the rest are not read."""
    early = calibration.early_margin
    stops = early is not None and bool(found) and found[0].passage < EARLY_PASSAGES and found[0].margin >= early
    return min(EARLY_PASSAGES, count) if stops else count


def _spans_of(question: str, passages: Sequence[Passage], first: int, last: int, reader: SpanReader) -> list[SpanChoice]:
    """Spans of passages[first:last], numbered and penalized by their place among all the passages."""
    penalty = reader.calibration.rank_penalty
    found = []
    chosen = passages[first:last]
    for span in reader.spans(question, [p.text for p in chosen], SPANS_PER_WINDOW) if chosen else []:
        number = first + span.passage
        start, end = _whole_words(passages[number].text, span.start, span.end)
        if start < end and not _PARAGRAPH_BREAK.search(passages[number].text, start, end):
            found.append(SpanChoice(number, start, end, span.margin - penalty * number))
    return sorted(found, key=lambda span: -span.margin)


def answer(question: str, passages: Sequence[Passage], reader: SpanReader, answers: int = 1,
           found: Sequence[SpanChoice] | None = None) -> Answer:
    """The best span of the passages read as an answer, a best guess or an abstention; with either of
    the first two, up to `answers` - 1 runners-up, for which every passage is read (the answer's
    lead and agreement then count them all). `found`: the passages' `read_spans`, if read already."""
    calibration = reader.calibration
    found = read_spans(question, passages, reader, early=answers == 1) if found is None else found
    readings = best_per_passage(found, len(passages))
    read = passages_read(found, len(passages), calibration) if answers == 1 else len(passages)
    if not found:
        return Answer(question, None, 0.0, None, None, None, None, [], readings, read=read)
    ranked = distinct_spans(found, passages, max(answers, 2))
    best = ranked[0]
    evidence = span_evidence(best, ranked[1:], readings, passages)
    confidence = calibration.confidence(evidence)
    guess = calibration.guess_threshold
    if confidence < calibration.threshold and (guess is None or confidence < guess):
        return Answer(question, None, confidence, None, None, None, None, [], readings, evidence, read=read)
    alternatives = [_candidate(span, [s for s in ranked if s is not span], readings, passages, calibration)
                    for span in ranked[1:answers]]
    if confidence < calibration.threshold:
        chosen = _candidate(best, ranked[1:], readings, passages, calibration)
        return Answer(question, None, confidence, None, None, None, None, [], readings, evidence, chosen, alternatives,
                      read=read)
    passage = passages[best.passage]
    sentence_start, sentence_end = _sentence_around(passage.text, best)
    return Answer(question, passage.text[best.start : best.end], confidence,
                  passage.text[sentence_start:sentence_end], passage.start + sentence_start,
                  passage.start + best.start, passage.start + best.end, _citations(found, passages), readings,
                  evidence, None, alternatives, read=read)


def distinct_spans(found: Sequence[SpanChoice], passages: Sequence[Passage], limit: int) -> list[SpanChoice]:
    """The best `limit` spans that are different answers: none overlaps another in the same article,
    and none is the same answer as a better one (`same_answer`)."""
    chosen: list[SpanChoice] = []
    seen: list[str] = []
    for span in found:
        passage = passages[span.passage]
        key = normalize(passage.text[span.start : span.end])
        start, end = passage.start + span.start, passage.start + span.end
        if any(same_answer(key, other) for other in seen) or any(passages[c.passage].source == passage.source
                              and passages[c.passage].start + c.start < end and start < passages[c.passage].start + c.end
                              for c in chosen):
            continue
        chosen.append(span)
        seen.append(key)
        if len(chosen) == limit:
            break
    return chosen


def span_evidence(span: SpanChoice, others: Sequence[SpanChoice], readings: Sequence[SpanChoice | None],
                  passages: Sequence[Passage]) -> Evidence:
    """A span's evidence: its margin, its lead over the best other distinct answer (`others`, best
    first) and the number of other passages whose own best span reads the same once normalized."""
    key = normalize(passages[span.passage].text[span.start : span.end])
    lead = span.margin - others[0].margin if others else LEAD_CAP
    agreement = sum(1 for number, reading in enumerate(readings)
                    if reading is not None and number != span.passage
                    and normalize(passages[number].text[reading.start : reading.end]) == key)
    return Evidence(span.margin, lead, agreement)


def _sentence_around(text: str, span: SpanChoice) -> tuple[int, int]:
    overlapping = [(a, b) for a, b in split_sentences(text) if a < span.end and b > span.start]
    return min([a for a, _ in overlapping] + [span.start]), max([b for _, b in overlapping] + [span.end])


def _candidate(span: SpanChoice, others: Sequence[SpanChoice], readings: Sequence[SpanChoice | None],
               passages: Sequence[Passage], calibration: Calibration) -> Candidate:
    passage = passages[span.passage]
    sentence_start, sentence_end = _sentence_around(passage.text, span)
    quote = passage.text[span.start : span.end]
    return Candidate(quote, calibration.confidence(span_evidence(span, others, readings, passages)),
                     passage.text[sentence_start:sentence_end],
                     (span.start - sentence_start, span.end - sentence_start),
                     cite(passage, span.start, span.end))


def best_per_passage(found: Sequence[SpanChoice], count: int) -> list[SpanChoice | None]:
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
    for opening, closing in _BRACKETS:  # "Processing Units (GPUs" is closed: "(GPUs)"
        unclosed = text.count(opening, start, end) > text.count(closing, start, end)
        if unclosed and end < len(text) and text[end] == closing:
            end += 1
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
        cited[passage.source] = cite(passage, span.start, span.end)
    return list(cited.values())
