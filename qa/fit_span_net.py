"""Train a span network (qa/span_net.py) on SQuAD and write its weights.

    python -m qa.fit_span_net --data ../shared/data/squad/squad1-dev-40.json \\
        --holdout ../shared/data/squad/squad2-dev-a.json
    python -m qa.fit_span_net --data ../shared/data/squad/squad1-dev-40.json \\
        --holdout ../shared/data/squad/squad2-dev-a.json --last-only --epochs 5

train the two shipped networks: the first reads MiniLM's middle layer beside its last
(qa/span_net_middle.safetensors), the second its last layer only (qa/span_net.safetensors).

Articles whose title appears in a --holdout file are left out of training, and each epoch prints
the network's F1 / EM on the holdout's answerable questions, read in their own paragraph: figures
on articles the network never saw. Training the default settings takes about 15 minutes on 2 cores
(encoding the paragraphs with MiniLM is 4 of them). torch is needed here, never at query time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from qa.embed import DEFAULT_MODEL, TokenStates, load_encoder
from qa.span_net import LAST_LAYER_FILE, MIDDLE_LAYER_FILE, SpanNet, question_word_marks, question_words, real_tokens
from qa.squad import best_over_gold, squad_paragraphs

PROJECTION = 128
HIDDEN = 64
LAYERS = 2
DROPOUT = 0.2
BATCH = 32
LEARNING_RATE = 2e-3


@dataclass
class Example:
    passage: TokenStates
    question: TokenStates
    question_text: str
    marks: np.ndarray
    context: str
    first: int  # answer's first and last token (-1 when unanswerable or cut off)
    last: int
    answers: list[str]


def examples(files: list[Path], keep_title, middle: bool = True) -> list[Example]:
    """Every question of the files' kept articles, with both texts encoded by the default model
    (its last layer's token vectors, and its middle layer's beside them when `middle`)."""
    encoder = load_encoder(DEFAULT_MODEL)
    width = None if middle else encoder.dim
    rows = []
    for path in files:
        paragraphs, _ = squad_paragraphs(path)
        paragraphs = [p for p in paragraphs if keep_title(p.title)]
        passages = [real_tokens(s, width) for s in encoder.token_states([p.context for p in paragraphs])]
        asked = [(p, states, q) for p, states in zip(paragraphs, passages) for q in p.questions]
        questions = encoder.token_states([q[1] for _, _, q in asked])
        for (paragraph, states, (_, text, answers)), question in zip(asked, questions):
            first = last = -1
            if answers:
                start, answer = answers[0]
                inside = np.nonzero((states.offsets[:, 1] > start) & (states.offsets[:, 0] < start + len(answer)))[0]
                if len(inside) and states.offsets[-1, 1] >= start + len(answer):
                    first, last = int(inside[0]), int(inside[-1])
            marks = question_word_marks(paragraph.context, states.offsets, question_words(text))
            rows.append(Example(states, real_tokens(question, width), text, marks, paragraph.context, first, last,
                                [a for _, a in answers]))
    return rows


def network():
    """The torch twin of SpanNet: same parameter names and arithmetic, trainable."""
    import torch
    from torch import nn

    class Network(nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            self.proj = nn.Linear(dim, PROJECTION)
            self.qproj = nn.Linear(dim, PROJECTION)
            self.qpool = nn.Linear(PROJECTION, 1)
            self.rnn = nn.GRU(3 * PROJECTION + 1, HIDDEN, num_layers=LAYERS, bidirectional=True,
                              batch_first=True, dropout=DROPOUT)
            self.start = nn.Linear(2 * HIDDEN, PROJECTION)
            self.end = nn.Linear(2 * HIDDEN, PROJECTION)
            self.drop = nn.Dropout(DROPOUT)

        def forward(self, passage, passage_lengths, question, question_mask, marks):
            p = torch.relu(self.proj(self.drop(passage)))
            q = torch.relu(self.qproj(self.drop(question)))
            attention = torch.bmm(p, q.transpose(1, 2)).masked_fill(~question_mask[:, None, :], -1e4).softmax(-1)
            aligned = torch.bmm(attention, q)
            x = torch.cat([p, aligned, p * aligned, marks], -1)
            packed = nn.utils.rnn.pack_padded_sequence(x, passage_lengths, batch_first=True, enforce_sorted=False)
            h, _ = self.rnn(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
            h = self.drop(h)
            pooling = self.qpool(q).squeeze(-1).masked_fill(~question_mask, -1e4).softmax(-1)
            question_vector = torch.bmm(pooling[:, None], q).squeeze(1)
            passage_mask = torch.arange(x.shape[1])[None, :] < passage_lengths[:, None]
            start = (self.start(h) * question_vector[:, None]).sum(-1).masked_fill(~passage_mask, -1e4)
            end = (self.end(h) * question_vector[:, None]).sum(-1).masked_fill(~passage_mask, -1e4)
            return start, end

    return Network


def batch_tensors(rows: list[Example]):
    import torch

    steps = max(len(r.passage.offsets) for r in rows)
    words = max(len(r.question.offsets) for r in rows)
    dim = rows[0].passage.vectors.shape[1]
    passage = torch.zeros(len(rows), steps, dim)
    question = torch.zeros(len(rows), words, dim)
    question_mask = torch.zeros(len(rows), words, dtype=torch.bool)
    marks = torch.zeros(len(rows), steps, 1)
    for k, r in enumerate(rows):
        n, m = len(r.passage.offsets), len(r.question.offsets)
        passage[k, :n] = torch.from_numpy(r.passage.vectors)
        question[k, :m] = torch.from_numpy(r.question.vectors)
        question_mask[k, :m] = True
        marks[k, :n] = torch.from_numpy(r.marks)
    lengths = torch.tensor([len(r.passage.offsets) for r in rows])
    return passage, lengths, question, question_mask, marks


def heldout_scores(net: SpanNet, rows: list[Example]) -> tuple[float, float]:
    """(F1, EM) of the best span of each answerable question's own paragraph."""
    f1s, ems = [], []
    for r in rows:
        _, first, end = net.scores(r.question, r.question_text, [r.passage], [r.context])[0].best()
        em, f = best_over_gold(r.context[first:end], r.answers)
        ems.append(em)
        f1s.append(f)
    return float(np.mean(f1s)), float(np.mean(ems))


