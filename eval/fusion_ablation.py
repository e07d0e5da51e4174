"""Ablation of the hybrid fusion: which way of combining BM25 and dense rankings retrieves best.

    python -m eval.fusion_ablation [--gold eval/gold.jsonl] [--squad FILE ...] [--json OUT]

Each question's BM25 and dense candidate lists (depth 50) are computed once with the real
retriever; every fusion setting is then applied to the same lists with qa.search.retrieve's own fusion
functions, and scored by Recall@5 and MRR@10 (relevance as in evaluate.py and squad.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from eval.evaluate import is_relevant, load_gold
from eval.metrics import mean_metrics, ranking_metrics
from eval.results import write_results
from qa.api import QA
from qa.reading.squad import load_squad
from qa.search.retrieve import CANDIDATE_DEPTH, reciprocal_rank_fusion, weighted_fusion

ROOT = Path(__file__).resolve().parent.parent
console = Console(highlight=False)


def settings() -> dict[str, callable]:
    """Name -> function(sparse, dense) -> {passage id: fused score}."""
    options = {"bm25 only": lambda s, d: dict(s), "dense only": lambda s, d: dict(d)}
    for k in (10, 60):
        for w in (1.0, 1.5, 2.0, 3.0):
            options[f"rrf k={k} bm25 weight {w}"] = (
                lambda s, d, k=k, w=w: reciprocal_rank_fusion([s, d], k=k, weights=(w, 1.0)))
    for alpha in (0.2, 0.3, 0.4, 0.5):
        options[f"weighted alpha={alpha}"] = lambda s, d, a=alpha: weighted_fusion(s, d, a)
    return options


def rank(fused: dict[int, float]) -> list[int]:
    return [i for i, _ in sorted(fused.items(), key=lambda item: (-item[1], item[0]))][:10]


def ablate(qa: QA, cases: list[tuple[str, callable]]) -> dict[str, dict[str, float]]:
    """cases: (question, is_relevant(passage_id) -> bool)."""
    retriever = qa.retriever()
    lists = [(retriever.bm25(q, CANDIDATE_DEPTH), retriever.dense(q, CANDIDATE_DEPTH), relevant) for q, relevant in cases]
    table = {}
    for name, fuse in settings().items():
        rows = [ranking_metrics([relevant(i) for i in rank(fuse(s, d))]) for s, d, relevant in lists]
        table[name] = {k: v for k, v in mean_metrics(rows).items() if k in ("recall@1", "recall@5", "mrr@10")}
    return table


def main(
    gold: Path = typer.Option(ROOT / "eval" / "gold.jsonl"),
    corpus: Path = typer.Option(ROOT / "seeds"),
    squad: list[Path] = typer.Option([], help="SQuAD files to include (repeatable)."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
) -> None:
    results = {}
    qa = QA(corpus, ROOT / "index")
    passages = qa.all_passages()
    records = [r for r in load_gold(gold) if r["answers"]]
    results[gold.name] = ablate(qa, [(r["question"], lambda i, r=r: is_relevant(passages[i].source, passages[i].text, r))
                                     for r in records])
    for path in squad:
        articles, questions, _ = load_squad(path)
        sqa = QA(articles, ROOT / "index" / f"eval-{path.stem}")
        spassages = sqa.all_passages()
        results[path.name] = ablate(sqa, [(q.question, lambda i, q=q: spassages[i].source == q.source) for q in questions])
    table = Table(title="Fusion ablation: recall@5 / mrr@10", title_justify="left")
    table.add_column("setting")
    for name in results:
        table.add_column(name, justify="right")
    for setting in settings():
        table.add_row(setting, *(f"{results[n][setting]['recall@5']:.3f} / {results[n][setting]['mrr@10']:.3f}" for n in results))
    console.print(table)
    if json_out:
        write_results(json_out, results)


if __name__ == "__main__":
    typer.run(main)
