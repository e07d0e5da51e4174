"""Fine-tune the packaged MiniLM into the extractive reader that qa ships (SQuAD 2.0 style).

    python training/train_reader.py --out training/runs/heldout \
        --train ../shared/data/squad/squad1-dev-40.json ../shared/data/squad/squad2-train-10.json \
        --holdout ../shared/data/squad/squad2-dev-a.json --epochs 3

Every window of the question's own paragraph is a training example (the answer's pieces, or [CLS]
when the window or the paragraph does not hold it), and each question is also paired with another
paragraph of the same article, labelled "no answer": at question time the reader reads several
retrieved passages and must say nothing in those that do not answer. Titles of --holdout files are
removed from the training data, so the figures written beside the model are held out by article.
Writes `model.safetensors` (the full fine-tuned weights, for training/make_delta.py) and
`run.json` (seed, data hashes, hyperparameters, wall time, held-out figures).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from qa.embed import file_sha256, packaged_model_dir, resolve_model  # noqa: E402
from qa.windows import Windower  # noqa: E402
from training.squad_data import Example, load_examples, without_evidence  # noqa: E402
from training.torch_reader import (  # noqa: E402
    given_paragraph,
    has_bf16_units,
    load_windower,
    new_reader,
    precision,
    save,
    summary,
    tensors,
)

CHECKPOINT_STEPS = 200  # a session can end mid-epoch; the last checkpoint is never older than this


def training_windows(examples: list[Example], windower: Windower, distractors: float, removals: float,
                     rng: random.Random):
    """(ids, type_ids, start, end) per window; see the module docstring for what is labelled how."""
    by_title: dict[str, list[str]] = {}
    for example in examples:
        contexts = by_title.setdefault(example.title, [])
        if example.context not in contexts:
            contexts.append(example.context)
    pieces_cache: dict[str, tuple] = {}

    def pieces(text: str):
        if text not in pieces_cache:
            pieces_cache[text] = windower.passage_pieces([text])[0]
        return pieces_cache[text]

    out = []
    for example in examples:
        for window in windower.windows(example.question, [example.context], [pieces(example.context)]):
            label = (0, 0)
            if example.answers:
                start, text = example.answers[0]
                covered = window.pieces_covering(start, start + len(text))
                label = covered or (0, 0)
            out.append((window.ids, window.type_ids, *label))
        others = [c for c in by_title[example.title] if c != example.context]
        if others and rng.random() < distractors:
            other = rng.choice(others)
            windows = windower.windows(example.question, [other], [pieces(other)])
            window = rng.choice(windows)
            out.append((window.ids, window.type_ids, 0, 0))
        # no draw when removals is 0, so runs made before the option shuffle as they did
        rest = without_evidence(example) if removals and rng.random() < removals else None
        if rest:
            out += [(w.ids, w.type_ids, 0, 0) for w in windower.windows(example.question, [rest])]
    return out


def batches(windows: list, batch_size: int, rng: random.Random):
    """Batches of similar length (little padding), in random order."""
    order = list(range(len(windows)))
    rng.shuffle(order)
    pool = 50 * batch_size
    chunks = []
    for at in range(0, len(order), pool):
        group = sorted(order[at : at + pool], key=lambda i: len(windows[i][0]))
        chunks += [group[k : k + batch_size] for k in range(0, len(group), batch_size)]
    rng.shuffle(chunks)
    return chunks


def train(model, windows: list, epochs: int, lr: float, batch_size: int, seed: int, out: Path, log,
          device: str = "cpu", bf16: bool = False) -> None:
    rng = random.Random(seed)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    steps = epochs * math.ceil(len(windows) / batch_size)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    step, started = 0, time.time()
    for epoch in range(epochs):
        model.train()
        for chunk in batches(windows, batch_size, rng):
            rows = [windows[i] for i in chunk]
            inputs = tensors(rows, device)
            with precision(device, bf16):
                output = model(**inputs, start_positions=torch.tensor([r[2] for r in rows], device=device),
                               end_positions=torch.tensor([r[3] for r in rows], device=device))
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % 50 == 0:
                log(f"epoch {epoch + 1} step {step}/{steps} loss {output.loss.item():.3f} "
                    f"{(time.time() - started) / step:.2f} s/step")
            if step % CHECKPOINT_STEPS == 0:
                save(model, out / "model.safetensors")
        save(model, out / "model.safetensors")
        log(f"epoch {epoch + 1} done after {time.time() - started:.0f} s; checkpoint written")


def init_provenance(delta: Path) -> dict:
    """Where a continued run started: the delta's hash and, when the card beside it describes that
    very delta (qa/reader.json for qa/reader.safetensors), how that delta was trained."""
    record = {"path": str(delta), "sha256": file_sha256(delta)}
    card = delta.with_suffix(".json")
    try:
        described = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return record
    if described.get("delta_sha256") == record["sha256"]:
        record["training"] = described.get("training")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", type=Path, required=True, help="SQuAD-format files to train on")
    parser.add_argument("--holdout", nargs="*", type=Path, default=[], help="SQuAD files held out by title and scored")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", type=Path, default=None, help="model folder to start from (default: packaged MiniLM)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--distractors", type=float, default=0.3, help="share of questions also paired with another paragraph")
    parser.add_argument("--removals", type=float, default=0.0,
                        help="share of answerable questions also asked of their paragraph without the sentences "
                             "that answer them, labelled no answer (training/squad_data.without_evidence)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                        help="bf16 autocast (default where the GPU or CPU has bf16 units) or fp32")
    parser.add_argument("--limit", type=int, default=None, help="train on N random questions only")
    parser.add_argument("--holdout-limit", type=int, default=None, help="score N random held-out questions only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is lent")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from a shipped delta (e.g. qa/reader.safetensors) instead of a fresh head: "
                             "more epochs in a later session")
    args = parser.parse_args(argv)

    bf16 = args.precision == "bf16" if args.precision else has_bf16_units(args.device)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / "train.log", "a", encoding="utf-8")

    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    model_dir = args.base or packaged_model_dir()
    base_sha = resolve_model(str(model_dir))[1] if args.base else resolve_model("all-MiniLM-L6-v2")[1]
    windower = load_windower(model_dir)
    held_titles = {e.title for path in args.holdout for e in load_examples(path)}
    examples = [e for path in args.train for e in load_examples(path) if e.title not in held_titles]
    rng = random.Random(args.seed)
    if args.limit:
        examples = rng.sample(examples, min(args.limit, len(examples)))
    windows = training_windows(examples, windower, args.distractors, args.removals, rng)
    log(f"{len(examples)} questions from {len({e.title for e in examples})} titles -> {len(windows)} windows; "
        f"{len(held_titles)} titles held out")
    model = new_reader(model_dir)
    init = init_provenance(args.init) if args.init else None  # before anything may replace the delta
    if args.init:
        from qa.read import merged_state

        model.load_state_dict(merged_state(args.init, model_dir), strict=False)
    model.to(args.device)
    started = time.time()
    train(model, windows, args.epochs, args.lr, args.batch_size, args.seed, args.out, log, args.device, bf16)
    wall = time.time() - started
    figures = {}
    for path in args.holdout:
        held = load_examples(path)
        if args.holdout_limit:
            held = random.Random(args.seed).sample(held, min(args.holdout_limit, len(held)))
        rows = given_paragraph(model, held, windower, args.device)
        (args.out / f"given-paragraph-{path.stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        figures[path.name] = summary(rows)
        log(f"{path.name} given the paragraph: {figures[path.name]}")
    run = {
        "base": str(model_dir), "base_weights_sha256": base_sha, "seed": args.seed,
        "data": {str(p): file_sha256(p) for p in args.train + args.holdout},
        "held_out_titles": sorted(held_titles), "train_questions": len(examples), "train_windows": len(windows),
        "hyperparameters": {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                            "distractors": args.distractors, "removals": args.removals,
                            "max_tokens": windower.max_tokens,
                            "stride": windower.stride, "warmup": 0.1, "schedule": "linear",
                            "weight_decay": 0.01, "frozen": "word embeddings",
                            "precision": "bf16 autocast" if bf16 else "fp32"},
        "init": init, "device": args.device,
        "threads": args.threads, "train_seconds": round(wall), "held_out_given_paragraph": figures,
    }
    (args.out / "run.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {args.out / 'model.safetensors'} and run.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
