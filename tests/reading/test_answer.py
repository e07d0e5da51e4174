"""The answerer over a stand-in reader: what it quotes, cites and withholds, whatever the model."""

from __future__ import annotations

from qa.corpus.chunk import Passage
from qa.reading.answer import CITE_MARGIN, EARLY_PASSAGES, answer, normalize, read_spans, same_answer
from qa.reading.read import LEAD_CAP, Calibration, Evidence
from qa.reading.spans import SpanChoice


class FixedReader:
    """Returns the spans it was given (character ranges in the passages), best first."""

    def __init__(self, spans: list[SpanChoice], threshold: float = 0.5, guess_threshold: float | None = None):
        self.given = spans
        self.calibration = Calibration(slope=1.0, intercept=0.0, threshold=threshold, guess_threshold=guess_threshold)
        self.asked: list[tuple[str, list[str]]] = []

    def spans(self, question, passages, per_window=1):
        self.asked.append((question, list(passages)))
        return sorted(self.given, key=lambda s: -s.margin)


def passage(source: str, start: int, text: str) -> Passage:
    return Passage(source, source.upper(), None, start, start + len(text), text)


FERRY = passage("ferry.txt", 120, "The city chose a builder. Nordvik Construction will build the terminal by 2027.")
OTHER = passage("other.txt", 40, "Reports say Nordvik Construction won the ferry contract last week.")


def span_of(p: Passage, text: str, margin: float, number: int = 0) -> SpanChoice:
    start = p.text.index(text)
    return SpanChoice(number, start, start + len(text), margin)


def test_the_answer_is_the_article_text_at_the_cited_offsets():
    reader = FixedReader([span_of(FERRY, "Nordvik Construction", 4.0)])
    result = answer("Who will build the terminal?", [FERRY], reader)
    assert result.answer == "Nordvik Construction"
    assert result.confidence > 0.98
    article_text = " " * FERRY.start + FERRY.text
    assert article_text[result.answer_start : result.answer_end] == result.answer
    assert result.sentence == "Nordvik Construction will build the terminal by 2027."
    assert article_text[result.sentence_start : result.sentence_start + len(result.sentence)] == result.sentence
    citation = result.citations[0]
    assert (citation.source, citation.title, citation.start, citation.end, citation.quote) == (
        "ferry.txt", "FERRY.TXT", result.answer_start, result.answer_end, "Nordvik Construction")
    assert reader.asked == [("Who will build the terminal?", [FERRY.text])]


def test_word_pieces_are_widened_to_whole_words_and_edge_punctuation_dropped():
    start = FERRY.text.index("ordvik")  # a span starting inside a word
    reader = FixedReader([SpanChoice(0, start, start + len("ordvik Constr"), 3.0)])
    assert answer("Who?", [FERRY], reader).answer == "Nordvik Construction"
    quoted = FERRY.text.index("2027.")
    reader = FixedReader([SpanChoice(0, quoted, quoted + len("2027."), 3.0)])
    assert answer("By when?", [FERRY], reader).answer == "2027"


def test_a_bracket_the_span_opens_is_closed_and_one_it_does_not_open_is_dropped():
    chips = passage("chips.txt", 0, "It needs Graphics Processing Units (GPUs). (Costly ones.)")
    for quoted in ("Graphics Processing Units (GPUs", "Graphics Processing Units (GPUs)."):
        reader = FixedReader([span_of(chips, quoted, 3.0)])
        assert answer("What is needed?", [chips], reader).answer == "Graphics Processing Units (GPUs)"
    reader = FixedReader([span_of(chips, "(Costly ones.)", 3.0)])
    assert answer("What kind?", [chips], reader).answer == "Costly ones"


def test_no_answer_runs_across_a_blank_line():
    story = passage("story.txt", 0, "By Dana Reyes 10:35 am\n\nThe council approved the budget.")
    across = span_of(story, "Dana Reyes 10:35 am\n\nThe council", 5.0)
    reader = FixedReader([across, span_of(story, "Dana Reyes", 4.0)])
    assert answer("Who wrote it?", [story], reader).answer == "Dana Reyes"


def test_below_the_threshold_it_abstains_and_says_how_sure_it_was():
    reader = FixedReader([span_of(FERRY, "Nordvik Construction", -1.0)], threshold=0.5)
    result = answer("Who will build the terminal?", [FERRY], reader)
    assert result.answer is None and result.citations == [] and result.sentence is None
    assert 0.2 < result.confidence < 0.3  # sigmoid(-1)