def main(
    data: list[Path] = typer.Option(..., help="SQuAD v1.1/v2.0 files to train on (repeatable)."),
    holdout: Optional[Path] = typer.Option(None, help="SQuAD file whose articles are kept out and scored."),
    epochs: int = typer.Option(4, help="Passes over the training questions."),
    seed: int = typer.Option(0, help="Seed of the initialization and the batch order."),
    middle: bool = typer.Option(True, "--middle/--last-only", help="Read MiniLM's middle layer beside its last."),
    out: Optional[Path] = typer.Option(None, help="Weights file to write (safetensors; default: the shipped one)."),
) -> None:
    import torch
    from safetensors.numpy import save_file

    torch.manual_seed(seed)
    rng = random.Random(seed)
    torch.set_num_threads(2)
    held_titles = {p.title for p in squad_paragraphs(holdout)[0]} if holdout else set()
    out = out or (MIDDLE_LAYER_FILE if middle else LAST_LAYER_FILE)
    train = [r for r in examples(data, lambda title: title not in held_titles, middle) if r.first >= 0]
    held = [r for r in examples([holdout], lambda title: True, middle) if r.answers] if holdout else []
    typer.echo(f"training on {len(train)} answerable questions; {len(held)} held out", err=True)
    net = network()(train[0].passage.vectors.shape[1])
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    for epoch in range(1, epochs + 1):
        net.train()
        by_length = sorted(train, key=lambda r: len(r.passage.offsets) + rng.random() * 20)
        batches = [by_length[i : i + BATCH] for i in range(0, len(by_length), BATCH)]
        rng.shuffle(batches)
        total = 0.0
        for rows in batches:
            start, end = net(*batch_tensors(rows))
            loss = (torch.nn.functional.cross_entropy(start, torch.tensor([r.first for r in rows]))
                    + torch.nn.functional.cross_entropy(end, torch.tensor([r.last for r in rows])))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            total += loss.item()
        line = f"epoch {epoch}: loss {total / len(batches):.3f}"
        if held:
            weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
            line += " held-out F1 {:.3f} EM {:.3f}".format(*heldout_scores(SpanNet(weights), held))
        typer.echo(line, err=True)
    save_file({k: v.detach().half().numpy() for k, v in net.state_dict().items()}, str(out),
              metadata={"trained_on": ",".join(p.name for p in data), "held_out": holdout.name if holdout else "",
                        "epochs": str(epochs), "seed": str(seed), "middle_layer": str(middle)})
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
