"""Characterisation of agent runs: where the time goes, what the tool calls cost, how bursty memory and CPU are.

These are the numbers a per-tool-call resource controller is designed against (how much of a run is tool
execution, whether the memory bursts fall inside tool calls, how large a test run's spike is), so each metric is
a small named function whose docstring is its definition, computed from `agentcg.workloads.traces.Trace` objects only and
returned as plain dicts (JSON-ready). `report()` builds every table for groups of runs (by model, task category
or data folder); `render()` prints them with rich, `figures()` draws them with matplotlib (Agg).

Conventions for every metric:
- memory in MB is 10^6 bytes (the unit podman prints); shares are fractions in [0, 1]; times in seconds;
- percentiles interpolate linearly between closest ranks (numpy's default);
- a tool call's span is [start, end]; a sample at time t is inside a call when start <= t <= end;
- `Task` calls delegate to a sub-agent: their span is mostly the sub-agent's own reasoning (its tool calls are
  recorded as calls of their own when the recorder saw them), so Task is left out of every time-based metric
  (tool time, composition, in-call attribution, spikes) and counted only in the call-count distributions;
- runs whose tool calls were not recorded (meta["has_calls"] false) are left out of the metrics that need calls;
  a metric reports `runs`, the number of runs it used.
"""
from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from agentcg.stats import percentile
from agentcg.workloads.traces import DELEGATION_TOOLS, Trace

MB = 1_000_000
GROUPINGS = ("model", "category", "folder")
PHASES = 10


# --- small helpers ------------------------------------------------------------------------------------------

def mean(values) -> float | None:
    xs = list(values)
    return sum(xs) / len(xs) if xs else None


def pearson(xs, ys) -> float | None:
    """Pearson r of paired values; None with fewer than 3 pairs or a constant side."""
    xs, ys = list(xs), list(ys)
    if len(xs) < 3:
        return None
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:
        return None


