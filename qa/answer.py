"""Extractive answering: pick the span of the retrieved text that answers the question.

Every answer is a slice of an article; nothing is generated. Candidate spans come from the
best-matching sentences of the retrieved passages (and those holding the span networks' likeliest
span); each gets features (does its kind match what the question asks for, how close it sits to
the question's words, how well its sentence and passage match, how likely the span networks of
qa/span_net.py find it) and a linear score whose weights live in `answer_weights.json`, fitted by
`qa/fit_answer.py`. The best span's calibrated probability of being right is the confidence;
below the threshold stored with the weights the answerer abstains. Who wrote an article and when
it was published are read from its byline and dateline instead (`article_fact`).
`answer_with_reader` lets a user's transformers QA model (qa/reader.py) pick the span instead.

Question words are matched by plurals only (`plural_stem`), not by the retriever's light stemmer:
refitted with that, the scorer let "building X between their data centers" answer "who built ...
data centers" (eval/README.md, answer-quality history).
"""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np

from qa.chunk import Passage, split_sentences
from qa.ingest import byline_span, dateline_span
from qa.retrieve import STOPWORDS, Hit, plural_stem, words
from qa.span_net import FLOOR, SpanScores

if TYPE_CHECKING:
    from qa.reader import TransformersReader

WEIGHTS_FILE = Path(__file__).with_name("answer_weights.json")
MAX_SPAN_WORDS = 10
SENTENCES_CONSIDERED = 8

# ----------------------------------------------------------------------------- question analysis

_MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_NUMBER_WORDS = {
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty",
    "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand", "million", "billion",
    "trillion", "dozen", "half", "several", "dozens", "hundreds", "thousands", "millions", "billions",
}
_CURRENCY = {"$", "€", "£", "¥", "dollar", "dollars", "euro", "euros", "pound", "pounds", "yen", "usd", "eur",
             "cents", "cent", "rupees", "yuan"}
_UNITS = {"feet", "foot", "square", "miles", "mile", "km", "kilometers", "kilometres", "meters", "metres",
          "meter", "metre", "acres", "acre", "tons", "tonnes", "pounds", "kg", "kilograms", "grams", "gb",
          "tb", "mb", "watts", "megawatts", "gigawatts", "mw", "gw", "hours", "hour", "minutes", "days",
          "weeks", "months", "years", "inches", "inch", "cm", "mm", "liters", "litres", "gallons", "mph",
          "degrees", "people", "employees", "percent", "times", "seconds", "centuries", "decades"}
_PERSON_NOUNS = {"person", "man", "woman", "people", "ceo", "chairman", "founder", "president", "leader",
                 "author", "writer", "director", "king", "queen", "player", "scientist", "artist", "chief",
                 "head", "minister", "emperor", "actor", "singer", "inventor", "architect", "coach", "member"}
_ORG_NOUNS = {"company", "companies", "organization", "organisation", "firm", "firms", "group", "team",
              "agency", "corporation", "startup", "university", "party", "band", "network", "institution",
              "provider", "partner", "partners", "club", "school", "business", "bank"}
_PLACE_NOUNS = {"city", "country", "state", "place", "region", "location", "continent", "town", "area",
                "island", "river", "nation", "province", "county", "site", "building"}
# Verbs that report speech or thought: "Jane Roe said ..." names who spoke, not who did what was said.
_REPORTING_VERBS = {"say", "says", "said", "tell", "tells", "told", "share", "shares", "shared", "announce",
                    "announces", "announced", "state", "states", "stated", "note", "notes", "noted", "explain",
                    "explains", "explained", "add", "adds", "added", "claim", "claims", "claimed", "argue",
                    "argues", "argued", "write", "writes", "wrote", "insist", "insists", "insisted", "warn",
                    "warns", "warned", "confirm", "confirms", "confirmed", "reveal", "reveals", "revealed",
                    "report", "reports", "reported", "believe", "believes", "believed", "think", "thinks",
                    "thought", "suggest", "suggests", "suggested", "predict", "predicts", "predicted",
                    "comment", "comments", "commented", "remark", "remarks", "remarked"}
# A question that denies something ("Which king did not ...?") is answered by a sentence that denies
# it too; one whose best sentence has no negation is often asking what the text never says.
_NEGATIONS = {"not", "never", "no", "none", "nor", "neither", "without"}
_TIME_NOUNS = {"year", "date", "day", "month", "decade", "century", "time", "period", "era", "age", "season"}

