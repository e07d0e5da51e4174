"""The rich view: highlighted answer, explanations, and file links only where the terminal takes them."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from qa.interface.view import View, hyperlinks_supported
from tests.conftest import SEEDS
from tests.terminal import ANSI


def terminal(width: int = 200) -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, width=width, force_terminal=True, color_system="standard", highlight=False), screen


@pytest.mark.parametrize("environ, expected", [
    ({}, False),
    ({"TERM_PROGRAM": "iTerm.app"}, True),
    ({"VTE_VERSION": "7600"}, True),
    ({"VTE_VERSION": "4200"}, False),
    ({"KITTY_WINDOW_ID": "1"}, True),
    ({"TERM_PROGRAM": "Apple_Terminal"}, False),
    ({"TERM_PROGRAM": "iTerm.app", "QA_HYPERLINKS": "0"}, False),
    ({"QA_HYPERLINKS": "1"}, True),
])
def test_links_only_where_the_terminal_is_known_to_take_them(environ, expected):
    console, _ = terminal()
    assert hyperlinks_supported(console, environ) is expected


def test_links_are_off_when_output_is_not_a_terminal():
    assert not hyperlinks_supported(Console(file=io.StringIO()), {"TERM_PROGRAM": "iTerm.app"})


def test_a_citation_links_to_the_file_and_a_hostile_name_cannot_forge_a_link(tmp_path):
    console, screen = terminal()
    name = "evil\x1b]8;;https://attacker.example\x07.txt"
    console.print(View(console, tmp_path, links=True).citation_line(
        {"source": name, "title": "T", "date": None, "start": 1, "end": 5}))
    shown = screen.getvalue()
    targets = re.findall(r"\x1b\]8;[^;]*;([^\x1b\x07]*)", shown)
    assert (tmp_path.resolve() / name).as_uri() in targets
    assert all(target == "" or target.startswith("file:///") for target in targets)  # "" closes a link
    assert "\\x1b]8;;https://attacker.example\\x07.txt" in shown  # the name itself, escaped
    plain, screen = terminal()
    plain.print(View(plain, tmp_path, links=False).citation_line(
        {"source": "a.txt", "title": "T", "date": None, "start": 1, "end": 5}))
    assert "\x1b]8;" not in screen.getvalue()


def test_the_explanation_shows_each_passage_margin_and_the_threshold(seeds_qa):
    result = seeds_qa.ask("Who is the chairman of Oracle?", explain=True)
    why = result["explain"]
    margins = [p["margin"] for p in why["passages"] if p["margin"] is not None]
    assert len(why["passages"]) == len(result["passages"]) and why["margin"] == max(margins)
    assert (why["margin"] >= why["margin_needed"]) == (result["answer"] is not None)
    console, screen = terminal()
    View(console, SEEDS, links=False).answer(result, explain=True)
    shown = screen.getvalue()
    for margin in margins:
        assert f"{margin:+.2f}" in shown
    assert f"{why['margin_needed']:+.2f}" in shown and f"confidence {why['threshold']:.2f}" in shown


def test_passages_left_unread_after_a_clear_answer_say_so(tmp_path):
    ranked = [{"rank": k, "score": 1.0 / k, "source": f"p{k}.txt", "start": 0, "end": 10} for k in range(1, 5)]
    readings = [{"read": True, "margin": 9.1, "span": "Nordvik"}, {"read": True, "margin": None, "span": None},
                {"read": False, "margin": None, "span": None}, {"read": False, "margin": None, "span": None}]
    result = {"question": "Who?", "answer": "Nordvik", "confidence": 0.7, "sentence": "Nordvik builds.",
              "answer_in_sentence": [0, 7], "citations": [], "passages": ranked,
              "explain": {"margin": 9.1, "lead": 10.0, "agreement": 0, "threshold": 0.28, "guess_threshold": 0.2,
                          "margin_needed": 4.9, "passages": readings}}
    console, screen = terminal()
    View(console, tmp_path, links=False).explanation(result)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue())
    assert shown.count("(not read: the passages above gave a clear answer)") == 2
    assert shown.count("(no span)") == 1 and "+9.10" in shown


def test_an_abstention_explains_itself_too(seeds_qa):
    result = seeds_qa.ask("What is the price of an Nvidia H100 GPU?", explain=True)
    assert result["answer"] is None
    why = result["explain"]
    assert why["margin"] is None or why["margin"] < why["margin_needed"]


def test_a_best_guess_is_shown_as_unsure_with_its_sentence_citation_and_the_runners_up(tmp_path):
    citation = {"source": "ferry.txt", "title": "Ferry", "date": None, "start": 30, "end": 50,
                "quote": "Nordvik Construction"}
    guess = {"answer": "Nordvik Construction", "confidence": 0.24, "answer_in_sentence": [0, 20],
             "sentence": "Nordvik Construction will build the terminal.", "citation": citation}
    other = {**guess, "answer": "the terminal", "confidence": 0.03, "answer_in_sentence": [32, 44],
             "citation": {**citation, "start": 62, "end": 74, "quote": "the terminal"}}
    result = {"question": "Who builds it?", "answer": None, "confidence": 0.24, "sentence": None, "citations": [],
              "best_guess": guess, "alternatives": [other], "passages": []}
    console, screen = terminal()
    View(console, tmp_path, links=False).answer(result)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue())
    assert "Not sure. The closest the articles come:" in shown and "No answer found" not in shown
    assert "confidence 0.24 (below the answering threshold)" in shown and "chars 30–50" in shown
    assert "Other answers:" in shown and "2. the terminal" in shown and "chars 62–74" in shown
    assert re.search(r"\x1b\[[0-9;]*43mNordvik Construction\x1b\[0m will build", screen.getvalue())  # highlighted


def test_a_citation_names_date_author_site_and_page_when_known(tmp_path):
    plain, screen = terminal()
    view = View(plain, tmp_path, links=False)
    plain.print(view.citation_line({"source": "r.pdf", "title": "Report", "date": "2025-03-14", "author": "Lena Voss",
                                    "sitename": "Coastal Times", "page": 2, "start": 10, "end": 20}))
    plain.print(view.citation_line({"source": "a.txt", "title": "A", "date": None, "author": None, "sitename": None,
                                    "page": None, "start": 1, "end": 5}))
    first, second = [ANSI.sub("", line) for line in screen.getvalue().splitlines()]
    assert first == "r.pdf — Report, 2025-03-14, by Lena Voss, Coastal Times page 2, chars 10–20"
    assert second == "a.txt — A chars 1–5"
