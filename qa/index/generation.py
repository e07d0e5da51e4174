"""Writing one generation of the index folder: a staging folder beside the live generation that a
build fills, then published with one rename of the pointer, so readers see the old index or the
new one, never a mix (layout in qa/index/store.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from qa.corpus.chunk import Passage
from qa.index.store import (
    DENSE,
    GENERATION_MARK,
    HNSW_ABOVE,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    MANIFEST,
    PASSAGE_OFFSETS,
    PASSAGES,
    POINTER,
    TOKENS,
    StoreError,
    faiss_module,
    file_check,
)
from qa.search import bm25


@contextmanager
def staging_folder(index_dir: Path, index_id: str) -> Iterator[Path]:
    """A marked folder beside the live generation that a build fills; removed if the build fails."""
    staging = index_dir / f".build-{index_id[:12]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / GENERATION_MARK).write_text(index_id + "\n", encoding="ascii")
        yield staging
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and not exc.filename:  # a full disk names no file: name the folder
            raise StoreError(f"cannot write the index in {index_dir}: {exc.strerror or exc}",
                             advice="the previous index is unchanged; free space or fix the folder, "
                                    "then run `qa index`") from None
        raise


def publish(staging: Path, index_dir: Path, index_id: str, manifest: dict, passages: list[Passage],
             vectors: np.ndarray) -> Path:
    """Write the rest of a generation into `staging`, then point CURRENT at it in one rename."""
    offsets = [0]
    with open(staging / PASSAGES, "wb") as handle:
        for passage in passages:
            offsets.append(offsets[-1] + handle.write((json.dumps(passage.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")))
    np.save(staging / PASSAGE_OFFSETS, np.array(offsets, dtype=np.int64), allow_pickle=False)
    tokens = (bm25.tokenize(p.text) for p in passages)  # one passage's at a time
    if len(passages) > bm25.BM25S_ABOVE:
        bm25.SparseBM25.build(tokens).save(staging)
    else:
        with open(staging / TOKENS, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in tokens)
    faiss = faiss_module()
    dim = manifest["model"]["dim"]
    if len(vectors) > HNSW_ABOVE:
        dense = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        dense.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        dense = faiss.IndexFlatIP(dim)
    if len(vectors):
        dense.add(vectors)
    faiss.write_index(dense, str(staging / DENSE))
    _sync(staging)
    manifest["index_files"] = {
        path.name: file_check(path) for path in sorted(staging.iterdir()) if path.name != GENERATION_MARK
    }
    _write_json(staging / MANIFEST, manifest)
    generation = index_dir / f"gen-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    os.rename(staging, generation)
    pointer_tmp = index_dir / f".{POINTER}.{index_id[:12]}.{uuid.uuid4().hex[:8]}"
    pointer_tmp.write_text(generation.name + "\n", encoding="utf-8")
    os.replace(pointer_tmp, index_dir / POINTER)
    return generation


def _sync(folder: Path) -> None:
    """Flush every file of a staged generation to disk before it can become the live one."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
