"""The two collections qa keeps in Milvus, for `--milvus-collection NAME` (default qa_passages):

    NAME          a row per passage: id (corpus order at the first build, then counted on), source,
                  title, date, author, sitename, page (0: none), start, end, text, article (its file's sha256), dense (the model's
                  vector: FLAT on Lite, exact like the file backend; HNSW on a server) and sparse
                  (its BM25 weights, inner product)
    NAME_catalog  rows keyed "m:meta" (model, chunking, counts, BM25 statistics, ids handed
                  out), "a:SOURCE" (an article: its hash, size, mtime) and "t:TERM" (a term: its
                  sparse dimension and document frequency), their primary key a hash of that key;
                  `pad` is there because Milvus wants a vector field in every collection
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from qa.backends.milvus import bm25_weights
from qa.backends.milvus.client import BATCH_ROWS, Connection, MilvusError
from qa.corpus.chunk import Passage
from qa.index import store
from qa.search import bm25

TEXT_LIMIT = 65_535  # bytes in a Milvus VARCHAR
PAD = [0.0, 0.0]
META_KEY = "m:meta"
HNSW = {"M": store.HNSW_M, "efConstruction": store.HNSW_EF_CONSTRUCTION}
PASSAGE_FIELDS = ["source", "title", "date", "author", "sitename", "page", "start", "end", "text"]
MAX_TERM = 512  # characters: a \w+ run of thousands is no word anyone asks for


def catalog_name(collection: str) -> str:
    return collection + "_catalog"


def terms_of(text: str) -> list[str]:
    """The BM25 terms of the file backend (qa.search.bm25.tokenize), cut to what a catalog key holds."""
    return [term[:MAX_TERM] for term in bm25.tokenize(text)]


def term_key(term: str) -> str:
    return "t:" + term


def article_key(source: str) -> str:
    return "a:" + source


def literal(text: str) -> str:
    """`text` as a string in a Milvus filter expression (a file name may hold quotes)."""
    return json.dumps(text, ensure_ascii=False)


def row_id(key: str) -> int:
    """A catalog row's primary key: a 63-bit hash of its key. pymilvus quotes string keys itself, in
    `ids=` and when an iterator pages on, and breaks on an apostrophe or a double quote."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def upsert_catalog(milvus: Connection, rows: list[dict]) -> None:
    """Catalog rows ({key, kind, dimension, df, data}) written, their ids and pad added."""
    catalog = catalog_name(milvus.config.collection)
    for start in range(0, len(rows), BATCH_ROWS):
        milvus.call("upsert", catalog, [{**row, "id": row_id(row["key"]), "pad": PAD}
                                        for row in rows[start:start + BATCH_ROWS]])


def create_collections(milvus: Connection, dim: int) -> None:
    from pymilvus import DataType

    client, collection = milvus.client, milvus.config.collection
    names = set(milvus.call("list_collections"))
    if collection in names or catalog_name(collection) in names:
        raise MilvusError(f"Milvus collection {collection} or {catalog_name(collection)} exists but was not made "
                          "by qa", advice="pass --milvus-collection another name")
    schema = client.create_schema(auto_id=False, description="passages indexed by qa")
    schema.add_field("id", DataType.INT64, is_primary=True)
    for name, length in (("source", TEXT_LIMIT), ("title", TEXT_LIMIT), ("date", 64), ("author", TEXT_LIMIT),
                         ("sitename", TEXT_LIMIT), ("article", 64), ("text", TEXT_LIMIT)):
        schema.add_field(name, DataType.VARCHAR, max_length=length)
    schema.add_field("page", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    index = client.prepare_index_params()
    if milvus.config.local:
        index.add_index("dense", index_type="FLAT", metric_type="IP")
    else:
        index.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW)
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    milvus.call("create_collection", collection, schema=schema, index_params=index)
    catalog = client.create_schema(auto_id=False, description="what qa indexed in " + collection)
    catalog.add_field("id", DataType.INT64, is_primary=True)
    catalog.add_field("key", DataType.VARCHAR, max_length=TEXT_LIMIT)
    catalog.add_field("kind", DataType.VARCHAR, max_length=16)
    catalog.add_field("dimension", DataType.INT64)
    catalog.add_field("df", DataType.INT64)
    catalog.add_field("data", DataType.JSON)
    catalog.add_field("pad", DataType.FLOAT_VECTOR, dim=len(PAD))
    pad_index = client.prepare_index_params()
    pad_index.add_index("pad", index_type="FLAT", metric_type="L2")
    milvus.call("create_collection", catalog_name(collection), schema=catalog, index_params=pad_index)


def passage_row(passage_id: int, passage: Passage, article_sha256: str, vector: np.ndarray,
                weights: dict[int, float]) -> dict:
    if len(passage.text.encode("utf-8")) > TEXT_LIMIT:
        raise MilvusError(f"a passage of {passage.source} is longer than Milvus's {TEXT_LIMIT}-byte text field")
    return {"id": passage_id, "source": passage.source, "title": passage.title, "date": passage.date or "",
            "author": passage.author or "", "sitename": passage.sitename or "", "page": passage.page or 0,
            "start": passage.start, "end": passage.end, "text": passage.text, "article": article_sha256,
            "dense": vector.tolist(), "sparse": weights or bm25_weights.PLACEHOLDER}


def passage_of(row: dict) -> Passage:
    return Passage(source=row["source"], title=row["title"], date=row["date"] or None, start=int(row["start"]),
                   end=int(row["end"]), text=row["text"], author=row["author"] or None,
                   sitename=row["sitename"] or None, page=int(row["page"]) or None)
