"""Read a folder of articles into clean text, keeping every offset true to the decoded file.

The article text is never rewritten: page furniture is excluded by narrowing the *body* span,
so a citation's `start`/`end` always index the same string a user gets by decoding the file
(for HTML, by reducing it to text with `html_to_text`).
"""

from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from qa.errors import QAError
from qa.metadata import body_span, find_date, find_title, shorten

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm")
HTML_SUFFIXES = (".html", ".htm")
MAX_FILE_BYTES = 20 * 1024 * 1024
"""Articles are read whole; a bigger file is refused (with a warning) rather than exhausting memory."""


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
