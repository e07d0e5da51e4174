"""The built-in reader: MiniLM fine-tuned for extractive QA, shipped as a delta, run with onnxruntime.

What ships is `reader.safetensors`, the project's own difference from the packaged MiniLM weights
(whose sha256 embed.py verifies), and `reader.json`, its provenance, the calibration of its
confidence and its abstention threshold. The first question merges the two and exports the result
to ONNX in a cache folder (torch is needed that once, as for an index build); every later process
reads with onnxruntime and `tokenizers` alone. training/train_reader.py and training/make_delta.py
make both files.
"""

from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.errors import QAError
from qa.reading.spans import SpanChoice, best_spans
from qa.reading.windows import Windower, padded
from qa.search.cache import cached_folder
from qa.search.embed import (
    DEFAULT_WEIGHTS_SHA256,
    file_sha256,
    packaged_model_dir,
    quantize_int8,
    quiet_model_libraries,
    resolve_model,
)
from qa.search.onnx_encoder import QUERY_THREADS, onnx_session

DELTA_FILE = Path(__file__).with_name("reader.safetensors")
CARD_FILE = Path(__file__).with_name("reader.json")
ONNX_FILE = "reader.onnx"
TOKENIZER_FILE = "tokenizer.json"
EXPORT_MARK = "export.json"


class ReaderModelError(QAError):
    """The shipped reader cannot be built or loaded."""


LEAD_CAP = 10.0
"""A best span's lead over the runner-up counts up to this much: beyond it, the runner-up no longer matters."""


@dataclass
class Evidence:
    """What the confidence is computed from, for the best span of the passages read."""

    margin: float  # the span's margin over "no answer", less the rank penalty
    lead: float  # its margin less the best distinct runner-up's (LEAD_CAP when there is none)
    agreement: int  # other passages whose own best span is the same answer

    @property
    def counted_lead(self) -> float:
        """The lead as the confidence counts it: from 0 (a runner-up is not behind itself) to LEAD_CAP."""
        return min(max(self.lead, 0.0), LEAD_CAP)


@dataclass
class Calibration:
    """confidence = sigmoid(slope * margin + lead_slope * lead + agreement_slope * agreement + intercept);
    an answer from `threshold`, a best guess from `guess_threshold` (below it, no answer). A span's
    margin is its reader margin less `rank_penalty` per place its passage is ranked below the first:
    the retriever's vote in which span is answered, chosen with the reader on held-out articles."""

    slope: float
    intercept: float
    threshold: float
    rank_penalty: float = 0.0
    lead_slope: float = 0.0
    agreement_slope: float = 0.0
    guess_threshold: float | None = None  # None: no best guesses
    early_margin: float | None = None  # None: every passage is read (qa/reading/answer.py: EARLY_PASSAGES)

    def logit(self, evidence: Evidence) -> float:
        return (self.slope * evidence.margin + self.lead_slope * evidence.counted_lead
                + self.agreement_slope * evidence.agreement + self.intercept)

    def confidence(self, evidence: Evidence) -> float:
        z = max(min(self.logit(evidence), 30.0), -30.0)
        return 1.0 / (1.0 + math.exp(-z))

    def margin_needed(self, evidence: Evidence) -> float:
        """The margin over "no answer" at which, with the same lead and agreement, the confidence
        reaches the threshold."""
        rest = self.logit(evidence) - self.slope * evidence.margin
        return (math.log(self.threshold / (1.0 - self.threshold)) - rest) / self.slope


def load_card(path: Path = CARD_FILE) -> dict:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        calibration(card)
        return card
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReaderModelError(f"the reader's card {path} cannot be read ({type(exc).__name__}); reinstall qa") from None


def calibration(card: dict) -> Calibration:
    values = card["calibration"]
    guess, early = values.get("guess_threshold"), values.get("early_margin")
    return Calibration(float(values["slope"]), float(values["intercept"]), float(values["threshold"]),
                       float(values.get("rank_penalty", 0.0)), float(values.get("lead_slope", 0.0)),
                       float(values.get("agreement_slope", 0.0)), None if guess is None else float(guess),
                       None if early is None else float(early))


def merged_state(delta_path: Path, base_dir: Path) -> dict:
    """The base model's weights with the delta applied, as torch tensors named for BertForQuestionAnswering."""
    from safetensors.torch import load_file

    base = {f"bert.{k}": v for k, v in load_file(str(base_dir / "model.safetensors")).items()
            if not k.startswith("pooler.") and not k.endswith("position_ids")}
    delta = load_file(str(delta_path))
    for key, tensor in delta.items():
        if key.endswith(".up"):
            name = key[: -len(".up")]
            base[name] = base[name] + (tensor.float() @ delta[name + ".down"].float())
        elif key.endswith(".delta"):
            name = key[: -len(".delta")]
            base[name] = base[name] + tensor.float()
        elif key.endswith(".new"):
            base[key[: -len(".new")]] = tensor.float()
    return {k: v.contiguous() for k, v in base.items()}


