"""Score the real qa pipeline on a SQuAD v1.1 or v2.0 file, opened over all of its paragraphs.

    python -m eval.open_squad --data FILE [--sample N] [--seed S] [--index DIR] [--json OUT]

Each paragraph is one article (source "<title>#<paragraph index>"); a question is asked of the
whole corpus, not of its own paragraph. Answers are scored as the official v2.0 script does:
an abstention counts as the answer "" (right for unanswerable questions, wrong otherwise).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import track

from eval.evaluate import READER_HELP, parse_retrievers, print_report
from eval.metrics import (
    first_relevant,
    mean_metrics,
    percentile,
    ranking_metrics,
)
from qa.api import QA
from qa.errors import QAError
from qa.reading.squad import best_over_gold, load_squad
from qa.search.retrieve import Retrieval

ROOT = Path(__file__).resolve().parent.parent
console = Console(highlight=False)


def evaluate_squad(qa: QA, questions, retrievers: list[str], answer_retriever: str = "hybrid",
                   show_progress: bool = True, reader: str | None = None) -> dict:
    retrieval_rows = {r: [] for r in retrievers}
    rows, has_ans, no_ans, latencies = [], [], [], []
    items = track(questions, description="asking", console=console) if show_progress else questions
    for q in items:
        ranks = {}
        for name in retrievers:
            ranking = qa.search(q.question, k=10, retrieval=Retrieval(name))
            relevance = [p["source"] == q.source for p in ranking]
            retrieval_rows[name].append(ranking_metrics(relevance))
            ranks[name] = first_relevant(relevance)
        began = time.perf_counter()
        result = qa.ask(q.question, retrieval=Retrieval(answer_retriever), reader=reader)
        latencies.append((time.perf_counter() - began) * 1000)
        em, f1 = best_over_gold(result["answer"] or "", q.answers)
        (has_ans if q.answers else no_ans).append({"em": em, "f1": f1})
        rows.append({"id": q.id, "question": q.question, "gold": q.answers, "predicted": result["answer"],
                     "confidence": result["confidence"], "em": em, "f1": f1, "first_relevant_rank": ranks})
    overall = mean_metrics([{"em": r["em"], "f1": r["f1"]} for r in rows])
    answered = mean_metrics(has_ans)
    return {
        "retrieval": {name: {k: v for k, v in mean_metrics(r).items() if k in ("recall@1", "recall@5", "recall@10", "mrr@10")}
                      for name, r in retrieval_rows.items()},
        "answers": {
            "em": overall.get("em", 0.0),
            "f1": overall.get("f1", 0.0),
            "has_ans_em": answered.get("em", 0.0),
            "has_ans_f1": answered.get("f1", 0.0),
            "no_ans_accuracy": mean_metrics(no_ans)["em"] if no_ans else None,
            "has_ans": len(has_ans),
            "no_ans": len(no_ans),
        },
        "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1)},
        "questions": rows,
    }


def main(
    data: Path = typer.Option(..., help="A SQuAD v1.1 or v2.0 JSON file."),
    sample: Optional[int] = typer.Option(None, min=1, help="Score N questions drawn at random (default: all)."),
    seed: int = typer.Option(0, help="Seed of the sample."),
    index: Optional[Path] = typer.Option(None, help="Index folder (default index/eval-<file name>)."),
    retrievers: str = typer.Option("bm25,dense,hybrid", help="Comma-separated retrievers to compare."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report here."),
    reader: Optional[str] = typer.Option(None, help=READER_HELP),
) -> None:
    names = parse_retrievers(retrievers)
    try:
        articles, questions, version = load_squad(data)
        if sample is not None and sample < len(questions):
            questions = random.Random(seed).sample(questions, sample)
        qa = QA(articles, index or ROOT / "index" / f"eval-{data.stem}",
                on_notice=lambda m: console.print(f"[dim]{m}[/]"))
        qa.ensure_index()
        report = evaluate_squad(qa, questions, names, reader=reader)
    except QAError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    report["data"] = {"file": data.name, "version": version, "paragraphs": len(articles), "questions": len(questions)}
    print_report(report, f"Paragraph retrieval, {data.name}: {len(questions)} questions over {len(articles)} paragraphs",
                 "Answers (hybrid, official v2.0 scoring)", json_out)


if __name__ == "__main__":
    typer.run(main)