QUESTION_WORDS = ("who", "when", "where", "how much", "how many", "which", "what", "why", "how", "other")
ANSWER_TYPES = ("person", "org", "place", "date", "money", "number", "percent", "quantity", "name", "phrase", "reason")
CANDIDATE_KINDS = ("name", "date", "year", "money", "percent", "number", "quantity", "phrase")


@dataclass
class Question:
    text: str
    wh: str  # who / when / where / how much / how many / which / what / why / how / other
    answer_type: str
    terms: list[str]  # stemmed content words
    term_set: set[str] = field(default_factory=set)
    word_set: set[str] = field(default_factory=set)  # all lowercased words, stopwords included
    names: set[str] = field(default_factory=set)  # stems of the capitalized words after the first
    negated: bool = False


def analyze_question(text: str) -> Question:
    """Wh-word, the kind of answer it expects, and the content words to look for."""
    lowered = [w for w in words(text)]
    joined = " ".join(lowered)
    wh, answer_type = "other", "phrase"
    m = re.search(r"\b(what|which|whose)\s+(\w+)\b", joined)
    if re.search(r"\bhow (much|many)\b", joined):
        wh = "how " + re.search(r"\bhow (much|many)\b", joined).group(1)
        if wh == "how many":
            answer_type = "number"
        else:
            answer_type = "money" if re.search(r"\b(cost|pay|paid|spend|spent|invest|worth|price|fund|raise|sell|sold|commit|budget|revenue|money|dollar)", joined) else "quantity"
    elif re.search(r"\bhow (long|large|big|far|old|tall|high|heavy|wide|deep|fast|often|small)\b", joined):
        wh, answer_type = "how much", "quantity"
    elif re.search(r"\b(what|which) (percent|percentage|share|fraction|proportion)\b", joined):
        wh, answer_type = "how much", "percent"
    elif re.search(r"\bwhen\b|\bwhat (year|date|day|month|time|decade|century)\b|\bwhich (year|date|day|month|decade|century)\b", joined):
        wh, answer_type = "when", "date"
    elif re.search(r"\bwhere\b", joined):
        wh, answer_type = "where", "place"
    elif re.search(r"\bwho(m|se)?\b", joined):
        wh, answer_type = "who", "person"
    elif re.search(r"\bwhy\b", joined):
        wh, answer_type = "why", "reason"
    elif re.search(r"\bhow\b", joined):
        wh, answer_type = "how", "phrase"
    elif m:
        wh = "which" if m.group(1) == "which" else "what"
        head_noun = m.group(2)
        singular = plural_stem(head_noun)
        if head_noun in _PERSON_NOUNS or singular in _PERSON_NOUNS:
            answer_type = "person"
        elif head_noun in _ORG_NOUNS or singular in _ORG_NOUNS:
            answer_type = "org"
        elif head_noun in _PLACE_NOUNS or singular in _PLACE_NOUNS:
            answer_type = "place"
        elif head_noun in _TIME_NOUNS or singular in _TIME_NOUNS:
            answer_type = "date"
        elif wh == "which":
            answer_type = "name"
    elif re.search(r"\bwhat\b", joined):
        wh = "what"
    asking = {"whose", "whom"} | ({"much", "many"} if wh.startswith("how") else set())
    terms = [plural_stem(w) for w in lowered if w not in STOPWORDS and w not in asking]
    question = Question(text, wh, answer_type, terms)
    question.term_set = set(terms)
    question.word_set = set(lowered)
    tokens = tokenize_with_offsets(text)
    question.names = {t.stem for t in tokens[1:] if _continues_name(t) and not t.stop}
    question.negated = negates(tokens)
    return question


# ----------------------------------------------------------------------------- candidates

# Numbers keep their separators ("1,200", "2024-06-13"); a possessive "'s" is a token of its own.
_TOKEN = re.compile(r"\d+(?:[.,:/-]\d+)*%?|\w+?(?=['’]s\b)|['’]s\b|\w+(?:['’.-]\w+)*|[$€£¥%]|[^\w\s]")
_YEAR = re.compile(r"^(1[5-9]\d\d|20\d\d)s?$")
_DATE_TEXT = re.compile(rf"\b{_MONTH}\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")
_NAME_CONNECTORS = {"of", "the", "and", "&", "de", "du", "van", "von", "for", "la", "le", "del", "da", "-"}
_CURRENCY_SYMBOLS = {"$", "€", "£", "¥"}
_EDGE_PUNCTUATION = set(" \t\n,.;:!?\"'“”‘’([{)]}")
# Words next to a span whose identity says something about what the span is ("by X", "in 1990", "X, who").
_CONTEXT_WORDS = {
    ",", "(", ")", ":", "<s>", "</s>", "by", "of", "in", "on", "at", "from", "to", "for", "with", "as", "than",
    "about", "over", "until", "since", "after", "before", "during", "between", "into", "the", "a", "an", "is",
    "was", "are", "were", "be", "been", "and", "or", "who", "which", "that", "called", "named", "known",
    "including", "like", "such", "because", "due", "around", "nearly", "almost", "some", "only",
}


