"""BM25 for the sparse half of retrieval: its terms and its two scorers.

Terms: Unicode words, lowercased, curly apostrophes folded, a trailing possessive "'s" dropped,
English stopwords removed, and a light stemmer applied (`stem`: plurals, irregular past forms,
-ing/-ed, a final e). Each choice was measured on eval/gold.jsonl and SQuAD (see eval/README.md).
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

import numpy as np

from qa.corpus import wordlists

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
