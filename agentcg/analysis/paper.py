"""The AgentCgroup paper's characterization metrics, computed the way the paper's analysis defines them.

The definitions are stated in ../shared/design/characterization.md; agentcg's own (agentcg.analysis.analyze) differ
in several places and README.md ("Characterizing agent runs") says where and why. The paper's definitions need raw
fields a `Trace` does not keep (the `summary` block of resources.json, results.json's `claude_time`, every
trace.jsonl record's timestamp and usage), so this module reads the run files itself, reusing the trace importer's
value parsers (memory strings, ISO times, call inputs).

Conventions: shares are fractions in [0, 1]; memory is in MB of 10^6 bytes (podman's unit); times in seconds on the
epoch clock (sample `epoch`, tool-call times in UTC); a sample at time t is inside a call when start <= t <= end.

One of the paper's memory parsers drops a digit (see paper_mem_mb). The figures it was used for (memory bursts,
Bash spikes, retry memory growth) are computed correctly and, beside them with the suffix `_as_paper_parsed`, as
that parser reads the samples, so the difference shows.
"""
from __future__ import annotations

import bisect
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from agentcg.analysis import analyze
from agentcg.analysis.analyze import mean, pearson
from agentcg.config import parse_json, read_text
from agentcg.stats import percentile
from agentcg.workloads.traces import (TraceError, command_of, finite_number, jsonl_records, parse_cpu, parse_mem,
                                      parse_time)
from agentcg.workloads.traces import load_run as load_trace

MB = 1_000_000
DATASETS = {"haiku": "all_images_haiku", "glm": "all_images_local"}
BATCH = "batch_swebench_18tasks"
MIN_SAMPLES, MIN_DURATION_S = 10, 60.0
MEM_BURST_MB, CPU_BURST_PCT, CPU_HIGH_PCT = 300.0, 30.0, 50.0
RETRY_MIN = 3
SPIKE_MIN_S = 0.1
PAPER_SUFFIX = "_as_paper_parsed"

# Bash categories: (name, pattern over the lowercased command). Two orders, first match wins.
_TEST = ("Test", r"\bpytest\b|python[0-9.]*\s+-m\s+pytest|\btox\b|\bnose|\bunittest\b")
_GIT = ("Git", r"\bgit\s+(diff|log|status|show|add|commit|checkout|stash|branch|reset)\b")
_INSTALL = ("Package install", r"\bpip[0-9.]*\s+install\b|\bconda\s+install\b|\bapt\b|\bapt-get\b|\byum\b")
_FILES = ("File exploration", r"\b(ls|find|tree|wc|du|df)\b")
_SNIPPET = ("Python snippet", r"\bpython[0-9.]*\s+-c\b")
_PYTHON = ("Python run", r"\bpython")
_TEXT = ("Text processing", r"\b(cat|head|tail|grep|sed|awk)\b")
_SHELL = ("Shell/environment", r"\b(cd|source|export|chmod|mkdir)\b")
OTHER = "Other"
TIME_ORDER = tuple((n, re.compile(p)) for n, p in (_TEST, _GIT, _INSTALL, _FILES, _SNIPPET, _PYTHON, _TEXT, _SHELL))
SPIKE_ORDER = tuple((n, re.compile(p)) for n, p in (_TEST, _INSTALL, _GIT, _SNIPPET, _PYTHON, _FILES, _TEXT))


# --- reading the run files ----------------------------------------------------------------------------------

_BUGGY_FACTORS = {"kb": 1 / 1024, "mb": 1.0, "gb": 1024.0}


