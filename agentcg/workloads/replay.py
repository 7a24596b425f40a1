"""Replay agent traces as real processes in real cgroups, so resource policies meet realistic workloads.

A controller for agents has to be judged on what agents do: a steady framework footprint, short multi-GB tool
bursts, memory that retry loops never give back. This module turns a `Trace` (recorded or synthetic) into
processes that allocate and free memory along the trace, in the cgroup layout agentcg controls, and measures
what a policy did to them. It runs as root on a cgroup v2 kernel (inside a VM here: the host's hierarchy is
hybrid v1/v2 without controllers).

Layout, per agent, under a parent cgroup that carries the scenario's memory budget (memory.max):

    <parent>/<agent>/agent          the agent process (agentcg.workloads.worker): the trace outside tool calls
    <parent>/<agent>/tools/call-N   one cgroup per tool call, N its index in the trace's call list

Plan (`build_plan`): the trace's memory curve m(t) (linear between samples) is split between the processes so
that they always add up to m(t):
- tool calls that overlap are one call group; the group's memory above the level at its start, L0, belongs to
  one call (the one whose span holds the group's highest sample), the others only live for their duration;
- the call's window runs to the first sample after the group ends (podman samples lag by up to a second: the
  sample showing a burst often comes just after the call returned), unless the next group starts first;
- L0 is the last sample at or before the group starts (as agentcg.analysis.analyze.call_spike measures a spike);
- during a window the agent holds min(m, L0), the call max(0, m - L0); outside, the agent holds m;
- a call in a retry loop (the same Bash command 3+ times in a row, as agentcg.analysis.analyze counts them) whose memory
  has not come back down by the end of its window keeps the rest (`hold`) until the trace drops below L0 + hold/2
  (never, for memory that accumulates): the process stays alive in its call cgroup holding it, and the agent
  holds m minus everything held;
- delegation calls (Task: a sub-agent in the agent's own process) are not tool processes: their memory is the
  agent's. Zero-length calls still get a process (and a cgroup): it starts and exits at once.
The plan is in trace units; `TracePlan.scaled(speed, mem_scale)` divides times by the time acceleration and
multiplies memory by the memory scale (0.05 makes a 4 GB burst 200 MB: a TCG guest with ~2 GB can run it).

Measurements: memory.current of each agent's cgroup sampled during the replay, compared with the (scaled)
trace at the agent's position on its plan (fidelity: mean error relative to the scaled peak, with the trace's
own one-interval time resolution as tolerance; the position comes from the agent's checkpoints, and inside a
tool-call window from the checkpoints of the call that carries it, which runs on its own schedule: `timeline`);
achieved speed (trace duration / wall time / speed, 1 = on schedule); per-chunk allocation latency of every
process;
memory.events (high, max, oom, oom_kill) and memory.pressure stall totals of every cgroup; which process was
OOM-killed (the agent or tool call N); what was frozen at the end; survival and completion time per agent.

Policies plug in through `Policy` (setup / on_tick / teardown). The baselines: `none` (no per-agent control),
`static-avg` (memory.max per agent = the trace's average, memory.oom.group 0 so the OOM killer picks one
process), `static-peak` (memory.max = the trace's peak); the real user-space peers `oomd` and `earlyoom`
(agentcg.eval.peers); `agentcg` and `agentcg-kernel` (agentcg.eval.agentcg_policy).
"""
from __future__ import annotations

import bisect
import ctypes
import json
import math
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import click

from agentcg.harness import slowness
from agentcg.workloads import traces as tracefiles
from agentcg.analysis.analyze import DELEGATION_TOOLS, percentile
from agentcg.cgroup import ROOT as CGROUP_ROOT
from agentcg.cgroup import Cgroup, CgroupError, parse_keyed, parse_pressure
from agentcg.paths import REPO_ROOT
from agentcg.workloads.traces import Trace, TraceError

DEFAULT_SPEED = 50.0
DEFAULT_MEM_SCALE = 0.05
DEFAULT_CHUNK = 256 * 1024
PAGE = 4096
SCENARIO_DIR = REPO_ROOT / "fixtures" / "scenarios"
RECORDED = "recorded:"
COUNTER = "memory.current"  # what the workers steer by and the sampler reads (hierarchical: includes tools/)
PRIORITIES = ("high", "normal", "low")
RETAIN_MIN_BYTES = 8_000_000  # retry-loop memory below this (or 2% of the peak) is not worth a held process
READY_TIMEOUT_S = 120.0  # worker start-up: ~1 s per interpreter under TCG, several starting at once


class ReplayError(Exception):
    """The replay cannot run here or failed to set up; the message says why."""


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message names the file and the problem."""


class SharedTracesMissing(ScenarioError):
    """A `recorded:` trace was asked for and the shared traces directory is not there (skip, do not fail)."""


# --- the trace's memory curve -------------------------------------------------------------------------------

class Curve:
    """A trace's memory as a function of time (seconds since its first sample): linear between samples."""

    def __init__(self, trace: Trace):
        if not trace.samples:
            raise TraceError(f"{trace.name}: no samples")
        t0 = trace.samples[0].t
        self.ts = [s.t - t0 for s in trace.samples]
        self.ms = [s.mem_bytes for s in trace.samples]
        self.duration = self.ts[-1]
        self.peak = max(self.ms)
        self.average = statistics.fmean(self.ms)
        # The recorder's sampling interval: where between two samples memory moved, the trace cannot say.
        gaps = [b - a for a, b in zip(self.ts, self.ts[1:]) if b > a]
        self.resolution = statistics.median(gaps) if gaps else 0.0

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.ts, t)
        if i == 0:
            return float(self.ms[0])
        if i >= len(self.ts):
            return float(self.ms[-1])
        t0, t1, m0, m1 = self.ts[i - 1], self.ts[i], self.ms[i - 1], self.ms[i]
        return m0 if t1 <= t0 else m0 + (m1 - m0) * (t - t0) / (t1 - t0)

    def span(self, a: float, b: float) -> tuple[float, float]:
        """The lowest and highest memory of the trace over [a, b]."""
        values = [self.at(a), self.at(b)] + [self.ms[i] for i in range(bisect.bisect_right(self.ts, a),
                                                                       bisect.bisect_left(self.ts, b))]
        return min(values), max(values)

    def between(self, a: float, b: float) -> list[float]:
        """Sample times strictly inside (a, b)."""
        return self.ts[bisect.bisect_right(self.ts, a):bisect.bisect_left(self.ts, b)]

    def before(self, t: float) -> float:
        """The last sample at or before t (the first sample before the trace starts)."""
        i = bisect.bisect_right(self.ts, t)
        return float(self.ms[max(i - 1, 0)])

    def next_sample(self, t: float) -> float | None:
        i = bisect.bisect_left(self.ts, t)
        return self.ts[i] if i < len(self.ts) else None

    def interval(self) -> float:
        steps = [b - a for a, b in zip(self.ts, self.ts[1:]) if b > a]
        return statistics.median(steps) if steps else 1.0


# --- plan: who holds which memory when ----------------------------------------------------------------------

