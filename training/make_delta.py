"""Turn a fine-tuned reader (training/train_reader.py's model.safetensors) into what qa ships.

    python training/make_delta.py training/runs/heldout/model.safetensors --rank 0 --out qa/reading/reader.safetensors

The package ships the difference from the packaged MiniLM, never a copy of MiniLM: frozen tensors
(the word embeddings) are left out, the new span head is stored whole, every other tensor as an
fp16 difference, or, with --rank R > 0, each weight matrix's difference as its best rank-R
factorisation (truncated SVD): smaller, at a cost in F1 that --score measures on held-out questions.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from qa.reading.read import merged_state  # noqa: E402
from qa.search.embed import packaged_model_dir  # noqa: E402


def make_delta(tuned: dict, base: dict, rank: int) -> dict:
    out = {}
    for name, tensor in tuned.items():
        if name.endswith("position_ids"):
            continue
        base_name = name[len("bert."):] if name.startswith("bert.") else None
        if base_name is None or base_name not in base:
            out[name + ".new"] = tensor.float().contiguous()
            continue
        difference = tensor.float() - base[base_name].float()
        if not difference.any():
            continue
        if rank > 0 and difference.dim() == 2 and min(difference.shape) > rank and "embeddings" not in name:
            u, s, vh = torch.linalg.svd(difference, full_matrices=False)
            root = s[:rank].sqrt()
            out[name + ".up"] = (u[:, :rank] * root).half().contiguous()
            out[name + ".down"] = (root[:, None] * vh[:rank]).half().contiguous()
        else:
            out[name + ".delta"] = difference.half().contiguous()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a fine-tuned model.safetensors")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rank", type=int, default=0, help="0: fp16 differences; R: rank-R factors per matrix")
    parser.add_argument("--score", type=Path, default=None, help="a held-out SQuAD file to compare F1 on")
    parser.add_argument("--sample", type=int, default=600, help="questions of --score to use")
    parser.add_argument("--base", type=Path, default=None, help="the model trained from (default: packaged MiniLM)")
    args = parser.parse_args(argv)

    base_dir = args.base or packaged_model_dir()
    tuned = load_file(str(args.model))
    base = load_file(str(base_dir / "model.safetensors"))
    delta = make_delta(tuned, base, args.rank)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(delta, str(args.out))
    print(f"wrote {args.out}: {args.out.stat().st_size / 1e6:.1f} MB, {len(delta)} tensors")
    if args.score:
        from training.squad_data import load_examples
        from training.torch_reader import given_paragraph, load_windower, new_reader, summary

        examples = load_examples(args.score)
        examples = random.Random(0).sample(examples, min(args.sample, len(examples)))
        windower = load_windower(base_dir)
        figures = {}
        for label, state in (("fine-tuned", tuned), ("shipped delta", merged_state(args.out, base_dir))):
            model = new_reader(base_dir)
            model.load_state_dict(state, strict=False)
            figures[label] = summary(given_paragraph(model, examples, windower))
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
