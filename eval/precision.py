"""Which precision the embedding model runs at: retrieval and speed of each, side by side in one run.

    python -m eval.precision [--json OUT]

Every variant embeds the passages and the questions itself (as an index and its queries do), on
the seeds' gold questions and, when ../shared is present, on squad2-dev-a's answerable questions
over its paragraphs. Dense Recall@1/5 and MRR@10, hybrid MRR@10 (qa's BM25 fused with that
variant's dense ranking), the smallest cosine of a passage vector to torch's, top-10 overlap with
torch's ranking, and onnxruntime passages/s in the build's setup. Nothing here is fitted: the
figures choose `qa.search.embed.DEFAULT_PRECISION`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from eval.evaluate import is_relevant
from eval.metrics import mean_metrics, ranking_metrics
from eval.results import write_results
from eval.workload import raw_onnx_per_s
from qa.api import QA
from qa.reading.squad import load_squad
from qa.search.embed import DEFAULT_MODEL, load_encoder, quantize_int8
from qa.search.onnx_encoder import BUILD_WORKERS, ONNX_BATCH_SIZE, ONNX_CONFIG, ONNX_FILE, ONNX_TOKENIZER, OnnxEncoder
from qa.search.retrieve import CANDIDATE_DEPTH, DEFAULT_ALPHA, weighted_fusion

ROOT = Path(__file__).resolve().parent.parent
SQUAD_DEV_A = ROOT.parent / "shared" / "data" / "squad" / "squad2-dev-a.json"
console = Console(highlight=False, width=160)


def _optimized(source: Path, target: Path) -> None:
    from onnxruntime.transformers import optimizer

    optimizer.optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(str(target))


def _quantized(weights: str) -> Callable[[Path, Path], None]:
    """Dynamic quantization with one scale per tensor: the alternatives to qa's int8."""
    def make(source: Path, target: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(source, target, weight_type=QuantType[weights])
    return make


# name -> how its ONNX file is made from the fp32 export (None: the export itself)
ONNX_VARIANTS: dict[str, Callable[[Path, Path], None] | None] = {
    "onnx fp32": None,
    "onnx fp32 O3 (graph fusions)": _optimized,
    "int8 per-tensor": _quantized("QInt8"),
    "int8 per-channel (qa's int8)": quantize_int8,
    "uint8 per-tensor": _quantized("QUInt8"),
}


def question_sets(work: Path) -> list[tuple[str, list[str], list[str], list[list[bool]], QA]]:
    """(name, passage texts, questions, relevance per question per passage, QA over those passages),
    their indexes built in `work`."""
    sets = []
    seeds = QA(ROOT / "seeds", work / "seeds", precision="fp32")
    passages = seeds.all_passages()
    gold = [json.loads(line) for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines() if line.strip()]
    gold = [g for g in gold if g["answers"]]
    sets.append(("seeds gold", [p.text for p in passages], [g["question"] for g in gold],
                 [[is_relevant(p.source, p.text, g) for p in passages] for g in gold], seeds))
    if SQUAD_DEV_A.is_file():
        articles, questions, _ = load_squad(SQUAD_DEV_A)
        questions = [q for q in questions if q.answers]
        squad = QA(articles, work / "squad", precision="fp32")
        passages = squad.all_passages()
        sets.append(("squad2-dev-a", [p.text for p in passages], [q.question for q in questions],
                     [[p.source == q.source for p in passages] for q in questions], squad))
    return sets


def scores(vectors: np.ndarray, queries: np.ndarray, relevance: list[list[bool]], qa: QA,
           questions: list[str], reference: tuple[np.ndarray, np.ndarray] | None) -> dict:
    similarity = queries @ vectors.T
    order = np.argsort(-similarity, axis=1)
    dense = mean_metrics([ranking_metrics([rel[i] for i in ranked[:10]]) for rel, ranked in zip(relevance, order)])
    retriever = qa.retriever()
    hybrid = []
    for question, rel, ranked, row in zip(questions, relevance, order, similarity):
        fused = weighted_fusion(retriever.bm25(question, CANDIDATE_DEPTH),
                                [(int(i), float(row[i])) for i in ranked[:CANDIDATE_DEPTH]], DEFAULT_ALPHA)
        ranked_fused = sorted(fused, key=lambda i: (-fused[i], i))  # as Retriever.search orders them
        hybrid.append(ranking_metrics([rel[i] for i in ranked_fused[:10]]))
    figures = {"recall@1": dense["recall@1"], "recall@5": dense["recall@5"], "mrr@10": dense["mrr@10"],
               "hybrid_mrr@10": mean_metrics(hybrid)["mrr@10"]}
    if reference is not None:
        figures["min_cosine_to_torch"] = round(float(np.min(np.sum(vectors * reference[0], axis=1))), 4)
        figures["top10_overlap_with_torch"] = round(float(np.mean(
            [len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(order, reference[1])])), 3)
    return figures


def main(json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here.")) -> None:
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer suggests optional pre-processing
    work = Path(tempfile.mkdtemp(prefix="qa-precision-"))
    try:
        sets = question_sets(work)
        model = load_encoder(DEFAULT_MODEL)
        export = work / "onnx fp32"
        export.mkdir()
        model.export_onnx(export, precision="fp32")
        encoders: dict[str, Callable[[list[str]], np.ndarray]] = {
            "torch fp32": lambda texts: model.model.encode(texts, batch_size=32, normalize_embeddings=True)}
        folders: dict[str, Path] = {}
        for name, make in ONNX_VARIANTS.items():
            folder = export if make is None else work / name
            if make is not None:
                folder.mkdir()
                for file in (ONNX_TOKENIZER, ONNX_CONFIG):
                    shutil.copy(export / file, folder / file)
                make(export / ONNX_FILE, folder / ONNX_FILE)
            folders[name] = folder
            encoders[name] = OnnxEncoder(folder).encode
        report: dict = {}
        references: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        speed_texts = sets[-1][1][:400]
        for name, encode in encoders.items():
            console.print(f"{name}…")
            row: dict = {}
            for set_name, texts, questions, relevance, qa in sets:
                vectors, queries = encode(texts), encode(questions)
                row[set_name] = scores(vectors, queries, relevance, qa, questions, references.get(set_name))
                if name == "torch fp32":
                    references[set_name] = (vectors, np.argsort(-(queries @ vectors.T), axis=1)[:, :10])
            if name in folders:
                row["passages_per_s"] = round(raw_onnx_per_s(folders[name], speed_texts, ONNX_BATCH_SIZE, BUILD_WORKERS), 1)
            row["model_mb"] = round((folders[name] / ONNX_FILE).stat().st_size / 1e6, 1) if name in folders else None
            report[name] = row
    finally:
        shutil.rmtree(work, ignore_errors=True)
    show(report)
    if json_out:
        write_results(json_out, report)


def show(report: dict) -> None:
    set_names = [k for k in next(iter(report.values())) if isinstance(next(iter(report.values()))[k], dict)]
    table = Table(title="embedding precision: dense R@1 / R@5 / MRR@10, hybrid MRR@10, min cosine and top-10 "
                        "overlap to torch; onnxruntime passages/s (build setup)", title_justify="left")
    table.add_column("variant")
    for name in set_names:
        table.add_column(name, justify="right")
    table.add_column("passages/s", justify="right")
    table.add_column("MB", justify="right")
    for variant, row in report.items():
        cells = []
        for name in set_names:
            f = row[name]
            cells.append(f"{f['recall@1']:.4f} / {f['recall@5']:.4f} / {f['mrr@10']:.4f}, {f['hybrid_mrr@10']:.4f}"
                         + (f"; {f['min_cosine_to_torch']}, {f['top10_overlap_with_torch']}"
                            if "min_cosine_to_torch" in f else ""))
        table.add_row(variant, *cells, str(row.get("passages_per_s", "-")), str(row["model_mb"] or "-"))
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
