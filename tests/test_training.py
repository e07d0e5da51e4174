"""The training code path, end to end on a tiny random BERT (training itself never runs in CI)."""

from __future__ import annotations

import json
import sys

import pytest

from qa.embed import file_sha256
from tests.conftest import ROOT

torch = pytest.importorskip("torch")
sys.path.insert(0, str(ROOT))

from training import make_delta, train_reader  # noqa: E402
from training.squad_data import Example, load_examples, without_evidence  # noqa: E402


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A BertModel folder shaped like the packaged MiniLM (no head), with the packaged tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from qa.embed import packaged_model_dir

    folder = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(packaged_model_dir())).save_pretrained(folder)
    return folder


def squad_file(path, title: str, version: str = "v2.0"):
    paragraphs = []
    for k in range(3):
        context = (f"The {title} bridge number {k} opened in {1930 + k} after years of work by Dorman Long. "
                   f"It spans the harbour and carries trains.")
        qas = [{"id": f"{title}-{k}-a", "question": f"When did bridge {k} open?",
                "answers": [{"text": str(1930 + k), "answer_start": context.index(str(1930 + k))}]},
               {"id": f"{title}-{k}-b", "question": "Who painted it?", "answers": [], "is_impossible": True}]
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"version": version, "data": [{"title": title, "paragraphs": paragraphs}]}),
                    encoding="utf-8")
    return path


def test_answers_not_at_their_offset_are_found_or_dropped(tmp_path):
    path = tmp_path / "shifted.json"
    context = "Aspirin was first made in 1897 by Felix Hoffmann."
    qas = [{"id": "a", "question": "When?", "answers": [{"text": "1897", "answer_start": 3}]},
           {"id": "b", "question": "Who?", "answers": [{"text": "nobody", "answer_start": 0}]}]
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}))
    examples = load_examples(path)
    assert [(e.id, e.answers) for e in examples] == [("a", [(context.index("1897"), "1897")])]


def test_training_windows_label_answers_and_pair_questions_with_other_paragraphs(tmp_path, tiny_base):
    import random

    examples = load_examples(squad_file(tmp_path / "t.json", "Alpha"))
    windower = train_reader.load_windower(tiny_base)
    rows = train_reader.training_windows(examples, windower, distractors=1.0, removals=0.0, rng=random.Random(0))
    assert len(rows) == 2 * len(examples)  # every question: its own paragraph, then another one
    for example, (own, other) in zip(examples, zip(rows[0::2], rows[1::2])):
        ids, _, start, end = own
        if example.answers:
            text = windower.tokenizer.decode(ids[start : end + 1])
            assert text == example.answers[0][1]
        else:
            assert (start, end) == (0, 0)
        assert other[2:] == (0, 0)


def test_a_paragraph_without_its_evidence_keeps_the_topic_but_not_the_answer():
    context = "The mill opened in 1897. It made paper for the city. Its owner was Ada Lane. It closed later."
    asked = Example("q", "T", context, "Who owned the mill?", [(context.index("Ada Lane"), "Ada Lane")])
    assert without_evidence(asked) == "The mill opened in 1897. It made paper for the city. It closed later."
    repeated = context + " Ada Lane sold it."  # the answer occurs outside its sentence too: no negative
    twice = Example("q", "T", repeated, "Who owned the mill?", [(repeated.index("Ada Lane"), "Ada Lane")])
    assert without_evidence(twice) is None
    assert without_evidence(Example("q", "T", context, "Who built it?", [])) is None


def test_one_command_trains_and_writes_a_reproducible_record(tmp_path, tiny_base):
    train = squad_file(tmp_path / "train.json", "Alpha")
    held = squad_file(tmp_path / "held.json", "Beta")
    mixed = squad_file(tmp_path / "mixed.json", "Beta")  # a held-out title inside a training file is dropped
    out = tmp_path / "run"
    assert train_reader.main(["--train", str(train), str(mixed), "--holdout", str(held), "--out", str(out),
                              "--base", str(tiny_base), "--epochs", "1", "--batch-size", "4", "--threads", "1"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["held_out_titles"] == ["Beta"] and run["train_questions"] == 6
    assert set(run["data"]) == {str(train), str(mixed), str(held)} and all(len(h) == 64 for h in run["data"].values())
    figures = run["held_out_given_paragraph"]["held.json"]
    assert figures["questions"] == 6 and figures["answerable"] == 3
    assert 0.0 <= figures["has_ans_em_best_span"] <= figures["has_ans_f1_best_span"] <= 1.0
    assert run["hyperparameters"]["epochs"] == 1 and run["train_seconds"] >= 0
    assert (out / "model.safetensors").is_file()


def test_the_shipped_delta_rebuilds_the_tuned_weights(tmp_path, tiny_base):
    from safetensors.torch import load_file

    from qa.read import merged_state

    train = squad_file(tmp_path / "train.json", "Alpha")
    out = tmp_path / "run"
    train_reader.main(["--train", str(train), "--out", str(out), "--base", str(tiny_base), "--epochs", "1",
                       "--batch-size", "4", "--threads", "1"])
    tuned = load_file(str(out / "model.safetensors"))
    for rank, tolerance in ((0, 1e-2), (4, None)):
        delta_path = tmp_path / f"delta-{rank}.safetensors"
        assert make_delta.main([str(out / "model.safetensors"), "--out", str(delta_path), "--rank", str(rank),
                                "--base", str(tiny_base)]) == 0
        delta = load_file(str(delta_path))
        assert not any("word_embeddings" in k for k in delta)  # frozen in training: nothing to ship
        merged = merged_state(delta_path, tiny_base)
        assert set(merged) == {k for k in tuned if not k.endswith("position_ids")}
        if tolerance is not None:
            assert all((merged[k] - tuned[k].float()).abs().max() < tolerance for k in merged)
        else:
            assert any(k.endswith(".up") for k in delta)


def test_training_can_continue_from_a_shipped_delta(tmp_path, tiny_base):
    from safetensors.torch import load_file

    train = squad_file(tmp_path / "train.json", "Alpha")
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--train", str(train), "--base", str(tiny_base), "--batch-size", "4", "--threads", "1"]
    train_reader.main([*common, "--out", str(first), "--epochs", "1"])
    delta = tmp_path / "delta.safetensors"
    make_delta.main([str(first / "model.safetensors"), "--out", str(delta), "--base", str(tiny_base)])
    first_run = json.loads((first / "run.json").read_text())
    (tmp_path / "delta.json").write_text(json.dumps({"delta_sha256": file_sha256(delta), "training": first_run}))
    train_reader.main([*common, "--out", str(second), "--epochs", "1", "--init", str(delta), "--lr", "0"])
    init = json.loads((second / "run.json").read_text())["init"]
    assert init == {"path": str(delta), "sha256": file_sha256(delta), "training": first_run}  # the chain of runs
    before, after = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert all((before[k].float() - after[k].float()).abs().max() < 1e-2 for k in before)  # lr 0: the delta's weights
