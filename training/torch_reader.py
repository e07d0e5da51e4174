"""The reader as a torch model, for training: made from a model folder, fed padded batches,
and scored given the paragraph (SQuAD EM/F1 of its best span per question)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from qa.reading.spans import best_spans
from qa.reading.squad import best_over_gold
from qa.reading.windows import Window, Windower, padded
from training.squad_data import Example


def load_windower(model_dir: Path) -> Windower:
    from tokenizers import Tokenizer

    return Windower(Tokenizer.from_file(str(model_dir / "tokenizer.json")))


def tensors(rows: list, device: str = "cpu") -> dict:
    """A batch of (ids, type_ids, ...) rows as padded torch inputs."""
    windows = [Window(0, row[0], row[1], [], 0) for row in rows]
    return {name: torch.from_numpy(values).to(device) for name, values in padded(windows).items()}


def precision(device: str, bf16: bool):
    """bf16 autocast where the hardware has bf16 matrix units (GPUs; CPUs with AVX512-BF16 or AMX,
    ~2x faster than fp32 at training); on AVX2 CPUs bf16 is emulated and ~10x slower (training/README.md)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)


def has_bf16_units(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def new_reader(model_dir: Path):
    from transformers import BertForQuestionAnswering

    return BertForQuestionAnswering.from_pretrained(str(model_dir), local_files_only=True)


def logits(model, windows: list[Window], batch_size: int = 64, device: str = "cpu") -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, end) logits per window, in order; in fp32 on a CPU, as the shipped reader runs."""
    model.eval()
    out: list = [None] * len(windows)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    with torch.inference_mode():
        for at in range(0, len(order), batch_size):
            chosen = order[at : at + batch_size]
            inputs = tensors([(windows[i].ids, windows[i].type_ids) for i in chosen], device)
            with precision(device, bf16=device.startswith("cuda")):
                result = model(**inputs)
            for k, i in enumerate(chosen):
                n = len(windows[i])
                out[i] = (result.start_logits[k, :n].float().cpu().numpy(), result.end_logits[k, :n].float().cpu().numpy())
    return out


def given_paragraph(model, examples: list[Example], windower: Windower, device: str = "cpu") -> list[dict]:
    """Per question, the best span of its own paragraph and its margin over "no answer"."""
    windows, owner = [], []
    for number, example in enumerate(examples):
        for window in windower.windows(example.question, [example.context]):
            windows.append(window)
            owner.append(number)
    scored = logits(model, windows, device=device)
    per_question: dict[int, list[int]] = {}
    for row, number in enumerate(owner):
        per_question.setdefault(number, []).append(row)
    rows = []
    for number, example in enumerate(examples):
        chosen = per_question[number]
        length = max(len(windows[r]) for r in chosen)
        start = np.full((len(chosen), length), -1e4, dtype=np.float32)
        end = np.full_like(start, -1e4)
        for k, r in enumerate(chosen):
            start[k, : len(windows[r])], end[k, : len(windows[r])] = scored[r]
        best = best_spans([windows[r] for r in chosen], start, end)[0]
        text = example.context[best.start : best.end]
        em, f1 = best_over_gold(text, [a for _, a in example.answers])
        rows.append({"id": example.id, "title": example.title, "answerable": bool(example.answers),
                     "prediction": text, "margin": best.margin, "em": em, "f1": f1})
    return rows


def summary(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    return {
        "questions": len(rows), "answerable": len(answerable),
        "has_ans_em_best_span": round(float(np.mean([r["em"] for r in answerable])), 4) if answerable else None,
        "has_ans_f1_best_span": round(float(np.mean([r["f1"] for r in answerable])), 4) if answerable else None,
    }