@dataclass
class Token:
    text: str
    lower: str
    stem: str
    start: int
    end: int
    capitalized: bool
    numeric: bool
    punct: bool
    stop: bool


def tokenize_with_offsets(text: str, base: int = 0) -> list[Token]:
    tokens = []
    for m in _TOKEN.finditer(text):
        raw = m.group()
        lower = raw.lower().replace("’", "'")
        if lower.endswith("'s"):
            lower_key = lower[:-2]
        else:
            lower_key = lower
        punct = not any(c.isalnum() for c in raw)
        tokens.append(Token(
            text=raw,
            lower=lower_key,
            stem=plural_stem(lower_key),
            start=base + m.start(),
            end=base + m.end(),
            capitalized=raw[:1].isupper() or (raw[:1].islower() and any(c.isupper() for c in raw[1:])),
            numeric=any(c.isdigit() for c in raw) or lower_key in _NUMBER_WORDS,
            punct=punct,
            stop=lower_key in STOPWORDS or lower == "'s",
        ))
    return tokens


def candidate_kinds(tokens: Sequence[Token], text: str) -> set[str]:
    """What a span looks like: a name, a date, a year, money, a percentage, a number, a quantity."""
    kinds = set()
    lowers = [t.lower for t in tokens]
    has_number = any(t.numeric for t in tokens)
    if _DATE_TEXT.search(text) or (len(tokens) <= 4 and any(_YEAR.match(t.text) for t in tokens)):
        kinds.add("date")
    if len(tokens) == 1 and _YEAR.match(tokens[0].text):
        kinds.add("year")
    if has_number and (any(t in _CURRENCY for t in lowers) or any(t.text in _CURRENCY_SYMBOLS for t in tokens)):
        kinds.add("money")
    if "%" in text or "percent" in lowers or "per cent" in text.lower():
        kinds.add("percent")
    if has_number:
        kinds.add("number")
        if any(t in _UNITS for t in lowers) or (not tokens[-1].numeric and len(tokens) >= 2):
            kinds.add("quantity")
    content = [t for t in tokens if not t.punct]
    if content and content[0].capitalized and content[-1].capitalized and all(
        t.capitalized or t.lower in _NAME_CONNECTORS or t.text in {",", "-", "'", "."} for t in tokens
    ) and not kinds & {"date", "money"}:
        kinds.add("name")
    if not kinds:
        kinds.add("phrase")
    return kinds


_TYPE_COMPATIBLE = {
    "person": {"name"},
    "org": {"name"},
    "place": {"name"},
    "name": {"name"},
    "date": {"date", "year"},
    "money": {"money"},
    "number": {"number"},
    "percent": {"percent"},
    "quantity": {"quantity", "number", "money", "percent"},
    "phrase": {"phrase", "name"},
    "reason": {"phrase"},
}


@dataclass
class Candidate:
    passage_index: int  # index into the hits passed to the answerer
    sentence: tuple[int, int]  # absolute offsets of the sentence holding the span
    start: int  # absolute offsets into the article text
    end: int
    text: str
    features: dict[str, float]
    score: float = 0.0


@dataclass
class SentenceView:
    passage_index: int
    start: int
    end: int
    tokens: list[Token]
    overlap: float  # idf-weighted share of the question's terms found in the sentence
    matched: int
    term_weights: dict[str, float]  # each question term's share of the question's total idf
    matched_positions: list[int]  # token positions holding a question term
    passage_overlap: float = 0.0  # the same share over the whole passage
    # Share of the names the question gives that the sentence / passage never mention: a question
    # about a name the text lacks is usually one it does not answer.
    names_missing: float = 0.0
    passage_names_missing: float = 0.0
    dense: float = 0.0
    rank: int = 0  # 1-based, among the sentences considered
    negated: bool = False


def _name_runs(tokens: Sequence[Token]) -> Iterator[tuple[int, int]]:
    """(start, end) token positions of each run of capitalized words (a name)."""
    k = 0
    while k < len(tokens):
        if not _continues_name(tokens[k]):
            k += 1
            continue
        end = k
        while end < len(tokens) and _continues_name(tokens[end]):
            end += 1
        yield k, end
        k = end


