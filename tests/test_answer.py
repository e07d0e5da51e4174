from __future__ import annotations

import dataclasses

import pytest

from qa.answer import (
    Reading,
    analyze_question,
    answer,
    article_fact,
    asks_about_article,
    candidate_kinds,
    load_model,
    normalize,
    tokenize_with_offsets,
)
from qa.chunk import Passage
from qa.retrieve import Hit


@pytest.mark.parametrize("question, wh, kind", [
    ("Who unveiled the project?", "who", "person"),
    ("When did the company open its office?", "when", "date"),
    ("In what year was it founded?", "when", "date"),
    ("Where did the meeting take place?", "where", "place"),
    ("How much did the repairs cost?", "how much", "money"),
    ("How many visitors came?", "how many", "number"),
    ("How large is the facility?", "how much", "quantity"),
    ("What percentage of voters agreed?", "how much", "percent"),
    ("Which company won the contract?", "which", "org"),
    ("Which product does it resell?", "which", "name"),
    ("What did the council approve?", "what", "phrase"),
    ("Why did the plan fail?", "why", "reason"),
])
def test_question_analysis(question, wh, kind):
    analysis = analyze_question(question)
    assert (analysis.wh, analysis.answer_type) == (wh, kind)


def test_focus_terms_drop_question_and_stop_words():
    assert analyze_question("Who is the CEO of Microsoft?").terms == ["ceo", "microsoft"]


@pytest.mark.parametrize("span, kind", [
    ("$100 billion", "money"), ("48 million euros", "money"), ("2019", "year"), ("Jun 13, 2024", "date"),
    ("12%", "percent"), ("half a million square feet", "quantity"), ("Larry Ellison", "name"),
    ("Bank of England", "name"), ("direct fiber links", "phrase"),
])
def test_candidate_kinds(span, kind):
    assert kind in candidate_kinds(tokenize_with_offsets(span), span)


def test_normalize_follows_squad():
    assert normalize("The “Stargate”  Project!") == "stargate project"
    assert normalize("An apple, a day") == "apple day"


def _reading(text: str, question: str, source: str = "s.txt", start: int = 100) -> Reading:
    from qa.embed import load_encoder

    encoder = load_encoder()
    passage = Passage(source, "T", None, start, start + len(text), text)
    return Reading(hits=[Hit(0, 1.0, 1, 5.0, 1, 0.5)], passages=[passage], idf=lambda t: 1.0,
                   embed=encoder.encode, query_vector=encoder.encode([question])[0])


def test_answer_is_a_span_of_the_passage_with_absolute_offsets():
    text = ("The museum opened a new wing on Tuesday. The wing was designed by architect Maria Lopez, "
            "who also designed the city library. It cost 12 million dollars.")
    question = "How much did the new wing cost?"
    always_answer = dataclasses.replace(load_model(), threshold=0.0)  # the span, whatever the confidence
    result = answer(question, _reading(text, question), model=always_answer)
    assert result.answer is not None
    citation = result.citations[0]
    assert text[citation.start - 100 : citation.end - 100] == citation.quote == result.answer
    assert "12 million" in result.answer
    assert result.answer in result.sentence and 0.0 <= result.confidence <= 1.0


def test_no_candidates_means_no_answer():
    result = answer("Who won?", _reading("...", "Who won?"), model=load_model())
    assert result.answer is None and result.citations == []


@pytest.mark.parametrize("question, fact", [
    ("Who wrote the article about the ferry strike?", "author"),
    ("Who is the author of this article?", "author"),
    ("When was the article on the new library published?", "published"),
    ("On what date was the column posted?", "published"),
    ("Who wrote the novel the film is based on?", None),  # no article named
    ("Who signed the article of the treaty?", None),  # an article, but not its writer
    ("What did the article say about prices?", None),
])
def test_questions_about_the_article_itself(question, fact):
    assert asks_about_article(analyze_question(question)) == fact


def _header_reading(passages: list[tuple[str, int, str, float]]) -> Reading:
    """A reading of (source, start, text, fused score) passages, without encoder or span network."""
    read = [Passage(source, source.upper(), None, start, start + len(text), text) for source, start, text, _ in passages]
    hits = [Hit(i, score) for i, (*_, score) in enumerate(passages)]
    return Reading(hits=hits, passages=read, idf=lambda t: 1.0)


def test_who_wrote_the_article_is_answered_from_its_byline():
    header = "Ferries halted as crews strike\n\nBy Jane Roe and Omar Haddad, Mar 2, 2025\n\nCrews walked out."
    reading = _header_reading([("b.txt", 0, "By Lee Park\n\nA story about cider.", 0.4),
                               ("a.txt", 40, header, 0.9), ("a.txt", 400, "Talks resume Monday.", 0.5)])
    result = answer("Who wrote the article about the ferry strike?", reading)
    assert result.answer == "Jane Roe and Omar Haddad"
    citation = result.citations[0]
    assert (citation.source, header[citation.start - 40 : citation.end - 40]) == ("a.txt", result.answer)
    assert result.sentence == "By Jane Roe and Omar Haddad, Mar 2, 2025"
    assert result.confidence == pytest.approx(1.4 / 1.8)
    dated = answer("When was the article about the ferry strike published?", reading)
    assert dated.answer == "Mar 2, 2025"


