"""A run's weights averaged with those it started from, as a run folder that ship_reader.py can gate.

    python training/soup_reader.py --run training/runs/recipe8 --out training/runs/recipe8-soup
    python training/ship_reader.py --run training/runs/recipe8-soup

A run continued from a shipped delta moves away from it; halfway between the two (Wortsman et al.
2022, "robust fine-tuning of zero-shot models", WiSE-FT) a model often keeps what the start knew
where the data it was tuned on says little. Here that is the style of answers: readers tuned longer
on SQuAD v1.1 give shorter spans. The weight is set before any figure is seen (0.5 unless told),
never chosen on eval/gold.jsonl; the soup is gated like any run's weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from safetensors.torch import load_file, save_file  # noqa: E402

from qa.reading.read import CARD_FILE, DELTA_FILE, merged_state  # noqa: E402
from qa.reading.squad import trained_titles  # noqa: E402
from qa.search.embed import file_sha256, packaged_model_dir  # noqa: E402
from training.checkpoint import write_atomically  # noqa: E402
from training.ship_reader import ShipError, run_record  # noqa: E402


def soup(run_weights: dict, start_weights: dict, weight: float) -> dict:
    """(1 - weight) * start + weight * run, tensor by tensor, in the run's dtypes."""
    if set(start_weights) != {k for k in run_weights if not k.endswith("position_ids")}:
        raise ShipError("the run's weights and those it started from have other tensors: not the same model")
    return {name: (tensor if name not in start_weights else
                   ((1 - weight) * start_weights[name].float() + weight * tensor.float()).to(tensor.dtype)).contiguous()
            for name, tensor in run_weights.items()}


def make_soup(run: Path, out: Path, weight: float, delta: Path = DELTA_FILE, card: Path = CARD_FILE,
              base: Path | None = None) -> dict:
    """Write out/model.safetensors, (1 - weight) of `delta` (the run's start, described by `card`) and
    `weight` of the run's weights, and its record out/run.json; returns the record."""
    if not 0 < weight < 1:
        raise ShipError(f"--weight {weight}: a soup takes 0 < weight < 1 of the run")
    if out.exists():
        raise ShipError(f"{out} exists: give a new folder")
    record, start_card = run_record(run), json.loads(card.read_text(encoding="utf-8"))
    if start_card.get("delta_sha256") != file_sha256(delta):
        raise ShipError(f"{card} is not {delta}'s card")
    if (record.get("init") or {}).get("sha256") != start_card["delta_sha256"]:
        raise ShipError(f"the run did not start from {delta}: give the delta it started from (--with)")
    start = merged_state(delta, base or packaged_model_dir())
    weights = soup(load_file(str(run / "model.safetensors")), start, weight)
    out.mkdir(parents=True)
    write_atomically(out / "model.safetensors", lambda p: save_file(weights, str(p)))
    # the soup has read whatever either side trained on: gates and calibration must avoid all of it
    titles = trained_titles(record) | trained_titles(start_card["training"])
    record = {**{k: v for k, v in record.items() if k != "held_out_given_paragraph"},  # the run's weights', not these
              "trained_titles": sorted(titles),
              "soup": {"run": str(run), "run_weights_sha256": file_sha256(run / "model.safetensors"),
                       "weight": weight, "with_delta_sha256": start_card["delta_sha256"],
                       "with_training": start_card["training"]}}
    write_atomically(out / "run.json", lambda p: p.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8"))
    for rows in run.glob("calibration-rows-*.jsonl"):
        shutil.copy2(rows, out / rows.name)  # named by the delta that answered them: the shipped one's are not asked again
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a stopped training run folder (as ship_reader.py takes)")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the soup")
    parser.add_argument("--weight", type=float, default=0.5, help="the run's share; the delta it started from has the rest")
    parser.add_argument("--with", dest="delta", type=Path, default=DELTA_FILE,
                        help="the delta the run started from, its card beside it as .json (default: the shipped one; "
                             "once another has shipped, ship_reader.py's copy in the run folder it gated, shipped-<sha>/)")
    args = parser.parse_args(argv)
    try:
        make_soup(args.run.resolve(), args.out.resolve(), args.weight, args.delta, args.delta.with_suffix(".json"))
    except (ShipError, OSError, ValueError) as error:  # OSError, ValueError: a file missing or not what it should be
        sys.exit(f"error: {error}")
    print(f"wrote {args.out / 'model.safetensors'} ({args.weight:g} of {args.run}) and its run.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
