"""Speed and scale of the real pipeline, measured in one run and printed side by side.

    python -m eval.bench [--json OUT] [--sizes 1000,10000,100000] [--real-vectors-up-to 1000] [--only-build]

- build, per precision: onnxruntime alone on the index's export (the build's setup, and one
  two-thread call on batches of 32 as builds ran before) against `qa`'s rebuild of the same
  passages (the one-off export linked, so not counted; the first build's time is reported
  beside it), torch `model.encode` beside them; a fresh `qa index` process over --real-build
  passages of real text (wall time, peak RSS); a build of the largest size with synthetic
  vectors (wall time, peak RSS);
- query: warm per-stage latency (bm25, dense incl. embedding the question, fusion, answer) and the
  whole hybrid search, p50/p95 over the questions, at each corpus size. Corpora are realistic
  English passages recombined from sentences of the seeds and of the SQuAD paragraphs in
  ../shared (when present). Above --real-vectors-up-to passages the stored vectors are synthetic
  (real passage vectors plus noise; the output says so): embedding 100k passages would take an hour;
- cold: wall time of a fresh `qa ask` process (median of 5) against a fresh
  `python -c "import sentence_transformers"`, on the seeds and on the largest corpus;
- peak RSS of those `qa ask` processes; recall@10 of an HNSW graph (the index's settings) against
  exact search on the largest corpus;
- with --baseline REF (a git commit, e.g. the last one before the transformer reader): the answer
  stage on the seeds' gold questions and the cold seeds `qa ask`, for this checkout and for REF
  (checked out in a temporary git worktree, run with this venv) side by side in the same run.
Timings are medians; runs vary by 10-30% on a shared machine.
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from eval.baseline import side_by_side
from eval.bench_view import console, show
from eval.metrics import percentile
from eval.results import write_results
from eval.workload import (
    cold_runs,
    measured_process,
    passages_built,
    raw_onnx_per_s,
    sentence_pool,
    timed,
    write_corpus,
)
from qa.api import QA
from qa.index import freshness, store
from qa.reading.answer import answer
from qa.reading.read import load_shipped_reader
from qa.search.embed import BATCH_SIZE, DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS, load_encoder
from qa.search.onnx_encoder import BUILD_WORKERS, ONNX_BATCH_SIZE
from qa.search.retrieve import CANDIDATE_DEPTH, DEFAULT_ALPHA, weighted_fusion

ROOT = Path(__file__).resolve().parent.parent


def bench_build(sentences: list[str], work: Path, passages: int = 1000, torch_passages: int = 300) -> tuple[dict, np.ndarray]:
    """Per precision: raw onnxruntime throughput, then `qa`'s rebuild of the same passages (the
    model export linked from the first build, so it is not counted); torch `model.encode`, what
    builds used before, beside them on the first `torch_passages` (it is slow)."""
    corpus = work / "build-corpus"
    write_corpus(corpus, passages, sentences, seed=1)
    report: dict = {"precisions": {}}
    for precision in PRECISIONS:
        qa = QA(corpus, work / f"build-index-{precision}", precision=precision)
        first = qa.build()
        texts = [p.text for p in qa.all_passages()]
        raw = raw_onnx_per_s(qa.index_folder(), texts, ONNX_BATCH_SIZE, BUILD_WORKERS)
        one_call = raw_onnx_per_s(qa.index_folder(), texts, BATCH_SIZE, 1)
        rebuild = qa.build(force=True)
        build_per_s = rebuild.passages / rebuild.seconds
        report["precisions"][precision] = {
            "raw_onnx_per_s": round(raw, 1), "build_per_s": round(build_per_s, 1),
            "ratio": round(build_per_s / raw, 3), f"one_call_batch_{BATCH_SIZE}_per_s": round(one_call, 1),
            "first_build_s": round(first.seconds, 1)}
        qa.close()
    encoder = load_encoder(DEFAULT_MODEL)
    began = time.perf_counter()
    vectors = encoder.model.encode(texts[:torch_passages], batch_size=BATCH_SIZE, normalize_embeddings=True)
    report["torch_encode_per_s"] = round(len(vectors) / (time.perf_counter() - began), 1)
    report["passages"] = len(texts)
    report["words_per_passage"] = round(statistics.mean(len(t.split()) for t in texts), 1)
    return report, vectors


def bench_real_build(sentences: list[str], work: Path, passages: int, precision: str) -> dict:
    """A fresh `qa index` process over a corpus of real text: what a user waits for (imports and
    the model export included)."""
    corpus, index = work / f"real-build-{passages}", work / f"real-build-index-{passages}"
    write_corpus(corpus, passages, sentences, seed=passages + 7)
    wall, rss = measured_process([sys.executable, "-m", "qa", "index", "--corpus", str(corpus),
                                  "--index", str(index), "--precision", precision])
    built = passages_built(index)
    return {"passages": built, "precision": precision, "wall_s": round(wall, 1),
            "passages_per_s": round(built / wall, 1), "peak_rss_mb": round(rss, 1)}


def bench_queries(corpus: Path, index: Path, questions: list[str], centers: np.ndarray | None) -> dict:
    real = centers is None
    if not real and freshness.staleness(index, corpus, DEFAULT_MODEL) is not None:
        bench_synthetic_build(corpus, index, centers)
    qa = QA(corpus, index)
    retriever = qa.retriever()
    size = retriever.size
    stages = {name: [] for name in ("bm25", "dense", "fusion", "answer", "hybrid")}
    qa.ask(questions[0])  # warm-up: load the encoder and caches
    for question in questions:
        retriever.query_cache.clear()
        ms, sparse = timed(retriever.bm25, question, CANDIDATE_DEPTH)
        stages["bm25"].append(ms)
        ms, dense = timed(retriever.dense, question, CANDIDATE_DEPTH)
        stages["dense"].append(ms)
        ms, _ = timed(weighted_fusion, sparse, dense, DEFAULT_ALPHA)
        stages["fusion"].append(ms)
        retriever.query_cache.clear()
        ms, _ = timed(retriever.search, question, 5)
        stages["hybrid"].append(ms)
        _, passages = qa.passages_for(question)
        ms, _ = timed(answer, question, passages, load_shipped_reader())
        stages["answer"].append(ms)
    result = {f"{name}_ms_p50": round(percentile(values, 50), 2) for name, values in stages.items()}
    result["hybrid_ms_p95"] = round(percentile(stages["hybrid"], 95), 2)
    result["passages"] = size
    result["vectors"] = "real" if real else "synthetic (real passage vectors + noise)"
    result["dense_index"] = type(retriever.index.dense).__name__
    result["bm25"] = type(retriever.index.sparse).__name__
    return result


def bench_synthetic_build(corpus: Path, index: Path, centers: np.ndarray) -> dict:
    """Wall time and peak RSS of a build process whose passage vectors are synthetic (the rest,
    passages, BM25 and the dense index, is the real thing)."""
    np.save(corpus.parent / "centers.npy", centers)
    wall, rss = measured_process([sys.executable, "-c", SYNTHETIC_BUILD, str(corpus), str(index),
                                  str(corpus.parent / "centers.npy")], cwd=ROOT)
    return {"passages": passages_built(index), "wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1),
            "vectors": "synthetic (real passage vectors + noise)"}


# A build with synthetic vectors in a process of its own, so that its peak RSS can be measured.
SYNTHETIC_BUILD = """
import sys
from pathlib import Path
import numpy as np
from eval.workload import synthetic_build
synthetic_build(Path(sys.argv[1]), Path(sys.argv[2]), np.load(sys.argv[3]))
"""


def bench_hnsw(corpus: Path, index: Path, questions: list[str]) -> dict:
    """Recall@10 against exact search and query time of an HNSW graph built with the index's own
    settings over a stored index's vectors (the index switches to HNSW above store.HNSW_ABOVE)."""
    import faiss

    qa = QA(corpus, index)
    exact = qa.retriever().index.dense
    vectors = exact.reconstruct_n(0, exact.ntotal)
    began = time.perf_counter()
    graph = faiss.IndexHNSWFlat(vectors.shape[1], store.HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = store.HNSW_EF_CONSTRUCTION
    graph.add(vectors)
    build_s = time.perf_counter() - began
    graph.hnsw.efSearch = store.HNSW_EF_SEARCH
    queries = np.vstack([qa.query_encoder().encode([q]) for q in questions]).astype(np.float32)
    _, truth = exact.search(queries, 10)
    found, times = [], []
    for query in queries:
        ms, (_, ids) = timed(graph.search, query.reshape(1, -1), 10)
        found.append(ids[0])
        times.append(ms)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)]))
    return {"passages": int(exact.ntotal), "recall@10": round(recall, 4), "query_ms_p50": round(percentile(times, 50), 2),
            "build_s": round(build_s, 1), "M": store.HNSW_M, "efSearch": store.HNSW_EF_SEARCH}