def export_reader(delta_path: Path, folder: Path, int8: bool = False) -> None:
    """Merge the delta into the packaged MiniLM and write it to `folder` as ONNX with its tokenizer;
    `int8`: weights quantized (onnxruntime's dynamic quantization, a scale per output channel),
    where the card says it was measured."""
    import warnings

    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    quiet_model_libraries()
    resolve_model("all-MiniLM-L6-v2")  # verifies the base weights' sha256
    base_dir = packaged_model_dir()
    model = BertForQuestionAnswering(BertConfig.from_pretrained(str(base_dir), local_files_only=True))
    missing, unexpected = model.load_state_dict(merged_state(delta_path, base_dir), strict=False)
    if unexpected or [m for m in missing if not m.endswith("position_ids")]:
        raise ReaderModelError(f"{delta_path} does not fit the packaged MiniLM ({len(missing)} missing, "
                               f"{len(unexpected)} unexpected tensors); reinstall qa")
    model.eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.start_logits, out.end_logits

    sample = torch.ones((1, 8), dtype=torch.long)
    names, outputs = ["input_ids", "attention_mask", "token_type_ids"], ["start_logits", "end_logits"]
    full = folder / ("fp32-" + ONNX_FILE if int8 else ONNX_FILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(), (sample, sample, torch.zeros_like(sample)), str(full),
                          input_names=names, output_names=outputs,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + outputs},
                          opset_version=17, dynamo=False)
    if int8:
        quantize_int8(full, folder / ONNX_FILE)
        full.unlink()
    shutil.copyfile(base_dir / "tokenizer.json", folder / TOKENIZER_FILE)


def delta_sha256(delta_path: Path = DELTA_FILE) -> str:
    if not delta_path.is_file():
        raise ReaderModelError(f"the reader's weights are missing at {delta_path}; reinstall qa")
    return file_sha256(delta_path)


def check_card_fits(card: dict, digest: str) -> None:
    """A card is the calibration of one delta: with another, its threshold and confidence mean nothing."""
    if card.get("delta_sha256") != digest:
        raise ReaderModelError(f"the reader's card {CARD_FILE.name} was calibrated for another {DELTA_FILE.name} "
                               f"(sha256 {str(card.get('delta_sha256'))[:12]}…, this one {digest[:12]}…); "
                               "run training/calibrate_reader.py for it, or reinstall qa")


def export_folder(delta_path: Path = DELTA_FILE, int8: bool | None = None, digest: str | None = None) -> Path:
    """The cached ONNX export of this delta (whose sha256 is `digest`, computed if not given) over the
    verified base, made on first use (atomically); int8 or not as the card says unless `int8` is given."""
    digest = digest or delta_sha256(delta_path)
    if int8 is None:
        int8 = bool(load_card().get("int8", False))
    key = digest[:16] + "-" + DEFAULT_WEIGHTS_SHA256[:8] + ("-int8-per-channel" if int8 else "")

    def make(staging: Path) -> None:
        try:
            export_reader(delta_path, staging, int8)
        except ReaderModelError:
            raise
        except Exception as exc:  # safetensors, torch and onnx raise many types for a damaged file
            raise ReaderModelError(f"the reader's weights {delta_path} cannot be used ({type(exc).__name__}); "
                                   "reinstall qa") from None
        (staging / EXPORT_MARK).write_text(json.dumps({"delta_sha256": digest, "int8": int8}), encoding="utf-8")

    return cached_folder(f"reader-{key}", EXPORT_MARK, make, ReaderModelError, "the reader's export")


READ_WORKERS = QUERY_THREADS
"""Windows read at once, each run on one thread. A question's five windows are small: one thread
per window, longest first, reads them in 0.79x the time of one window at a time on every core
(seeds gold questions, paired in one process; README, Performance), with the same logits."""


class OnnxReader:
    """Start/end logits for the windows of several passages, with onnxruntime."""

    def __init__(self, folder: Path, calibration: Calibration, workers: int = READ_WORKERS):
        from tokenizers import Tokenizer

        self.calibration = calibration
        self.windower = Windower(Tokenizer.from_file(str(folder / TOKENIZER_FILE)))
        self.session = onnx_session(folder / ONNX_FILE, 1 if workers > 1 else QUERY_THREADS)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="qa-reader") if workers > 1 else None

    def spans(self, question: str, passages: Sequence[str], per_window: int = 1) -> list[SpanChoice]:
        """The best spans over all passages, best first, scored by their margin over "no answer"."""
        windows = self.windower.windows(question, passages)
        if not windows:
            return []
        # One run per window: without padding, five windows read in 246 ms against 340 ms as one
        # padded batch (seeds gold questions, p50, measured for the README's Performance section).
        length = max(len(w) for w in windows)
        start, end = np.zeros((len(windows), length), np.float32), np.zeros((len(windows), length), np.float32)
        longest_first = sorted(range(len(windows)), key=lambda row: -len(windows[row]))

        def run(row: int):
            return self.session.run(None, padded([windows[row]]))

        runs = self.pool.map(run, longest_first) if self.pool else map(run, longest_first)
        for row, (window_start, window_end) in zip(longest_first, runs):
            start[row, : len(windows[row])], end[row, : len(windows[row])] = window_start[0], window_end[0]
        return best_spans(windows, start, end, per_window)


@lru_cache(maxsize=1)
def load_shipped_reader() -> OnnxReader:
    """The reader from its cached export; a damaged export (only ever one this module wrote) is made again."""
    card, digest = load_card(), delta_sha256()
    check_card_fits(card, digest)
    int8, values = bool(card.get("int8", False)), calibration(card)
    folder = export_folder(int8=int8, digest=digest)
    try:
        return OnnxReader(folder, values)
    except Exception:  # onnxruntime and tokenizers raise their own types for a damaged file
        shutil.rmtree(folder)
        return OnnxReader(export_folder(int8=int8, digest=digest), values)
