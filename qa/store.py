"""The index on disk: built beside the live one, switched in atomically, read without pickle.

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

import datetime as _dt
import fcntl
import json
import os
import re
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
from qa.embed import (
    DEFAULT_PRECISION,
    ONNX_CONFIG,
    ONNX_FILES,
    ONNX_OUTPUTS,
    ModelError,
    build_encoder,
    file_sha256,
    has_onnx_export,
    resolve_model,
)
from qa.errors import QAError

FORMAT_VERSION = 8
"""Raised whenever what an index holds changes, including the passages ingest and chunking cut and
the BM25 terms (4: a leading `date` field is no longer body text, and terms are stemmed by
`retrieve.stem`; 5: the model's ONNX export also gave MiniLM's middle layer; 6: it no longer does;
7: generations carry the index's id, files their mtime and inode),
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
"""Files up to this size are checked by sha256 on every load; bigger ones (vectors, model) are hashed
only when their size, mtime or inode differ from what was recorded when they were written (ctime
would catch more, but linking a file into the next generation changes it), so a cold query does
not hash hundreds of MB. `qa index --verify` hashes everything."""
POINTER = "CURRENT"
INDEX_ID = ".qa-index"
GENERATION_MARK = ".qa-generation"
GITIGNORE = ".gitignore"
GITIGNORE_TEXT = "# made by qa: everything in this folder is generated\n*\n"
LOCK = ".lock"
WRITTEN_FILES = {GENERATION_MARK, MANIFEST, PASSAGES, PASSAGE_OFFSETS, TOKENS, DENSE, *ONNX_FILES}
BM25S_SUFFIXES = (".index.npy", ".index.json")  # the files bm25s saves above retrieve.BM25S_ABOVE
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
    hold: object  # the open `.qa-generation` whose shared lock keeps builds from removing the folder

    def close(self) -> None:
        """Let a later build remove this generation once it is no longer the live one."""
        self.hold.close()


def chunking_params() -> dict:
    return {"min_words": chunk.MIN_WORDS, "max_words": chunk.MAX_WORDS, "overlap": chunk.OVERLAP_SENTENCES}


def _faiss():
    import faiss

    faiss.omp_set_num_threads(1)  # single queries are 2-3x slower with threads
    return faiss


# --------------------------------------------------------------------------- reading


def _pointer(index_dir: Path) -> tuple[Path | None, str]:
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
    return _pointer(index_dir)[0]


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
    return _safe_sha256(path) == check.get("sha256")


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
        generation, why = _pointer(index_dir)
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
                sparse = retrieve.OkapiBM25([json.loads(line) for line in handle])
        else:
            sparse = retrieve.SparseBM25.load(generation)
        dense = _faiss().read_index(str(generation / DENSE))
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


# --------------------------------------------------------------------------- freshness


def staleness(index_dir: Path, corpus: Path | Sequence[ingest.Article], model_name: str,
              follow_links: bool = False, precision: str = DEFAULT_PRECISION) -> str | None:
    """Why the index must be (re)built for this corpus, model and precision, or None if it is
    current; an index of a newer format raises NewerIndexError.

    Files are compared by size and mtime first and by content hash only when those differ,
    so an unchanged corpus folder costs one stat per file.
    """
    generation, why = _pointer(index_dir)
    if generation is None:
        return why
    try:
        manifest = read_manifest(generation)
    except NewerIndexError:
        raise  # not ours to judge, nor to replace unasked
    except StoreError as exc:
        return exc.problem
    if manifest.get("format") != FORMAT_VERSION:
        return f"index format {manifest.get('format')} differs from {FORMAT_VERSION}"
    if manifest.get("model", {}).get("name") != model_name:
        return f"model changed ({manifest.get('model', {}).get('name')} -> {model_name})"
    if manifest["model"].get("precision") != precision:
        return f"precision changed ({manifest['model'].get('precision')} -> {precision})"
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
    current = ingest.list_corpus(corpus, follow_links).files
    if {f.source for f in current} != set(known):
        return "articles added or removed"
    for file in current:
        entry = known[file.source]
        if (entry["size"], entry["mtime_ns"]) != (file.size, file.mtime_ns):
            if _safe_sha256(file.path) != entry["sha256"]:
                return f"{file.source} changed"
    return None


# --------------------------------------------------------------------------- building


def claim(index_dir: Path) -> str:
    """The index's id. A missing or empty folder becomes an index; one holding anything qa did not
    make is refused, so a build never removes or overwrites what a user keeps there."""
    if index_dir.exists() and not index_dir.is_dir():
        raise StoreError(f"--index {index_dir} is a file, not a folder", advice="pass --index a folder")
    index_dir.mkdir(parents=True, exist_ok=True)
    index_id = _index_id(index_dir)
    if index_id is None:
        _refuse_foreign(index_dir, [e for e in _entries(index_dir)
                                    if e not in (INDEX_ID, LOCK) and not _is_our_gitignore(index_dir / e)])
        try:
            descriptor = os.open(index_dir / INDEX_ID, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another build claimed the folder first: give it time to write the id
            time.sleep(0.2)
        else:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(uuid.uuid4().hex + "\n")
        if not (index_dir / GITIGNORE).exists():
            (index_dir / GITIGNORE).write_text(GITIGNORE_TEXT, encoding="utf-8")
        index_id = _index_id(index_dir)
        if index_id is None:
            raise StoreError(f"{index_dir / INDEX_ID} is damaged, so qa cannot tell which folders there it made",
                             advice=f"delete {index_dir} if it holds nothing of yours, or pass --index a new folder")
    _refuse_foreign(index_dir, [e for e in _entries(index_dir) if not _is_own(index_dir / e, index_id)])
    return index_id


def _entries(index_dir: Path) -> list[str]:
    return sorted(os.listdir(index_dir))


def _index_id(index_dir: Path) -> str | None:
    try:
        text = (index_dir / INDEX_ID).read_bytes().decode("ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {index_dir / INDEX_ID}: {exc.strerror}", advice=None) from None
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None


def _refuse_foreign(index_dir: Path, foreign: list[str]) -> None:
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise StoreError(f"{index_dir} holds files qa did not make ({shown}); qa builds an index only in an "
                         "empty folder or one it made", advice="pass --index a new folder, or move those files out")


def _is_our_gitignore(path: Path) -> bool:
    try:
        return path.name == GITIGNORE and not path.is_symlink() and path.read_text(encoding="utf-8") == GITIGNORE_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _is_own(path: Path, index_id: str) -> bool:
    """Whether qa made this entry of the index folder (see the module docstring)."""
    name = path.name
    if name in (INDEX_ID, LOCK, POINTER):
        return path.is_symlink() or path.is_file()
    if name == GITIGNORE:
        return _is_our_gitignore(path)
    if name.startswith(f".{POINTER}.{index_id[:12]}."):
        return path.is_file()
    if name.startswith(("gen-", ".build-")):
        # A folder named as qa names generations whose mark was damaged is tolerated (so the index
        # can heal) but, unprovable, never removed.
        return _made_here(path, index_id) or bool(GENERATION_NAME.fullmatch(name) and path.is_dir())
    return False


def _made_here(folder: Path, index_id: str) -> bool:
    """A generation or staging folder of this index: its mark holds the id (a staging folder
    killed before its mark was written is empty and named after the id)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        return (folder / GENERATION_MARK).read_text(encoding="ascii").strip() == index_id
    except FileNotFoundError:
        return folder.name.startswith(f".build-{index_id[:12]}-") and not any(folder.iterdir())
    except (OSError, UnicodeDecodeError):
        return False


@contextmanager
def build_lock(index_dir: Path, on_wait: Callable[[], None] | None = None) -> Iterator[str]:
    """One build at a time per index folder (a second one waits for the first); yields the index id."""
    index_id = claim(index_dir)
    with open(index_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield index_id
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(index_dir: Path, index_id: str, keep: set[str]) -> None:
    """Interrupted builds, and generations of this index no reader holds any more."""
    for name in _entries(index_dir):
        path = index_dir / name
        if name.startswith(f".{POINTER}.{index_id[:12]}.") and path.is_file():
            path.unlink(missing_ok=True)
        elif name.startswith(("gen-", ".build-")) and name not in keep and _made_here(path, index_id):
            _remove_unheld(path)


def _remove_unheld(folder: Path) -> None:
    try:
        handle = open(folder / GENERATION_MARK, "rb")
    except FileNotFoundError:  # an empty staging folder
        shutil.rmtree(folder, ignore_errors=True)
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a reader is still on it; a later build removes it
        if _holds_only_own_files(folder):
            shutil.rmtree(folder, ignore_errors=True)


def _holds_only_own_files(folder: Path) -> bool:
    """Whether everything in a generation or staging folder is a plain file of a name qa writes
    there; anything else (say, a note a user put there) keeps the folder."""
    return all(not e.is_symlink() and e.is_file() and (e.name in WRITTEN_FILES or e.name.endswith(BM25S_SUFFIXES))
               for e in os.scandir(folder))


def _previous_vectors(index_dir: Path, model: dict) -> dict[str, np.ndarray]:
    """Vectors of the live index per article hash, reusable when model, precision and chunking
    are unchanged."""
    try:
        old = load(index_dir)
    except StoreError:
        return {}
    old.close()  # its arrays are in memory; the build may remove the folder later
    used = old.manifest["model"]
    if ((used["name"], used["weights_sha256"], used.get("precision")) != (model["name"], model["weights_sha256"], model["precision"])
            or old.manifest["chunking"] != chunking_params()):
        return {}
    vectors = old.dense.reconstruct_n(0, old.dense.ntotal) if old.dense.ntotal else np.zeros((0, used["dim"]), np.float32)
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
          verify: bool = False, strict: bool = False, follow_links: bool = False,
          precision: str = DEFAULT_PRECISION, make_encoder: Callable[[], object],
          embed_with: Callable[[Path], object] = build_encoder,
          on_progress: Callable[[int, int], None] | None = None,
          on_wait: Callable[[], None] | None = None) -> BuildReport:
    """(Re)build the index of `corpus` (a folder, or articles already in memory) unless it is current.

    Passages are embedded with the model's ONNX export at `precision`, the very file queries
    will use (`embed_with(folder)` opens it). The export is linked from the live index when the
    model is unchanged, so `make_encoder()` (the torch model) is called only to export it anew.
    Vectors of articles whose content hash is unchanged are reused, and `on_progress(done,
    total)` follows the embedding. An index written by a newer qa is replaced only when `force`
    is given; `verify` hashes every file of the live index and rebuilds it from scratch if one
    does not match.
    """
    began = time.perf_counter()
    with build_lock(index_dir, on_wait) as index_id:
        live = current_generation(index_dir)
        reason = "rebuild requested" if force else staleness(index_dir, corpus, model_name, follow_links, precision)
        if verify and reason is None:
            try:
                load(index_dir, full_check=True).close()
            except StoreError as exc:
                reason, force = exc.problem, True
        _remove_leftovers(index_dir, index_id, keep={live.name} if live else set())
        if reason is None:
            manifest = read_manifest(live)
            return BuildReport(False, "up to date", manifest["counts"]["files"], manifest["counts"]["passages"],
                               0, 0.0, time.perf_counter() - began, [])
        _, weights = resolve_model(model_name)
        model = {"name": model_name, "weights_sha256": weights, "precision": precision}
        live_model = _reusable_model_export(live, model, full_check=verify)
        with _staging(index_dir, index_id) as staging:
            # The export first: its transient memory is given back before the corpus is read.
            torch_encoder = _add_model_export(staging, live_model, model, make_encoder)
            if torch_encoder is None:
                model["dim"] = int(json.loads((staging / ONNX_CONFIG).read_text(encoding="utf-8"))["dim"])
            else:
                model["dim"], model["precision"] = torch_encoder.dim, "fp32"
            if isinstance(corpus, Path):
                read = ingest.read_corpus(corpus, strict=strict, follow_links=follow_links)
                articles, listing, skipped, corpus_id = read.articles, read.files, read.skipped, str(corpus.resolve())
            else:
                articles, listing, skipped, corpus_id = list(corpus), [], [], IN_MEMORY
            per_article = [chunk.chunk_article(a) for a in articles]
            passages = [p for group in per_article for p in group]
            reuse = {} if force else _previous_vectors(index_dir, model)
            needed = [p.text for a, group in zip(articles, per_article) if a.sha256 not in reuse for p in group]
            encoder = torch_encoder or (embed_with(staging) if needed else None)
            fresh, embed_seconds = _embed(encoder, needed, model["dim"], on_progress)

            vectors = np.zeros((len(passages), model["dim"]), np.float32)
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
            reuse = fresh = None  # copied into `vectors`: at 100k passages each holds 150 MB
            indexed = {a.source for a in articles}
            skipped_files = [
                {"source": f.source, "size": f.size, "mtime_ns": f.mtime_ns, "sha256": _safe_sha256(f.path)}
                for f in listing if f.source not in indexed
            ]
            manifest = {
                "format": FORMAT_VERSION,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "corpus": corpus_id,
                "model": {**model, "encoder": "sentence-transformers" if torch_encoder else "onnxruntime"},
                "chunking": chunking_params(),
                "tokenizer": {"stopwords": True, "stemmer": "light"},
                "counts": {"files": len(files), "passages": len(passages), "skipped": len(skipped_files)},
                "files": files,
                "skipped_files": skipped_files,
                "skipped": skipped,
            }
            generation = _publish(staging, index_dir, index_id, manifest, passages, vectors)
        _remove_leftovers(index_dir, index_id, keep={generation.name} | ({live.name} if live else set()))
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


def _reusable_model_export(live: Path | None, model: dict, full_check: bool = False) -> Path | None:
    """The live generation, if it holds an ONNX export of this very model at this precision whose
    files all verify: a damaged file is never linked into a new generation."""
    if live is None or model["weights_sha256"] is None or not has_onnx_export(live):
        return None
    try:
        checks = read_manifest(live)["index_files"]
        config = json.loads((live / ONNX_CONFIG).read_text(encoding="utf-8"))
    except (StoreError, KeyError, TypeError, OSError, ValueError):
        return None
    if not all(isinstance(checks.get(name), dict) and verified(live / name, checks[name], full_check)
               for name in ONNX_FILES):
        return None
    wanted = (model["name"], model["weights_sha256"], model["precision"], list(ONNX_OUTPUTS))
    found = (config.get("model"), config.get("weights_sha256"), config.get("precision", "fp32"), config.get("outputs"))
    return live if found == wanted else None


def _add_model_export(staging: Path, live_model: Path | None, model: dict, make_encoder: Callable[[], object]):
    """Put the model's ONNX export into `staging`: linked from the live index when it is this very
    model, else exported. Returns the torch encoder only when the model cannot be exported (then
    it embeds the passages and the queries itself)."""
    if live_model is not None:
        for name in ONNX_FILES:
            os.link(live_model / name, staging / name)
        return None
    encoder = make_encoder()
    if encoder.export_onnx(staging, model["precision"]):
        return None
    if model["precision"] != "fp32":
        raise ModelError(f"model {model['name']!r} cannot be exported to ONNX, so it runs at fp32 only; "
                         f"build without --precision {model['precision']}")
    return encoder


@contextmanager
def _staging(index_dir: Path, index_id: str) -> Iterator[Path]:
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


def _publish(staging: Path, index_dir: Path, index_id: str, manifest: dict, passages: list[Passage],
             vectors: np.ndarray) -> Path:
    """Write the rest of a generation into `staging`, then point CURRENT at it in one rename."""
    offsets = [0]
    with open(staging / PASSAGES, "wb") as handle:
        for passage in passages:
            offsets.append(offsets[-1] + handle.write((json.dumps(passage.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")))
    np.save(staging / PASSAGE_OFFSETS, np.array(offsets, dtype=np.int64), allow_pickle=False)
    tokens = (retrieve.tokenize(p.text) for p in passages)  # one passage's at a time
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


def _safe_sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