def paper_mem_mb(text) -> float:
    """A memory string as the paper's burst/spike/retry parser reads it, in MB: for a two-letter unit (kB, MB, GB)
    it cuts the last three characters, so the number loses its last digit ("264.5MB" -> 264, "300MB" -> 30,
    "1GB" -> nothing, read as 0), then scales kB by 1/1024 and GB by 1024. Other units are read correctly."""
    usage = str(text).split("/", 1)[0].strip()
    unit = usage.lstrip("0123456789.").strip().lower()
    if unit not in _BUGGY_FACTORS:
        return parse_mem(usage) / MB
    try:
        return float(usage[:-3]) * _BUGGY_FACTORS[unit]
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Call:
    """One tool_calls.json entry on the epoch clock (start/end None when unreadable)."""
    tool: str
    start: float | None
    end: float | None
    command: str | None = None

    @property
    def duration(self) -> float:
        """end - start in seconds; 0 when either is unknown."""
        if self.start is None or self.end is None:
            return 0.0
        return max(self.end - self.start, 0.0)

    @property
    def span(self) -> tuple[float, float]:
        return (self.start, self.end if self.end is not None else self.start)


@dataclass
class Transcript:
    """What the paper reads from trace.jsonl: first and last record timestamp, and per `assistant` record (one a
    content block, no de-duplication) the count and the summed `message.usage.output_tokens`."""
    first: float | None = None
    last: float | None = None
    rounds: int = 0
    output_tokens: int = 0
    bad_lines: int = 0

    @property
    def active_time(self) -> float | None:
        return self.last - self.first if self.first is not None else None


@dataclass
class Run:
    """One attempt directory, read raw. Sample lists are parallel and sorted by epoch."""
    task: str
    attempt: str
    path: Path
    summary: dict
    epochs: list[float]
    mem_mb: list[float]
    mem_mb_paper: list[float]
    cpu: list[float]
    calls: list[Call] | None = None  # None: no readable tool_calls.json
    claude_time: float | None = None
    results_peak_mb: float | None = None
    transcript: Transcript | None = None
    notes: list[str] = field(default_factory=list)

    def mem(self, paper_parsed: bool = False) -> list[float]:
        return self.mem_mb_paper if paper_parsed else self.mem_mb


def _json(path: Path):
    return parse_json(read_text(path, TraceError), path.name, TraceError)


def _dig(data, *keys):
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _epoch(text) -> float | None:
    try:
        value, aware = parse_time(text)
    except (TypeError, ValueError):
        return None
    return value if aware else None  # the recorded call and transcript times are UTC ("Z")


def read_transcript(path: Path) -> Transcript:
    out = Transcript()
    for _, entry in jsonl_records(path):
        if entry is None:
            out.bad_lines += 1
            continue
        t = _epoch(entry.get("timestamp")) if "timestamp" in entry else None
        if t is not None:
            out.first = t if out.first is None else min(out.first, t)
            out.last = t if out.last is None else max(out.last, t)
        if entry.get("type") == "assistant":
            out.rounds += 1
            tokens = finite_number(_dig(entry, "message", "usage", "output_tokens"))
            out.output_tokens += int(tokens or 0)
    return out


def _read_calls(path: Path, notes: list[str]) -> list[Call]:
    raw = _json(path)
    if not isinstance(raw, list):
        raise TraceError("tool_calls.json: expected a list of calls")
    calls = []
    for c in raw:
        if not isinstance(c, dict) or not isinstance(c.get("tool"), str):
            notes.append("tool_calls.json: an entry without a tool name dropped")
            continue
        command, _ = command_of(c.get("input"))
        calls.append(Call(c["tool"], _epoch(c.get("timestamp")), _epoch(c.get("end_timestamp")), command))
    return calls


