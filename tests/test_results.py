"""eval/README.md's headline tables are the committed results (eval/results/*.json, qa/reader.json),
not numbers typed by hand: a new run that changes a figure fails here until the README says it."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.conftest import ROOT

README = (ROOT / "eval" / "README.md").read_text(encoding="utf-8")
RESULTS = ROOT / "eval" / "results"


def results(name: str) -> dict:
    data = json.loads((RESULTS / name).read_text(encoding="utf-8"))
    assert data["provenance"]["command"].startswith("python -m eval.") and data["provenance"]["commit"]
    return data


def row(label: str) -> list[str]:
    """The cells after the first of the README table row whose first cell is `label`."""
    rows = [line for line in README.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"{len(rows)} README rows labelled {label!r}"
    return [cell.strip() for cell in rows[0].strip().strip("|").split("|")][1:]


def shown(value: float) -> str:
    """Three decimals, half up on the value as written (0.9125, 365 of 400, shows as 0.913)."""
    return str(Decimal(str(value)).quantize(Decimal("0.001"), ROUND_HALF_UP))


def test_the_reader_given_the_paragraph_is_the_committed_result():
    reader = results("reader-squad2-dev-a.json")
    assert row("HasAns EM")[0] == shown(reader["best_span_has_ans_em"])
    assert row("HasAns F1") == [shown(reader["best_span_has_ans_f1"]), shown(reader["with_threshold_has_ans_f1"])]
    assert row(f"NoAns accuracy ({reader['questions'] - reader['answerable']:,} adversarial)")[1] == shown(
        reader["with_threshold_no_ans_accuracy"])


def test_end_to_end_figures_are_the_shipped_calibration_record():
    card = json.loads((ROOT / "qa" / "reader.json").read_text(encoding="utf-8"))["held_out_end_to_end"]
    fitted = card["cross_fitted"]
    keys = ("has_ans_f1", "has_ans_em", "no_ans_accuracy", "absent_accuracy")
    assert row("cross-fitted threshold (both folds)") == [shown(fitted[k]) for k in keys]
    assert row("fold A / fold B") == [" / ".join(shown(fold[k]) for fold in fitted["per_fold"]) for k in keys]
    for bucket in fitted["calibration_buckets"]:
        assert row(bucket["confidence"]) == [str(bucket["questions"]), shown(bucket["right"])]


@pytest.mark.parametrize("metric", ["recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10"])
def test_seeds_retrieval_is_the_committed_result(metric):
    gold = results("gold.json")
    assert row(metric) == [shown(gold["retrieval"][name][metric]) for name in ("bm25", "dense", "hybrid")]


def test_seeds_answers_are_the_committed_result():
    answers = results("gold.json")["answers"]
    line = f"EM {shown(answers['em'])}, F1 {shown(answers['f1'])}, sentence hit {shown(answers['sentence_hit'])}, " \
           f"citation accuracy {shown(answers['citation_accuracy'])}"
    assert line in " ".join(README.split())


@pytest.mark.parametrize("ranking", ["files bm25", "milvus (qa's weights) bm25", "milvus BM25 function",
                                     "files hybrid", "milvus (qa's weights) hybrid", "milvus BM25 function + dense"])
def test_the_milvus_bm25_table_is_the_committed_result(ranking):
    figures = results("milvus-bm25.json")["results"]
    assert row(ranking) == [f"{shown(d[ranking]['recall@5'])} / {shown(d[ranking]['mrr@10'])}" for d in figures.values()]
