"""Milvus as the index backend: passages, their vectors and BM25 weights in Milvus collections.

One client code for Milvus Lite (`--milvus-uri ./milvus.db`: embedded, one process at a time) and
a Milvus server or cluster (`--milvus-uri http://host:19530`). Collections, for `--milvus-collection
NAME` (default qa_passages):

    NAME          a row per passage: id (corpus order at the first build, then counted on), source,
                  title, date, start, end, text, article (its file's sha256), dense (the model's
                  vector: FLAT on Lite, exact like the file backend; HNSW on a server) and sparse
                  (its BM25 weights, inner product)
    NAME_catalog  rows keyed "m:meta" (model, chunking, counts, BM25 statistics, ids handed
                  out), "a:SOURCE" (an article: its hash, size, mtime) and "t:TERM" (a term: its
                  sparse dimension and document frequency), their primary key a hash of that key;
                  `pad` is there because Milvus wants a vector field in every collection

BM25 is computed here with qa's own tokenizer (qa/bm25_weights.py), not by Milvus's BM25 function,
which has no stemmer and, on Lite, keeps its statistics per segment (eval/milvus_bm25.py measures
both). The model's ONNX export, which passages and questions are embedded with, lives in the
per-user cache (qa/cache.py), as there is no index folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from qa import bm25_weights, chunk, retrieve, store
from qa.build import BuildReport, embed_texts, read_articles, skipped_entries
from qa.cache import cached_folder
from qa.chunk import Passage
from qa.embed import ONNX_CONFIG, ModelError, build_encoder, load_encoder, resolve_model
from qa.errors import QAError

DEFAULT_COLLECTION = "qa_passages"
MADE_BY = "qa"
BATCH_ROWS = 1000  # rows per insert: ~4 MB of vectors and text, well under gRPC's 64 MB
TEXT_LIMIT = 65_535  # bytes in a Milvus VARCHAR
PAD = [0.0, 0.0]
META_KEY = "m:meta"
HNSW = {"M": store.HNSW_M, "efConstruction": store.HNSW_EF_CONSTRUCTION}
PASSAGE_FIELDS = ["source", "title", "date", "start", "end", "text"]


class MilvusError(store.StoreError):
    """Milvus cannot be reached, holds something else under the name, or refuses an operation."""

    def __init__(self, problem: str, advice: str | None = None):
        super().__init__(problem, advice)


@dataclass(frozen=True)
class MilvusConfig:
    uri: str  # a local file path (Milvus Lite) or http(s)://host:port
    collection: str = DEFAULT_COLLECTION
    token: str | None = None  # "user:password" or an API key, for a server that wants one

    @property
    def local(self) -> bool:
        return "://" not in self.uri


def _quiet_pymilvus() -> None:
    """pymilvus logs every failed call with a traceback (and Lite's server the calls it does not
    implement); qa says what went wrong in one line."""
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(config: MilvusConfig):
    # gRPC's core logs to stderr on its own (a Lite server's "too_many_pings" reconnects among
    # them); what fails reaches qa as an exception and is said in one line.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise QAError("the milvus backend needs the milvus extra: pip install 'qa[milvus]'") from None
    _quiet_pymilvus()
    if config.local:
        path = Path(config.uri).expanduser()
        if not path.parent.is_dir():
            raise MilvusError(f"cannot create the Milvus Lite database {config.uri}: folder {path.parent} is missing")
    try:
        return MilvusClient(uri=config.uri, token=config.token or "")
    except Exception as exc:  # pymilvus wraps gRPC, Lite and config errors alike
        if config.local:
            raise MilvusError(f"cannot open the Milvus Lite database {config.uri} ({_reason(exc)}); Milvus Lite "
                              "lets one process open it at a time: stop the other one (a `qa serve` or "
                              "`qa chat`?) or use a Milvus server") from None
        raise MilvusError(f"cannot reach Milvus at {config.uri} ({_reason(exc)})",
                          advice="check the URI, the server and --milvus-token / QA_MILVUS_TOKEN") from None


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.splitlines()[0][:200]


MAX_TERM = 512  # characters: a \w+ run of thousands is no word anyone asks for


def terms_of(text: str) -> list[str]:
    """The BM25 terms of the file backend (qa.retrieve.tokenize), cut to what a catalog key holds."""
    return [term[:MAX_TERM] for term in retrieve.tokenize(text)]


def term_key(term: str) -> str:
    return "t:" + term


def literal(text: str) -> str:
    """`text` as a string in a Milvus filter expression (a file name may hold quotes)."""
    return json.dumps(text, ensure_ascii=False)


def row_id(key: str) -> int:
    """A catalog row's primary key: a 63-bit hash of its key. pymilvus quotes string keys itself, in
    `ids=` and when an iterator pages on, and breaks on an apostrophe or a double quote."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 1


