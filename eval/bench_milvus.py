"""The file backend and the Milvus backend (Milvus Lite) side by side, in one run, at each size:

    python -m eval.bench_milvus [--sizes 1000,10000,100000] [--questions 50] [--json OUT]

- build: wall time of building the same corpus into each backend, in this process. Passage
  vectors are synthetic (real passage vectors plus noise, eval/bench.py's SyntheticVectors) for
  both, so the figure is the backend's own work (chunking, BM25, storing, indexing), not the
  encoder's, which is the same for both (eval/bench.py measures it);
- warm hybrid search p50/p95 (`QA.search`, k=5) over questions from the seeds and ../shared SQuAD;
- cold `qa ask`: a fresh process per question, median of --cold-runs.
Corpora are eval/bench.py's: realistic English passages recombined from real sentences.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from eval.bench import SyntheticVectors, cold_runs, sentence_pool, write_corpus
from eval.metrics import percentile
from eval.results import write_results
from qa.api import QA
from qa.build import build_index
from qa.embed import DEFAULT_MODEL, DEFAULT_PRECISION, load_encoder
from qa.milvus import MilvusBackend, MilvusConfig

ROOT = Path(__file__).resolve().parent.parent
console = Console(highlight=False, width=150)


def real_vectors(sentences: list[str], work: Path, count: int = 300) -> np.ndarray:
    """Vectors of `count` real passages, the centers synthetic vectors are drawn around."""
    corpus = work / "centers-corpus"
    write_corpus(corpus, count, sentences, seed=3)
    qa = QA(corpus, work / "centers-index")
    qa.build()
    return qa.query_encoder().encode([p.text for p in qa.all_passages()[:count]])


def build_both(corpus: Path, work: Path, centers: np.ndarray) -> dict:
    seconds = {}
    began = time.perf_counter()
    build_index(corpus, work / "files-index", DEFAULT_MODEL, make_encoder=lambda: load_encoder(DEFAULT_MODEL),
                embed_with=lambda export: SyntheticVectors(centers, seed=2))
    seconds["files"] = time.perf_counter() - began
    backend = MilvusBackend(MilvusConfig(str(work / "milvus.db")))
    began = time.perf_counter()
    backend.build(corpus, DEFAULT_MODEL, precision=DEFAULT_PRECISION, make_encoder=lambda: load_encoder(DEFAULT_MODEL),
                  embed_with=lambda export: SyntheticVectors(centers, seed=2))
    seconds["milvus"] = time.perf_counter() - began
    return {"build_s": {k: round(v, 1) for k, v in seconds.items()}, "milvus": backend}


def warm_search(qa: QA, questions: list[str]) -> dict:
    qa.search(questions[0], k=5)  # loads the index and the encoder
    times = []
    for question in questions:
        began = time.perf_counter()
        qa.search(question, k=5)
        times.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1)}


def cold_ask(corpus: Path, work: Path, question: str, runs: int) -> dict:
    base = [sys.executable, "-m", "qa.cli", "ask", question, "--corpus", str(corpus)]
    files, _ = cold_runs(base + ["--index", str(work / "files-index")], cwd=ROOT, runs=runs)
    milvus, _ = cold_runs(base + ["--backend", "milvus", "--milvus-uri", str(work / "milvus.db")], cwd=ROOT,
                          runs=runs)
    return {"files_s": round(files, 2), "milvus_s": round(milvus, 2)}


def main(sizes: str = typer.Option("1000,10000,100000", help="Corpus sizes in passages."),
         questions: int = typer.Option(50, min=1, help="Questions timed per size."),
         cold: int = typer.Option(3, "--cold-runs", min=1, help="Fresh `qa ask` processes per backend and size."),
         json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here.")) -> None:
    sentences, pool = sentence_pool()
    asked = pool[:: max(1, len(pool) // questions)][:questions]
    report = {"sizes": {}, "questions": len(asked), "vectors": "synthetic (real passage vectors + noise)"}
    with tempfile.TemporaryDirectory(prefix="qa-bench-milvus-") as tmp:
        work = Path(tmp)
        centers = real_vectors(sentences, work)
        for size in [int(s) for s in sizes.split(",")]:
            folder = work / str(size)
            corpus = folder / "corpus"
            write_corpus(corpus, size, sentences, seed=size)
            built = build_both(corpus, folder, centers)
            files = QA(corpus, folder / "files-index")
            milvus = QA(corpus, backend=built.pop("milvus"))
            row = {"passages": files.summary()["passages"], **built,
                   "warm_hybrid": {"files": warm_search(files, asked), "milvus": warm_search(milvus, asked)}}
            files.close()
            milvus.backend.client().close()  # Milvus Lite: one process at a time, and `qa ask` is another
            row["cold_ask"] = cold_ask(corpus, folder, asked[0], cold)
            report["sizes"][size] = row
            console.print(f"[dim]{size}: {row}[/]")
    show(report)
    if json_out:
        write_results(json_out, report)


def show(report: dict) -> None:
    table = Table(title=f"files vs Milvus Lite ({report['questions']} questions; vectors {report['vectors']})",
                  title_justify="left")
    for column in ("passages", "build s (files / milvus)", "warm hybrid p50 ms", "warm hybrid p95 ms",
                   "cold qa ask s"):
        table.add_column(column, justify="right")
    for row in report["sizes"].values():
        warm = row["warm_hybrid"]
        table.add_row(str(row["passages"]), f"{row['build_s']['files']} / {row['build_s']['milvus']}",
                      f"{warm['files']['p50_ms']} / {warm['milvus']['p50_ms']}",
                      f"{warm['files']['p95_ms']} / {warm['milvus']['p95_ms']}",
                      f"{row['cold_ask']['files_s']} / {row['cold_ask']['milvus_s']}")
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
