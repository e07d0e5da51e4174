from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.errors import QuestionError
from qa.index.store import LoadedIndex
from qa.search.bm25 import plural_stem, stem, tokenize
from qa.search.retrieve import Retrieval, Retriever, reciprocal_rank_fusion, weighted_fusion


def test_tokenizer_folds_case_possessives_stopwords_and_plurals():
    assert tokenize("OpenAI's data centers") == ["openai", "data", "center"]
    assert tokenize("Who is the CEO?") == ["ceo"]
    assert tokenize("Who is the CEO?", stopwords=False) == ["who", "is", "the", "ceo"]
    assert plural_stem("companies") == "company" and plural_stem("glass") == "glass" and plural_stem("status") == "status"


@pytest.mark.parametrize("forms", [
    ("build", "builds", "building", "built"),
    ("approve", "approves", "approved", "approving"),
    ("stop", "stops", "stopped", "stopping"),
    ("write", "wrote", "written", "writing"),
    ("company", "companies"),
])
def test_stemmer_conflates_the_forms_of_a_word(forms):
    assert len({stem(f) for f in forms}) == 1


@pytest.mark.parametrize("word, expected", [
    ("glass", "glass"), ("status", "status"), ("called", "call"), ("need", "need"), ("string", "string"),
    ("king", "king"), ("added", "add"),
])
def test_stemmer_cuts_only_real_endings(word, expected):
    assert stem(word) == expected


@given(st.text(max_size=200))
def test_tokenizer_never_fails_and_yields_lowercase_words(text):
    for token in tokenize(text):
        assert token and token == token.lower() and not any(c.isspace() for c in token)


def test_rrf_uses_one_based_ranks_and_k_60():
    fused = reciprocal_rank_fusion([[(7, 9.0), (3, 1.0)], [(3, 0.9)]])
    assert fused[7] == pytest.approx(1 / 61)
    assert fused[3] == pytest.approx(1 / 62 + 1 / 61)


def test_weighted_fusion_min_max_normalizes_each_side():
    fused = weighted_fusion([(1, 10.0), (2, 5.0)], [(2, 0.9), (3, 0.1)], alpha=0.25)
    assert fused[1] == pytest.approx(0.75)
    assert fused[2] == pytest.approx(0.25)
    assert fused[3] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        weighted_fusion([], [], alpha=1.5)


class _FakeBM25:
    def __init__(self, scores):
        self.scores = np.array(scores, dtype=float)

    def get_scores(self, terms):
        return self.scores


def _retriever(bm25_scores, vectors):
    """A retriever over the file backend's search (store.LoadedIndex) of these scores and vectors."""
    import faiss

    dense = faiss.IndexFlatIP(vectors.shape[1])
    dense.add(vectors.astype(np.float32))
    index = LoadedIndex(folder=None, manifest={}, passages=[None] * len(bm25_scores), sparse=_FakeBM25(bm25_scores),
                        dense=dense, hold=None)
    return Retriever(index, lambda q: np.array([1.0, 0.0], np.float32))


def test_dense_handles_k_beyond_index_size():
    retriever = _retriever([0.0, 2.0], np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert [i for i, _ in retriever.dense("q", depth=50)] == [0, 1]


def test_hybrid_hits_carry_fused_and_per_retriever_ranks():
    retriever = _retriever([0.0, 2.0, 1.0], np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
    hits = retriever.search("some query", k=3, retrieval=Retrieval(fusion="rrf"))
    by_id = {h.passage_id: h for h in hits}
    assert by_id[0].bm25_rank is None and by_id[0].dense_rank == 1  # no term matched: not a BM25 candidate
    assert by_id[1].bm25_rank == 1 and by_id[1].dense_rank == 3
    assert by_id[2].bm25_rank == 2 and by_id[2].dense_rank == 2
    # 1/61 + 1/63 > 2/62 > 1/61
    assert [h.passage_id for h in hits] == [1, 2, 0]
    assert by_id[2].score == pytest.approx(2 / 62)
    for wrong in ({"retriever": "magic"}, {"fusion": "magic"}, {"alpha": 1.5}, {"depth": 0}):
        with pytest.raises(ValueError):
            Retrieval(**wrong)


def test_bm25s_ranks_like_rank_bm25_where_no_term_is_in_half_the_documents():
    from qa.search.bm25 import OkapiBM25, SparseBM25

    vocabulary = [f"w{i}" for i in range(300)]
    rng = np.random.default_rng(0)
    documents = [list(rng.choice(vocabulary, size=rng.integers(5, 40))) for _ in range(400)]
    okapi, sparse = OkapiBM25(documents), SparseBM25.build(documents)
    for query in (["w1", "w7"], ["w3"], ["w10", "w11", "w12"], ["w250", "w5", "nope"]):
        a, b = okapi.get_scores(query), sparse.get_scores(query)
        top_a = [i for i in np.argsort(-a, kind="stable")[:10] if a[i] > 0]
        top_b = [i for i in np.argsort(-b, kind="stable")[:10] if b[i] > 0]
        assert set(top_a) == set(top_b)


@pytest.mark.parametrize("scope, source, date, admitted", [
    ({"since": "2025-03"}, "a.html", "2025-03-01", True),
    ({"since": "2025-03"}, "a.html", "2025-02-28", False),
    ({"until": "2025"}, "a.html", "2025-12-31", True),
    ({"until": "2025-03-14"}, "a.html", "2025-03-15", False),
    ({"since": "2024", "until": "2024"}, "a.html", "2024-06-13", True),
    ({"since": "2024"}, "a.txt", None, False),  # no known date: nothing says it is in the range
    ({"sources": ("reuters/*",)}, "reuters/2024/a.html", None, True),  # * crosses folders
    ({"sources": ("reuters/*", "*.pdf")}, "ap/a.html", None, False),
    ({"sources": ("*.pdf",), "since": "2025"}, "r.pdf", "2025-01-02", True),
])
def test_a_scope_admits_articles_by_date_prefix_and_path_glob(scope, source, date, admitted):
    assert Retrieval(**scope).admits(source, date) is admitted


@pytest.mark.parametrize("bound", ["2025-3", "March 2025", "20250301", ""])
def test_a_scope_date_that_is_not_a_date_is_refused(bound):
    with pytest.raises(QuestionError, match="not a date"):
        Retrieval(since=bound)
