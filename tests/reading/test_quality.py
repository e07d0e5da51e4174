"""Quality gate: the shipped reader on articles it never trained on, and the whole pipeline on the seeds.

Thresholds sit just under the figures in eval/README.md. The held-out gate reads squad2-dev-a
(none of its articles was trained on) given the paragraph, and is skipped where ../shared is
absent; eval/gold.jsonl was never fitted on nor used to choose a threshold, so its gate measures
too, on the news articles the tool is for.
"""

from __future__ import annotations

import pytest

from eval.evaluate import evaluate
from eval.metrics import ranking_metrics
from qa.reading.squad import GoldError, load_gold
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.slow  # the gates evaluate the real reader over whole question sets

# The seeds' figures depend on the CPU as well as on the code: the int8 embedding model computes its
# vectors with other integer instructions on an AVX2-only CPU than with AVX512, which moves a few
# passages up or down a place (here dev-020's out of the five read), so each floor sits under both.
# Measured with the shipped reader on an AVX2-only EPYC, bylines and datelines answering questions
# about an article itself (eval/results/gold.json); on an AVX512-BF16 EPYC the int8 embeddings
# ranked dev-020's passage among the five read as well, which only added to the figures (the
# reader before: F1 0.733 there against 0.703 on AVX2, both without the byline answers). The
# floors are the for gold (F1 >= 0.75 less a rounding, every unanswerable question
# abstained, at most 2 answerable) and just under today's exact matches, which a reader that reads
# better held out lowered by moving one answer's boundary ("license" for "an exclusive license").
MIN_HYBRID_RECALL_AT_5 = 0.97  # 0.971
MIN_ANSWER_F1 = 0.74  # 0.752 (the reader before: 0.762)
MIN_ANSWER_EM = 0.60  # 0.618, 21 of 34 (the reader before: 0.647)
MIN_SENTENCE_HIT = 0.85  # 0.882
MAX_ABSTAINED_ANSWERABLE = 2  # 2
MIN_ABSTAIN_RECALL = 1.0
MAX_ANSWERED_UNANSWERABLE = 0


HELD_OUT = SHARED / "data" / "squad" / "squad2-dev-a.json"
HELD_OUT_SAMPLE = 300
MIN_HELD_OUT_BEST_SPAN_F1 = 0.76  # measured 0.782 on this sample, 0.779 with the reader before; over all
# 1,278 answerable 0.813 against 0.804: a sample of ~130 answerable questions moves by 0.02 either way


@pytest.mark.skipif(not HELD_OUT.is_file(), reason="../shared/data is not here")
def test_held_out_reader_gate():
    import random

    from eval.reader import held_out_questions, score_given_paragraph

    questions = random.Random(0).sample(held_out_questions(HELD_OUT), HELD_OUT_SAMPLE)
    figures = score_given_paragraph(questions)
    assert figures["best_span_has_ans_f1"] >= MIN_HELD_OUT_BEST_SPAN_F1
    assert 0.0 <= figures["best_span_has_ans_em"] <= figures["best_span_has_ans_f1"] <= 1.0


@pytest.fixture(scope="module")
def report(seeds_qa):
    return evaluate(seeds_qa, load_gold(ROOT / "eval" / "gold.jsonl"), ["bm25", "dense", "hybrid"])


def test_hybrid_retrieval_gate(report):
    retrieval = report["retrieval"]
    assert retrieval["hybrid"]["recall@5"] >= MIN_HYBRID_RECALL_AT_5
    best_single = max(retrieval["bm25"]["recall@5"], retrieval["dense"]["recall@5"])
    assert retrieval["hybrid"]["recall@5"] >= best_single
    assert retrieval["hybrid"]["mrr@10"] >= max(retrieval["bm25"]["mrr@10"], retrieval["dense"]["mrr@10"])