@dataclass
class CallPlan:
    n: int  # index in trace.calls: the cgroup is tools/call-N
    tool: str
    category: str | None
    group: int
    start: float  # the process starts
    end: float  # the process's active window ends (it exits, or starts holding)
    points: list[tuple[float, int]]  # (time after start, bytes the process holds)
    hold: int = 0  # bytes kept after `end` (retry-loop accumulation); 0: the process exits at end
    release: float | None = None  # when held memory is freed (None: at the end of the run)
    owner: bool = False  # this call's process carries its group's window (its points follow the trace)

    @property
    def peak(self) -> int:
        return max((b for _, b in self.points), default=0)


@dataclass
class TracePlan:
    name: str
    duration: float
    peak: int  # of the trace (scaled with the plan)
    average: int
    agent: list[tuple[float, int]]  # (time, bytes the agent process holds)
    calls: list[CallPlan]
    groups: list[tuple[float, float]]  # (start, end of the window) per call group
    speed: float = 1.0  # 1, 1: trace units
    mem_scale: float = 1.0

    def scaled(self, speed: float, mem_scale: float) -> "TracePlan":
        """The plan in wall seconds and scaled bytes."""
        if speed <= 0 or mem_scale <= 0:
            raise ValueError("speed and mem_scale must be positive")

        def t(x):
            return None if x is None else round(x / speed, 6)

        def b(x):
            return int(round(x * mem_scale))
        calls = [CallPlan(c.n, c.tool, c.category, c.group, t(c.start), t(c.end),
                          [(t(dt), b(v)) for dt, v in c.points], b(c.hold), t(c.release), c.owner)
                 for c in self.calls]
        return TracePlan(self.name, t(self.duration), b(self.peak), b(self.average),
                         [(t(x), b(v)) for x, v in self.agent], calls, [(t(a), t(z)) for a, z in self.groups],
                         self.speed * speed, self.mem_scale * mem_scale)

    def total_at(self, when: float) -> int:
        """What all processes of the plan hold at a time (a check: at sample times, the trace's memory).
        Plan times are rounded to the microsecond: `when` is read as the end of its microsecond."""
        when += 1e-6
        total = _step(self.agent, when)
        for c in self.calls:
            if c.start <= when < c.end:
                total += _step([(c.start + dt, v) for dt, v in c.points], when)
            elif c.hold and when >= c.end and (c.release is None or when < c.release):
                total += c.hold
        return total


def _step(points: list[tuple[float, int]], when: float) -> int:
    """The value of the last point at or before `when` (0 before the first)."""
    i = bisect.bisect_right([p[0] for p in points], when)
    return points[i - 1][1] if i else 0


def retry_members(trace: Trace, min_repeat: int = 3) -> set[int]:
    """Indices of the Bash calls in streaks of min_repeat or more identical commands (the rule of
    agentcg.analysis.analyze.retry_groups: other tools in between do not break a streak)."""
    members: set[int] = set()
    streak: list[int] = []
    bash = [(i, c) for i, c in enumerate(trace.calls) if c.tool == "Bash"] + [(None, None)]
    for i, c in bash:
        cmd = c.command.strip() if c is not None and c.command else None
        if streak and (cmd is None or cmd != trace.calls[streak[0]].command.strip()):
            if len(streak) >= min_repeat:
                members.update(streak)
            streak = []
        if cmd is not None:
            streak.append(i)
    return members


def build_plan(trace: Trace, retain_min: int | None = None) -> TracePlan:
    """Split the trace's memory between the agent process and one process per tool call (module docstring)."""
    curve = Curve(trace)
    t_first = trace.samples[0].t
    duration = curve.duration
    retain_min = retain_min if retain_min is not None else max(RETAIN_MIN_BYTES, int(0.02 * curve.peak))
    retries = retry_members(trace)
    slack = 1.5 * curve.interval()

    calls = []
    for n, c in enumerate(trace.calls):
        start, end = c.start - t_first, c.end - t_first
        if c.tool in DELEGATION_TOOLS or end < 0 or start > duration:
            continue
        calls.append((n, c, max(start, 0.0), min(max(end, start), duration)))
    calls.sort(key=lambda x: (x[2], x[3], x[0]))
    groups: list[list] = []
    for item in calls:
        if groups and item[2] < max(x[3] for x in groups[-1]):
            groups[-1].append(item)
        else:
            groups.append([item])

    plans: list[CallPlan] = []
    windows: list[tuple[float, float, float]] = []  # (start, window end, L0)
    holders: list[tuple[float, int, float | None]] = []  # (from, bytes, until)
    for g, members in enumerate(groups):
        g_start = members[0][2]
        g_end = max(x[3] for x in members)
        next_start = groups[g + 1][0][2] if g + 1 < len(groups) else duration
        after = curve.next_sample(g_end)
        win_end = after if after is not None and after <= min(g_end + slack, next_start) else g_end
        level = curve.before(g_start)  # interpolating would hand half of a burst sample to the agent

        def highest(item):
            _, c, s, e = item
            inside = [curve.at(x) for x in [s, e] + curve.between(s, e)]
            return (max(inside), c.tool == "Bash", e - s)
        owner = max(members, key=highest)
        for item in members:
            n, c, s, e = item
            if item is owner:
                times = [s] + curve.between(s, win_end) + [win_end]
                points = [(round(x - s, 6), int(max(0.0, curve.at(x) - level))) for x in times]
                hold, release = 0, None
                if n in retries:
                    rest = curve.at(win_end) - level
                    if rest > retain_min:
                        hold = int(rest)
                        points[-1] = (points[-1][0], hold)
                        floor = level + rest / 2
                        release = next((x for x in curve.ts if x > win_end and curve.at(x) < floor), None)
                        holders.append((win_end, hold, release))
                plans.append(CallPlan(n, c.tool, c.category, g, s, win_end, points, hold, release, owner=True))
            else:
                plans.append(CallPlan(n, c.tool, c.category, g, s, e, [(0.0, 0), (round(e - s, 6), 0)]))
        windows.append((g_start, win_end, level))

    def held_at(t: float) -> int:
        return sum(b for a, b, z in holders if a <= t and (z is None or t < z))

    starts = [w[0] for w in windows]
    times = sorted(set(curve.ts) | {w[0] for w in windows} | {w[1] for w in windows}
                   | {z for _, _, z in holders if z is not None})
    agent = []
    for t in times:
        i = bisect.bisect_right(starts, t) - 1
        m = curve.at(t)
        if i >= 0 and windows[i][0] <= t < windows[i][1]:
            m = min(m, windows[i][2])
        agent.append((round(t, 6), int(max(0.0, m - held_at(t)))))
    plans.sort(key=lambda p: (p.start, p.n))
    return TracePlan(trace.name, duration, curve.peak, int(curve.average), agent, plans,
                     [(w[0], w[1]) for w in windows])


# At equal times: finish calls, release held ones, set the agent, start calls - except that a group that starts
# and ends at the same time (zero-length calls) is waited for after its calls start.
_ORDER = {"w": 0, "r": 1, "a": 2, "c": 3, "w0": 4}


