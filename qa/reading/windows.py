"""(question, passage) windows in word pieces, shared by the reader at question time and its training.

Both must cut text the same way, or the trained start/end positions would not mean the same pieces
at question time; this module needs only `tokenizers`, so query time stays free of torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MAX_TOKENS = 384  # [CLS] question [SEP] passage piece [SEP]
STRIDE = 128  # word pieces shared by consecutive windows of a long passage
MAX_QUESTION_TOKENS = 64


@dataclass
class Window:
    """One model input and, for each word piece, the passage characters it covers."""

    passage: int  # index of the passage among those windowed together
    ids: list[int]
    type_ids: list[int]
    offsets: list[tuple[int, int]]  # character range in the passage; (0, 0) outside it
    first_passage_piece: int  # position of the window's first passage piece

    def __len__(self) -> int:
        return len(self.ids)

    def pieces_covering(self, start: int, end: int) -> tuple[int, int] | None:
        """(first, last) positions of the passage pieces spanning characters [start, end), if all inside."""
        inside = range(self.first_passage_piece, len(self.ids) - 1)
        if not inside or start < self.offsets[inside[0]][0] or end > self.offsets[inside[-1]][1]:
            return None
        first = next(i for i in inside if self.offsets[i][1] > start)
        last = next(i for i in reversed(inside) if self.offsets[i][0] < end)
        return (first, last) if first <= last else None


class Windower:
    """Cuts questions and passages into windows with a BERT-style `tokenizers.Tokenizer`."""

    def __init__(self, tokenizer, max_tokens: int = MAX_TOKENS, stride: int = STRIDE):
        self.tokenizer = tokenizer
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls, self.sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if self.cls is None or self.sep is None:
            raise ValueError("the reader's tokenizer has no [CLS]/[SEP] pieces")
        self.max_tokens, self.stride = max_tokens, stride

    def question_ids(self, question: str) -> list[int]:
        return self.tokenizer.encode(question, add_special_tokens=False).ids[:MAX_QUESTION_TOKENS]

    def passage_pieces(self, passages: Sequence[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        encodings = self.tokenizer.encode_batch(list(passages), add_special_tokens=False)
        return [(e.ids, [tuple(o) for o in e.offsets]) for e in encodings]

    def windows(self, question: str, passages: Sequence[str],
                pieces: Sequence[tuple[list[int], list[tuple[int, int]]]] | None = None) -> list[Window]:
        """Every passage in windows that fit beside the question; `pieces` may be given pre-tokenized."""
        question_ids = self.question_ids(question)
        head = [self.cls, *question_ids, self.sep]
        room = self.max_tokens - len(head) - 1
        step = max(room - self.stride, 1)
        out = []
        for number, (ids, offsets) in enumerate(pieces if pieces is not None else self.passage_pieces(passages)):
            start = 0
            while True:
                piece_ids, piece_offsets = ids[start : start + room], offsets[start : start + room]
                out.append(Window(
                    passage=number,
                    ids=head + piece_ids + [self.sep],
                    type_ids=[0] * len(head) + [1] * (len(piece_ids) + 1),
                    offsets=[(0, 0)] * len(head) + piece_offsets + [(0, 0)],
                    first_passage_piece=len(head),
                ))
                if start + room >= len(ids):
                    break
                start += step
        return out


def padded(windows: Sequence[Window]) -> dict[str, np.ndarray]:
    """The windows as one zero-padded batch of model inputs (int64, as BERT exports take them)."""
    length = max(len(w) for w in windows)
    ids = np.zeros((len(windows), length), dtype=np.int64)
    types, mask = np.zeros_like(ids), np.zeros_like(ids)
    for row, window in enumerate(windows):
        ids[row, : len(window)] = window.ids
        types[row, : len(window)] = window.type_ids
        mask[row, : len(window)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
