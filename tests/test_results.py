"""eval/README.md's headline tables are the committed results (eval/results/*.json, qa/reading/reader.json),
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


KINDS = {"squad2-dev-a": "reader-squad2-dev-a.json", "new_wiki": "reader-new_wiki.json", "amazon": "reader-amazon.json"}


def cells(value) -> str:
    return "n/a" if value is None else shown(value)


@pytest.mark.parametrize("label, key", [
    ("best span HasAns F1", "best_span_has_ans_f1"), ("best span HasAns EM", "best_span_has_ans_em"),
    ("answered", "answered"), ("HasAns F1 at the threshold", "with_threshold_has_ans_f1"),
    ("adversarial NoAns", "with_threshold_no_ans_accuracy"), ("best guesses right", "best_guesses_right"),
    ("answer recall@1", "recall_at_1"), ("answer recall@3", "recall_at_3")])
def test_the_reader_given_the_paragraph_is_the_committed_result(label, key):
    assert row(f"given the paragraph: {label}") == [cells(results(name)[key]) for name in KINDS.values()]


@pytest.mark.parametrize("label, key", [
    ("best span HasAns F1", "best_span_f1"), ("answered", "answered"), ("HasAns F1 at the threshold", "has_ans_f1"),
    ("absent NoAns", "absent_no_ans"), ("adversarial NoAns", "adversarial_no_ans"),
    ("best guesses right", "best_guesses_right"), ("absent, no guess either", "absent_no_guess"),
    ("answer recall@1", "recall_at_1"), ("answer recall@3", "recall_at_3")])
def test_end_to_end_figures_are_the_shipped_calibration_record(label, key):
    fitted = json.loads((ROOT / "qa" / "reading" / "reader.json").read_text(encoding="utf-8"))["held_out_end_to_end"]["cross_fitted"]
    assert row(f"end to end: {label}") == [cells(fitted[kind][key]) for kind in KINDS]


def test_the_calibration_table_is_the_shipped_record():
    fitted = json.loads((ROOT / "qa" / "reading" / "reader.json").read_text(encoding="utf-8"))["held_out_end_to_end"]["cross_fitted"]
    for bucket in ("0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"):
        found = [next((b for b in fitted[kind]["calibration_buckets"] if b["confidence"] == bucket), None)
                 for kind in KINDS]
        assert row(f"confidence {bucket}") == [f"{b['questions']}: {shown(b['right'])}" if b else "n/a" for b in found]


@pytest.mark.parametrize("metric", ["recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10"])
def test_seeds_retrieval_is_the_committed_result(metric):
    gold = results("gold.json")
    assert row(metric) == [shown(gold["retrieval"][name][metric]) for name in ("bm25", "dense", "hybrid")]


def test_seeds_answers_are_the_committed_result():
    answers = results("gold.json")["answers"]
    line = f"EM {shown(answers['em'])}, F1 {shown(answers['f1'])}, sentence hit {shown(answers['sentence_hit'])}, " \
           f"citation accuracy {shown(answers['citation_accuracy'])}"
    assert line in " ".join(README.split())


@pytest.mark.parametrize("ranking", ["milvus BM25 function", "files hybrid", "milvus (qa's weights) hybrid",
                                     "milvus BM25 function + dense"])
def test_the_milvus_bm25_table_is_the_committed_result(ranking):
    figures = results("milvus-bm25.json")["results"]
    assert row(ranking) == [f"{shown(d[ranking]['recall@5'])} / {shown(d[ranking]['mrr@10'])}" for d in figures.values()]


@pytest.mark.parametrize("reader", ["qa (trafilatura, favor_precision)", "qa before (tag filter)",
                                    "trafilatura extract() default"])
def test_page_reading_figures_are_the_committed_result(reader):
    figures = results("ingest.json")["subsets"]["news outlets"][reader]
    assert row(reader) == [shown(figures["precision"]), shown(figures["recall"]), shown(figures["f1"])] + [
        str(figures[key]) for key in ("read", "dated", "date_right", "author_right")]