def worker_events(plan: TracePlan) -> list[dict]:
    """The worker's event list (see agentcg.workloads.worker), in time order."""
    events = [{"t": t, "k": "a", "b": b} for t, b in plan.agent]
    group_start: dict[int, float] = {}
    group_end: dict[int, float] = {}
    releases: dict[float, list[int]] = {}
    for c in plan.calls:
        events.append({"t": c.start, "k": "c", "n": c.n, "g": c.group, "p": [list(p) for p in c.points],
                       "h": c.hold > 0, "o": c.owner})
        group_start[c.group] = min(group_start.get(c.group, c.start), c.start)
        group_end[c.group] = max(group_end.get(c.group, c.end), c.end)
        if c.hold and c.release is not None:
            releases.setdefault(c.release, []).append(c.n)
    events += [{"t": t, "k": "w", "g": g} for g, t in group_end.items()]
    events += [{"t": t, "k": "r", "n": sorted(ns)} for t, ns in releases.items()]

    def key(e):
        rank = _ORDER[e["k"]]
        if e["k"] == "w" and group_start[e["g"]] >= e["t"]:
            rank = _ORDER["w0"]
        return e["t"], rank, e["n"] if e["k"] == "c" else 0
    events.sort(key=key)
    return events


# --- scenarios ----------------------------------------------------------------------------------------------

@dataclass
class AgentSpec:
    name: str
    trace: Trace
    source: str = ""
    priority: str = "normal"

    @property
    def curve(self) -> Curve:
        return Curve(self.trace)


@dataclass
class Scenario:
    name: str
    agents: list[AgentSpec]
    budget_share: float | None = None  # parent memory.max as a share of the summed peaks
    budget_trace_bytes: int | None = None  # that share of the summed peaks, in trace bytes (computed at load time)
    budget_fixed_bytes: int | None = None  # or a fixed parent memory.max (not scaled)
    speed: float = DEFAULT_SPEED
    mem_scale: float = DEFAULT_MEM_SCALE
    description: str = ""
    path: str | None = None

    def peaks(self, mem_scale: float | None = None) -> list[int]:
        """Each agent's peak in bytes, scaled."""
        scale = self.mem_scale if mem_scale is None else mem_scale
        return [int(round(Curve(a.trace).peak * scale)) for a in self.agents]

    def budget_bytes(self, mem_scale: float | None = None) -> int | None:
        """The parent's memory.max for this memory scale (None: no budget)."""
        if self.budget_fixed_bytes is not None:
            return self.budget_fixed_bytes
        if self.budget_trace_bytes is None:
            return None
        scale = self.mem_scale if mem_scale is None else mem_scale
        return int(round(self.budget_trace_bytes * scale))


def agent_name(text: str, taken: set[str]) -> str:
    """A cgroup-safe, unique name ('agent' and 'tools' are fine: they live one level further down): the trailing
    path components of text that fit in 48 characters, joined by '-'."""
    parts = [p for p in (re.sub(r"[^A-Za-z0-9_.-]+", "-", x).strip("-.") for x in text.split("/")) if p]
    base = ""
    for part in reversed(parts):
        candidate = f"{part}-{base}" if base else part
        if len(candidate) > 48:
            break
        base = candidate
    base = base or (parts[-1][-48:].lstrip("-.") if parts else "") or "agent"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def resolve_trace(ref: str, base_dir: Path | None = None, traces_root: Path | None = None) -> tuple[Trace, str]:
    """(trace, source) for `recorded:<folder>/<task>[/<attempt>]` (in the shared traces; attempt_1 when the task
    has attempts), a recorded run directory, or an agentcg-trace/1 file (absolute, relative to the repository,
    or relative to base_dir). ScenarioError when it cannot be found or read."""
    if ref.startswith(RECORDED):
        root = Path(traces_root) if traces_root is not None else tracefiles.default_root()
        rel = ref[len(RECORDED):].strip("/")
        if not root.is_dir():
            raise SharedTracesMissing(f"{ref}: the shared traces directory {root} does not exist "
                                      f"(set {tracefiles.TRACES_ENV} or run where ../shared/traces is present)")
        run_dir = root / rel
        if run_dir.is_dir() and not (run_dir / "resources.json").is_file() and (run_dir / "attempt_1").is_dir():
            run_dir = run_dir / "attempt_1"
        if not rel or not run_dir.is_dir():
            raise ScenarioError(f"unknown trace {ref!r}: no run directory {run_dir}")
        try:
            return tracefiles.load_run(run_dir, root), ref
        except TraceError as e:
            raise ScenarioError(f"trace {ref!r}: {e}") from None
    path = Path(ref)
    candidates = [path] if path.is_absolute() else [REPO_ROOT / path] + ([Path(base_dir) / path] if base_dir else [])
    for p in candidates:
        if p.is_dir():
            try:
                return tracefiles.load_run(p), str(ref)
            except TraceError as e:
                raise ScenarioError(f"trace {ref!r}: {e}") from None
        if p.is_file():
            try:
                return tracefiles.load(p), str(ref)
            except TraceError as e:
                raise ScenarioError(f"trace {ref!r}: {e}") from None
    raise ScenarioError(f"unknown trace {ref!r}: no such file (looked in {', '.join(str(c) for c in candidates)})")


