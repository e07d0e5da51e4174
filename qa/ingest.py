"""Read a folder of articles into clean text, keeping every offset true to the decoded file.

The article text is never rewritten: page furniture is excluded by narrowing the *body* span,
so a citation's `start`/`end` always index the same string a user gets by decoding the file
(for HTML, by reducing it to text with `html_to_text`).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from qa.errors import QAError

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm")
HTML_SUFFIXES = (".html", ".htm")
MAX_FILE_BYTES = 20 * 1024 * 1024
"""Articles are read whole; a bigger file is refused (with a warning) rather than exhausting memory."""

TITLE_MAX_CHARS = 100


class CorpusError(QAError):
    """The corpus as a whole cannot be used (missing, empty, nothing readable)."""


@dataclass
class Article:
    source: str  # path relative to the corpus folder, with forward slashes
    title: str
    date: str | None
    text: str  # the decoded text every offset refers to
    body_start: int  # article content lies in text[body_start:body_end]
    body_end: int
    sha256: str  # of the file's bytes


@dataclass
class CorpusFile:
    path: Path
    source: str
    size: int
    mtime_ns: int


@dataclass
class Corpus:
    files: list[CorpusFile]  # everything listed, including files that were skipped
    articles: list[Article]
    skipped: list[str] = field(default_factory=list)  # one warning line per file left out


# --------------------------------------------------------------------------- listing


@dataclass
class Listing:
    files: list[CorpusFile]
    outside_links: list[str]  # links left out because they lead out of the corpus folder


def list_corpus(folder: str | os.PathLike, follow_links: bool = False) -> Listing:
    """Every supported file under `folder`, recursively, sorted by relative path.

    Links within the folder are followed (a folder reached twice is read once); links leading out of
    it only with `follow_links`, so an answer never quotes a file the user did not put in the corpus.
    The walk keeps its own stack: a tree thousands of levels deep is fine.
    """
    root = Path(folder)
    if not root.exists():
        raise CorpusError(f"corpus folder not found: {root}")
    if not root.is_dir():
        raise CorpusError(f"corpus path is not a folder: {root}")
    real_root = root.resolve()
    found: list[CorpusFile] = []
    outside: list[str] = []
    seen_dirs: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            st = directory.stat()
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
                wanted = is_dir or (entry.is_file() and entry.name.lower().endswith(SUPPORTED_SUFFIXES))
                if not wanted:
                    continue
                rel = Path(entry.path).relative_to(root).as_posix()
                if entry.is_symlink() and not follow_links and not Path(entry.path).resolve().is_relative_to(real_root):
                    outside.append(rel)
                elif is_dir:
                    pending.append(Path(entry.path))
                else:
                    est = entry.stat()
                    found.append(CorpusFile(Path(entry.path), rel, est.st_size, est.st_mtime_ns))
            except OSError:
                continue  # dangling symlink or vanished file
    found.sort(key=lambda f: f.source)
    return Listing(found, sorted(outside))


# --------------------------------------------------------------------------- decoding


BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
"""UTF-32 first: its little-endian BOM begins with UTF-16's."""


def decode(data: bytes, name: str) -> str:
    """UTF-8, or UTF-16/32 when a BOM says so (the BOM is dropped). Anything else is refused, and so
    is text holding a NUL anywhere, so offsets can be trusted and binary files stay out."""
    encoding = next((codec for bom, codec in BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not valid {encoding.upper().removesuffix('-SIG')} (byte {exc.start}); "
                         "convert it to UTF-8") from None
    if "\x00" in text:
        raise ValueError(f"{name}: looks binary (NUL characters), not a text article")
    return text


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

    The date field is metadata (kept as `Article.date`), not text an answer may quote. From the
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
"""An article's dateline is looked for this near its top."""
_SHORT_LINE_WORDS = 12
"""A line whose bare ISO date is the article's is short (in prose it is some other date)."""


def _header_lines(text: str, offset: int) -> Iterator[tuple[re.Match, bool]]:
    """(line, whether it is short) for the lines of `text`, which starts `offset` characters into
    its article, that lie in the article's header."""
    for line in re.finditer(r"[^\n]+", text[: max(HEADER_CHARS - offset, 0)]):
        yield line, len(line.group().split()) <= _SHORT_LINE_WORDS


def dateline_span(text: str, offset: int = 0) -> tuple[int, int] | None:
    """Offsets in `text` of the first date its header writes out ("Jun 13, 2024" or 2024-06-13)."""
    for line, short in _header_lines(text, offset):
        found = _DATELINE.search(line.group()) or (_ISO_DATE.search(line.group()) if short else None)
        if found:
            return line.start() + found.start(), line.start() + found.end()
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


# --------------------------------------------------------------------------- reading


def read_article(file: CorpusFile) -> Article:
    """One article; raises ValueError with a one-line reason when it cannot be used."""
    if file.size > MAX_FILE_BYTES:
        raise ValueError(
            f"{file.source}: {file.size / 2**20:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit per article; split it"
        )
    try:
        data = file.path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{file.source}: cannot read ({exc.strerror or exc})") from None
    text = decode(data, file.source)
    html_title = ""
    if file.source.lower().endswith(HTML_SUFFIXES):
        text, html_title = html_to_text(text)
    return article_from_text(file.source, text, title=html_title or None, sha256=hashlib.sha256(data).hexdigest())


def article_from_text(source: str, text: str, title: str | None = None, sha256: str | None = None) -> Article:
    """An article from text already in memory (the title and date are found when not given)."""
    if not text.strip():
        raise ValueError(f"{source}: empty, nothing to index")
    start, end = body_span(text)
    return Article(
        source=source,
        title=shorten(title) if title else find_title(text, Path(source).stem),
        date=find_date(text),
        text=text,
        body_start=start,
        body_end=end,
        sha256=sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def read_corpus(folder: str | os.PathLike, strict: bool = False, follow_links: bool = False) -> Corpus:
    """All usable articles under `folder`. A bad file is skipped with a warning (an error if strict)."""
    listing = list_corpus(folder, follow_links)
    files = listing.files
    corpus = Corpus(files=files, articles=[])
    if listing.outside_links:
        shown = ", ".join(listing.outside_links[:5]) + (" …" if len(listing.outside_links) > 5 else "")
        corpus.skipped.append(f"{len(listing.outside_links)} link(s) leading out of the corpus folder, not followed: "
                              f"{shown} (pass --follow-links to index them)")
    if not files:
        raise CorpusError(
            f"no articles in {folder}: expected {', '.join(SUPPORTED_SUFFIXES)} files"
            + (f"; {corpus.skipped[0]}" if corpus.skipped else "")
        )
    for file in files:
        try:
            corpus.articles.append(read_article(file))
        except ValueError as exc:
            if strict:
                raise CorpusError(str(exc)) from None
            corpus.skipped.append(str(exc))
    if not corpus.articles:
        raise CorpusError(f"no usable articles in {folder}: " + "; ".join(corpus.skipped[:3]))
    return corpus


def text_of(folder: str | os.PathLike, source: str) -> str:
    """The decoded text a citation's offsets index, for `source` within `folder`."""
    root = Path(folder).resolve()
    path = (root / source).resolve()
    if root not in path.parents:
        raise CorpusError(f"{source}: outside the corpus folder")
    stat = path.stat()
    return read_article(CorpusFile(path, source, stat.st_size, stat.st_mtime_ns)).text
