"""The best answer span of a batch of windows, scored so that spans of different passages compare.

A span's score is its start + end logit minus its own window's "no answer" logits ([CLS] as start
and end): the reader was trained with a no-answer option in every window, including windows of
passages that do not hold the answer, so the margin says how much better the span is than nothing
in the text it came from (Clark & Gardner 2018 discuss why raw per-window softmaxes do not compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qa.reading.windows import Window

MAX_ANSWER_TOKENS = 30


@dataclass
class SpanChoice:
    passage: int
    start: int  # character offsets in the passage
    end: int
    margin: float  # start + end logit minus the window's no-answer logits


def window_best(window: Window, start: np.ndarray, end: np.ndarray, per_window: int = 1) -> list[tuple[float, int, int]]:
    """The `per_window` best (margin, first piece, last piece) of one window's logits."""
    first, stop = window.first_passage_piece, len(window) - 1
    if stop <= first:
        return []
    s, e = start[first:stop], end[first:stop]
    # pair[i, d]: the span from piece i to piece i + d, d < MAX_ANSWER_TOKENS (-inf past the window's end);
    # a band, not every (start, end) pair: the full square sorted was ~12% of the answer stage
    padded_end = np.concatenate([e, np.full(MAX_ANSWER_TOKENS - 1, -np.inf, dtype=e.dtype)])
    pair = s[:, None] + np.lib.stride_tricks.sliding_window_view(padded_end, MAX_ANSWER_TOKENS)[: len(s)]
    null = float(start[0] + end[0])
    flat = pair.ravel()
    count = min(per_window, flat.size)
    top = np.argpartition(flat, -count)[-count:]
    best = []
    for index in top[np.argsort(flat[top])[::-1]]:
        if flat[index] == -np.inf:  # past the window's end: fewer spans than asked for
            break
        i, length = divmod(int(index), MAX_ANSWER_TOKENS)
        best.append((float(flat[index]) - null, first + i, first + i + length))
    return best


def best_spans(windows: Sequence[Window], start: np.ndarray, end: np.ndarray, per_window: int = 1) -> list[SpanChoice]:
    """Candidate spans of every window, best first."""
    found = []
    for row, window in enumerate(windows):
        for margin, i, j in window_best(window, start[row], end[row], per_window):
            found.append(SpanChoice(window.passage, window.offsets[i][0], window.offsets[j][1], margin))
    found.sort(key=lambda c: -c.margin)
    return found