def test_a_byline_deep_in_an_article_is_not_its_header():
    question = analyze_question("Who wrote the article?")
    assert asks_about_article(question) == "author"
    assert article_fact(question, _header_reading([("a.txt", 5000, "By Jane Roe\n\nCrews walked out.", 1.0)])) is None
    assert article_fact(question, _header_reading([("a.txt", 50, "By Jane Roe\n\nCrews walked out.", 1.0)])) is not None


@pytest.mark.parametrize("text, start, end, expected", [
    ("paid by Oracle Corp., said", 10, 14, "Oracle"),  # a word piece inside a word widens to the word
    ("paid by Oracle Corp., said", 8, 21, "Oracle Corp"),  # trailing punctuation goes
    ("he said “soon” and left", 8, 14, "soon"),  # so do quotes around the span
    ("costs $12.5 million.", 6, 20, "$12.5 million"),
])
def test_reader_spans_become_whole_words_without_edge_punctuation(text, start, end, expected):
    from qa.answer import _whole_words

    a, b = _whole_words(text, start, end)
    assert text[a:b] == expected


def test_who_questions_never_get_the_object_of_in_or_at():
    from qa.answer import analyze_question, candidates

    text = "At a meeting at the Grand Hotel in Millbrook, the library plans were shown by Clara Voss."
    reading = _reading(text, "Who showed the library plans?")
    who = {c.text for c in candidates(analyze_question("Who showed the library plans?"), reading)}
    assert "Clara Voss" in who and not who & {"Grand Hotel", "Millbrook", "Grand Hotel in Millbrook"}
    where = {c.text for c in candidates(analyze_question("Where were the library plans shown?"), reading)}
    assert {"Grand Hotel", "Millbrook"} <= where


def test_who_asks_for_the_actor_not_the_one_quoted_about_it():
    from qa.answer import candidates

    text = ("Speaking in the harbour, Kestrel Shipping chairman Ada Lind said that work is underway on "
            "three new ferries. According to Tomas Berg, the ferries will be ready in spring.")
    reading = _reading(text, "Who is building the new ferries?")
    deed = {c.text for c in candidates(analyze_question("Who is building the new ferries?"), reading)}
    assert "Kestrel Shipping" in deed and not deed & {"Ada Lind", "Tomas Berg"}
    for question in ("Who said work is underway on the ferries?", "Who is the chairman of Kestrel Shipping?"):
        assert "Ada Lind" in {c.text for c in candidates(analyze_question(question), reading)}


def test_names_the_question_gives_but_the_text_lacks_are_counted():
    from qa.answer import candidates

    text = "Harbour Works opened its yard in May. Its director, Ines Falk, hired forty welders."
    for question, missing in (("Who directs Harbour Works?", 0.0), ("Who directs Nordvik Marine?", 1.0),
                              ("Who directs Harbour Works and Nordvik Marine?", 0.5)):
        features = [c.features for c in candidates(analyze_question(question), _reading(text, question))]
        assert features and all(f["passage_names_missing"] == missing for f in features)


def test_a_negated_question_is_marked_when_its_sentence_denies_nothing():
    from qa.answer import candidates

    text = "The council approved the bridge in May. The mayor never signed the ferry contract."
    for question, negated in (("Who approved the bridge?", False), ("Who did not approve the bridge?", True),
                              ("Who didn't sign the ferry contract?", True)):
        assert analyze_question(question).negated is negated
    found = candidates(analyze_question("Who didn't approve the ferry contract?"),
                       _reading(text, "Who didn't approve the ferry contract?"))
    unmatched = {c.text: c.features["negation_unmatched"] for c in found}
    assert unmatched["council"] == 1.0 and unmatched["mayor"] == 0.0
    assert all(c.features["question_negated"] == 1.0 for c in found)


def test_the_span_network_scores_candidates_and_its_best_sentence_is_read():
    import re

    import numpy as np

    from qa.answer import SENTENCES_CONSIDERED, candidates
    from qa.span_net import SpanScores

    text = " ".join(f"The harbour ferry sailed on day {k}." for k in range(SENTENCES_CONSIDERED + 2))
    text += " Nobody expected Orla Quinn."
    question = "Who sailed the harbour ferry?"
    offsets = np.array([[m.start(), m.end()] for m in re.finditer(r"\w+|[^\w\s]", text)])
    first = int(np.nonzero(offsets[:, 0] == text.index("Orla Quinn"))[0][0])
    start, end = np.full(len(offsets), -20.0), np.full(len(offsets), -20.0)
    start[first], end[first + 1] = 0.0, 0.0
    plain = _reading(text, question)
    assert "Orla Quinn" not in {c.text for c in candidates(analyze_question(question), plain)}
    with_network = dataclasses.replace(plain, span_scores=lambda passages: [SpanScores(offsets, start, end)])
    found = {c.text: c.features for c in candidates(analyze_question(question), with_network)}
    assert found["Orla Quinn"]["span_net"] == 0.0 and found["Orla Quinn"]["span_net_gap"] == 0.0
    assert found["Orla"]["span_net"] == pytest.approx(-2.0)  # start right, end 20 nats off
    assert all(f["span_net_gap"] < 0 for text, f in found.items() if text != "Orla Quinn")


def test_term_weights_are_looked_up_through_the_index_stemmer(seeds_qa):
    idf = seeds_qa.reading("Who built Stargate data centers?").idf
    assert idf("building") == idf("built") == idf("build") != idf("qqqzzz")  # an unknown word weighs most