def load_run(attempt_dir: str | Path) -> Run:
    """Read one attempt directory. TraceError (the reason) when resources.json is missing, malformed or has no
    `summary`; missing or broken tool_calls.json, results.json or trace.jsonl leave those parts None (with a note)."""
    path = Path(attempt_dir)
    if not (path / "resources.json").is_file():
        raise TraceError("resources.json missing")
    resources = _json(path / "resources.json")
    if not isinstance(resources, dict) or not isinstance(resources.get("summary"), dict):
        raise TraceError("resources.json: no summary block")
    points, dropped = [], 0
    for s in resources.get("samples") if isinstance(resources.get("samples"), list) else ():
        try:
            epoch = finite_number(s["epoch"])
            if epoch is None:
                raise ValueError("no epoch")
            points.append((epoch, parse_mem(s["mem_usage"]) / MB, paper_mem_mb(s["mem_usage"]),
                           parse_cpu(s["cpu_percent"])))
        except (KeyError, TypeError, ValueError):
            dropped += 1
    points.sort(key=lambda p: p[0])
    run = Run(path.parent.name, path.name, path, resources["summary"], [p[0] for p in points],
              [p[1] for p in points], [p[2] for p in points], [p[3] for p in points])
    if dropped:
        run.notes.append(f"resources.json: {dropped} unreadable sample(s) dropped")
    for name, read in (("tool_calls.json", lambda p: _read_calls(p, run.notes)), ("results.json", _json),
                       ("trace.jsonl", read_transcript)):
        if not (path / name).is_file():
            run.notes.append(f"{name} missing")
            continue
        try:
            value = read(path / name)
        except (TraceError, OSError) as e:
            run.notes.append(f"{name}: {e}")
            continue
        if name == "tool_calls.json":
            run.calls = value
        elif name == "results.json":
            run.claude_time = finite_number(_dig(value, "claude_time"))
            run.results_peak_mb = finite_number(_dig(value, "resource_samples", "summary", "memory_mb", "max"))
        else:
            run.transcript = value
    return run


# --- data sets ----------------------------------------------------------------------------------------------

def latest_attempt(task_dir: Path) -> Path | None:
    """The task's last `attempt_*` directory, the names sorted as strings (so attempt_10 sorts before attempt_2)."""
    attempts = sorted(p.name for p in task_dir.glob("attempt_*") if p.is_dir())
    return task_dir / attempts[-1] if attempts else None


def invalid_reason(run: Run) -> str | None:
    """The paper's validity filter: summary.sample_count >= 10 and summary.duration_seconds >= 60 (last minus first
    sample epoch, as the recorder wrote it). Task success is not required. None when the run passes."""
    count, duration = finite_number(run.summary.get("sample_count")), finite_number(run.summary.get("duration_seconds"))
    if count is None or count < MIN_SAMPLES:
        return f"summary.sample_count {count} < {MIN_SAMPLES}"
    if duration is None or duration < MIN_DURATION_S:
        return f"summary.duration_seconds {duration} < {MIN_DURATION_S:g}"
    return None


@dataclass
class Dataset:
    """A folder's runs at their latest attempt: `runs` (by task) pass the filter, `skipped` says why the others
    did not; `first` holds each passing task's attempt_1 (the run itself when that is the latest)."""
    name: str
    folder: Path
    runs: dict[str, Run] = field(default_factory=dict)
    first: dict[str, Run] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    task_dirs: int = 0


def load_dataset(folder: str | Path, name: str | None = None, validate: bool = True) -> Dataset:
    """Every task directory of a folder at its latest attempt; with validate, only the runs passing the paper's
    filter are kept. Unreadable runs are reported in `skipped`, never raised."""
    folder = Path(folder)
    ds = Dataset(name or folder.name, folder)
    for task_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else ():
        ds.task_dirs += 1
        attempt = latest_attempt(task_dir)
        if attempt is None:
            ds.skipped[task_dir.name] = "no attempt_* directory"
            continue
        try:
            run = load_run(attempt)
        except TraceError as e:
            ds.skipped[task_dir.name] = str(e)
            continue
        reason = invalid_reason(run) if validate else None
        if reason:
            ds.skipped[task_dir.name] = reason
            continue
        ds.runs[task_dir.name] = run
        first = run if attempt.name == "attempt_1" else _try_load(task_dir / "attempt_1")
        if first is not None:
            ds.first[task_dir.name] = first
    return ds


