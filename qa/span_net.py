"""Small trained networks that score where an answer starts and ends in a passage.

Each reads the default MiniLM's token vectors of the question and of a passage, encoded apart (so a
passage's vectors never depend on the question and can be reused), lines every passage token up with
the question's tokens by attention, marks the tokens whose word the question uses, runs a two-layer
bidirectional GRU over the passage and scores each token as the answer's first and last. Two are
shipped: one reads MiniLM's last layer, the other its middle layer beside it (qa/embed.py
MIDDLE_LAYER); the answerer uses their average (`SpanNetEnsemble`), which answers better than
either alone (eval/README.md). The span features of qa/answer.py include these scores.
`qa/fit_span_net.py` trains them on SQuAD; inference is numpy only, so answering needs no torch when
the index has its ONNX export.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.embed import TokenStates
from qa.retrieve import STOPWORDS

LAST_LAYER_FILE = Path(__file__).with_name("span_net.safetensors")
MIDDLE_LAYER_FILE = Path(__file__).with_name("span_net_middle.safetensors")
MAX_ANSWER_TOKENS = 30
FLOOR = -30.0  # the log-probability of a span the network did not see (past its token limit)
_WORD = re.compile(r"\w+")


def question_words(question: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(question)} - STOPWORDS


def real_tokens(states: TokenStates, width: int | None = None) -> TokenStates:
    """Without [CLS]/[SEP]-like tokens, which cover no text: the network sees the text's tokens only,
    and of each token's vector the first `width` values (the last layer's, when it reads no other)."""
    keep = states.offsets[:, 1] > states.offsets[:, 0]
    return TokenStates(np.asarray(states.vectors[keep, :width], np.float32), np.asarray(states.offsets[keep]))


def question_word_marks(text: str, offsets: np.ndarray, words: set[str]) -> np.ndarray:
    """1 for each token whose whole word (case aside) is one of the question's content words."""
    spans = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
    starts = [s for s, _, _ in spans]
    marks = np.zeros((len(offsets), 1), np.float32)
    for k, (a, _) in enumerate(offsets):
        i = bisect_right(starts, a) - 1
        if i >= 0 and spans[i][0] <= a < spans[i][1] and spans[i][2] in words:
            marks[k] = 1.0
    return marks


@dataclass
class SpanScores:
    """Per token of one passage: log-probability that the answer starts / ends there."""

    offsets: np.ndarray  # (tokens, 2), relative to the passage text
    start: np.ndarray
    end: np.ndarray

    def span(self, first_char: int, end_char: int) -> float:
        """Log-probability of the span covering characters first_char:end_char of the passage."""
        i = int(np.searchsorted(self.offsets[:, 1], first_char, side="right"))
        j = int(np.searchsorted(self.offsets[:, 0], end_char, side="left")) - 1
        if i >= len(self.offsets) or j < i:
            return FLOOR
        return max(float(self.start[i] + self.end[j]), FLOOR)

    def best(self, max_tokens: int = MAX_ANSWER_TOKENS) -> tuple[float, int, int]:
        """(log-probability, first char, end char) of the passage's likeliest span of up to max_tokens tokens."""
        if not len(self.start):
            return FLOOR, 0, 0
        last = [k + int(self.end[k : k + max_tokens].argmax()) for k in range(len(self.end))]
        totals = self.start + self.end[last]
        first = int(totals.argmax())
        return max(float(totals[first]), FLOOR), int(self.offsets[first, 0]), int(self.offsets[last[first], 1])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return x
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