def merge(intervals) -> list[tuple[float, float]]:
    """Sorted, non-overlapping union of [start, end] intervals."""
    out: list[list[float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def timed_calls(trace: Trace):
    """The calls that count for time-based metrics (all but sub-agent delegation)."""
    return [c for c in trace.calls if c.tool not in DELEGATION_TOOLS]


def tool_time(trace: Trace) -> float:
    """Seconds covered by the union of the run's tool-call spans (parallel calls count once)."""
    return sum(b - a for a, b in merge((c.start, c.end) for c in timed_calls(trace)))


class Spans:
    """Membership test "is time t inside one of these [start, end] intervals" (inclusive) in O(log n)."""

    def __init__(self, intervals):
        self.spans = merge(intervals)
        self.starts = [a for a, _ in self.spans]

    @classmethod
    def of_calls(cls, trace: Trace, slack: float = 0.0) -> "Spans":
        """The run's time-based tool calls, each widened by `slack` on both sides."""
        return cls((c.start - slack, c.end + slack) for c in timed_calls(trace))

    def __contains__(self, t: float) -> bool:
        i = bisect.bisect_right(self.starts, t) - 1
        return i >= 0 and t <= self.spans[i][1]


def _with_calls(traces):
    return [t for t in traces if t.meta.get("has_calls", True)]


# --- 1. end-to-end latency ----------------------------------------------------------------------------------

def latency_split(trace: Trace) -> dict | None:
    """A run's end-to-end time in three parts, or None when a part is unknown.

    init: container preparation, pull_time + permission_fix_time (meta init_time);
    tool: execution of tool calls, the union of the call spans (tool_time);
    llm: model reasoning and everything else the agent does between calls, claude_time - tool (at least 0).
    """
    init, claude = trace.meta.get("init_time"), trace.meta.get("claude_time")
    if init is None or claude is None or not trace.meta.get("has_calls", True):
        return None
    tool = tool_time(trace)
    return {"init": init, "tool": tool, "llm": max(claude - tool, 0.0), "claude": claude}


def latency_table(traces) -> dict:
    """Mean seconds of init/tool/llm per run, and each part's share of the summed init+tool+llm time."""
    rows = [r for r in map(latency_split, traces) if r]
    total = sum(r["init"] + r["tool"] + r["llm"] for r in rows)
    out = {"runs": len(rows)}
    for part in ("init", "tool", "llm"):
        out[f"{part}_s"] = mean(r[part] for r in rows)
        out[f"{part}_share"] = sum(r[part] for r in rows) / total if total else None
    return out


# --- 2. tool-time composition -------------------------------------------------------------------------------

def _time_by(calls, key) -> dict:
    per: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        per[key(c)].append(c.duration)
    total = sum(sum(v) for v in per.values())
    return {k: {"calls": len(v), "time_s": sum(v), "share": sum(v) / total if total else None,
                "mean_s": sum(v) / len(v)}
            for k, v in sorted(per.items(), key=lambda kv: -sum(kv[1]))}


def tool_composition(traces) -> dict:
    """Per tool: call count, summed call duration, its share of all summed call time, mean duration per call.
    Sums of durations, so overlapping (parallel) calls each count in full."""
    return _time_by((c for t in _with_calls(traces) for c in timed_calls(t)), lambda c: c.tool)


def bash_composition(traces) -> dict:
    """tool_composition over Bash calls only, keyed by command category ("unknown" when the command is not)."""
    return _time_by((c for t in _with_calls(traces) for c in t.calls if c.tool == "Bash"),
                    lambda c: c.category or "unknown")


# --- 3. temporal pattern ------------------------------------------------------------------------------------

def phase_distribution(traces, phases: int = PHASES) -> list[dict]:
    """Tool-type mix over the course of a run: each run's span [0, max(last sample, last call end)] is cut into
    `phases` equal parts, each call counts in the part where it starts, and the counts of all runs are pooled;
    per phase, each tool's share of the calls (all tools, Task included)."""
    counts = [Counter() for _ in range(phases)]
    for t in _with_calls(traces):
        span = max([t.duration] + [c.end for c in t.calls])
        for c in t.calls:
            i = min(int(c.start / span * phases), phases - 1) if span > 0 else 0
            counts[max(i, 0)][c.tool] += 1
    out = []
    for cnt in counts:
        n = sum(cnt.values())
        out.append({tool: k / n for tool, k in cnt.most_common()} if n else {})
    return out


# --- 4. CPU and memory --------------------------------------------------------------------------------------

def cpu_stats(trace: Trace, threshold: float = 50.0) -> dict:
    """mean: mean cpu_pct over the samples; above: share of samples above `threshold` %; peak: max cpu_pct."""
    cpu = [s.cpu_pct for s in trace.samples]
    return {"mean": mean(cpu), "above": sum(x > threshold for x in cpu) / len(cpu), "peak": max(cpu)}


def baseline(trace: Trace) -> float:
    """Early-run memory baseline in bytes: the median of the first max(10, ceil(10%)) samples (all of them in a
    shorter run). The median ignores the container's first near-empty readings and an early burst."""
    n = max(10, math.ceil(len(trace.samples) / 10))
    return statistics.median(s.mem_bytes for s in trace.samples[:n])


def mem_rates(trace: Trace) -> list[float]:
    """|memory change| in MB/s between consecutive samples (pairs with no time between them are skipped)."""
    s = trace.samples
    return [abs(b.mem_bytes - a.mem_bytes) / MB / (b.t - a.t) for a, b in zip(s, s[1:]) if b.t > a.t]


def memory_stats(trace: Trace) -> dict:
    """baseline_mb (see baseline), peak_mb (max), avg_mb (mean over samples), peak_avg (peak / avg),
    rate_max and rate_p95 (MB/s, of mem_rates)."""
    mem = [s.mem_bytes for s in trace.samples]
    peak, avg = max(mem), sum(mem) / len(mem)
    rates = mem_rates(trace)
    return {"baseline_mb": baseline(trace) / MB, "peak_mb": peak / MB, "avg_mb": avg / MB,
            "peak_avg": peak / avg if avg else None, "rate_max": max(rates, default=None),
            "rate_p95": percentile(rates, 95)}


def resource_table(traces, cpu_threshold: float = 50.0) -> dict:
    """Per group: means over runs of cpu mean / share above threshold / memory baseline, peak and average; the
    max over runs of cpu peak, memory peak and peak/avg; change rates pooled over all consecutive sample pairs
    of all runs (max and P95, MB/s)."""
    cpu = [cpu_stats(t, cpu_threshold) for t in traces]
    mem = [memory_stats(t) for t in traces]
    rates = [r for t in traces for r in mem_rates(t)]
    ratios = [m["peak_avg"] for m in mem if m["peak_avg"] is not None]
    return {
        "runs": len(traces),
        "cpu_mean": mean(c["mean"] for c in cpu), "cpu_above_share": mean(c["above"] for c in cpu),
        "cpu_peak": max((c["peak"] for c in cpu), default=None),
        "mem_baseline_mb": mean(m["baseline_mb"] for m in mem), "mem_peak_mb": mean(m["peak_mb"] for m in mem),
        "mem_peak_max_mb": max((m["peak_mb"] for m in mem), default=None),
        "mem_avg_mb": mean(m["avg_mb"] for m in mem),
        "peak_avg_mean": mean(ratios), "peak_avg_max": max(ratios, default=None),
        "rate_max": max(rates, default=None), "rate_p95": percentile(rates, 95),
    }


# --- 5. burst attribution -----------------------------------------------------------------------------------

def burst_attribution(traces, mem_threshold_mb: float = 300.0, cpu_threshold: float = 50.0,
                      slack: float = 0.0) -> dict:
    """Do the bursts happen inside tool calls?

    A memory burst is a sample above baseline + mem_threshold_mb; a CPU burst a sample above cpu_threshold %.
    A sample is inside when it falls in a (non-Task) call span widened by `slack` seconds on each side. Pooled
    over the runs with recorded calls: the share of each kind of burst inside calls, the share of all samples
    inside calls (what chance alone would give) and the share of run time covered by calls (tool_time over the
    sample span). Bursts outside calls are split further: *_at_startup is the share of bursts before the run's
    first tool call (the agent booting: its first samples show high CPU while memory climbs), the rest falls
    between calls. podman's CPU figure is an average over the interval before the sample; use slack ~1 s to
    credit a call that ended just before a CPU burst sample.
    """
    runs = _with_calls(traces)
    n = inside = 0
    bursts = {"mem": [0, 0, 0], "cpu": [0, 0, 0]}  # [bursts, inside calls, before the first call]
    covered = span = 0.0
    for t in runs:
        spans = Spans.of_calls(t, slack)
        first = min((c.start for c in t.calls), default=math.inf)
        limit = baseline(t) + mem_threshold_mb * MB
        for s in t.samples:
            hit = s.t in spans
            n += 1
            inside += hit
            for kind, burst in (("mem", s.mem_bytes > limit), ("cpu", s.cpu_pct > cpu_threshold)):
                if burst:
                    counts = bursts[kind]
                    counts[0] += 1
                    counts[1] += hit
                    counts[2] += not hit and s.t < first
        covered += tool_time(t)
        span += t.duration
    out = {"runs": len(runs), "samples": n}
    for kind, (total, hit, startup) in bursts.items():
        out[f"{kind}_bursts"] = total
        out[f"{kind}_in_calls"] = hit / total if total else None
        out[f"{kind}_at_startup"] = startup / total if total else None
    out["samples_in_calls"] = inside / n if n else None
    out["time_in_calls"] = covered / span if span else None
    return out


# --- 6. memory spikes of Bash calls -------------------------------------------------------------------------

def call_spike(trace: Trace, call, ts: list[float] | None = None) -> float | None:
    """A call's memory spike in bytes: the largest sample inside [start, end] minus the memory at the call's
    start (the last sample at or before start; the first sample if none), at least 0. None when no sample falls
    inside the call (shorter than the ~1 s sampling interval): such a call is not observable.
    `ts`, the sample times, can be passed to save recomputing them for every call of a run."""
    ts = ts if ts is not None else [s.t for s in trace.samples]
    lo = bisect.bisect_left(ts, call.start)
    hi = bisect.bisect_right(ts, call.end)
    if lo >= hi:
        return None
    before = trace.samples[bisect.bisect_right(ts, call.start) - 1] if ts[0] <= call.start else trace.samples[0]
    return max(0, max(s.mem_bytes for s in trace.samples[lo:hi]) - before.mem_bytes)


def bash_spikes(traces) -> dict:
    """Per Bash category: calls observed (with a sample inside), P50 / P95 / max spike in MB (see call_spike)."""
    per: dict[str, list[float]] = defaultdict(list)
    for t in _with_calls(traces):
        ts = [s.t for s in t.samples]
        for c in t.calls:
            if c.tool == "Bash":
                spike = call_spike(t, c, ts)
                if spike is not None:
                    per[c.category or "unknown"].append(spike / MB)
    return {k: {"calls": len(v), "p50_mb": percentile(v, 50), "p95_mb": percentile(v, 95), "max_mb": max(v)}
            for k, v in sorted(per.items(), key=lambda kv: -percentile(kv[1], 95))}


# --- 7. retry loops -----------------------------------------------------------------------------------------

def retry_groups(trace: Trace, min_repeat: int = 3) -> list[dict]:
    """Streaks of min_repeat or more identical Bash commands in a row, in the sequence of the run's Bash calls
    (calls of other tools in between, such as the Edit between two test runs, do not break a streak; a command
    is compared with surrounding whitespace stripped). Each: command, count, time_s (summed durations)."""
    out, streak = [], []
    for c in [c for c in trace.calls if c.tool == "Bash"] + [None]:
        cmd = c.command.strip() if c is not None and c.command else None
        if streak and (cmd is None or cmd != streak[0].command.strip()):
            if len(streak) >= min_repeat:
                out.append({"command": streak[0].command.strip(), "count": len(streak),
                            "time_s": sum(x.duration for x in streak)})
            streak = []
        if cmd is not None:
            streak.append(c)
    return out


def retry_table(traces, min_repeat: int = 3) -> dict:
    """Runs with at least one retry group (count, share of runs with calls), groups in all, mean groups per run,
    longest streak, and the share of Bash time (summed durations) spent in retry groups."""
    runs = _with_calls(traces)
    groups = [retry_groups(t, min_repeat) for t in runs]
    loop_time = sum(g["time_s"] for gs in groups for g in gs)
    bash_time = sum(c.duration for t in runs for c in t.calls if c.tool == "Bash")
    flat = [g for gs in groups for g in gs]
    return {"runs": len(runs), "runs_with_loops": sum(1 for gs in groups if gs),
            "runs_share": sum(1 for gs in groups if gs) / len(runs) if runs else None,
            "groups": len(flat), "groups_per_run": len(flat) / len(runs) if runs else None,
            "longest": max((g["count"] for g in flat), default=0),
            "bash_time_share": loop_time / bash_time if bash_time else None}


# --- 8. correlations ----------------------------------------------------------------------------------------

def cpu_mem_r(trace: Trace, working: bool = False) -> float | None:
    """Pearson r of cpu_pct and memory over one run's samples (None when either is constant). With working, only
    the samples from the first tool call on: the agent's boot (high CPU while memory climbs from ~10 MB) pulls
    the all-samples figure negative."""
    samples = trace.samples
    if working:
        first = min((c.start for c in trace.calls), default=None)
        if first is None:
            return None
        samples = [s for s in samples if s.t >= first]
    return pearson([s.cpu_pct for s in samples], [s.mem_bytes for s in samples])


def correlations(traces) -> dict:
    """Across runs, Pearson r of output tokens and of conversation rounds (see traces.Transcript) with peak
    memory and with execution time (claude_time), each over the runs where both values are known (n_*); and the
    mean over runs of the per-run CPU-memory correlation (cpu_mem_r), over all samples and over the working
    phase (from the first tool call on)."""
    out = {}
    for x in ("output_tokens", "rounds"):
        for y, value in (("peak_mem", lambda t: max(s.mem_bytes for s in t.samples)),
                         ("exec_time", lambda t: t.meta.get("claude_time"))):
            pairs = [(t.meta.get(x), value(t)) for t in traces]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            out[f"{x}_vs_{y}"] = pearson([a for a, _ in pairs], [b for _, b in pairs])
            out[f"n_{x}_vs_{y}"] = len(pairs)
    per_run = [r for r in map(cpu_mem_r, traces) if r is not None]
    out["cpu_mem_r_mean"] = mean(per_run)
    out["n_cpu_mem_r"] = len(per_run)
    working = [r for r in (cpu_mem_r(t, working=True) for t in traces) if r is not None]
    out["cpu_mem_r_working_mean"] = mean(working)
    out["n_cpu_mem_r_working"] = len(working)
    return out


# --- 9. heterogeneity ---------------------------------------------------------------------------------------

def heterogeneity(traces) -> dict:
    """Spread of per-run peak memory (MB): min, max, range (max - min), mean and coefficient of variation
    (population standard deviation / mean)."""
    peaks = [max(s.mem_bytes for s in t.samples) / MB for t in traces]
    if not peaks:
        return {"runs": 0}
    avg = mean(peaks)
    return {"runs": len(peaks), "min_mb": min(peaks), "max_mb": max(peaks), "range_mb": max(peaks) - min(peaks),
            "mean_mb": avg, "cv": statistics.pstdev(peaks) / avg if avg else None}


# --- report -------------------------------------------------------------------------------------------------

def group_key(trace: Trace, by: str) -> str:
    if by == "model":
        return trace.model or "unknown"
    if by == "category":
        return trace.meta.get("category") or "uncategorised"
    if by == "folder":
        return trace.meta.get("folder") or "unknown"
    raise ValueError(f"cannot group by {by!r}: choose one of {', '.join(GROUPINGS)}")


def groups(traces, by: str = "model") -> dict[str, list[Trace]]:
    """Traces per group (sorted names), plus "all" when there is more than one group."""
    out: dict[str, list[Trace]] = defaultdict(list)
    for t in traces:
        out[group_key(t, by)].append(t)
    out = dict(sorted(out.items()))
    if len(out) > 1:
        out["all"] = list(traces)
    return out


def report(traces, by: str = "model", mem_threshold_mb: float = 300.0, cpu_threshold: float = 50.0,
           slack: float = 0.0) -> dict:
    """Every table for every group: {"by", "runs", "groups": {name: runs}, "tables": {table: {group: ...}}}."""
    grouped = groups(traces, by)
    tables: dict[str, dict] = {name: {} for name in ("latency", "tool_composition", "bash_composition", "phases",
                                                     "resources", "bursts", "bash_spikes", "retry_loops",
                                                     "correlations", "heterogeneity")}
    for g, m in grouped.items():
        tables["latency"][g] = latency_table(m)
        tables["tool_composition"][g] = tool_composition(m)
        tables["bash_composition"][g] = bash_composition(m)
        tables["phases"][g] = phase_distribution(m)
        tables["resources"][g] = resource_table(m, cpu_threshold)
        tables["bursts"][g] = burst_attribution(m, mem_threshold_mb, cpu_threshold, slack)
        tables["bash_spikes"][g] = bash_spikes(m)
        tables["retry_loops"][g] = retry_table(m)
        tables["correlations"][g] = correlations(m)
        tables["heterogeneity"][g] = heterogeneity(m)
    return {"by": by, "runs": len(traces), "groups": {g: len(m) for g, m in grouped.items()},
            "parameters": {"mem_threshold_mb": mem_threshold_mb, "cpu_threshold": cpu_threshold, "slack": slack},
            "tables": tables}


# --- rendering ----------------------------------------------------------------------------------------------

def _fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "r":
        return f"{value:+.2f}"
    if kind == "int":
        return str(int(value))
    return f"{value:.{int(kind)}f}"


# table -> (title, [(key, header, format)])
_COLUMNS = {
    "latency": ("End-to-end latency (mean s per run; share of init+tool+LLM)", [
        ("runs", "runs", "int"), ("init_s", "init s", "1"), ("tool_s", "tool s", "1"), ("llm_s", "LLM s", "1"),
        ("init_share", "init", "%"), ("tool_share", "tool", "%"), ("llm_share", "LLM", "%")]),
    "resources": ("CPU and memory", [
        ("runs", "runs", "int"), ("cpu_mean", "CPU mean %", "1"), ("cpu_above_share", ">50% samples", "%"),
        ("cpu_peak", "CPU peak %", "0"), ("mem_baseline_mb", "baseline MB", "0"), ("mem_avg_mb", "avg MB", "0"),
        ("mem_peak_mb", "peak MB", "0"), ("mem_peak_max_mb", "max peak MB", "0"),
        ("peak_avg_mean", "peak/avg", "2"), ("peak_avg_max", "peak/avg max", "2"),
        ("rate_p95", "dMem P95 MB/s", "1"), ("rate_max", "dMem max MB/s", "0")]),
    "bursts": ("Burst attribution (samples inside tool calls)", [
        ("runs", "runs", "int"), ("mem_bursts", "mem bursts", "int"), ("mem_in_calls", "mem in calls", "%"),
        ("mem_at_startup", "mem at startup", "%"), ("cpu_bursts", "CPU bursts", "int"),
        ("cpu_in_calls", "CPU in calls", "%"), ("cpu_at_startup", "CPU at startup", "%"),
        ("samples_in_calls", "all samples in calls", "%"), ("time_in_calls", "time in calls", "%")]),
    "retry_loops": ("Retry loops (3+ identical Bash commands in a row)", [
        ("runs", "runs", "int"), ("runs_with_loops", "runs with loops", "int"), ("runs_share", "share", "%"),
        ("groups", "groups", "int"), ("groups_per_run", "groups/run", "2"), ("longest", "longest", "int"),
        ("bash_time_share", "Bash time", "%")]),
    "correlations": ("Correlations (Pearson r across runs)", [
        ("output_tokens_vs_peak_mem", "tokens~peak mem", "r"), ("output_tokens_vs_exec_time", "tokens~time", "r"),
        ("rounds_vs_peak_mem", "rounds~peak mem", "r"), ("rounds_vs_exec_time", "rounds~time", "r"),
        ("n_rounds_vs_exec_time", "n", "int"), ("cpu_mem_r_mean", "CPU~mem per run (mean)", "r"),
        ("cpu_mem_r_working_mean", "same, from 1st call", "r")]),
    "heterogeneity": ("Peak memory heterogeneity across runs", [
        ("runs", "runs", "int"), ("min_mb", "min MB", "0"), ("max_mb", "max MB", "0"), ("range_mb", "range MB", "0"),
        ("mean_mb", "mean MB", "0"), ("cv", "CV", "2")]),
}
_NESTED = {
    "tool_composition": ("Tool time by tool", [("calls", "calls", "int"), ("time_s", "time s", "0"),
                                               ("share", "share", "%"), ("mean_s", "mean s/call", "2")]),
    "bash_composition": ("Bash time by command category", [("calls", "calls", "int"), ("time_s", "time s", "0"),
                                                          ("share", "share", "%"), ("mean_s", "mean s/call", "2")]),
    "bash_spikes": ("Memory spike during Bash calls (max in call - at start)", [
        ("calls", "calls seen", "int"), ("p50_mb", "P50 MB", "0"), ("p95_mb", "P95 MB", "0"),
        ("max_mb", "max MB", "0")]),
}


def make_console():
    """A rich console; piped or redirected output gets 170 columns instead of being squeezed into 80."""
    from rich.console import Console
    console = Console()
    return console if console.is_terminal else Console(width=170)


def render(rep: dict, console=None) -> None:
    """Print a report as rich tables."""
    from rich.table import Table
    console = console or make_console()
    tables = rep["tables"]
    console.print(f"[bold]{rep['runs']} runs[/] grouped by {rep['by']}: "
                  + ", ".join(f"{g} ({n})" for g, n in rep["groups"].items()))
    for name, (title, cols) in _COLUMNS.items():
        table = Table(title=title, title_justify="left")
        table.add_column(rep["by"])
        for _, header, _ in cols:
            table.add_column(header, justify="right")
        for g, row in tables[name].items():
            table.add_row(g, *(_fmt(row.get(k), f) for k, _, f in cols))
        console.print(table)
    for name, (title, cols) in _NESTED.items():
        table = Table(title=title, title_justify="left")
        table.add_column(rep["by"])
        table.add_column("kind")
        for _, header, _ in cols:
            table.add_column(header, justify="right")
        for g, rows in tables[name].items():
            for kind, row in rows.items():
                table.add_row(g, kind, *(_fmt(row.get(k), f) for k, _, f in cols))
            table.add_section()
        console.print(table)
    table = Table(title=f"Tool mix over {PHASES} phases of a run (share of calls; top 3 per phase)",
                  title_justify="left")
    table.add_column(rep["by"])
    for i in range(PHASES):
        table.add_column(f"{10 * i}-{10 * (i + 1)}%")
    for g, phases in tables["phases"].items():
        table.add_row(g, *("\n".join(f"{k} {100 * v:.0f}%" for k, v in list(p.items())[:3]) for p in phases))
        table.add_section()
    console.print(table)


def figures(rep: dict, traces, outdir: str | Path, by: str | None = None) -> list[Path]:
    """Draw the report into PNG files in outdir; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    by = by or rep["by"]
    tables = rep["tables"]
    names = [g for g in rep["groups"] if g != "all"]
    written = []

    def save(fig, name):
        path = outdir / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 4))
    bottom = [0.0] * len(names)
    for part in ("init", "tool", "llm"):
        values = [tables["latency"][g].get(f"{part}_s") or 0.0 for g in names]
        ax.bar(names, values, bottom=bottom, label=part)
        bottom = [a + b for a, b in zip(bottom, values)]
    ax.set_ylabel("mean seconds per run")
    ax.set_title("End-to-end latency split")
    ax.legend()
    save(fig, "latency_split.png")

    for table, title, fname in (("tool_composition", "Share of tool time by tool", "tool_time.png"),
                                ("bash_composition", "Share of Bash time by category", "bash_time.png")):
        kinds = sorted({k for g in names for k in tables[table][g]})
        fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(kinds) * max(1, len(names))), 4))
        width = 0.8 / max(1, len(names))
        for i, g in enumerate(names):
            ax.bar([x + i * width for x in range(len(kinds))],
                   [(tables[table][g].get(k) or {}).get("share") or 0 for k in kinds], width, label=g)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(kinds))], kinds, rotation=45, ha="right")
        ax.set_ylabel("share of summed call time")
        ax.set_title(title)
        ax.legend()
        save(fig, fname)

    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 4), squeeze=False)
    overall: Counter = Counter()
    for g in names:
        for p in tables["phases"][g]:
            overall.update(p)
    colours = {tool: f"C{i}" for i, (tool, _) in enumerate(overall.most_common(8))}  # same colour in every panel
    for ax, g in zip(axes[0], names):
        phases = tables["phases"][g]
        tools = [t for t in colours if any(t in p for p in phases)]
        bottom = [0.0] * len(phases)
        for tool in tools:
            values = [p.get(tool, 0.0) for p in phases]
            ax.bar(range(1, len(phases) + 1), values, bottom=bottom, label=tool, color=colours[tool])
            bottom = [a + b for a, b in zip(bottom, values)]
        ax.set_title(f"{g}: tool mix by run phase")
        ax.set_xlabel("phase (tenth of the run)")
        if tools:
            ax.legend(fontsize=7)
    save(fig, "phases.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for g in names:
        members = [t for t in traces if group_key(t, by) == g]
        stats = [memory_stats(t) for t in members]
        ax.scatter([s["avg_mb"] for s in stats], [s["peak_mb"] for s in stats], label=g, s=14)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("average memory per run (MB)")
    ax.set_ylabel("peak memory per run (MB)")
    ax.set_title("Peak vs average memory")
    ax.legend()
    save(fig, "memory_peak_vs_avg.png")

    kinds = sorted({k for g in names for k in tables["bash_spikes"][g]})
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(kinds) * max(1, len(names))), 4))
    width = 0.8 / max(1, len(names))
    for i, g in enumerate(names):
        ax.bar([x + i * width for x in range(len(kinds))],
               [(tables["bash_spikes"][g].get(k) or {}).get("p95_mb") or 0 for k in kinds], width, label=g)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(kinds))], kinds, rotation=30, ha="right")
    ax.set_ylabel("P95 memory spike (MB)")
    ax.set_title("Memory spike during Bash calls")
    ax.legend()
    save(fig, "bash_spikes.png")

    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 4))
    ax.boxplot([[max(s.mem_bytes for s in t.samples) / MB for t in traces if group_key(t, by) == g] or [0]
                for g in names])
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel("peak memory per run (MB)")
    ax.set_title("Peak memory across runs")
    save(fig, "peak_memory.png")
    return written
