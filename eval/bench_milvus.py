"""The file backend and the Milvus backend (Milvus Lite) side by side, in one run, at each size:

    python -m eval.bench_milvus [--sizes 1000,10000,100000] [--questions 50] [--json OUT]

- build: wall time of building the same corpus into each backend, each in a process of its own. Passage
  vectors are synthetic (real passage vectors plus noise, eval/workload.py's SyntheticVectors) for
  both, so the figure is the backend's own work (chunking, BM25, storing, indexing), not the
  encoder's, which is the same for both (eval/bench.py measures it); each pays the model's one-off
  ONNX export (a cache of its own);
- warm hybrid search p50/p95 (`QA.search`, k=5) over questions from the seeds and ../shared SQuAD,
  and its stages: embedding the question, BM25 and dense search (50 candidates each), fetching
  the 5 passages shown;
- cold `qa ask`: a fresh process per question, median of --cold-runs.
Corpora are eval/workload.py's (as eval/bench.py's): realistic English passages recombined from real sentences.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from eval.metrics import percentile
from eval.results import write_results
from eval.workload import SyntheticVectors, cold_runs, sentence_pool, timed, write_corpus
from qa.api import QA
from qa.backends.milvus.backend import MilvusBackend, MilvusConfig
from qa.index.build import build_index
from qa.search.embed import DEFAULT_MODEL, DEFAULT_PRECISION, load_encoder
from qa.search.retrieve import CANDIDATE_DEPTH

ROOT = Path(__file__).resolve().parent.parent
console = Console(highlight=False, width=150)


def real_vectors(sentences: list[str], work: Path, count: int = 300) -> np.ndarray:
    """Vectors of `count` real passages, the centers synthetic vectors are drawn around."""
    corpus = work / "centers-corpus"
    write_corpus(corpus, count, sentences, seed=3)
    qa = QA(corpus, work / "centers-index")
    qa.build()
    return qa.query_encoder().encode([p.text for p in qa.all_passages()[:count]])


def build_and_search(backend: str, corpus: Path, folder: Path, centers: np.ndarray, questions: list[str]) -> dict:
    """Build `corpus` into one backend and time warm searches on it. Run in a process of its own
    (`measure`): Milvus Lite keeps its database locked until the process that opened it ends."""
    options = dict(make_encoder=lambda: load_encoder(DEFAULT_MODEL),
                   embed_with=lambda export: SyntheticVectors(centers, seed=2))
    began = time.perf_counter()
    if backend == "files":
        build_index(corpus, folder / "files-index", DEFAULT_MODEL, **options)
        qa = QA(corpus, folder / "files-index")
    else:
        milvus = MilvusBackend(MilvusConfig(str(folder / "milvus.db")))
        milvus.build(corpus, DEFAULT_MODEL, precision=DEFAULT_PRECISION, **options)
        qa = QA(corpus, backend=milvus)
    build_s = time.perf_counter() - began
    return {"build_s": round(build_s, 1), "passages": qa.summary()["passages"], "warm": warm_search(qa, questions)}


MEASURE = """
import json, sys
from pathlib import Path
import numpy as np
from eval.bench_milvus import build_and_search
print(json.dumps(build_and_search(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), np.load(sys.argv[4]),
                                  json.loads(sys.argv[5]))))
