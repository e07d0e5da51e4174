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

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from eval.metrics import percentile
from eval.results import write_results
from qa import freshness, store
from qa.answer import answer
from qa.api import QA
from qa.build import build_index
from qa.chunk import split_sentences
from qa.embed import BATCH_SIZE, DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS, load_encoder
from qa.ingest import read_corpus
from qa.onnx_encoder import BUILD_WORKERS, ONNX_BATCH_SIZE, OnnxEncoder
from qa.read import load_shipped_reader
from qa.retrieve import CANDIDATE_DEPTH, DEFAULT_ALPHA, weighted_fusion
from qa.squad import load_squad

ROOT = Path(__file__).resolve().parent.parent
SHARED_SQUAD = ROOT.parent / "shared" / "data" / "squad"
console = Console(highlight=False, width=150)
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


def bench_real_build(sentences: list[str], work: Path, passages: int, precision: str) -> dict:
    """A fresh `qa index` process over a corpus of real text: what a user waits for (imports and
    the model export included)."""
    corpus, index = work / f"real-build-{passages}", work / f"real-build-index-{passages}"
    write_corpus(corpus, passages, sentences, seed=passages + 7)
    wall, rss = measured_process([sys.executable, "-m", "qa.cli", "index", "--corpus", str(corpus),
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
from eval.bench import synthetic_build
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


ANSWER_STAGE = """
import json, sys, time
from qa.api import QA
{imports}
qa = QA(sys.argv[1], sys.argv[2])
questions = json.loads(sys.argv[3])
qa.ask(questions[0])
times = []
for question in questions:
{body}
print(json.dumps(times))
"""
# This checkout's answer stage, and the one before the transformer reader (qa.reading + answer.answer).
CURRENT_STAGE = ANSWER_STAGE.format(
    imports="from qa.answer import answer\nfrom qa.read import load_shipped_reader",
    body="    _, passages = qa.passages_for(question)\n    t = time.perf_counter()\n"
         "    answer(question, passages, load_shipped_reader())\n    times.append((time.perf_counter() - t) * 1000)")
BASELINE_STAGE = ANSWER_STAGE.format(
    imports="from qa import answer as answerer",
    body="    reading = qa.reading(question)\n    t = time.perf_counter()\n"
         "    answerer.answer(question, reading)\n    times.append((time.perf_counter() - t) * 1000)")


def side_by_side(ref: str, work: Path) -> dict:
    """Seeds answer stage and cold ask of this checkout and of git commit `ref`, in one run."""
    tree = work / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True,
                   capture_output=True)
    try:
        questions = json.dumps([json.loads(line)["question"]
                                for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines() if line.strip()])
        out = {}
        for label, checkout, stage in (("current", ROOT, CURRENT_STAGE), (f"baseline {ref}", tree, BASELINE_STAGE)):
            index = work / f"side-index-{len(out)}"
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            seeds = str(checkout / "seeds")
            times = json.loads(subprocess.run([sys.executable, "-c", stage, seeds, str(index), questions], cwd=checkout,
                                              env=env, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            ask_s, rss = cold_runs([sys.executable, "-m", "qa.cli", "ask", "who built Stargate data centers", "--json",
                                    "--corpus", seeds, "--index", str(index)], env=env, cwd=checkout)
            out[label] = {"answer_ms_p50": round(percentile(times, 50), 1), "answer_ms_p95": round(percentile(times, 95), 1),
                          "cold_ask_s": round(ask_s, 3), "peak_rss_mb": round(rss, 1)}
        return out
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def cold_runs(command: list[str], env: dict | None = None, cwd: Path | None = None,
              runs: int = COLD_RUNS) -> tuple[float, float]:
    """(median wall seconds, max peak RSS in MB) over `runs` fresh processes."""
    walls, peaks = zip(*(measured_process(command, env, cwd) for _ in range(runs)))
    return statistics.median(walls), max(peaks)


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
        ask = [sys.executable, "-m", "qa.cli", "ask", question, "--json", "--corpus", str(ROOT / "seeds"),
               "--index", str(seeds_index)]
        ask_s, ask_rss = cold_runs(ask)
        import_s, _ = cold_runs([sys.executable, "-c", "import sentence_transformers"])
        report["cold_ask"] = {"ask_s": round(ask_s, 3), "import_st_s": round(import_s, 3),
                              "ratio": round(ask_s / import_s, 3)}
        peak = ask_rss
        if largest:
            big_s, big_rss = cold_runs([sys.executable, "-m", "qa.cli", "ask", question, "--json", "--corpus",
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


def show(report: dict) -> None:
    if "side_by_side" in report:
        table = Table(title="seeds, side by side: answer stage (ms) and cold qa ask (s)", title_justify="left")
        for column in ("checkout", "answer p50", "answer p95", "cold ask", "peak RSS MB"):
            table.add_column(column, justify="right")
        for label, row in report["side_by_side"].items():
            table.add_row(label, str(row["answer_ms_p50"]), str(row["answer_ms_p95"]), str(row["cold_ask_s"]),
                          str(row["peak_rss_mb"]))
        console.print(table)
    if "build" not in report:
        return
    b = report["build"]
    table = Table(title=f"build throughput, {b['passages']} passages of {b['words_per_passage']} words on average "
                        f"(torch model.encode, as builds did before: {b['torch_encode_per_s']} passages/s)", title_justify="left")
    one_call = f"one_call_batch_{BATCH_SIZE}_per_s"
    for column in ("precision", "raw onnxruntime /s", "qa index rebuild /s", "ratio",
                   f"one {BUILD_WORKERS}-thread call, batch {BATCH_SIZE} /s", "first build (export) s"):
        table.add_column(column, justify="right")
    for name, row in b["precisions"].items():
        table.add_row(name, str(row["raw_onnx_per_s"]), str(row["build_per_s"]), str(row["ratio"]),
                      str(row[one_call]), str(row["first_build_s"]))
    console.print(table)
    if "real" in b:
        r = b["real"]
        console.print(f"[bold]real build[/] (fresh `qa index` process, {r['precision']}): {r['passages']} passages in "
                      f"{r['wall_s']} s, {r['passages_per_s']} passages/s, peak RSS {r['peak_rss_mb']} MB")
    if "synthetic" in b:
        r = b["synthetic"]
        console.print(f"[bold]build with synthetic vectors[/]: {r['passages']} passages in {r['wall_s']} s, "
                      f"peak RSS {r['peak_rss_mb']} MB")
    if "query" not in report:
        return
    table = Table(title="warm query latency, ms (p50; hybrid p50/p95)", title_justify="left")
    for column in ("passages", "vectors", "bm25", "dense", "fusion", "answer", "hybrid p50", "hybrid p95", "index"):
        table.add_column(column, justify="right")
    for row in report["query"].values():
        table.add_row(str(row["passages"]), row["vectors"], f"{row['bm25_ms_p50']}", f"{row['dense_ms_p50']}",
                      f"{row['fusion_ms_p50']}", f"{row['answer_ms_p50']}", f"{row['hybrid_ms_p50']}",
                      f"{row['hybrid_ms_p95']}",
                      f"{row['bm25']} + {row['dense_index']}")
    console.print(table)
    if "hnsw" in report:
        h = report["hnsw"]
        console.print(f"[bold]HNSW[/] (M={h['M']}, efSearch={h['efSearch']}) over {h['passages']} vectors: recall@10 "
                      f"{h['recall@10']} against exact, {h['query_ms_p50']} ms per query, built in {h['build_s']} s")
    c = report["cold_ask"]
    console.print(f"[bold]cold qa ask[/] (seeds): {c['ask_s']} s vs import sentence_transformers {c['import_st_s']} s, "
                  f"ratio {c['ratio']}"
                  + (f"; at {c['largest_passages']} passages {c['largest_ask_s']} s" if "largest_ask_s" in c else ""))
    console.print(f"[bold]peak RSS[/] of qa ask: {report['peak_rss_mb']} MB")


if __name__ == "__main__":
    typer.run(main)
