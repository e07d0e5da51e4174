"""Carry a training run to a lent GPU machine and its weights back (training/README.md, "On a lent GPU").

    python training/device_transfer.py pack --out training/runs/device-pack --data FILE...   # here
    python3 training/device_transfer.py unpack training/runs/device-pack /tmp/qa-device        # there
    python3 training/device_transfer.py export /tmp/qa-device/run /tmp/qa-device/base $OUT     # there
    python training/device_transfer.py receive FILES_AT --out training/runs/gpu                  # here

The lent machine has torch and transformers, but not the packaged MiniLM, the QA data or a
network; a call carries at most 64 MiB (the repository, the shipped delta included, and what it
names) and brings back at most 8 files of 16 MiB. So the base travels as fp16 weights with its
frozen word embeddings in int8 (a scale per row), the data xz-compressed, and the trained weights
come back as their fp16 difference from that carried base (make_delta.py's form) in pieces.
Received, the carried base plus the difference is the weights trained there, and the word
embeddings, never trained, are the packaged fp32 ones again: a run folder like any other, for
make_delta.py and ship_reader.py.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from qa.search.embed import file_sha256  # noqa: E402
from training.make_delta import make_delta  # noqa: E402

FROZEN = "embeddings.word_embeddings.weight"  # train_reader.py never trains it
CARRIED_BASE = "base-weights.safetensors"
MANIFEST = "manifest.json"
BASE_FILES = ("config.json", "tokenizer.json")
CARRY_LIMIT = 64 * 2**20  # what one `run` call carries, the repository included
PIECE_LIMIT = 15 * 2**20  # under the 16 MiB a returned file may have
RETURNED_FILES, RETURNED_BYTES = 8, 64 * 2**20
RECORDS = "records.json"


class TransferError(Exception):
    """A pack, an export or a return that cannot be made (said in one line)."""


def carried_weights(base: dict) -> dict:
    """The base as it travels: fp16, and the frozen word embeddings as int8 with a scale per row."""
    out = {name: tensor.half().contiguous() for name, tensor in base.items() if name != FROZEN}
    embeddings = base[FROZEN].float()
    scale = embeddings.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
    out[FROZEN + ".int8"] = torch.round(embeddings / scale).to(torch.int8).contiguous()
    out[FROZEN + ".scale"] = scale.contiguous()
    return out


def carried_base(carried: dict) -> dict:
    """The fp32 weights the lent machine trains from, made the same way there and here."""
    base = {name: tensor.float() for name, tensor in carried.items() if not name.startswith(FROZEN)}
    base[FROZEN] = carried[FROZEN + ".int8"].float() * carried[FROZEN + ".scale"]
    return base


def tracked_bytes() -> int:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / name.decode()).stat().st_size for name in names if name and (ROOT / name.decode()).is_file())


def pack(out: Path, base_dir: Path, data: list[str]) -> None:
    """`data` are named as the run's command will name them (relative to the repository root), so
    that its record reads the same as a run made here."""
    for name in data:
        if Path(name).is_absolute() or not Path(name).is_file():
            raise TransferError(f"{name}: give each data file as an existing path relative to the repository root")
    out.mkdir(parents=True, exist_ok=True)
    (out / "base").mkdir(exist_ok=True)
    for name in BASE_FILES:
        shutil.copyfile(base_dir / name, out / "base" / name)
    save_file(carried_weights(load_file(str(base_dir / "model.safetensors"))), str(out / CARRIED_BASE))
    files = {}
    for number, name in enumerate(data):
        packed = f"data-{number}-{Path(name).name}.xz"
        (out / packed).write_bytes(lzma.compress(Path(name).read_bytes(), preset=6))
        files[name] = {"packed": packed, "sha256": file_sha256(Path(name))}
    manifest = {"base_weights_sha256": file_sha256(base_dir / "model.safetensors"), "data": files}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    size = tracked_bytes() + sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"packed {out}: the repository and the pack carry {size / 2**20:.1f} MiB of {CARRY_LIMIT / 2**20:.0f}")
    if size > CARRY_LIMIT:
        raise TransferError(f"{size / 2**20:.1f} MiB would travel, over the {CARRY_LIMIT / 2**20:.0f} MiB a call carries")


def unpack(packed: Path, dest: Path) -> None:
    """dest/base: the model folder to train from; dest/work: where the run's command runs, its data
    at the paths the pack names (checked) and the repository's qa/ beside them (for --init)."""
    manifest = json.loads((packed / MANIFEST).read_text(encoding="utf-8"))
    (dest / "base").mkdir(parents=True, exist_ok=True)
    for name in BASE_FILES:
        shutil.copyfile(packed / "base" / name, dest / "base" / name)
    save_file(carried_base(load_file(str(packed / CARRIED_BASE))), str(dest / "base" / "model.safetensors"))
    work = dest / "work"
    work.mkdir(exist_ok=True)
    for name, entry in manifest["data"].items():
        target = Path(os.path.normpath(work / name))
        if dest.resolve() not in target.resolve().parents:
            raise TransferError(f"{name} would be written outside {dest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(lzma.decompress((packed / entry["packed"]).read_bytes()))
        if file_sha256(target) != entry["sha256"]:
            raise TransferError(f"{name} did not arrive whole (sha256 differs)")
    if not (work / "qa").exists():
        (work / "qa").symlink_to(ROOT / "qa", target_is_directory=True)
    print(f"unpacked into {dest}: run the training command from {work}")


def candidates(run: Path) -> dict[str, Path]:
    """The run's weights worth bringing back: its last (the run's own) and each kept epoch's."""
    found = {"final": run} if (run / "model.safetensors").is_file() else {}
    for kept in sorted(run.glob("epoch-*")):
        if (kept / "model.safetensors").is_file() and (kept / "run.json").is_file():
            found[kept.name] = kept
    return found


def pieces(tensors: dict, limit: int) -> list[dict]:
    groups, size = [{}], 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if groups[-1] and size + nbytes > limit:
            groups.append({})
            size = 0
        groups[-1][name], size = tensor, size + nbytes
    return groups


def export(run: Path, base_dir: Path, out: Path) -> None:
    """Each candidate as its difference from the carried base, in pieces, and the run's records in one file."""
    found = candidates(run)
    if not found:
        raise TransferError(f"{run} holds no weights: the run stopped before its first checkpoint")
    base = load_file(str(base_dir / "model.safetensors"))
    records = {"config": json.loads((run / "config.json").read_text(encoding="utf-8")),
               "log": (run / "train.log").read_text(encoding="utf-8"), "candidates": {}}
    written = []
    for label, folder in found.items():
        record = next((folder / n for n in ("run.json", "checkpoint.json") if (folder / n).is_file()), None)
        if record is None:
            print(f"{label}: no record of its weights (train_reader.py --resume RUN --record-checkpoint); left behind")
            continue
        delta = make_delta(load_file(str(folder / "model.safetensors")), base, rank=0)
        names = []
        for number, piece in enumerate(pieces(delta, PIECE_LIMIT)):
            names.append(f"{label}.part{number}.safetensors")
            save_file(piece, str(out / names[-1]))
            written.append(out / names[-1])
        records["candidates"][label] = {"record": json.loads(record.read_text(encoding="utf-8")), "pieces": names}
    (out / RECORDS).write_text(json.dumps(records) + "\n", encoding="utf-8")
    written.append(out / RECORDS)
    total = sum(p.stat().st_size for p in written)
    print(f"exported {', '.join(records['candidates'])}: {len(written)} files, {total / 2**20:.1f} MiB")
    if len(written) > RETURNED_FILES or total > RETURNED_BYTES:
        raise TransferError(f"{len(written)} files, {total / 2**20:.1f} MiB: more than a call brings back "
                            f"({RETURNED_FILES} files, {RETURNED_BYTES / 2**20:.0f} MiB); keep fewer epochs")


def receive(returned: Path, packed: Path, base_dir: Path, out: Path) -> None:
    """The run folder again: out/ for the run's last weights, out/epoch-N/ for each kept epoch."""
    from qa.reading.read import merged_state

    if (out / "config.json").exists() or (out / "model.safetensors").exists():
        raise TransferError(f"{out} already holds a run: receive into a new folder")
    manifest = json.loads((packed / MANIFEST).read_text(encoding="utf-8"))
    base_sha = file_sha256(base_dir / "model.safetensors")
    if manifest["base_weights_sha256"] != base_sha:
        raise TransferError(f"{packed} carried another base than {base_dir}")
    records = json.loads((returned / RECORDS).read_text(encoding="utf-8"))
    frozen = load_file(str(base_dir / "model.safetensors"))[FROZEN]
    with tempfile.TemporaryDirectory() as scratch:
        save_file(carried_base(load_file(str(packed / CARRIED_BASE))), str(Path(scratch) / "model.safetensors"))
        for label, entry in records["candidates"].items():
            folder = out if label == "final" else out / label
            folder.mkdir(parents=True, exist_ok=True)
            delta = {k: v for name in entry["pieces"] for k, v in load_file(str(returned / name)).items()}
            save_file(delta, str(Path(scratch) / "delta.safetensors"))
            weights = merged_state(Path(scratch) / "delta.safetensors", Path(scratch))
            weights["bert." + FROZEN] = frozen  # never trained: the packaged fp32 rows, not the carried int8 ones
            save_file(weights, str(folder / "model.safetensors"))
            record = {**entry["record"], "base": "the packaged MiniLM, carried by training/device_transfer.py "
                      "(fp16 weights, int8 word embeddings with a scale per row)", "base_weights_sha256": base_sha}
            (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            print(f"{label}: {folder / 'model.safetensors'} and its run.json")
    (out / "config.json").write_text(json.dumps(records["config"], indent=2) + "\n", encoding="utf-8")
    (out / "train.log").write_text(records["log"], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack", help="here: the base and the data, into a folder a call carries")
    packing.add_argument("--out", type=Path, required=True)
    packing.add_argument("--data", nargs="+", required=True, help="every file the run reads, relative to the root")
    packing.add_argument("--base", type=Path, default=None, help="default: the packaged MiniLM")
    unpacking = verbs.add_parser("unpack", help="there: a model folder and the data files again")
    unpacking.add_argument("pack", type=Path)
    unpacking.add_argument("dest", type=Path)
    exporting = verbs.add_parser("export", help="there: the run's weights as differences, in pieces")
    exporting.add_argument("run", type=Path)
    exporting.add_argument("base", type=Path, help="the unpacked model folder the run trained from")
    exporting.add_argument("out", type=Path)
    receiving = verbs.add_parser("receive", help="here: the returned files as a run folder")
    receiving.add_argument("returned", type=Path)
    receiving.add_argument("--pack", type=Path, default=ROOT / "training/runs/device-pack")
    receiving.add_argument("--base", type=Path, default=None, help="default: the packaged MiniLM")
    receiving.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.verb in ("pack", "receive"):
            from qa.search.embed import packaged_model_dir

            base_dir = args.base or packaged_model_dir()
        if args.verb == "pack":
            pack(args.out, base_dir, args.data)
        elif args.verb == "unpack":
            unpack(args.pack, args.dest)
        elif args.verb == "export":
            export(args.run, args.base, args.out)
        else:
            receive(args.returned, args.pack, base_dir, args.out)
    except (TransferError, OSError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
