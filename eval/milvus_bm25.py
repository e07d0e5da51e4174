"""Which BM25 the Milvus backend uses, decided by measurement: Recall@5 and MRR@10 of the file
backend, of the Milvus backend (BM25 weights computed by qa, its tokenizer and stemmer), and of
Milvus's own BM25 function (its analyzer, its statistics), alone and fused with the same dense
ranking at the default weight, on the seeds' gold questions and on squad2-dev-a (all questions
with an answer; ../shared, skipped when absent).

    python -m eval.milvus_bm25 [--json eval/results/milvus-bm25.json]

Milvus's BM25 function runs on Milvus Lite here, fed in batches of --segment-rows rows (each
flushed) as a collection grows in use: Lite keeps BM25 statistics per segment.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from eval.evaluate import is_relevant
from eval.metrics import mean_metrics, ranking_metrics
from eval.results import write_results
from qa.api import QA
from qa.backends.milvus.backend import MilvusBackend, MilvusConfig
from qa.reading.squad import load_gold, load_squad
from qa.search.retrieve import CANDIDATE_DEPTH, DEFAULT_ALPHA, Retrieval, weighted_fusion

ROOT = Path(__file__).resolve().parent.parent
SQUAD_DEV_A = ROOT.parent / "shared" / "data" / "squad" / "squad2-dev-a.json"
ANALYZER = {"tokenizer": "standard", "filter": ["lowercase"]}
console = Console(highlight=False)


def builtin_bm25(milvus: QA, segment_rows: int):
    """A collection with Milvus's BM25 function over the Milvus backend's passages (same ids), and
    a search by raw text returning (id, score) pairs."""
    from pymilvus import DataType, Function, FunctionType

    client = milvus.backend.milvus.client
    name = milvus.backend.config.collection + "_builtin_bm25"
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    if client.has_collection(name):
        client.drop_collection(name)
    client.create_collection(name, schema=schema, index_params=index)
    rows = [{"id": i, "text": p.text} for i, p in enumerate(milvus.all_passages())]
    for start in range(0, len(rows), segment_rows):
        client.insert(name, rows[start:start + segment_rows])
        client.flush(name)
    client.load_collection(name)

    def search(query: str, depth: int) -> list[tuple[int, float]]:
        hits = client.search(name, data=[query], anns_field="sparse", limit=depth, output_fields=["id"],
                             search_params={"metric_type": "BM25"})[0]
        # Lite returns BM25 scores negated; their order is the ranking.
        return [(int(h["id"]), abs(float(h["distance"]))) for h in hits]

    return search


def score(cases: list[tuple[str, Callable[[dict], bool]]], rankers: dict[str, Callable[[str], list[dict]]]) -> dict:
    return {name: {k: v for k, v in mean_metrics([ranking_metrics([relevant(p) for p in rank(q)])
                                                    for q, relevant in cases]).items()
                   if k in ("recall@5", "mrr@10")}
            for name, rank in rankers.items()}


def rankers_for(files: QA, milvus: QA, builtin) -> dict[str, Callable[[str], list[dict]]]:
    passages = milvus.all_passages()

    def builtin_ranking(query: str, hybrid: bool) -> list[dict]:
        sparse = builtin(query, CANDIDATE_DEPTH)
        fused = weighted_fusion(sparse, milvus.retriever().dense(query, CANDIDATE_DEPTH), DEFAULT_ALPHA) if hybrid \
            else dict(sparse)
        best = sorted(fused, key=lambda i: (-fused[i], i))[:10]
        return [{"source": passages[i].source, "text": passages[i].text} for i in best]

    def search(qa: QA, retriever: str) -> Callable[[str], list[dict]]:
        return lambda query: qa.search(query, k=10, retrieval=Retrieval(retriever))

    return {
        "files bm25": search(files, "bm25"), "milvus (qa's weights) bm25": search(milvus, "bm25"),
        "milvus BM25 function": lambda q: builtin_ranking(q, hybrid=False),
        "files hybrid": search(files, "hybrid"), "milvus (qa's weights) hybrid": search(milvus, "hybrid"),
        "milvus BM25 function + dense": lambda q: builtin_ranking(q, hybrid=True),
    }


def main(json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here."),
         segment_rows: int = typer.Option(1000, min=1, help="Rows per flushed insert into the BM25-function collection.")) -> None:
    datasets = [("seeds (eval/gold.jsonl)", ROOT / "seeds", "seeds")]
    if SQUAD_DEV_A.is_file():
        datasets.append(("squad2-dev-a", SQUAD_DEV_A, "squad"))
    results = {}
    with tempfile.TemporaryDirectory(prefix="qa-milvus-bm25-") as work:
        for label, path, kind in datasets:
            if kind == "seeds":
                corpus = path
                cases = [(g["question"], lambda p, g=g: is_relevant(p["source"], p["text"], g))
                         for g in load_gold(ROOT / "eval" / "gold.jsonl") if g["answers"]]
            else:
                corpus, questions, _ = load_squad(path)
                cases = [(q.question, lambda p, q=q: p["source"] == q.source) for q in questions if q.answers]
            files = QA(corpus, Path(work) / f"{kind}-index")
            milvus = QA(corpus, backend=MilvusBackend(MilvusConfig(str(Path(work) / f"{kind}.db"))))
            files.ensure_index()
            milvus.ensure_index()
            results[label] = {"questions": len(cases), "passages": milvus.summary()["passages"],
                              **score(cases, rankers_for(files, milvus, builtin_bm25(milvus, segment_rows)))}
    table = Table(title="BM25 for the Milvus backend: Recall@5 / MRR@10", title_justify="left")
    table.add_column("ranking")
    for label in results:
        table.add_column(f"{label} ({results[label]['questions']} q)", justify="right")
    for name in next(iter(results.values())):
        if name in ("questions", "passages"):
            continue
        table.add_row(name, *[f"{r[name]['recall@5']:.3f} / {r[name]['mrr@10']:.3f}" for r in results.values()])
    console.print(table)
    if json_out:
        write_results(json_out, {"analyzer": ANALYZER, "segment_rows": segment_rows, "results": results})


if __name__ == "__main__":
    typer.run(main)
