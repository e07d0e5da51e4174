"""The index on disk: its layout, and reading it back without pickle, checked against its manifest.

qa/index/build.py builds a generation beside the live one and qa/index/generation.py switches it in
atomically; qa/index/freshness.py says whether it is still current; qa/index/folder.py decides what in the
folder qa made and may remove.

Layout of an index folder (qa builds only in an empty folder or one it made, and removes only what
it can prove it made: a folder whose `.qa-generation` holds this index's id):
    .qa-index        this index's id (random), written when the folder became an index
    .gitignore       "everything here is generated", so an index inside a repository stays out of it
    CURRENT          name of the live generation (replaced with os.replace, so readers see
                     either the old or the new one, never a mix)
    gen-*/           one complete index: manifest.json, passages.jsonl, dense.faiss, ...; readers
                     hold a shared lock on its `.qa-generation` while they use it, and a build
                     removes an old generation only when it can take that lock exclusively
    .build-*/        a build in progress (removed by the next build if it was interrupted)
    .lock            held by the one build allowed at a time
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from qa.corpus.chunk import Passage
from qa.errors import QAError
from qa.search import bm25, retrieve
from qa.search.embed import file_sha256

FORMAT_VERSION = 9
"""Raised whenever what an index holds changes (the passages ingest and chunking cut, the BM25
terms, the model's export, the layout; 9: web pages read by trafilatura, PDFs, passages with
author, site and page), so an older index is rebuilt rather than trusted."""
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
PASSAGE_OFFSETS = "passage_offsets.npy"
TOKENS = "tokens.jsonl"
DENSE = "dense.faiss"
HNSW_ABOVE = 200_000
"""Exact inner-product search up to this many passages (one query at 100k: 6-8 ms); an HNSW graph
above it, whose recall eval/bench.py measures."""
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 1024  # efSearch 256 gave recall@10 0.94 (eval/bench.py)
REQUIRED_FILES = (PASSAGES, PASSAGE_OFFSETS, DENSE)
HASHED_UP_TO = 64 * 2**20
"""Files up to this size are checked by sha256 on every load; bigger ones (vectors, model) are hashed
only when their size, mtime or inode differ from what was recorded when they were written (ctime
would catch more, but linking a file into the next generation changes it), so a cold query does
not hash hundreds of MB. `qa index --verify` hashes everything."""
POINTER = "CURRENT"
GENERATION_MARK = ".qa-generation"
GENERATION_NAME = re.compile(r"gen-\d{14}-[0-9a-f]{8}")
IN_MEMORY = "(articles given in memory)"
REBUILD = "run `qa index --rebuild`"


class StoreError(QAError):
    """The index is missing, damaged or unusable; `problem` says what, the message also what to run."""

    def __init__(self, problem: str, advice: str | None = REBUILD):
        super().__init__(f"{problem}; {advice}" if advice else problem)
        self.problem = problem


class NewerIndexError(StoreError):
    """Written by a newer qa: never replaced unless the user asks (`qa index --rebuild`)."""


class PassageStore:
    """Passages read from disk on demand, so a query on a large index parses only what it shows."""

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path, self.offsets = path, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Passage:
        if not 0 <= i < len(self):
            raise IndexError(i)
        with open(self.path, "rb") as handle:
            handle.seek(int(self.offsets[i]))
            return Passage(**json.loads(handle.read(int(self.offsets[i + 1] - self.offsets[i]))))

    def __iter__(self) -> Iterator[Passage]:
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                yield Passage(**json.loads(line))


@dataclass
class LoadedIndex:
    folder: Path  # the generation folder
    manifest: dict
    passages: PassageStore
    sparse: bm25.OkapiBM25 | bm25.SparseBM25
    dense: object  # faiss index
    hold: object  # the open `.qa-generation` whose shared lock keeps builds from removing the folder

    @property
    def size(self) -> int:
        return len(self.passages)

    def articles(self) -> list[tuple[str, str | None]]:
        return [(entry["source"], entry.get("date")) for entry in self.manifest["files"]]

    def passages_of(self, within: frozenset[str]) -> np.ndarray:
        """Which passages belong to these articles (each article's passages are one run of ids)."""
        mask = np.zeros(self.size, bool)
        for entry in self.manifest["files"]:
            if entry["source"] in within:
                mask[entry["passages"][0] : sum(entry["passages"])] = True
        return mask

    def sparse_search(self, terms: list[str], depth: int, within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        scores = self.sparse.get_scores(terms)
        return retrieve.top_scores(scores if within is None else np.where(self.passages_of(within), scores, 0.0), depth)

    def dense_search(self, vector: np.ndarray, depth: int, within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        if within is None:
            scores, ids = self.dense.search(vector, depth)
        else:
            faiss = faiss_module()
            allowed = np.flatnonzero(self.passages_of(within))
            if not len(allowed):
                return []
            selector = faiss.IDSelectorBatch(allowed.astype(np.int64))  # kept alive here while FAISS uses it
            params = (faiss.SearchParametersHNSW(sel=selector, efSearch=self.dense.hnsw.efSearch)
                      if hasattr(self.dense, "hnsw") else faiss.SearchParameters(sel=selector))
            scores, ids = self.dense.search(vector, min(depth, len(allowed)), params=params)
        # FAISS pads with id -1 when fewer than `depth` vectors exist.
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def fetch(self, ids: Sequence[int]) -> list[Passage]:
        return [self.passages[i] for i in ids]

    def __iter__(self) -> Iterator[Passage]:
        return iter(self.passages)

    def close(self) -> None:
        """Let a later build remove this generation once it is no longer the live one."""
        self.hold.close()


def faiss_module():
    import faiss

    faiss.omp_set_num_threads(1)  # single queries are 2-3x slower with threads
    return faiss


def live_generation(index_dir: Path) -> tuple[Path | None, str]:
    """(the live generation, "") or (None, why there is none): a pointer that cannot be trusted
    (binary, a link, a name qa never writes, leading out of the folder) means "no index"."""
    pointer = index_dir / POINTER
    try:
        if pointer.is_symlink():
            return None, f"{pointer} is a link, which qa never writes"
        data = pointer.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None, "no index yet"
    except OSError as exc:
        raise StoreError(f"cannot read {pointer}: {exc.strerror}", advice=None) from None
    name = data.decode("ascii", errors="replace").strip()
    if not GENERATION_NAME.fullmatch(name):
        return None, f"{pointer} is damaged"
    generation = index_dir / name
    if generation.is_symlink() or not generation.is_dir():
        return None, f"{pointer} names a generation that is missing"
    return generation, ""


def current_generation(index_dir: Path) -> Path | None:
    return live_generation(index_dir)[0]


def read_manifest(generation: Path) -> dict:
    damaged = f"index manifest in {generation} is damaged"
    try:
        manifest = json.loads((generation / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"index manifest missing in {generation}") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise StoreError(damaged) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise StoreError(damaged)
    if manifest["format"] > FORMAT_VERSION:
        raise NewerIndexError(
            f"index in {generation} was written by a newer qa (format {manifest['format']}, "
            f"this one reads {FORMAT_VERSION})", advice="upgrade qa, or run `qa index --rebuild` to replace it")
    return manifest


def file_check(path: Path) -> dict:
    """What `verified` compares a file against later."""
    st = path.stat()
    return {"size": st.st_size, "sha256": file_sha256(path), "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def verified(path: Path, check: dict, full: bool = False) -> bool:
    """Whether `path` is the file `check` recorded; see HASHED_UP_TO for when it is hashed."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != check.get("size"):
        return False
    unchanged = (st.st_mtime_ns, st.st_ino) == (check.get("mtime_ns"), check.get("inode"))
    if st.st_size > HASHED_UP_TO and unchanged and not full:
        return True
    return safe_sha256(path) == check.get("sha256")


def _hold(generation: Path):
    """The generation's mark, opened and share-locked, or None if a build removed it meanwhile."""
    mark = generation / GENERATION_MARK
    try:
        handle = open(mark, "rb")
    except FileNotFoundError:
        if generation.is_dir():
            raise StoreError(f"index in {generation} is damaged (its {GENERATION_MARK} is missing)") from None
        return None
    fcntl.flock(handle, fcntl.LOCK_SH)  # waits while a build holds it to remove the folder
    try:
        still_there = os.stat(mark).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        still_there = False
    if not still_there:
        handle.close()
        return None
    return handle


def load(index_dir: Path, full_check: bool = False) -> LoadedIndex:
    """The live index, checked against its manifest, and held so no build removes it while in use."""
    for _ in range(5):  # the pointer moved on and the generation was removed between two steps
        generation, why = live_generation(index_dir)
        if generation is None:
            raise StoreError(f"no index in {index_dir}" if why == "no index yet" else why,
                             advice="run `qa index`" if why == "no index yet" else REBUILD)
        hold = _hold(generation)
        if hold is not None:
            break
    else:
        raise StoreError(f"the index in {index_dir} keeps changing under this reader", advice="ask again")
    try:
        return _load_generation(generation, hold, full_check)
    except BaseException:
        hold.close()
        raise


def _load_generation(generation: Path, hold, full_check: bool) -> LoadedIndex:
    manifest = read_manifest(generation)
    damaged = StoreError(f"index in {generation} is damaged")
    try:
        checks = manifest["index_files"]
        if not set(REQUIRED_FILES) <= set(checks):
            raise damaged
        for name, check in checks.items():
            if not verified(generation / Path(name).name, check, full_check):
                raise damaged
        passages = PassageStore(generation / PASSAGES, np.load(generation / PASSAGE_OFFSETS, allow_pickle=False))
        if (generation / TOKENS).is_file():
            with open(generation / TOKENS, encoding="utf-8") as handle:
                sparse = bm25.OkapiBM25([json.loads(line) for line in handle])
        else:
            sparse = bm25.SparseBM25.load(generation)
        dense = faiss_module().read_index(str(generation / DENSE))
        if hasattr(dense, "hnsw"):
            dense.hnsw.efSearch = HNSW_EF_SEARCH
        dim = manifest["model"]["dim"]
        if len(passages) != manifest["counts"]["passages"] or dense.ntotal != len(passages) or dense.d != dim \
                or passages.offsets[-1] != checks[PASSAGES]["size"]:
            raise damaged
    except StoreError:
        raise
    except FileNotFoundError as exc:
        raise StoreError(f"index file {Path(exc.filename).name} missing in {generation}") from None
    except Exception:  # any parse error of a damaged file
        raise damaged from None
    return LoadedIndex(generation, manifest, passages, sparse, dense, hold)


def safe_sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