def _try_load(path: Path) -> Run | None:
    try:
        return load_run(path) if path.is_dir() else None
    except TraceError:
        return None


def common_tasks(a: Dataset, b: Dataset) -> list[str]:
    """Tasks valid in both data sets (the cross-model comparisons use these)."""
    return sorted(set(a.runs) & set(b.runs))


def _sampled(runs, min_samples: int = MIN_SAMPLES):
    return [r for r in runs if len(r.epochs) >= min_samples]


# --- latency split ------------------------------------------------------------------------------------------

def tool_time(run: Run) -> float:
    """Sum of per-call durations over all tool types (sub-agent calls included, parallel calls each in full)."""
    return sum(c.duration for c in run.calls or ())


def task_latency(run: Run) -> dict | None:
    """A task's split of claude_time (results.json): active = last minus first trace.jsonl timestamp,
    r = tool_time / active; init = (claude - active) / claude, tool = active * r / claude,
    llm = active * (1 - r) / claude. None when claude_time, the transcript or the tool calls are missing."""
    active = run.transcript.active_time if run.transcript else None
    if not run.claude_time or not active or run.calls is None:
        return None
    r = tool_time(run) / active
    return {"init": (run.claude_time - active) / run.claude_time, "tool": active * r / run.claude_time,
            "llm": active * (1 - r) / run.claude_time}


def latency_split(runs) -> dict:
    """Unweighted means over tasks of the init, tool and LLM shares (task_latency)."""
    rows = [x for x in map(task_latency, runs) if x]
    return {"tasks": len(rows), **{f"{part}_share": mean(x[part] for x in rows) for part in ("init", "tool", "llm")}}


# --- CPU ----------------------------------------------------------------------------------------------------

def cpu_avg(runs) -> float | None:
    """Mean over tasks of summary.cpu_percent.avg (percent of one core; podman's since-start running average)."""
    return mean(v for v in (finite_number(_dig(r.summary, "cpu_percent", "avg")) for r in runs) if v is not None)


def cpu_samples_over(runs, threshold: float = CPU_HIGH_PCT) -> float | None:
    """Every sample of every task pooled: the fraction strictly above `threshold` %."""
    cpu = [c for r in runs for c in r.cpu]
    return sum(c > threshold for c in cpu) / len(cpu) if cpu else None


# --- tool-time fraction and bursts --------------------------------------------------------------------------

def in_calls(run: Run) -> list[bool]:
    """Per sample: does its epoch lie inside [start, end] (inclusive) of any tool call of any type."""
    spans = analyze.Spans(c.span for c in run.calls or () if c.start is not None)
    return [t in spans for t in run.epochs]


def tool_bursts(runs, paper_parsed: bool = False) -> dict:
    """Pooled over the samples of the tasks with at least 10 samples and their tool calls: tool-time fraction =
    samples inside calls / all samples; a memory burst is a sample above 300 MB (absolute), a CPU burst one above
    30 %; burst share = bursts inside calls / all bursts; concentration = burst share / tool-time fraction."""
    runs = [r for r in _sampled(runs) if r.calls is not None]
    n = inside = 0
    counts = {"mem": [0, 0], "cpu": [0, 0]}
    for r in runs:
        for hit, mem, cpu in zip(in_calls(r), r.mem(paper_parsed), r.cpu):
            n += 1
            inside += hit
            for kind, burst in (("mem", mem > MEM_BURST_MB), ("cpu", cpu > CPU_BURST_PCT)):
                counts[kind][0] += burst
                counts[kind][1] += burst and hit
    fraction = inside / n if n else None
    out = {"tasks": len(runs), "samples": n, "tool_time_fraction": fraction}
    for kind, (total, hit) in counts.items():
        share = hit / total if total else None
        out[f"{kind}_bursts"] = total
        out[f"{kind}_bursts_in_tool_calls"] = share
        out[f"{kind}_concentration"] = share / fraction if share is not None and fraction else None
    return out