def _positive(value, what: str, where: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f"{where}: {what} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ScenarioError(f"{where}: {what} must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    return float(value)


def load_scenario(path: str | Path, traces_root: Path | None = None) -> Scenario:
    """Read and validate a scenario YAML; budgets are computed from the traces here.

    name: tight                      # optional (default: the file's stem)
    description: ...                 # optional
    speed: 50                        # optional defaults for the replay
    mem_scale: 0.05
    budget: {share_of_peaks: 0.89}   # parent memory.max = share x the summed (scaled) peaks; or {bytes: N}
                                     # (fixed, not scaled); or null / absent: no budget
    agents:
      - trace: recorded:batch_swebench_18tasks/Medical_Bio_Hard   # or fixtures/traces/synth-burst.json
        name: bio-hard               # optional (default: from the trace name)
        priority: high               # high | normal | low (default normal)
    """
    import yaml
    path = Path(path)
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ScenarioError(f"{where}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{where}: invalid YAML ({e})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping at the top level")
    unknown = set(data) - {"name", "description", "speed", "mem_scale", "budget", "agents"}
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    raw_agents = data.get("agents")
    if not isinstance(raw_agents, list) or not raw_agents:
        raise ScenarioError(f"{where}: agents must be a non-empty list")
    speed = _positive(data.get("speed", DEFAULT_SPEED), "speed", where)
    mem_scale = _positive(data.get("mem_scale", DEFAULT_MEM_SCALE), "mem_scale", where)
    agents, taken = [], set()
    for i, raw in enumerate(raw_agents):
        at = f"{where}: agents[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("trace"), str) or not raw["trace"]:
            raise ScenarioError(f"{at}: expected a mapping with a 'trace' string")
        extra = set(raw) - {"trace", "name", "priority"}
        if extra:
            raise ScenarioError(f"{at}: unknown key(s) {', '.join(sorted(extra))}")
        priority = raw.get("priority", "normal")
        if priority not in PRIORITIES:
            raise ScenarioError(f"{at}: priority must be one of {', '.join(PRIORITIES)}, got {priority!r}")
        name = raw.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise ScenarioError(f"{at}: name must be a non-empty string")
        if name is not None and name in taken:
            raise ScenarioError(f"{at}: duplicate agent name {name!r}")
        try:
            trace, source = resolve_trace(raw["trace"], path.parent, traces_root)
        except SharedTracesMissing as e:
            raise SharedTracesMissing(f"{at}: {e}") from None
        except ScenarioError as e:
            raise ScenarioError(f"{at}: {e}") from None
        if name is None:
            name = agent_name(trace.name.replace("/attempt_1", ""), taken)
        else:
            name = agent_name(name, taken)
        agents.append(AgentSpec(name, trace, source, priority))
    share, budget, fixed = None, None, None
    raw_budget = data.get("budget")
    if raw_budget is not None:
        if not isinstance(raw_budget, dict) or len(raw_budget) != 1 or \
                not set(raw_budget) <= {"share_of_peaks", "bytes"}:
            raise ScenarioError(f"{where}: budget must be {{share_of_peaks: F}}, {{bytes: N}} or null")
        if "share_of_peaks" in raw_budget:
            share = _positive(raw_budget["share_of_peaks"], "budget share_of_peaks", where)
            budget = int(round(share * sum(Curve(a.trace).peak for a in agents)))
        else:
            fixed = int(_positive(raw_budget["bytes"], "budget bytes", where))
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: name must be a non-empty string")
    description = data.get("description", "")
    return Scenario(name, agents, share, budget, fixed, speed, mem_scale, str(description or ""), where)


def single(trace: Trace, source: str = "", priority: str = "normal") -> Scenario:
    """A one-agent scenario without a budget (replaying one trace)."""
    return Scenario(trace.name, [AgentSpec(agent_name(trace.name, set()), trace, source, priority)])


# --- policies -----------------------------------------------------------------------------------------------

@dataclass
class AgentCgroups:
    """What a policy sees of one agent: its spec, its (scaled) trace statistics and its cgroups."""
    spec: AgentSpec
    peak: int  # scaled bytes
    average: int
    top: Cgroup  # <parent>/<agent>
    agent: Cgroup  # <parent>/<agent>/agent
    tools: Cgroup  # <parent>/<agent>/tools (tools/call-N appear as the agent makes calls)
    calls: list = field(default_factory=list)  # the plan's CallPlans (scaled): what each call-N will run

    @property
    def name(self) -> str:
        return self.spec.name


class Policy:
    """The seam where a resource policy plugs in. setup() runs once the agents' processes are ready and before
    the replay starts; on_tick() on every sampling tick (elapsed wall seconds); teardown() after the replay,
    before the cgroups are removed. Every decision goes to `actions` with its reason."""
    name = "none"

    def __init__(self):
        self.actions: list[dict] = []

    def setup(self, agents: list[AgentCgroups]) -> None:
        pass

    def on_tick(self, elapsed: float, agents: list[AgentCgroups]) -> None:
        pass

    def teardown(self) -> None:
        pass

    def log(self, agent: str, action: str, reason: str, **values) -> None:
        self.actions.append({"agent": agent, "action": action, "reason": reason, **values})

    def limit_of(self, agent: str) -> int | None:
        """The memory.max this policy set on an agent (None: none)."""
        return None


class NoPolicy(Policy):
    """No per-agent control: the agents share the parent's budget, the kernel decides under pressure."""
    name = "none"


class StaticPolicy(Policy):
    """A container-style fixed limit per agent: memory.max = the trace's average or peak (scaled), with
    memory.oom.group 0, so an agent over its limit loses one process (chosen by the OOM killer) rather than all."""

    def __init__(self, basis: str):
        super().__init__()
        if basis not in ("avg", "peak"):
            raise ValueError(f"basis must be avg or peak, got {basis!r}")
        self.basis = basis
        self.name = f"static-{basis}"
        self.limits: dict[str, int] = {}

    def setup(self, agents: list[AgentCgroups]) -> None:
        for a in agents:
            limit = a.average if self.basis == "avg" else a.peak
            limit = max(-(-limit // PAGE) * PAGE, PAGE)
            a.top.write("memory.oom.group", 0)
            a.top.write("memory.max", limit)
            self.limits[a.name] = limit
            self.log(a.name, "memory.max", f"the trace's {'average' if self.basis == 'avg' else 'peak'} memory",
                     bytes=limit)

    def limit_of(self, agent: str) -> int | None:
        return self.limits.get(agent)


def _agentcg_policy(inkernel: bool = False) -> Policy:
    from agentcg.eval.agentcg_policy import AgentcgPolicy  # the controller, imported only when asked for
    return AgentcgPolicy(inkernel=inkernel)


def _peer_policy(name: str) -> Policy:
    from agentcg.eval import peers  # real user-space peers (Debian's oomd and earlyoom)
    return peers.OomdPolicy() if name == "oomd" else peers.EarlyoomPolicy()


POLICIES: dict[str, Callable[[], Policy]] = {
    "none": NoPolicy,
    "static-avg": lambda: StaticPolicy("avg"),
    "static-peak": lambda: StaticPolicy("peak"),
    "oomd": lambda: _peer_policy("oomd"),
    "earlyoom": lambda: _peer_policy("earlyoom"),
    "agentcg": _agentcg_policy,
    "agentcg-kernel": lambda: _agentcg_policy(inkernel=True),
}


def make_policy(name: str) -> Policy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise ReplayError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})") from None


# --- measurements -------------------------------------------------------------------------------------------

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


def _read(cg: Cgroup, file: str) -> str | None:
    try:
        return cg.read(file)
    except OSError:
        return None


def _events(cg: Cgroup) -> dict[str, int]:
    text = _read(cg, "memory.events")
    return parse_keyed(text) if text else {}


def _stall_ms(cg: Cgroup | None, text: str | None = None) -> dict[str, float] | None:
    """memory.pressure stall totals (some, full) in ms, of a cgroup or of its text; None without PSI."""
    text = _read(cg, "memory.pressure") if cg is not None else text
    if not text:
        return None
    try:
        p = parse_pressure(text)
    except ValueError:
        return None
    return {kind: round(p[kind]["total"] / 1000.0, 3) for kind in ("some", "full") if kind in p}


# --- results ------------------------------------------------------------------------------------------------

@dataclass
class CallResult:
    n: int
    tool: str
    category: str | None
    planned_peak_bytes: int
    hold_bytes: int
    planned_s: float  # the call's active window (wall seconds)
    duration_s: float | None  # how long it really took (fork to exit, or to holding); None: not seen finishing
    status: int | None  # exit status, -signal when killed; None: never seen finishing (its agent died)
    oom_killed: bool
    high_events: int
    stall_ms: dict | None
    latency_ms: dict


@dataclass
class AgentResult:
    name: str
    source: str
    priority: str
    trace_duration_s: float
    planned_s: float  # trace duration / speed
    peak_bytes: int  # of the scaled trace
    average_bytes: int
    memory_max: int | None  # the policy's limit
    survived: bool  # the agent process ran its whole plan and was alive at the end
    completion_s: float | None  # wall seconds from the start to the agent's end
    achieved_speed: float | None  # trace duration / wall time / speed
    delay_s: float | None  # how far the agent's schedule shifted
    exit_status: int | None
    oom_kills: list[dict]  # [{"process": "agent" | "call-N", "category", "count"}]
    frozen: list[str]  # cgroups frozen at the end
    throttle_events: int  # memory.events high of the agent's cgroup
    memory_events: dict
    stall_ms: dict  # memory.pressure totals: {"total": .., "agent": .., "tools": ..}
    alloc_latency_ms: dict  # every chunk of every process of the agent
    agent_alloc_latency_ms: dict
    tool_alloc_latency_ms: dict
    fidelity: dict
    overhead_bytes: int | None  # the agent process's own footprint before it held anything
    calls: list[CallResult] = field(default_factory=list)
    error: str | None = None


@dataclass
class ReplayResult:
    scenario: str
    policy: str
    speed: float
    mem_scale: float
    chunk_bytes: int
    budget_bytes: int | None
    wall_s: float
    agents: list[AgentResult]
    policy_actions: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def all_survived(self) -> bool:
        return all(a.survived for a in self.agents)

    @property
    def oom_kill_count(self) -> int:
        return sum(k["count"] for a in self.agents for k in a.oom_kills)

    @property
    def tool_calls_killed(self) -> int:
        """Tool calls that ended by a signal, whoever sent it (agentcg, a peer, the OOM killer)."""
        return sum(1 for a in self.agents for c in a.calls if c.status is not None and c.status < 0)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)


