"""A user's own transformers extractive-QA model as the reader (`qa ask --reader MODEL`).

The model, a name in the local Hugging Face cache or a folder, is loaded offline and run with
torch over the same (question, passage) windows and span decoding as the built-in reader
(qa/reading/read.py), so its answers are cited the same way. It has no calibration of its own: it abstains
when its "no answer" logits beat its best span, and its confidence is the sigmoid of that margin.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from qa.errors import QAError
from qa.reading.read import Calibration
from qa.reading.spans import SpanChoice, best_spans
from qa.reading.windows import MAX_QUESTION_TOKENS, MAX_TOKENS, STRIDE, Window, padded
from qa.search.embed import damaged_weights, quiet_model_libraries

OWN_DECISION = Calibration(slope=1.0, intercept=0.0, threshold=0.5)  # margin > 0: the model's own choice


class ReaderError(QAError):
    """The --reader model cannot be loaded or used."""


class TransformersReader:
    """Start/end logits from a transformers question-answering model."""

    def __init__(self, name: str):
        quiet_model_libraries()
        damage = damaged_weights(name)
        if damage:
            raise ReaderError(damage)
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
        self.calibration = OWN_DECISION

    def windows(self, question: str, passages: Sequence[str]) -> list[Window]:
        """Each passage in overlapping windows that fit beside the question (cut if very long)."""
        pieces = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(pieces) > MAX_QUESTION_TOKENS:
            question = question[: pieces[MAX_QUESTION_TOKENS - 1][1]]
        out = []
        for number, passage in enumerate(passages):
            encoded = self.tokenizer(question, passage, truncation="only_second", max_length=self.max_tokens,
                                     stride=min(STRIDE, self.max_tokens // 4), return_overflowing_tokens=True,
                                     return_offsets_mapping=True)
            for row, ids in enumerate(encoded["input_ids"]):
                sequence = encoded.sequence_ids(row)
                inside = [i for i, s in enumerate(sequence) if s == 1]
                if not inside:
                    continue
                types = encoded["token_type_ids"][row] if "token_type_ids" in encoded else [0] * len(ids)
                offsets = [tuple(span) if s == 1 else (0, 0) for span, s in zip(encoded["offset_mapping"][row], sequence)]
                out.append(Window(number, list(ids), list(types), offsets, inside[0]))
        return out

    def spans(self, question: str, passages: Sequence[str], per_window: int = 1) -> list[SpanChoice]:
        import torch

        windows = self.windows(question, passages)
        if not windows:
            return []
        inputs = {name: torch.from_numpy(values) for name, values in padded(windows).items()
                  if name in self.tokenizer.model_input_names}
        with torch.no_grad():
            output = self.model(**inputs)
        return best_spans(windows, output.start_logits.float().numpy(), output.end_logits.float().numpy(), per_window)


@lru_cache(maxsize=2)
def load_reader(name: str) -> TransformersReader:
    """One loaded model per name per process."""
    return TransformersReader(name)
