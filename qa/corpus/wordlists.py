"""The word lists the tokenizer and the sentence splitter use, kept as data files in qa/corpus/data/ (one
entry per line, `#` comments). What they hold decides the passages and BM25 terms of an index, so
their hash is recorded with it (`signature`): an index built with other lists is rebuilt, never
queried with terms it does not share."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("data")
FILES = ("stopwords.txt", "irregular_past.txt", "abbreviations.txt")


def entries(name: str) -> list[str]:
    """The non-comment lines of qa/corpus/data/NAME, stripped."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def word_set(name: str) -> frozenset[str]:
    return frozenset(entries(name))


def forms_to_word(name: str) -> dict[str, str]:
    """{form: word} from lines "word form form ..."."""
    return {form: word for line in entries(name) for word, *forms in [line.split()] for form in forms}


@cache
def signature() -> str:
    """sha256 over the lists' entries, in FILES order."""
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0" + "\n".join(entries(name)).encode("utf-8") + b"\0")
    return digest.hexdigest()
