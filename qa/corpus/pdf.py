"""A PDF's text layer, page by page, with its title and date from the document's metadata.

pypdf (pure Python, well kept) reads the text a PDF carries; a scan carries none, and is refused
with that reason rather than indexed empty. Imported only while an index is built.
"""

from __future__ import annotations

import io
import logging
from importlib.metadata import version

from qa.corpus.metadata import Extracted

PAGE_BREAK = "\n\n"
"""Between pages in the stored text; each page's start offset is kept, so a citation names its page."""


def extractor_version() -> str:
    return f"pypdf {version('pypdf')}"


def read_pdf(data: bytes) -> Extracted:
    """Text, page starts, title and date of a PDF; ValueError with a one-line reason when it has no
    text to give (a scan, an encrypted or a damaged file)."""
    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd files are not the user's business
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and not reader.decrypt("")
        pages = [] if locked else [(page.extract_text() or "").replace("\x00", "").strip() for page in reader.pages]
        info = None if locked else reader.metadata
    except Exception as exc:  # a damaged file can make a PDF parser raise almost anything
        raise ValueError(f"not a readable PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    if locked:
        raise ValueError("the PDF is locked with a password; save an unlocked copy")
    if not any(pages):
        raise ValueError("the PDF has no text layer (a scan?); run OCR on it, e.g. ocrmypdf, and index the result")
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + len(PAGE_BREAK)
    return Extracted(text=PAGE_BREAK.join(pages), title=_field(info, "title"), date=_creation_date(info),
                     author=_field(info, "author"), sitename=None, page_starts=starts,
                     main_text_only=True)


def _field(info, name: str) -> str | None:
    value = getattr(info, name, None) if info else None
    return " ".join(str(value).split()) or None if value else None


def _creation_date(info) -> str | None:
    try:
        created = info.creation_date if info else None
    except Exception:  # a malformed date string is only a missing date
        return None
    return created.date().isoformat() if created else None
