"""A saved web page's own article: its main text, title, date, author and site, by trafilatura.

trafilatura is the library made for this (boilerplate removal and metadata over many sites and
languages); on the news pages of its public benchmark it keeps the article and drops menus,
share buttons and footers far better than a tag filter (eval/ingest.py). It is imported only
while an index is built: a question never pays for it.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser
from importlib.metadata import version

from qa.corpus.metadata import Extracted

DECLARATION_BYTES = 4096
"""A page's charset is declared near its top (`<meta charset>`, http-equiv or an XML declaration)."""
_DECLARED = re.compile(rb"""(?:<meta[^>]{0,200}?charset\s*=\s*["']?|<\?xml[^>]{0,100}?encoding\s*=\s*["'])([A-Za-z0-9._:-]{1,40})""",
                       re.IGNORECASE)
_WHATWG_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
                   "ascii": "cp1252", "iso-8859-9": "cp1254", "tis-620": "cp874", "x-user-defined": "cp1252"}
"""What browsers decode these labels as (the WHATWG Encoding standard): pages labelled Latin-1 are
in practice windows-1252, whose extra characters (curly quotes, dashes) they use."""
FALLBACK = "cp1252"
"""An undeclared page that is not UTF-8 is read as browsers read it: windows-1252."""


def declared_charset(data: bytes) -> str | None:
    """The Python codec a page declares for itself, if it names one Python knows."""
    for match in _DECLARED.finditer(data[:DECLARATION_BYTES]):
        label = match.group(1).decode("ascii").lower()
        label = _WHATWG_ALIASES.get(label, label)
        try:
            return codecs.lookup(label).name
        except LookupError:
            continue
    return None


def decode_page(data: bytes) -> str:
    """A page's text: as declared, else UTF-8, else windows-1252; bytes no charset maps become
    U+FFFD rather than refusing a whole page for one stray byte."""
    declared = declared_charset(data)
    if declared and declared not in ("utf-8", "utf_8"):
        return data.decode(declared, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8" if declared else FALLBACK, errors="replace")


def extractor_version() -> str:
    """Recorded in an index's settings: another trafilatura may cut other text, so an index built
    with one is rebuilt rather than cited with another's offsets."""
    return f"trafilatura {version('trafilatura')}"


def read_page(html: str) -> Extracted:
    """The article of a page; when trafilatura finds no main text, the page's visible text."""
    import trafilatura

    try:
        found = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, favor_precision=True)
    except Exception:  # a page its parser cannot take is still read, as visible text
        found = None
    if found is None or not (found.text or "").strip():
        text, title = html_to_text(html)
        return Extracted(text=text, title=title or None)
    return Extracted(text=found.text, title=found.title or None, date=found.date or None,
                     author=found.author or None, sitename=found.sitename or None, main_text_only=True)


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page, with block elements on their own lines."""

    SKIP = {"script", "style", "noscript", "nav", "footer", "aside", "form", "svg", "template",
            "iframe", "button", "select"}
    BLOCK = {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "tr",
             "table", "section", "article", "header", "main", "blockquote", "pre", "hr", "dd",
             "dt", "figure", "figcaption", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title: list[str] = []
        self.h1: list[str] = []
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip_depth += 1
        if tag == "title":
            self._in_title = True
        elif tag == "h1":
            self._in_h1 = True
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip_depth:
            self.skip_depth -= 1
        if tag == "title":
            self._in_title = False
        elif tag == "h1":
            self._in_h1 = False
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title.append(data)
            return
        if self._in_h1:
            self.h1.append(data)
        if not self.skip_depth:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(text, title) of an HTML document: one line per block, inline whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = []
    for raw in "".join(parser.parts).split("\n"):
        line = " ".join(raw.split())
        if line:
            lines.append(line)
    title = " ".join("".join(parser.title).split()) or " ".join("".join(parser.h1).split())
    return "\n\n".join(lines), title