def _topic_names(tokens: Sequence[Token], question: Question) -> list[bool]:
    """Tokens of names that contain a name the question itself gives."""
    blocked = [False] * len(tokens)
    for k, end in _name_runs(tokens):
        if any(t.stem in question.names for t in tokens[k:end]):
            blocked[k:end] = [True] * (end - k)
    return blocked


def _speakers(tokens: Sequence[Token]) -> list[bool]:
    """Tokens of names that report what others did ("Jane Roe said", "according to Jane Roe"): a who-question
    about an action asks for the actor, and the one quoted about it rarely is."""
    speaking = [False] * len(tokens)
    for k, end in _name_runs(tokens):
        before = tokens[k - 2].lower + " " + tokens[k - 1].lower if k >= 2 else ""
        after = end < len(tokens) and tokens[end].lower in _REPORTING_VERBS
        if after or before == "according to":
            speaking[k:end] = [True] * (end - k)
    return speaking


def _asks_for_actor(question: Question) -> bool:
    """A who-question about a deed ("who built ..."), not about who someone is ("who is the chairman of
    ...") nor about who said something."""
    if question.wh != "who" or question.word_set & _REPORTING_VERBS or "according" in question.word_set:
        return False
    identity = re.search(r"\bwho(?:m|se)?\s+(?:is|was|are|were)\s+(\S+)", question.text.lower())
    return not identity or bool(re.fullmatch(r"\w+(?:ed|en|ing)", identity.group(1)))


def _continues_name(token: Token) -> bool:
    """A capitalized neighbour that is part of the same name (titles such as "CEO" are not)."""
    return token.capitalized and not token.punct and token.lower not in _PERSON_NOUNS


def _after_place_preposition(tokens: Sequence[Token], i: int) -> bool:
    """Whether tokens[i] opens the object of "in"/"at" ("in Port Alder", "at the White House"): a place,
    never the person or organization a who-question asks for."""
    k = i - 1
    if k >= 0 and tokens[k].lower in {"the", "a", "an"}:
        k -= 1
    return k >= 0 and tokens[k].lower in {"in", "at"}


def _edge_ok(token: Token, first: bool) -> bool:
    if first and token.text in _CURRENCY_SYMBOLS:
        return True
    if not first and token.text == "%":
        return True
    return not token.punct and not token.stop


def negates(tokens: Sequence[Token]) -> bool:
    return any(t.lower in _NEGATIONS or t.lower.endswith("n't") for t in tokens)


def sentence_views(question: Question, passages: Sequence[Passage], idf: Callable[[str], float]) -> list[SentenceView]:
    """Sentences of the retrieved passages, scored by how much of the question they contain."""
    total = sum(idf(t) for t in question.term_set) or 1.0
    term_weights = {t: idf(t) / total for t in question.term_set}
    views = []

    def names_missing(stems: set[str]) -> float:
        return len(question.names - stems) / len(question.names) if question.names else 0.0

    tokenized: dict[tuple[str, int], list[Token]] = {}  # overlapping passages share sentences
    for p_index, passage in enumerate(passages):
        sentences = []
        for a, b in split_sentences(passage.text):
            key = (passage.source, passage.start + a)
            new = key not in tokenized
            if new:
                tokenized[key] = tokenize_with_offsets(passage.text[a:b], passage.start + a)
            sentences.append((passage.start + a, passage.start + b, tokenized[key], new))
        passage_stems = {t.stem for _, _, tokens, _ in sentences for t in tokens}
        passage_overlap = sum(term_weights[t] for t in question.term_set & passage_stems)
        for start, end, tokens, new in sentences:
            if not new:
                continue
            stems = {t.stem for t in tokens}
            found = question.term_set & stems
            positions = [k for k, t in enumerate(tokens) if t.stem in question.term_set and not t.stop]
            views.append(SentenceView(p_index, start, end, tokens, sum(term_weights[t] for t in found), len(found),
                                      term_weights, positions, passage_overlap, names_missing(stems),
                                      names_missing(passage_stems), negated=negates(tokens)))
    return views


