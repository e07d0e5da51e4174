"""The model's ONNX export run with onnxruntime and tokenizers: what passages and questions are
embedded with once an index exists, without importing torch. The session setup here is the one
the reader (qa/reading/read.py) runs on too.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from qa.errors import ModelError

ONNX_FILE = "encoder.onnx"
ONNX_TOKENIZER = "tokenizer.json"
ONNX_CONFIG = "encoder.json"
ONNX_FILES = (ONNX_FILE, ONNX_TOKENIZER, ONNX_CONFIG)
ONNX_OUTPUTS = ("last_hidden_state",)


QUERY_THREADS = min(os.cpu_count() or 1, 4)
# The export embeds one text per run. int8 activations are quantized per run, so batched with
# others a passage's vector would depend on its neighbours and differ from the same text asked
# alone; and on the 2-core machines here one text per run is also the fastest (small inputs stay
# in cache). A build runs one single-threaded call per core at once: 1.5x (int8) and 1.6x (fp32)
# the passages/s of one two-thread call on batches of 32 (eval/bench.py).
ONNX_BATCH_SIZE = 1
BUILD_WORKERS = os.cpu_count() or 1


def onnx_session(path: Path, threads: int = QUERY_THREADS):
    """The onnxruntime session setup the encoder and the reader share: CPU, only errors logged.
    One question at a time gains little past 4 threads; a build's batches use every core."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def has_onnx_export(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ONNX_FILES)


class OnnxEncoder:
    """The index's exported model run with onnxruntime and tokenizers: same vectors, no torch import.

    `workers` > 1 runs that many batches at once on one session of one thread each (builds);
    a question is one batch on `threads` threads."""

    def __init__(self, folder: Path, threads: int = QUERY_THREADS, workers: int = 1):
        from tokenizers import Tokenizer

        try:
            config = json.loads((folder / ONNX_CONFIG).read_text(encoding="utf-8"))
            self.name, self.weights_sha256 = config["model"], config["weights_sha256"]
            self.dim, self.pooling = int(config["dim"]), config["pooling"]
            self.precision = config.get("precision", "fp32")
            self.tokenizer = Tokenizer.from_file(str(folder / ONNX_TOKENIZER))
            self.tokenizer.enable_truncation(max_length=int(config["max_seq_length"]))
            self.tokenizer.enable_padding()
            self.session = onnx_session(folder / ONNX_FILE, 1 if workers > 1 else threads)
            self.workers = workers
        except Exception as exc:  # onnxruntime, tokenizers and json each raise their own types
            raise ModelError(f"the model's export in {folder} is damaged ({type(exc).__name__})") from None

    def inputs(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The session's inputs for one batch of texts."""
        encodings = self.tokenizer.encode_batch(texts)
        return {name: np.array([getattr(e, field) for e in encodings], dtype=np.int64)
                for name, field in (("input_ids", "ids"), ("attention_mask", "attention_mask"),
                                    ("token_type_ids", "type_ids"))}

    def _batch(self, texts: list[str]) -> np.ndarray:
        feed = self.inputs(texts)
        (hidden,) = self.session.run(None, feed)
        weights = feed["attention_mask"][..., None].astype(np.float32)
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        elif self.pooling == "max":
            vectors = np.where(weights > 0, hidden, -1e9).max(axis=1)
        else:
            vectors = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return encode_sorted(texts, self.dim, ONNX_BATCH_SIZE, on_batch, self._batch, self.workers)


def build_encoder(folder: Path) -> OnnxEncoder:
    """The export in `folder` set up for embedding a corpus."""
    return OnnxEncoder(folder, workers=BUILD_WORKERS)


def _length_batches(texts: list[str], batch_size: int) -> Iterator[list[int]]:
    """Indices of `texts` in batches of similar length (less padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def encode_sorted(texts: list[str], dim: int, batch_size: int, on_batch, encode_batch,
                   workers: int = 1) -> np.ndarray:
    """Encode in batches of similar length, `workers` batches at once, returning vectors in the
    input order. On an interruption only the batches already running are waited for."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    batches = list(_length_batches(texts, batch_size))
    pool = ThreadPoolExecutor(workers)
    try:
        for chosen, vectors in zip(batches, pool.map(lambda batch: encode_batch([texts[i] for i in batch]), batches)):
            out[chosen] = vectors
            if on_batch:
                on_batch(len(chosen))
    finally:
        pool.shutdown(cancel_futures=True)
    return out


@lru_cache(maxsize=2)
def load_onnx_encoder(folder: Path) -> OnnxEncoder:
    return OnnxEncoder(folder)
