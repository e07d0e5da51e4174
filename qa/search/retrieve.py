"""Sparse (BM25, qa/search/bm25.py) and dense (FAISS) retrieval, fused into one ranked list of passages,
read only from the articles a question is scoped to (dates, paths)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from qa.errors import QuestionError
from qa.search.bm25 import tokenize

RRF_K = 60
CANDIDATE_DEPTH = 50
QUERY_CACHE_SIZE = 16
RETRIEVERS = ("hybrid", "bm25", "dense")
FUSIONS = ("rrf", "weighted")
# Min-max normalized interpolation beat plain RRF (k=60), weighted RRF and other alphas on both
# eval/gold.jsonl and SQuAD (eval/fusion_ablation.py; figures in eval/README.md).
DEFAULT_FUSION = "weighted"
DEFAULT_ALPHA = 0.4


DATE_BOUND = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
"""--since/--until: a year, a month or a day, compared with as much of an article's date."""


@dataclass(frozen=True)
class Retrieval:
    """Which passages may be read and how they are ranked; the CLI, chat and the server build one,
    the API takes it."""

    retriever: str = "hybrid"
    fusion: str = DEFAULT_FUSION
    alpha: float = DEFAULT_ALPHA  # weight of the dense score in weighted fusion
    depth: int = CANDIDATE_DEPTH  # candidates each retriever contributes before fusion
    since: str | None = None  # only articles dated on or after this (YYYY, YYYY-MM or YYYY-MM-DD)
    until: str | None = None  # only articles dated on or before this
    sources: tuple[str, ...] = ()  # only articles whose path in the corpus matches one of these globs

    def __post_init__(self):
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {self.retriever!r}; choose one of {', '.join(RETRIEVERS)}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")
        for name, bound in (("since", self.since), ("until", self.until)):
            if bound is not None and not DATE_BOUND.fullmatch(bound):
                raise QuestionError(f"--{name} {bound!r} is not a date; give YYYY, YYYY-MM or YYYY-MM-DD")

    @property
    def scoped(self) -> bool:
        return bool(self.since or self.until or self.sources)

    def admits(self, source: str, date: str | None) -> bool:
        """Whether an article may be read. With --since or --until, an article with no known date
        may not: nothing says it lies in the range."""
        if self.sources and not any(fnmatch.fnmatchcase(source, pattern) for pattern in self.sources):
            return False
        if self.since or self.until:
            if not date:
                return False
            if self.since and date[: len(self.since)] < self.since:
                return False
            if self.until and date[: len(self.until)] > self.until:
                return False
        return True


@dataclass
class Hit:
    """One retrieved passage and why: its fused score and each retriever's rank (1-based) and score."""

    passage_id: int
    score: float
    bm25_rank: int | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    dense_score: float | None = None


class SearchIndex(Protocol):
    """What a retriever searches: the index files (qa.index.store) or a Milvus collection (qa.backends.milvus.backend).
    Both return (passage id, score) pairs, best first, only passages that share a term with the
    query for the sparse search, and only passages of the articles `within` names when it is given."""

    size: int

    def articles(self) -> list[tuple[str, str | None]]: ...  # (source, date) of every article indexed

    def sparse_search(self, terms: list[str], depth: int, within: frozenset[str] | None = None) -> list[tuple[int, float]]: ...

    def dense_search(self, vector: np.ndarray, depth: int, within: frozenset[str] | None = None) -> list[tuple[int, float]]: ...


def top_scores(scores: np.ndarray, depth: int) -> list[tuple[int, float]]:
    """The `depth` best positive scores of a score per passage, ties in passage order."""
    matched = np.flatnonzero(scores > 0)
    order = matched[np.argsort(-scores[matched], kind="stable")][:depth]
    return [(int(i), float(scores[i])) for i in order]