# --- environment --------------------------------------------------------------------------------------------

def check_environment(parent: Path | None = None, root: Path | None = None) -> None:
    """ReplayError unless this is root on a cgroup v2 hierarchy with the memory controller (at the parent)."""
    root = Path(root) if root is not None else CGROUP_ROOT
    controllers = root / "cgroup.controllers"
    if not controllers.is_file():
        raise ReplayError(f"{root} is not a cgroup v2 hierarchy (no {controllers.name}: a cgroup v1 or hybrid "
                          f"layout); agentcg replay needs cgroup v2 with the memory controller - run it inside a "
                          f"VM (vmtests/test_replay.py) or on a cgroup v2 host")
    if "memory" not in controllers.read_text().split():
        raise ReplayError(f"the memory controller is not available in {root} (cgroup.controllers: "
                          f"{controllers.read_text().strip() or 'empty'})")
    if os.geteuid() != 0:
        raise ReplayError("agentcg replay must run as root: it creates cgroups, sets memory limits and moves "
                          "processes")
    if parent is not None:
        parent = Path(parent)
        where = parent if parent.exists() else parent.parent
        try:
            available = (where / "cgroup.controllers").read_text().split()
        except OSError:
            raise ReplayError(f"{where} is not a cgroup v2 directory") from None
        if "memory" not in available:
            raise ReplayError(f"the memory controller is not enabled for {where} (enable +memory in its parent's "
                              f"cgroup.subtree_control)")


