"""Files as people save them: news pages with their menus and footers, declared charsets, PDFs
(with a text layer, scanned, damaged), and files qa does not read, each said to the user."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qa.corpus import ingest
from qa.corpus.chunk import chunk_article
from qa.corpus.ingest import read_corpus, text_of
from qa.index import freshness
from qa.index.store import MANIFEST, current_generation
from qa.interface.cli import app
from qa.search.embed import DEFAULT_MODEL
from tests.pdf_files import write_pdf

runner = CliRunner()

ARTICLE = [
    "The Port Alder harbor authority on Friday approved plans for a new ferry terminal on the city's north quay, "
    "ending two years of debate over the waterfront.",
    "The terminal will be built by Nordvik Construction, which won the contract with a bid of 40 million euros, "
    "and should open in the spring of 2027.",
    "Harbor director Lena Voss said the terminal would double the number of daily crossings to the islands and "
    "take hundreds of cars off the coastal road every summer.",
]

NEWS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="{charset}">
<title>Harbor approves ferry terminal | Coastal Times</title>
<meta property="og:site_name" content="Coastal Times">
<meta name="author" content="Mara Lind">
<meta property="article:published_time" content="2025-03-14T09:30:00Z">
</head><body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li>
<li><a href="/login">Log In / Join Coastal Times</a></li></ul></nav></header>
<main><article>
<h1>Harbor approves “ferry terminal”</h1>
<p class="byline">By Mara Lind</p>
<p>{0}</p>
<aside class="related"><h3>Related coverage</h3><ul><li><a href="/a">Factbox: ferries of the north coast</a></li>
<li><a href="/b">Island towns count their summer visitors</a></li></ul></aside>
<p>{1}</p>
<p>{2}</p>
<div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on Twitter</a></div>
</article></main>
<footer><p>© 2025 Coastal Times Media. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>"""


def news_page(charset: str = "utf-8") -> bytes:
    return NEWS_PAGE.format(*ARTICLE, charset=charset).encode("utf-8" if charset == "utf-8" else "cp1252")


def test_a_news_page_keeps_its_article_and_drops_menus_related_links_share_buttons_and_footer(tmp_path):
    (tmp_path / "terminal.html").write_bytes(news_page())
    article = read_corpus(tmp_path).articles[0]
    body = article.text[article.body_start : article.body_end]
    for paragraph in ARTICLE:
        assert paragraph in body
    for boilerplate in ("Log In / Join", "Factbox", "Share on Facebook", "All rights reserved", "Privacy policy", "Sport"):
        assert boilerplate not in body
    assert (article.date, article.author, article.sitename) == ("2025-03-14", "Mara Lind", "Coastal Times")
    assert "Coastal Times" not in article.title and "ferry terminal" in article.title
    passages = chunk_article(article)
    assert passages and all(p.author == "Mara Lind" and p.sitename == "Coastal Times" for p in passages)
    assert all(text_of(tmp_path, "terminal.html")[p.start : p.end] == p.text for p in passages)


@pytest.mark.parametrize("declaration", ['<meta charset="windows-1252">',
                                         '<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">',
                                         '<?xml version="1.0" encoding="windows-1252"?>'])
def test_a_page_is_decoded_with_the_charset_it_declares(tmp_path, declaration):
    # Browsers read a page labelled ISO-8859-1 as windows-1252, whose curly quotes it then holds.
    page = news_page("windows-1252").replace(b'<meta charset="windows-1252">', b"")
    page = (page.replace(b"<head>", b"<head>" + declaration.encode()) if declaration.startswith("<meta")
            else declaration.encode() + b"\n" + page)
    (tmp_path / "terminal.html").write_bytes(page.replace(b"city's", "café’s".encode("cp1252")))
    article = read_corpus(tmp_path).articles[0]
    assert "café’s north quay" in article.text and "“ferry terminal”" in article.title


def test_a_page_with_a_stray_nul_is_read(tmp_path):
    page = news_page()
    (tmp_path / "terminal.html").write_bytes(page[:2000] + b"\x00" + page[2000:])
    assert ARTICLE[1] in read_corpus(tmp_path).articles[0].text


def test_a_pdf_is_read_page_by_page_with_its_metadata(tmp_path):
    write_pdf(tmp_path / "report.pdf", [["Harbor report", ARTICLE[0], ARTICLE[1]], [ARTICLE[2]]],
              title="Port Alder harbor report", author="Lena Voss", created="D:20250314093000")
    article = read_corpus(tmp_path).articles[0]
    assert (article.title, article.author, article.date) == ("Port Alder harbor report", "Lena Voss", "2025-03-14")
    assert article.page_starts is not None and len(article.page_starts) == 2
    passages = chunk_article(article, min_words=5, max_words=30)
    pages = {p.page for p in passages}
    assert pages == {1, 2}
    for passage in passages:
        assert text_of(tmp_path, "report.pdf")[passage.start : passage.end] == passage.text
        first, last = article.page_starts[passage.page - 1], (article.page_starts + [len(article.text)])[passage.page]
        assert first <= passage.start and passage.end <= last  # a passage never runs across pages
    assert any(ARTICLE[2] in p.text and p.page == 2 for p in passages)


