"""The answer fit on synthetic candidates: what it learns, and that cross-validation holds articles out."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from qa import fit_answer


def synthetic(questions_per_unit: int = 6, units: int = 8, seed: int = 0) -> fit_answer.Collected:
    """Three candidates per question; the gold one (in answerable questions) alone has `marked` set,
    and `noise` is random everywhere, so a scorer can only do well by learning `marked`."""
    rng = np.random.default_rng(seed)
    rows, labels, texts, answers, unit_of = [], [], [], [], []
    for q in range(questions_per_unit * units):
        answerable = q % 3 != 0
        gold = int(rng.integers(3))
        for k in range(3):
            rows.append([float(answerable and k == gold), float(rng.normal())])
            labels.append(answerable and k == gold)
            texts.append(f"answer {q} {k}")
        answers.append([f"answer {q} {gold}"] if answerable else [])
        unit_of.append(f"article {q % units}")
    n = len(answers)
    return fit_answer.Collected(["marked", "noise"], sparse.csr_matrix(np.array(rows)), np.arange(0, 3 * n + 1, 3),
                                np.array(labels), texts, answers, [3] * n, ["synthetic"] * n, unit_of)


def test_subset_keeps_each_questions_candidates_together():
    c = synthetic()
    part = c.subset([5, 2])
    assert part.texts == c.texts[15:18] + c.texts[6:9]
    assert part.answers == [c.answers[5], c.answers[2]] and part.units == [c.units[5], c.units[2]]
    assert (part.matrix.toarray() == np.vstack([c.matrix[15:18].toarray(), c.matrix[6:9].toarray()])).all()


def test_span_scorer_learns_the_marked_feature():
    w = fit_answer.fit_span_scorer(synthetic())
    assert w[0] > 1.0 and abs(w[1]) < w[0] / 5


def test_cross_validation_scores_every_question_once_on_held_out_articles():
    c = synthetic()
    figures = fit_answer.cross_validate(c, folds=4)["synthetic"]
    answerable = sum(bool(a) for a in c.answers)
    assert figures["questions"] == len(c.answers)
    assert figures["best_span_f1"] == 1.0
    assert 0.0 <= figures["has_answer_f1"] <= 1.0
    assert 0 <= figures["abstained_answerable"] <= answerable
    assert 0.0 <= figures["no_answer_accuracy"] <= 1.0


def test_more_folds_than_articles_leaves_none_empty():
    c = synthetic(units=5)
    assert fit_answer.cross_validate(c, folds=10)["synthetic"]["questions"] == len(c.answers)


def test_cross_validation_never_trains_on_the_articles_it_scores(monkeypatch):
    trained_on = []
    fit = fit_answer.fit_span_scorer

    def recording_fit(c):
        trained_on.append(set(c.units))
        return fit(c)

    monkeypatch.setattr(fit_answer, "fit_span_scorer", recording_fit)
    c = synthetic()
    fit_answer.cross_validate(c, folds=4)
    assert len(trained_on) == 4
    for unit in set(c.units):  # each article is left out of exactly one fold's training
        assert sum(unit in units for units in trained_on) == 3


def test_reusing_a_missing_cache_is_a_one_line_error(tmp_path):
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command()(fit_answer.main)
    result = CliRunner().invoke(app, ["--data", "x.json", "--reuse-cache", "--cache", str(tmp_path / "none")])
    assert result.exit_code == 1 and "cannot reuse the cache" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, KeyError)
