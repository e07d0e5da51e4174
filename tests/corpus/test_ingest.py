from __future__ import annotations

import os

import pytest

from qa.corpus.chunk import chunk_article
from qa.corpus.ingest import (
    CorpusError,
    Unreadable,
    article_from_text,
    article_of,
    list_corpus,
    read_corpus,
    text_of,
)
from qa.corpus.metadata import body_span, byline_span, dateline_span, find_date
from qa.corpus.webpage import html_to_text
from tests.conftest import SEEDS

FURNITURE_ARTICLE = (
    "Acme Corp said on Tuesday it will open a new factory in Ohio, hiring about 400 workers by next year.\n\n"
    "The plant will make batteries for electric buses, the company said in a statement to investors.\n\n"
    "Business\n\nMore Stories\n\nTen Gadgets That Changed Everything\nWhy Cities Are Going Electric\n\n"
    "Leave a Reply\n\nYour email address will not be published. Required fields are marked *"
)


def test_seeds_listed_in_stable_order():
    sources = [f.source for f in list_corpus(SEEDS).files]
    assert sources == sorted(sources) and len(sources) == 3


def test_trailing_links_and_comment_form_are_cut_by_general_rules():
    article = article_from_text("a.txt", FURNITURE_ARTICLE)
    body = article.text[article.body_start : article.body_end]
    assert body.endswith("statement to investors.")
    assert "Leave a Reply" not in body and "Gadgets" not in body


def test_seed_furniture_never_reaches_a_passage():
    corpus = read_corpus(SEEDS)
    texts = " ".join(p.text for a in corpus.articles for p in chunk_article(a))
    for furniture in ("Articles You May Like", "Leave a Reply", "email address will not be published",
                      "TikTok Tango", "Maximize Your Social Media Impact"):
        assert furniture not in texts


def test_article_without_furniture_keeps_everything():
    text = "Short heading\n\nA complete sentence that is long enough to count as prose here.\n"
    assert body_span(text) == (0, len(text.rstrip()))


def test_title_and_date_from_leading_date_line_and_dateline():
    corpus = read_corpus(SEEDS)
    by_source = {a.source: a for a in corpus.articles}
    dated = by_source["003_033a1c9dbcb95f04.txt"]
    assert dated.date == "2024-06-13"
    assert not dated.title.lower().startswith("date")
    assert find_date("Title\n\nBy Someone 10:35 am Mar 2, 2021\n\nBody.") == "2021-03-02"
    assert find_date("No date in this one.") is None


def test_leading_date_field_is_metadata_not_body():
    text = "date 2021-03-02 Ferries resume\n\nThe harbour ferries resumed their winter timetable on Monday morning."
    article = article_from_text("a.txt", text)
    assert article.date == "2021-03-02"
    assert article.text[article.body_start :].startswith("Ferries resume")
    passages = chunk_article(article)
    assert passages and all("2021-03-02" not in p.text for p in passages)


@pytest.mark.parametrize("text, byline, dateline", [
    ("Title\n\nBy Akash Pandey 10:35 am Jun 13, 2024\n\nBody.", "Akash Pandey", "Jun 13, 2024"),
    ("By Tomas Reyes, Apr 2, 2025", "Tomas Reyes", "Apr 2, 2025"),
    ("By Tomas Reyes Apr 2, 2025", "Tomas Reyes", "Apr 2, 2025"),
    ("BY ANNA LEE and JOHN DOE | Reuters\n2025-01-09", "ANNA LEE and JOHN DOE", "2025-01-09"),
    ("By J. R. Smith and Ann-Marie O’Neil", "J. R. Smith and Ann-Marie O’Neil", None),
    ("By Monday, the company had sold more than half of the phones it made on March 3, 2020.", None, "March 3, 2020"),
    ("In a long first line the company said 2021-05-04 was the day it made its last phone.", None, None),
    ("By the numbers\n\nNo names here.", None, None),
    ("x" * 1000 + "\nBy Jane Roe, May 1, 2020", None, None),  # past the header
])
def test_byline_and_dateline_are_found_in_the_header_only(text, byline, dateline):
    spans = byline_span(text), dateline_span(text)
    assert [s and text[s[0] : s[1]] for s in spans] == [byline, dateline]


def test_html_is_reduced_to_visible_text_with_title():
    html = ("<html><head><title>Big News</title><style>p{}</style></head><body><nav>Home | About</nav>"
            "<h1>Big News</h1><p>First &amp; foremost, a fact.</p><script>var x=1;</script>"
            "<footer>Copyright</footer></body></html>")
    text, title = html_to_text(html)
    assert title == "Big News"
    assert "First & foremost, a fact." in text
    assert "var x" not in text and "Home | About" not in text and "Copyright" not in text


def test_bom_is_dropped_and_offsets_index_decoded_text(tmp_path):
    (tmp_path / "a.txt").write_bytes("\ufeffTitle\n\nBody text here.".encode("utf-8"))
    article = read_corpus(tmp_path).articles[0]
    assert article.text.startswith("Title") and article.title == "Title"
    assert text_of(tmp_path, "a.txt") == article.text


