"""The index on disk: built beside the live one, switched in atomically, read without pickle.

Layout of an index folder:
    CURRENT          name of the live generation (replaced with os.replace, so readers see
                     either the old or the new one, never a mix)
    gen-*/           one complete index: manifest.json, passages.jsonl, dense.faiss
    .build-*/        a build in progress (removed by the next build if it was interrupted)
    .lock            held by the one build allowed at a time
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from qa import chunk, ingest, retrieve
from qa.chunk import Passage
from qa.embed import ONNX_CONFIG, ONNX_FILES, ONNX_OUTPUTS, file_sha256, has_onnx_export, resolve_model
from qa.errors import QAError

FORMAT_VERSION = 6
"""Raised whenever what an index holds changes, including the passages ingest and chunking cut and
the BM25 terms (4: a leading `date` field is no longer body text, and terms are stemmed by
`retrieve.stem`; 5: the model's ONNX export also gave MiniLM's middle layer; 6: it no longer does),
so an older index is rebuilt rather than trusted."""
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
"""Files up to this size are checked by sha256 on every load; bigger ones (vectors, model) by size,
their own loaders rejecting a damaged format, so a cold query does not hash hundreds of MB."""
POINTER = "CURRENT"
IN_MEMORY = "(articles given in memory)"


class StoreError(QAError):
    """The index is missing, damaged or unusable; the message says what to run."""


@dataclass
class BuildReport:
    built: bool  # False when the existing index was already up to date
    reason: str
    files: int
    passages: int
    embedded: int  # passages whose vectors were computed (the rest were reused)
    embed_seconds: float
    seconds: float
    skipped: list[str]


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
    sparse: retrieve.OkapiBM25 | retrieve.SparseBM25
    dense: object  # faiss index


def chunking_params() -> dict:
    return {"min_words": chunk.MIN_WORDS, "max_words": chunk.MAX_WORDS, "overlap": chunk.OVERLAP_SENTENCES}


def _faiss():
    import faiss

    faiss.omp_set_num_threads(1)  # single queries are 2-3x slower with threads
    return faiss


# --------------------------------------------------------------------------- reading


def current_generation(index_dir: Path) -> Path | None:
    pointer = index_dir / POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {pointer}: {exc.strerror}") from None
    if not name.startswith("gen-") or "/" in name or "\\" in name or name in (".", ".."):
        raise StoreError(f"{pointer} is damaged; run `qa index --rebuild`")
    return index_dir / name


def read_manifest(generation: Path) -> dict:
    try:
        manifest = json.loads((generation / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"index manifest missing in {generation}; run `qa index --rebuild`") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise StoreError(f"index manifest in {generation} is damaged; run `qa index --rebuild`") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise StoreError(f"index manifest in {generation} is damaged; run `qa index --rebuild`")
    if manifest["format"] > FORMAT_VERSION:
        raise StoreError(
            f"index in {generation} was written by a newer qa (format {manifest['format']}, "
            f"this one reads {FORMAT_VERSION}); upgrade qa or run `qa index --rebuild`"
        )
    return manifest


def load(index_dir: Path) -> LoadedIndex:
    """The live index, checked against its manifest (sizes and sha256 of every file)."""
    generation = current_generation(index_dir)
    if generation is None:
        raise StoreError(f"no index in {index_dir}; run `qa index`")
    manifest = read_manifest(generation)
    damaged = f"index in {generation} is damaged; run `qa index --rebuild`"
    try:
        checks = manifest["index_files"]
        if not set(REQUIRED_FILES) <= set(checks):
            raise StoreError(damaged)
        for name, check in checks.items():
            path = generation / Path(name).name
            size = path.stat().st_size
            if size != check["size"] or (size <= HASHED_UP_TO and file_sha256(path) != check["sha256"]):
                raise StoreError(damaged)
        passages = PassageStore(generation / PASSAGES, np.load(generation / PASSAGE_OFFSETS, allow_pickle=False))
        if (generation / TOKENS).is_file():
            with open(generation / TOKENS, encoding="utf-8") as handle:
                sparse = retrieve.OkapiBM25([json.loads(line) for line in handle])
        else:
            sparse = retrieve.SparseBM25.load(generation)
        dense = _faiss().read_index(str(generation / DENSE))
        if hasattr(dense, "hnsw"):
            dense.hnsw.efSearch = HNSW_EF_SEARCH
        dim = manifest["model"]["dim"]
        if len(passages) != manifest["counts"]["passages"] or dense.ntotal != len(passages) or dense.d != dim \
                or passages.offsets[-1] != checks[PASSAGES]["size"]:
            raise StoreError(damaged)
    except StoreError:
        raise
    except FileNotFoundError as exc:
        raise StoreError(f"index file {Path(exc.filename).name} missing in {generation}; run `qa index --rebuild`") from None
    except Exception:  # any parse error of a damaged file
        raise StoreError(damaged) from None
    return LoadedIndex(generation, manifest, passages, sparse, dense)


# --------------------------------------------------------------------------- freshness


def staleness(index_dir: Path, corpus: Path | Sequence[ingest.Article], model_name: str) -> str | None:
    """Why the index must be (re)built for this corpus and model, or None if it is current.

    Files are compared by size and mtime first and by content hash only when those differ,
    so an unchanged corpus folder costs one stat per file.
    """
    generation = current_generation(index_dir)
    if generation is None:
        return "no index yet"
    try:
        manifest = read_manifest(generation)
    except StoreError as exc:
        return str(exc).split(";")[0]
    if manifest.get("format") != FORMAT_VERSION:
        return f"index format {manifest.get('format')} differs from {FORMAT_VERSION}"
    if manifest.get("model", {}).get("name") != model_name:
        return f"model changed ({manifest.get('model', {}).get('name')} -> {model_name})"
    if manifest.get("chunking") != chunking_params():
        return "chunking parameters changed"
    known = {f["source"]: f for f in manifest.get("files", []) + manifest.get("skipped_files", [])}
    if not isinstance(corpus, Path):
        if manifest.get("corpus") != IN_MEMORY or {a.source: a.sha256 for a in corpus} != {
                s: f["sha256"] for s, f in known.items()}:
            return "articles changed"
        return None
    if manifest.get("corpus") != str(corpus.resolve()):
        return f"corpus folder changed ({manifest.get('corpus')} -> {corpus.resolve()})"
    current = ingest.list_corpus(corpus)
    if {f.source for f in current} != set(known):
        return "articles added or removed"
    for file in current:
        entry = known[file.source]
        if (entry["size"], entry["mtime_ns"]) != (file.size, file.mtime_ns):
            if _safe_sha256(file.path) != entry["sha256"]:
                return f"{file.source} changed"
    return None


# --------------------------------------------------------------------------- building


@contextmanager
def build_lock(index_dir: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One build at a time per index folder; a second one waits for the first."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(index_dir: Path, keep: set[str]) -> None:
    """Interrupted builds and generations no reader can still be on."""
    generations = sorted((p for p in index_dir.glob("gen-*") if p.is_dir()), key=lambda p: p.name)
    stale = list(index_dir.glob(".build-*")) + [p for p in generations if p.name not in keep]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    for pointer_tmp in index_dir.glob(f".{POINTER}.*"):
        pointer_tmp.unlink(missing_ok=True)


def _previous_vectors(index_dir: Path, model_name: str, weights: str | None) -> dict[str, np.ndarray]:
    """Vectors of the live index per article hash, reusable when model and chunking are unchanged."""
    try:
        old = load(index_dir)
    except StoreError:
        return {}
    model = old.manifest["model"]
    if (model["name"], model["weights_sha256"]) != (model_name, weights) or old.manifest["chunking"] != chunking_params():
        return {}
    vectors = old.dense.reconstruct_n(0, old.dense.ntotal) if old.dense.ntotal else np.zeros((0, model["dim"]), np.float32)
    reuse = {}
    for entry in old.manifest["files"]:
        first, count = entry["passages"]
        reuse[entry["sha256"]] = vectors[first : first + count]
    return reuse


def _write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def build(corpus: Path | Sequence[ingest.Article], index_dir: Path, model_name: str, *, force: bool = False,
          strict: bool = False, make_encoder: Callable[[], object],
          on_progress: Callable[[int, int], None] | None = None,
          on_wait: Callable[[], None] | None = None) -> BuildReport:
    """(Re)build the index of `corpus` (a folder, or articles already in memory) unless it is current.

    Vectors of articles whose content hash is unchanged are reused; `make_encoder()` is called
    only if some passage needs embedding, and `on_progress(done, total)` follows the embedding.
    """
    began = time.perf_counter()
    with build_lock(index_dir, on_wait):
        reason = "rebuild requested" if force else staleness(index_dir, corpus, model_name)
        live = current_generation(index_dir)
        _remove_leftovers(index_dir, keep={live.name} if live else set())
        if reason is None:
            manifest = read_manifest(live)
            return BuildReport(False, "up to date", manifest["counts"]["files"], manifest["counts"]["passages"],
                               0, 0.0, time.perf_counter() - began, [])
        if isinstance(corpus, Path):
            read = ingest.read_corpus(corpus, strict=strict)
            articles, listing, skipped, corpus_id = read.articles, read.files, read.skipped, str(corpus.resolve())
        else:
            articles, listing, skipped, corpus_id = list(corpus), [], [], IN_MEMORY
        per_article = [chunk.chunk_article(a) for a in articles]
        passages = [p for group in per_article for p in group]

        _, weights = resolve_model(model_name)
        reuse = {} if force else _previous_vectors(index_dir, model_name, weights)
        needed = [p.text for a, group in zip(articles, per_article) if a.sha256 not in reuse for p in group]
        live_model = _reusable_model_export(live, model_name, weights)
        encoder = make_encoder() if needed or not reuse or live_model is None else None
        dim = encoder.dim if encoder else next(iter(reuse.values())).shape[1]
        fresh, embed_seconds = _embed(encoder, needed, dim, on_progress)

        vectors = np.zeros((len(passages), dim), np.float32)
        files, row, fresh_row = [], 0, 0
        stats = {f.source: f for f in listing}
        for article, group in zip(articles, per_article):
            if article.sha256 in reuse:
                vectors[row : row + len(group)] = reuse[article.sha256]
            else:
                vectors[row : row + len(group)] = fresh[fresh_row : fresh_row + len(group)]
                fresh_row += len(group)
            stat = stats.get(article.source)
            files.append({"source": article.source, "title": article.title, "date": article.date,
                          "sha256": article.sha256, "size": stat.size if stat else None,
                          "mtime_ns": stat.mtime_ns if stat else None, "passages": [row, len(group)]})
            row += len(group)
        indexed = {a.source for a in articles}
        skipped_files = [
            {"source": f.source, "size": f.size, "mtime_ns": f.mtime_ns, "sha256": _safe_sha256(f.path)}
            for f in listing if f.source not in indexed
        ]
        manifest = {
            "format": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "corpus": corpus_id,
            "model": {"name": model_name, "weights_sha256": weights, "dim": dim},
            "chunking": chunking_params(),
            "tokenizer": {"stopwords": True, "stemmer": "light"},
            "counts": {"files": len(files), "passages": len(passages), "skipped": len(skipped_files)},
            "files": files,
            "skipped_files": skipped_files,
            "skipped": skipped,
        }
        def add_query_encoder(staging: Path) -> None:
            """The ONNX export queries embed with: linked from the live index when unchanged."""
            if live_model is not None:
                for name in ONNX_FILES:
                    os.link(live_model / name, staging / name)
            else:
                encoder.export_onnx(staging)

        generation = _write_generation(index_dir, manifest, passages, vectors, add_query_encoder)
        _remove_leftovers(index_dir, keep={generation.name} | ({live.name} if live else set()))
        return BuildReport(True, reason, len(files), len(passages), len(needed), embed_seconds,
                           time.perf_counter() - began, skipped)


def _embed(encoder, texts: list[str], dim: int, on_progress) -> tuple[np.ndarray, float]:
    """Vectors of `texts` and the seconds spent encoding them."""
    if on_progress:
        on_progress(0, len(texts))
    if not texts:
        return np.zeros((0, dim), np.float32), 0.0
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if on_progress:
            on_progress(done, len(texts))

    began = time.perf_counter()
    vectors = encoder.encode(texts, on_batch=step)
    return vectors, time.perf_counter() - began


def _sync(folder: Path) -> None:
    """Flush every file of a staged generation to disk before it can become the live one."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _reusable_model_export(live: Path | None, model_name: str, weights: str | None) -> Path | None:
    """The live generation, if it holds an ONNX export of this very model."""
    if live is None or weights is None or not has_onnx_export(live):
        return None
    try:
        config = json.loads((live / ONNX_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wanted = (model_name, weights, list(ONNX_OUTPUTS))
    return live if (config.get("model"), config.get("weights_sha256"), config.get("outputs")) == wanted else None


def _write_generation(index_dir: Path, manifest: dict, passages: list[Passage], vectors: np.ndarray,
                      add_files: Callable[[Path], None]) -> Path:
    """Write a complete generation beside the live one, then point CURRENT at it in one rename."""
    staging = index_dir / f".build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        offsets = [0]
        with open(staging / PASSAGES, "wb") as handle:
            for passage in passages:
                offsets.append(offsets[-1] + handle.write((json.dumps(passage.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")))
        np.save(staging / PASSAGE_OFFSETS, np.array(offsets, dtype=np.int64), allow_pickle=False)
        tokens = [retrieve.tokenize(p.text) for p in passages]
        if len(passages) > retrieve.BM25S_ABOVE:
            retrieve.SparseBM25.build(tokens).save(staging)
        else:
            with open(staging / TOKENS, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in tokens)
        faiss = _faiss()
        dim = manifest["model"]["dim"]
        if len(vectors) > HNSW_ABOVE:
            dense = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            dense.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            dense = faiss.IndexFlatIP(dim)
        if len(vectors):
            dense.add(vectors)
        faiss.write_index(dense, str(staging / DENSE))
        add_files(staging)
        _sync(staging)
        manifest["index_files"] = {
            path.name: {"size": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(staging.iterdir())
        }
        _write_json(staging / MANIFEST, manifest)
        generation = index_dir / f"gen-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        os.rename(staging, generation)
        pointer_tmp = index_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
        pointer_tmp.write_text(generation.name + "\n", encoding="utf-8")
        os.replace(pointer_tmp, index_dir / POINTER)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return generation


def _safe_sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
