"""The CLI end to end on real articles with the real model (in-process, so the model loads once)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from qa.corpus.ingest import text_of
from qa.interface.cli import app
from tests.conftest import ROOT, SEEDS

runner = CliRunner()
UNSEEN = ROOT / "tests" / "data" / "unseen"


def run(*args: str):
    return runner.invoke(app, list(args))


def ask_json(question: str, corpus, index) -> dict:
    result = run("ask", question, "--json", "--corpus", str(corpus), "--index", str(index))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ask_json_contract(seeds_index):
    data = ask_json("Who is the chairman of Oracle?", SEEDS, seeds_index)
    assert set(data) == {"question", "answer", "confidence", "sentence", "citations", "answered_from", "best_guess",
                         "alternatives", "passages", "warnings"}
    assert data["answer"] == "Larry Ellison" and data["best_guess"] is None and data["alternatives"] == []
    assert data["answered_from"] == "reader"
    assert 0.0 <= data["confidence"] <= 1.0
    citation = data["citations"][0]
    assert citation["source"] == "001_86ff3bb821105e2b.txt"
    assert set(citation) == {"source", "title", "date", "author", "sitename", "page", "start", "end", "quote"}
    assert text_of(SEEDS, citation["source"])[citation["start"] : citation["end"]] == citation["quote"]
    assert data["answer"] in data["sentence"]
    for passage in data["passages"]:
        assert {"rank", "source", "title", "start", "end", "text", "score", "bm25_rank", "dense_rank"} <= set(passage)
        assert text_of(SEEDS, passage["source"])[passage["start"] : passage["end"]] == passage["text"]


def test_ask_answers_n_gives_distinct_runners_up_in_the_best_guess_shape(seeds_index):
    result = run("ask", "Who is the chairman of Oracle?", "--json", "--answers", "3", "--corpus", str(SEEDS),
                 "--index", str(seeds_index))
    data = json.loads(result.stdout)
    shown = [data["answer"] or data["best_guess"]["answer"]] + [c["answer"] for c in data["alternatives"]]
    assert len(data["alternatives"]) == 2 and len({a.lower() for a in shown}) == 3
    confidences = [c["confidence"] for c in data["alternatives"]]
    assert confidences == sorted(confidences, reverse=True)
    for candidate in data["alternatives"]:
        assert set(candidate) == {"answer", "confidence", "sentence", "citation"}
        citation = candidate["citation"]
        assert text_of(SEEDS, citation["source"])[citation["start"] : citation["end"]] == citation["quote"]
        assert candidate["answer"] == citation["quote"] and candidate["answer"] in candidate["sentence"]
    bad = run("ask", "Who?", "--answers", "0", "--corpus", str(SEEDS), "--index", str(seeds_index))
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_a_question_about_a_made_up_topic_gets_no_answer_and_no_best_guess(seeds_index):
    data = ask_json("Which breed of goat won the 1931 Tasmanian yodelling cup?", SEEDS, seeds_index)
    assert data["answer"] is None and data["best_guess"] is None and data["alternatives"] == []
    result = run("ask", "Which breed of goat won the 1931 Tasmanian yodelling cup?", "--corpus", str(SEEDS),
                 "--index", str(seeds_index))
    assert "No answer found in the articles." in result.stdout and "Not sure" not in result.stdout


def test_a_question_the_articles_answer_in_other_words_is_never_a_bare_no_answer(seeds_index):
    data = ask_json("Who runs OpenAI?", SEEDS, seeds_index)  # the article says "OpenAI's CEO"
    shown = data if data["answer"] else data["best_guess"]
    assert shown is not None and shown["answer"] in shown["sentence"]


@pytest.mark.xfail(strict=True, reason="the reader answers 'Larry Ellison', Oracle's chairman, from the sentence "
                                      "naming both (eval/README.md); strict: a fix turns this into a failure")
def test_who_built_stargate_data_centers(seeds_index):
    data = ask_json("who built Stargate data centers", SEEDS, seeds_index)
    assert data["answer"] == "Oracle"
    citation = data["citations"][0]
    assert citation["source"] == "001_86ff3bb821105e2b.txt"
    assert text_of(SEEDS, citation["source"])[citation["start"] : citation["end"]] == citation["quote"]


@pytest.mark.parametrize("question", ["What is the price of an Nvidia H100 GPU?", "Who is the CEO of Google?"])
def test_unanswerable_questions_get_null(seeds_index, question):
    data = ask_json(question, SEEDS, seeds_index)
    assert data["answer"] is None and data["citations"] == [] and data["passages"]


def test_rich_answer_view_shows_answer_and_citation(seeds_index):
    data = ask_json("Who is the chairman of Oracle?", SEEDS, seeds_index)
    result = run("ask", "Who is the chairman of Oracle?", "--corpus", str(SEEDS), "--index", str(seeds_index))
    assert result.exit_code == 0 and data["answer"]
    assert data["answer"] in result.stdout and data["citations"][0]["source"] in result.stdout


def test_search_json_and_table(seeds_index):
    result = run("search", "Stargate data centers", "--json", "--corpus", str(SEEDS), "--index", str(seeds_index))
    data = json.loads(result.stdout)
    assert data["query"] == "Stargate data centers" and len(data["passages"]) == 10
    ranks = [p["rank"] for p in data["passages"]]
    assert ranks == list(range(1, len(ranks) + 1))
    scores = [p["score"] for p in data["passages"]]
    assert scores == sorted(scores, reverse=True)
    for retriever in ("bm25", "dense"):
        result = run("search", "Stargate", "--json", "--retriever", retriever, "--corpus", str(SEEDS), "--index", str(seeds_index))
        other = "dense_rank" if retriever == "bm25" else "bm25_rank"
        assert all(p[other] is None for p in json.loads(result.stdout)["passages"])
    table = run("search", "Stargate", "--fusion", "weighted", "--alpha", "0.3", "--corpus", str(SEEDS), "--index", str(seeds_index))
    assert table.exit_code == 0 and "001_86ff3bb821105e2b.txt" in table.stdout


def test_page_furniture_is_never_returned(seeds_index):
    for query in ("Articles You May Like", "Leave a Reply email address will not be published",
                  "TikTok Tango Oracle Ascendancy"):
        result = run("search", query, "--json", "-k", "50", "--corpus", str(SEEDS), "--index", str(seeds_index))
        for passage in json.loads(result.stdout)["passages"]:
            assert "Leave a Reply" not in passage["text"] and "Articles You May Like" not in passage["text"]
            assert "TikTok Tango" not in passage["text"]


@pytest.mark.parametrize("question, source, expected", [
    ("Who will build the new ferry terminal?", "harbor_ferry.txt", "Nordvik Construction"),
    ("Who won the prize for the best cider?", "orchard_festival.md", "Maple Row Farm"),
    ("How much did the library repairs cost?", "library_reopens.html", "2.4 million dollars"),
    ("When was the apple festival founded?", "orchard_festival.md", "1962"),
    ("Who is the head librarian?", "library_reopens.html", "Grace Okafor"),
    # Kept visible: trafilatura reads the byline as the page's author (shown in its citations) and
    # leaves it out of the text, so no byline can be quoted: no answer.
    # strict: a fix turns this into a failure that asks for the mark to go.
    pytest.param("Who wrote the article about the library reopening?", "library_reopens.html", "Tomas Reyes",
                 marks=pytest.mark.xfail(strict=True, reason="the page's text holds no byline: abstains")),
    ("When was the article about the new ferry terminal published?", "harbor_ferry.txt", "2025-03-14"),
])
def test_articles_never_seen_before(unseen_index, question, source, expected):
    corpus, index = unseen_index
    data = ask_json(question, corpus, index)
    assert data["passages"][0]["source"] == source
    if data["answer"] is None:  # an abstention is allowed; a wrong answer is not
        pytest.xfail(f"abstained at confidence {data['confidence']}")
    assert data["citations"][0]["source"] == source
    assert expected in data["answer"] or data["answer"] in expected
    citation = data["citations"][0]
    assert text_of(corpus, source)[citation["start"] : citation["end"]] == citation["quote"]


@pytest.fixture(scope="module")
def unseen_index(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("unseen") / "corpus"
    shutil.copytree(UNSEEN, corpus)
    return corpus, corpus.parent / "index"


def test_an_article_without_a_byline_gets_no_writer_from_its_story(unseen_index):
    corpus, index = unseen_index
    data = ask_json("Who wrote the article about the apple festival?", corpus, index)
    assert data["passages"][0]["source"] == "orchard_festival.md"
    assert (data["answer"], data["best_guess"], data["answered_from"]) == (None, None, "byline")


def test_who_wrote_an_article_and_when_come_from_its_header(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "strike.txt").write_text(
        "Ferry crews strike over pay\n\nBy Jane Roe and Omar Haddad, Mar 2, 2025\n\nFerry crews in the port walked "
        "out on Monday over pay, halting crossings to the islands. The union said talks with the operator had failed "
        "after six weeks, and that the strike would last until a new offer was made.\n")
    (corpus / "museum.txt").write_text(
        "Museum opens new wing\n\nBy Lee Park\n\nThe city museum opened a new wing for textiles on Saturday. Its "
        "director, Ines Alvarez, wrote to the council last year asking for the money, and the letter was read aloud "
        "at the opening, where a choir sang.\n")
    index = tmp_path / "index"
    author = ask_json("Who wrote the article about the ferry strike?", corpus, index)
    assert (author["answer"], author["answered_from"]) == ("Jane Roe and Omar Haddad", "byline")
    citation = author["citations"][0]
    assert citation["source"] == "strike.txt"
    assert text_of(corpus, "strike.txt")[citation["start"] : citation["end"]] == citation["quote"] == author["answer"]
    assert 0.5 < author["confidence"] <= 1.0  # the strike article holds most of the passages' retrieval score
    published = ask_json("When was the article about the ferry strike published?", corpus, index)
    assert (published["answer"], published["citations"][0]["source"]) == ("Mar 2, 2025", "strike.txt")
    letter = ask_json("According to the article, who wrote to the council asking for money?", corpus, index)
    assert letter["answered_from"] == "reader" and letter["answer"] != "Lee Park"


def test_most_unseen_questions_are_answered(unseen_index):
    corpus, index = unseen_index
    questions = ["When was the apple festival founded?", "Who is the head librarian?",
                 "How many visitors did the apple festival draw?", "Who won the prize for the best cider?",
                 "Who will build the new ferry terminal?", "How much did the library repairs cost?"]
    answered = [ask_json(q, corpus, index)["answer"] for q in questions]
    assert sum(a is not None for a in answered) >= 4


def test_index_command_builds_then_reports_up_to_date(tmp_path):
    corpus = tmp_path / "c"
    shutil.copytree(UNSEEN, corpus)
    first = run("index", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert first.exit_code == 0 and "built" in first.stdout and "3 articles" in first.stdout
    second = run("index", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert "up to date" in second.stdout


@pytest.mark.parametrize("args, message", [
    (("ask", "   "), "empty"),
    (("ask", "x", "--corpus", "/no/such/folder"), "not found"),
    (("search", "x", "--retriever", "magic"), "magic"),
    (("ask", "x", "--model", "no-such-org/no-such-model", "--index", "{tmp}/i"), "cannot load model"),
])
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code != 0
    output = result.output.strip()
    assert message in output and "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_terminal_escapes_in_a_question_are_not_echoed_raw(seeds_index):
    result = run("ask", "who built \x1b[31mStargate\x1b[0m data centers", "--corpus", str(SEEDS), "--index", str(seeds_index))
    assert result.exit_code == 0 and "\x1b[31m" not in result.stdout


def test_help_lists_every_command():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("ask", "search", "index"):
        assert command in result.stdout


def test_asking_imports_nothing_of_chat_serve_or_batch_nor_the_page_and_pdf_readers(seeds_index):
    """`qa ask` starts as fast as before those commands existed: their modules load only when they run,
    and trafilatura and pypdf only while an index is built."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "qa", "ask", "Who is the chairman of Oracle?",
                             "--json", "--corpus", str(SEEDS), "--index", str(seeds_index)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "qa.api" in imported
    assert not imported & {"qa.interface.chat", "qa.interface.serve", "qa.interface.batch", "readline", "fastapi", "uvicorn", "torch",
                           "trafilatura", "pypdf", "lxml"}
