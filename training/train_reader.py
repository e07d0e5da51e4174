"""Fine-tune the packaged MiniLM into the extractive reader that qa ships (SQuAD 2.0 style).

    python training/train_reader.py --out training/runs/all --init qa/reading/reader.safetensors \
        --train ../shared/data/squad/squad1-train.json ../shared/data/squad/squad1-dev-40.json \
        --holdout ../shared/data/squad/squad2-dev-a.json --epochs 1
    python training/train_reader.py --resume training/runs/all     # after a stop, anywhere
    python training/train_reader.py --resume training/runs/all --epochs 1   # the same run, annealed to end sooner

Every window of the question's own paragraph is a training example (the answer's pieces, or [CLS] when the
window or the paragraph does not hold it), and each question is also paired with another paragraph of the same
article, labelled "no answer": at question time the reader reads several retrieved passages and must say
nothing in those that do not answer. Titles of --holdout files are removed from the training data, so the
figures written beside the model are held out by article (training/title_fold.py lends one fold of a file).
The run is resumable (training/checkpoint.py): a checkpoint every --checkpoint-minutes, at the end of each
epoch and on SIGTERM; --resume continues it exactly, from the same data order and random state. Writes
`model.safetensors` (the fine-tuned weights, for training/make_delta.py) and, at the end, `run.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from qa.search.embed import packaged_model_dir, resolve_model  # noqa: E402
from training.checkpoint import (  # noqa: E402
    CHECKPOINT_RECORD, CONFIG_FILE, REJOINED_FIELDS, Position, ProgressLog, RunError, check_data, check_windows,
    keep_epoch, load_checkpoint, load_config, new_config, planned_factor, read_position, replan, save_checkpoint,
    save_config, start_weights, write_record,
)
from training.squad_data import batches, load_examples, training_windows, windows_sha256  # noqa: E402
from training.torch_reader import given_paragraph, load_windower, new_reader, precision, summary, tensors  # noqa: E402


REWARM_STEPS = 100  # a rejoined run's optimizer moments start empty: its learning rate ramps up again


def total_steps(config: dict, windows: list) -> int:
    return config["epochs"] * math.ceil(len(windows) / config["batch_size"])


def train(model, windows: list, config: dict, out: Path, log: ProgressLog, checkpoint_seconds: float,
          stop_at_step: int | None = None, at_epoch_end=None) -> Position | None:
    """Trains to the end of the run, or to `stop_at_step` or a SIGTERM (a checkpoint is written, and
    None returned: the run is not finished). Each epoch's order comes from (seed, epoch) alone, so a
    resumed run skips the batches already trained and sees the same ones after them. `at_epoch_end`
    is called with the position after each epoch but the last, once its checkpoint is written."""
    device, bf16, batch_size = config["device"], config["bf16"], config["batch_size"]
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config["lr"])
    per_epoch = math.ceil(len(windows) / batch_size)
    steps = total_steps(config, windows)
    rejoin = config.get("rejoin") or {}
    offset = rejoin.get("step", 0)

    def factor(local_step: int) -> float:
        planned = planned_factor(config, steps, local_step + offset)
        return planned * min(1.0, (local_step + 1) / REWARM_STEPS) if offset else planned

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    position = load_checkpoint(out, model, optimizer, schedule)
    if position is None and rejoin:
        position = Position(**{k: rejoin[k] for k in REJOINED_FIELDS})
        log(f"rejoined the shipped run at step {offset}/{steps}: fresh optimizer moments, "
            f"learning rate re-warmed over {REWARM_STEPS} steps")
    elif position is None:
        position = Position()
    elif position.step:
        log(f"resumed at epoch {position.epoch + 1} batch {position.batch}/{per_epoch} (step {position.step}/{steps})")
    stopping = []
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    began, last_saved, session_steps, seconds_before = time.time(), time.time(), 0, position.train_seconds

    def report(loss: float) -> None:
        log.where(position, steps, len(windows), config["epochs"], loss, (time.time() - began) / max(1, session_steps))

    def checkpoint(loss: float) -> None:
        nonlocal last_saved
        save_checkpoint(out, model, optimizer, schedule, position)
        last_saved = time.time()
        report(loss)
        log(f"checkpoint at step {position.step}")

    try:
        while position.epoch < config["epochs"]:
            order = batches(windows, batch_size, random.Random(f"{config['seed']}/{position.epoch}"))
            model.train()
            while position.batch < len(order):
                rows = [windows[i] for i in order[position.batch]]
                inputs = tensors(rows, device)
                with precision(device, bf16):
                    output = model(**inputs, start_positions=torch.tensor([r[2] for r in rows], device=device),
                                   end_positions=torch.tensor([r[3] for r in rows], device=device))
                output.loss.backward()
                torch.nn.utils.clip_grad_norm_(decay + no_decay, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                position.batch, position.step, session_steps = position.batch + 1, position.step + 1, session_steps + 1
                position.windows_seen += len(rows)
                position.train_seconds = seconds_before + time.time() - began
                if position.step % 50 == 0:
                    report(output.loss.item())
                if stopping or position.step == stop_at_step or time.time() - last_saved >= checkpoint_seconds:
                    checkpoint(output.loss.item())
                    if stopping or position.step == stop_at_step:
                        log(f"stopped at step {position.step}; continue with --resume {out}")
                        return None
            position.epoch, position.batch = position.epoch + 1, 0
            checkpoint(output.loss.item())
            log(f"epoch {position.epoch} done")
            if at_epoch_end and position.epoch < config["epochs"]:
                at_epoch_end(position)
        return position
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(config: dict, out: Path, threads: int, checkpoint_minutes: float, stop_at_step: int | None,
        record_checkpoint: bool = False, epochs: int | None = None) -> int:
    torch.manual_seed(config["seed"])
    torch.set_num_threads(threads)
    log = ProgressLog(out)
    model_dir = Path(config["base"]) if config["base"] else packaged_model_dir()
    base_sha = resolve_model(str(model_dir))[1] if config["base"] else resolve_model("all-MiniLM-L6-v2")[1]
    windower = load_windower(model_dir)
    holdout = {Path(p): load_examples(Path(p)) for p in config["holdout"]}  # read once: titles, then each scoring
    train_files = [Path(p) for p in config["train"]]
    held_titles = {e.title for examples in holdout.values() for e in examples}
    examples = [e for path in train_files for e in load_examples(path) if e.title not in held_titles]
    rng = random.Random(config["seed"])
    if config["limit"]:
        examples = rng.sample(examples, min(config["limit"], len(examples)))
    examples += [e for path in config.get("train_all", []) for e in load_examples(Path(path)) if e.title not in held_titles]
    windows = training_windows(examples, windower, config["distractors"], config["removals"], rng, config["negatives"],
                               config.get("swaps", 0.0), config.get("nearest_distractors", False))
    if not windows:
        raise RunError(f"{', '.join(config['train'])} hold no questions to train on (all held out, or none there)")
    check_windows(config, len(windows), windows_sha256(windows))
    if epochs and epochs != config["epochs"]:
        log(replan(config, epochs, math.ceil(len(windows) / config["batch_size"]), read_position(out)))
    save_config(out, config)
    log(f"{len(examples)} questions from {len({e.title for e in examples})} titles -> {len(windows)} windows; "
        f"{len(held_titles)} titles held out; {threads} threads, {'bf16 autocast' if config['bf16'] else 'fp32'}")
    record = {
        "base": str(model_dir), "base_weights_sha256": base_sha, "seed": config["seed"], "data": config["data"],
        "held_out_titles": sorted(held_titles), "trained_titles": sorted({e.title for e in examples}),
        "train_questions": len(examples), "train_windows": len(windows),
        "hyperparameters": {"epochs": config["epochs"], "lr": config["lr"], "batch_size": config["batch_size"],
                            "distractors": config["distractors"], "removals": config["removals"],
                            "swaps": config.get("swaps", 0.0), "negatives": config["negatives"],
                            "nearest_distractors": config.get("nearest_distractors", False), "max_tokens": windower.max_tokens,
                            "stride": windower.stride, "warmup": 0.1, "schedule": "linear", "weight_decay": 0.01,
                            "frozen": "word embeddings", "precision": "bf16 autocast" if config["bf16"] else "fp32",
                            "replanned": config.get("replanned")},
        "init": config["init"], "rejoined_at": (config.get("rejoin") or {}).get("step"), "device": config["device"],
        "threads": threads, "trained_whole": config.get("train_all", []),
    }
    steps = total_steps(config, windows)
    if record_checkpoint:
        position = read_position(out)
        if position is None:
            raise RunError(f"{out} has no checkpoint yet")
        write_record(out / CHECKPOINT_RECORD, record, position, steps)
        log(f"wrote {out / CHECKPOINT_RECORD}: the record of model.safetensors at step {position.step}")
        return 0
    model = new_reader(model_dir)
    if not (out / "checkpoint.pt").exists():
        start_weights(model, config, model_dir)
    model.to(config["device"])

    def held_out_figures(folder: Path) -> dict:
        """Each --holdout file read given the paragraph by the model as it is now; its rows kept in `folder`."""
        figures = {}
        for path, held in holdout.items():
            if config["holdout_limit"]:
                held = random.Random(config["seed"]).sample(held, min(config["holdout_limit"], len(held)))
            rows = given_paragraph(model, held, windower, config["device"])
            (folder / f"given-paragraph-{path.stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            figures[path.name] = summary(rows)
            log(f"{path.name} given the paragraph ({folder.name}): {figures[path.name]}")
        return figures

    def keep(position: Position) -> None:
        kept = keep_epoch(out, position)
        write_record(kept / "run.json", {**record, "held_out_given_paragraph": held_out_figures(kept)}, position, steps)

    finished = train(model, windows, config, out, log, checkpoint_minutes * 60, stop_at_step,
                     keep if config.get("keep_epochs") else None)
    if finished is None:
        return 0
    record.update(train_seconds=round(finished.train_seconds), held_out_given_paragraph=held_out_figures(out))
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out / 'model.safetensors'} and run.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", type=Path, help="SQuAD-format files to train on")
    parser.add_argument("--train-all", nargs="*", type=Path, default=[], help="files trained on whole, beside --limit")
    parser.add_argument("--holdout", nargs="*", type=Path, default=[], help="SQuAD files held out by title and scored")
    parser.add_argument("--out", type=Path, help="a new run folder")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--base", type=Path, default=None, help="model folder to start from (default: packaged MiniLM)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default 3; with --resume, re-plans the run to end after N epochs (checkpoint.replan)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--distractors", type=float, default=0.3, help="share of questions also paired with another paragraph")
    parser.add_argument("--nearest-distractors", action="store_true", help="the best-matching one (squad_data.nearest_other)")
    parser.add_argument("--removals", type=float, default=0.0,
                        help="share of answerable questions also asked without their evidence (no answer; squad_data.without_evidence)")
    parser.add_argument("--swaps", type=float, default=0.0,
                        help="share of answerable questions also asked with a name swapped (no answer; squad_data.with_swapped_name)")
    parser.add_argument("--negatives", type=int, default=None,
                        help="at most N windows of a question's own paragraph without its answer (long papers)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                        help="bf16 autocast (default where the GPU or CPU has bf16 units) or fp32")
    parser.add_argument("--limit", type=int, default=None, help="train on N random questions only")
    parser.add_argument("--holdout-limit", type=int, default=None, help="score N random held-out questions only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="may differ on --resume")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is lent")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from a shipped delta (e.g. qa/reading/reader.safetensors) instead of a fresh head")
    parser.add_argument("--rejoin", action="store_true",
                        help="with --init: continue the run that delta was shipped from, at the step its card says it "
                             "stopped (same data, order and schedule; fresh optimizer moments): when its folder is gone")
    parser.add_argument("--keep-epochs", action="store_true",
                        help="keep each epoch's weights but the last in RUN/epoch-N/, with their record and "
                        "--holdout figures (a candidate each)")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument("--stop-at-step", type=int, default=None,
                        help="checkpoint and stop at this step (--resume continues): a run split over sessions")
    parser.add_argument("--record-checkpoint", action="store_true", help="with --resume: write checkpoint.json "
                        "(the record of the last checkpoint's weights, for the card when they ship mid-run), and stop")
    args = parser.parse_args(argv)
    if args.rejoin and (args.resume or not args.init):
        parser.error("--rejoin starts a new run from an --init delta (not with --resume)")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be 1 or more")
    if args.record_checkpoint and not args.resume:
        parser.error("--record-checkpoint describes an existing run: give --resume RUN")
    try:
        if args.resume:
            out, config = args.resume, load_config(args.resume)
            check_data(config)
        else:
            if not args.out or not args.train:
                parser.error("a new run needs --out and --train (or --resume RUN)")
            out = args.out
            if (out / CONFIG_FILE).exists():
                raise RunError(f"{out} already holds a run: continue it with --resume {out}, or choose another --out")
            out.mkdir(parents=True, exist_ok=True)
            config = new_config(args)
        return run(config, out, args.threads, args.checkpoint_minutes, args.stop_at_step, args.record_checkpoint,
                   args.epochs if args.resume else None)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