_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def _subreaper(on: bool | None = None) -> bool:
    """Become (or stop being) the reaper of orphaned descendants: tool calls whose agent was killed are
    re-parented here, so they are reaped rather than left as zombies. Returns the previous setting."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        old = ctypes.c_int(0)
        libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(old), 0, 0, 0)
        if on is not None:
            libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
        return bool(old.value)
    except (OSError, AttributeError):
        return False


# --- the replay ---------------------------------------------------------------------------------------------

def worker_plan(plan: TracePlan, cgroups: AgentCgroups, chunk: int, accounting: str) -> dict:
    """The JSON document agentcg.workloads.worker reads."""
    return {"name": plan.name, "speed": plan.speed, "chunk": chunk, "accounting": accounting, "counter": COUNTER,
            "leaf": str(cgroups.agent.path), "tools": str(cgroups.tools.path), "duration": plan.duration,
            "events": worker_events(plan)}


class _Run:
    """One agent during a replay: its worker process, what it reported, what was sampled."""

    def __init__(self, spec: AgentSpec, plan: TracePlan, cgroups: AgentCgroups):
        self.spec, self.plan, self.cg = spec, plan, cgroups
        self.proc: subprocess.Popen | None = None
        self.stderr_path: Path | None = None
        self.buf = b""
        self.ready = False
        self.overhead: int | None = None
        self.ended: dict | None = None
        self.exit_status: int | None = None
        self.checkpoints: list[tuple[float, float]] = []
        self.call_checkpoints: list[tuple[float, float]] = []
        self.agent_lat: list[int] = []
        self.calls: dict[int, dict] = {}
        self.pids: set[int] = set()
        self.samples: list[tuple[float, int]] = []
        self.current_fd: int | None = None
        self.error: str | None = None
        self.finished = False

    def handle(self, event: dict) -> None:
        kind = event.get("ev")
        if kind == "ready":
            self.ready, self.overhead = True, event.get("overhead")
            self.pids.add(event["pid"])
        elif kind == "fork":
            self.pids.add(event["pid"])
        elif kind == "call":
            self.calls[event["n"]] = event
        elif kind == "progress":
            self.checkpoints += [tuple(c) for c in event["cp"]]
            self.call_checkpoints += [tuple(c) for c in event.get("ccp", ())]
            self.agent_lat += event["lat"]
        elif kind == "end":
            self.ended = event

    def read(self) -> None:
        """Take whatever the worker wrote (non-blocking)."""
        if self.proc is None or self.proc.stdout is None:
            return
        while True:
            try:
                data = os.read(self.proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                return
            self.buf += data
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        self.handle(json.loads(line))
                    except ValueError:
                        self.error = f"unreadable worker output: {line[:200]!r}"

    def progress(self) -> float:
        if self.ended:
            return 1.0
        if not self.checkpoints or not self.plan.duration:
            return 0.0
        return min(self.checkpoints[-1][0] / self.plan.duration, 1.0)

    def stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-2000:] if self.stderr_path else ""
        except OSError:
            return ""


def run(agents: list[AgentSpec], parent: Cgroup, policy: Policy | None = None, *, speed: float = DEFAULT_SPEED,
        mem_scale: float = DEFAULT_MEM_SCALE, chunk_bytes: int = DEFAULT_CHUNK, budget_bytes: int | None = None,
        timeout: float | None = None, sample_interval: float | None = None, scenario: str = "replay",
        on_progress: Callable[[str, float], None] | None = None, accounting: str = "cgroup") -> ReplayResult:
    """Replay the agents' traces together under `parent` (which must exist and have the memory controller), with
    the parent's memory.max set to budget_bytes (restored afterwards), under `policy`. Everything created under
    the parent is destroyed before returning, also on errors and KeyboardInterrupt."""
    policy = policy or NoPolicy()
    if hasattr(policy, "mem_scale"):
        policy.mem_scale = mem_scale  # policies that size things in real-world MiB scale them like the replay
    if hasattr(policy, "speed"):
        policy.speed = speed  # and those with durations in trace seconds scale them like the replay's time
    if speed <= 0 or mem_scale <= 0 or chunk_bytes < PAGE:
        raise ReplayError("speed and mem_scale must be positive and the chunk at least one page")
    if budget_bytes is not None and budget_bytes <= 0:
        raise ReplayError(f"budget must be positive, got {budget_bytes}")
    if not agents:
        raise ReplayError("nothing to replay")
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ReplayError(f"agent names must be unique: {names}")
    chunk_bytes = -(-chunk_bytes // PAGE) * PAGE
    plans = [build_plan(a.trace).scaled(speed, mem_scale) for a in agents]
    planned = max(p.duration for p in plans)
    timeout = timeout if timeout is not None else slowness.scaled(4 * planned + 60.0)
    sample_interval = sample_interval if sample_interval is not None else min(0.05, max(1.0 / speed, 0.01))

    runs: list[_Run] = []
    tops: list[Cgroup] = []  # every agent cgroup created, whether or not its run got going
    workdir = Path(tempfile.mkdtemp(prefix="agentcg-replay-"))
    old_budget = _read(parent, "memory.max") if budget_bytes is not None else None
    old_subtree = _read(parent, "cgroup.subtree_control") or ""
    was_subreaper = _subreaper(True)
    errors: list[str] = []
    set_up = False
    try:
        try:
            if "memory" not in old_subtree.split():
                parent.enable("memory")
            if budget_bytes is not None:
                parent.write("memory.max", max(-(-budget_bytes // PAGE) * PAGE, PAGE))
            for spec, plan in zip(agents, plans):
                top = parent.child(spec.name)
                tops.append(top)
                cgroups = AgentCgroups(spec, plan.peak, plan.average, top, top.child("agent"), top.child("tools"),
                                       plan.calls)
                runs.append(_Run(spec, plan, cgroups))
                top.enable("memory")
                cgroups.tools.enable("memory")
        except (OSError, CgroupError) as e:
            raise ReplayError(f"cannot set up the cgroups under {parent.path}: {e}") from e
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
        for i, r in enumerate(runs):
            plan_path = workdir / f"plan-{i}.json"
            plan_path.write_text(json.dumps(worker_plan(r.plan, r.cg, chunk_bytes, accounting)))
            r.stderr_path = workdir / f"worker-{i}.err"
            with open(r.stderr_path, "wb") as err:
                # -S: no site packages (faster start, smaller footprint); the package comes from PYTHONPATH.
                r.proc = r.cg.agent.spawn([sys.executable, "-S", "-m", "agentcg.workloads.worker", str(plan_path)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
            os.set_blocking(r.proc.stdout.fileno(), False)
        _wait_ready(runs, slowness.scaled(READY_TIMEOUT_S + 5 * len(runs)))
        set_up = True
        policy.setup([r.cg for r in runs])
        for r in runs:
            r.current_fd = os.open(r.cg.top.path / COUNTER, os.O_RDONLY)
        t0 = time.monotonic() + 0.1  # every worker is blocked on stdin: a moment to wake them all
        for r in runs:
            try:
                r.proc.stdin.write(f"go {t0!r}\n".encode())
                r.proc.stdin.close()
            except BrokenPipeError:  # died since it was ready: the monitor reports it
                pass
        _monitor(runs, policy, t0, timeout, sample_interval, on_progress, errors)
        results = [_agent_result(r, policy, speed, mem_scale) for r in runs]
        wall = time.monotonic() - t0
    finally:
        try:
            if set_up:
                policy.teardown()
        finally:
            _cleanup(runs, tops, parent, budget_bytes, old_budget, old_subtree, errors)
            _subreaper(was_subreaper)
            shutil.rmtree(workdir, ignore_errors=True)
    return ReplayResult(scenario, policy.name, speed, mem_scale, chunk_bytes, budget_bytes, round(wall, 3), results,
                        policy.actions, errors)


def _wait_ready(runs: list[_Run], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(r.ready for r in runs):
        for r in runs:
            r.read()
            if not r.ready and r.proc.poll() is not None:
                raise ReplayError(f"worker of {r.spec.name} exited ({r.proc.returncode}) before it was ready: "
                                  f"{r.stderr_tail().strip() or 'no output'}")
        if time.monotonic() > deadline:
            raise ReplayError(f"workers not ready within {timeout:.0f} s: "
                              f"{', '.join(r.spec.name for r in runs if not r.ready)}")
        select.select([r.proc.stdout for r in runs if not r.ready], [], [], 0.2)


def _kill_agent(r: _Run) -> None:
    """The agent is gone: its tool calls go with it (as a container's would), and their pids are remembered."""
    r.pids |= _pids_below(r.cg.top)
    try:
        r.cg.top.kill()
    except OSError:
        pass


def _pids_below(cg: Cgroup) -> set[int]:
    pids = set()
    for d, _, _ in os.walk(cg.path):
        try:
            pids |= {int(p) for p in (Path(d) / "cgroup.procs").read_text().split() if int(p) > 0}
        except (OSError, ValueError):
            pass
    return pids


def _monitor(runs: list[_Run], policy: Policy, t0: float, timeout: float, interval: float,
             on_progress: Callable[[str, float], None] | None, errors: list[str]) -> None:
    deadline = t0 + timeout
    next_sample = t0
    last_progress = 0.0
    while not all(r.finished for r in runs):
        now = time.monotonic()
        if now >= next_sample:
            elapsed = now - t0
            for r in runs:
                if not r.finished and r.ended is None and r.current_fd is not None and elapsed >= 0:
                    try:
                        r.samples.append((round(elapsed, 6), int(os.pread(r.current_fd, 64, 0))))
                    except (OSError, ValueError):
                        pass
            policy.on_tick(elapsed, [r.cg for r in runs])
            next_sample += interval
            if next_sample < now:
                next_sample = now + interval
        for r in runs:
            r.read()
            if not r.finished and r.proc.poll() is not None:
                r.read()
                r.finished = True
                r.exit_status = r.proc.returncode
                if r.ended is None or r.exit_status != 0:
                    r.error = r.error or (f"agent process ended with status {r.exit_status} before its plan "
                                          f"finished" if r.ended is None else f"worker exit status {r.exit_status}")
                    tail = r.stderr_tail().strip()
                    if tail and r.exit_status not in (-9, 137):
                        r.error += f": {tail}"
                    _kill_agent(r)
        if on_progress and now - last_progress >= 0.1:
            for r in runs:
                on_progress(r.spec.name, r.progress())
            last_progress = now
        if now > deadline:
            for r in runs:
                if not r.finished:
                    r.error = f"not finished within {timeout:.0f} s (stalled?)"
                    errors.append(f"{r.spec.name}: {r.error}")
                    _kill_agent(r)
                    r.finished = True
            break
        pipes = [r.proc.stdout for r in runs if not r.finished]
        wait = max(min(next_sample, deadline) - time.monotonic(), 0.0)
        if pipes:
            select.select(pipes, [], [], min(wait, 0.05))
    for r in runs:
        r.read()
        if r.proc.poll() is None:  # timed out: the cgroup was killed; collect the status
            try:
                r.exit_status = r.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if on_progress:
            on_progress(r.spec.name, r.progress())


def _agent_result(r: _Run, policy: Policy, speed: float, mem_scale: float) -> AgentResult:
    curve = r.spec.curve
    plan = r.plan
    call_results, tool_lat, kills, frozen = [], [], [], []
    leaf_events = _events(r.cg.agent)
    if leaf_events.get("oom_kill"):
        kills.append({"process": "agent", "category": None, "count": leaf_events["oom_kill"]})
    if _read(r.cg.agent, "cgroup.events") and parse_keyed(_read(r.cg.agent, "cgroup.events")).get("frozen"):
        frozen.append("agent")
    for c in plan.calls:
        cg = Cgroup(r.cg.tools.path / f"call-{c.n}")
        reported = r.calls.get(c.n, {})
        if cg.path.is_dir():  # still there: its agent died before removing it
            events, stall = _events(cg), _stall_ms(cg)
        elif reported:  # reaped and removed by the worker, counters reported
            events = parse_keyed(reported.get("memory_events") or "")
            stall = _stall_ms(None, reported.get("memory_pressure"))
        else:
            continue  # never started
        lat = reported.get("lat", [])
        tool_lat += lat
        oom = events.get("oom_kill", 0) > 0
        if oom:
            kills.append({"process": f"call-{c.n}", "category": c.category or c.tool, "count": events["oom_kill"]})
        ev_text = _read(cg, "cgroup.events") if cg.path.is_dir() else None
        if ev_text and parse_keyed(ev_text).get("frozen"):
            frozen.append(f"call-{c.n}")
        took = round(reported["done"] - reported["start"], 6) if reported else None
        call_results.append(CallResult(c.n, c.tool, c.category, c.peak, c.hold, round(c.end - c.start, 6), took,
                                       reported.get("status"), oom, events.get("high", 0), stall,
                                       latency_summary(lat)))
    top_events = _events(r.cg.top)
    survived = r.ended is not None and r.exit_status == 0
    completion = r.ended["elapsed"] if r.ended else None
    achieved = (curve.duration / (completion * speed)) if completion else None
    return AgentResult(
        name=r.spec.name, source=r.spec.source, priority=r.spec.priority,
        trace_duration_s=round(curve.duration, 3), planned_s=round(plan.duration, 3),
        peak_bytes=plan.peak, average_bytes=plan.average, memory_max=policy.limit_of(r.spec.name),
        survived=survived, completion_s=round(completion, 3) if completion else None,
        achieved_speed=round(achieved, 4) if achieved else None,
        delay_s=r.ended.get("delay") if r.ended else None, exit_status=r.exit_status,
        oom_kills=kills, frozen=frozen, throttle_events=top_events.get("high", 0), memory_events=top_events,
        stall_ms={"total": _stall_ms(r.cg.top), "agent": _stall_ms(r.cg.agent), "tools": _stall_ms(r.cg.tools)},
        alloc_latency_ms=latency_summary(r.agent_lat + tool_lat),
        agent_alloc_latency_ms=latency_summary(r.agent_lat), tool_alloc_latency_ms=latency_summary(tool_lat),
        fidelity=fidelity(r.samples, timeline(r.checkpoints, r.call_checkpoints, plan.groups), curve, speed,
                          mem_scale),
        overhead_bytes=r.overhead, calls=call_results, error=r.error)


def _cleanup(runs: list[_Run], tops: list[Cgroup], parent: Cgroup, budget: int | None, old_budget: str | None,
             old_subtree: str, errors: list[str]) -> None:
    """Destroy every agent cgroup (killing what is left), reap every process, restore the parent."""
    pids: set[int] = set()
    for r in runs:
        if r.current_fd is not None:
            os.close(r.current_fd)
            r.current_fd = None
        pids |= r.pids
        if r.proc is not None and r.proc.stdin and not r.proc.stdin.closed:
            try:
                r.proc.stdin.close()
            except OSError:
                pass
    for top in tops:
        if top.path.exists():
            pids |= _pids_below(top)
        try:
            top.destroy()  # kills what is left, reaps the workers it spawned, removes the tree
        except (OSError, TimeoutError, CgroupError) as e:
            errors.append(f"cleanup of {top.path}: {e}")
    for r in runs:
        if r.proc is not None and r.proc.stdout:
            r.proc.stdout.close()
    _reap_orphans(pids, tops)
    if budget is not None and old_budget is not None:
        try:
            parent.write("memory.max", old_budget.strip())
        except OSError as e:
            errors.append(f"restoring {parent.path}/memory.max: {e}")
    if "memory" not in old_subtree.split():
        try:
            parent.write("cgroup.subtree_control", "-memory")
        except OSError:
            pass  # still in use by other children of the parent: leave it on


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cgroup_of(pid: int) -> str | None:
    """The v2 cgroup path of a process, zombies included (a zombie keeps its cgroup until it is reaped, though
    it no longer shows in cgroup.procs)."""
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].removesuffix(" (deleted)")
    except OSError:
        pass
    return None