def test_answer_gate(report):
    answers = report["answers"]
    assert answers["f1"] >= MIN_ANSWER_F1 and answers["em"] >= MIN_ANSWER_EM
    assert answers["sentence_hit"] >= MIN_SENTENCE_HIT
    assert answers["abstained_answerable"] <= MAX_ABSTAINED_ANSWERABLE
    assert answers["abstain_recall"] >= MIN_ABSTAIN_RECALL
    assert answers["answered_unanswerable"] <= MAX_ANSWERED_UNANSWERABLE
    assert 0.0 <= answers["em"] <= answers["f1"] <= 1.0


def test_report_shape(report):
    assert set(report) >= {"retrieval", "answers", "latency_ms", "questions"}
    assert set(report["retrieval"]["hybrid"]) == {"recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10"}
    assert {"em", "f1", "sentence_hit", "citation_accuracy", "abstain_precision", "abstain_recall",
            "answerable", "unanswerable"} <= set(report["answers"])
    question = report["questions"][0]
    assert {"id", "question", "gold", "predicted", "em", "f1", "first_relevant_rank"} <= set(question)
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]


def test_malformed_gold_names_the_line(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "q?", "answers": [], "source": null}\n{"id": "b", "question": 3}\n',
                    encoding="utf-8")
    with pytest.raises(GoldError, match=r"gold.jsonl:2: field 'question'"):
        load_gold(gold)
    gold.write_text("not json\n", encoding="utf-8")
    with pytest.raises(GoldError, match=r":1: not valid JSON"):
        load_gold(gold)


def test_ranking_metrics_by_hand():
    scores = ranking_metrics([False, True, False, True], total_relevant=2)
    assert scores["recall@1"] == 0.0 and scores["recall@3"] == 1.0
    assert scores["mrr@10"] == 0.5
    ideal = 1 + 1 / 1.584962500721156
    assert scores["ndcg@10"] == pytest.approx((1 / 1.584962500721156 + 1 / 2.321928094887362) / ideal)


def test_squad_metrics_match_the_official_script():
    from qa.reading.squad import best_over_gold

    assert best_over_gold("the Oracle", ["Oracle"]) == (1.0, 1.0)
    em, f1 = best_over_gold("Oracle Chairman Larry Ellison", ["Oracle"])
    assert em == 0.0 and f1 == pytest.approx(0.4)
    assert best_over_gold("", []) == (1.0, 1.0)
    assert best_over_gold("anything", []) == (0.0, 0.0)


def _squad_file(path, version: str, impossible: bool):
    import json

    qas = [{"id": "q1", "question": "When did the bridge open?", "answers": [{"text": "1932", "answer_start": 30}]}]
    if impossible:
        qas.append({"id": "q2", "question": "Who painted the bridge?", "answers": [], "is_impossible": True})
    data = {"version": version, "data": [{"title": "Harbour_Bridge", "paragraphs": [
        {"context": "The harbour bridge opened in 1932 after eight years of construction by Dorman Long.", "qas": qas},
        {"context": "The city museum holds a collection of ship models and old sea charts.", "qas": []},
    ]}]}
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("version, impossible", [("v2.0", True), ("1.1", False)])
def test_squad_script_runs_the_real_pipeline(tmp_path, version, impossible):
    from eval.open_squad import evaluate_squad
    from qa.api import QA
    from qa.reading.squad import load_squad

    path = tmp_path / "mini.json"
    _squad_file(path, version, impossible)
    articles, questions, _ = load_squad(path)
    assert [a.source for a in articles] == ["Harbour_Bridge#0", "Harbour_Bridge#1"]
    report = evaluate_squad(QA(articles, tmp_path / "index"), questions, ["bm25", "hybrid"], show_progress=False)
    assert report["retrieval"]["bm25"]["recall@1"] == 1.0
    assert set(report["answers"]) >= {"em", "f1", "has_ans_em", "has_ans_f1", "no_ans_accuracy"}
    assert (report["answers"]["no_ans_accuracy"] is None) == (not impossible)
    assert [q["id"] for q in report["questions"]] == [q.id for q in questions]
