"""SQuAD v1.1/v2.0 files as a corpus (one article per paragraph) and questions, and SQuAD's answer metrics.

Used by eval/squad.py to score the pipeline and by qa/fit_answer.py to fit the answerer.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from qa.answer import normalize
from qa.errors import QAError
from qa.ingest import Article, article_from_text


@dataclass
class SquadQuestion:
    id: str
    question: str
    answers: list[str]  # empty when the paragraph does not answer it (v2.0)
    source: str  # "<title>#<paragraph index>"


def load_squad(path: Path) -> tuple[list[Article], list[SquadQuestion], str]:
    """(articles, questions, version) of a SQuAD JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        version = str(data.get("version", "1.1"))
        articles, questions = [], []
        for entry in data["data"]:
            title = entry["title"].replace("_", " ")
            for number, paragraph in enumerate(entry["paragraphs"]):
                source = f"{entry['title']}#{number}"
                articles.append(article_from_text(source, paragraph["context"], title=title))
                for qa in paragraph["qas"]:
                    answers = [] if qa.get("is_impossible") else [a["text"] for a in qa["answers"]]
                    questions.append(SquadQuestion(qa["id"], qa["question"], answers, source))
    except OSError as exc:
        raise QAError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise QAError(f"{path} is not a SQuAD v1.1/v2.0 file ({type(exc).__name__}: {exc})") from None
    return articles, questions, version


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