"""


def measure(backend: str, corpus: Path, folder: Path, centers: Path, questions: list[str]) -> dict:
    # A cache of its own, so each backend's build pays the model's one-off ONNX export alike.
    env = {**os.environ, "QA_CACHE": str(folder / f"cache-{backend}")}
    done = subprocess.run([sys.executable, "-c", MEASURE, backend, str(corpus), str(folder), str(centers),
                           json.dumps(questions)], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm_search(qa: QA, questions: list[str]) -> dict:
    """The whole hybrid search (k=5, passages fetched) and its stages, p50 and p95 in ms."""
    qa.search(questions[0], k=5)  # loads the index and the encoder
    retriever = qa.retriever()
    stages = {name: [] for name in ("hybrid", "embed", "bm25", "dense", "fetch")}
    for question in questions:
        retriever.query_cache.clear()
        stages["hybrid"].append(timed(qa.search, question, 5)[0])
        retriever.query_cache.clear()
        stages["embed"].append(timed(retriever.query_vector, question)[0])
        stages["bm25"].append(timed(retriever.bm25, question, CANDIDATE_DEPTH)[0])
        ms, dense = timed(retriever.dense, question, CANDIDATE_DEPTH)  # the question's vector cached
        stages["dense"].append(ms)
        stages["fetch"].append(timed(retriever.index.fetch, [i for i, _ in dense[:5]])[0])
    return {name: {"p50_ms": round(percentile(values, 50), 1), "p95_ms": round(percentile(values, 95), 1)}
            for name, values in stages.items()}


def cold_ask(corpus: Path, folder: Path, question: str, runs: int) -> dict:
    """Median wall time of fresh `qa ask` processes per backend, after one untimed run that makes
    the reader's export in that backend's cache."""
    base = [sys.executable, "-m", "qa", "ask", question, "--corpus", str(corpus)]
    seconds = {}
    for name, where in (("files", ["--index", str(folder / "files-index")]),
                        ("milvus", ["--backend", "milvus", "--milvus-uri", str(folder / "milvus.db")])):
        env = {**os.environ, "QA_CACHE": str(folder / f"cache-{name}")}
        subprocess.run(base + where, capture_output=True, check=True, cwd=ROOT, env=env)
        seconds[f"{name}_s"] = round(cold_runs(base + where, env=env, cwd=ROOT, runs=runs)[0], 2)
    return seconds


def main(sizes: str = typer.Option("1000,10000,100000", help="Corpus sizes in passages."),
         questions: int = typer.Option(50, min=1, help="Questions timed per size."),
         cold: int = typer.Option(3, "--cold-runs", min=1, help="Fresh `qa ask` processes per backend and size."),
         json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here.")) -> None:
    sentences, pool = sentence_pool()
    asked = pool[:: max(1, len(pool) // questions)][:questions]
    report = {"sizes": {}, "questions": len(asked), "vectors": "synthetic (real passage vectors + noise)"}
    with tempfile.TemporaryDirectory(prefix="qa-bench-milvus-") as tmp:
        work = Path(tmp)
        centers = work / "centers.npy"
        np.save(centers, real_vectors(sentences, work))
        for size in [int(s) for s in sizes.split(",")]:
            folder = work / str(size)
            corpus = folder / "corpus"
            write_corpus(corpus, size, sentences, seed=size)
            row = {name: measure(name, corpus, folder, centers, asked) for name in ("files", "milvus")}
            row["cold_ask"] = cold_ask(corpus, folder, asked[0], cold)
            report["sizes"][size] = row
            console.print(f"[dim]{size}: {row}[/]")
    show(report)
    if json_out:
        write_results(json_out, report)


def show(report: dict) -> None:
    table = Table(title=f"files / Milvus Lite ({report['questions']} questions; vectors {report['vectors']}; "
                        "p50 ms unless said)", title_justify="left")
    columns = ("passages", "build s", "hybrid", "hybrid p95", "embed", "bm25", "dense", "fetch", "cold qa ask s")
    for column in columns:
        table.add_column(column, justify="right")
    for row in report["sizes"].values():
        files, milvus = row["files"], row["milvus"]

        def pair(stage: str, figure: str = "p50_ms") -> str:
            return f"{files['warm'][stage][figure]} / {milvus['warm'][stage][figure]}"

        table.add_row(str(files["passages"]), f"{files['build_s']} / {milvus['build_s']}", pair("hybrid"),
                      pair("hybrid", "p95_ms"), pair("embed"), pair("bm25"), pair("dense"), pair("fetch"),
                      f"{row['cold_ask']['files_s']} / {row['cold_ask']['milvus_s']}")
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
