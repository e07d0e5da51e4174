"""SQuAD-format questions as training and scoring examples for the reader, and as the windows it trains on."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.corpus.chunk import split_sentences
from qa.reading.answer import normalize
from qa.reading.squad import squad_paragraphs
from qa.reading.windows import Windower
from qa.search.bm25 import OkapiBM25, tokenize


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


_NAME = re.compile(r"\b[A-Z][\w'-]*(?: [A-Z][\w'-]*)*|\b\d[\d,.]*\d\b|\b\d\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\"“(]\s*)$")


def names_in(text: str) -> list[str]:
    """Capitalized word runs and numbers, a possessive 's dropped: what a question names, and what
    may stand in for it. A single word that opens a sentence is only capitalized there ("Later")."""
    found = []
    for match in _NAME.finditer(text):
        name = match.group().removesuffix("'s")
        before = text[max(match.start() - 3, 0) : match.start()]
        if " " in name or name[0].isdigit() or not _SENTENCE_START.search(before):
            found.append(name)
    return found


def with_swapped_name(example: Example, pool: list[str], rng: random.Random) -> str | None:
    """The question with one name or number it shares with its paragraph replaced by another of the
    same shape from elsewhere in the article that the paragraph never mentions: the paragraph is
    still on topic and close in wording but no longer answers it (one of SQuAD 2.0's commonest kinds
    of unanswerable question, of which squad2-train-10 has only 348 in all). None when nothing fits."""
    if not example.answers:
        return None
    paragraph = f" {normalize(example.context)} "
    anchored = [n for n in names_in(example.question) if f" {normalize(n)} " in paragraph]
    if not anchored:
        return None
    name = rng.choice(anchored)

    def shape(text: str) -> tuple[bool, int]:  # a year for a year, a two-word name for a two-word name
        return text[0].isdigit(), len(text) if text[0].isdigit() else len(text.split())

    stand_ins = sorted({n for n in pool if shape(n) == shape(name) and normalize(n)
                        and f" {normalize(n)} " not in paragraph and n not in example.question})
    if not stand_ins:
        return None
    return re.sub(rf"(?<![\w]){re.escape(name)}(?![\w])", rng.choice(stand_ins), example.question)


def nearest_other(example: Example, others: list[str], bm25: OkapiBM25) -> str | None:
    """The paragraph of `others` (bm25's documents) that best matches the question and holds none of
    its answers: the near miss a retriever puts beside the right passage ("OpenAI's CEO, Sam Altman"
    for "Who is the CEO of Microsoft?"), which a random paragraph of the article rarely is."""
    scores = bm25.get_scores(tokenize(example.question))
    answers = [normalize(text) for _, text in example.answers]
    for k in np.argsort(-scores, kind="stable"):
        if not any(a in normalize(others[k]) for a in answers):
            return others[k]
    return None


def training_windows(examples: list[Example], windower: Windower, distractors: float, removals: float,
                     rng: random.Random, negatives: int | None = None, swaps: float = 0.0, nearest: bool = False):
    """(ids, type_ids, start, end) per window, ids as compact arrays. Every window of a question's
    own paragraph is labelled with the answer's pieces, or (0, 0) ([CLS], "no answer") where it does
    not hold it; a share `distractors` of questions is also asked of a window of another paragraph
    of the same article (with `nearest`, the one that best matches it: `nearest_other`) and a share
    `removals` of their own paragraph without its evidence, both labelled (0, 0), and a share `swaps`
    is asked again of its own paragraph with a name swapped (`with_swapped_name`), labelled (0, 0)
    in every window. `negatives` caps the windows of a question's own paragraph that do not hold its
    answer (COVID-QA's paragraphs are whole papers, ~20 windows each)."""
    by_title: dict[str, list[str]] = {}
    for example in examples:
        contexts = by_title.setdefault(example.title, [])
        if example.context not in contexts:
            contexts.append(example.context)
    names = {title: sorted({n for context in contexts for n in names_in(context)})  # once each, not per mention
             for title, contexts in by_title.items()} if swaps else {}
    pieces_cache: dict[str, tuple] = {}
    bm25_cache: dict[str, tuple[list[str], OkapiBM25]] = {}

    def distractor(example: Example, others: list[str]) -> str | None:
        if not nearest:
            return rng.choice(others)
        if example.context not in bm25_cache:  # the rest of the article, indexed once per paragraph asked of
            bm25_cache[example.context] = others, OkapiBM25([tokenize(c) for c in others])
        return nearest_other(example, *bm25_cache[example.context])

    def pieces(text: str):
        if text not in pieces_cache:
            pieces_cache[text] = windower.passage_pieces([text])[0]
        return pieces_cache[text]

    def row(window, start: int = 0, end: int = 0):
        return np.asarray(window.ids, dtype=np.int32), np.asarray(window.type_ids, dtype=np.int8), start, end

    out = []
    for example in examples:
        own = []
        for window in windower.windows(example.question, [example.context], [pieces(example.context)]):
            covered = None
            if example.answers:
                start, text = example.answers[0]
                covered = window.pieces_covering(start, start + len(text))
            own.append(row(window, *(covered or (0, 0))))
        empty = [k for k, r in enumerate(own) if r[2] == 0]
        if negatives is not None and len(empty) > negatives:  # no draw otherwise: older runs shuffle as they did
            dropped = set(empty) - set(rng.sample(empty, negatives))
            own = [r for k, r in enumerate(own) if k not in dropped]
        out += own
        others = [c for c in by_title[example.title] if c != example.context]
        other = distractor(example, others) if others and rng.random() < distractors else None
        if other:
            out.append(row(rng.choice(windower.windows(example.question, [other], [pieces(other)]))))
        # no draw when removals is 0, so runs made before the option shuffle as they did
        rest = without_evidence(example) if removals and rng.random() < removals else None
        if rest:
            out += [row(w) for w in windower.windows(example.question, [rest])]
        swapped = with_swapped_name(example, names[example.title], rng) if swaps and rng.random() < swaps else None
        if swapped:
            out += [row(w) for w in windower.windows(swapped, [example.context], [pieces(example.context)])]
    return out


def windows_sha256(windows: list) -> str:
    """What a resumed run must train on again, byte for byte."""
    digest = hashlib.sha256()
    for ids, _, start, end in windows:
        digest.update(ids.tobytes())
        digest.update(f"{start},{end};".encode())
    return digest.hexdigest()


def batches(windows: list, batch_size: int, rng: random.Random):
    """Batches of similar length (little padding), in random order."""
    order = list(range(len(windows)))
    rng.shuffle(order)
    pool = 50 * batch_size
    chunks = []
    for at in range(0, len(order), pool):
        group = sorted(order[at : at + pool], key=lambda i: len(windows[i][0]))
        chunks += [group[k : k + batch_size] for k in range(0, len(group), batch_size)]
    rng.shuffle(chunks)
    return chunks