def test_nothing_to_read_is_an_abstention():
    assert answer("Who?", [], FixedReader([])).answer is None
    assert answer("Who?", [FERRY], FixedReader([])).answer is None


def test_the_same_answer_elsewhere_is_cited_when_nearly_as_good():
    close = span_of(OTHER, "Nordvik Construction", 4.0 - CITE_MARGIN / 2, number=1)
    reader = FixedReader([span_of(FERRY, "Nordvik Construction", 4.0), close,
                          span_of(FERRY, "the terminal", 3.9)])
    cited = answer("Who will build the terminal?", [FERRY, OTHER], reader).citations
    assert [c.source for c in cited] == ["ferry.txt", "other.txt"]
    assert cited[1].start == OTHER.start + OTHER.text.index("Nordvik") and cited[1].quote == "Nordvik Construction"
    far = span_of(OTHER, "Nordvik Construction", 4.0 - 2 * CITE_MARGIN, number=1)
    reader = FixedReader([span_of(FERRY, "Nordvik Construction", 4.0), far])
    assert [c.source for c in answer("Who?", [FERRY, OTHER], reader).citations] == ["ferry.txt"]


def test_a_span_crossing_sentences_is_quoted_with_both_sentences():
    text = FERRY.text
    reader = FixedReader([SpanChoice(0, text.index("builder"), text.index(" will"), 2.0)])
    result = answer("What?", [FERRY], reader)
    assert result.answer == "builder. Nordvik Construction"
    assert result.sentence == text[: text.index("2027.") + 5]


def test_read_spans_keeps_the_readers_order_and_drops_empty_spans():
    only_punctuation = FERRY.text.index(".")
    reader = FixedReader([SpanChoice(0, only_punctuation, only_punctuation + 1, 9.0),
                          span_of(FERRY, "Nordvik", 2.0), span_of(FERRY, "terminal", 1.0)])
    assert [FERRY.text[s.start : s.end] for s in read_spans("Who?", [FERRY], reader)] == ["Nordvik", "terminal"]


def test_normalize_is_squads():
    assert normalize("The “Oracle”, Inc.!") == "oracle inc"
    assert normalize("  an   apple a day ") == "apple day"


def test_each_passage_keeps_its_best_span_for_explaining_the_answer():
    reader = FixedReader([span_of(FERRY, "the terminal", 1.0), span_of(FERRY, "Nordvik Construction", 4.0),
                          span_of(OTHER, "last week", 2.0, number=1)])
    readings = answer("Who?", [FERRY, OTHER, FERRY], reader).readings
    assert [(r.passage, r.margin) if r else None for r in readings] == [(0, 4.0), (1, 2.0), None]
    assert answer("Who?", [FERRY], FixedReader([span_of(FERRY, "2027", -5.0)])).readings[0].margin == -5.0


def test_the_margin_needed_is_where_the_confidence_meets_the_threshold():
    for calibration in (Calibration(0.338, -4.238, 0.133), Calibration(1.0, 0.0, 0.5), Calibration(2.0, 1.0, 0.9),
                        Calibration(0.5, -2.0, 0.4, lead_slope=0.3, agreement_slope=0.7)):
        for lead, agreement in ((0.0, 0), (2.5, 1), (50.0, 3)):
            needed = calibration.margin_needed(Evidence(0.0, lead, agreement))

            def at(margin):
                return calibration.confidence(Evidence(margin, lead, agreement))

            assert abs(at(needed) - calibration.threshold) < 1e-9
            assert at(needed + 0.01) > calibration.threshold > at(needed - 0.01)


def test_a_clear_lead_and_agreeing_passages_raise_the_confidence_and_a_lead_counts_up_to_a_cap():
    calibration = Calibration(1.0, -3.0, 0.5, lead_slope=0.5, agreement_slope=1.0)
    base = calibration.confidence(Evidence(2.0, 0.0, 0))
    assert calibration.confidence(Evidence(2.0, 3.0, 0)) > base and calibration.confidence(Evidence(2.0, 0.0, 2)) > base
    assert calibration.confidence(Evidence(2.0, LEAD_CAP, 0)) == calibration.confidence(Evidence(2.0, 10 * LEAD_CAP, 0))
    assert calibration.confidence(Evidence(2.0, -4.0, 0)) == base  # a runner-up is not behind itself