def _span_features(question: Question, view: SentenceView, i: int, j: int, hit_rank: int,
                   hit: Hit | None, passage_fused_max: float, redundancy: int) -> dict[str, float]:
    tokens = view.tokens
    span = tokens[i : j + 1]
    words_in_span = [t for t in span if not t.punct]
    text_len = len(words_in_span)
    matched_positions = view.matched_positions
    content = [t for t in words_in_span if not t.stop]
    in_question = sum(1 for t in content if t.stem in question.term_set or t.lower in question.word_set)
    outside = [k for k in matched_positions if k < i or k > j]
    if outside:
        distance = min(abs(k - i) if k < i else abs(k - j) for k in outside)
    else:
        distance = len(tokens)
    window = {t.stem for t in tokens[max(0, i - 10) : j + 11] if not t.stop} - {t.stem for t in span}
    nearest: dict[str, int] = {}
    for k in outside:
        gap = i - k if k < i else k - j
        nearest[tokens[k].stem] = min(gap, nearest.get(tokens[k].stem, gap))
    proximity = sum(view.term_weights.get(term, 0.0) / gap for term, gap in nearest.items())
    left_word = tokens[i - 1].lower if i > 0 else "<s>"
    right_word = tokens[j + 1].lower if j + 1 < len(tokens) else "</s>"
    features = {
        "bias": 1.0,
        f"wh={question.wh}": 1.0,  # the same for all of a question's spans: for the confidence, not the choice
        "local_overlap": len(window & question.term_set) / max(len(question.term_set), 1),
        "proximity": proximity,
        "splits_name_left": float(i > 1 and _continues_name(tokens[i - 1]) and tokens[i].capitalized),
        "splits_name_right": float(j + 1 < len(tokens) and _continues_name(tokens[j + 1]) and tokens[j].capitalized),
        "splits_number_left": float(i > 0 and (tokens[i - 1].numeric or tokens[i - 1].text in _CURRENCY_SYMBOLS)),
        "splits_number_right": float(j + 1 < len(tokens) and tokens[j].numeric and (
            tokens[j + 1].numeric or tokens[j + 1].lower in _UNITS or tokens[j + 1].lower in _CURRENCY)),
        "sent_overlap": view.overlap,
        "passage_overlap": view.passage_overlap,
        "names_missing": view.names_missing,
        "passage_names_missing": view.passage_names_missing,
        "sent_matched": min(view.matched, 6) / 6,
        "sent_dense": view.dense,
        "sent_rank_recip": 1.0 / view.rank,
        "passage_rank_recip": 1.0 / hit_rank,
        "passage_fused": (hit.score / passage_fused_max) if hit and passage_fused_max > 0 else 0.0,
        "in_question_frac": in_question / max(len(content), 1),
        "all_in_question": float(bool(content) and in_question == len(content)),
        "any_in_question": float(in_question > 0),
        "redundancy": math.log1p(redundancy),
        "single_cap_at_start": float(i == 0 and text_len == 1 and tokens[i].capitalized),
        "log_distance": math.log1p(distance),
        "near_question": float(distance <= 3),
        "left_is_qword": float(i > 0 and tokens[i - 1].stem in question.term_set and not tokens[i - 1].stop),
        "right_is_qword": float(j + 1 < len(tokens) and tokens[j + 1].stem in question.term_set and not tokens[j + 1].stop),
        "left_is_punct": float(i == 0 or tokens[i - 1].punct),
        "right_is_punct": float(j + 1 >= len(tokens) or tokens[j + 1].punct),
        "left_prep": float(i > 0 and tokens[i - 1].lower in {"in", "at", "on", "from", "near", "by", "of", "to", "into"}),
        "log_len": math.log1p(text_len),
        "len1": float(text_len == 1),
        "len2_3": float(2 <= text_len <= 3),
        "len4_6": float(4 <= text_len <= 6),
        "len7p": float(text_len >= 7),
        "has_comma": float(any(t.text == "," for t in span)),
        "has_other_punct": float(any(t.punct and t.text not in {",", "$", "%", "-", "€", "£"} for t in span)),
        "stop_frac": sum(1 for t in words_in_span if t.stop) / max(text_len, 1),
        "cap_frac": sum(1 for t in words_in_span if t.capitalized) / max(text_len, 1),
        "sentence_start": float(i == 0),
        "matched_before": float(any(k < i for k in matched_positions)),
        "matched_after": float(any(k > j for k in matched_positions)),
        "question_negated": float(question.negated),  # the same for all of a question's spans: for the confidence
        "negation_unmatched": float(question.negated and not view.negated),
    }
    kinds = candidate_kinds(span, " ".join(t.text for t in span))
    compatible = _TYPE_COMPATIBLE[question.answer_type]
    features["type_match"] = float(bool(kinds & compatible))
    for kind in kinds:
        features[f"kind={kind}"] = 1.0
        features[f"q={question.answer_type}|kind={kind}"] = 1.0
    features[f"wh={question.wh}|len={min(text_len, 5)}"] = 1.0
    # "Acme chairman Jane Roe": a name before a role is the organization, one after it the person.
    if right_word in _PERSON_NOUNS:
        features[f"q={question.answer_type}|role_after"] = 1.0
    if left_word in _PERSON_NOUNS:
        features[f"q={question.answer_type}|role_before"] = 1.0
    if left_word in _CONTEXT_WORDS:
        features[f"wh={question.wh}|left={left_word}"] = 1.0
    if right_word in _CONTEXT_WORDS:
        features[f"wh={question.wh}|right={right_word}"] = 1.0
    return features


