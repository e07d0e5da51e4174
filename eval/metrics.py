"""Scoring shared by the eval scripts: ranking metrics and percentiles (SQuAD answer metrics: qa/reading/squad.py)."""

from __future__ import annotations

import math
from typing import Sequence

CUTOFFS = (1, 3, 5, 10)


def ranking_metrics(relevance: Sequence[bool], total_relevant: int | None = None) -> dict[str, float]:
    """Recall@k (any relevant passage in the top k), MRR@10 and binary nDCG@10 of one ranking."""
    first = next((rank for rank, relevant in enumerate(relevance, 1) if relevant), None)
    scores = {f"recall@{k}": float(first is not None and first <= k) for k in CUTOFFS}
    scores["mrr@10"] = 1.0 / first if first is not None and first <= 10 else 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, relevant in enumerate(relevance[:10], 1) if relevant)
    ideal_count = min(total_relevant if total_relevant is not None else sum(relevance), 10)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, ideal_count + 1))
    scores["ndcg@10"] = dcg / ideal if ideal > 0 else 0.0
    return scores


def first_relevant(relevance: Sequence[bool]) -> int | None:
    return next((rank for rank, relevant in enumerate(relevance, 1) if relevant), None)


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in rows[0]}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100])."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