@dataclass
class Retriever:
    """Searches one index. `embed_query` is called only when dense scores are needed."""

    index: SearchIndex
    embed_query: Callable[[str], np.ndarray]
    query_cache: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.index.size

    def within(self, retrieval: Retrieval) -> frozenset[str] | None:
        """The articles `retrieval` lets a query read (None: all); none at all is the user's error."""
        if not retrieval.scoped:
            return None
        indexed = self.index.articles()
        admitted = frozenset(source for source, date in indexed if retrieval.admits(source, date))
        if not admitted:
            asked = ", ".join(f"--{name} {value}" for name, value in (("since", retrieval.since), ("until", retrieval.until))
                              if value) + "".join(f" --source {pattern}" for pattern in retrieval.sources)
            dated = sum(1 for _, date in indexed if date)
            raise QuestionError(f"no indexed article matches {asked.strip()} ({len(indexed)} articles, {dated} with a date)")
        return admitted

    def bm25(self, query: str, depth: int = CANDIDATE_DEPTH, within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        terms = tokenize(query)
        if not terms or not self.size:
            return []
        return self.index.sparse_search(terms, depth, within)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's vector, remembered for the last few queries (ask embeds it for two uses)."""
        if query not in self.query_cache:
            if len(self.query_cache) >= QUERY_CACHE_SIZE:
                self.query_cache.pop(next(iter(self.query_cache)))
            self.query_cache[query] = np.asarray(self.embed_query(query), dtype=np.float32).reshape(1, -1)
        return self.query_cache[query]

    def dense(self, query: str, depth: int = CANDIDATE_DEPTH, within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        if not self.size or not query.strip():
            return []
        return self.index.dense_search(self.query_vector(query), min(depth, self.size), within)

    def search(self, query: str, k: int = 10, retrieval: Retrieval = Retrieval()) -> list[Hit]:
        depth = max(retrieval.depth, k)
        within = self.within(retrieval)
        sparse = self.bm25(query, depth, within) if retrieval.retriever in ("bm25", "hybrid") else []
        dense = self.dense(query, depth, within) if retrieval.retriever in ("dense", "hybrid") else []
        if retrieval.retriever == "bm25":
            fused = {i: s for i, s in sparse}
        elif retrieval.retriever == "dense":
            fused = {i: s for i, s in dense}
        elif retrieval.fusion == "rrf":
            fused = reciprocal_rank_fusion([sparse, dense])
        else:
            fused = weighted_fusion(sparse, dense, retrieval.alpha)
        hits = {i: Hit(i, score) for i, score in fused.items()}
        for rank, (i, score) in enumerate(sparse, 1):
            hits[i].bm25_rank, hits[i].bm25_score = rank, score
        for rank, (i, score) in enumerate(dense, 1):
            hits[i].dense_rank, hits[i].dense_score = rank, score
        ranked = sorted(hits.values(), key=lambda h: (-h.score, h.passage_id))
        return ranked[:k]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[tuple[int, float]]], k: int = RRF_K,
                           weights: Sequence[float] | None = None) -> dict[int, float]:
    """sum over rankings of weight / (k + rank), ranks 1-based (Cormack et al. 2009)."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings)):
        for rank, (i, _) in enumerate(ranking, 1):
            fused[i] = fused.get(i, 0.0) + weight / (k + rank)
    return fused


def _min_max(ranking: Sequence[tuple[int, float]]) -> dict[int, float]:
    if not ranking:
        return {}
    values = [s for _, s in ranking]
    low, high = min(values), max(values)
    span = high - low
    return {i: (s - low) / span if span > 0 else 1.0 for i, s in ranking}


def weighted_fusion(sparse: Sequence[tuple[int, float]], dense: Sequence[tuple[int, float]],
                    alpha: float) -> dict[int, float]:
    """alpha * dense + (1 - alpha) * bm25, each min-max normalized over its candidates (absent = 0)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    s, d = _min_max(sparse), _min_max(dense)
    return {i: alpha * d.get(i, 0.0) + (1 - alpha) * s.get(i, 0.0) for i in set(s) | set(d)}
