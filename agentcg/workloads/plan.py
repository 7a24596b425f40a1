"""The replay plan: how a trace's memory curve is shared between an agent process and its tool-call processes.

`build_plan` splits the trace's memory curve m(t) (linear between samples) between the processes so that they
always add up to m(t):
- tool calls that overlap are one call group; the group's memory above the level at its start, L0, belongs to
  one call (the one whose span holds the group's highest sample), the others only live for their duration;
- the call's window runs to the first sample after the group ends (podman samples lag by up to a second: the
  sample showing a burst often comes just after the call returned), unless the next group starts first;
- L0 is the last sample at or before the group starts (as agentcg.analysis.analyze.call_spike measures a spike);
- during a window the agent holds min(m, L0), the call max(0, m - L0); outside, the agent holds m;
- a call in a retry loop (the same Bash command 3+ times in a row, as agentcg.analysis.analyze counts them) whose
  memory has not come back down by the end of its window keeps the rest (`hold`) until the trace drops below
  L0 + hold/2 (never, for memory that accumulates): the process stays alive in its call cgroup holding it, and
  the agent holds m minus everything held;
- delegation calls (Task: a sub-agent in the agent's own process) are not tool processes: their memory is the
  agent's. Zero-length calls still get a process (and a cgroup): it starts and exits at once.
The plan is in trace units; `TracePlan.scaled(speed, mem_scale)` divides times by the time acceleration and
multiplies memory by the memory scale (0.05 makes a 4 GB burst 200 MB: a TCG guest with ~2 GB can run it).
`worker_events` turns a plan into the event list agentcg.workloads.worker plays.
"""
from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass

from agentcg.workloads.traces import DELEGATION_TOOLS, Trace, TraceError

DEFAULT_CHUNK = 256 * 1024




RETAIN_MIN_BYTES = 8_000_000  # retry-loop memory below this (or 2% of the peak) is not worth a held process


class ReplayError(Exception):
    """The replay cannot run here or failed to set up; the message says why."""


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
        total = step_at(self.agent, when)
        for c in self.calls:
            if c.start <= when < c.end:
                total += step_at([(c.start + dt, v) for dt, v in c.points], when)
            elif c.hold and when >= c.end and (c.release is None or when < c.release):
                total += c.hold
        return total


def step_at(points: list[tuple[float, int]], when: float) -> int:
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