def test_bad_files_are_skipped_with_a_warning_naming_them(tmp_path):
    (tmp_path / "good.txt").write_text("Good article.\n\nIt has a sentence with enough words in it.", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    corpus = read_corpus(tmp_path)
    assert [a.source for a in corpus.articles] == ["good.txt"]
    warnings = " ".join(map(str, corpus.skipped))
    assert "latin1.txt" in warnings and "UTF-8" in warnings
    assert "binary.txt" in warnings and "empty.md" in warnings
    with pytest.raises(CorpusError, match="binary.txt"):
        read_corpus(tmp_path, strict=True)


def test_missing_empty_and_unsupported_corpus_errors(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        read_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no articles"):
        read_corpus(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no articles"):
        read_corpus(tmp_path)


def test_symlink_loop_and_odd_names(tmp_path):
    sub = tmp_path / "sub dir"
    sub.mkdir()
    (sub / "café news.txt").write_text("Title\n\nThe café opened on Monday in the old town.", encoding="utf-8")
    os.symlink(tmp_path, sub / "loop")
    corpus = read_corpus(tmp_path)
    assert [a.source for a in corpus.articles] == ["sub dir/café news.txt"]


def test_text_of_refuses_paths_outside_the_corpus(tmp_path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match="outside"):
        text_of(tmp_path, "../etc/passwd")


def test_an_article_is_found_again_in_a_folder_or_a_list_of_articles(tmp_path):
    (tmp_path / "a.txt").write_text("Title\n\nBy Ann Lee\n\nText of the article.", encoding="utf-8")
    assert article_of(tmp_path, "a.txt").text.startswith("Title")
    listed = [article_from_text("x.txt", "First article."), article_from_text("y.txt", "Second article.")]
    assert article_of(listed, "y.txt") is listed[1]
    with pytest.raises(CorpusError, match="not in the corpus"):
        article_of(listed, "z.txt")
    with pytest.raises(Unreadable, match="cannot read"):
        article_of(tmp_path, "gone.txt")


def test_links_leading_out_of_the_corpus_are_not_followed_unless_asked(tmp_path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir(), outside.mkdir()
    (corpus / "own.txt").write_text("Own\n\nThe corpus holds this article about the harbor.", encoding="utf-8")
    (outside / "secret.txt").write_text("Secret\n\nThe password is swordfish, said the admin.", encoding="utf-8")
    os.symlink(outside / "secret.txt", corpus / "secret-link.txt")
    os.symlink(outside, corpus / "outside-folder")
    os.symlink(corpus / "own.txt", corpus / "inside-link.txt")  # stays within the corpus: followed
    read = read_corpus(corpus)
    assert [a.source for a in read.articles] == ["inside-link.txt", "own.txt"]
    assert [s.source for s in read.skipped] == ["outside-folder", "secret-link.txt"]
    assert all("--follow-links" in s.reason for s in read.skipped)
    followed = read_corpus(corpus, follow_links=True)
    assert {a.source for a in followed.articles} == {"inside-link.txt", "own.txt", "secret-link.txt",
                                                     "outside-folder/secret.txt"}


def test_a_tree_thousands_of_levels_deep_is_walked(tmp_path):
    deepest = str(tmp_path)
    for _ in range(1100):  # os.makedirs and Path.mkdir(parents=True) themselves recurse too deep for this
        deepest = os.path.join(deepest, "d")
        os.mkdir(deepest)
    article = os.path.join(deepest, "deep.txt")
    with open(article, "w", encoding="utf-8") as handle:
        handle.write("Deep\n\nAn article at the bottom of a very deep tree.")
    try:
        files = list_corpus(tmp_path).files
        assert len(files) == 1 and files[0].source.endswith("d/deep.txt")
    finally:  # shutil.rmtree recurses as well: leave pytest a shallow folder
        os.remove(article)
        while deepest != str(tmp_path):
            os.rmdir(deepest)
            deepest = os.path.dirname(deepest)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_with_a_bom_are_read_with_true_offsets(tmp_path, encoding):
    text = "Café news\n\nThe café opened on Monday — with naïve pastries."
    bom = {"utf-16-be": "\ufeff", "utf-32-be": "\ufeff"}.get(encoding, "")  # the BE codecs write none
    (tmp_path / "a.txt").write_bytes((bom + text).encode(encoding))
    article = read_corpus(tmp_path).articles[0]
    assert article.text == text and article.title == "Café news"
    assert text_of(tmp_path, "a.txt") == text


def test_a_stray_nul_is_a_damaged_character_but_many_make_a_file_binary(tmp_path):
    body = "Title\n\n" + "word " * 2000
    (tmp_path / "good.txt").write_text("Good\n\nA good article with a sentence in it.", encoding="utf-8")
    (tmp_path / "stray.txt").write_bytes((body[:9000] + "\x00" + body[9000:]).encode("utf-8"))
    (tmp_path / "nuls.txt").write_bytes("Title\n\nword\x00 ".encode("utf-8") * 200)
    corpus = read_corpus(tmp_path)
    assert [a.source for a in corpus.articles] == ["good.txt", "stray.txt"]
    stray = corpus.articles[1]
    assert len(stray.text) == len(body) + 1 and stray.text[9000] == " "  # offsets stay those of the file
    assert text_of(tmp_path, "stray.txt") == stray.text
    assert [s.source for s in corpus.skipped] == ["nuls.txt"] and "binary" in corpus.skipped[0].reason
