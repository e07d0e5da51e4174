"""The --reader path: a transformers extractive-QA model, here a tiny randomly initialized one saved to a
temporary folder (nothing is downloaded)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa.reader import MAX_ANSWER_TOKENS, MAX_QUESTION_TOKENS, ReaderError, Window, best_spans, load_reader

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    from qa.embed import packaged_model_dir

    folder = tmp_path_factory.mktemp("tiny-reader")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertForQuestionAnswering(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(packaged_model_dir())).save_pretrained(folder)
    return folder


def test_windows_cover_a_long_passage_with_overlap(tiny_model):
    reader = load_reader(str(tiny_model))
    passage = " ".join(f"word{i}" for i in range(1500))
    windows = reader.windows("What is the last word?", passage)
    assert len(windows) > 1 and all(len(w.ids) <= reader.max_tokens for w in windows)
    ranges = [(min(w.offsets[i][0] for i, x in enumerate(w.in_passage) if x),
               max(w.offsets[i][1] for i, x in enumerate(w.in_passage) if x)) for w in windows]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(passage)
    assert all(later[0] < earlier[1] for earlier, later in zip(ranges, ranges[1:]))  # consecutive windows overlap


def test_a_very_long_question_is_cut_to_leave_room_for_the_passage(tiny_model):
    reader = load_reader(str(tiny_model))
    windows = reader.windows("why " * 5000, "The answer is here.")
    assert len(windows) == 1 and len(windows[0].ids) <= MAX_QUESTION_TOKENS + 10
    assert sum(windows[0].in_passage) == sum(reader.windows("why?", "The answer is here.")[0].in_passage)


def test_best_spans_stay_inside_the_passage_ordered_and_short():
    n = 80
    window = Window(list(range(n)), [0] * n, [(0, 0)] * 3 + [(i, i + 1) for i in range(n - 4)] + [(0, 0)],
                    [False] * 3 + [True] * (n - 4) + [False])
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(1, n)), rng.normal(size=(1, n))
    start[0, 1] = end[0, 1] = 50.0  # the question's own pieces may never be chosen
    start[0, 70], end[0, 10] = 40.0, 40.0  # nor an end before its start
    spans = best_spans([window], start, end, per_window=20)
    assert len(spans) == 20
    for span in spans:
        assert 0 <= span.start < span.end <= n - 4 and span.end - span.start <= MAX_ANSWER_TOKENS
        assert 0.0 < span.probability < 1.0
    assert [s.probability for s in spans] == sorted((s.probability for s in spans), reverse=True)
    assert spans[0].null_probability == pytest.approx(
        np.exp(start[0, 0] + end[0, 0]) / (np.exp(start[0]).sum() * np.exp(end[0]).sum()))


def test_spans_of_a_real_model_are_ranges_of_the_passage(tiny_model):
    passage = "The bridge was designed by Maria Lopez and opened in 1998. " * 60
    spans = load_reader(str(tiny_model)).spans("Who designed the bridge?", passage)
    assert spans and all(0 <= s.start < s.end <= len(passage) for s in spans)


def test_an_unloadable_reader_is_one_clear_error(tmp_path):
    with pytest.raises(ReaderError, match="cannot load reader"):
        load_reader(str(tmp_path / "missing"))


def test_cli_ask_with_a_transformers_reader(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from qa.cli import app

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


def test_the_reader_path_still_reads_who_wrote_the_article_from_its_byline(tiny_model):
    from qa.answer import Reading, answer_with_reader
    from qa.chunk import Passage
    from qa.retrieve import Hit

    text = "Bridge opens\n\nBy Ana Ruiz\n\nThe bridge was designed by Maria Lopez and opened in 1998."
    reading = Reading(hits=[Hit(0, 1.0)], passages=[Passage("b.txt", "Bridge opens", None, 0, len(text), text)],
                      idf=lambda term: 1.0)
    result = answer_with_reader("Who wrote the article about the bridge?", reading, load_reader(str(tiny_model)))
    assert result.answer == "Ana Ruiz" and result.citations[0].start == text.index("Ana Ruiz")
