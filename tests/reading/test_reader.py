"""The --reader path: a transformers extractive-QA model, here a tiny randomly initialized one saved to a
temporary folder (nothing is downloaded)."""

from __future__ import annotations

import json

import pytest

from qa.reading.transformers_reader import ReaderError, load_reader
from qa.reading.windows import MAX_QUESTION_TOKENS

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    from qa.search.embed import packaged_model_dir

    folder = tmp_path_factory.mktemp("tiny-reader")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertForQuestionAnswering(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(packaged_model_dir())).save_pretrained(folder)
    return folder


def test_windows_cover_a_long_passage_with_overlap(tiny_model):
    reader = load_reader(str(tiny_model))
    passage = " ".join(f"word{i}" for i in range(1500))
    windows = reader.windows("What is the last word?", ["A short one.", passage])
    assert windows[0].passage == 0 and all(w.passage == 1 for w in windows[1:]) and len(windows) > 2
    assert all(len(w) <= reader.max_tokens for w in windows)
    ranges = [(w.offsets[w.first_passage_piece][0], w.offsets[len(w) - 2][1]) for w in windows[1:]]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(passage)
    assert all(later[0] < earlier[1] for earlier, later in zip(ranges, ranges[1:]))  # consecutive windows overlap


def test_a_very_long_question_is_cut_to_leave_room_for_the_passage(tiny_model):
    reader = load_reader(str(tiny_model))
    windows = reader.windows("why " * 5000, ["The answer is here."])
    assert len(windows) == 1 and windows[0].first_passage_piece <= MAX_QUESTION_TOKENS + 2


def test_spans_of_a_real_model_are_ranges_of_the_passages(tiny_model):
    passages = ["The bridge was designed by Maria Lopez and opened in 1998. " * 60, "A ferry crosses the bay."]
    spans = load_reader(str(tiny_model)).spans("Who designed the bridge?", passages, per_window=3)
    assert spans and all(0 <= s.start < s.end <= len(passages[s.passage]) for s in spans)
    assert [s.margin for s in spans] == sorted((s.margin for s in spans), reverse=True)
    assert {s.passage for s in spans} == {0, 1}


def test_an_unloadable_reader_is_one_clear_error(tmp_path):
    with pytest.raises(ReaderError, match="cannot load reader"):
        load_reader(str(tmp_path / "missing"))


def test_cli_ask_with_a_transformers_reader(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from qa.interface.cli import app

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "Bridge opens\n\nThe bridge was designed by Maria Lopez and opened in 1998 after four years of work.\n"
    (corpus / "bridge.txt").write_text(text, encoding="utf-8")
    args = ["--corpus", str(corpus), "--index", str(tmp_path / "index")]
    result = CliRunner().invoke(app, ["ask", "Who designed the bridge?", "--json", "--reader", str(tiny_model), *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert 0.0 <= data["confidence"] <= 1.0 and data["passages"]
    assert (data["answer"] is None) == (data["citations"] == [])
    for citation in data["citations"]:
        assert text[citation["start"] : citation["end"]] == citation["quote"] == data["answer"]
    missing = CliRunner().invoke(app, ["ask", "Who?", "--reader", str(tmp_path / "nope"), *args])
    assert missing.exit_code == 2 and "cannot load reader" in missing.stderr and "Traceback" not in missing.output
