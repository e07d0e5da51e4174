"""Split a SQuAD file into its two folds of titles (sorted, taken alternately: the folds every
calibration figure is cross-fitted over), one file each, so that a held-out set can lend one fold
to training and keep the other held out.

    python training/title_fold.py ../shared/data/squad/squad2-dev-a.json --out training/runs/folds
    # -> squad2-dev-a-fold0.json (trained on: train_reader.py --train-all) and squad2-dev-a-fold1.json
    #    (scored: --holdout, calibrate_reader.py --data, eval/reader.py --data)

Each file is SQuAD as it came (version, articles, paragraphs and questions unchanged), so the
trained fold's titles are recorded in the run's card like any training file's and every scorer
refuses them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.calibration_rows import title_folds  # noqa: E402


def split(path: Path, out: Path) -> dict[Path, list[str]]:
    """Each fold file written, with its titles in the file's order."""
    squad = json.loads(path.read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for number, fold in enumerate(title_folds(article["title"] for article in squad["data"])):
        target = out / f"{path.stem}-fold{number}.json"
        kept = {**squad, "data": [article for article in squad["data"] if article["title"] in fold]}
        target.write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
        written[target] = [article["title"] for article in kept["data"]]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("squad", type=Path, help="a SQuAD v1.1/v2.0 file")
    parser.add_argument("--out", type=Path, required=True, help="folder for the two fold files")
    args = parser.parse_args(argv)
    if not args.squad.is_file():
        parser.error(f"{args.squad} is not a file")
    for target, titles in split(args.squad, args.out).items():
        print(f"{target}: {', '.join(titles)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