def test_the_evidence_is_the_lead_over_the_next_distinct_answer_and_the_passages_agreeing():
    reader = FixedReader([span_of(FERRY, "Nordvik Construction", 5.0), span_of(FERRY, "Nordvik", 4.5),
                          span_of(OTHER, "Nordvik Construction", 3.0, number=1), span_of(FERRY, "the terminal", 2.0)])
    evidence = answer("Who?", [FERRY, OTHER], reader).evidence
    # "Nordvik" overlaps the best span and OTHER's span is the same answer: the next distinct one is "the terminal"
    assert (evidence.margin, evidence.lead, evidence.agreement) == (5.0, 3.0, 1)
    assert answer("Who?", [FERRY], FixedReader([span_of(FERRY, "2027", 1.0)])).evidence.lead == LEAD_CAP


def test_three_outcomes_an_answer_a_best_guess_marked_unsure_and_no_answer():
    spans = [span_of(FERRY, "Nordvik Construction", 0.0)]  # confidence 0.5
    confident = answer("Who?", [FERRY], FixedReader(spans, threshold=0.4, guess_threshold=0.2))
    assert confident.answer == "Nordvik Construction" and confident.best_guess is None
    unsure = answer("Who?", [FERRY], FixedReader(spans, threshold=0.6, guess_threshold=0.4))
    assert unsure.answer is None and unsure.citations == [] and unsure.confidence == 0.5
    guess = unsure.best_guess
    assert guess.answer == "Nordvik Construction" and guess.confidence == 0.5
    assert guess.sentence[slice(*guess.answer_in_sentence)] == guess.answer
    article_text = " " * FERRY.start + FERRY.text
    assert article_text[guess.citation.start : guess.citation.end] == guess.citation.quote == guess.answer
    nothing = answer("Who?", [FERRY], FixedReader(spans, threshold=0.8, guess_threshold=0.6))
    assert nothing.answer is None and nothing.best_guess is None and nothing.alternatives == []
    no_guesses = answer("Who?", [FERRY], FixedReader(spans, threshold=0.6))  # a card without a guess threshold
    assert no_guesses.answer is None and no_guesses.best_guess is None


def test_a_shorter_or_longer_way_of_saying_the_same_answer_is_neither_a_runner_up_nor_a_rival():
    # "Nordvik" in OTHER is "Nordvik Construction" said shorter: the lead is over "the terminal"
    reader = FixedReader([span_of(FERRY, "Nordvik Construction", 5.0), span_of(OTHER, "Nordvik", 4.5, number=1),
                          span_of(FERRY, "the terminal", 2.0), span_of(OTHER, "ferry", 1.5, number=1)])
    result = answer("Who?", [FERRY, OTHER], reader, answers=3)
    assert result.evidence.lead == 3.0
    assert [c.answer for c in result.alternatives] == ["the terminal", "ferry"]
    assert same_answer("sam altman", "altman") and same_answer("altman", "sam altman")
    assert not same_answer("altman", "sam altmanson") and not same_answer("", "altman")


def test_runners_up_are_distinct_answers_best_first_each_cited_in_its_sentence():
    reader = FixedReader([span_of(FERRY, "Nordvik Construction", 5.0), span_of(FERRY, "Construction", 4.8),
                          span_of(OTHER, "Nordvik Construction", 4.5, number=1), span_of(FERRY, "the terminal", 2.0),
                          span_of(OTHER, "last week", 1.0, number=1), span_of(FERRY, "2027", 0.5)])
    result = answer("Who?", [FERRY, OTHER], reader, answers=3)
    assert result.answer == "Nordvik Construction"
    assert [c.answer for c in result.alternatives] == ["the terminal", "last week"]
    confidences = [c.confidence for c in result.alternatives]
    assert confidences == sorted(confidences, reverse=True) and confidences[0] < result.confidence
    week = result.alternatives[1]
    assert week.citation.source == "other.txt" and week.citation.start == OTHER.start + OTHER.text.index("last week")
    assert week.sentence == OTHER.text and week.sentence[slice(*week.answer_in_sentence)] == "last week"
    assert answer("Who?", [FERRY, OTHER], reader).alternatives == []  # one answer unless asked for more