def test_every_file_not_read_is_listed_with_its_reason(tmp_path):
    (tmp_path / "plain.txt").write_text("Harbor news\n\n" + " ".join(ARTICLE), encoding="utf-8")
    (tmp_path / "notes.md").write_text("# Notes\n\n" + ARTICLE[2], encoding="utf-8")
    (tmp_path / "page.html").write_bytes(news_page("windows-1252"))
    write_pdf(tmp_path / "report.pdf", [[ARTICLE[1]]])
    write_pdf(tmp_path / "scan.pdf", [[]])
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    (tmp_path / "legacy.txt").write_bytes("Caf\xe9 au lait in the harbor".encode("cp1252"))
    (tmp_path / "minutes.docx").write_bytes(b"PK\x03\x04 not read")
    corpus = read_corpus(tmp_path)
    assert [a.source for a in corpus.articles] == ["notes.md", "page.html", "plain.txt", "report.pdf"]
    reasons = {s.source: s.reason for s in corpus.skipped}
    assert set(reasons) == {"scan.pdf", "broken.pdf", "legacy.txt", "minutes.docx"}
    assert "no text layer" in reasons["scan.pdf"] and "not a readable PDF" in reasons["broken.pdf"]
    assert "UTF-8" in reasons["legacy.txt"] and "not a type qa reads" in reasons["minutes.docx"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("mixed") / "corpus"
    corpus.mkdir()
    (corpus / "page.html").write_bytes(news_page("windows-1252"))
    write_pdf(corpus / "report.pdf", [["Island ferries, a report"] + [
        "The islands of the north coast are served by four ferries that carry about 900 cars a day in summer."] * 3,
        ["Ferry fares will rise by six percent in April, the operator Nordlys Line announced on Monday."]],
        title="Island ferries", created="D:20250301000000")
    write_pdf(corpus / "scan.pdf", [[]])
    (corpus / "minutes.docx").write_bytes(b"PK\x03\x04 not read")
    return corpus, corpus.parent / "index"


def test_index_says_what_it_did_not_read_in_one_line_verbose_and_json(mixed):
    corpus, index = mixed
    where = ("--corpus", str(corpus), "--index", str(index))
    built = runner.invoke(app, ["index", *where])
    assert built.exit_code == 0, built.output
    assert "2 file(s) not indexed" in built.stdout and "--verbose" in built.stdout and "scan.pdf" not in built.stdout
    verbose = runner.invoke(app, ["index", "--verbose", *where])
    assert "scan.pdf: the PDF has no text layer" in verbose.stdout and "minutes.docx: not a type" in verbose.stdout
    report = json.loads(runner.invoke(app, ["index", "--json", *where]).stdout)
    assert report["built"] is False and report["files"] == 2
    assert [s["source"] for s in report["skipped"]] == ["minutes.docx", "scan.pdf"]
    manifest = json.loads((current_generation(index) / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["skipped"] == report["skipped"]


def test_citations_of_pages_and_pdfs_quote_the_stored_text_and_name_page_author_and_site(mixed):
    corpus, index = mixed
    for question, source in (("Who will build the ferry terminal?", "page.html"),
                             ("By how much will ferry fares rise?", "report.pdf")):
        result = runner.invoke(app, ["ask", question, "--json", "--answers", "3", "--corpus", str(corpus),
                                     "--index", str(index)])
        data = json.loads(result.stdout)
        assert data["passages"][0]["source"] == source
        found = [c for c in data["citations"]] + [g["citation"] for g in [data["best_guess"], *data["alternatives"]] if g]
        assert found
        for citation in found:
            assert text_of(corpus, citation["source"])[citation["start"] : citation["end"]] == citation["quote"]
            if citation["source"] == "report.pdf":
                assert citation["page"] in (1, 2) and citation["author"] is None
            else:
                assert (citation["page"], citation["author"], citation["sitename"]) == (None, "Mara Lind", "Coastal Times")
    passage = data["passages"][0]
    assert passage["page"] == 2 and "six percent" in passage["text"]


@pytest.mark.parametrize("options, sources", [
    (["--since", "2025-03-10"], {"page.html"}),            # the page is dated 2025-03-14, the PDF 2025-03-01
    (["--until", "2025-03-01"], {"report.pdf"}),
    (["--since", "2025", "--until", "2025-03"], {"page.html", "report.pdf"}),
    (["--source", "*.pdf"], {"report.pdf"}),
    (["--source", "nothing*", "--source", "page.*"], {"page.html"}),
])
def test_since_until_and_source_restrict_the_passages_read(mixed, options, sources):
    corpus, index = mixed
    result = runner.invoke(app, ["search", "ferry terminal fares islands", "--json", *options, "--corpus", str(corpus),
                                 "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert {p["source"] for p in json.loads(result.stdout)["passages"]} == sources


@pytest.mark.parametrize("options, said", [
    (["--since", "2026"], "no indexed article matches --since 2026 (2 articles, 2 with a date)"),
    (["--source", "*.txt"], "no indexed article matches --source *.txt"),
    (["--since", "last week"], "'last week' is not a date"),
])
def test_a_scope_that_admits_nothing_or_is_no_date_is_one_line(mixed, options, said):
    corpus, index = mixed
    result = runner.invoke(app, ["ask", "Who builds the terminal?", *options, "--corpus", str(corpus), "--index", str(index)])
    assert result.exit_code == 2 and said in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_another_version_of_the_page_or_pdf_reader_rebuilds_the_index(mixed, monkeypatch):
    corpus, index = mixed
    assert runner.invoke(app, ["index", "--corpus", str(corpus), "--index", str(index)]).exit_code == 0
    assert freshness.staleness(index, corpus, DEFAULT_MODEL) is None
    monkeypatch.setattr(ingest, "extractor_versions", lambda: {"html": "trafilatura 9.9", "pdf": "pypdf 99.0"})
    assert "readers of pages and PDFs changed" in freshness.staleness(index, corpus, DEFAULT_MODEL)