@dataclass
class Stats:
    """The collection's BM25 statistics: counts, and every term's sparse dimension and frequency."""

    passages: int = 0
    total_length: int = 0
    avgdl: float = 0.0  # the average the stored weights were computed with
    next_term: int = 1  # dimension 0 is the placeholder of passages without terms
    terms: dict[str, list[int]] = field(default_factory=dict)  # term -> [dimension, document frequency]
    changed: set[str] = field(default_factory=set)

    def add(self, terms: list[str], sign: int) -> None:
        self.passages += sign
        self.total_length += sign * len(terms)
        for term in set(terms):
            entry = self.terms.get(term)
            if entry is None:
                entry = self.terms[term] = [self.next_term, 0]
                self.next_term += 1
            entry[1] += sign
            self.changed.add(term)

    def weights(self, terms: list[str]) -> dict[int, float]:
        return {self.terms[term][0]: weight
                for term, weight in bm25_weights.passage_weights(Counter(terms), self.avgdl).items()}


class MilvusBackend:
    """The backend interface of qa/backend.py over a Milvus collection."""

    name = "milvus"
    rebuilds_when_damaged = False  # a collection may be shared: repaired by `qa index`, never replaced unasked

    def __init__(self, config: MilvusConfig):
        self.config = config
        self.location = f"{config.uri} (collection {config.collection})"
        self.catalog = config.collection + "_catalog"
        self._client = None

    def client(self):
        if self._client is None:
            self._client = connect(self.config)
        return self._client

    # ------------------------------------------------------------------ reading

    def meta(self) -> dict | None:
        """The meta row, None when there is no collection; a collection qa did not make is refused."""
        client = self.client()
        names = set(self._call(client.list_collections))
        if self.config.collection not in names and self.catalog not in names:
            return None
        rows = []
        if self.catalog in names:
            self._call(client.load_collection, self.catalog)
            rows = self._call(client.get, self.catalog, ids=[row_id(META_KEY)], output_fields=["data"])
        if self.config.collection not in names or not rows or rows[0]["data"].get("made_by") != MADE_BY:
            raise MilvusError(f"Milvus collection {self.config.collection} at {self.config.uri} was not made by qa "
                              "(or is incomplete); qa never changes it",
                              advice="pass --milvus-collection another name")
        return rows[0]["data"]

    def staleness(self, corpus, model_name: str, follow_links: bool, precision: str) -> str | None:
        meta = self.meta()
        if meta is None:
            return "no index yet"
        mismatch = _mismatch(meta, model_name, precision)
        if mismatch:
            return mismatch
        return self._changes(meta, self._known_articles(), corpus, follow_links)

    def _changes(self, meta: dict, known: dict[str, dict], corpus, follow_links: bool) -> str | None:
        """What a build must do for the corpus, given the collection's meta row and articles."""
        if meta["pending"]:
            return "a build was interrupted"
        return store.corpus_changes(corpus, {**known, **{f["source"]: f for f in meta["skipped_files"]}},
                                    follow_links)

    def load(self) -> "MilvusIndex":
        meta = self.meta()
        if meta is None:
            raise MilvusError(f"no index in {self.location}", advice="run `qa index --backend milvus`")
        client = self.client()
        for name in (self.config.collection, self.catalog):
            self._call(client.load_collection, name)
        export = encoder_export(meta["model"], make_encoder=None)
        return MilvusIndex(self, meta, export)

    def _known_articles(self) -> dict[str, dict]:
        """source -> what the catalog recorded of it (sha256, title, size, mtime_ns)."""
        return {row["key"][2:]: row["data"] for row in self._scan(self.catalog, 'kind == "article"', ["key", "data"])}

    def _scan(self, collection: str, where: str, fields: list[str]) -> list[dict]:
        return [row for batch in self._batches(collection, where, fields) for row in batch]

    def _batches(self, collection: str, where: str, fields: list[str]) -> Iterator[list[dict]]:
        """The rows matching `where`, a batch at a time (a query returns at most 16,384 rows)."""
        client = self.client()
        self._call(client.load_collection, collection)
        iterator = self._call(client.query_iterator, collection, filter=where, output_fields=fields,
                              batch_size=BATCH_ROWS)
        try:
            while batch := self._call(iterator.next):
                yield batch
        finally:
            iterator.close()

    def _call(self, method, *args, **kwargs):
        """A client call whose failure becomes one line naming the backend."""
        try:
            return method(*args, **kwargs)
        except QAError:
            raise
        except Exception as exc:  # pymilvus raises MilvusException and gRPC errors
            raise MilvusError(f"Milvus at {self.config.uri} failed: {_reason(exc)}") from None

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
        if meta is not None and _mismatch(meta, model_name, precision):
            if not force:
                used = meta["model"]
                raise MilvusError(
                    f"Milvus collection {self.config.collection} holds passages embedded by {used['name']} "
                    f"({used['precision']}, {used['dim']} dimensions, index format {meta['format']}), not {model_name} "
                    f"({precision})", advice="pass --milvus-collection another name to keep both, or run "
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
        self._call(self.client().flush, self.config.collection)
        self._call(self.client().flush, self.catalog)
        return BuildReport(True, reason, len(articles), stats.passages, len(texts), embed_seconds,
                           time.perf_counter() - began, skipped)

    def _create(self, model: dict) -> dict:
        from pymilvus import DataType

        client = self.client()
        names = set(self._call(client.list_collections))
        if self.config.collection in names or self.catalog in names:
            raise MilvusError(f"Milvus collection {self.config.collection} or {self.catalog} exists but was not made "
                              "by qa", advice="pass --milvus-collection another name")
        schema = client.create_schema(auto_id=False, description="passages indexed by qa")
        schema.add_field("id", DataType.INT64, is_primary=True)
        for name, length in (("source", TEXT_LIMIT), ("title", TEXT_LIMIT), ("date", 64), ("article", 64),
                             ("text", TEXT_LIMIT)):
            schema.add_field(name, DataType.VARCHAR, max_length=length)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=model["dim"])
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        index = client.prepare_index_params()
        if self.config.local:
            index.add_index("dense", index_type="FLAT", metric_type="IP")
        else:
            index.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW)
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        self._call(client.create_collection, self.config.collection, schema=schema, index_params=index)
        catalog = client.create_schema(auto_id=False, description="what qa indexed in " + self.config.collection)
        catalog.add_field("id", DataType.INT64, is_primary=True)
        catalog.add_field("key", DataType.VARCHAR, max_length=TEXT_LIMIT)
        catalog.add_field("kind", DataType.VARCHAR, max_length=16)
        catalog.add_field("dimension", DataType.INT64)
        catalog.add_field("df", DataType.INT64)
        catalog.add_field("data", DataType.JSON)
        catalog.add_field("pad", DataType.FLOAT_VECTOR, dim=len(PAD))
        pad_index = client.prepare_index_params()
        pad_index.add_index("pad", index_type="FLAT", metric_type="L2")
        self._call(client.create_collection, self.catalog, schema=catalog, index_params=pad_index)
        meta = {"made_by": MADE_BY, "format": store.FORMAT_VERSION, "model": model,
                "chunking": store.chunking_params(), "tokenizer": {"stopwords": True, "stemmer": "light"},
                "next_id": 0, "pending": [], "skipped_files": [], "bm25": {},
                "counts": {"files": 0, "passages": 0, "skipped": 0}}
        self._write_meta(meta)
        return meta

    def _drop(self) -> None:
        for name in (self.config.collection, self.catalog):
            self._call(self.client().drop_collection, name)

    def _write_meta(self, meta: dict) -> None:
        self._upsert_catalog([{"key": META_KEY, "kind": "meta", "dimension": 0, "df": 0, "data": meta}])

    def _upsert_catalog(self, rows: list[dict]) -> None:
        for start in range(0, len(rows), BATCH_ROWS):
            self._call(self.client().upsert, self.catalog,
                       [{**row, "id": row_id(row["key"]), "pad": PAD} for row in rows[start:start + BATCH_ROWS]])

    def _stats(self, meta: dict) -> Stats:
        rows = self._scan(self.catalog, 'kind == "term"', ["key", "dimension", "df"])
        saved = meta["bm25"]
        return Stats(saved.get("passages", 0), saved.get("total_length", 0), saved.get("avgdl", 0.0),
                     saved.get("next_term", 1), {row["key"][2:]: [row["dimension"], row["df"]] for row in rows})

    def _remove(self, sources: Sequence[str], stats: Stats, count: bool) -> None:
        """Delete these articles' rows, taking their terms out of `stats` unless it is recounted later."""
        client = self.client()
        for source in sources:
            where = f"source == {literal(source)}"
            if count:
                for row in self._scan(self.config.collection, where, ["text"]):
                    stats.add(terms_of(row["text"]), -1)
            self._call(client.delete, self.config.collection, filter=where)
        if sources:
            self._call(client.delete, self.catalog, ids=[row_id("a:" + s) for s in sources])

    def _recount(self, old: Stats) -> Stats:
        """The statistics counted afresh from every stored passage (after an interruption, or asked);
        the terms of `old` that no passage holds any more are removed when they are saved."""
        stats = Stats()
        for batch in self._batches(self.config.collection, "id >= 0", ["text"]):
            for row in batch:
                stats.add(terms_of(row["text"]), +1)
        stats.changed |= set(old.terms)
        return stats

    def _insert(self, embedded: list[tuple[object, list[Passage]]], vectors: np.ndarray, stats: Stats,
                meta: dict, files: dict) -> None:
        client = self.client()
        tokens = [[terms_of(p.text) for p in group] for _, group in embedded]
        for group_tokens in tokens:
            for terms in group_tokens:
                stats.add(terms, +1)
        if not stats.avgdl and stats.passages:
            stats.avgdl = stats.total_length / stats.passages
        batch, row = [], 0
        for (article, group), group_tokens in zip(embedded, tokens):
            for passage, terms in zip(group, group_tokens):
                batch.append(_passage_row(meta["next_id"], passage, article.sha256, vectors[row], stats.weights(terms)))
                meta["next_id"], row = meta["next_id"] + 1, row + 1
                if len(batch) == BATCH_ROWS:
                    self._call(client.insert, self.config.collection, batch)
                    batch = []
        if batch:
            self._call(client.insert, self.config.collection, batch)
        self._upsert_catalog([
            {"key": "a:" + article.source, "kind": "article", "dimension": 0, "df": len(group),
             "data": {"sha256": article.sha256, "title": article.title,
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
        for batch in self._batches(self.config.collection, "id >= 0", ["id", "article", "dense", *PASSAGE_FIELDS]):
            self._call(self.client().upsert, self.config.collection,
                       [{**row, "sparse": stats.weights(terms_of(row["text"])) or bm25_weights.PLACEHOLDER}
                        for row in batch])

    def _save_stats(self, stats: Stats) -> None:
        gone = sorted(t for t in stats.changed if stats.terms.get(t, [0, 0])[1] <= 0)
        for term in gone:
            stats.terms.pop(term, None)
        self._upsert_catalog([{"key": term_key(t), "kind": "term", "dimension": stats.terms[t][0],
                               "df": stats.terms[t][1], "data": {}}
                              for t in sorted(stats.changed) if t in stats.terms])
        if gone:
            for start in range(0, len(gone), BATCH_ROWS):
                self._call(self.client().delete, self.catalog,
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


def _passage_row(passage_id: int, passage: Passage, article_sha256: str, vector: np.ndarray,
                 weights: dict[int, float]) -> dict:
    if len(passage.text.encode("utf-8")) > TEXT_LIMIT:
        raise MilvusError(f"a passage of {passage.source} is longer than Milvus's {TEXT_LIMIT}-byte text field")
    return {"id": passage_id, "source": passage.source, "title": passage.title, "date": passage.date or "",
            "start": passage.start, "end": passage.end, "text": passage.text, "article": article_sha256,
            "dense": vector.tolist(), "sparse": weights or bm25_weights.PLACEHOLDER}


def _mismatch(meta: dict, model_name: str, precision: str) -> str | None:
    used = meta["model"]
    if meta["format"] != store.FORMAT_VERSION:
        return f"index format {meta['format']} differs from {store.FORMAT_VERSION}"
    if used["name"] != model_name:
        return f"model changed ({used['name']} -> {model_name})"
    if used["precision"] != precision:
        return f"precision changed ({used['precision']} -> {precision})"
    if meta["chunking"] != store.chunking_params():
        return "chunking parameters changed"
    return None


class MilvusIndex:
    """A loaded collection: the search interface of qa/backend.py's OpenIndex."""

    def __init__(self, backend: MilvusBackend, meta: dict, export: Path):
        self.backend, self.client = backend, backend.client()
        self.collection, self.catalog = backend.config.collection, backend.catalog
        self.manifest = {"model": meta["model"], "counts": meta["counts"]}
        self.folder = export
        self.size = meta["counts"]["passages"]
        self.bm25 = meta["bm25"]
        self.hnsw = not backend.config.local  # see MilvusBackend._create

    def sparse_search(self, terms: list[str], depth: int) -> list[tuple[int, float]]:
        counts = Counter(term[:MAX_TERM] for term in terms)
        rows = self.backend._call(self.client.get, self.catalog, ids=[row_id(term_key(t)) for t in counts],
                                  output_fields=["key", "dimension", "df"])
        query = bm25_weights.query_weights({row["key"][2:]: (row["dimension"], row["df"]) for row in rows},
                                           counts, self.bm25)
        if not query:
            return []
        found = self.backend._call(self.client.search, self.collection, data=[query], anns_field="sparse",
                                   limit=depth, output_fields=["id"],
                                   search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}})
        return _ranked(found[0], positive_only=True)

    def dense_search(self, vector: np.ndarray, depth: int) -> list[tuple[int, float]]:
        params = {"metric_type": "IP"}
        if self.hnsw:  # ef must be at least the number of results
            params["params"] = {"ef": max(store.HNSW_EF_SEARCH, depth)}
        found = self.backend._call(self.client.search, self.collection, data=[np.asarray(vector).reshape(-1).tolist()],
                                   anns_field="dense", limit=depth, output_fields=["id"], search_params=params)
        return _ranked(found[0])

    def fetch(self, ids: Sequence[int]) -> list[Passage]:
        if not ids:
            return []
        rows = self.backend._call(self.client.get, self.collection, ids=list(ids), output_fields=["id", *PASSAGE_FIELDS])
        by_id = {row["id"]: _passage(row) for row in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise MilvusError(f"passage {missing[0]} vanished from {self.backend.location} while it was read",
                              advice="ask again")
        return [by_id[i] for i in ids]

    def __iter__(self) -> Iterator[Passage]:
        rows = self.backend._scan(self.collection, "id >= 0", ["id", *PASSAGE_FIELDS])
        return iter([_passage(row) for row in sorted(rows, key=lambda row: row["id"])])

    def close(self) -> None:
        """Nothing to release: the client stays with its backend for the next load."""


def _ranked(hits: Iterable[dict], positive_only: bool = False) -> list[tuple[int, float]]:
    ranked = [(int(hit["id"]), float(hit["distance"])) for hit in hits]
    # Milvus orders equal scores as it finds them; the file backend (and so parity) by passage id.
    ranked.sort(key=lambda pair: (-pair[1], pair[0]))
    return [pair for pair in ranked if pair[1] > 0] if positive_only else ranked


def _passage(row: dict) -> Passage:
    return Passage(source=row["source"], title=row["title"], date=row["date"] or None, start=int(row["start"]),
                   end=int(row["end"]), text=row["text"])
