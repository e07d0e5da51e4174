"""The shipped reader: its files belong together, its ONNX export matches torch, and questions need no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qa.reading.read import (
    DELTA_FILE,
    LEAD_CAP,
    Evidence,
    OnnxReader,
    ReaderModelError,
    calibration,
    check_card_fits,
    export_folder,
    load_card,
    load_shipped_reader,
)
from qa.reading.windows import padded
from qa.search.embed import DEFAULT_WEIGHTS_SHA256, file_sha256, packaged_model_dir
from tests.conftest import ROOT


def test_the_card_describes_the_shipped_delta():
    card = load_card()
    assert card["delta_sha256"] == file_sha256(DELTA_FILE)
    assert card["base_weights_sha256"] == DEFAULT_WEIGHTS_SHA256
    values = calibration(card)
    assert values.slope > 0 and 0.0 < values.guess_threshold <= values.threshold < 1.0
    assert values.confidence(Evidence(-50, 0, 0)) < values.guess_threshold
    assert values.confidence(Evidence(50, LEAD_CAP, 2)) > values.threshold
    training = card["training"]
    assert training["trained_titles"] and not set(training["trained_titles"]) & set(training["held_out_titles"])
    for kind in card["held_out_end_to_end"]["cross_fitted"].values():  # figures per held-out file
        assert 0.0 <= kind["has_ans_f1"] <= kind["best_span_f1"] <= 1.0 and kind["recall_at_1"] <= kind["recall_at_3"]
    assert DELTA_FILE.stat().st_size < 30e6  # a delta, not a copy of the model


def test_the_export_is_made_once_and_reused():
    folder = export_folder()
    mark = (folder / "export.json").stat().st_mtime_ns
    assert export_folder() == folder and (folder / "export.json").stat().st_mtime_ns == mark
    assert json.loads((folder / "export.json").read_text())["delta_sha256"] == file_sha256(DELTA_FILE)


def test_onnx_logits_match_the_merged_torch_model():
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertForQuestionAnswering

    from qa.reading.read import merged_state

    reader = OnnxReader(export_folder(int8=False), calibration(load_card()))
    windows = reader.windower.windows("Who will build the terminal?",
                                      ["Nordvik Construction will build the ferry terminal by 2027.", "word " * 600])
    model = BertForQuestionAnswering(BertConfig.from_pretrained(str(packaged_model_dir())))
    model.load_state_dict(merged_state(DELTA_FILE, packaged_model_dir()), strict=False)
    model.eval()
    batch = padded(windows)
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
    onnx_start, onnx_end = reader.session.run(None, batch)
    for row, w in enumerate(windows):
        assert np.abs(onnx_start[row, : len(w)] - out.start_logits.numpy()[row, : len(w)]).max() < 1e-3
        assert np.abs(onnx_end[row, : len(w)] - out.end_logits.numpy()[row, : len(w)]).max() < 1e-3


def test_windows_read_at_once_give_the_spans_of_windows_read_one_by_one():
    card = load_card()
    one_by_one, at_once = (OnnxReader(export_folder(int8=False), calibration(card), workers=n) for n in (1, 3))
    passages = ["Nordvik Construction will build the ferry terminal by 2027.", "word " * 600,
                "The terminal was designed by Arkitema, and Nordvik Construction won the contract in March."]
    assert len(one_by_one.windower.windows("Who will build the terminal?", passages)) > 3  # rows of unequal lengths
    spans = [reader.spans("Who will build the terminal?", passages, per_window=3) for reader in (one_by_one, at_once)]
    assert [(s.passage, s.start, s.end) for s in spans[0]] == [(s.passage, s.start, s.end) for s in spans[1]]
    assert np.allclose([s.margin for s in spans[0]], [s.margin for s in spans[1]], atol=1e-3)


def test_reading_needs_no_torch_once_exported():
    export_folder()
    code = ("import sys; from qa.reading.read import load_shipped_reader; "
            "spans = load_shipped_reader().spans('Who builds it?', ['Nordvik Construction builds the terminal.']); "
            "assert spans and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_missing_delta_is_one_clear_error(tmp_path):
    with pytest.raises(ReaderModelError, match="reinstall qa"):
        export_folder(tmp_path / "reader.safetensors")


def test_a_card_calibrated_for_another_delta_is_refused():
    card = load_card()
    check_card_fits(card, card["delta_sha256"])
    with pytest.raises(ReaderModelError, match="calibrated for another reader.safetensors.*calibrate_reader"):
        check_card_fits(card, "0" * 64)


def test_a_damaged_card_is_one_clear_error(tmp_path):
    card = tmp_path / "reader.json"
    for text in ("{not json", '{"calibration": {"slope": 1}}', "[]"):
        card.write_text(text, encoding="utf-8")
        with pytest.raises(ReaderModelError, match="cannot be read.*reinstall qa"):
            load_card(card)


def test_an_unwritable_cache_is_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QA_CACHE", str(blocker / "cache"))
    with pytest.raises(ReaderModelError, match="cannot write the reader's export.*QA_CACHE"):
        export_folder()


def test_a_damaged_export_is_made_again(tmp_path, monkeypatch):
    import shutil

    from qa.reading.read import ONNX_FILE, load_shipped_reader

    source = export_folder()
    monkeypatch.setenv("QA_CACHE", str(tmp_path))
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    (copy / ONNX_FILE).write_bytes(b"\x00" * 1000)
    reader = load_shipped_reader.__wrapped__()
    assert reader.spans("Who builds it?", ["Nordvik Construction builds the terminal."])
    assert (copy / ONNX_FILE).stat().st_size > 1e6


def test_the_card_carries_the_rank_penalty_and_an_older_card_means_none():
    values = {"slope": 0.3, "intercept": -4.0, "threshold": 0.13}
    assert calibration({"calibration": {**values, "rank_penalty": 1.0}}).rank_penalty == 1.0
    assert calibration({"calibration": values}).rank_penalty == 0.0
    assert load_card()["calibration"]["rank_penalty"] == load_shipped_reader().calibration.rank_penalty


def test_the_card_carries_the_early_margin_and_an_older_card_reads_every_passage():
    values = {"slope": 0.3, "intercept": -4.0, "threshold": 0.13}
    assert calibration({"calibration": {**values, "early_margin": 8.0}}).early_margin == 8.0
    assert calibration({"calibration": {**values, "early_margin": None}}).early_margin is None
    assert calibration({"calibration": values}).early_margin is None
    assert load_card()["calibration"].get("early_margin") == load_shipped_reader().calibration.early_margin
