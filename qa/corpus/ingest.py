"""Read a folder of articles into clean text, keeping every offset true to the text stored.

A text file's text is the decoded file; a web page's is the article trafilatura reads out of it
(qa/corpus/webpage.py), a PDF's its text layer (qa/corpus/pdf.py). That text is never rewritten afterwards:
furniture is excluded by narrowing the *body* span, so a citation's `start`/`end` always index
the string `text_of` returns. Every file not read is reported with its reason.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from qa.corpus import pdf, webpage
from qa.corpus.metadata import Extracted, body_span, find_date, find_title, shorten
from qa.errors import QAError

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf")
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
    author: str | None = None
    sitename: str | None = None
    page_starts: list[int] | None = None  # a PDF's pages: where each begins in `text`


class Unreadable(ValueError):
    """One file cannot be indexed; the message is `source: reason`."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


@dataclass
class Skipped:
    """A file of the corpus folder that is not indexed, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


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
    skipped: list[Skipped] = field(default_factory=list)  # every file left out


# --------------------------------------------------------------------------- listing


@dataclass
class Listing:
    files: list[CorpusFile]
    outside_links: list[str]  # links left out because they lead out of the corpus folder
    other_types: list[str]  # files of types qa does not read


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
    other: list[str] = []
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
                rel = Path(entry.path).relative_to(root).as_posix()
                if not is_dir and not (entry.is_file() and entry.name.lower().endswith(SUPPORTED_SUFFIXES)):
                    if entry.is_file():
                        other.append(rel)
                    continue
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
    return Listing(found, sorted(outside), sorted(other))


# --------------------------------------------------------------------------- decoding


BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
"""UTF-32 first: its little-endian BOM begins with UTF-16's."""
BINARY_NUL_SHARE = 0.001
"""Text with more NUL characters than this share is binary (or UTF-16 without a BOM); a stray NUL
in a large page is only a damaged character, read as a space so that offsets stay put."""


def decode(data: bytes, page: bool = False) -> str:
    """UTF-8, or UTF-16/32 when a BOM says so (the BOM is dropped); a web page (`page`) may declare
    its own charset. Raises ValueError with the reason otherwise."""
    bom = next((codec for mark, codec in BOMS if data.startswith(mark)), None)
    if page and bom is None:
        text = webpage.decode_page(data)
    else:
        try:
            text = data.decode(bom or "utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not valid {(bom or 'utf-8').upper().removesuffix('-SIG')} (byte {exc.start}); "
                             "convert it to UTF-8") from None
    nuls = text.count("\x00")
    if nuls > BINARY_NUL_SHARE * len(text):
        raise ValueError("looks binary (NUL characters), not a text article")
    return text.replace("\x00", " ") if nuls else text


# --------------------------------------------------------------------------- reading


def read_article(file: CorpusFile) -> Article:
    """One article; raises Unreadable with a one-line reason when it cannot be used."""
    if file.size > MAX_FILE_BYTES:
        raise Unreadable(file.source, f"{file.size / 2**20:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MB "
                                      "limit per article; split it")
    try:
        data = file.path.read_bytes()
    except OSError as exc:
        raise Unreadable(file.source, f"cannot read ({exc.strerror or exc})") from None
    suffix = Path(file.source).suffix.lower()
    try:
        if suffix == ".pdf":
            found = pdf.read_pdf(data)
        elif suffix in HTML_SUFFIXES:
            found = webpage.read_page(decode(data, page=True))
        else:
            found = Extracted(decode(data))
        return article_from_text(file.source, found.text, found.title, hashlib.sha256(data).hexdigest(), found)
    except ValueError as exc:
        raise Unreadable(file.source, str(exc)) from None


def article_from_text(source: str, text: str, title: str | None = None, sha256: str | None = None,
                      found: Extracted | None = None) -> Article:
    """An article from text already in memory; what a reader `found` about it (date, author,
    site, pages) is kept, and the title and date are looked for in the text when not given."""
    if not text.strip():
        raise ValueError("empty, nothing to index")
    if found is not None and found.main_text_only:
        start, end = len(text) - len(text.lstrip()), len(text.rstrip())
    else:
        start, end = body_span(text)
    return Article(
        source=source,
        title=shorten(title) if title else find_title(text, Path(source).stem),
        date=(found and found.date) or find_date(text),
        text=text,
        body_start=start,
        body_end=end,
        sha256=sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest(),
        author=found.author if found else None,
        sitename=found.sitename if found else None,
        page_starts=found.page_starts if found else None,
    )


def read_corpus(folder: str | os.PathLike, strict: bool = False, follow_links: bool = False) -> Corpus:
    """All usable articles under `folder`; every other file is listed in `skipped` with its reason.
    A file that cannot be read is an error instead when `strict`."""
    listing = list_corpus(folder, follow_links)
    corpus = Corpus(files=listing.files, articles=[])
    corpus.skipped += [Skipped(link, "a link leading out of the corpus folder, not followed (pass --follow-links "
                                     "to index it)") for link in listing.outside_links]
    corpus.skipped += [Skipped(other, f"not a type qa reads ({', '.join(SUPPORTED_SUFFIXES)})")
                       for other in listing.other_types]
    if not listing.files:
        raise CorpusError(f"no articles in {folder}: expected {', '.join(SUPPORTED_SUFFIXES)} files"
                          + (f"; {corpus.skipped[0]}" if listing.outside_links else ""))
    for file in listing.files:
        try:
            corpus.articles.append(read_article(file))
        except Unreadable as exc:
            if strict:
                raise CorpusError(str(exc)) from None
            corpus.skipped.append(Skipped(exc.source, exc.reason))
    if not corpus.articles:
        raise CorpusError(f"no usable articles in {folder}: " + "; ".join(map(str, corpus.skipped[:3])))
    corpus.skipped.sort(key=lambda skipped: skipped.source)
    return corpus


def skipped_summary(skipped: list[Skipped], shown: int = 3) -> str:
    """One line naming the files not indexed; `qa index --verbose` gives each one's reason."""
    names = ", ".join(s.source for s in skipped[:shown]) + (f" and {len(skipped) - shown} more" if len(skipped) > shown else "")
    return f"skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''}, not indexed: {names} (`qa index --verbose` says why)"


def article_of(corpus: str | os.PathLike | Sequence[Article], source: str) -> Article:
    """The article `source` of a corpus folder, read as an index reads it (or of a list of articles)."""
    if not isinstance(corpus, (str, os.PathLike)):
        found = next((article for article in corpus if article.source == source), None)
        if found is None:
            raise CorpusError(f"{source}: not in the corpus")
        return found
    root = Path(corpus).resolve()
    path = (root / source).resolve()
    if root not in path.parents:
        raise CorpusError(f"{source}: outside the corpus folder")
    try:
        stat = path.stat()
    except OSError as exc:
        raise Unreadable(source, f"cannot read ({exc.strerror or exc})") from None
    return read_article(CorpusFile(path, source, stat.st_size, stat.st_mtime_ns))


def text_of(folder: str | os.PathLike, source: str) -> str:
    """The stored text a citation's offsets index, for `source` within `folder`."""
    return article_of(folder, source).text


def extractor_versions() -> dict:
    """Recorded with an index: text read by another version may differ, so such an index is rebuilt."""
    return {"html": webpage.extractor_version(), "pdf": pdf.extractor_version()}
