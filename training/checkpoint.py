"""A training run's state on disk, so that a run stopped anywhere continues where it was.

A session ends when it ends: the run folder holds `config.json` (what the run is: data, hashes,
hyperparameters; written once), `checkpoint.pt` (weights, optimizer and schedule state, the torch
random state and the position in the data order; tensors and plain data only, loaded with
`weights_only`, so no pickled class of this project is needed to read it) and `model.safetensors`
(the same weights, for scoring and make_delta.py). Both are replaced atomically: a run killed while
writing leaves the previous checkpoint whole. `progress.txt` is one line saying where the run is;
`checkpoint.json`, written on request, is run.json's record for the checkpoint's weights, and
`epoch-N/` (with --keep-epochs) an epoch's weights and their record, kept as a candidate of their own.
A new run's config and first weights are made here too, and so is the point where a run whose
folder was lost rejoins (`--rejoin`): from the card of the delta it shipped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from qa.search.embed import file_sha256
from training.torch_reader import has_bf16_units

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.txt"
CHECKPOINT_RECORD = "checkpoint.json"  # run.json's record for the checkpoint's weights, made on request
DEFAULT_EPOCHS = 3
RUN_SHAPE = ("epochs", "lr", "batch_size", "distractors", "removals", "negatives")  # what --rejoin must match
REJOINED_FIELDS = ("epoch", "batch", "step", "windows_seen")  # of Position: where a rejoined run starts


class RunError(Exception):
    """A run that cannot start or continue as asked (said in one line)."""


@dataclass
class Position:
    """Where a run is: `epoch` and `batch` index the next batch to train on."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    windows_seen: int = 0
    train_seconds: float = 0.0