def test_the_rank_penalty_lets_retrieval_decide_between_near_equal_spans():
    """A span of a lower-ranked passage wins only by more than the penalty per place it is below."""
    spans = [span_of(FERRY, "Nordvik Construction", 3.0, 0), span_of(OTHER, "the ferry contract", 3.5, 1)]
    unpenalized = FixedReader(spans)
    assert answer("Who?", [FERRY, OTHER], unpenalized).answer == "the ferry contract"
    penalized = FixedReader(spans)
    penalized.calibration = Calibration(slope=1.0, intercept=0.0, threshold=0.5, rank_penalty=1.0)
    result = answer("Who?", [FERRY, OTHER], penalized)
    assert result.answer == "Nordvik Construction"
    assert [r.margin for r in result.readings] == [3.0, 2.5]  # the margins compared, penalty included
    clear_winner = [span_of(FERRY, "Nordvik Construction", 3.0, 0), span_of(OTHER, "the ferry contract", 4.5, 1)]
    penalized.given = clear_winner
    assert answer("Who?", [FERRY, OTHER], penalized).answer == "the ferry contract"


class PerPassageReader:
    """Finds a passage's spans wherever it is in the list it is given (as a real reader does)."""

    def __init__(self, spans_by_text: dict[str, list[tuple[str, float]]], early_margin: float | None):
        self.spans_by_text = spans_by_text
        self.calibration = Calibration(slope=1.0, intercept=-2.0, threshold=0.5, rank_penalty=1.0,
                                       early_margin=early_margin)
        self.asked: list[list[str]] = []

    def spans(self, question, passages, per_window=1):
        self.asked.append(list(passages))
        return sorted((SpanChoice(number, text.index(quote), text.index(quote) + len(quote), margin)
                       for number, text in enumerate(passages) for quote, margin in self.spans_by_text.get(text, [])),
                      key=lambda s: -s.margin)


FIVE = [passage(f"p{k}.txt", 10 * k, f"Passage {k} says Builder{k} will build it.") for k in range(5)]


def test_a_clear_answer_in_the_first_passages_ends_the_reading():
    spans = {p.text: [(f"Builder{k}", margin)] for k, (p, margin) in enumerate(zip(FIVE, [2.0, 9.5, 1.0, 30.0, 0.0]))}
    reader = PerPassageReader(spans, early_margin=8.0)
    result = answer("Who will build it?", FIVE, reader)
    assert EARLY_PASSAGES in (2, 3)  # the clear span is among them, the higher one below them
    assert reader.asked == [[p.text for p in FIVE[:EARLY_PASSAGES]]]  # the fourth passage's higher margin is never seen
    assert result.answer == "Builder1" and result.read == EARLY_PASSAGES
    assert [r is None for r in result.readings] == [k >= EARLY_PASSAGES for k in range(5)]
    assert result.evidence.margin == 9.5 - 1.0  # the rank penalty counts as before


def test_without_a_clear_answer_the_passages_below_are_read_and_numbered_by_rank():
    spans = {p.text: [(f"Builder{k}", margin)] for k, (p, margin) in enumerate(zip(FIVE, [2.0, 6.0, 1.0, 30.0, 0.0]))}
    reader = PerPassageReader(spans, early_margin=8.0)
    result = answer("Who will build it?", FIVE, reader)
    assert reader.asked == [[p.text for p in FIVE[:EARLY_PASSAGES]], [p.text for p in FIVE[EARLY_PASSAGES:]]]
    assert result.answer == "Builder3" and result.read == 5
    assert result.citations[0].source == "p3.txt" and result.evidence.margin == 30.0 - 3.0
    assert [round(r.margin, 1) for r in result.readings] == [2.0, 5.0, -1.0, 27.0, -4.0]


def test_a_reader_without_an_early_margin_reads_every_passage_at_once():
    spans = {p.text: [(f"Builder{k}", 20.0)] for k, p in enumerate(FIVE)}
    reader = PerPassageReader(spans, early_margin=None)
    result = answer("Who will build it?", FIVE, reader)
    assert reader.asked == [[p.text for p in FIVE]] and result.read == 5
    assert read_spans("Who will build it?", FIVE[:2], reader)[0].passage == 0


def test_runners_up_asked_for_are_looked_for_in_every_passage():
    spans = {p.text: [(f"Builder{k}", margin)] for k, (p, margin) in enumerate(zip(FIVE, [2.0, 9.5, 1.0, 3.0, 0.0]))}
    reader = PerPassageReader(spans, early_margin=8.0)
    result = answer("Who will build it?", FIVE, reader, answers=4)
    assert reader.asked == [[p.text for p in FIVE]] and result.read == 5
    assert result.answer == "Builder1"
    assert [c.answer for c in result.alternatives] == ["Builder0", "Builder3", "Builder2"]  # 2.0, 0.0, -1.0 after the penalty
