"""Fitting the reader's confidence and thresholds (training/calibrate_reader.py) on rows made up here."""

from __future__ import annotations

import random
import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT))

from training.calibrate_reader import confidences, cross_fit, figures, fit  # noqa: E402


def rows_of(data: str, scale: float, count: int = 400, seed: int = 0) -> list[dict]:
    """Questions of one kind of text whose margins run on their own `scale`: a right span leads its
    runner-up clearly, a wrong one does not; absent questions have low margins and no lead."""
    rng = random.Random(seed)
    rows = []
    for k in range(count):
        kind = ("answerable", "answerable", "adversarial", "absent")[k % 4]
        right = kind == "answerable" and rng.random() < 0.7
        lead = rng.uniform(3, 8) if right else rng.uniform(0, 2)
        margin = scale * (rng.uniform(2, 6) if kind != "absent" else rng.uniform(-4, 1))
        rows.append({"data": data, "title": f"{data}-{k // 4 % 10}", "kind": kind, "margin": margin, "lead": lead,
                     "agreement": 0, "f1": 1.0 if right else 0.0, "right_in_top3": right})
    return rows


def test_the_lead_tells_near_misses_from_answers_on_every_kind_where_the_margin_alone_cannot():
    rows = rows_of("wiki", 2.0) + rows_of("reviews", 0.5, seed=1)
    with_lead = figures(rows, *cross_fit(rows, ("margin", "lead"), 0.0, 0.5))
    margin_only = figures(rows, *cross_fit(rows, ("margin",), 0.0, 0.5))
    for data in ("wiki", "reviews"):
        lead, margin = with_lead[data], margin_only[data]
        assert lead["has_ans_f1"] >= margin["has_ans_f1"] - 0.01 and lead["absent_no_ans"] >= margin["absent_no_ans"]
        assert lead["adversarial_no_ans"] > margin["adversarial_no_ans"] + 0.5
    assert fit(rows, ("margin", "lead"), 0.0, 0.5).lead_slope > 0


def test_best_guesses_sit_between_the_two_thresholds_and_are_right_at_the_stated_rate():
    rows = rows_of("wiki", 1.0, count=800)
    calibration = fit(rows, ("margin",), 1.0, 0.5)
    assert calibration.rank_penalty == 1.0 and 0 < calibration.guess_threshold <= calibration.threshold < 1
    confidence = confidences(calibration, rows)
    band = [r for r, c in zip(rows, confidence) if calibration.guess_threshold <= c < calibration.threshold]
    if band:
        assert sum(r["kind"] == "answerable" and r["f1"] >= 0.5 for r in band) / len(band) >= 0.5
    strict = fit(rows, ("margin",), 1.0, 0.99)
    assert strict.guess_threshold >= calibration.guess_threshold  # a higher rate asks for surer guesses


def test_cross_fitted_figures_are_reported_per_file_with_recall_at_one_and_three():
    rows = rows_of("wiki", 1.0) + rows_of("reviews", 1.0, seed=2)
    reported = figures(rows, *cross_fit(rows, ("margin", "lead", "agreement"), 0.0, 0.5))
    assert set(reported) == {"wiki", "reviews"}
    for numbers in reported.values():
        assert numbers["answerable"] == 200 and numbers["adversarial"] == numbers["absent"] == 100
        assert 0 <= numbers["has_ans_f1"] <= numbers["best_span_f1"] <= 1
        assert numbers["recall_at_1"] <= numbers["recall_at_3"]
        assert sum(b["questions"] for b in numbers["calibration_buckets"]) == 400


def test_the_guess_threshold_is_the_lowest_from_which_guesses_are_right_at_the_rate_averaged_over_files():
    import numpy as np

    from training.calibrate_reader import guess_threshold, is_right

    rng = random.Random(4)
    rows = [{"data": data, "kind": "answerable", "f1": float(rng.random() < share)}
            for data, count, share in (("wiki", 300, 0.6), ("adversarial-heavy", 900, 0.15)) for _ in range(count)]
    confidence = np.array([rng.random() * 0.5 for _ in rows])

    def averaged_precision(value: float) -> float:
        rates = []
        for data in ("wiki", "adversarial-heavy"):
            band = [is_right(r) for r, c in zip(rows, confidence) if r["data"] == data and value <= c < 0.5]
            rates += [sum(band) / len(band)] if band else []
        return sum(rates) / len(rates)

    chosen = guess_threshold(rows, confidence, 0.5, 0.35)
    assert averaged_precision(chosen) >= 0.35
    assert all(averaged_precision(c) < 0.35 for c in confidence if c < chosen)  # none lower reaches it
    pooled = sum(is_right(r) for r, c in zip(rows, confidence) if c >= chosen) / sum(confidence >= chosen)
    assert pooled < 0.35  # pooled, the file with more questions would have decided alone


def test_the_guess_threshold_leaves_questions_the_articles_do_not_answer_without_a_guess_at_the_floor():
    import numpy as np

    from training.calibrate_reader import guess_threshold

    rng = random.Random(5)
    rows = [{"data": data, "kind": kind, "f1": float(kind == "answerable" and rng.random() < 0.5)}
            for data in ("wiki", "reviews") for kind in ("answerable", "absent") for _ in range(200)]
    confidence = np.array([rng.random() * (0.6 if r["kind"] == "answerable" else 0.4) for r in rows])

    def quiet(value: float) -> float:  # absent questions without an answer or a guess, averaged over files
        return sum(np.mean([c < value for r, c in zip(rows, confidence) if r["data"] == data and r["kind"] == "absent"])
                   for data in ("wiki", "reviews")) / 2

    free = guess_threshold(rows, confidence, 0.5, 0.2)
    floored = guess_threshold(rows, confidence, 0.5, 0.2, absent_floor=0.9)
    assert quiet(free) < 0.9 <= quiet(floored) and floored > free
    assert all(quiet(c) < 0.9 for c in confidence if c < floored)  # none lower keeps the floor
