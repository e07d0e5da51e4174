"""The training code path, end to end on a tiny random BERT (training itself never runs in CI)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from qa.search.embed import file_sha256
from tests.conftest import ROOT

torch = pytest.importorskip("torch")
sys.path.insert(0, str(ROOT))

from training import make_delta, title_fold, train_reader  # noqa: E402
from training.squad_data import (  # noqa: E402
    Example,
    load_examples,
    names_in,
    nearest_other,
    training_windows,
    with_swapped_name,
    without_evidence,
)
from training.checkpoint import CONFIG_FILE  # noqa: E402
from training.torch_reader import load_windower  # noqa: E402


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A BertModel folder shaped like the packaged MiniLM (no head), with the packaged tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from qa.search.embed import packaged_model_dir

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
    windower = load_windower(tiny_base)
    rows = training_windows(examples, windower, distractors=1.0, removals=0.0, rng=random.Random(0))
    assert len(rows) == 2 * len(examples)  # every question: its own paragraph, then another one
    for example, (own, other) in zip(examples, zip(rows[0::2], rows[1::2])):
        ids, _, start, end = own
        if example.answers:
            text = windower.tokenizer.decode(ids[start : end + 1].tolist())
            assert text == example.answers[0][1]
        else:
            assert (start, end) == (0, 0)
        assert other[2:] == (0, 0)


def test_the_nearest_distractor_is_the_best_match_that_does_not_hold_the_answer(tiny_base):
    import random

    from qa.search.bm25 import OkapiBM25, tokenize

    own = "Microsoft's chief executive is Satya Nadella, who runs the company from Redmond."
    asked = Example("q", "T", own, "Who is the chief executive of Microsoft?", [(own.index("Satya Nadella"), "Satya Nadella")])
    others = ["Rain fell on the harbour all week.",
              "OpenAI's chief executive, Sam Altman, praised Microsoft.",  # a near miss: no answer in it
              "Microsoft's chief executive Satya Nadella spoke first."]  # matches best, but answers: never a negative
    assert nearest_other(asked, others, OkapiBM25([tokenize(c) for c in others])) == others[1]
    assert nearest_other(asked, others[2:], OkapiBM25([tokenize(c) for c in others[2:]])) is None

    windower = load_windower(tiny_base)
    rows = training_windows([asked] + [Example(f"o{k}", "T", c, "Why?", []) for k, c in enumerate(others)],
                            windower, distractors=1.0, removals=0.0, rng=random.Random(0), nearest=True)
    distractor = rows[1]  # the asked question's own window, then its distractor's
    assert "sam altman" in windower.tokenizer.decode(distractor[0].tolist()) and distractor[2:] == (0, 0)


def test_a_paragraph_without_its_evidence_keeps_the_topic_but_not_the_answer():
    context = "The mill opened in 1897. It made paper for the city. Its owner was Ada Lane. It closed later."
    asked = Example("q", "T", context, "Who owned the mill?", [(context.index("Ada Lane"), "Ada Lane")])
    assert without_evidence(asked) == "The mill opened in 1897. It made paper for the city. It closed later."
    repeated = context + " Ada Lane sold it."  # the answer occurs outside its sentence too: no negative
    twice = Example("q", "T", repeated, "Who owned the mill?", [(repeated.index("Ada Lane"), "Ada Lane")])
    assert without_evidence(twice) is None
    assert without_evidence(Example("q", "T", context, "Who built it?", [])) is None


def test_names_are_capitalized_runs_and_numbers_not_words_that_open_a_sentence():
    text = "Later, Ada Lane of Leeds sold 1,200 tons. In 1897 the Mill Company closed. Its owner's Ada Lane's."
    assert names_in(text) == ["Ada Lane", "Leeds", "1,200", "1897", "Mill Company", "Ada Lane"]


def test_a_swapped_name_keeps_the_question_but_asks_of_something_the_paragraph_never_mentions():
    import random

    context = "The mill in Leeds opened in 1897. Its owner was Ada Lane."
    asked = Example("q", "T", context, "Who owned the mill in Leeds?", [(context.index("Ada Lane"), "Ada Lane")])
    pool = ["Leeds", "York", "Ada Lane", "Bradford", "1901", "Tom Hill"]  # names of the article's other paragraphs
    swapped = {with_swapped_name(asked, pool, random.Random(seed)) for seed in range(20)}
    assert swapped == {"Who owned the mill in York?", "Who owned the mill in Bradford?"}  # one word, not in the paragraph
    when = Example("q", "T", context, "Who owned the mill in 1897?", [(context.index("Ada Lane"), "Ada Lane")])
    assert with_swapped_name(when, pool, random.Random(0)) == "Who owned the mill in 1901?"
    nothing_named = Example("q", "T", context, "Who owned the mill?", [(context.index("Ada Lane"), "Ada Lane")])
    assert with_swapped_name(nothing_named, pool, random.Random(0)) is None
    assert with_swapped_name(Example("q", "T", context, "Who painted Leeds?", []), pool, random.Random(0)) is None


def test_swapped_questions_are_trained_on_their_own_paragraph_as_no_answer(tmp_path, tiny_base):
    import random

    examples = load_examples(squad_file(tmp_path / "t.json", "Alpha"))
    windower = load_windower(tiny_base)
    plain = training_windows(examples, windower, distractors=0.0, removals=0.0, rng=random.Random(0))
    rows = training_windows(examples, windower, distractors=0.0, removals=0.0, rng=random.Random(0), swaps=1.0)
    answerable = sum(1 for e in examples if e.answers)
    assert len(rows) == len(plain) + answerable  # "bridge 0" asked of a paragraph about bridges 1 and 2, ...
    extra = [r for r in rows if not any(r[0].tolist() == p[0].tolist() for p in plain)]
    assert len(extra) == answerable and all(r[2:] == (0, 0) for r in extra)


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


def test_files_trained_whole_join_the_limited_sample_and_their_titles_are_recorded(tmp_path, tiny_base):
    train = squad_file(tmp_path / "train.json", "Alpha")
    lent = squad_file(tmp_path / "lent.json", "Gamma")
    out = tmp_path / "run"
    assert train_reader.main(["--train", str(train), "--train-all", str(lent), "--limit", "1", "--out", str(out),
                              "--base", str(tiny_base), "--epochs", "1", "--batch-size", "4", "--threads", "1"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["train_questions"] == 1 + len(load_examples(lent)) and "Gamma" in run["trained_titles"]
    assert str(lent) in run["data"] and run["trained_whole"] == [str(lent)]


def test_a_file_splits_into_its_two_title_folds_unchanged(tmp_path):
    titles = ["Delta", "Alpha", "Gamma", "Beta", "Epsilon"]
    articles = [json.loads(squad_file(tmp_path / f"{t}.json", t).read_text())["data"][0] for t in titles]
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    folds = [json.loads(p.read_text()) for p in title_fold.split(whole, tmp_path / "folds")]
    assert [[a["title"] for a in f["data"]] for f in folds] == [["Delta", "Alpha", "Gamma"], ["Beta", "Epsilon"]]
    assert all(f["version"] == "v2.0" for f in folds)
    assert sorted((a for f in folds for a in f["data"]), key=lambda a: a["title"]) == sorted(articles, key=lambda a: a["title"])


def test_the_shipped_delta_rebuilds_the_tuned_weights(tmp_path, tiny_base):
    from safetensors.torch import load_file

    from qa.reading.read import merged_state

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


def test_a_soup_lies_halfway_between_a_run_and_the_delta_it_started_from_and_avoids_what_either_read(tmp_path, tiny_base):
    from safetensors.torch import load_file

    from qa.reading.read import merged_state
    from training import soup_reader
    from training.ship_reader import ShipError

    common = ["--base", str(tiny_base), "--batch-size", "4", "--threads", "1", "--epochs", "1"]
    first, run = tmp_path / "first", tmp_path / "run"
    train_reader.main([*common, "--train", str(squad_file(tmp_path / "alpha.json", "Alpha")), "--out", str(first)])
    delta, card = tmp_path / "reader.safetensors", tmp_path / "reader.json"
    make_delta.main([str(first / "model.safetensors"), "--out", str(delta), "--base", str(tiny_base)])
    card.write_text(json.dumps({"delta_sha256": file_sha256(delta),
                                "training": json.loads((first / "run.json").read_text())}))
    train_reader.main([*common, "--train", str(squad_file(tmp_path / "gamma.json", "Gamma")), "--out", str(run),
                       "--init", str(delta), "--lr", "1e-3"])
    start_rows = run / f"calibration-rows-held-{file_sha256(delta)[:12]}-400-seed0.jsonl"
    start_rows.write_text("{}\n")
    out = tmp_path / "soup"
    record = soup_reader.make_soup(run, out, 0.5, delta=delta, card=card, base=tiny_base)
    assert record["trained_titles"] == ["Alpha", "Gamma"] and record["soup"]["weight"] == 0.5
    assert json.loads((out / "run.json").read_text()) == record
    assert (out / start_rows.name).read_text() == "{}\n"  # rows already asked are not asked again
    start, tuned = merged_state(delta, tiny_base), load_file(str(run / "model.safetensors"))
    souped = load_file(str(out / "model.safetensors"))
    moved = [k for k in start if not torch.equal(start[k], tuned[k].float())]
    assert moved and all(torch.allclose(souped[k], (start[k] + tuned[k].float()) / 2, atol=1e-6) for k in start)
    with pytest.raises(ShipError, match="exists"):
        soup_reader.make_soup(run, out, 0.5, delta=delta, card=card, base=tiny_base)
    with pytest.raises(ShipError, match="0 < weight < 1"):
        soup_reader.make_soup(run, tmp_path / "whole", 1.0, delta=delta, card=card, base=tiny_base)
    with pytest.raises(ShipError, match="did not start from"):  # a soup of a soup is not what the record says
        soup_reader.make_soup(first, tmp_path / "other", 0.5, delta=delta, card=card, base=tiny_base)


def test_a_run_stopped_and_resumed_ends_with_the_same_weights_as_one_never_stopped(tmp_path, tiny_base):
    from safetensors.torch import load_file

    train = squad_file(tmp_path / "train.json", "Alpha")
    common = ["--train", str(train), "--base", str(tiny_base), "--batch-size", "2", "--threads", "1",
              "--epochs", "2", "--distractors", "0.5", "--precision", "fp32"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert train_reader.main([*common, "--out", str(whole)]) == 0
    assert train_reader.main([*common, "--out", str(split), "--stop-at-step", "3"]) == 0  # mid-epoch 1 of 2
    assert not (split / "run.json").exists() and (split / "checkpoint.pt").is_file()
    stopped = load_file(str(split / "model.safetensors"))
    assert train_reader.main(["--resume", str(split), "--record-checkpoint"]) == 0  # its weights described, no step
    record = json.loads((split / "checkpoint.json").read_text())
    assert record["stopped_at"]["step"] == 3 and record["stopped_at"]["steps"] == 10
    assert record["trained_titles"] == ["Alpha"] and record["train_windows"] == 10
    assert all(torch.equal(stopped[k], v) for k, v in load_file(str(split / "model.safetensors")).items())
    assert train_reader.main(["--resume", str(split), "--threads", "1"]) == 0
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(split / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # optimizer, schedule, data order and dropout all restored
    assert any(not torch.equal(a[k], stopped[k]) for k in a)  # and the resumed part did train
    whole_run, split_run = (json.loads((f / "run.json").read_text()) for f in (whole, split))
    assert whole_run["held_out_given_paragraph"] == split_run["held_out_given_paragraph"]
    assert "step 10/10" in (split / "progress.txt").read_text()  # where the run is, at a glance
    assert "resumed at epoch 1 batch 3/5 (step 3/10)" in (split / "train.log").read_text()


def test_a_resumed_run_re_planned_to_fewer_epochs_anneals_to_zero_at_its_new_end(tmp_path, tiny_base, capsys):
    train = squad_file(tmp_path / "train.json", "Alpha")
    common = ["--train", str(train), "--base", str(tiny_base), "--batch-size", "2", "--threads", "1",
              "--epochs", "2", "--distractors", "0.5", "--precision", "fp32"]  # 10 windows: 5 steps an epoch
    early, late = tmp_path / "early", tmp_path / "late"
    assert train_reader.main([*common, "--out", str(early), "--stop-at-step", "3"]) == 0
    assert train_reader.main([*common, "--out", str(late), "--stop-at-step", "6"]) == 0
    assert train_reader.main(["--resume", str(late), "--epochs", "1"]) == 2  # its one epoch is already behind it
    assert "at step 6" in capsys.readouterr().err and json.loads((late / CONFIG_FILE).read_text())["epochs"] == 2
    assert train_reader.main(["--resume", str(early), "--epochs", "1", "--threads", "1"]) == 0
    config = json.loads((early / CONFIG_FILE).read_text())
    assert config["epochs"] == 1 and "step 5/5" in (early / "progress.txt").read_text()
    # the rate goes on from where the first plan had it (warmup 1 step, then 10 steps down to zero) ...
    assert config["replanned"] == {"step": 3, "factor": pytest.approx((10 - 3) / (10 - 1)), "warmup": 1, "epochs_before": 2}
    state = torch.load(early / "checkpoint.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.0  # ... and reaches zero at the new end
    assert json.loads((early / "run.json").read_text())["hyperparameters"]["replanned"] == config["replanned"]
    from training.checkpoint import planned_factor, replan

    untrained = {"epochs": 2, "lr": 1e-4}  # a run started but stopped before its first checkpoint
    replan(untrained, 1, 10, None)
    assert untrained == {"epochs": 1, "lr": 1e-4} and planned_factor(untrained, 10, 0) == 1.0  # warmup as for a new run


def test_a_run_refuses_to_continue_on_changed_data_or_to_start_over_an_existing_run(tmp_path, tiny_base, capsys):
    train = squad_file(tmp_path / "train.json", "Alpha")
    out = tmp_path / "run"
    common = ["--train", str(train), "--base", str(tiny_base), "--batch-size", "2", "--threads", "1", "--epochs", "1"]
    assert train_reader.main([*common, "--out", str(out), "--stop-at-step", "1"]) == 0
    assert train_reader.main([*common, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    squad_file(train, "Gamma")
    assert train_reader.main(["--resume", str(out)]) == 2
    assert "changed since the run started" in capsys.readouterr().err
    assert train_reader.main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_a_run_whose_folder_is_gone_rejoins_from_its_shipped_delta_at_the_step_it_stopped(tmp_path, tiny_base, capsys):
    train = squad_file(tmp_path / "train.json", "Alpha")
    common = ["--train", str(train), "--base", str(tiny_base), "--batch-size", "2", "--threads", "1",
              "--epochs", "2", "--distractors", "0.5", "--precision", "fp32"]
    lost = tmp_path / "lost"
    assert train_reader.main([*common, "--out", str(lost), "--stop-at-step", "3"]) == 0
    assert train_reader.main(["--resume", str(lost), "--record-checkpoint"]) == 0
    delta = tmp_path / "delta.safetensors"
    make_delta.main([str(lost / "model.safetensors"), "--out", str(delta), "--base", str(tiny_base)])
    card = {"delta_sha256": file_sha256(delta), "training": json.loads((lost / "checkpoint.json").read_text())}
    (tmp_path / "delta.json").write_text(json.dumps(card))
    assert train_reader.main([*common, "--seed", "1", "--out", str(tmp_path / "other"), "--init", str(delta),
                              "--rejoin"]) == 2  # another seed is another batch order: not that run's remainder
    assert "--seed differ" in capsys.readouterr().err
    rest = tmp_path / "rest"
    assert train_reader.main([*common, "--out", str(rest), "--init", str(delta), "--rejoin"]) == 0
    log = (rest / "train.log").read_text()
    assert "rejoined the shipped run at step 3/10" in log and "step 10/10" in (rest / "progress.txt").read_text()
    assert log.count("epoch 1 done") == 1 and "epoch 2 done" in log  # only the 7 batches the lost run had not reached
    assert json.loads((rest / "run.json").read_text())["rejoined_at"] == 3


def _shipped_files(tmp_path, monkeypatch, given: dict, objectives: dict, quality_failure: str | None = None):
    """ship_reader over a fake shipped delta and card; `given` and `objectives` map a delta's bytes to
    its best-span F1 and cross-fitted objective, as the real scoring would measure them, and
    `quality_failure` is what the test suite's quality gate says of the candidate."""
    from training import ship_reader

    delta, card, run = tmp_path / "reader.safetensors", tmp_path / "reader.json", tmp_path / "run"
    run.mkdir()
    delta.write_bytes(b"shipped")
    card.write_text(json.dumps({"delta_sha256": file_sha256(delta), "calibration": {}, "held_out_end_to_end": {}}))
    (run / "model.safetensors").write_bytes(b"candidate")
    (run / "run.json").write_text(json.dumps({"trained_titles": ["Elsewhere"]}))
    monkeypatch.setattr(ship_reader, "GATE", card)  # any file: the gate's reading is faked below
    monkeypatch.setattr(ship_reader, "DELTA_FILE", delta)
    monkeypatch.setattr(ship_reader, "CARD_FILE", card)
    monkeypatch.setattr(ship_reader, "load_card", lambda: json.loads(card.read_text()))
    monkeypatch.setattr(ship_reader, "squad_paragraphs", lambda path: ([], None))
    monkeypatch.setattr(ship_reader.make_delta, "main", lambda argv: delta.write_bytes(b"candidate"))
    monkeypatch.setattr(ship_reader, "held_out_questions", lambda path: [])
    monkeypatch.setattr(ship_reader, "score_given_paragraph",
                        lambda questions, int8: {"best_span_has_ans_f1": given[delta.read_bytes()]})
    monkeypatch.setattr(ship_reader, "quality_gate_failure", lambda: quality_failure)
    written = []
    monkeypatch.setattr(ship_reader, "record_results", written.append)

    def calibrated_card(run_folder, settings, out):
        figures = {"best_span_f1": given[delta.read_bytes()], "has_ans_f1": objectives[delta.read_bytes()],
                   "absent_no_ans": 0.9, "adversarial_no_ans": None}
        written_card = {"delta_sha256": file_sha256(delta), "int8": False, "held_out_end_to_end": {
            "cross_fitted": {"new_wiki": figures}, "objective": objectives[delta.read_bytes()]}}
        out.write_text(json.dumps(written_card))
        outcome = {"data": "new_wiki", "id": "q", "kind": "answerable", "answered": True,
                   "f1": 2 * objectives[delta.read_bytes()] - 1}  # with no absent questions, the objective is (F1 + 1) / 2
        ship_reader.calibrate_reader.outcomes_path(run_folder, written_card).write_text(json.dumps(outcome) + "\n")
        return written_card

    monkeypatch.setattr(ship_reader, "calibrated_card", calibrated_card)
    return ship_reader, run, delta, card, written