# --- retry loops --------------------------------------------------------------------------------------------

def retry_groups(calls) -> list[list[Call]]:
    """Maximal runs of 3 or more consecutive Bash entries in tool_calls.json order, over the entries with a
    readable start time; any other tool breaks a run. Commands are not compared."""
    groups, run = [], []
    for c in [c for c in calls if c.start is not None] + [None]:
        if c is not None and c.tool == "Bash":
            run.append(c)
            continue
        if len(run) >= RETRY_MIN:
            groups.append(run)
        run = []
    return groups


def group_mem_growth(run: Run, group: list[Call], paper_parsed: bool = False) -> float | None:
    """Memory of the first sample at or after the group's end minus that of the last sample at or before its
    start (MB); None when either sample does not exist."""
    mem = run.mem(paper_parsed)
    start, end = group[0].start, max(c.span[1] for c in group)
    before = bisect.bisect_right(run.epochs, start) - 1
    after = bisect.bisect_left(run.epochs, end)
    if before < 0 or after >= len(run.epochs):
        return None
    return mem[after] - mem[before]


def task_retries(run: Run) -> dict:
    """A task's retry groups: count, retry time (Bash durations inside groups), retry share = retry time /
    max(claude_time, 1) (None without claude_time), largest group, and memory growth = the sum of the positive
    per-group growths (group_mem_growth), correct and as the paper's parser reads memory."""
    groups = retry_groups(run.calls or ())
    time = sum(c.duration for g in groups for c in g)
    out = {"groups": len(groups), "time_s": time, "largest": max(map(len, groups), default=0),
           "share": time / max(run.claude_time, 1.0) if run.claude_time is not None else None}
    for key, bugged in (("mem_growth_mb", False), ("mem_growth_mb" + PAPER_SUFFIX, True)):
        growths = [group_mem_growth(run, g, bugged) for g in groups]
        out[key] = sum(g for g in growths if g is not None and g > 0)
    return out


def retry_table(runs) -> dict:
    """Over tasks with tool calls and at least 10 samples: the fraction with at least one group; over the tasks
    with groups, the mean group count, mean retry share and mean memory growth; the largest group anywhere."""
    rows = [task_retries(r) for r in _sampled(runs) if r.calls]
    hit = [x for x in rows if x["groups"]]
    out = {"tasks": len(rows), "retry_task_share": len(hit) / len(rows) if rows else None,
           "retry_groups_per_task": mean(x["groups"] for x in hit),
           "retry_max_consecutive": max((x["largest"] for x in hit), default=0),
           "retry_time_share": mean(x["share"] for x in hit if x["share"] is not None)}
    for key in ("mem_growth_mb", "mem_growth_mb" + PAPER_SUFFIX):
        out["retry_" + key] = mean(x[key] for x in hit)
    return out


# --- Bash categories ----------------------------------------------------------------------------------------

def bash_category(command: str | None, order=TIME_ORDER) -> str:
    """The first category of `order` whose pattern matches the lowercased full command; Other when none does."""
    low = (command or "").lower()
    return next((name for name, pattern in order if pattern.search(low)), OTHER)


def _bash(runs):
    return [(r, c) for r in runs for c in r.calls or () if c.tool == "Bash"]


def bash_time_shares(runs) -> dict:
    """Per category (TIME_ORDER): its summed Bash durations / all Bash time."""
    per: dict[str, float] = defaultdict(float)
    for _, c in _bash(runs):
        per[bash_category(c.command, TIME_ORDER)] += c.duration
    total = sum(per.values())
    return {k: v / total for k, v in sorted(per.items(), key=lambda kv: -kv[1])} if total else {}


