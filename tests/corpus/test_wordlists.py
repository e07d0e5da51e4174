"""The word lists are data files whose hash every index records: an index built with other lists
is rebuilt, and a list is read as written (comments skipped, forms mapped to their word)."""

from __future__ import annotations

from qa.api import QA
from qa.corpus import chunk, wordlists
from qa.index import freshness, store
from qa.search import bm25
from qa.search.embed import DEFAULT_MODEL


def test_lists_are_read_from_their_files_comments_skipped(tmp_path, monkeypatch):
    (tmp_path / "verbs.txt").write_text("# a comment\n\nbuild built\n  go went gone \n", encoding="utf-8")
    monkeypatch.setattr(wordlists, "DATA", tmp_path)
    assert wordlists.entries("verbs.txt") == ["build built", "go went gone"]
    assert wordlists.forms_to_word("verbs.txt") == {"built": "build", "went": "go", "gone": "go"}
    assert wordlists.word_set("verbs.txt") == frozenset({"build built", "go went gone"})


def test_every_entry_is_one_lowercase_token_the_tokenizer_and_splitter_use():
    for name in wordlists.FILES:
        for line in wordlists.entries(name):
            assert line == line.lower() and all(word.strip() == word for word in line.split()), (name, line)
    assert bm25.STOPWORDS == wordlists.word_set("stopwords.txt")
    assert "the" in bm25.STOPWORDS and bm25.tokenize("the harbor") == ["harbor"]
    past = wordlists.forms_to_word("irregular_past.txt")
    assert past and all(bm25.stem(form) == bm25.stem(word) for form, word in past.items())
    assert chunk.split_sentences("Dr. Smith came. He left.") == [(0, 15), (16, 24)]


def test_the_signature_follows_the_lists_contents(tmp_path, monkeypatch):
    for name in wordlists.FILES:
        (tmp_path / name).write_text((wordlists.DATA / name).read_text(encoding="utf-8"), encoding="utf-8")
    shipped = wordlists.signature()
    monkeypatch.setattr(wordlists, "DATA", tmp_path)
    wordlists.signature.cache_clear()
    try:
        assert wordlists.signature() == shipped  # same entries, same hash
        with open(tmp_path / "stopwords.txt", "a", encoding="utf-8") as handle:
            handle.write("harbor\n")
        wordlists.signature.cache_clear()
        assert wordlists.signature() != shipped
    finally:
        wordlists.signature.cache_clear()


def test_an_index_built_with_other_word_lists_is_rebuilt(small, monkeypatch):
    corpus, index = small
    QA(corpus, index).build()
    assert store.load(index).manifest["tokenizer"] == freshness.tokenizer_params()
    monkeypatch.setattr(wordlists, "signature", lambda: "0" * 64)
    assert freshness.staleness(index, corpus, DEFAULT_MODEL) == "the tokenizer's word lists changed"
    report = QA(corpus, index).build()
    assert report.built and report.reason == "the tokenizer's word lists changed"
    assert report.embedded == report.passages  # sentences may be cut elsewhere: no vector is reused
