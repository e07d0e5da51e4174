"""An article's title, its date, its byline and where its body lies, found by general rules.

Nothing here rewrites the text: page furniture (a leading `date` field, trailing link lists and
comment forms) is left out by narrowing the body span, so offsets stay true to the decoded file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

TITLE_MAX_CHARS = 100


@dataclass
class Extracted:
    """What a page or PDF reader gives: the text every offset will index, and what it knows about it."""

    text: str
    title: str | None = None
    date: str | None = None
    author: str | None = None
    sitename: str | None = None
    page_starts: list[int] | None = None  # a PDF's pages: where each begins in `text`
    main_text_only: bool = False
    """The reader kept the article and nothing else (trafilatura, a PDF's text layer): the furniture
    rules, made for plain text, are not applied (on web pages they cut more article than boilerplate)."""


# --------------------------------------------------------------------------- furniture

_COMMENT_FORM = re.compile(
    r"^(leave a (reply|comment)|post (a )?comment|comments?$|\d+ comments?$|cancel reply"
    r"|your email address will not be published|required fields are marked"
    r"|save my name,? email|you must be logged in to post a comment|share this( article)?:?$"
    r"|(related|recommended) (posts|articles|stories)|articles you may like|read more:?$"
    r"|you may also like|more from|subscribe to|sign up for)",
    re.IGNORECASE,
)
_DATE_LINE = re.compile(r"^\s*date[:\s]+(\d{4}-\d{2}-\d{2})\b[ \t]*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def _is_prose(line: str) -> bool:
    """A line that reads like article text, not a link, label or form prompt."""
    return len(line.split()) >= 8 and bool(_SENTENCE_END.search(line)) and not _COMMENT_FORM.match(line)


def body_span(text: str) -> tuple[int, int]:
    """Where the article proper lies: a leading `date YYYY-MM-DD` field and trailing link lists,
    labels and comment forms are cut.

    The date field is metadata (kept as `Article.date`), not text the reader reads; only a question
    about when an article that prints no date came out quotes it (qa/reading/about.py). From the
    end, walks back over lines that are not prose (short link-like titles, section labels,
    comment-form boilerplate). If that would cut everything, nothing is cut.
    """
    date_field = _DATE_LINE.match(text)
    start = date_field.end() if date_field else 0
    start += len(text[start:]) - len(text[start:].lstrip())
    end = len(text.rstrip())
    for match in reversed(list(re.finditer(r"[^\n]*\S[^\n]*", text))):
        if _is_prose(match.group().strip()):
            end = match.start() + len(match.group().rstrip())
            break
    return start, end


# --------------------------------------------------------------------------- metadata

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DATELINE = re.compile(
    r"\b(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\s+(?P<day>\d{1,2}),\s+(?P<year>\d{4})\b"
)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


HEADER_CHARS = 1000
"""An article's byline and dateline are looked for this near its top."""
_NOT_A_DATE = r"(?!(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?[ \t]+\d)"
_NAME = rf"[A-Z][\w'’.-]*(?:[ \t]+{_NOT_A_DATE}[A-Z][\w'’.-]*)*"  # a date ends the names: "By Jane Roe Apr 2, 2025"
_NEXT_NAME = rf"(?:,[ \t]*|[ \t]+and[ \t]+){_NOT_A_DATE}"  # and "By Jane Roe, Apr 2, 2025"
_BYLINE = re.compile(rf"[ \t]*(?:By|BY)[ \t]+({_NAME}(?:{_NEXT_NAME}{_NAME})*)")
_SHORT_LINE_WORDS = 12
"""A byline is a short line ("By Monday, the company had ..." opens a sentence), and so is a line
whose bare ISO date is the article's (in prose it is some other date)."""


def _header_lines(text: str) -> Iterator[tuple[re.Match, bool]]:
    """(line, whether it is short) for the lines of an article's header."""
    for line in re.finditer(r"[^\n]+", text[:HEADER_CHARS]):
        yield line, len(line.group().split()) <= _SHORT_LINE_WORDS


def dateline_span(text: str) -> tuple[int, int] | None:
    """Offsets in an article's text of the first date its header writes out ("Jun 13, 2024" or 2024-06-13)."""
    for line, short in _header_lines(text):
        found = _DATELINE.search(line.group()) or (_ISO_DATE.search(line.group()) if short else None)
        if found:
            return line.start() + found.start(), line.start() + found.end()
    return None


def byline_span(text: str) -> tuple[int, int] | None:
    """Offsets in an article's text of the writers' names on a "By ..." line of its header."""
    for line, short in _header_lines(text):
        found = _BYLINE.match(line.group()) if short else None
        if found:
            return line.start() + found.start(1), line.start() + found.end(1)
    return None


def find_date(text: str) -> str | None:
    """ISO date an article states near its top: a `date YYYY-MM-DD` line or a dateline."""
    field = _DATE_LINE.match(text)
    if field:
        return field.group(1)
    span = dateline_span(text)
    if span is None:
        return None
    written = text[span[0] : span[1]]
    m = _DATELINE.fullmatch(written)
    if m is None:
        return written
    month = _MONTHS.index(m.group("mon")[:3].lower()) + 1
    return f"{int(m.group('year')):04d}-{month:02d}-{int(m.group('day')):02d}"


def shorten(text: str, limit: int = TITLE_MAX_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def find_title(text: str, fallback: str) -> str:
    """First line of the article (markdown `#` and a leading date line removed)."""
    for line in text.splitlines():
        line = _DATE_LINE.sub("", line).strip().lstrip("#").strip()
        if line:
            return shorten(line)
    return fallback
