"""Questions of a held-out SQuAD-format file asked end to end, as rows to fit the reader's confidence on.

Each file is one kind of text (Wikipedia, product reviews, ...). Its questions are asked as `qa ask`
would (hybrid retrieval, top 5 passages, the reader of qa/reading/reader.safetensors) and come in three kinds:
- answerable: asked of all its paragraphs;
- adversarial: SQuAD 2.0's unanswerable questions, written against a paragraph that almost answers;
- absent: questions asked of a corpus without their article (the paragraphs of the other fold of
  titles), the way a question about something the user's articles never mention is asked.
A row holds what the confidence is computed from (qa/answer.span_evidence: margin, lead, agreement),
whether the best span is right, and whether a right answer is among the three best distinct spans.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from qa.api import QA
from qa.reading.answer import best_per_passage, distinct_spans, read_spans, span_evidence
from qa.reading.read import Calibration, OnnxReader
from qa.reading.squad import RIGHT_F1, best_over_gold, load_squad

RUNNERS_UP = 3  # answer recall@3: a right answer among the three best distinct spans
KEPT_SPANS = 5  # distinct spans kept per row, so that rules over them can be compared without asking again


def title_folds(titles) -> list[set[str]]:
    ordered = sorted(set(titles))
    return [set(ordered[0::2]), set(ordered[1::2])]


def ask_all(qa: QA, reader: OnnxReader, questions, data: str, absent: bool = False) -> list[dict]:
    rows = []
    for number, q in enumerate(questions, 1):
        began = time.perf_counter()
        _, passages = qa.passages_for(q.question)
        found = read_spans(q.question, passages, reader)
        ranked = distinct_spans(found, passages, KEPT_SPANS)
        texts = [passages[s.passage].text[s.start : s.end] for s in ranked]
        gold = [] if absent else q.answers
        scores = [best_over_gold(text, gold) if gold else (0.0, 0.0) for text in texts] or [(0.0, 0.0)]
        readings = best_per_passage(found, len(passages))
        evidence = span_evidence(ranked[0], ranked[1:], readings, passages) if ranked else None
        kind = "absent" if absent else "answerable" if q.answers else "adversarial"
        rows.append({"data": data, "id": q.id, "title": q.source.split("#")[0], "kind": kind,
                     "prediction": texts[0] if texts else "",
                     "margin": evidence.margin if evidence else -50.0, "lead": evidence.lead if evidence else 0.0,
                     "agreement": evidence.agreement if evidence else 0, "em": scores[0][0], "f1": scores[0][1],
                     "right_in_top3": any(f1 >= RIGHT_F1 for _, f1 in scores[:RUNNERS_UP]),
                     "spans": [{"text": t, "margin": round(s.margin, 4), "passage": s.passage, "f1": round(f1, 4)}
                               for t, s, (_, f1) in zip(texts, ranked, scores)],
                     "passage_margins": [None if r is None else round(r.margin, 4) for r in readings],
                     "ms": round((time.perf_counter() - began) * 1000, 1)})
        if number % 100 == 0:
            print(f"{data}: {number}/{len(questions)} asked", flush=True)
    return rows


def file_rows(path: Path, reader_folder: Path, rank_penalty: float, sample: int | None, absent: int,
              seed: int, early_margin: float | None = None) -> list[dict]:
    """The rows of one file: `sample` of its questions asked of it all, `absent` asked without their article."""
    articles, questions, _ = load_squad(path)
    folds = title_folds(q.source.split("#")[0] for q in questions)
    absent_questions = random.Random(seed).sample(questions, min(absent, len(questions)))
    if sample and sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    reader = OnnxReader(reader_folder, Calibration(1.0, 0.0, 0.0, rank_penalty, early_margin=early_margin))
    with tempfile.TemporaryDirectory() as index:
        qa = QA(articles, Path(index) / "all")
        qa.ensure_index()
        rows = ask_all(qa, reader, questions, path.stem)
        for number, fold in enumerate(folds):
            others = [a for a in articles if a.source.split("#")[0] not in fold]
            qa = QA(others, Path(index) / f"without-{number}")
            qa.ensure_index()
            rows += ask_all(qa, reader, [q for q in absent_questions if q.source.split("#")[0] in fold], path.stem,
                            absent=True)
    return rows
