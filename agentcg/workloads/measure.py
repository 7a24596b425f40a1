"""What a replay measures of itself: allocation latency percentiles, where each process is on its plan
(`plan_time`, `timeline`), and fidelity: memory.current samples against the (scaled) trace at that position
(mean error relative to the scaled peak, with the trace's own one-interval time resolution as tolerance; inside a
tool-call window the position comes from the checkpoints of the call that carries it, which runs on its own
schedule)."""
from __future__ import annotations

import bisect
import math
import statistics

from agentcg.stats import percentile
from agentcg.workloads.plan import Curve


def latency_summary(latencies_us) -> dict:
    """P50/P95/P99/max in milliseconds (percentiles linear between closest ranks) and the chunk count."""
    xs = [x / 1000.0 for x in latencies_us]
    if not xs:
        return {"chunks": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {"chunks": len(xs), "p50": round(percentile(xs, 50), 4), "p95": round(percentile(xs, 95), 4),
            "p99": round(percentile(xs, 99), 4), "max": round(max(xs), 4)}


def plan_time(checkpoints: list[tuple[float, float]], elapsed: float,
              actual: list[float] | None = None) -> float | None:
    """Where on its plan (planned wall seconds) an agent was at `elapsed`, from its checkpoints
    [(planned, actual)] (both non-decreasing), linear between them; None outside them. `actual`, the
    checkpoints' actual times, can be passed to save rebuilding them for every call."""
    if not checkpoints or elapsed < checkpoints[0][1] or elapsed > checkpoints[-1][1]:
        return None
    actual = actual if actual is not None else [c[1] for c in checkpoints]
    i = bisect.bisect_right(actual, elapsed) - 1
    if i >= len(checkpoints) - 1:
        return checkpoints[-1][0]
    (p0, a0), (p1, a1) = checkpoints[i], checkpoints[i + 1]
    return p0 if a1 <= a0 else p0 + (p1 - p0) * (elapsed - a0) / (a1 - a0)


def timeline(agent: list[tuple[float, float]], calls: list[tuple[float, float]],
             windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Where on its plan an agent's memory was, as checkpoints [(planned, actual)] for plan_time.

    Outside call windows the agent's own process holds the memory, so its checkpoints tell. Inside a window the
    call that carries it does, and it runs on its own schedule: it falls behind when it allocates late (a slow
    machine, a throttled burst) while the agent keeps to its own until it waits for the call. So inside a window
    that reported call checkpoints, the agent's are replaced by the call's. Merged by actual time, with the
    planned time never going back."""
    if calls:
        starts = [w[0] for w in windows]
        covered = set()
        for planned, _ in calls:
            i = bisect.bisect_right(starts, planned) - 1
            if i >= 0 and windows[i][0] <= planned <= windows[i][1]:
                covered.add(i)

        def inside(planned: float) -> bool:
            i = bisect.bisect_right(starts, planned) - 1
            return i in covered and windows[i][0] < planned < windows[i][1]
        agent = [c for c in agent if not inside(c[0])]
    merged = sorted([tuple(c) for c in agent] + [tuple(c) for c in calls], key=lambda c: (c[1], c[0]))
    out, furthest = [], -math.inf
    for planned, actual in merged:
        furthest = max(furthest, planned)
        out.append((furthest, actual))
    return out


def fidelity(samples: list[tuple[float, int]], checkpoints: list[tuple[float, float]], curve: Curve,
             speed: float, mem_scale: float) -> dict:
    """How closely an agent's cgroup followed its trace. Each memory.current sample (elapsed, bytes) is compared
    with the scaled trace at the agent's position on its plan at that moment (so a replay that falls behind is
    compared with where it is, not with the clock).

    mae_rel: mean distance from the trace's range within one recorder interval of that position, over the scaled
    peak. The recorder sampled about once a second, so when within that second memory moved is unknown: a burst
    replayed a fraction of an interval early or late is not an error of the replay. mae_rel_pointwise: the same
    against the trace's linear interpolation at exactly that position (stricter than the trace itself is)."""
    peak = curve.peak * mem_scale
    actual = [c[1] for c in checkpoints]
    errors, pointwise = [], []
    for elapsed, value in samples:
        planned = plan_time(checkpoints, elapsed, actual)
        if planned is None:
            continue
        t = planned * speed
        lo, hi = curve.span(t - curve.resolution, t + curve.resolution)
        errors.append(max(0.0, lo * mem_scale - value, value - hi * mem_scale))
        pointwise.append(abs(value - curve.at(t) * mem_scale))
    if not errors or peak <= 0:
        return {"samples": len(errors), "mae_bytes": None, "mae_rel": None, "mae_rel_pointwise": None,
                "peak_bytes": int(peak)}
    mae = statistics.fmean(errors)
    return {"samples": len(errors), "mae_bytes": int(mae), "mae_rel": round(mae / peak, 5),
            "mae_rel_pointwise": round(statistics.fmean(pointwise) / peak, 5), "peak_bytes": int(peak)}