@pytest.mark.parametrize("given, objectives, quality_failure, shipped", [
    ({b"shipped": 0.80, b"candidate": 0.79}, {b"shipped": 0.7, b"candidate": 0.9}, None, False),
    ({b"shipped": 0.80, b"candidate": 0.81}, {b"shipped": 0.7, b"candidate": 0.6}, None, False),
    ({b"shipped": 0.80, b"candidate": 0.80}, {b"shipped": 0.7, b"candidate": 0.7}, None, False),
    ({b"shipped": 0.80, b"candidate": 0.80}, {b"shipped": 0.7, b"candidate": 0.71}, None, True),
    ({b"shipped": 0.80, b"candidate": 0.81}, {b"shipped": 0.7, b"candidate": 0.71}, None, True),
    ({b"shipped": 0.80, b"candidate": 0.81}, {b"shipped": 0.7, b"candidate": 0.71}, "the quality gate fails", False),
])
def test_a_run_replaces_the_shipped_reader_only_when_no_held_out_figure_falls_one_rises_and_the_quality_gate_passes(
        tmp_path, monkeypatch, capsys, given, objectives, quality_failure, shipped):
    ship_reader, run, delta, card, written = _shipped_files(tmp_path, monkeypatch, given, objectives, quality_failure)
    before = card.read_bytes()
    code = ship_reader.ship(run, ["somewhere/new_wiki.json:10"])
    assert code == (0 if shipped else 1)
    assert delta.read_bytes() == (b"candidate" if shipped else b"shipped")
    assert (card.read_bytes() != before) == shipped
    assert written == (["somewhere/new_wiki.json:10"] if shipped else [])
    calibrated = given[b"candidate"] >= given[b"shipped"]  # past the first gate
    assert len(list(run.glob("calibrated-*.json"))) == calibrated
    change = f"question by question: {objectives[b'candidate'] - objectives[b'shipped']:+.4f}"
    assert (change in capsys.readouterr().out) == calibrated