def call_spike(run: Run, call: Call, paper_parsed: bool = False) -> float | None:
    """A Bash call's memory spike (MB): the largest sample inside [start, end] minus the last sample strictly
    before start (the first sample inside when there is none); may be negative. None for a call shorter than
    0.1 s or with no sample inside."""
    if call.start is None or round(call.duration, 6) < SPIKE_MIN_S:  # to the microsecond: epoch floats
        return None
    lo, hi = bisect.bisect_left(run.epochs, call.start), bisect.bisect_right(run.epochs, call.end)
    if lo >= hi:
        return None
    mem = run.mem(paper_parsed)
    return max(mem[lo:hi]) - mem[lo - 1 if lo > 0 else lo]


def bash_spikes(runs, paper_parsed: bool = False) -> dict:
    """Per category (SPIKE_ORDER) with at least 2 observed calls: the P95 of the spikes (linear interpolation)."""
    per: dict[str, list[float]] = defaultdict(list)
    for r, c in _bash(runs):
        spike = call_spike(r, c, paper_parsed)
        if spike is not None:
            per[bash_category(c.command, SPIKE_ORDER)].append(spike)
    return {k: percentile(v, 95) for k, v in sorted(per.items()) if len(v) >= 2}


# --- peak / average and variation (batch) -------------------------------------------------------------------

def peak_avg(run: Run) -> float | None:
    """summary.memory_mb.max / summary.memory_mb.avg."""
    peak, avg = (finite_number(_dig(run.summary, "memory_mb", k)) for k in ("max", "avg"))
    return peak / avg if peak and avg else None


def spike_duration(run: Run) -> int:
    """The longest run of consecutive samples at or above 80 % of the peak (summary.memory_mb.max)."""
    peak = finite_number(_dig(run.summary, "memory_mb", "max")) or 0.0
    longest = streak = 0
    for m in run.mem_mb:
        streak = streak + 1 if m >= 0.8 * peak else 0
        longest = max(longest, streak)
    return longest


def peak_spread(runs) -> dict:
    """Over the tasks' summary maxima (MB): min, max and coefficient of variation = sample standard deviation
    (n - 1) / mean (a fraction; the paper prints it x 100); the task with the highest peak/average and its ratio
    and spike duration."""
    runs = list(runs)
    peaks = [p for p in (finite_number(_dig(r.summary, "memory_mb", "max")) for r in runs) if p is not None]
    ratios = [(x, r) for r, x in ((r, peak_avg(r)) for r in runs) if x is not None]
    top = max(ratios, key=lambda xr: xr[0], default=None)
    avg = mean(peaks)
    return {"tasks": len(runs), "peak_avg_max": top[0] if top else None,
            "peak_avg_max_task": top[1].task if top else None,
            "peak_avg_max_spike_samples": spike_duration(top[1]) if top else None,
            "peak_min_mb": min(peaks, default=None), "peak_max_mb": max(peaks, default=None),
            "peak_cv": statistics.stdev(peaks) / avg if len(peaks) >= 2 and avg else None}


# --- correlations -------------------------------------------------------------------------------------------

def correlations(runs) -> dict:
    """Pearson r across tasks with a transcript: rounds (assistant records) and output tokens (summed per record)
    against peak memory (results.json's resource_samples.summary.memory_mb.max) and execution time
    (claude_time); each over the tasks where both values are known."""
    out = {}
    for x, xv in (("output_tokens", lambda r: r.transcript.output_tokens), ("rounds", lambda r: r.transcript.rounds)):
        for y, yv in (("peak_mem", lambda r: r.results_peak_mb), ("exec_time", lambda r: r.claude_time)):
            pairs = [(xv(r), yv(r)) for r in runs if r.transcript is not None and yv(r) is not None]
            out[f"r_{x}_{y}"] = pearson([a for a, _ in pairs], [b for _, b in pairs])
    return out


# --- the report ---------------------------------------------------------------------------------------------

