"""Building an index: ingest -> chunk -> embed -> BM25 and FAISS -> a new generation, switched in.

A build fills a staging folder beside the live generation and publishes it with one rename of
the pointer (qa/index/generation.py), so readers see the old index or the new one, never a mix;
vectors of unchanged articles are reused, and a failed or interrupted build leaves the live index
as it was.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from qa.corpus import chunk, ingest
from qa.errors import ModelError
from qa.index.folder import build_lock, remove_leftovers
from qa.index.freshness import chunking_params, staleness, tokenizer_params
from qa.index.generation import publish, staging_folder
from qa.index.store import (
    FORMAT_VERSION,
    IN_MEMORY,
    StoreError,
    current_generation,
    load,
    read_manifest,
    safe_sha256,
    verified,
)
from qa.search.embed import DEFAULT_PRECISION, resolve_model
from qa.search.onnx_encoder import ONNX_CONFIG, ONNX_FILES, ONNX_OUTPUTS, build_encoder, has_onnx_export


@dataclass
class BuildReport:
    built: bool  # False when the existing index was already up to date
    reason: str
    files: int
    passages: int
    embedded: int  # passages whose vectors were computed (the rest were reused)
    embed_seconds: float
    seconds: float
    skipped: list[ingest.Skipped]  # every file of the folder not indexed, with its reason


def build_index(corpus: Path | Sequence[ingest.Article], index_dir: Path, model_name: str, *, force: bool = False,
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
        remove_leftovers(index_dir, index_id, keep={live.name} if live else set())
        if reason is None:
            manifest = read_manifest(live)
            return BuildReport(False, "up to date", manifest["counts"]["files"], manifest["counts"]["passages"],
                               0, 0.0, time.perf_counter() - began,
                               [ingest.Skipped(s["source"], s["reason"]) for s in manifest.get("skipped", [])])
        _, weights = resolve_model(model_name)
        model = {"name": model_name, "weights_sha256": weights, "precision": precision}
        live_model = _reusable_model_export(live, model, full_check=verify)
        with staging_folder(index_dir, index_id) as staging:
            # The export first: its transient memory is given back before the corpus is read.
            torch_encoder = _add_model_export(staging, live_model, model, make_encoder)
            if torch_encoder is None:
                model["dim"] = int(json.loads((staging / ONNX_CONFIG).read_text(encoding="utf-8"))["dim"])
            else:
                model["dim"], model["precision"] = torch_encoder.dim, "fp32"
            articles, listing, skipped, corpus_id = read_articles(corpus, strict, follow_links)
            per_article = [chunk.chunk_article(a) for a in articles]
            passages = [p for group in per_article for p in group]
            reuse = {} if force else _previous_vectors(index_dir, model)
            needed = [p.text for a, group in zip(articles, per_article) if a.sha256 not in reuse for p in group]
            encoder = torch_encoder or (embed_with(staging) if needed else None)
            fresh, embed_seconds = embed_texts(encoder, needed, model["dim"], on_progress)

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
                              "author": article.author, "sitename": article.sitename, "sha256": article.sha256, "size": stat.size if stat else None,
                              "mtime_ns": stat.mtime_ns if stat else None, "passages": [row, len(group)]})
                row += len(group)
            reuse = fresh = None  # copied into `vectors`: at 100k passages each holds 150 MB
            skipped_files = skipped_entries(listing, articles)
            manifest = {
                "format": FORMAT_VERSION,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "corpus": corpus_id,
                "model": {**model, "encoder": "sentence-transformers" if torch_encoder else "onnxruntime"},
                "chunking": chunking_params(),
                "tokenizer": tokenizer_params(),
                "counts": {"files": len(files), "passages": len(passages), "skipped": len(skipped_files)},
                "files": files,
                "skipped_files": skipped_files,
                "skipped": [{"source": s.source, "reason": s.reason} for s in skipped],
            }
            generation = publish(staging, index_dir, index_id, manifest, passages, vectors)
        remove_leftovers(index_dir, index_id, keep={generation.name} | ({live.name} if live else set()))
        return BuildReport(True, reason, len(files), len(passages), len(needed), embed_seconds,
                           time.perf_counter() - began, skipped)


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
            or old.manifest["chunking"] != chunking_params() or old.manifest.get("tokenizer") != tokenizer_params()):
        return {}
    vectors = old.dense.reconstruct_n(0, old.dense.ntotal) if old.dense.ntotal else np.zeros((0, used["dim"]), np.float32)
    reuse = {}
    for entry in old.manifest["files"]:
        first, count = entry["passages"]
        reuse[entry["sha256"]] = vectors[first : first + count]
    return reuse


def read_articles(corpus: Path | Sequence[ingest.Article], strict: bool, follow_links: bool):
    """(articles, the folder's listing, the files not indexed and why, the corpus's id) of a folder
    or of articles given in memory."""
    if isinstance(corpus, Path):
        read = ingest.read_corpus(corpus, strict=strict, follow_links=follow_links)
        return read.articles, read.files, read.skipped, str(corpus.resolve())
    return list(corpus), [], [], IN_MEMORY


def skipped_entries(listing: Sequence[ingest.CorpusFile], articles: Sequence[ingest.Article]) -> list[dict]:
    """What staleness compares a skipped file against, so it is not taken for a new one each time."""
    indexed = {a.source for a in articles}
    return [{"source": f.source, "size": f.size, "mtime_ns": f.mtime_ns, "sha256": safe_sha256(f.path)}
            for f in listing if f.source not in indexed]


def embed_texts(encoder, texts: list[str], dim: int, on_progress) -> tuple[np.ndarray, float]:
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
