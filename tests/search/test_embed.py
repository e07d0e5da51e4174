from __future__ import annotations

import shutil

import numpy as np
import pytest

from qa.errors import ModelError
from qa.search import embed
from qa.search.embed import DEFAULT_MODEL, DEFAULT_WEIGHTS_SHA256, Encoder, load_encoder, resolve_model


def test_default_model_resolves_offline_with_verified_weights():
    location, digest = resolve_model(DEFAULT_MODEL)
    assert digest == DEFAULT_WEIGHTS_SHA256
    assert location.endswith("model")


def test_weights_with_another_hash_are_refused(tmp_path, monkeypatch):
    fake = tmp_path / "model"
    shutil.copytree(embed.packaged_model_dir(), fake, ignore=shutil.ignore_patterns("model.safetensors"))
    (fake / "model.safetensors").write_bytes(b"not the real weights")
    monkeypatch.setattr(embed, "packaged_model_dir", lambda: fake)
    with pytest.raises(ModelError, match="sha256"):
        resolve_model(DEFAULT_MODEL)


def test_unloadable_model_name_gets_one_line_saying_what_to_do():
    with pytest.raises(ModelError) as info:
        Encoder("no-such-org/no-such-model")
    message = str(info.value)
    assert "\n" not in message and "--model" in message and DEFAULT_MODEL in message


def test_local_model_folder_loads_through_sentence_transformers(tmp_path):
    local = tmp_path / "copy"
    shutil.copytree(embed.packaged_model_dir(), local)
    encoder = Encoder(str(local))
    assert encoder.weights_sha256 and encoder.dim == 384
    same = load_encoder(DEFAULT_MODEL).encode(["A local copy gives the same vectors."])
    assert np.allclose(encoder.encode(["A local copy gives the same vectors."]), same, atol=1e-5)


def test_vectors_are_normalized_and_meaningful():
    encoder = load_encoder(DEFAULT_MODEL)
    vectors = encoder.encode(["Oracle builds data centers.", "Oracle constructs server farms.", "I like soup."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


VARIED = [
    "Who built Stargate data centers?",
    "",
    "a",
    "Émile Zola écrivait à Paris; 東京の天気は晴れ. Привет, мир!",
    "Numbers: $1.5 billion, 12%, 2024-06-13 and 3.14159.",
    "word " * 400,  # longer than the model's 256-token window: truncated the same way
    "   spaced\tout\ntext   ",
]


def test_onnx_export_reproduces_sentence_transformers(tmp_path):
    from qa.search.onnx_encoder import OnnxEncoder

    encoder = load_encoder(DEFAULT_MODEL)
    assert encoder.export_onnx(tmp_path, precision="fp32")
    reference = encoder.model.encode(VARIED, normalize_embeddings=True)
    for onnx in (OnnxEncoder(tmp_path), OnnxEncoder(tmp_path, workers=3)):
        ours = onnx.encode(VARIED)
        cosines = (reference * ours).sum(axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(ours, axis=1)
        assert cosines.min() >= 0.9999


def test_int8_export_keeps_vectors_close_and_says_so(tmp_path):
    from qa.search.onnx_encoder import OnnxEncoder

    encoder = load_encoder(DEFAULT_MODEL)
    assert encoder.export_onnx(tmp_path, precision="int8")
    onnx = OnnxEncoder(tmp_path)
    assert onnx.precision == "int8"
    assert (tmp_path / "encoder.onnx").stat().st_size < 40e6  # int8 weights, not the 90 MB fp32 ones
    reference = encoder.model.encode(VARIED, normalize_embeddings=True)
    cosines = (reference * onnx.encode(VARIED)).sum(axis=1)
    assert cosines.min() >= 0.95
