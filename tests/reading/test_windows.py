"""Windowing and span decoding, the parts the reader shares with its training."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer

from qa.reading.spans import MAX_ANSWER_TOKENS, best_spans, window_best
from qa.reading.windows import MAX_QUESTION_TOKENS, Window, Windower
from qa.search.embed import packaged_model_dir


@pytest.fixture(scope="module")
def windower() -> Windower:
    return Windower(Tokenizer.from_file(str(packaged_model_dir() / "tokenizer.json")))


def test_a_long_passage_is_covered_by_overlapping_windows(windower):
    passage = " ".join(f"word{i}" for i in range(900))
    windows = windower.windows("What is the last word?", ["Short.", passage])
    assert [w.passage for w in windows][:2] == [0, 1] and len(windows) > 3
    for w in windows:
        assert len(w) <= windower.max_tokens and w.ids[0] == windower.cls and w.ids[-1] == windower.sep
        assert w.type_ids == [0] * w.first_passage_piece + [1] * (len(w) - w.first_passage_piece)
        assert w.ids[w.first_passage_piece - 1] == windower.sep
    long = windows[1:]
    covered = [(w.offsets[w.first_passage_piece][0], w.offsets[len(w) - 2][1]) for w in long]
    assert covered[0][0] == 0 and covered[-1][1] == len(passage)
    assert all(b[0] < a[1] for a, b in zip(covered, covered[1:]))
    shared = len(set(long[0].offsets[long[0].first_passage_piece:-1]) & set(long[1].offsets[long[1].first_passage_piece:-1]))
    assert shared == windower.stride


def test_pieces_covering_finds_an_answer_only_when_the_window_holds_all_of_it(windower):
    passage = "The terminal will be built by Nordvik Construction in 2027. " + "Filler text here. " * 300
    windows = windower.windows("Who builds it?", [passage])
    start = passage.index("Nordvik")
    first, last = windows[0].pieces_covering(start, start + len("Nordvik Construction"))
    assert windows[0].offsets[first][0] == start and windows[0].offsets[last][1] == start + len("Nordvik Construction")
    assert windows[-1].pieces_covering(start, start + 7) is None
    assert windows[0].pieces_covering(start, len(passage)) is None  # runs past the window


def test_a_long_question_keeps_room_for_the_passage(windower):
    (window,) = windower.windows("why " * 500, ["The answer is here."])
    assert window.first_passage_piece == MAX_QUESTION_TOKENS + 2


def test_best_span_is_inside_the_passage_ordered_short_and_measured_against_no_answer():
    n = 60
    window = Window(0, list(range(n)), [0] * 5 + [1] * (n - 5), [(0, 0)] * 5 + [(i, i + 1) for i in range(n - 6)] + [(0, 0)], 5)
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=n), rng.normal(size=n)
    start[2] = end[2] = 50.0  # question pieces are never chosen
    start[40], end[12] = 30.0, 30.0  # nor an end before its start
    start[n - 1] = end[n - 1] = 50.0  # nor the closing [SEP]
    start[0], end[0] = 1.0, 2.0
    found = window_best(window, start, end, per_window=25)
    assert len(found) == 25
    for margin, i, j in found:
        assert 5 <= i <= j < n - 1 and j - i < MAX_ANSWER_TOKENS
        assert margin == pytest.approx(start[i] + end[j] - 3.0)
    assert [m for m, _, _ in found] == sorted((m for m, _, _ in found), reverse=True)


@pytest.mark.parametrize("passage_pieces", [3, 45])
def test_best_spans_of_a_window_are_every_allowed_span_best_first_and_no_more(passage_pieces):
    n = 5 + passage_pieces + 1
    window = Window(0, list(range(n)), [0] * 5 + [1] * (n - 5), [(0, 0)] * 5 + [(i, i + 1) for i in range(n - 6)] + [(0, 0)], 5)
    rng = np.random.default_rng(passage_pieces)
    start, end = rng.normal(size=n), rng.normal(size=n)
    allowed = sorted(((start[i] + end[j] - start[0] - end[0], i, j) for i in range(5, n - 1)
                      for j in range(i, min(i + MAX_ANSWER_TOKENS, n - 1))), reverse=True)
    found = window_best(window, start, end, per_window=2000)
    assert len(found) == len(allowed)  # 6 spans of 3 pieces, not 2,000
    assert [(i, j) for _, i, j in found] == [(i, j) for _, i, j in allowed]
    assert [m for m, _, _ in found] == pytest.approx([m for m, _, _ in allowed])


def test_best_spans_ranks_windows_of_different_passages_together():
    def window(number):
        return Window(number, [0] * 8, [0] * 2 + [1] * 6, [(0, 0)] * 2 + [(i, i + 1) for i in range(5)] + [(0, 0)], 2)

    start = np.zeros((2, 8))
    end = np.zeros((2, 8))
    start[0, 3] = end[0, 3] = 1.0
    start[1, 4] = end[1, 5] = 2.0
    start[1, 0] = 3.0  # passage 1 says "no answer" strongly: its span's margin is 4 - 3 = 1 < 2
    found = best_spans([window(0), window(1)], start, end)
    assert [(s.passage, s.start, s.end) for s in found] == [(0, 1, 2), (1, 2, 4)]
    assert [s.margin for s in found] == [2.0, 1.0]
