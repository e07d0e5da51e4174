"""An optional transformers extractive-QA model as the reader (`qa ask --reader MODEL`).

The built-in answerer (qa/answer.py) needs no such model; a user who has one, as a name in the
local Hugging Face cache or a folder, can have it pick the spans instead. It is loaded offline and
run with torch, the way transformers' question-answering pipeline ran it (that pipeline is gone from
transformers 5): (question, passage) windows, start/end logits, the best short span per window
against the window's [CLS] "no answer" score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from qa.errors import QAError

MAX_TOKENS = 384  # question + passage window, in word pieces
STRIDE = 128  # word pieces shared by consecutive windows of a long passage
MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 30


class ReaderError(QAError):
    """The --reader model cannot be loaded or used."""


@dataclass
class Window:
    """One (question, passage piece) input and the passage characters each word piece covers."""

    ids: list[int]
    type_ids: list[int]
    offsets: list[tuple[int, int]]  # character range in the passage; (0, 0) outside it
    in_passage: list[bool]


@dataclass
class Span:
    window: int
    start: int  # character offsets in the passage
    end: int
    probability: float  # P(start) * P(end) within its window
    null_probability: float  # the window's P(no answer): its [CLS] piece as both start and end


class TransformersReader:
    """Start/end logits from a transformers question-answering model."""

    def __init__(self, name: str):
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from transformers import AutoModelForQuestionAnswering, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
            self.model = AutoModelForQuestionAnswering.from_pretrained(name, local_files_only=True).eval()
        except Exception as exc:  # the hub client and the loaders raise many types; all mean "not loadable"
            raise ReaderError(f"cannot load reader {name!r} offline ({type(exc).__name__}); pass --reader a local "
                              "folder holding a transformers question-answering model and its tokenizer") from None
        if not self.tokenizer.is_fast:
            raise ReaderError(f"reader {name!r} has no fast tokenizer, which the answer's character offsets need")
        self.max_tokens = min(int(self.tokenizer.model_max_length or MAX_TOKENS), MAX_TOKENS)

    def windows(self, question: str, passage: str) -> list[Window]:
        """The passage in overlapping windows that each fit beside the question (cut if very long)."""
        pieces = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(pieces) > MAX_QUESTION_TOKENS:
            question = question[: pieces[MAX_QUESTION_TOKENS - 1][1]]
        encoded = self.tokenizer(question, passage, truncation="only_second", max_length=self.max_tokens,
                                 stride=min(STRIDE, self.max_tokens // 4), return_overflowing_tokens=True,
                                 return_offsets_mapping=True)
        out = []
        for row, ids in enumerate(encoded["input_ids"]):
            in_passage = [sequence == 1 for sequence in encoded.sequence_ids(row)]
            types = encoded["token_type_ids"][row] if "token_type_ids" in encoded else [0] * len(ids)
            offsets = [tuple(span) if inside else (0, 0) for span, inside in zip(encoded["offset_mapping"][row], in_passage)]
            out.append(Window(list(ids), list(types), offsets, in_passage))
        return out

    def logits(self, batch: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) logits, shape (windows, longest window); padding gets -inf."""
        import torch

        length = max(len(window.ids) for window in batch)
        ids = np.zeros((len(batch), length), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros((len(batch), length), dtype=bool)
        for row, window in enumerate(batch):
            ids[row, : len(window.ids)] = window.ids
            types[row, : len(window.ids)] = window.type_ids
            mask[row, : len(window.ids)] = True
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}
        if "token_type_ids" in self.tokenizer.model_input_names:
            inputs["token_type_ids"] = torch.from_numpy(types)
        with torch.no_grad():
            output = self.model(**inputs)
        return tuple(np.where(mask, t.float().numpy(), -np.inf) for t in (output.start_logits, output.end_logits))

    def spans(self, question: str, passage: str, per_window: int = 3) -> list[Span]:
        windows = self.windows(question, passage)
        start, end = self.logits(windows)
        return best_spans(windows, start, end, per_window)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    top = x[np.isfinite(x)].max()
    return x - top - np.log(np.exp(x - top).sum())


def best_spans(windows: Sequence[Window], start: np.ndarray, end: np.ndarray, per_window: int = 3) -> list[Span]:
    """The most probable well-formed spans of each window: inside the passage, start <= end, short."""
    spans = []
    for row, window in enumerate(windows):
        log_start, log_end = _log_softmax(start[row]), _log_softmax(end[row])
        inside = np.zeros(start.shape[1], dtype=bool)
        inside[: len(window.in_passage)] = window.in_passage
        pair = np.where(inside, log_start, -np.inf)[:, None] + np.where(inside, log_end, -np.inf)[None, :]
        ones = np.ones_like(pair, dtype=bool)
        pair = np.where(np.triu(ones) & ~np.triu(ones, MAX_ANSWER_TOKENS), pair, -np.inf)
        null = float(np.exp(log_start[0] + log_end[0]))
        for flat in np.argsort(pair, axis=None)[::-1][:per_window]:
            i, j = divmod(int(flat), pair.shape[1])
            if not np.isfinite(pair[i, j]):
                break
            spans.append(Span(row, window.offsets[i][0], window.offsets[j][1], float(np.exp(pair[i, j])), null))
    return spans


@lru_cache(maxsize=2)
def load_reader(name: str) -> TransformersReader:
    """One loaded model per name per process."""
    return TransformersReader(name)
