"""Split article text into sentences and overlapping passages, keeping exact character offsets."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from qa.corpus import wordlists
from qa.corpus.ingest import Article

MIN_WORDS = 40
MAX_WORDS = 150
OVERLAP_SENTENCES = 1
MAX_SENTENCE_WORDS = 200
"""A run of more words than this without sentence punctuation is not a sentence; it is cut at words."""

# Tokens that end with a period without ending a sentence.
_ABBREVIATIONS = wordlists.word_set("abbreviations.txt")
# Candidate boundary: terminal punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_LINE_BREAK = re.compile(r"\n\s*")
_WORD = re.compile(r"\S+")


UNKNOWN_LEFT_OUT = ("author", "sitename", "page")


@dataclass
class Passage:
    source: str
    title: str
    date: str | None
    start: int
    end: int
    text: str
    author: str | None = None
    sitename: str | None = None
    page: int | None = None  # a PDF's page (from 1) the passage lies on

    def to_dict(self) -> dict:
        """What the index stores: the fields most passages lack (author, site, page) only when known;
        `Passage(**stored)` gives them back their defaults."""
        return {name: value for name, value in asdict(self).items() if value is not None or name not in UNKNOWN_LEFT_OUT}


def _ends_sentence(text: str, boundary_end: int) -> bool:
    """Whether the punctuation ending at `boundary_end` closes a sentence."""
    # Only the word before the boundary matters: look at a bounded window (long texts stay linear).
    before = text[max(0, boundary_end - 64) : boundary_end].rstrip("\"'”’)]")
    if not before.endswith("."):
        return True
    word = re.search(r"(\S+)\.$", before)
    token = word.group(1).lower().lstrip("(\"'“‘") if word else ""
    if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
        return False
    # "U.S." style initialisms: a letter-dot pattern inside the token.
    if re.fullmatch(r"(?:[a-z]\.)+[a-z]", token):
        return False
    following = text[boundary_end : boundary_end + 64].lstrip()
    # A lowercase continuation means the period did not end the sentence ("approx. five").
    return not (following[:1].islower())


def _split_long(text: str, start: int, end: int) -> list[tuple[int, int]]:
    words = list(_WORD.finditer(text, start, end))
    spans = []
    for i in range(0, len(words), MAX_SENTENCE_WORDS):
        chunk = words[i : i + MAX_SENTENCE_WORDS]
        spans.append((chunk[0].start(), chunk[-1].end()))
    return spans


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence in text[start:end]; line breaks always end a sentence.

    Spans are trimmed of surrounding whitespace and never overlap.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []

    def emit(a: int, b: int) -> None:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a >= b:
            return
        if len(_WORD.findall(text, a, b)) > MAX_SENTENCE_WORDS:
            spans.extend(_split_long(text, a, b))
        else:
            spans.append((a, b))

    line_start = start
    for line_break in list(_LINE_BREAK.finditer(text, start, end)) + [None]:
        line_end = line_break.start() if line_break else end
        sentence_start = line_start
        for m in _BOUNDARY.finditer(text, line_start, line_end):
            if _ends_sentence(text, m.end()):
                emit(sentence_start, m.end())
                sentence_start = m.end()
        emit(sentence_start, line_end)
        if line_break:
            line_start = line_break.end()
    return spans


def _word_count(text: str, span: tuple[int, int]) -> int:
    return len(_WORD.findall(text, span[0], span[1]))


def chunk_article(article: Article, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS,
                  overlap: int = OVERLAP_SENTENCES) -> list[Passage]:
    """Whole-sentence passages of about min..max words; consecutive ones share `overlap` sentences.
    A PDF's pages are cut apart, so that every passage, and so every citation, lies on one page."""
    if not article.page_starts:
        return _chunk_span(article, article.body_start, article.body_end, None, min_words, max_words, overlap)
    ends = article.page_starts[1:] + [len(article.text)]
    return [passage for number, (start, end) in enumerate(zip(article.page_starts, ends), start=1)
            for passage in _chunk_span(article, max(start, article.body_start), min(end, article.body_end), number,
                                       min_words, max_words, overlap)]


def _chunk_span(article: Article, begin: int, stop: int, page: int | None, min_words: int, max_words: int,
                overlap: int) -> list[Passage]:
    text = article.text
    sentences = split_sentences(text, begin, stop) if begin < stop else []
    counts = [_word_count(text, s) for s in sentences]
    passages: list[Passage] = []
    i = 0
    while i < len(sentences):
        j, words = i, 0
        while j < len(sentences) and (j == i or words + counts[j] <= max_words or words < min_words):
            words += counts[j]
            j += 1
            if words >= max_words:
                break
        start, end = sentences[i][0], sentences[j - 1][1]
        passages.append(Passage(article.source, article.title, article.date, start, end, text[start:end],
                                article.author, article.sitename, page))
        if j >= len(sentences):
            break
        i = max(j - overlap, i + 1)
    return passages