@dataclass
class Reading:
    """What the answerer reads: the retrieved passages and the index's term weights and encoder."""

    hits: Sequence[Hit]
    passages: Sequence[Passage]
    idf: Callable[[str], float]
    embed: Callable[[list[str]], np.ndarray] | None = None
    query_vector: np.ndarray | None = None
    span_scores: Callable[[Sequence[Passage]], list[SpanScores]] | None = None


def candidates(question: Question, reading: Reading) -> list[Candidate]:
    """Spans of the most question-like sentences, each with its feature vector."""
    hits, passages, embed, query_vector = reading.hits, reading.passages, reading.embed, reading.query_vector
    views = sentence_views(question, passages, reading.idf)
    all_sentences = [" " + normalize(" ".join(t.text for t in v.tokens)) + " " for v in views]
    views.sort(key=lambda v: (-(v.overlap + 0.02 / (v.passage_index + 1)), v.passage_index, v.start))
    span_scores = reading.span_scores(passages) if reading.span_scores is not None and passages else None
    best_span = FLOOR
    kept = views[:SENTENCES_CONSIDERED]
    if span_scores is not None:
        best_spans = [(p_index, *s.best()) for p_index, s in enumerate(span_scores)]
        best_span = max(logp for _, logp, _, _ in best_spans)
        # the sentences holding each passage's likeliest span stay, however few question words they share
        holds_best = {(passages[p_index].source, passages[p_index].start + first) for p_index, _, first, _ in best_spans}
        kept += [v for v in views[SENTENCES_CONSIDERED:]
                 if any(source == passages[v.passage_index].source and v.start <= first < v.end
                        for source, first in holds_best)]
    views = kept
    for rank, view in enumerate(views, 1):
        view.rank = rank
    if embed is not None and query_vector is not None and views:
        texts = [_slice(passages[v.passage_index], v.start, v.end) for v in views]
        similarities = embed(texts) @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
        for view, similarity in zip(views, similarities):
            view.dense = float(similarity)
    fused_max = max((h.score for h in hits), default=0.0)
    asks_for_actor = _asks_for_actor(question)
    found: list[Candidate] = []
    for view in views:
        tokens = view.tokens
        hit = hits[view.passage_index] if view.passage_index < len(hits) else None
        blocked = _topic_names(tokens, question)
        if asks_for_actor:
            blocked = [a or b for a, b in zip(blocked, _speakers(tokens))]
        for i, first in enumerate(tokens):
            if not _edge_ok(first, True) or blocked[i] or (question.wh == "who" and _after_place_preposition(tokens, i)):
                continue
            titled = named = False
            n_words = 0
            for j in range(i, len(tokens)):
                if not tokens[j].punct:
                    n_words += 1
                if n_words > MAX_SPAN_WORDS:
                    break
                if tokens[j].text in {".", ";", "!", "?", ":", "(", ")", "\"", "“", "”"} and j > i:
                    break
                if blocked[j]:
                    break  # a span repeating a name the question gives is its topic, not its answer
                if tokens[j].capitalized and not tokens[j].punct:
                    if tokens[j].lower in _PERSON_NOUNS:
                        titled = True
                    else:
                        named = True
                if titled and named:
                    break  # "Acme CEO Jane Roe" is two answers (an organization, a person), not one
                if not _edge_ok(tokens[j], False):
                    continue
                start, end = tokens[i].start, tokens[j].end
                text = _slice(passages[view.passage_index], start, end)
                feats = _span_features(question, view, i, j, view.passage_index + 1, hit, fused_max,
                                       _mentions(normalize(text), all_sentences))
                if span_scores is not None:
                    passage = passages[view.passage_index]
                    net = span_scores[view.passage_index].span(start - passage.start, end - passage.start)
                    feats["span_net"] = net / 10
                    feats["span_net_gap"] = (net - best_span) / 10
                found.append(Candidate(view.passage_index, (view.start, view.end), start, end, text, feats))
    return found