def dataset_figures(ds: Dataset, common: list[str]) -> dict:
    """Every per-data-set figure, keyed as `agentcg analyze --definitions paper --json` prints it."""
    valid, first = list(ds.runs.values()), list(ds.first.values())
    lat, bursts, bugged = latency_split(valid), tool_bursts(first), tool_bursts(first, paper_parsed=True)
    out = {k: lat[k] for k in ("init_share", "tool_share", "llm_share")}
    out["cpu_avg"] = cpu_avg(ds.runs[t] for t in common)
    out["cpu_samples_over_50"] = cpu_samples_over(valid)
    out["tool_time_fraction"] = bursts["tool_time_fraction"]
    for key, src in (("mem_bursts_in_tool_calls", "mem_bursts_in_tool_calls"), ("burst_concentration",
                                                                                 "mem_concentration")):
        out[key], out[key + PAPER_SUFFIX] = bursts[src], bugged[src]
    out["cpu_bursts_in_tool_calls"] = bursts["cpu_bursts_in_tool_calls"]
    out["cpu_burst_concentration"] = bursts["cpu_concentration"]
    retries = retry_table(first)
    out.update({k: v for k, v in retries.items() if k != "tasks"})
    out["bash_share"] = bash_time_shares(first)
    out["bash_p95_spike_mb"] = bash_spikes(first)
    out["bash_p95_spike_mb" + PAPER_SUFFIX] = bash_spikes(first, paper_parsed=True)
    corr = correlations(first)
    out.update({k: corr[k] for k in ("r_output_tokens_peak_mem", "r_rounds_exec_time", "r_rounds_peak_mem",
                                     "r_output_tokens_exec_time")})
    out["tasks"] = {"valid": len(valid), "attempt_1": len(first), "latency": lat["tasks"],
                    "bursts": bursts["tasks"], "retry": retries["tasks"], "cpu_avg": len(common)}
    return out


def load_all(root: Path) -> tuple[dict[str, Dataset], Dataset]:
    """The two data sets (by the paper's filter) and the batch folder (latest attempts, unfiltered) of a root."""
    sets = {name: load_dataset(root / folder, name) for name, folder in DATASETS.items()}
    return sets, load_dataset(root / BATCH, "batch", validate=False)


def report(root: str | Path, loaded: tuple[dict[str, Dataset], Dataset] | None = None) -> dict:
    """The paper's figures over a traces root holding all_images_haiku, all_images_local and
    batch_swebench_18tasks (a missing folder gives an empty data set); `loaded`: load_all(root), when read already."""
    sets, batch = loaded or load_all(Path(root))
    common = common_tasks(sets["haiku"], sets["glm"])
    datasets = {name: {"tasks": len(ds.runs), "folder": ds.folder.name, "task_dirs": ds.task_dirs,
                       "skipped": dict(ds.skipped)} for name, ds in sets.items()}
    datasets["common"] = {"tasks": len(common)}
    figures = {name: dataset_figures(ds, common) for name, ds in sets.items()}
    figures["batch"] = peak_spread(batch.runs.values())
    figures["batch"]["skipped"] = dict(batch.skipped)
    return {"definitions": "paper", "datasets": datasets, "figures": figures}


# --- agentcg's own definitions under the same keys ----------------------------------------------------------