def test_the_quality_gate_is_the_test_suite_s_verdict(tmp_path, monkeypatch):
    from training import ship_reader

    gate = tmp_path / "test_gate.py"
    monkeypatch.setattr(ship_reader, "QUALITY_GATE", gate)
    gate.write_text("def test_floor():\n    assert 0.61 >= 0.62\n\ndef test_shape():\n    assert True\n")
    assert ship_reader.quality_gate_failure() == "the quality gate test_gate.py fails (1 failed or in error)"
    gate.write_text("def test_floor():\n    assert 0.63 >= 0.62\n")
    assert ship_reader.quality_gate_failure() is None
    gate.unlink()  # the gate cannot be run at all: a failure too
    assert ship_reader.quality_gate_failure() == "the quality gate test_gate.py fails (1 failed or in error)"


def test_the_verdict_shows_which_held_out_figure_moved():
    from training.ship_reader import comparison

    def card(absent):
        figures = {"best_span_f1": 0.7, "has_ans_f1": 0.6, "absent_no_ans": absent, "adversarial_no_ans": None}
        return {"held_out_end_to_end": {"cross_fitted": {"amazon": figures}}}

    assert comparison(card(0.91), card(0.86)) == ("  amazon: best span F1 0.700 -> 0.700, HasAns F1 at the threshold "
                                                  "0.600 -> 0.600, absent NoAns 0.910 -> 0.860")