def _orphans_from(tops: list[Cgroup]) -> set[int]:
    """Our children that lived in one of the agent cgroups: tool calls re-parented to us (their subreaper) when
    their agent died, possibly before we ever saw their pid (a call forked just before an OOM kill)."""
    me = os.getpid()
    roots = [("/" + str(t.path.relative_to(CGROUP_ROOT))).rstrip("/") for t in tops
             if t.path.is_relative_to(CGROUP_ROOT)]
    if not roots:
        return set()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or _ppid(int(entry.name)) != me:
            continue
        where = _cgroup_of(int(entry.name))
        if where is not None and any(where == r or where.startswith(r + "/") for r in roots):
            found.add(int(entry.name))
    return found


def _reap_orphans(pids: set[int], tops: list[Cgroup], timeout: float = 5.0) -> None:
    """Reap the tool calls a killed agent left behind: they are re-parented to us (we are their subreaper) once
    their agent is gone. A pid that is not our child is done with unless its parent is one of ours (a worker
    still dying: its children come to us in a moment). Children of ours from the agent cgroups that we never
    heard of are looked up in /proc."""
    pending = {p for p in pids if p > 0}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending |= _orphans_from(tops)
        if not pending:
            return
        for pid in list(pending):
            try:
                got, _ = os.waitpid(pid, os.WNOHANG)
                if got:
                    pending.discard(pid)
            except ChildProcessError:
                if _ppid(pid) not in pids:
                    pending.discard(pid)
        if pending:
            time.sleep(0.01)


def run_scenario(scenario: Scenario, parent: Cgroup, policy: Policy | str = "none", *, speed: float | None = None,
                 mem_scale: float | None = None, **kw) -> ReplayResult:
    """Replay a scenario: its agents together, the parent's budget computed from the traces for this scale."""
    policy = make_policy(policy) if isinstance(policy, str) else policy
    speed = speed if speed is not None else scenario.speed
    mem_scale = mem_scale if mem_scale is not None else scenario.mem_scale
    return run(scenario.agents, parent, policy, speed=speed, mem_scale=mem_scale,
               budget_bytes=scenario.budget_bytes(mem_scale), scenario=scenario.name, **kw)


def bench(agents: list[AgentSpec], parent: Cgroup, *, speed: float = DEFAULT_SPEED,
          mem_scale: float = DEFAULT_MEM_SCALE, chunk_bytes: int = DEFAULT_CHUNK,
          on_progress: Callable[[str, float], None] | None = None) -> list[AgentResult]:
    """Replay each trace alone (no budget, no policy): how faithful and how fast the replay is, per trace."""
    return [run([a], parent, NoPolicy(), speed=speed, mem_scale=mem_scale, chunk_bytes=chunk_bytes,
                scenario=f"bench:{a.name}", on_progress=on_progress).agents[0] for a in agents]


