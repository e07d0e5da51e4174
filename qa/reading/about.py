"""Questions about an article itself (who wrote it, when it came out), answered from its header.

The reader learned to answer from what a story says, so "who wrote the article about the strike?"
gets a name from the story. The article's byline or dateline says it instead. The article meant is
the one holding most of the retrieval score of the passages read, and that share is the confidence:
the header is read, not guessed; which article is meant is not. The answer is quoted from the
article with exact offsets, as every answer is, or there is none when its header names no writer
(or date): a name from the story would be a wrong answer given with confidence.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Sequence

from qa.corpus.ingest import Article
from qa.corpus.metadata import byline_span, dateline_span
from qa.reading.answer import Answer, Citation

_NOUNS = "article|story|column|editorial"
_ARTICLE = re.compile(rf"(?<!short )\b(?:{_NOUNS}|articles|byline)\b(?! of\b)")
"""Lower case: "The Untold Story" is a title; "the story of Crassus" and "the article of the treaty" are
not a news article."""
_AUTHORING = {"wrote", "write", "writes", "written", "author", "authored", "authors", "penned", "writer", "writers",
             "reporter", "journalist", "byline"}
_PUBLISHING = {"published", "publish", "publication", "posted", "dated", "appeared", "released", "written", "ran"}
_WORD = re.compile(r"[\w'’-]+")
_REFERENCE = re.compile(rf"\b(?:according to|in|from|per) (?:the|this|that) (?:{_NOUNS})\b"
                        rf"|\b(?:the|this|that) (?:{_NOUNS}) (?:says?|said|states?|reports?|mentions?)\b", re.IGNORECASE)
""""According to the article, who wrote the letter?" names the article as a source, not as the subject."""
_WHEN = re.compile(r"\bwhen\b|\bdate\b|\b(?:what|which) day\b")


def asks_about_article(question: str) -> str | None:
    """What answers a question about the article itself: "byline" when it asks who wrote an article,
    "dateline" when it asks when it came out; None for any other question."""
    subject = _REFERENCE.sub(" ", question)
    if not _ARTICLE.search(subject):
        return None
    text = subject.lower()
    words = set(_WORD.findall(text))
    if words & {"who", "whom", "whose"} and words & _AUTHORING:
        return "byline"
    if _WHEN.search(text) and words & _PUBLISHING:
        return "dateline"
    return None


def article_meant(sources: Sequence[str], scores: Sequence[float]) -> tuple[str, float]:
    """The article holding most of the retrieval score of the passages read, and its share of it."""
    share: dict[str, float] = {}
    for source, score in zip(sources, scores):
        share[source] = share.get(source, 0.0) + max(score, 0.0)
    source = max(share, key=share.get)
    total = sum(share.values())
    return source, share[source] / total if total > 0 else 0.0


def answer_about(question: str, header: str, article: Article, share: float, passages_read: int) -> Answer:
    """The writers' names on the article's byline or the date its header gives (`header`, as
    `asks_about_article` said), with `share` as the confidence; no answer when the header has none."""
    span = byline_span(article.text) if header == "byline" else _published_span(article)
    readings = [None] * passages_read  # the reader read nothing
    if span is None:
        return Answer(question, None, 0.0, None, None, None, None, [], readings, header=header)
    start, end = span
    line_start = article.text.rfind("\n", 0, start) + 1
    line_end = article.text.find("\n", end)
    line = article.text[line_start : line_end if line_end >= 0 else None]  # the header line is its sentence
    line_start += len(line) - len(line.lstrip())
    quote = article.text[start:end]
    page = bisect_right(article.page_starts, start) if article.page_starts else None
    citation = Citation(article.source, article.title, article.date, start, end, quote, article.author,
                        article.sitename, page)
    return Answer(question, quote, share, line.strip(), line_start, start, end, [citation], readings, header=header)


def _published_span(article: Article) -> tuple[int, int] | None:
    """The date the article's own header prints ("By Ann Lee, Jun 13, 2024"), else a leading `date`
    line before it, which is the saved file's record rather than the article's words."""
    printed = dateline_span(article.text[article.body_start :])
    if printed is not None:
        return article.body_start + printed[0], article.body_start + printed[1]
    return dateline_span(article.text)