def main(
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here."),
    sizes: str = typer.Option("1000,10000,100000", help="Corpus sizes in passages."),
    real_vectors_up_to: int = typer.Option(1000, help="Embed for real up to this many passages; synthetic above."),
    queries: int = typer.Option(50, help="Questions timed per size."),
    baseline: Optional[str] = typer.Option(None, help="A git commit to measure side by side on the seeds."),
    only_baseline: bool = typer.Option(False, help="Measure only the --baseline comparison."),
    real_build: int = typer.Option(10000, help="Passages of the real (not synthetic) `qa index` build; 0 skips it."),
    precision: str = typer.Option(DEFAULT_PRECISION, help="Precision of that build."),
    only_build: bool = typer.Option(False, help="Measure only the build figures."),
) -> None:
    sentences, all_questions = sentence_pool()
    questions = random.Random(0).sample(all_questions, min(queries, len(all_questions)))
    work = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    report: dict = {}
    try:
        if baseline:
            console.print(f"side by side with {baseline}…")
            report["side_by_side"] = side_by_side(baseline, work)
        if only_baseline:
            return finish(report, json_out)
        console.print("build throughput…")
        report["build"], centers = bench_build(sentences, work)
        if real_build:
            console.print(f"a real build of {real_build} passages…")
            report["build"]["real"] = bench_real_build(sentences, work, real_build, precision)
        largest_size = max(int(s) for s in sizes.split(","))
        if largest_size > real_vectors_up_to:
            console.print(f"a build of {largest_size} passages with synthetic vectors…")
            corpus = work / f"corpus-{largest_size}"
            write_corpus(corpus, largest_size, sentences, seed=largest_size)
            report["build"]["synthetic"] = bench_synthetic_build(corpus, work / f"index-{largest_size}", centers)
        if only_build:
            return finish(report, json_out)
        report["query"] = {}
        largest = None
        for size in [int(s) for s in sizes.split(",")]:
            console.print(f"queries at {size} passages…")
            corpus, index = work / f"corpus-{size}", work / f"index-{size}"
            if not corpus.exists():
                write_corpus(corpus, size, sentences, seed=size)
            real = size <= real_vectors_up_to
            if real:
                QA(corpus, index).build()
            report["query"][str(size)] = bench_queries(corpus, index, questions, None if real else centers)
            largest = (corpus, index)
        if largest:
            console.print("HNSW recall…")
            report["hnsw"] = bench_hnsw(*largest, questions)
        console.print("cold processes…")
        question = "who built Stargate data centers"
        seeds_index = work / "seeds-index"
        QA(ROOT / "seeds", seeds_index).build()
        ask = [sys.executable, "-m", "qa", "ask", question, "--json", "--corpus", str(ROOT / "seeds"),
               "--index", str(seeds_index)]
        ask_s, ask_rss = cold_runs(ask)
        import_s, _ = cold_runs([sys.executable, "-c", "import sentence_transformers"])
        report["cold_ask"] = {"ask_s": round(ask_s, 3), "import_st_s": round(import_s, 3),
                              "ratio": round(ask_s / import_s, 3)}
        peak = ask_rss
        if largest:
            big_s, big_rss = cold_runs([sys.executable, "-m", "qa", "ask", question, "--json", "--corpus",
                                        str(largest[0]), "--index", str(largest[1])])
            report["cold_ask"]["largest_ask_s"] = round(big_s, 3)
            report["cold_ask"]["largest_passages"] = report["query"][str(max(int(s) for s in sizes.split(",")))]["passages"]
            peak = max(peak, big_rss)
        report["peak_rss_mb"] = round(peak, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    finish(report, json_out)


def finish(report: dict, json_out: Optional[Path]) -> None:
    show(report)
    if json_out:
        write_results(json_out, report)


if __name__ == "__main__":
    typer.run(main)