def ours_figures(traces) -> dict:
    """agentcg's own figures (agentcg.analysis.analyze, its defaults) for the same runs, under the paper's keys
    where a counterpart exists, for `--definitions both`."""
    lat, res = analyze.latency_table(traces), analyze.resource_table(traces)
    bursts, retry, corr = analyze.burst_attribution(traces), analyze.retry_table(traces), analyze.correlations(traces)
    fraction, mem_in = bursts["samples_in_calls"], bursts["mem_in_calls"]
    return {
        "init_share": lat["init_share"], "tool_share": lat["tool_share"], "llm_share": lat["llm_share"],
        "cpu_avg": res["cpu_mean"], "cpu_samples_over_50": res["cpu_above_share"],
        "tool_time_fraction": fraction, "mem_bursts_in_tool_calls": mem_in,
        "burst_concentration": mem_in / fraction if mem_in is not None and fraction else None,
        "cpu_bursts_in_tool_calls": bursts["cpu_in_calls"],
        "retry_task_share": retry["runs_share"], "retry_groups_per_task": retry["groups_per_run"],
        "retry_max_consecutive": retry["longest"], "retry_time_share": retry["bash_time_share"],
        "bash_share": {k: v["share"] for k, v in analyze.bash_composition(traces).items()},
        "bash_p95_spike_mb": {k: v["p95_mb"] for k, v in analyze.bash_spikes(traces).items()},
        "r_output_tokens_peak_mem": corr["output_tokens_vs_peak_mem"],
        "r_rounds_exec_time": corr["rounds_vs_exec_time"], "r_rounds_peak_mem": corr["rounds_vs_peak_mem"],
        "r_output_tokens_exec_time": corr["output_tokens_vs_exec_time"],
    }


def ours_batch(traces) -> dict:
    """agentcg's peak/average and peak-memory spread (resource_table, heterogeneity) under the batch keys."""
    res, het = analyze.resource_table(traces), analyze.heterogeneity(traces)
    return {"tasks": len(traces), "peak_avg_max": res["peak_avg_max"], "peak_min_mb": het.get("min_mb"),
            "peak_max_mb": het.get("max_mb"), "peak_cv": het.get("cv")}


def _traces(runs, root: Path) -> list:
    out = []
    for r in runs:
        try:
            out.append(load_trace(r.path, root))
        except TraceError:
            continue
    return out


def report_both(root: str | Path) -> dict:
    """The paper's report plus `ours`: agentcg's own figures over the same runs (each data set's valid runs at
    their latest attempt; the batch folder's latest attempts)."""
    root = Path(root)
    sets, batch = loaded = load_all(root)
    rep = report(root, loaded)
    rep["definitions"] = "both"
    rep["ours"] = {name: ours_figures(_traces(ds.runs.values(), root)) for name, ds in sets.items()}
    rep["ours"]["batch"] = ours_batch(_traces(batch.runs.values(), root))
    return rep


# --- rendering ----------------------------------------------------------------------------------------------

def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _rows(figures: dict):
    """(label, value) rows, nested dicts flattened to "key CATEGORY"."""
    for key, value in figures.items():
        if key in ("tasks", "skipped"):
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                yield f"{key} {sub}", v
        else:
            yield key, value


def render(rep: dict, console=None) -> None:
    """Print a paper (or both) report as rich tables: one column per data set and definition."""
    from rich.table import Table
    console = console or analyze.make_console()
    ds = rep["datasets"]
    console.print("data sets (paper's validity filter): " + ", ".join(
        f"{name} {d['tasks']}" + (f" of {d['task_dirs']} task dirs" if "task_dirs" in d else "")
        for name, d in ds.items()))
    ours = rep.get("ours", {})
    for group in (("haiku", "glm"), ("batch",)):
        columns = [(name, "paper", rep["figures"][name]) for name in group]
        if ours:
            columns = [c for name in group for c in ((name, "paper", rep["figures"][name]),
                                                      (name, "ours", ours.get(name, {})))]
        table = Table(title="AgentCgroup paper's definitions" + (" beside agentcg's" if ours else ""),
                      title_justify="left")
        table.add_column("figure")
        for name, kind, _ in columns:
            table.add_column(f"{name} {kind}", justify="right")
        labels = list(dict.fromkeys(label for _, _, figs in columns for label, _ in _rows(figs)))
        values = [dict(_rows(figs)) for _, _, figs in columns]
        for label in labels:
            table.add_row(label, *(_cell(v.get(label)) for v in values))
        console.print(table)
    for name in ("haiku", "glm"):
        for task, reason in ds[name].get("skipped", {}).items():
            console.print(f"  skipped {name} {task}: {reason}", highlight=False)
