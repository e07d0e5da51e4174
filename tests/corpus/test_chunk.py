from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qa.corpus.chunk import MAX_WORDS, chunk_article, split_sentences
from qa.corpus.ingest import article_from_text, read_corpus
from tests.conftest import SEEDS


def test_every_seed_passage_reproduces_its_source_text():
    for article in read_corpus(SEEDS).articles:
        passages = chunk_article(article)
        assert passages
        for p in passages:
            assert article.text[p.start : p.end] == p.text
            assert (p.source, p.title, p.date) == (article.source, article.title, article.date)


def test_passages_are_whole_sentences_and_overlap_by_one():
    article = read_corpus(SEEDS).articles[1]
    sentences = split_sentences(article.text, article.body_start, article.body_end)
    starts, ends = {s for s, _ in sentences}, {e for _, e in sentences}
    passages = chunk_article(article)
    for p in passages:
        assert p.start in starts and p.end in ends
        assert len(p.text.split()) <= MAX_WORDS or p.text.count(". ") == 0
    for before, after in zip(passages, passages[1:]):
        shared = [s for s in sentences if s[0] >= after.start and s[1] <= before.end]
        assert len(shared) == 1


def test_sentence_splitter_keeps_abbreviations_and_numbers_together():
    text = "Dr. Smith paid $1.5 billion to Acme Inc. in the U.S. last year. Then he left! Did he?"
    sentences = [text[a:b] for a, b in split_sentences(text)]
    assert sentences == ["Dr. Smith paid $1.5 billion to Acme Inc. in the U.S. last year.", "Then he left!", "Did he?"]


def test_line_breaks_end_sentences_and_headings_stand_alone():
    text = "A heading\n\nFirst sentence here. Second one.\nAnother line"
    assert [text[a:b] for a, b in split_sentences(text)] == ["A heading", "First sentence here.", "Second one.", "Another line"]


def test_run_on_text_without_punctuation_is_cut_into_bounded_pieces():
    article = article_from_text("x.txt", " ".join(["word"] * 1000))
    passages = chunk_article(article)
    assert all(len(p.text.split()) <= 400 for p in passages)
    assert sum(1 for _ in passages) >= 3


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=600))
def test_offsets_hold_for_any_unicode_text(text):
    if not text.strip():
        return
    article = article_from_text("r.txt", text)
    spans = split_sentences(article.text, article.body_start, article.body_end)
    for a, b in spans:
        assert 0 <= a < b <= len(text)
        assert text[a:b] == text[a:b].strip()
    for p in chunk_article(article):
        assert text[p.start : p.end] == p.text