def test_two_readers_are_compared_question_by_question_as_the_objective_counts_them():
    from training.calibrate_reader import objective, paired_difference

    rows, before, after = [], [], []
    for data, answerable, absent in (("wiki", 40, 20), ("reviews", 30, 10)):
        for number in range(answerable + absent + 5):
            kind = "answerable" if number < answerable else "absent" if number < answerable + absent else "adversarial"
            rows.append({"data": data, "id": str(number), "kind": kind, "f1": [1.0, 0.5, 0.0][number % 3]})
            before.append({**rows[-1], "answered": number % 2 == 0})
            after.append({**rows[-1], "answered": number % 5 != 0})
    difference, half_width = paired_difference(before, after)
    was, now = (objective(rows, np.array([float(r["answered"]) for r in side]), 0.5) for side in (before, after))
    assert difference == pytest.approx(now - was) and difference != 0
    assert 0 < half_width < abs(difference) * 10
    assert paired_difference(before, before) == (0.0, 0.0)  # the same reader: no change, no spread
    assert paired_difference(before, list(reversed(after))) == pytest.approx((difference, half_width))  # paired by question


def test_a_failure_while_shipping_puts_the_shipped_reader_back(tmp_path, monkeypatch):
    ship_reader, run, delta, card, _ = _shipped_files(tmp_path, monkeypatch, {b"shipped": 0.8}, {b"shipped": 0.7})
    before = card.read_bytes()
    with pytest.raises(KeyError):  # the candidate's figures cannot be had
        ship_reader.ship(run, [])
    assert delta.read_bytes() == b"shipped" and card.read_bytes() == before
    delta.write_bytes(b"candidate")  # as a call killed outright would leave it: refused before anything is copied
    with pytest.raises(ship_reader.ShipError, match="not reader.safetensors's card"):
        ship_reader.ship(run, [])