class SpanNet:
    """The trained network's forward pass in numpy (the same arithmetic as fit_span_net.Network)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = {name: np.asarray(value, np.float32) for name, value in weights.items()}
        self.layers = sum(1 for name in self.w if name.startswith("rnn.weight_ih_l") and "reverse" not in name)

    def _bidirectional(self, x: np.ndarray, lengths: list[int], layer: int) -> np.ndarray:
        """Both directions of one GRU layer over a padded batch (B, T, D), stepped together (half the
        Python steps); the backward direction reads each sequence reversed within its own length."""
        names = (f"l{layer}", f"l{layer}_reverse")
        w_ih, w_hh, b_ih, b_hh = (np.stack([self.w[f"rnn.{kind}_{name}"] for name in names])
                                  for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        size = w_hh.shape[2]
        reversed_x = np.zeros_like(x)
        for b, n in enumerate(lengths):
            reversed_x[b, :n] = x[b, :n][::-1]
        from_input = np.stack([x, reversed_x]) @ w_ih.transpose(0, 2, 1)[:, None] + b_ih[:, None, None]
        w_hh_t = w_hh.transpose(0, 2, 1)
        h = np.zeros((2, x.shape[0], size), np.float32)
        out = np.zeros((2, x.shape[0], x.shape[1], size), np.float32)
        for t in range(x.shape[1]):
            from_state = h @ w_hh_t + b_hh[:, None]
            gates = from_input[:, :, t]
            reset = _sigmoid(gates[..., :size] + from_state[..., :size])
            update = _sigmoid(gates[..., size : 2 * size] + from_state[..., size : 2 * size])
            new = np.tanh(gates[..., 2 * size :] + reset * from_state[..., 2 * size :])
            h = (1.0 - update) * new + update * h
            out[:, :, t] = h
        backward = np.zeros_like(out[1])
        for b, n in enumerate(lengths):
            backward[b, :n] = out[1, b, :n][::-1]
        return np.concatenate([out[0], backward], axis=2)

    def scores(self, question: TokenStates, question_text: str, passages: Sequence[TokenStates],
               passage_texts: Sequence[str]) -> list[SpanScores]:
        w = self.w
        width = w["proj.weight"].shape[1]
        question = real_tokens(question, width)
        passages = [real_tokens(p, width) for p in passages]
        lengths = [len(p.offsets) for p in passages]
        if not passages or not len(question.offsets) or max(lengths) == 0:
            return [SpanScores(p.offsets, np.zeros(len(p.offsets)), np.zeros(len(p.offsets))) for p in passages]
        q = np.maximum(question.vectors @ w["qproj.weight"].T + w["qproj.bias"], 0.0)
        pooling = (q @ w["qpool.weight"].T + w["qpool.bias"])[:, 0]
        pooling = np.exp(pooling - pooling.max())
        question_vector = (pooling / pooling.sum()) @ q
        words = question_words(question_text)
        steps = max(lengths)
        x = np.zeros((len(passages), steps, 3 * q.shape[1] + 1), np.float32)
        for b, (states, text) in enumerate(zip(passages, passage_texts)):
            p = np.maximum(states.vectors @ w["proj.weight"].T + w["proj.bias"], 0.0)
            attention = p @ q.T
            attention = np.exp(attention - attention.max(axis=1, keepdims=True))
            aligned = (attention / attention.sum(axis=1, keepdims=True)) @ q
            x[b, : lengths[b]] = np.concatenate(
                [p, aligned, p * aligned, question_word_marks(text, states.offsets, words)], axis=1)
        for layer in range(self.layers):
            x = self._bidirectional(x, lengths, layer)
        start = (x @ w["start.weight"].T + w["start.bias"]) @ question_vector
        end = (x @ w["end.weight"].T + w["end.bias"]) @ question_vector
        return [SpanScores(states.offsets, _log_softmax(start[b, :n]), _log_softmax(end[b, :n]))
                for b, (states, n) in enumerate(zip(passages, lengths))]


@lru_cache(maxsize=None)
def _blas():
    """numpy's BLAS, to run the networks on one thread: their matrices (a few hundred rows, one GRU
    step at a time) are too small to share out, and on 2 cores a second thread made a question slower
    (eval/README.md)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class SpanNetEnsemble:
    """Networks read together: a token's start (end) log-probability is the mean of theirs, renormalized."""

    def __init__(self, nets: Sequence[SpanNet]):
        self.nets = list(nets)

    def scores(self, question: TokenStates, question_text: str, passages: Sequence[TokenStates],
               passage_texts: Sequence[str]) -> list[SpanScores]:
        with _blas().limit(limits=1, user_api="blas"):
            each = [net.scores(question, question_text, passages, passage_texts) for net in self.nets]
        return [SpanScores(per_net[0].offsets,
                           _log_softmax(np.mean([s.start for s in per_net], axis=0)),
                           _log_softmax(np.mean([s.end for s in per_net], axis=0)))
                for per_net in zip(*each)]


@lru_cache(maxsize=None)
def load_span_net(path: str) -> SpanNet:
    from safetensors.numpy import load_file

    return SpanNet(load_file(path))


def load_span_nets() -> SpanNetEnsemble:
    """The shipped networks, as the answerer reads them."""
    return SpanNetEnsemble([load_span_net(str(LAST_LAYER_FILE)), load_span_net(str(MIDDLE_LAYER_FILE))])
