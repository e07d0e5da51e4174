"""What the benchmarks share: realistic corpora recombined from real sentences, synthetic passage
vectors for sizes too large to embed, and timings of calls and of fresh processes."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from qa.corpus.chunk import split_sentences
from qa.corpus.ingest import read_corpus
from qa.index import store
from qa.index.build import build_index
from qa.reading.squad import load_squad
from qa.search.embed import DEFAULT_MODEL, load_encoder
from qa.search.onnx_encoder import BUILD_WORKERS, OnnxEncoder

ROOT = Path(__file__).resolve().parent.parent
SHARED_SQUAD = ROOT.parent / "shared" / "data" / "squad"
PASSAGES_PER_FILE = 100
COLD_RUNS = 5


def sentence_pool() -> tuple[list[str], list[str]]:
    """(sentences, questions) from the seeds and, when present, the shared SQuAD files."""
    texts = [a.text for a in read_corpus(ROOT / "seeds").articles]
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines()]
    for path in sorted(SHARED_SQUAD.glob("*.json")):
        articles, squad_questions, _ = load_squad(path)
        texts += [a.text for a in articles]
        questions += [q.question for q in squad_questions]
    sentences = [t[a:b] for t in texts for a, b in split_sentences(t) if len(t[a:b].split()) >= 5]
    return sentences, questions


def write_corpus(folder: Path, passages: int, sentences: list[str], seed: int) -> None:
    """Files of recombined sentences that chunk into about `passages` passages."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for number in range(max(1, passages // PASSAGES_PER_FILE)):
        body = []
        while len(body) < PASSAGES_PER_FILE * 4:  # ~4 sentences per 40-150 word passage, minus overlap
            body.append(rng.choice(sentences))
        title = " ".join(rng.choice(sentences).split()[:8])
        (folder / f"article_{number:05d}.txt").write_text(title + "\n\n" + " ".join(body) + "\n", encoding="utf-8")


class SyntheticVectors:
    """Stands in for the model's passage encoding when embedding would take too long: each vector
    is a real passage vector plus Gaussian noise, renormalized (clustered like real embeddings,
    unlike uniform random vectors, on which graph indexes behave far worse). The index's ONNX
    export, which questions are embedded with, is the real model's."""

    NOISE = 0.05

    def __init__(self, centers: np.ndarray, seed: int):
        self.dim = centers.shape[1]
        self.centers = centers
        self.rng = np.random.default_rng(seed)

    def encode(self, texts, on_batch=None, **_):
        """In chunks, so that the build's peak memory is the build's, not this stand-in's."""
        vectors = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), 1000):
            picks = self.centers[self.rng.integers(0, len(self.centers), min(1000, len(texts) - start))]
            chunk = picks + self.NOISE * self.rng.standard_normal(picks.shape, dtype=np.float32)
            vectors[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
            if on_batch:
                on_batch(len(chunk))
        return vectors


def synthetic_build(corpus: Path, index: Path, centers: np.ndarray) -> None:
    build_index(corpus, index, DEFAULT_MODEL, make_encoder=lambda: load_encoder(DEFAULT_MODEL),
                embed_with=lambda export: SyntheticVectors(centers, seed=2))


def timed(function, *args) -> tuple[float, object]:
    began = time.perf_counter()
    result = function(*args)
    return (time.perf_counter() - began) * 1000, result


def raw_onnx_per_s(export: Path, texts: list[str], batch_size: int, workers: int) -> float:
    """Passages/s of onnxruntime alone on the export, `workers` batches at once (one thread each;
    one call on every core when 1): batches tokenized beforehand in length order, no pooling or
    bookkeeping, so the best the model file can do on this machine with that setup."""
    encoder = OnnxEncoder(export, threads=BUILD_WORKERS, workers=workers)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    feeds = [encoder.inputs([texts[i] for i in order[start : start + batch_size]])
             for start in range(0, len(order), batch_size)]
    encoder.session.run(None, feeds[0])  # warm-up
    with ThreadPoolExecutor(workers) as pool:
        began = time.perf_counter()
        list(pool.map(lambda feed: encoder.session.run(None, feed), feeds))
        return len(texts) / (time.perf_counter() - began)


def measured_process(command: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one fresh process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    wall, rss_kb = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True,
                                  check=True, env=env, cwd=cwd).stdout.split()
    return float(wall), int(rss_kb) / 1024


def passages_built(index: Path) -> int:
    return store.read_manifest(store.current_generation(index))["counts"]["passages"]


def cold_runs(command: list[str], env: dict | None = None, cwd: Path | None = None,
              runs: int = COLD_RUNS) -> tuple[float, float]:
    """(median wall seconds, max peak RSS in MB) over `runs` fresh processes."""
    walls, peaks = zip(*(measured_process(command, env, cwd) for _ in range(runs)))
    return statistics.median(walls), max(peaks)
