"""BM25 as sparse vectors, for a search engine that ranks by inner product (Milvus): the product of
a passage's weights and a question's is the score the file backend's BM25 gives (qa/search/bm25.py).

    score = sum over the question's terms t of idf(t) * c * tf / (tf + k1 (1 - b + b dl / avgdl))

with c = k1 + 1 and rank-bm25's idf up to BM25S_ABOVE passages (BM25Okapi, as the file
backend keeps it), c = 1 and Robertson's idf clipped at 0 above (bm25s). A passage carries the tf
part, a question idf(t) * c per occurrence of t, so the idf a question is scored with is always
the collection's current one; only avgdl is fixed when the weights are written (see AVGDL_DRIFT).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from qa.search.bm25 import BM25_B, BM25_K1, BM25S_ABOVE, IDF_FLOOR

OKAPI_EPSILON = 0.25  # rank-bm25's default: a term in over half the passages gets 0.25 * mean idf
PLACEHOLDER = {0: 1.0}
"""The weights of a passage without terms: Milvus wants one nonzero weight, and no question has
dimension 0."""
AVGDL_DRIFT = 0.01
"""Every passage's weights are rewritten once the average passage length has moved by more than
this fraction from the one they were written with; below it a score moves by well under 1%."""


def passage_weights(counts: Counter, avgdl: float) -> dict[str, float]:
    """Each term's weight in a passage whose terms occur `counts` times."""
    length = sum(counts.values())
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / avgdl) if avgdl else BM25_K1
    return {term: tf / (tf + norm) for term, tf in counts.items()}


@dataclass
class Stats:
    """A collection's BM25 statistics, kept up to date as passages come and go: counts, and every
    term's sparse dimension and document frequency."""

    passages: int = 0
    total_length: int = 0
    avgdl: float = 0.0  # the average the stored weights were computed with
    next_term: int = 1  # dimension 0 is the placeholder of passages without terms
    terms: dict[str, list[int]] = field(default_factory=dict)  # term -> [dimension, document frequency]
    changed: set[str] = field(default_factory=set)

    def add(self, terms: list[str], sign: int) -> None:
        self.passages += sign
        self.total_length += sign * len(terms)
        for term in set(terms):
            entry = self.terms.get(term)
            if entry is None:
                entry = self.terms[term] = [self.next_term, 0]
                self.next_term += 1
            entry[1] += sign
            self.changed.add(term)

    def weights(self, terms: list[str]) -> dict[int, float]:
        return {self.terms[term][0]: weight for term, weight in passage_weights(Counter(terms), self.avgdl).items()}


def okapi_idf(df: int, passages: int, average_idf: float) -> float:
    """rank-bm25's BM25Okapi idf (written as it computes it), floored as qa.search.bm25.OkapiBM25 does."""
    idf = math.log(passages - df + 0.5) - math.log(df + 0.5)
    return max(idf if idf >= 0 else OKAPI_EPSILON * average_idf, IDF_FLOOR)


def robertson_idf(df: int, passages: int) -> float:
    """bm25s's Robertson idf, which it clips at 0."""
    inner = (passages - df + 0.5) / (df + 0.5)
    return math.log(inner) if inner > 1 else 0.0


def corpus_statistics(stats: Stats) -> dict:
    """What questions are weighted with, saved with the collection."""
    n = stats.passages
    average = 0.0
    if 0 < n <= BM25S_ABOVE and stats.terms:
        average = sum(math.log(n - df + 0.5) - math.log(df + 0.5) for _, df in stats.terms.values()) / len(stats.terms)
    return {"passages": n, "total_length": stats.total_length, "avgdl": stats.avgdl,
            "next_term": stats.next_term, "average_idf": average}


def query_weights(found: dict[str, tuple[int, int]], counts: Counter, statistics: dict) -> dict[int, float]:
    """A question's sparse vector: `found` maps its terms that the collection knows to their
    (dimension, document frequency), `counts` how often each occurs in the question."""
    n = statistics["passages"]
    weights: dict[int, float] = {}
    for term, (dimension, df) in found.items():
        if n <= BM25S_ABOVE:
            weight = okapi_idf(df, n, statistics["average_idf"]) * (BM25_K1 + 1)
        else:
            weight = robertson_idf(df, n)
        if weight > 0:
            weights[dimension] = weights.get(dimension, 0.0) + counts[term] * weight
    return weights
