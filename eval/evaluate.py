"""Score retrieval and answers of the real qa pipeline against gold questions and answers.

    python -m eval.evaluate [--gold eval/gold.jsonl] [--corpus seeds] [--index DIR]
                            [--retrievers bm25,dense,hybrid] [--json OUT]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from eval.metrics import (
    first_relevant,
    mean_metrics,
    percentile,
    ranking_metrics,
)
from eval.results import write_results
from qa.api import QA
from qa.errors import QAError
from qa.reading.answer import normalize
from qa.reading.squad import RIGHT_F1, best_over_gold, load_gold
from qa.search.retrieve import RETRIEVERS, Retrieval

ROOT = Path(__file__).resolve().parent.parent
console = Console(highlight=False)


def is_relevant(passage_source: str, passage_text: str, gold: dict) -> bool:
    text = normalize(passage_text)
    return passage_source == gold.get("source") and any(normalize(a) in text for a in gold["answers"] if normalize(a))


def evaluate(qa: QA, gold: list[dict], retrievers: list[str], answer_retriever: str = "hybrid",
             progress=None, reader: str | None = None) -> dict:
    """Every metric of the report, computed by running `qa` on each gold question."""
    all_passages = qa.all_passages()
    retrieval_rows = {r: [] for r in retrievers}
    questions, latencies = [], []
    answerable_rows, abstained_unanswerable, abstained, unanswerable = [], 0, 0, 0
    guesses = {"answerable": 0, "right": 0, "unanswerable": 0}
    for record in gold:
        answerable = bool(record["answers"])
        ranks = {}
        if answerable:
            total = sum(is_relevant(p.source, p.text, record) for p in all_passages)
            for name in retrievers:
                ranking = qa.search(record["question"], k=10, retrieval=Retrieval(name))
                relevance = [is_relevant(p["source"], p["text"], record) for p in ranking]
                retrieval_rows[name].append(ranking_metrics(relevance, total))
                ranks[name] = first_relevant(relevance)
        began = time.perf_counter()
        result = qa.ask(record["question"], retrieval=Retrieval(answer_retriever), reader=reader, answers=3)
        latencies.append((time.perf_counter() - began) * 1000)
        predicted = result["answer"]
        em, f1 = best_over_gold(predicted or "", record["answers"])
        guess = result["best_guess"]
        shown = [c["answer"] for c in ([guess] if guess else []) + result["alternatives"]]
        shown = [predicted, *shown] if predicted is not None else shown
        right = [best_over_gold(text, record["answers"])[1] >= RIGHT_F1 for text in shown]
        if answerable:
            sentence = normalize(result["sentence"] or "")
            answerable_rows.append({
                "em": em,
                "f1": f1,
                "sentence_hit": float(predicted is not None and any(normalize(a) in sentence for a in record["answers"])),
                "citation_accuracy": float(bool(result["citations"]) and result["citations"][0]["source"] == record["source"]),
                "answered": float(predicted is not None),
                "answer_recall@1": float(any(right[:1])),
                "answer_recall@3": float(any(right[:3])),
            })
            guesses["answerable"] += guess is not None
            guesses["right"] += guess is not None and right[0]
        else:
            unanswerable += 1
            abstained_unanswerable += predicted is None
            guesses["unanswerable"] += guess is not None
        abstained += predicted is None
        questions.append({"id": record["id"], "question": record["question"], "gold": record["answers"],
                          "predicted": predicted, "best_guess": guess["answer"] if guess else None,
                          "alternatives": [c["answer"] for c in result["alternatives"]],
                          "confidence": result["confidence"], "em": em, "f1": f1,
                          "first_relevant_rank": ranks})
        if progress:
            progress()
    answers = mean_metrics(answerable_rows)
    answers.pop("answered", None)
    answers["best_guesses_answerable"] = guesses["answerable"]
    answers["best_guesses_right"] = round(guesses["right"] / guesses["answerable"], 4) if guesses["answerable"] else None
    answers["best_guesses_unanswerable"] = guesses["unanswerable"]
    answers["abstain_precision"] = round(abstained_unanswerable / abstained, 4) if abstained else 1.0
    answers["abstain_recall"] = round(abstained_unanswerable / unanswerable, 4) if unanswerable else 1.0
    answers["answerable"] = len(answerable_rows)
    answers["unanswerable"] = unanswerable
    answers["answered_unanswerable"] = unanswerable - abstained_unanswerable
    answers["abstained_answerable"] = abstained - abstained_unanswerable
    return {
        "retrieval": {name: mean_metrics(rows) for name, rows in retrieval_rows.items()},
        "answers": answers,
        "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1)},
        "questions": questions,
    }


def retrieval_table(retrieval: dict, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for name in retrieval:
        table.add_column(name, justify="right")
    metrics = next(iter(retrieval.values())).keys() if retrieval else []
    for metric in metrics:
        table.add_row(metric, *(f"{retrieval[name][metric]:.3f}" for name in retrieval))
    return table


def parse_retrievers(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in RETRIEVERS]
    if unknown or not names:
        raise typer.BadParameter(f"choose from {','.join(RETRIEVERS)}")
    return names


READER_HELP = "Score this transformers QA model (qa ask --reader) instead of the built-in reader."


def main(
    gold: Path = typer.Option(ROOT / "eval" / "gold.jsonl", help="Gold questions (JSON lines)."),
    corpus: Path = typer.Option(ROOT / "seeds", help="Folder of articles the gold refers to."),
    index: Path = typer.Option(ROOT / "index", help="Index folder (built if missing or stale)."),
    retrievers: str = typer.Option("bm25,dense,hybrid", help="Comma-separated retrievers to compare."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report here."),
    reader: Optional[str] = typer.Option(None, help=READER_HELP),
) -> None:
    names = parse_retrievers(retrievers)
    try:
        records = load_gold(gold)
        qa = QA(corpus, index, on_notice=lambda m: console.print(f"[dim]{m}[/]"))
        report = evaluate(qa, records, names, reader=reader)
    except QAError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    print_report(report, f"Retrieval on {gold.name} ({report['answers']['answerable']} answerable questions)",
                 "Answers (hybrid)", json_out)


def print_report(report: dict, retrieval_title: str, answers_title: str, json_out: Optional[Path]) -> None:
    """The report's tables on screen and, with --json, the whole report in a file."""
    console.print(retrieval_table(report["retrieval"], retrieval_title))
    answers = Table(title=answers_title, title_justify="left")
    answers.add_column("metric")
    answers.add_column("value", justify="right")
    for key, value in report["answers"].items():
        answers.add_row(key, "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value)))
    answers.add_row("latency p50 / p95 (ms)", f"{report['latency_ms']['p50']:.0f} / {report['latency_ms']['p95']:.0f}")
    console.print(answers)
    if json_out:
        write_results(json_out, report)
        console.print(f"report written to {json_out}")


if __name__ == "__main__":
    typer.run(main)
