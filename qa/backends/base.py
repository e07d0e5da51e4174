"""Where an index is kept: the index folder (the default) or a Milvus collection (qa/backends/milvus/backend.py).

`qa.api.QA` talks to a backend only through this interface, so the fusion, the reader, the
citations and the JSON contract are the same whichever keeps the passages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from qa.corpus.chunk import Passage
from qa.corpus.ingest import Article
from qa.index import freshness, store
from qa.index.build import BuildReport, build_index

BACKENDS = ("files", "milvus")


class OpenIndex(Protocol):
    """A loaded index: searched by qa.search.retrieve.Retriever, its passages fetched by id."""

    manifest: dict  # at least "model" (name, precision, dim) and "counts" (files, passages)
    folder: Path  # holds the model's ONNX export that queries are embedded with
    size: int

    def sparse_search(self, terms: list[str], depth: int) -> list[tuple[int, float]]: ...

    def dense_search(self, vector, depth: int) -> list[tuple[int, float]]: ...

    def fetch(self, ids: Sequence[int]) -> list[Passage]: ...

    def __iter__(self) -> Iterator[Passage]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    location: str  # what messages call it: the index folder, or the Milvus URI and collection
    rebuilds_when_damaged: bool  # whether a damaged index may be replaced from the corpus unasked

    def staleness(self, corpus: Path | Sequence[Article], model_name: str, follow_links: bool,
                  precision: str) -> str | None: ...

    def build(self, corpus: Path | Sequence[Article], model_name: str, *, force: bool, verify: bool,
              strict: bool, follow_links: bool, precision: str, make_encoder: Callable[[], object],
              on_progress: Callable[[int, int], None] | None,
              on_wait: Callable[[], None] | None) -> BuildReport: ...

    def load(self) -> OpenIndex: ...


class FileBackend:
    """The index folder of qa/index/store.py: generations switched in atomically, FAISS and BM25 files."""

    name = "files"
    rebuilds_when_damaged = True

    def __init__(self, index_dir: str | Path):
        self.index_dir = Path(index_dir)
        self.location = str(self.index_dir)

    def staleness(self, corpus, model_name, follow_links, precision):
        return freshness.staleness(self.index_dir, corpus, model_name, follow_links, precision)

    def build(self, corpus, model_name, **options) -> BuildReport:
        return build_index(corpus, self.index_dir, model_name, **options)

    def load(self) -> store.LoadedIndex:
        return store.load(self.index_dir)
