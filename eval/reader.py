"""Score the shipped reader given the paragraph: each SQuAD question read in its own paragraph only.

    python -m eval.reader --data ../shared/data/squad/squad2-dev-a.json [--sample N] [--json OUT]

This isolates the reader from retrieval. Use a file whose articles the reader was not trained on
(qa/reader.json lists `held_out_titles`); the script refuses one that shares a title with the
training data. Reported: the best span's EM/F1 on answerable questions (no abstention), and with
the shipped threshold the official v2.0 scores (an abstention is the answer "").
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from eval.metrics import best_over_gold, mean_metrics, percentile
from eval.results import write_results
from qa.answer import read_spans
from qa.chunk import Passage
from qa.errors import QAError
from qa.read import (
    OnnxReader,
    calibration,
    export_folder,
    load_card,
    load_shipped_reader,
)
from qa.squad import squad_paragraphs

console = Console(highlight=False)


def held_out_questions(path: Path) -> list[tuple[str, str, str, list[str]]]:
    """(id, question, context, answers) of every question, refusing titles the reader trained on."""
    paragraphs, _ = squad_paragraphs(path)
    held = set(load_card()["training"]["held_out_titles"])
    trained = sorted({p.title for p in paragraphs} - held)
    if trained:
        raise QAError(f"{path} has articles the reader may have trained on ({', '.join(trained[:3])}…): "
                      "score it on held-out articles only")
    return [(qid, q, p.context, [a for _, a in answers]) for p in paragraphs for qid, q, answers in p.questions]


def score_given_paragraph(questions, int8: bool | None = None) -> dict:
    """Figures of the shipped reader; `int8` overrides the card's choice of ONNX weights."""
    reader = load_shipped_reader() if int8 is None else OnnxReader(export_folder(int8=int8), calibration(load_card()))
    best_rows, official, latencies = [], {"has": [], "no": []}, []
    for qid, question, context, answers in questions:
        passage = Passage("squad", "", None, 0, len(context), context)
        began = time.perf_counter()
        found = read_spans(question, [passage], reader)
        latencies.append((time.perf_counter() - began) * 1000)
        span_text = context[found[0].start : found[0].end] if found else ""
        confident = found and reader.calibration.confidence(found[0].margin) >= reader.calibration.threshold
        em, f1 = best_over_gold(span_text if confident else "", answers)
        official["has" if answers else "no"].append({"em": em, "f1": f1})
        if answers:
            best_em, best_f1 = best_over_gold(span_text, answers)
            best_rows.append({"em": best_em, "f1": best_f1})
    best = mean_metrics(best_rows)
    has, no = mean_metrics(official["has"]), mean_metrics(official["no"])
    return {"questions": len(questions), "answerable": len(best_rows),
            "best_span_has_ans_em": best.get("em"), "best_span_has_ans_f1": best.get("f1"),
            "with_threshold_has_ans_f1": has.get("f1"), "with_threshold_no_ans_accuracy": no.get("em"),
            "read_ms_p50": round(percentile(latencies, 50), 1)}


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
