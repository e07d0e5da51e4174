"""Replace the built-in reader with a training run's weights only if held-out figures rise.

    python training/ship_reader.py --run training/runs/all

training/README.md's shipping procedure as one command, so that it is the same every time and a
reader that does worse never stays in place:
1. gate: the shipped reader and the run's weights (as a delta, make_delta.py) read every question
   of the held-out Wikipedia file given its paragraph (fp32 ONNX, in this process); the run's weights
   go on only if their best-span HasAns F1 is at least the shipped reader's;
2. both are calibrated end to end with the shipped card's settings (its files, samples, seed,
   features, rank penalty and guess rules; calibrate_reader.py, whose rows are kept in the run
   folder per delta, so the shipped reader's are asked once per run); they go on only if their
   cross-fitted objective (per file, the mean of answerable F1 at the threshold and absent
   accuracy; averaged over files) is at least the shipped reader's, and one of the two is higher
   (both cards' figures are printed per file with the objective's change question by question and
   its 95% interval, and the run's card is kept in the run folder as calibrated-<sha>.json either way);
3. the test suite's quality gate (tests/reading/test_quality.py, which CI runs) must pass with
   them: a reader below its floors could not land, whatever the held-out figures say;
4. then the new delta and card stay, and `python -m eval.reader` writes the given-the-paragraph
   figures of the --results files to eval/results/; otherwise the shipped delta and card are put back as they were.
The run must be stopped with a record of its weights (run.json at its end, or checkpoint.json from
`train_reader.py --resume RUN --record-checkpoint`). eval/gold.jsonl is never fitted on here: its
floors in that test pass or fail, nothing is chosen by them; measure it afterwards with
`python -m eval.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.reader import held_out_questions, score_given_paragraph  # noqa: E402
from qa.reading.read import CARD_FILE, DELTA_FILE, load_card  # noqa: E402
from qa.reading.squad import squad_paragraphs, trained_titles  # noqa: E402
from qa.search.embed import file_sha256  # noqa: E402
from training import calibrate_reader, make_delta  # noqa: E402
from training.checkpoint import CHECKPOINT_RECORD, read_position  # noqa: E402

DATA = "../shared/data"  # from the repository root, as the card's calibration files are named
GATE = ROOT / DATA / "squad" / "squad2-dev-a.json"
RESULTS = (f"{DATA}/squad/squad2-dev-a.json", f"{DATA}/squadshifts/new_wiki.json:1000",
           f"{DATA}/squadshifts/amazon.json:1000")
RESULTS_SEED = 1
QUALITY_GATE = ROOT / "tests" / "reading" / "test_quality.py"


class ShipError(Exception):
    pass


def run_record(run: Path) -> dict:
    """The record of the run's model.safetensors: run.json, or checkpoint.json if it is the last checkpoint's."""
    if (run / "run.json").exists():
        return json.loads((run / "run.json").read_text(encoding="utf-8"))
    if not (run / CHECKPOINT_RECORD).exists():
        raise ShipError(f"{run} has neither run.json nor {CHECKPOINT_RECORD}: stop the run, then "
                        f"`train_reader.py --resume {run} --record-checkpoint`")
    record = json.loads((run / CHECKPOINT_RECORD).read_text(encoding="utf-8"))
    position = read_position(run)
    if position is None or position.step != record["stopped_at"]["step"]:
        raise ShipError(f"{run}/{CHECKPOINT_RECORD} describes step {record['stopped_at']['step']}, but the run's "
                        f"weights are now those of step {position.step if position else '?'}: record them again")
    return record


def refusal(shipped: dict, candidate: dict) -> str | None:
    """Why the candidate must not replace the shipped reader (None: it may), from both sides'
    `given_paragraph` (best-span HasAns F1) and, once calibrated, `objective`."""
    if candidate["given_paragraph"] < shipped["given_paragraph"]:
        return f"given the paragraph, best-span HasAns F1 {candidate['given_paragraph']:.4f} < {shipped['given_paragraph']:.4f}"
    if "objective" not in candidate:
        return None
    if candidate["objective"] < shipped["objective"]:
        return f"end to end, the cross-fitted objective {candidate['objective']:.4f} < {shipped['objective']:.4f}"
    if candidate == shipped:
        return "neither figure rose"
    return None


COMPARED = (("best_span_f1", "best span F1"), ("has_ans_f1", "HasAns F1 at the threshold"),
            ("absent_no_ans", "absent NoAns"), ("adversarial_no_ans", "adversarial NoAns"))


def comparison(shipped: dict, candidate: dict) -> str:
    """Both cards' cross-fitted figures per file, so a verdict on the objective shows which figure moved it."""
    lines = []
    for data, after in candidate["held_out_end_to_end"]["cross_fitted"].items():
        before = shipped["held_out_end_to_end"]["cross_fitted"][data]
        moved = [f"{label} {before[key]:.3f} -> {after[key]:.3f}" for key, label in COMPARED if after.get(key) is not None]
        lines.append(f"  {data}: " + ", ".join(moved))
    return "\n".join(lines)


def paired(run: Path, shipped: dict, candidate: dict) -> str:
    """The objective's change over the same questions, with its 95% interval from their sampling: a
    verdict either way may rest on fewer questions than it seems (the gate itself does not use it)."""
    before, after = ([json.loads(line) for line in lines] for lines in (
        calibrate_reader.outcomes_path(run, card).read_text(encoding="utf-8").splitlines() for card in (shipped, candidate)))
    difference, half_width = calibrate_reader.paired_difference(before, after)
    return (f"  objective, the run's less the shipped reader's, question by question: {difference:+.4f} "
            f"(95% interval {difference - half_width:+.4f} to {difference + half_width:+.4f}, thresholds as fitted)")