def _slice(passage: Passage, start: int, end: int) -> str:
    """The article text at absolute offsets start:end, which lie inside `passage`."""
    return passage.text[start - passage.start : end - passage.start]


def _mentions(normalized: str, sentences: Sequence[str]) -> int:
    """In how many other retrieved sentences the span's words recur (answer redundancy)."""
    if not normalized:
        return 0
    needle = f" {normalized} "
    return max(sum(needle in s for s in sentences) - 1, 0)


# ----------------------------------------------------------------------------- scoring


@dataclass
class Model:
    weights: dict[str, float]
    confidence: dict[str, float]  # logistic calibration of the best span's margin features
    threshold: float


@lru_cache(maxsize=1)
def load_model(path: str = str(WEIGHTS_FILE)) -> Model:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return Model(data["weights"], data["confidence"], float(data["threshold"]))


def score(candidate_features: dict[str, float], weights: dict[str, float]) -> float:
    return sum(weights.get(name, 0.0) * value for name, value in candidate_features.items())


def confidence_features(best: Mapping[str, float], scores: Sequence[float], question_terms: int) -> dict[str, float]:
    """What the calibration sees: how far the best span stands out, how well its sentence matches,
    what is asked and found (a name for a who-question is right more often than a phrase for a what)
    and whether the question denies something its sentence does not."""
    ordered = sorted(scores, reverse=True)
    second = ordered[1] if len(ordered) > 1 else ordered[0] - 5.0
    features = {
        "best": ordered[0],
        "margin": min(ordered[0] - second, 5.0),
        "sent_overlap": best.get("sent_overlap", 0.0),
        "passage_overlap": best.get("passage_overlap", 0.0),
        "names_missing": best.get("names_missing", 0.0),
        "passage_names_missing": best.get("passage_names_missing", 0.0),
        "sent_dense": best.get("sent_dense", 0.0),
        "span_net": best.get("span_net", FLOOR / 10),
        "span_net_gap": best.get("span_net_gap", FLOOR / 10),
        "type_match": best.get("type_match", 0.0),
        "passage_fused": best.get("passage_fused", 0.0),
        "question_negated": best.get("question_negated", 0.0),
        "negation_unmatched": best.get("negation_unmatched", 0.0),
        "terms": min(question_terms, 8) / 8,
    }
    for wh in QUESTION_WORDS:  # one of these is 1: together they are the intercept
        features[f"wh={wh}"] = best.get(f"wh={wh}", 0.0)
    for kind in CANDIDATE_KINDS:
        features[f"kind={kind}"] = best.get(f"kind={kind}", 0.0)
    return features


def calibrated(features: dict[str, float], weights: dict[str, float]) -> float:
    z = score(features, weights)
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


# ----------------------------------------------------------------------------- the answer


@dataclass
class Citation:
    source: str
    title: str
    date: str | None
    start: int
    end: int
    quote: str


@dataclass
class Answer:
    question: str
    answer: str | None
    confidence: float
    sentence: str | None
    sentence_start: int | None  # absolute offsets of `sentence` in the first cited article
    answer_start: int | None
    answer_end: int | None
    citations: list[Citation]


def normalize(text: str) -> str:
    """SQuAD normalization: lowercase, punctuation deleted (ASCII and Unicode, curly quotes too),
    a/an/the dropped, whitespace collapsed."""
    text = "".join(c for c in text.lower() if c not in string.punctuation and not unicodedata.category(c).startswith("P"))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _abstention(question_text: str, confidence: float) -> Answer:
    return Answer(question_text, None, confidence, None, None, None, None, [])


def answer(question_text: str, reading: Reading, model: Model | None = None) -> Answer:
    """The best supported span of the passages read, or an abstention."""
    model = model or load_model()
    question = analyze_question(question_text)
    fact = article_fact(question, reading)
    if fact is not None:
        return fact if fact.confidence >= model.threshold else _abstention(question_text, fact.confidence)
    found = candidates(question, reading)
    passages = reading.passages
    if not found:
        return _abstention(question_text, 0.0)
    scores = [score(c.features, model.weights) for c in found]
    for candidate, value in zip(found, scores):
        candidate.score = value
    best = max(found, key=lambda c: (c.score, -c.passage_index, -c.start))
    confidence = calibrated(confidence_features(best.features, scores, len(question.term_set)), model.confidence)
    if confidence < model.threshold:
        return _abstention(question_text, confidence)
    citations = _citations(best, found, passages)
    sentence = _slice(passages[best.passage_index], *best.sentence)
    return Answer(question_text, best.text, confidence, sentence, best.sentence[0], best.start, best.end, citations)