# --- command line -------------------------------------------------------------------------------------------

def load_target(target: str, bench_mode: bool = False) -> Scenario:
    """SCENARIO.yaml, a trace file, a recorded run directory or `recorded:<folder>/<task>`; with bench_mode also a
    directory of runs or `recorded:<folder>` (every usable run in it)."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and not target.startswith(RECORDED):
        if not path.is_file() and (SCENARIO_DIR / path.name).is_file():
            path = SCENARIO_DIR / path.name
        return load_scenario(path)
    if not path.suffix and not target.startswith(RECORDED) and not path.exists() \
            and (SCENARIO_DIR / f"{target}.yaml").is_file():
        return load_scenario(SCENARIO_DIR / f"{target}.yaml")  # `agentcg replay tight`
    try:
        ref = str(path.resolve()) if path.exists() else target  # a path relative to the working directory
        trace, source = resolve_trace(ref)
        return single(trace, target)
    except ScenarioError as first:
        if not bench_mode:
            raise
        if target.startswith(RECORDED):
            root = tracefiles.default_root()
            path = root / target[len(RECORDED):].strip("/")
        else:
            root = None
        if not path.is_dir():
            raise first
        found, _ = tracefiles.load_all(path)
        if not found:
            raise ScenarioError(f"{target}: no usable runs") from None
        taken: set[str] = set()
        return Scenario(target, [AgentSpec(agent_name(t.name, taken), t, t.name) for t in found])


def _fmt_ms(d: dict) -> str:
    return "-" if not d or d.get("p50") is None else f"{d['p50']:.2f}/{d['p95']:.2f}/{d['p99']:.2f}"


def render(result: ReplayResult, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    budget = f"{result.budget_bytes / 2**20:.0f} MiB" if result.budget_bytes else "none"
    table = Table(title=f"replay {result.scenario}: policy {result.policy}, speed {result.speed:g}x, "
                        f"mem-scale {result.mem_scale:g}, budget {budget}")
    for col in ("agent", "prio", "alive", "done (s)", "speed", "OOM kills", "high", "stall ms",
                "alloc ms P50/95/99", "MAE % peak"):
        table.add_column(col, justify="left" if col in ("agent", "OOM kills") else "right")
    for a in result.agents:
        stall = (a.stall_ms.get("total") or {}).get("some")
        mae = a.fidelity.get("mae_rel")
        table.add_row(a.name, a.priority, "yes" if a.survived else "[red]no[/red]",
                      f"{a.completion_s:.1f}" if a.completion_s else "-",
                      f"{a.achieved_speed:.2f}" if a.achieved_speed else "-",
                      ", ".join(f"{k['process']}" + (f" ({k['category']})" if k["category"] else "")
                                for k in a.oom_kills) or "-",
                      str(a.throttle_events), f"{stall:.0f}" if stall is not None else "-",
                      _fmt_ms(a.alloc_latency_ms), f"{100 * mae:.1f}" if mae is not None else "-")
    console.print(table)
    for e in result.errors:
        console.print(f"[red]error:[/red] {e}")


def render_bench(rows: list[AgentResult], console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    table = Table(title="replay fidelity and speed per trace (alone, no policy)")
    for col in ("trace", "duration (s)", "wall (s)", "achieved speed", "MAE % peak", "pointwise MAE %", "alive"):
        table.add_column(col, justify="left" if col == "trace" else "right")
    for a in rows:
        pct = [a.fidelity.get(k) for k in ("mae_rel", "mae_rel_pointwise")]
        table.add_row(a.name, f"{a.trace_duration_s:.0f}", f"{a.completion_s:.1f}" if a.completion_s else "-",
                      f"{a.achieved_speed:.2f}" if a.achieved_speed else "-",
                      *(f"{100 * v:.1f}" if v is not None else "-" for v in pct), "yes" if a.survived else "no")
    console.print(table)


def _fail(message: str) -> None:
    click.echo(f"agentcg: error: {message}", err=True)
    sys.exit(2)


@click.command()
@click.argument("target")
@click.option("--speed", type=float, default=None, help=f"time acceleration (default: the scenario's, else "
                                                         f"{DEFAULT_SPEED:g})")
@click.option("--mem-scale", type=float, default=None, help=f"memory scale (default: the scenario's, else "
                                                             f"{DEFAULT_MEM_SCALE:g})")
@click.option("--policy", type=click.Choice(list(POLICIES)), default="none", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.option("--parent", type=click.Path(), default=None,
              help="cgroup to build the agents under (default: a new one below /sys/fs/cgroup, removed after)")
@click.option("--chunk-kib", type=int, default=DEFAULT_CHUNK // 1024, show_default=True,
              help="allocation chunk (each chunk's allocate+touch time is one latency sample)")
@click.option("--bench", "bench_mode", is_flag=True,
              help="replay each trace of TARGET alone and print fidelity and achieved speed per trace")
def replay(target, speed, mem_scale, policy, as_json, parent, chunk_kib, bench_mode):
    """Replay SCENARIO (YAML, or a name in fixtures/scenarios) or TRACE (an agentcg-trace file, a run directory,
    recorded:<folder>/<task>) as processes in cgroups. Root and cgroup v2 with the memory controller only (a VM)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    try:
        scenario = load_target(target, bench_mode)
    except ScenarioError as e:
        _fail(str(e))
    speed = speed if speed is not None else scenario.speed
    mem_scale = mem_scale if mem_scale is not None else scenario.mem_scale
    if speed <= 0 or mem_scale <= 0 or chunk_kib <= 0:
        _fail("--speed, --mem-scale and --chunk-kib must be positive")
    parent_path = Path(parent) if parent else CGROUP_ROOT / f"agentcg-replay-{uuid.uuid4().hex[:8]}"
    try:
        check_environment(parent_path)
    except ReplayError as e:
        _fail(str(e))
    created = not parent_path.exists()
    if created:
        Cgroup(parent_path.parent).enable("memory")
        parent_cg = Cgroup(parent_path.parent).child(parent_path.name)
    else:
        parent_cg = Cgroup(parent_path)
    err = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=err, transient=as_json) as bar:
            tasks: dict[str, int] = {}

            def progress(name: str, fraction: float) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=1.0)
                bar.update(tasks[name], completed=fraction)
            if bench_mode:
                rows = bench(scenario.agents, parent_cg, speed=speed, mem_scale=mem_scale,
                             chunk_bytes=chunk_kib * 1024, on_progress=progress)
            else:
                result = run_scenario(scenario, parent_cg, policy, speed=speed, mem_scale=mem_scale,
                                      chunk_bytes=chunk_kib * 1024, on_progress=progress)
    except ReplayError as e:
        _fail(str(e))
    finally:
        if created:
            parent_cg.destroy()
    if bench_mode:
        if as_json:
            click.echo(json.dumps([asdict(r) for r in rows], indent=1))
        else:
            render_bench(rows)
    elif as_json:
        click.echo(result.to_json())
    else:
        render(result)