def write_atomically(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_config(out: Path, config: dict) -> None:
    write_atomically(out / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8"))


def load_config(out: Path) -> dict:
    try:
        return json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{out} has no {CONFIG_FILE}: not a run folder (start a new run with --out)") from None
    except ValueError as error:
        raise RunError(f"{out / CONFIG_FILE} is not valid JSON ({error})") from None


def init_provenance(delta: Path) -> dict:
    """Where a continued run started: the delta's hash and, when the card beside it describes that
    very delta (qa/reading/reader.json for qa/reading/reader.safetensors), how that delta was trained."""
    record = {"path": str(delta), "sha256": file_sha256(delta)}
    card = delta.with_suffix(".json")
    try:
        described = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return record
    if described.get("delta_sha256") == record["sha256"]:
        record["training"] = described.get("training")
    return record


def check_data(config: dict) -> None:
    for path, sha in config["data"].items():
        if not Path(path).is_file():
            raise RunError(f"{path} is gone: the run cannot continue on other data")
        if file_sha256(Path(path)) != sha:
            raise RunError(f"{path} changed since the run started: it cannot continue on other data")


def check_windows(config: dict, count: int, digest: str) -> None:
    """The windows a run (or the run it rejoins) trained on, built again: the same or nothing."""
    if config.get("rejoin") and count != config["rejoin"]["train_windows"]:
        raise RunError(f"--rejoin: {count} training windows here, {config['rejoin']['train_windows']} in the "
                       "run the --init delta was shipped from (the windowing code changed): start a new run")
    if config.setdefault("windows_sha256", digest) != digest:
        raise RunError("the training windows differ from those the run started with (the windowing or data "
                       "code changed): it cannot continue; start a new run")


def save_checkpoint(out: Path, model, optimizer, schedule, position: Position) -> None:
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = {"model": weights, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "torch_rng": torch.get_rng_state(), "position": asdict(position)}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    write_atomically(out / CHECKPOINT_FILE, lambda p: torch.save(state, p))
    write_atomically(out / "model.safetensors", lambda p: save_file(weights, str(p)))


def load_checkpoint(out: Path, model, optimizer, schedule) -> Position | None:
    """Restores everything `save_checkpoint` wrote; None when the run has no checkpoint yet."""
    path = out / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a damaged file
        raise RunError(f"{path} cannot be read ({type(error).__name__}); the run cannot continue from it") from None
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return Position(**state["position"])


def write_record(path: Path, record: dict, position: Position, steps: int) -> None:
    """The run's record for the weights at `position`, a point before its end (`stopped_at`)."""
    stopped = {**record, "stopped_at": {**asdict(position), "steps": steps}, "train_seconds": round(position.train_seconds)}
    write_atomically(path, lambda p: p.write_text(json.dumps(stopped, indent=2) + "\n", encoding="utf-8"))


def keep_epoch(out: Path, position: Position) -> Path:
    """epoch-N/ with the weights at the end of epoch N: a candidate of its own for make_delta.py and
    ship_reader.py once its record (run.json) is written beside them, kept as the run goes on."""
    kept = out / f"epoch-{position.epoch}"
    kept.mkdir(exist_ok=True)
    write_atomically(kept / "model.safetensors", lambda p: shutil.copyfile(out / "model.safetensors", p))
    return kept


def read_position(out: Path) -> Position | None:
    """Where the last checkpoint stands, without loading it into a model."""
    path = out / CHECKPOINT_FILE
    if not path.exists():
        return None
    return Position(**torch.load(path, map_location="cpu", weights_only=True)["position"])


class ProgressLog:
    """Appends to train.log and keeps progress.txt as the one line that says where the run is."""

    def __init__(self, out: Path, echo: bool = True):
        self.out, self.echo = out, echo
        self.file = open(out / "train.log", "a", encoding="utf-8")

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        if self.echo:
            print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def where(self, position: Position, steps: int, total_windows: int, epochs: int, loss: float,
              seconds_per_step: float) -> None:
        left = (steps - position.step) * seconds_per_step
        line = (f"epoch {min(position.epoch + 1, epochs)}/{epochs} step {position.step}/{steps} "
                f"windows {position.windows_seen}/{total_windows * epochs} loss {loss:.3f} "
                f"{seconds_per_step:.2f} s/step ETA {left / 3600:.1f} h")
        self(line)
        write_atomically(self.out / PROGRESS_FILE,
                         lambda p: p.write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n", encoding="utf-8"))


def new_config(args) -> dict:
    """Everything that decides what a run trains, fixed when it starts and read again by --resume."""
    paths = [str(p) for p in args.train + args.train_all + args.holdout]
    config = {
        "train": [str(p) for p in args.train], "holdout": [str(p) for p in args.holdout],
        "train_all": [str(p) for p in args.train_all],
        "data": {p: file_sha256(Path(p)) for p in paths},
        "base": str(args.base) if args.base else None, "seed": args.seed, "epochs": args.epochs or DEFAULT_EPOCHS,
        "lr": args.lr,
        "batch_size": args.batch_size, "distractors": args.distractors, "removals": args.removals,
        "swaps": args.swaps, "nearest_distractors": args.nearest_distractors, "negatives": args.negatives,
        "limit": args.limit, "holdout_limit": args.holdout_limit, "keep_epochs": args.keep_epochs,
        "device": args.device, "bf16": args.precision == "bf16" if args.precision else has_bf16_units(args.device),
        # before anything may replace the delta (shipping this very run does)
        "init": init_provenance(args.init) if args.init else None,
    }
    if args.rejoin:
        config["rejoin"] = rejoin_point(config)
        config["replanned"] = config["init"]["training"]["hyperparameters"].get("replanned")
    return config


def start_weights(model, config: dict, model_dir: Path) -> None:
    """A fresh run's weights: the packaged base, or the --init delta it was started from (unchanged)."""
    init = config["init"]
    if not init:
        return
    from qa.reading.read import merged_state

    if not Path(init["path"]).is_file() or file_sha256(Path(init["path"])) != init["sha256"]:
        raise RunError(f"{init['path']} is not the delta this run started from (sha256 {init['sha256'][:12]}...), "
                       "and the run has no checkpoint yet: start a new run")
    model.load_state_dict(merged_state(Path(init["path"]), model_dir), strict=False)


def rejoin_point(config: dict) -> dict:
    """Where the run that the --init delta was shipped from stopped, for a run that is its remainder
    (its own folder lost): the same data, seed and hyperparameters give the same batch order, so the
    remainder trains on exactly the batches that run had not reached, on the same schedule."""
    shipped = (config["init"] or {}).get("training") or {}
    stopped = shipped.get("stopped_at")
    if not stopped:
        raise RunError("--rejoin needs an --init delta whose card says where its run stopped (training.stopped_at)")
    if shipped.get("data") != config["data"] or shipped.get("seed") != config["seed"]:
        raise RunError("--rejoin: the data files or --seed differ from the run the --init delta was shipped from")
    for key in RUN_SHAPE:
        if shipped["hyperparameters"].get(key) != config[key]:
            raise RunError(f"--rejoin: --{key.replace('_', '-')} is {config[key]} here but "
                           f"{shipped['hyperparameters'].get(key)} in the run the --init delta was shipped from")
    return {**{k: stopped[k] for k in REJOINED_FIELDS},
            "train_windows": shipped["train_windows"]}


def planned_factor(config: dict, steps: int, at: int) -> float:
    """The learning rate's share of --lr at step `at` of a run of `steps`: warmup over its first tenth,
    then a linear fall to zero at its end; a run re-planned to another length falls from where it was
    then to its new end (its warmup as first planned)."""
    replanned = config.get("replanned")
    if replanned and at >= replanned["step"]:
        return replanned["factor"] * max(0.0, (steps - at) / (steps - replanned["step"]))
    warmup = warmup_steps(config, steps)
    return min((at + 1) / warmup, max(0.0, (steps - at) / max(1, steps - warmup)))


def warmup_steps(config: dict, steps: int) -> int:
    """The first tenth of the run as first planned: a re-planned run keeps the warmup it had."""
    return (config.get("replanned") or {}).get("warmup") or max(1, steps // 10)


def replan(config: dict, epochs: int, per_epoch: int, position: Position | None) -> str:
    """Changes how many epochs a run trains (`--resume RUN --epochs N`): a run planned for a GPU that
    must finish on a CPU ends sooner, with its learning rate annealed to zero at the new end rather
    than cut off mid-schedule. Says what changed."""
    steps, at = epochs * per_epoch, position.step if position else 0
    if steps <= at:
        raise RunError(f"the run is at step {at}: {epochs} epoch(s) of {per_epoch} steps end before it")
    if not at:  # nothing trained yet: the run simply starts with the new plan, warmup and all
        config["epochs"] = epochs
        return f"{epochs} epoch(s) planned, nothing trained yet"
    before = config["epochs"] * per_epoch
    factor = planned_factor(config, before, at)
    config["replanned"] = {"step": at, "factor": factor, "warmup": warmup_steps(config, before),
                           "epochs_before": config["epochs"]}
    config["epochs"] = epochs
    return (f"re-planned at step {at}: {epochs} epoch(s) instead of {config['replanned']['epochs_before']}, "
            f"the learning rate falling from {factor * config['lr']:.3g} to zero at step {steps}")
