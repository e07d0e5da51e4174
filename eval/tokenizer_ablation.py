"""What stopword removal and stemming (light, or plurals only) do to BM25 retrieval, on the real passages.

    python -m eval.tokenizer_ablation [--gold eval/gold.jsonl] [--squad FILE ...]

BM25 (rank-bm25, as the index uses it) is rebuilt over the index's passages with each tokenizer
variant, and Recall@5 / MRR@10 are computed as in evaluate.py and squad.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from eval.evaluate import is_relevant, load_gold
from eval.metrics import mean_metrics, ranking_metrics
from qa.api import QA
from qa.reading.squad import load_squad
from qa.search.bm25 import OkapiBM25, plural_stem, stem, tokenize

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"stopwords + light stemmer (used)": (True, stem), "stopwords + plurals only (S-stemmer)": (True, plural_stem),
            "stopwords only": (True, None), "light stemmer only": (False, stem), "neither": (False, None)}


def ablate(passages, cases) -> dict[str, dict[str, float]]:
    table = {}
    for name, (stopwords, stemmer) in VARIANTS.items():
        bm25 = OkapiBM25([tokenize(p.text, stopwords, stemmer) for p in passages])
        rows = []
        for question, relevant in cases:
            scores = bm25.get_scores(tokenize(question, stopwords, stemmer))
            top = [int(i) for i in np.argsort(-scores, kind="stable")[:10] if scores[i] > 0]
            rows.append(ranking_metrics([relevant(i) for i in top]))
        table[name] = {k: v for k, v in mean_metrics(rows).items() if k in ("recall@5", "mrr@10")}
    return table


def main(gold: Path = typer.Option(ROOT / "eval" / "gold.jsonl"), corpus: Path = typer.Option(ROOT / "seeds"),
         squad: list[Path] = typer.Option([], help="SQuAD files to include (repeatable).")) -> None:
    results = {}
    passages = QA(corpus, ROOT / "index").all_passages()
    records = [r for r in load_gold(gold) if r["answers"]]
    results[gold.name] = ablate(passages, [(r["question"], lambda i, r=r: is_relevant(passages[i].source, passages[i].text, r))
                                           for r in records])
    for path in squad:
        articles, questions, _ = load_squad(path)
        spassages = QA(articles, ROOT / "index" / f"eval-{path.stem}").all_passages()
        results[path.name] = ablate(spassages, [(q.question, lambda i, q=q: spassages[i].source == q.source)
                                                for q in questions])
    table = Table(title="BM25 tokenizer ablation: recall@5 / mrr@10", title_justify="left")
    table.add_column("tokenizer")
    for name in results:
        table.add_column(name, justify="right")
    for variant in VARIANTS:
        table.add_row(variant, *(f"{results[n][variant]['recall@5']:.3f} / {results[n][variant]['mrr@10']:.3f}"
                                 for n in results))
    Console(highlight=False).print(table)


if __name__ == "__main__":
    typer.run(main)
