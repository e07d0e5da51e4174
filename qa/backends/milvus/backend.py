"""Milvus as the index backend (qa/backends/base.py's interface): passages, their vectors and BM25
weights in the collections of qa/backends/milvus/rows.py, kept up to date incrementally.

BM25 is computed with qa's own tokenizer (qa/backends/milvus/bm25_weights.py), not by Milvus's BM25 function,
which has no stemmer and, on Lite, keeps its statistics per segment (eval/milvus_bm25.py measures
both). The model's ONNX export, which passages and questions are embedded with, lives in the
per-user cache (qa/search/cache.py), as there is no index folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from qa.backends.milvus import bm25_weights
from qa.backends.milvus.bm25_weights import Stats
from qa.backends.milvus.client import BATCH_ROWS, Connection, MilvusConfig, MilvusError
from qa.backends.milvus.index import MilvusIndex
from qa.backends.milvus.rows import (
    META_KEY,
    PASSAGE_FIELDS,
    article_key,
    catalog_name,
    create_collections,
    literal,
    passage_row,
    row_id,
    term_key,
    terms_of,
    upsert_catalog,
)
from qa.corpus import chunk
from qa.corpus.chunk import Passage
from qa.errors import ModelError
from qa.index import freshness, store
from qa.index.build import BuildReport, embed_texts, read_articles, skipped_entries
from qa.search.cache import cached_folder
from qa.search.embed import load_encoder, resolve_model
from qa.search.onnx_encoder import ONNX_CONFIG, build_encoder

MADE_BY = "qa"


class MilvusBackend:
    """The backend interface of qa/backends/base.py over a Milvus collection."""

    name = "milvus"
    rebuilds_when_damaged = False  # a collection may be shared: repaired by `qa index`, never replaced unasked

    def __init__(self, config: MilvusConfig):
        self.config = config
        self.milvus = Connection(config)
        self.location = f"{config.uri} (collection {config.collection})"
        self.catalog = catalog_name(config.collection)

    # ------------------------------------------------------------------ reading

    def meta(self) -> dict | None:
        """The meta row, None when there is no collection; a collection qa did not make is refused."""
        names = set(self.milvus.call("list_collections"))
        if self.config.collection not in names and self.catalog not in names:
            return None
        rows = []
        if self.catalog in names:
            self.milvus.call("load_collection", self.catalog)
            rows = self.milvus.call("get", self.catalog, ids=[row_id(META_KEY)], output_fields=["data"])
        if self.config.collection not in names or not rows or rows[0]["data"].get("made_by") != MADE_BY:
            raise MilvusError(f"Milvus collection {self.config.collection} at {self.config.uri} was not made by qa "
                              "(or is incomplete); qa never changes it",
                              advice="pass --milvus-collection another name")
        return rows[0]["data"]

    def staleness(self, corpus, model_name: str, follow_links: bool, precision: str) -> str | None:
        meta = self.meta()
        if meta is None:
            return "no index yet"
        mismatch = freshness.settings_changed(meta, model_name, precision)
        if mismatch:
            return mismatch
        return self._changes(meta, self._known_articles(), corpus, follow_links)

    def _changes(self, meta: dict, known: dict[str, dict], corpus, follow_links: bool) -> str | None:
        """What a build must do for the corpus, given the collection's meta row and articles."""
        if meta["pending"]:
            return "a build was interrupted"
        return freshness.corpus_changes(corpus, {**known, **{f["source"]: f for f in meta["skipped_files"]}},
                                    follow_links)

    def load(self) -> "MilvusIndex":
        meta = self.meta()
        if meta is None:
            raise MilvusError(f"no index in {self.location}", advice="run `qa index --backend milvus`")
        for name in (self.config.collection, self.catalog):
            self.milvus.call("load_collection", name)
        export = encoder_export(meta["model"], make_encoder=None)
        return MilvusIndex(self.milvus, self.location, meta, export)

    def _known_articles(self) -> dict[str, dict]:
        """source -> what the catalog recorded of it (sha256, title, size, mtime_ns)."""
        return {row["key"][2:]: row["data"] for row in self.milvus.scan(self.catalog, 'kind == "article"', ["key", "data"])}

    # ------------------------------------------------------------------ building

    def build(self, corpus, model_name: str, *, force: bool = False, verify: bool = False, strict: bool = False,
              follow_links: bool = False, precision: str, make_encoder: Callable[[], object],
              embed_with: Callable[[Path], object] = build_encoder,
              on_progress: Callable[[int, int], None] | None = None, on_wait=None) -> BuildReport:
        """Bring the collection up to date with the corpus: only new or changed articles are
        embedded (by `embed_with(export folder)`) and inserted, removed ones deleted. `force`
        replaces a collection of another model; `verify` recounts every statistic from the
        stored passages."""
        began = time.perf_counter()
        meta = self.meta()
        _, weights_sha256 = resolve_model(model_name)
        model = {"name": model_name, "weights_sha256": weights_sha256, "precision": precision}
        mismatch = freshness.settings_changed(meta, model_name, precision) if meta is not None else None
        if mismatch and not force:
            used = meta["model"]
            raise MilvusError(
                f"Milvus collection {self.config.collection} holds passages embedded by {used['name']} "
                f"({used['precision']}, {used['dim']} dimensions, index format {meta['format']}) and cannot be "
                f"updated for {model_name} ({precision}): {mismatch}",
                advice="pass --milvus-collection another name to keep both, or run "
                       "`qa index --backend milvus --rebuild` to replace it")
        export = encoder_export(model, make_encoder)
        model["dim"] = int(json.loads((export / ONNX_CONFIG).read_text(encoding="utf-8"))["dim"])
        if force and meta is not None:
            self._drop()
            meta = None
        known = self._known_articles() if meta is not None else {}
        reason = "rebuild requested" if force else None if meta is not None else "no index yet"
        if meta is None:
            meta = self._create(model)
        articles, listing, skipped, _ = read_articles(corpus, strict, follow_links)
        wanted = {a.source: a for a in articles}
        stale = sorted(s for s in known if s not in wanted or known[s]["sha256"] != wanted[s].sha256)
        repair = verify or bool(meta["pending"])
        fresh = [a for a in articles if a.source not in known or a.source in stale or a.source in meta["pending"]]
        stale = sorted(set(stale) | set(meta["pending"]))
        skipped_files = skipped_entries(listing, articles)
        if not (stale or fresh or repair or skipped_files != meta["skipped_files"]):
            return BuildReport(False, "up to date", len(known), meta["counts"]["passages"], 0, 0.0,
                               time.perf_counter() - began, skipped)
        reason = reason or self._changes(meta, known, corpus, follow_links) or "verify requested"
        stats = self._stats(meta)
        meta["pending"] = sorted({*stale, *(a.source for a in fresh)})
        self._write_meta(meta)  # from here until it is emptied again, an interruption is repaired next time
        self._remove(stale, stats, count=not repair)
        embedded = [(a, chunk.chunk_article(a)) for a in fresh]
        texts = [p.text for _, group in embedded for p in group]
        encoder = embed_with(export) if texts else None
        vectors, embed_seconds = embed_texts(encoder, texts, model["dim"], on_progress)
        if repair:
            stats = self._recount(stats)
        self._insert(embedded, vectors, stats, meta, {f.source: f for f in listing})
        self._rewrite_weights_if_drifted(stats, force=repair)
        self._save_stats(stats)
        meta.update(pending=[], skipped_files=skipped_files, bm25=bm25_weights.corpus_statistics(stats),
                    counts={"files": len(articles), "passages": stats.passages, "skipped": len(skipped_files)})
        self._write_meta(meta)
        self.milvus.call("flush", self.config.collection)
        self.milvus.call("flush", self.catalog)
        return BuildReport(True, reason, len(articles), stats.passages, len(texts), embed_seconds,
                           time.perf_counter() - began, skipped)

    def _create(self, model: dict) -> dict:
        create_collections(self.milvus, model["dim"])
        meta = {"made_by": MADE_BY, "format": store.FORMAT_VERSION, "model": model,
                "chunking": freshness.chunking_params(), "tokenizer": freshness.tokenizer_params(),
                "next_id": 0, "pending": [], "skipped_files": [], "bm25": {},
                "counts": {"files": 0, "passages": 0, "skipped": 0}}
        self._write_meta(meta)
        return meta

    def _drop(self) -> None:
        for name in (self.config.collection, self.catalog):
            self.milvus.call("drop_collection", name)

    def _write_meta(self, meta: dict) -> None:
        upsert_catalog(self.milvus, [{"key": META_KEY, "kind": "meta", "dimension": 0, "df": 0, "data": meta}])

    def _stats(self, meta: dict) -> Stats:
        rows = self.milvus.scan(self.catalog, 'kind == "term"', ["key", "dimension", "df"])
        saved = meta["bm25"]
        return Stats(saved.get("passages", 0), saved.get("total_length", 0), saved.get("avgdl", 0.0),
                     saved.get("next_term", 1), {row["key"][2:]: [row["dimension"], row["df"]] for row in rows})

    def _remove(self, sources: Sequence[str], stats: Stats, count: bool) -> None:
        """Delete these articles' rows, taking their terms out of `stats` unless it is recounted later."""
        for source in sources:
            where = f"source == {literal(source)}"
            if count:
                for row in self.milvus.scan(self.config.collection, where, ["text"]):
                    stats.add(terms_of(row["text"]), -1)
            self.milvus.call("delete", self.config.collection, filter=where)
        if sources:
            self.milvus.call("delete", self.catalog, ids=[row_id(article_key(s)) for s in sources])

    def _recount(self, old: Stats) -> Stats:
        """The statistics counted afresh from every stored passage (after an interruption, or asked);
        the terms of `old` that no passage holds any more are removed when they are saved."""
        stats = Stats()
        for batch in self.milvus.batches(self.config.collection, "id >= 0", ["text"]):
            for row in batch:
                stats.add(terms_of(row["text"]), +1)
        stats.changed |= set(old.terms)
        return stats

    def _insert(self, embedded: list[tuple[object, list[Passage]]], vectors: np.ndarray, stats: Stats,
                meta: dict, files: dict) -> None:
        tokens = [[terms_of(p.text) for p in group] for _, group in embedded]
        for group_tokens in tokens:
            for terms in group_tokens:
                stats.add(terms, +1)
        if not stats.avgdl and stats.passages:
            stats.avgdl = stats.total_length / stats.passages
        batch, row = [], 0
        for (article, group), group_tokens in zip(embedded, tokens):
            for passage, terms in zip(group, group_tokens):
                batch.append(passage_row(meta["next_id"], passage, article.sha256, vectors[row], stats.weights(terms)))
                meta["next_id"], row = meta["next_id"] + 1, row + 1
                if len(batch) == BATCH_ROWS:
                    self.milvus.call("insert", self.config.collection, batch)
                    batch = []
        if batch:
            self.milvus.call("insert", self.config.collection, batch)
        upsert_catalog(self.milvus, [
            {"key": article_key(article.source), "kind": "article", "dimension": 0, "df": len(group),
             "data": {"sha256": article.sha256, "title": article.title, "date": article.date,
                      "size": getattr(files.get(article.source), "size", None),
                      "mtime_ns": getattr(files.get(article.source), "mtime_ns", None)}}
            for article, group in embedded])

    def _rewrite_weights_if_drifted(self, stats: Stats, force: bool) -> None:
        """Rewrite every passage's weights with the current average length once it has drifted
        by more than bm25_weights.AVGDL_DRIFT from the one they were written with."""
        if not stats.passages:
            return
        current = stats.total_length / stats.passages
        if not force and abs(current - stats.avgdl) <= bm25_weights.AVGDL_DRIFT * stats.avgdl:
            return
        stats.avgdl = current
        for batch in self.milvus.batches(self.config.collection, "id >= 0", ["id", "article", "dense", *PASSAGE_FIELDS]):
            self.milvus.call("upsert", self.config.collection,
                       [{**row, "sparse": stats.weights(terms_of(row["text"])) or bm25_weights.PLACEHOLDER}
                        for row in batch])

    def _save_stats(self, stats: Stats) -> None:
        gone = sorted(t for t in stats.changed if stats.terms.get(t, [0, 0])[1] <= 0)
        for term in gone:
            stats.terms.pop(term, None)
        upsert_catalog(self.milvus, [{"key": term_key(t), "kind": "term", "dimension": stats.terms[t][0],
                               "df": stats.terms[t][1], "data": {}}
                              for t in sorted(stats.changed) if t in stats.terms])
        if gone:
            for start in range(0, len(gone), BATCH_ROWS):
                self.milvus.call("delete", self.catalog,
                           ids=[row_id(term_key(t)) for t in gone[start:start + BATCH_ROWS]])
        stats.changed.clear()


def encoder_export(model: dict, make_encoder: Callable[[], object] | None) -> Path:
    """The cached ONNX export of `model` at its precision, made on first use by `make_encoder()`
    (the torch model; loaded by name when None)."""
    key = model["weights_sha256"] or hashlib.sha256(model["name"].encode()).hexdigest()

    def make(staging: Path) -> None:
        encoder = make_encoder() if make_encoder else load_encoder(model["name"])
        if not encoder.export_onnx(staging, model["precision"]):
            raise ModelError(f"model {model['name']!r} cannot be exported to ONNX, which the milvus backend "
                             "needs; use the file backend for it")

    return cached_folder(f"encoder-{key[:16]}-{model['precision']}", ONNX_CONFIG, make, ModelError,
                         "the encoder's export")
