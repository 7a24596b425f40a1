"""Percentiles, defined once for all of agentcg.

Two methods, each where it is right:
- "linear" (numpy's default): interpolates between the closest ranks. For describing a distribution (the
  characterization's P50/P95 of traces, replay latencies), where a value between two samples is a fair estimate.
- "nearest-rank": the smallest sample with at least q % of the samples at or below it: always a value that was
  observed. For a limit learned from samples (agentcg.budgets), which should be a peak a call really reached.
- "floor-index": element floor(q/100 x n) of the sorted samples (the last one when that is n): how the
  AgentCgroup paper's figure script takes its P95 (agentcg.eval.reproduce uses it for that).
A maximum is a maximum: callers report max() as such, never as a P99.
"""
from __future__ import annotations

import math

METHODS = ("linear", "nearest-rank", "floor-index")


def percentile(values, q: float, method: str = "linear") -> float | None:
    """The q-th percentile (0..100) of values by `method`; None for no values."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, not {q!r}")
    xs = sorted(values)
    if not xs:
        return None
    if method == "floor-index":
        return xs[min(len(xs) - 1, math.floor(q / 100 * len(xs)))]
    if method == "nearest-rank":
        return xs[max(0, min(len(xs) - 1, math.ceil(q / 100 * len(xs)) - 1))]
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