def quality_gate_failure() -> str | None:
    """Why the reader now in qa/reading fails the test suite's quality gate (None: it passes)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(QUALITY_GATE)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode == 0:
        return None
    output = (result.stdout + result.stderr).splitlines()
    failed = [line for line in output if line.startswith(("FAILED", "ERROR"))]
    print(*(failed or output[-5:]), sep="\n", flush=True)  # pytest's own last words when no test ran
    return f"the quality gate {QUALITY_GATE.name} fails ({len(failed)} failed or in error)"


def record_results(spec: str) -> None:
    """eval/results/reader-FILE.json for FILE[:SAMPLE], made by eval/reader.py itself (its provenance
    is then the command that makes it again)."""
    path, sample = (spec.split(":") + [None])[:2]
    command = [sys.executable, "-m", "eval.reader", "--data", path, "--json", f"eval/results/reader-{Path(path).stem}.json"]
    command += ["--sample", sample, "--seed", str(RESULTS_SEED)] if sample else []
    if subprocess.run(command, cwd=ROOT).returncode:
        raise ShipError(f"the reader shipped, but `{' '.join(command[1:])}` failed: run it again")


def calibrated_card(run: Path, settings: dict, card: Path) -> dict:
    """The current delta calibrated with the shipped card's settings: the card written to `card`."""
    calibration, end_to_end = settings["calibration"], settings["held_out_end_to_end"]
    calibrate_reader.main(["--run", str(run), "--card", str(card), "--seed", str(end_to_end["seed"]),
                           "--features", ",".join(calibration["features"]),
                           "--rank-penalty", str(calibration["rank_penalty"]),
                           "--guess-precision", str(calibration["guess_precision"]),
                           "--guess-absent", str(calibration["guess_absent"]), "--data", *end_to_end["data"]]
                          + ([] if calibration.get("early_margin") is None else ["--early-margin", str(calibration["early_margin"])]))
    return json.loads(card.read_text(encoding="utf-8"))


def ship(run: Path, results: list[str]) -> int:
    if not GATE.is_file():
        raise ShipError(f"{GATE} is missing: shipping needs the held-out data of ../shared/data")
    record = run_record(run)
    gate_titles = {p.title for p in squad_paragraphs(GATE)[0]}
    if gate_titles & trained_titles(record):
        raise ShipError(f"the run trained on articles of {GATE.name}: it cannot be gated on them")
    settings, digest = load_card(), file_sha256(DELTA_FILE)
    if settings.get("delta_sha256") != digest:  # a half-done earlier call: never back up its delta as the shipped one
        raise ShipError(f"{CARD_FILE.name} is not {DELTA_FILE.name}'s card: `git checkout qa/reading` first")
    backup = run / f"shipped-{digest[:12]}"
    backup.mkdir(exist_ok=True)
    for path in (DELTA_FILE, CARD_FILE):
        shutil.copy2(path, backup / path.name)
    gate = held_out_questions(GATE)  # read once: both readers are scored on these

    def given_paragraph() -> float:
        return score_given_paragraph(gate, int8=False)["best_span_has_ans_f1"]

    def objective(card: dict) -> float:
        return card["held_out_end_to_end"]["objective"]

    shipped_card = calibrated_card(run, settings, backup / "recalibrated.json")
    shipped = {"given_paragraph": given_paragraph(), "objective": objective(shipped_card)}
    print(f"shipped reader: {shipped}", flush=True)
    try:
        make_delta.main([str(run / "model.safetensors"), "--out", str(DELTA_FILE)])
        candidate = {"given_paragraph": given_paragraph()}
        if (reason := refusal(shipped, candidate)) is None:
            candidate_card = calibrated_card(run, settings, CARD_FILE)
            candidate["objective"] = objective(candidate_card)
            reason = refusal(shipped, candidate)
            shutil.copy2(CARD_FILE, run / f"calibrated-{file_sha256(DELTA_FILE)[:12]}.json")  # kept, shipped or not
            print(comparison(shipped_card, candidate_card), paired(run, shipped_card, candidate_card), sep="\n",
                  flush=True)
            reason = reason or quality_gate_failure()
        print(f"run's weights: {candidate}", flush=True)
    except BaseException:
        restore(backup)
        raise
    if reason:
        restore(backup)
        print(f"not shipped ({reason}); the shipped reader is back in place")
        return 1
    for spec in results:
        record_results(spec)
    print(f"shipped: {DELTA_FILE.name} {file_sha256(DELTA_FILE)[:12]}; the old files are in {backup}")
    return 0


def restore(backup: Path) -> None:
    for path in (DELTA_FILE, CARD_FILE):
        shutil.copy2(backup / path.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a stopped training run folder")
    parser.add_argument("--results", nargs="*", default=list(RESULTS),
                        help=f"FILE[:SAMPLE] scored given the paragraph into eval/results/ once shipped (seed {RESULTS_SEED})")
    args = parser.parse_args(argv)
    run = args.run.resolve()
    os.chdir(ROOT)  # the card names its calibration files from the repository root
    try:
        return ship(run, args.results)
    except ShipError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    sys.exit(main())