def test_a_checkpoint_record_of_other_weights_is_refused(tmp_path):
    from dataclasses import asdict

    from training import ship_reader
    from training.checkpoint import CHECKPOINT_RECORD, Position

    torch.save({"position": asdict(Position(step=40))}, tmp_path / "checkpoint.pt")
    (tmp_path / CHECKPOINT_RECORD).write_text(json.dumps({"stopped_at": {"step": 30}}))
    with pytest.raises(ship_reader.ShipError, match="record them again"):
        ship_reader.run_record(tmp_path)
    (tmp_path / CHECKPOINT_RECORD).write_text(json.dumps({"stopped_at": {"step": 40}}))
    assert ship_reader.run_record(tmp_path)["stopped_at"]["step"] == 40


def test_each_epoch_but_the_last_is_kept_as_a_candidate_with_its_own_record(tmp_path, tiny_base):
    from safetensors.torch import load_file

    train = squad_file(tmp_path / "train.json", "Alpha")
    out = tmp_path / "run"
    held = squad_file(tmp_path / "held.json", "Beta")
    assert train_reader.main(["--train", str(train), "--holdout", str(held), "--base", str(tiny_base), "--batch-size",
                              "2", "--threads", "1", "--epochs", "2", "--keep-epochs", "--out", str(out)]) == 0
    kept = json.loads((out / "epoch-1" / "run.json").read_text())
    assert kept["stopped_at"]["epoch"] == 1 and kept["stopped_at"]["batch"] == 0
    assert kept["stopped_at"]["steps"] == 2 * kept["stopped_at"]["step"] == 8  # 7 windows: 4 batches of 2 an epoch
    assert not (out / "epoch-2").exists()  # the last epoch is the run's own model.safetensors
    assert kept["held_out_given_paragraph"]["held.json"]["answerable"] == 3  # what the epoch gave, held out
    assert (out / "epoch-1" / "given-paragraph-held.jsonl").exists()
    first, last = load_file(str(out / "epoch-1" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(first[k], last[k]) for k in first)


def test_carried_weights_come_back_to_the_base_within_their_rounding():
    from training.device_transfer import FROZEN, carried_base, carried_weights

    torch.manual_seed(0)
    base = {FROZEN: torch.randn(50, 8), "encoder.weight": torch.randn(8, 8), "encoder.bias": torch.zeros(8)}
    carried = carried_weights(base)
    assert carried[FROZEN + ".int8"].dtype == torch.int8 and carried["encoder.weight"].dtype == torch.float16
    back = carried_base(carried)
    row_step = base[FROZEN].abs().amax(dim=1, keepdim=True) / 127
    assert ((back[FROZEN] - base[FROZEN]).abs() <= row_step / 2 + 1e-6).all()
    assert (back["encoder.weight"] - base["encoder.weight"]).abs().max() < 1e-2
    assert torch.equal(carried_base(carried_weights(back))[FROZEN], back[FROZEN])  # the same rows there and here


@pytest.mark.parametrize("stop_early", [False, True])
def test_a_run_on_a_lent_machine_comes_back_as_a_run_folder_like_any_other(tmp_path, tiny_base, monkeypatch, stop_early):
    """training/device_train.sh as a `run` call would run it (here on the CPU), then received here."""
    import os
    import subprocess

    from safetensors.torch import load_file

    from training import device_transfer

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    squad_file(tmp_path / "data" / "train.json", "Alpha")
    squad_file(tmp_path / "data" / "held.json", "Beta")
    pack = tmp_path / "pack"
    assert device_transfer.main(["pack", "--out", str(pack), "--base", str(tiny_base),
                                 "--data", "data/train.json", "data/held.json"]) == 0
    work, returned = tmp_path / "lent", tmp_path / "returned"
    returned.mkdir()
    arguments = ["--train", "data/train.json", "--holdout", "data/held.json", "--epochs", "2", "--keep-epochs",
                 "--batch-size", "2", "--threads", "1", "--precision", "fp32", *(["--stop-at-step", "7"] if stop_early else [])]
    environment = {**os.environ, "PYTHON": sys.executable, "WORK": str(work), "DEVICE": "cpu", "OUT": str(returned),
                   "PACK": str(pack)}
    done = subprocess.run(["bash", str(ROOT / "training" / "device_train.sh"), *arguments], env=environment,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list(returned.iterdir())) <= device_transfer.RETURNED_FILES
    there = json.loads((work / "run" / ("checkpoint.json" if stop_early else "run.json")).read_text())
    assert there["data"] == {name: file_sha256(tmp_path / name) for name in ("data/train.json", "data/held.json")}

    received = tmp_path / "received"
    assert device_transfer.main(["receive", str(returned), "--pack", str(pack), "--base", str(tiny_base),
                                 "--out", str(received)]) == 0
    packaged = load_file(str(tiny_base / "model.safetensors"))
    for kept, trained_there in ((received, work / "run"), (received / "epoch-1", work / "run" / "epoch-1")):
        back, trained = load_file(str(kept / "model.safetensors")), load_file(str(trained_there / "model.safetensors"))
        frozen = "bert." + device_transfer.FROZEN
        assert torch.equal(back[frozen], packaged[device_transfer.FROZEN])  # the fp32 rows, never the carried ones
        assert not torch.equal(trained[frozen], packaged[device_transfer.FROZEN])
        assert all((back[k] - trained[k].float()).abs().max() < 1e-2 for k in back if k != frozen)
        record = json.loads((kept / "run.json").read_text())
        assert record["base_weights_sha256"] == file_sha256(tiny_base / "model.safetensors")
        assert record["trained_titles"] == ["Alpha"] and record["held_out_titles"] == ["Beta"]
    again = ["receive", str(returned), "--pack", str(pack), "--base", str(tiny_base), "--out", str(received)]
    assert device_transfer.main(again) == 2  # never over a run folder that is there already
    final = json.loads((received / "run.json").read_text())
    assert ("stopped_at" in final) == stop_early and ("held_out_given_paragraph" in final) == (not stop_early)
    delta = tmp_path / "delta.safetensors"
    assert make_delta.main([str(received / "model.safetensors"), "--out", str(delta), "--base", str(tiny_base)]) == 0
    assert not any("word_embeddings" in k for k in load_file(str(delta)))  # shippable as any run's weights are


def test_a_pack_refuses_data_it_cannot_name_as_the_run_will(tmp_path, monkeypatch, capsys, tiny_base):
    from training import device_transfer

    monkeypatch.chdir(tmp_path)
    squad_file(tmp_path / "train.json", "Alpha")
    for name in ("missing.json", str(tmp_path / "train.json")):
        assert device_transfer.main(["pack", "--out", "pack", "--base", str(tiny_base), "--data", name]) == 2
        assert "relative to the repository root" in capsys.readouterr().err
