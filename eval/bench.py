"""Speed and scale of the real pipeline, measured in one run and printed side by side.

    python eval/bench.py [--json OUT] [--sizes 1000,10000,100000] [--real-vectors-up-to 1000]

- build: raw `SentenceTransformer.encode` throughput on a set of passages against `qa`'s index
  build of the same passages (a rebuild, so the one-off ONNX export of the model is not counted;
  the first build's time is reported beside it);
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
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metrics import percentile  # noqa: E402

from qa import store  # noqa: E402
from qa.answer import answer  # noqa: E402
from qa.api import QA  # noqa: E402
from qa.chunk import split_sentences  # noqa: E402
from qa.embed import DEFAULT_MODEL, load_encoder  # noqa: E402
from qa.ingest import read_corpus  # noqa: E402
from qa.read import load_shipped_reader  # noqa: E402
from qa.retrieve import CANDIDATE_DEPTH, DEFAULT_ALPHA, weighted_fusion  # noqa: E402
from qa.squad import load_squad  # noqa: E402

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
    """Stands in for the model when embedding would take too long: each vector is a real passage
    vector plus Gaussian noise, renormalized (clustered like real embeddings, unlike uniform random
    vectors, on which graph indexes behave far worse). The ONNX export is the real model's."""

    NOISE = 0.05

    def __init__(self, centers: np.ndarray, seed: int):
        self.real = load_encoder(DEFAULT_MODEL)
        self.name, self.weights_sha256, self.dim = self.real.name, self.real.weights_sha256, self.real.dim
        self.centers = centers
        self.rng = np.random.default_rng(seed)

    def encode(self, texts, on_batch=None, **_):
        picks = self.centers[self.rng.integers(0, len(self.centers), len(texts))]
        vectors = (picks + self.NOISE * self.rng.standard_normal(picks.shape)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        if on_batch:
            on_batch(len(texts))
        return vectors

    def export_onnx(self, folder: Path) -> bool:
        return self.real.export_onnx(folder)


def timed(function, *args) -> tuple[float, object]:
    began = time.perf_counter()
    result = function(*args)
    return (time.perf_counter() - began) * 1000, result


def bench_build(sentences: list[str], work: Path, passages: int = 300) -> tuple[dict, np.ndarray]:
    corpus = work / "build-corpus"
    write_corpus(corpus, passages, sentences, seed=1)
    encoder = load_encoder(DEFAULT_MODEL)
    qa = QA(corpus, work / "build-index")
    first = qa.build()
    texts = [p.text for p in qa.all_passages()]
    began = time.perf_counter()
    vectors = encoder.model.encode(texts, batch_size=32, normalize_embeddings=True)
    encode_per_s = len(texts) / (time.perf_counter() - began)
    rebuild = qa.build(force=True)
    build_per_s = rebuild.passages / rebuild.seconds
    return {"passages": len(texts), "encode_per_s": round(encode_per_s, 1), "build_per_s": round(build_per_s, 1),
            "ratio": round(build_per_s / encode_per_s, 3), "first_build_s": round(first.seconds, 1)}, vectors


def bench_queries(corpus: Path, index: Path, questions: list[str], centers: np.ndarray | None) -> dict:
    real = centers is None
    if not real:
        store.build(corpus, index, DEFAULT_MODEL, make_encoder=lambda: SyntheticVectors(centers, seed=2))
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
    result["dense_index"] = type(retriever.dense_index).__name__
    result["bm25"] = type(retriever.bm25_index).__name__
    return result


def bench_hnsw(corpus: Path, index: Path, questions: list[str]) -> dict:
    """Recall@10 against exact search and query time of an HNSW graph built with the index's own
    settings over a stored index's vectors (the index switches to HNSW above store.HNSW_ABOVE)."""
    import faiss

    qa = QA(corpus, index)
    exact = qa.retriever().dense_index
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


def cold_runs(command: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """(median wall seconds, max peak RSS in MB) over fresh processes."""
    walls, peaks = [], []
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    for _ in range(COLD_RUNS):
        out = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True,
                             env=env, cwd=cwd).stdout
        wall, rss_kb = out.split()
        walls.append(float(wall))
        peaks.append(int(rss_kb) / 1024)
    return statistics.median(walls), max(peaks)


def main(
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here."),
    sizes: str = typer.Option("1000,10000,100000", help="Corpus sizes in passages."),
    real_vectors_up_to: int = typer.Option(1000, help="Embed for real up to this many passages; synthetic above."),
    queries: int = typer.Option(50, help="Questions timed per size."),
    baseline: Optional[str] = typer.Option(None, help="A git commit to measure side by side on the seeds."),
    only_baseline: bool = typer.Option(False, help="Measure only the --baseline comparison."),
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
        report["query"] = {}
        largest = None
        for size in [int(s) for s in sizes.split(",")]:
            console.print(f"queries at {size} passages…")
            corpus, index = work / f"corpus-{size}", work / f"index-{size}"
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
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1), encoding="utf-8")


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
    console.print(f"[bold]build[/] ({b['passages']} passages): model.encode {b['encode_per_s']}/s, "
                  f"qa index rebuild {b['build_per_s']}/s, ratio {b['ratio']} (first build with ONNX export "
                  f"{b['first_build_s']} s)")
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
