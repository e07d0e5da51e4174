"""Score the shipped reader given the paragraph: each question read in its own paragraph only.

    python -m eval.reader --data ../shared/data/squad/squad2-dev-a.json [--sample N] [--json OUT]

This isolates the reader from retrieval. The file must hold no article the reader was trained on
(the card records which it was: qa/reading/reader.json's `training`); the script refuses one that does.
Reported: the best span's EM/F1 on answerable questions (no abstention); with the shipped
thresholds, the share of answerable questions answered, their HasAns F1 (an abstention scores 0),
the adversarial NoAns accuracy (SQuAD 2.0's unanswerable questions), best guesses and how often
they are right; answer recall@1 and @3 (a right answer, F1 >= 0.5, among the three best distinct
spans); and the calibration table (confidence against how often the best span is right).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from eval.metrics import percentile
from eval.results import write_results
from qa.corpus.chunk import Passage
from qa.errors import QAError
from qa.reading.answer import answer, distinct_spans, read_spans
from qa.reading.read import OnnxReader, calibration, export_folder, load_card, load_shipped_reader
from qa.reading.squad import RIGHT_F1, best_over_gold, calibration_table, squad_paragraphs, trained_titles

console = Console(highlight=False)


def held_out_questions(path: Path) -> list[tuple[str, str, str, list[str]]]:
    """(id, question, context, answers) of every question, refusing titles the reader trained on."""
    paragraphs, _ = squad_paragraphs(path)
    trained = sorted({p.title for p in paragraphs} & trained_titles(load_card()["training"]))
    if trained:
        raise QAError(f"{path} has articles the reader was trained on ({', '.join(trained[:3])}…): "
                      "score it on held-out articles only")
    return [(qid, q, p.context, [a for _, a in answers]) for p in paragraphs for qid, q, answers in p.questions]


def mean(values) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def score_given_paragraph(questions, int8: bool | None = None) -> dict:
    """Figures of the shipped reader; `int8` overrides the card's choice of ONNX weights."""
    reader = load_shipped_reader() if int8 is None else OnnxReader(export_folder(int8=int8), calibration(load_card()))
    rows, latencies = [], []
    for qid, question, context, answers in questions:
        passage = Passage("squad", "", None, 0, len(context), context)
        began = time.perf_counter()
        found = read_spans(question, [passage], reader)
        result = answer(question, [passage], reader, found=found)
        latencies.append((time.perf_counter() - began) * 1000)
        texts = [context[s.start : s.end] for s in distinct_spans(found, [passage], 3)] or [""]
        em, f1 = best_over_gold(texts[0], answers) if answers else (0.0, 0.0)
        rows.append({"answerable": bool(answers), "em": em, "f1": f1, "confidence": result.confidence,
                     "answered": result.answer is not None, "guessed": result.best_guess is not None,
                     "top3": bool(answers) and any(best_over_gold(t, answers)[1] >= RIGHT_F1 for t in texts)})
    has = [r for r in rows if r["answerable"]]
    adversarial = [r for r in rows if not r["answerable"]]
    guesses = [r for r in rows if r["guessed"]]
    buckets = calibration_table((r["confidence"], r["answerable"] and r["f1"] >= RIGHT_F1) for r in rows)
    return {"questions": len(rows), "answerable": len(has),
            "best_span_has_ans_em": mean(r["em"] for r in has), "best_span_has_ans_f1": mean(r["f1"] for r in has),
            "answered": mean(r["answered"] for r in has),
            "with_threshold_has_ans_f1": mean(r["f1"] * r["answered"] for r in has),
            "with_threshold_no_ans_accuracy": mean(not r["answered"] for r in adversarial),
            "best_guesses": len(guesses),
            "best_guesses_right": mean(r["answerable"] and r["f1"] >= RIGHT_F1 for r in guesses),
            "recall_at_1": mean(r["f1"] >= RIGHT_F1 for r in has), "recall_at_3": mean(r["top3"] for r in has),
            "calibration_buckets": buckets, "read_ms_p50": round(percentile(latencies, 50), 1)}


def main(
    data: Path = typer.Option(..., help="A SQuAD v1.1/v2.0 file of articles the reader was not trained on."),
    sample: Optional[int] = typer.Option(None, min=1, help="Score N questions drawn at random (default: all)."),
    seed: int = typer.Option(0, help="Seed of the sample."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here."),
    int8: Optional[bool] = typer.Option(None, "--int8/--fp32", help="Score these ONNX weights (default: the card's)."),
) -> None:
    try:
        questions = held_out_questions(data)
    except QAError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if sample is not None and sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    report = score_given_paragraph(questions, int8)
    report["data"] = data.name
    for key, value in report.items():
        console.print(f"{key:32} {value}")
    if json_out:
        write_results(json_out, report)


if __name__ == "__main__":
    typer.run(main)