def answer_with_reader(question_text: str, reading: Reading, reader: "TransformersReader") -> Answer:
    """The answer a transformers QA model (--reader) picks instead of the fitted scorer.

    Its own span probability is the confidence, and it abstains when every window it read ranks its
    "no answer" position above its best span (the built-in threshold is fitted to the built-in scorer,
    not to another model). Who wrote an article and when it came out are still read from its header.
    """
    fact = article_fact(analyze_question(question_text), reading)
    if fact is not None:
        return fact
    found = []
    for index, passage in enumerate(reading.passages):
        sentences = split_sentences(passage.text)
        for span in reader.spans(question_text, passage.text):
            start, end = _whole_words(passage.text, span.start, span.end)
            if span.probability <= span.null_probability or start >= end:
                continue
            sentence = next(((passage.start + a, passage.start + b) for a, b in sentences if a <= start < b),
                            (passage.start + start, passage.start + end))
            found.append(Candidate(index, sentence, passage.start + start, passage.start + end,
                                   passage.text[start:end], {}, span.probability))
    if not found:
        return _abstention(question_text, 0.0)
    best = max(found, key=lambda c: (c.score, -c.passage_index, -c.start))
    sentence = _slice(reading.passages[best.passage_index], *best.sentence)
    return Answer(question_text, best.text, best.score, sentence, best.sentence[0], best.start, best.end,
                  _citations(best, found, reading.passages))


# ----------------------------------------------------------------------------- questions about an article

_ARTICLE_NOUNS = {"article", "articles", "column", "editorial", "byline"}
_AUTHORING = {"wrote", "write", "writes", "written", "author", "authored", "authors", "penned", "writer", "reporter"}
_PUBLISHING = {"published", "publish", "posted", "dated", "appeared", "released", "written", "ran"}


def asks_about_article(question: Question) -> str | None:
    """"author" or "published" when the question asks who wrote an article or when it came out: the
    article's byline or dateline answers that, not the story it tells."""
    if not question.word_set & _ARTICLE_NOUNS:
        return None
    if question.wh == "who" and question.word_set & _AUTHORING:
        return "author"
    if question.wh == "when" and question.word_set & _PUBLISHING:
        return "published"
    return None


def article_fact(question: Question, reading: Reading) -> Answer | None:
    """The byline or dateline of the article the question is about, when a passage read holds it.

    That article is the one holding most of the retrieval score of the passages read, and its share
    of it is the confidence: the header itself is read, not guessed; which article is meant is not.
    """
    fact = asks_about_article(question)
    if fact is None or not reading.passages:
        return None
    share: dict[str, float] = {}
    for hit, passage in zip(reading.hits, reading.passages):
        share[passage.source] = share.get(passage.source, 0.0) + max(hit.score, 0.0)
    total = sum(share.values())
    article = max(share, key=share.get)
    find = byline_span if fact == "author" else dateline_span
    for passage in (p for p in reading.passages if p.source == article):
        span = find(passage.text, passage.start)
        if span is None:
            continue
        line_start = passage.text.rfind("\n", 0, span[0]) + 1
        line_end = passage.text.find("\n", span[1])
        line_end = len(passage.text) if line_end < 0 else line_end
        start, end = passage.start + span[0], passage.start + span[1]
        quote = passage.text[span[0] : span[1]]
        return Answer(question.text, quote, share[article] / total if total > 0 else 0.0,
                      passage.text[line_start:line_end], passage.start + line_start, start, end,
                      [Citation(passage.source, passage.title, passage.date, start, end, quote)])
    return None


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """A span of word pieces widened to whole words and stripped of the punctuation around it."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
        end += 1
    while start < end and text[start] in _EDGE_PUNCTUATION:
        start += 1
    while end > start and text[end - 1] in _EDGE_PUNCTUATION:
        end -= 1
    return start, end


def _citations(best: Candidate, found: Sequence[Candidate], passages: Sequence[Passage]) -> list[Citation]:
    """The best span, then the same answer in every other article where it scores nearly as well."""
    key = normalize(best.text)
    cited: dict[str, Citation] = {}
    for candidate in sorted(found, key=lambda c: -c.score):
        passage = passages[candidate.passage_index]
        if passage.source in cited or normalize(candidate.text) != key:
            continue
        if candidate is not best and candidate.score < best.score - 1.0:
            break
        cited[passage.source] = Citation(passage.source, passage.title, passage.date, candidate.start,
                                         candidate.end, candidate.text)
    return list(cited.values())
