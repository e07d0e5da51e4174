"""A loaded Milvus collection, searched as qa/backends/base.py's OpenIndex."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from qa.backends.milvus import bm25_weights
from qa.backends.milvus.client import Connection, MilvusError
from qa.backends.milvus.rows import MAX_TERM, PASSAGE_FIELDS, catalog_name, passage_of, row_id, term_key
from qa.corpus.chunk import Passage
from qa.index import store


class MilvusIndex:
    def __init__(self, milvus: Connection, location: str, meta: dict, export: Path):
        self.milvus, self.location = milvus, location
        self.collection, self.catalog = milvus.config.collection, catalog_name(milvus.config.collection)
        self.manifest = {"model": meta["model"], "counts": meta["counts"]}
        self.folder = export
        self.size = meta["counts"]["passages"]
        self.bm25 = meta["bm25"]
        self.hnsw = not milvus.config.local  # see qa.backends.milvus.rows.create_collections

    def articles(self) -> list[tuple[str, str | None]]:
        return [(row["key"][2:], row["data"].get("date"))
                for row in self.milvus.scan(self.catalog, 'kind == "article"', ["key", "data"])]

    def sparse_search(self, terms: list[str], depth: int, within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        counts = Counter(term[:MAX_TERM] for term in terms)
        rows = self.milvus.call("get", self.catalog, ids=[row_id(term_key(t)) for t in counts],
                                output_fields=["key", "dimension", "df"])
        query = bm25_weights.query_weights({row["key"][2:]: (row["dimension"], row["df"]) for row in rows},
                                           counts, self.bm25)
        if not query:
            return []
        found = self.milvus.call("search", self.collection, data=[query], anns_field="sparse", limit=depth,
                                 output_fields=["id"], filter=_only(within),
                                 search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}})
        return _ranked(found[0], positive_only=True)

    def dense_search(self, vector: np.ndarray, depth: int, within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        params = {"metric_type": "IP"}
        if self.hnsw:  # ef must be at least the number of results
            params["params"] = {"ef": max(store.HNSW_EF_SEARCH, depth)}
        found = self.milvus.call("search", self.collection, data=[np.asarray(vector).reshape(-1).tolist()],
                                 anns_field="dense", limit=depth, output_fields=["id"], search_params=params,
                                 filter=_only(within))
        return _ranked(found[0])

    def fetch(self, ids: Sequence[int]) -> list[Passage]:
        if not ids:
            return []
        rows = self.milvus.call("get", self.collection, ids=list(ids), output_fields=["id", *PASSAGE_FIELDS])
        by_id = {row["id"]: passage_of(row) for row in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise MilvusError(f"passage {missing[0]} vanished from {self.location} while it was read",
                              advice="ask again")
        return [by_id[i] for i in ids]

    def __iter__(self) -> Iterator[Passage]:
        rows = self.milvus.scan(self.collection, "id >= 0", ["id", *PASSAGE_FIELDS])
        return iter([passage_of(row) for row in sorted(rows, key=lambda row: row["id"])])

    def close(self) -> None:
        """Nothing to release: the connection stays with its backend for the next load."""


def _only(within: frozenset[str] | None) -> str:
    """A Milvus filter keeping the passages of these articles ("" keeps all)."""
    return "" if within is None else f"source in {json.dumps(sorted(within), ensure_ascii=False)}"


def _ranked(hits: Iterable[dict], positive_only: bool = False) -> list[tuple[int, float]]:
    ranked = [(int(hit["id"]), float(hit["distance"])) for hit in hits]
    # Milvus orders equal scores as it finds them; the file backend (and so parity) by passage id.
    ranked.sort(key=lambda pair: (-pair[1], pair[0]))
    return [pair for pair in ranked if pair[1] > 0] if positive_only else ranked
