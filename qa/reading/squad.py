"""Question-answer data: SQuAD v1.1/v2.0 files (one article per paragraph), gold JSON lines, SQuAD's metrics.

Used by eval/open_squad.py to score the pipeline and by training/ to train and calibrate the reader.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from qa.corpus.ingest import Article, article_from_text
from qa.errors import QAError
from qa.reading.answer import normalize


@dataclass
class SquadQuestion:
    id: str
    question: str
    answers: list[str]  # empty when the paragraph does not answer it (v2.0)
    source: str  # "<title>#<paragraph index>"


@dataclass
class SquadParagraph:
    title: str
    number: int
    context: str
    questions: list[tuple[str, str, list[tuple[int, str]]]]  # (id, question, [(answer start, answer text)])


def squad_paragraphs(path: Path) -> tuple[list[SquadParagraph], str]:
    """(paragraphs, version) of a SQuAD JSON file, answers with their character offsets."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        version = str(data.get("version", "1.1"))
        paragraphs = []
        for article, entry in enumerate(data["data"]):
            # COVID-QA's articles have no title: its document id, else the article's place, names it
            title = entry.get("title") or str(entry["paragraphs"][0].get("document_id", f"{path.stem}-{article}"))
            for number, paragraph in enumerate(entry["paragraphs"]):
                questions = [(qa["id"], qa["question"], [] if qa.get("is_impossible") else
                              [(int(a["answer_start"]), a["text"]) for a in qa["answers"]])
                             for qa in paragraph["qas"]]
                paragraphs.append(SquadParagraph(title, number, paragraph["context"], questions))
    except OSError as exc:
        raise QAError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise QAError(f"{path} is not a SQuAD v1.1/v2.0 file ({type(exc).__name__}: {exc})") from None
    return paragraphs, version


def trained_titles(run: dict) -> set[str]:
    """The article titles a reader was trained on, from its training record (run.json, or the card's
    `training`): those it lists, else those of its data files less the titles it held out."""
    if "trained_titles" in run:
        return set(run["trained_titles"])
    held = set(run["held_out_titles"])
    return {p.title for path in run["data"] if Path(path).is_file() for p in squad_paragraphs(Path(path))[0]} - held


def load_squad(path: Path) -> tuple[list[Article], list[SquadQuestion], str]:
    """(articles, questions, version) of a SQuAD JSON file."""
    paragraphs, version = squad_paragraphs(path)
    articles, questions = [], []
    for paragraph in paragraphs:
        source = f"{paragraph.title}#{paragraph.number}"
        articles.append(article_from_text(source, paragraph.context, title=paragraph.title.replace("_", " ")))
        for qid, text, answers in paragraph.questions:
            questions.append(SquadQuestion(qid, text, [a for _, a in answers], source))
    return articles, questions, version


RIGHT_F1 = 0.5
"""An answer counts as right (for calibration, best guesses and answer recall@k) from this F1 with a gold answer."""


CONFIDENCE_BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def calibration_table(judged: Iterable[tuple[float, bool]]) -> list[dict]:
    """How often answers were right at each confidence: (confidence, right) pairs in buckets of 0.2."""
    judged = list(judged)
    table = []
    for low, high in zip(CONFIDENCE_BUCKETS, CONFIDENCE_BUCKETS[1:]):
        inside = [right for confidence, right in judged if low <= confidence < high or (high == 1.0 and confidence >= 1.0)]
        if inside:
            table.append({"confidence": f"{low:.1f}-{high:.1f}", "questions": len(inside),
                          "right": round(sum(inside) / len(inside), 4)})
    return table


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def f1(prediction: str, gold: str) -> float:
    """Token F1 as the official SQuAD script computes it (empty vs empty counts as 1)."""
    pred_tokens, gold_tokens = normalize(prediction).split(), normalize(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_gold(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) against the best-matching gold answer; no gold answer means "" is right."""
    golds = list(golds) or [""]
    return max(exact_match(prediction, g) for g in golds), max(f1(prediction, g) for g in golds)


REQUIRED = {"id": str, "question": str, "answers": list}


class GoldError(QAError):
    """A gold file that cannot be used; the message names the line."""


def load_gold(path: Path) -> list[dict]:
    """Gold records, validated; a bad line is reported by its number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GoldError(f"cannot read gold file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise GoldError(f"gold file {path} is not UTF-8") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise GoldError(f"{path}:{number}: expected a JSON object")
        for key, kind in REQUIRED.items():
            if not isinstance(record.get(key), kind):
                raise GoldError(f"{path}:{number}: field {key!r} missing or not a {kind.__name__}")
        if not all(isinstance(a, str) for a in record["answers"]):
            raise GoldError(f"{path}:{number}: 'answers' must be a list of strings")
        if record["answers"] and not isinstance(record.get("source"), str):
            raise GoldError(f"{path}:{number}: an answerable question needs its 'source' file")
        records.append(record)
    if not records:
        raise GoldError(f"gold file {path} holds no questions")
    return records
