"""Sparse (BM25) and dense (FAISS) retrieval, fused into one ranked list of passages.

BM25 tokenizer: Unicode words, lowercased, curly apostrophes folded, a trailing possessive "'s"
dropped, English stopwords removed, and a light stemmer applied (`stem`: plurals, irregular past
forms, -ing/-ed, a final e). Each choice was measured on eval/gold.jsonl and SQuAD (see
eval/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from qa import wordlists

RRF_K = 60
CANDIDATE_DEPTH = 50
QUERY_CACHE_SIZE = 16
RETRIEVERS = ("hybrid", "bm25", "dense")
FUSIONS = ("rrf", "weighted")
# Min-max normalized interpolation beat plain RRF (k=60), weighted RRF and other alphas on both
# eval/gold.jsonl and SQuAD (eval/fusion_ablation.py; figures in eval/README.md).
DEFAULT_FUSION = "weighted"
DEFAULT_ALPHA = 0.4


@dataclass(frozen=True)
class Retrieval:
    """How passages are ranked; the CLI, chat and the server build one, the API takes it."""

    retriever: str = "hybrid"
    fusion: str = DEFAULT_FUSION
    alpha: float = DEFAULT_ALPHA  # weight of the dense score in weighted fusion
    depth: int = CANDIDATE_DEPTH  # candidates each retriever contributes before fusion

    def __post_init__(self):
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {self.retriever!r}; choose one of {', '.join(RETRIEVERS)}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")


STOPWORDS = wordlists.word_set("stopwords.txt")
_TOKEN = re.compile(r"\w+(?:['’]\w+)*")


def plural_stem(word: str) -> str:
    """Harman's S-stemmer: conflates plurals without touching other word forms."""
    if len(word) > 3 and word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if len(word) > 2 and word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


# Past forms a question rarely shares with its answer's sentence ("Who built ..." / "was built by").
_IRREGULAR_PAST = wordlists.forms_to_word("irregular_past.txt")


def stem(word: str) -> str:
    """A light English stemmer: plurals (the S-stemmer), irregular past forms, -ing and -ed, then a
    final e, so that "built" meets "build" and "approved" meets "approves"; nothing else is cut.
    Measured against the S-stemmer alone in eval/tokenizer_ablation.py."""
    word = plural_stem(word)
    if word in _IRREGULAR_PAST:
        word = _IRREGULAR_PAST[word]
    else:
        for suffix in ("ing", "ed"):
            root = word[: -len(suffix)]
            if word.endswith(suffix) and len(root) >= 3 and not word.endswith("eed") and any(c in "aeiouy" for c in root):
                word = root[:-1] if len(root) > 3 and root[-1] == root[-2] and root[-1] not in "lsz" else root
                break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def words(text: str) -> list[str]:
    """Lowercased word tokens with apostrophes folded and possessives dropped."""
    out = []
    for token in _TOKEN.findall(text.lower()):
        token = token.replace("’", "'")
        if token.endswith("'s"):
            token = token[:-2]
        out.append(token)
    return out


def tokenize(text: str, stopwords: bool = True, stemmer: Callable[[str], str] | None = stem) -> list[str]:
    """BM25 terms of `text` (see the module docstring for the rules)."""
    tokens = words(text)
    if stopwords:
        tokens = [t for t in tokens if t not in STOPWORDS]
    if stemmer is not None:
        tokens = [stemmer(t) for t in tokens]
    return tokens


BM25S_ABOVE = 20_000
"""rank-bm25 scores every document in a Python loop per query term (34 ms at 10k passages, 323 ms
at 100k); above this many passages the index stores bm25s' precomputed sparse scores instead."""
BM25_K1, BM25_B = 1.5, 0.75
IDF_FLOOR = 0.05


class OkapiBM25:
    """rank-bm25's BM25Okapi, built from the stored tokens when the index is loaded."""

    def __init__(self, tokens: list[list[str]]):
        from rank_bm25 import BM25Okapi

        self.model = BM25Okapi(tokens, k1=BM25_K1, b=BM25_B) if tokens else None
        if self.model:
            # In a small corpus a term in half the documents gets idf 0 and one in more a tiny
            # epsilon; floored, every passage sharing a term with the query stays a candidate.
            for term, idf in self.model.idf.items():
                self.model.idf[term] = max(idf, IDF_FLOOR)

    def get_scores(self, terms: list[str]) -> np.ndarray:
        return np.asarray(self.model.get_scores(terms), dtype=np.float64) if self.model else np.zeros(0)


class SparseBM25:
    """bm25s (Robertson idf, same k1 and b): scores precomputed at build time into a sparse matrix."""

    def __init__(self, model):
        self.model = model
        self.vocab = model.vocab_dict
        self.num_docs = int(model.scores["num_docs"])

    @classmethod
    def build(cls, tokens: Iterable[list[str]]) -> "SparseBM25":
        """Each passage's tokens are held as int32 ids while the index is built: for 100k passages
        a few tens of MB instead of the half GB of their token strings."""
        import bm25s

        vocab: dict[str, int] = {}
        ids = [np.array([vocab.setdefault(t, len(vocab)) for t in passage], dtype=np.int32) for passage in tokens]
        model = bm25s.BM25(method="robertson", k1=BM25_K1, b=BM25_B)
        model.index((ids, vocab), show_progress=False)
        return cls(model)

    @classmethod
    def load(cls, folder) -> "SparseBM25":
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=True, allow_pickle=False))

    def save(self, folder) -> None:
        self.model.save(str(folder), show_progress=False, allow_pickle=False)

    def get_scores(self, terms: list[str]) -> np.ndarray:
        known = [t for t in terms if t in self.vocab]
        if not known:
            return np.zeros(self.num_docs)
        return np.asarray(self.model.get_scores(known), dtype=np.float64)


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
    """What a retriever searches: the index files (qa.store) or a Milvus collection (qa.milvus).
    Both return (passage id, score) pairs, best first, only passages that share a term with the
    query for the sparse search."""

    size: int

    def sparse_search(self, terms: list[str], depth: int) -> list[tuple[int, float]]: ...

    def dense_search(self, vector: np.ndarray, depth: int) -> list[tuple[int, float]]: ...


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

    def bm25(self, query: str, depth: int = CANDIDATE_DEPTH) -> list[tuple[int, float]]:
        terms = tokenize(query)
        if not terms or not self.size:
            return []
        return self.index.sparse_search(terms, depth)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's vector, remembered for the last few queries (ask embeds it for two uses)."""
        if query not in self.query_cache:
            if len(self.query_cache) >= QUERY_CACHE_SIZE:
                self.query_cache.pop(next(iter(self.query_cache)))
            self.query_cache[query] = np.asarray(self.embed_query(query), dtype=np.float32).reshape(1, -1)
        return self.query_cache[query]

    def dense(self, query: str, depth: int = CANDIDATE_DEPTH) -> list[tuple[int, float]]:
        if not self.size or not query.strip():
            return []
        return self.index.dense_search(self.query_vector(query), min(depth, self.size))

    def search(self, query: str, k: int = 10, retrieval: Retrieval = Retrieval()) -> list[Hit]:
        depth = max(retrieval.depth, k)
        sparse = self.bm25(query, depth) if retrieval.retriever in ("bm25", "hybrid") else []
        dense = self.dense(query, depth) if retrieval.retriever in ("dense", "hybrid") else []
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
