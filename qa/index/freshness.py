"""Whether an index is still current for its corpus, model and precision, and if not, why: the
reason a build gives, and what `qa ask` checks before it answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from qa.corpus import chunk, ingest, wordlists
from qa.index.store import (
    FORMAT_VERSION,
    IN_MEMORY,
    NewerIndexError,
    StoreError,
    live_generation,
    read_manifest,
    safe_sha256,
)
from qa.search.embed import DEFAULT_PRECISION


def staleness(index_dir: Path, corpus: Path | Sequence[ingest.Article], model_name: str,
              follow_links: bool = False, precision: str = DEFAULT_PRECISION) -> str | None:
    """Why the index must be (re)built for this corpus, model and precision, or None if it is
    current; an index of a newer format raises NewerIndexError."""
    generation, why = live_generation(index_dir)
    if generation is None:
        return why
    try:
        manifest = read_manifest(generation)
    except NewerIndexError:
        raise  # not ours to judge, nor to replace unasked
    except StoreError as exc:
        return exc.problem
    changed = settings_changed(manifest, model_name, precision)
    if changed:
        return changed
    known = {f["source"]: f for f in manifest.get("files", []) + manifest.get("skipped_files", [])}
    if not isinstance(corpus, Path):
        return "articles changed" if manifest.get("corpus") != IN_MEMORY else corpus_changes(corpus, known)
    if manifest.get("corpus") != str(corpus.resolve()):
        return f"corpus folder changed ({manifest.get('corpus')} -> {corpus.resolve()})"
    return corpus_changes(corpus, known, follow_links)


def settings_changed(record: dict, model_name: str, precision: str) -> str | None:
    """What in an index's record (a manifest, or a Milvus collection's meta row) differs from how
    this qa would build it: format, model, precision, chunking, tokenizer; None if nothing."""
    used = record.get("model", {})
    if record.get("format") != FORMAT_VERSION:
        return f"index format {record.get('format')} differs from {FORMAT_VERSION}"
    if used.get("name") != model_name:
        return f"model changed ({used.get('name')} -> {model_name})"
    if used.get("precision") != precision:
        return f"precision changed ({used.get('precision')} -> {precision})"
    current = chunking_params()
    readers = record.get("chunking", {}).get("readers")
    if readers != current["readers"]:
        return f"the readers of pages and PDFs changed ({readers} -> {current['readers']})"
    if record.get("chunking") != current:
        return "chunking parameters changed"
    if record.get("tokenizer") != tokenizer_params():
        return "the tokenizer's word lists changed"
    return None


def corpus_changes(corpus: Path | Sequence[ingest.Article], known: dict[str, dict],
                   follow_links: bool = False) -> str | None:
    """What differs between the corpus and `known` (source -> its recorded size, mtime_ns and
    sha256), or None. Files are compared by size and mtime first and by content hash only when
    those differ, so an unchanged corpus folder costs one stat per file."""
    if not isinstance(corpus, Path):
        return "articles changed" if {a.source: a.sha256 for a in corpus} != {
            s: f["sha256"] for s, f in known.items()} else None
    current = ingest.list_corpus(corpus, follow_links).files
    if {f.source for f in current} != set(known):
        return "articles added or removed"
    for file in current:
        entry = known[file.source]
        if (entry["size"], entry["mtime_ns"]) != (file.size, file.mtime_ns):
            if safe_sha256(file.path) != entry["sha256"]:
                return f"{file.source} changed"
    return None


def chunking_params() -> dict:
    """How files became passages; the readers' versions too, since another trafilatura or pypdf may
    read other text from the same file (and then offsets and vectors kept by file hash would lie)."""
    return {"min_words": chunk.MIN_WORDS, "max_words": chunk.MAX_WORDS, "overlap": chunk.OVERLAP_SENTENCES,
            "readers": ingest.extractor_versions()}


def tokenizer_params() -> dict:
    """How passages were tokenized for BM25 (and cut into sentences): recorded with an index and
    checked, so an index is never queried with terms of other word lists."""
    return {"stopwords": True, "stemmer": "light", "word_lists": wordlists.signature()}
