"""Synthetic agent traces: seeded, reproducible workloads with the shape of real agent runs.

Recorded runs are few and cannot be shipped with the repository; a controller is designed against the properties
they show, so the generator produces exactly those properties, each from a named, documented parameter:

- the agent framework holds ~185 MB steady (`baseline_mb`), drifting slowly (context growth plus a mean-reverting
  wobble), after a start-up ramp of 2-4 s from the container's first near-empty readings;
- runs last 5-11 minutes and pass through three phases with different tool mixes (`PHASES`): *understand*
  (explore, Read, Grep), *modify* (Edit, python, some tests and installs) and *verify* (mostly tests);
- each tool call's memory spike above the level at its start depends on what it runs (`CALL_MODELS`, one per
  `agentcg.classify` category; non-Bash tools run inside the agent and add no memory). The spike is a lognormal
  body with, for the heavy categories, a Pareto tail: a call is a *heavy burst* (0.5-4 GB) with probability
  `tail_p`, held for 1-2 s. The tail is what makes a run's peak/average reach ~15x;
- memory changes at most `MAX_RATE_MB_S` (3 GB/s) in either direction: ramps are drawn at 25-95% of that rate;
- retry loops (the same test command 3-5 times, an Edit sometimes in between) each leave memory behind that is
  never released (`RETRY_RETAIN_MB`), as leaked servers and caches do;
- samples every second, like `podman stats`.

Per-category parameters (spike = MB above the level at the call's start; medians and sigmas of lognormals;
duration = seconds). Bodies follow the recorded runs' per-category P50/P95 spikes (`agentcg analyze`: test
26/124 MB, install 32/110, build 21/133, python 0.5/45, git, explore and other under 15 at P95) and call
durations (test P50 6.7 s, install 7 s, python 7 s, git/explore well under a second). Tail probabilities are
deliberately higher than in the recordings (where a multi-GB burst is rare but decisive): synthetic runs are
stress workloads.

| category | spike median | sigma | tail_p | duration median | sigma | CPU % |
|----------|--------------|-------|--------|-----------------|-------|-------|
| test     | 25           | 1.1   | 0.05   | 6.7             | 0.8   | 95    |
| install  | 30           | 0.9   | 0.03   | 7.0             | 0.7   | 80    |
| build    | 20           | 1.1   | 0.03   | 2.0             | 1.0   | 150   |
| python   | 1.0          | 2.2   | 0.02   | 7.0             | 0.8   | 90    |
| git      | 0.3          | 1.5   | 0     | 0.3             | 1.5   | 10    |
| explore  | 0.5          | 1.5   | 0     | 0.3             | 1.5   | 10    |
| other    | 0.7          | 1.5   | 0     | 0.6             | 1.5   | 20    |
| Read, Edit, Grep, Glob, TodoWrite | 0 | - | 0 | 0.02-0.1   | 1.0   | 0     |

Heavy tail: Pareto with scale `TAIL_MIN_MB` (500 MB) and shape `TAIL_ALPHA` (1.2), capped at `TAIL_CAP_MB`
(4000 MB): half of the heavy bursts stay under ~890 MB, about one in five exceeds 2 GB.

Same seed, same config -> the identical trace (only `random.Random(seed)` is used). `write_fixtures()` writes the
small fixtures under fixtures/traces/ that tests and the replayer use.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from agentcg.classify import CATEGORIES
from agentcg.paths import REPO_ROOT
from agentcg.workloads.traces import Sample, ToolCall, Trace, save

MB = 1_000_000
MAX_RATE_MB_S = 3000.0  # largest memory change per second, up or down
RAMP_RATE = (0.25, 0.95)  # ramps are drawn in this share of MAX_RATE_MB_S (leaves room for the agent's drift)
TAIL_MIN_MB = 500.0
TAIL_ALPHA = 1.2
TAIL_CAP_MB = 4000.0
HEAVY_HOLD_S = (1.0, 2.0)  # a heavy burst stays at its peak this long
RETRY_RETAIN_MB = (40.0, 0.4)  # lognormal median, sigma: memory each retry leaves behind for good
THINK_S = (4.0, 0.7)  # lognormal median, sigma: LLM time between two tool calls
FIXTURES_DIR = REPO_ROOT / "fixtures" / "traces"


@dataclass(frozen=True)
class CallModel:
    """How one kind of tool call uses memory, time and CPU (see the module docstring's table)."""
    spike_mb: float  # lognormal median of the spike's body
    sigma: float  # lognormal sigma of the body
    tail_p: float  # probability that the spike is a heavy burst drawn from the Pareto tail instead
    duration_s: float  # lognormal median
    duration_sigma: float
    cpu_pct: float
    tool: str = "Bash"


CALL_MODELS: dict[str, CallModel] = {
    "test": CallModel(25.0, 1.1, 0.05, 6.7, 0.8, 95.0),
    "install": CallModel(30.0, 0.9, 0.03, 7.0, 0.7, 80.0),
    "build": CallModel(20.0, 1.1, 0.03, 2.0, 1.0, 150.0),
    "python": CallModel(1.0, 2.2, 0.02, 7.0, 0.8, 90.0),
    "git": CallModel(0.3, 1.5, 0.0, 0.3, 1.5, 10.0),
    "explore": CallModel(0.5, 1.5, 0.0, 0.3, 1.5, 10.0),
    "other": CallModel(0.7, 1.5, 0.0, 0.6, 1.5, 20.0),
    # Tools the agent framework runs itself: no process of their own, no memory.
    "Read": CallModel(0.0, 0.0, 0.0, 0.05, 1.0, 0.0, tool="Read"),
    "Edit": CallModel(0.0, 0.0, 0.0, 0.05, 1.0, 0.0, tool="Edit"),
    "Grep": CallModel(0.0, 0.0, 0.0, 0.1, 1.0, 0.0, tool="Grep"),
    "Glob": CallModel(0.0, 0.0, 0.0, 0.1, 1.0, 0.0, tool="Glob"),
    "TodoWrite": CallModel(0.0, 0.0, 0.0, 0.02, 1.0, 0.0, tool="TodoWrite"),
}
assert set(CATEGORIES) <= set(CALL_MODELS)

# (phase, share of the run, weights of the call kinds): the understand -> modify -> verify arc of a task.
PHASES: tuple[tuple[str, float, dict[str, int]], ...] = (
    ("understand", 0.30, {"explore": 30, "Read": 25, "Grep": 12, "Glob": 3, "git": 8, "python": 12, "test": 6,
                          "install": 4}),
    ("modify", 0.40, {"Edit": 30, "Read": 15, "python": 18, "test": 15, "install": 8, "explore": 6, "build": 3,
                      "other": 3, "TodoWrite": 2}),
    ("verify", 0.30, {"test": 45, "python": 15, "git": 12, "Edit": 10, "build": 5, "install": 5, "explore": 5,
                      "other": 3}),
)
HEAVY_CATEGORIES = tuple(k for k, m in CALL_MODELS.items() if m.tail_p > 0)

_MODULES = ("core", "utils", "io", "parser", "models", "api", "cli")
_FUNCS = ("parse", "load", "merge", "encode", "resolve", "render")
_PACKAGES = ("numpy", "pandas", "requests", "pyyaml", "scipy", "lxml")
# Command lines per category, in the shell glue agents really write (agentcg.classify sees through it).
_COMMANDS = {
    "test": ("cd /testbed && python -m pytest tests/test_{mod}.py -q 2>&1 | tail -30",
             "pytest -x tests/test_{mod}.py::test_{fn}", "python -m pytest tests/ -x -q --tb=short"),
    "install": ("pip install -e . 2>&1 | tail -5", "pip install {pkg}",
                "cd /testbed && pip install -r requirements.txt"),
    "build": ("make -j2", "python setup.py build_ext --inplace", "cmake --build build"),
    "git": ("git diff", "git status", "git log --oneline -5", "git diff src/{mod}.py"),
    "explore": ("grep -rn '{fn}' src/ | head -20", "ls -la src/{mod}", "find . -name '*.py' -path '*{mod}*'",
                "cat src/{mod}.py | head -100"),
    "python": ("python -c 'import {mod}; print({mod}.__file__)'", "python reproduce.py",
               "cd /testbed && python scripts/check_{mod}.py"),
    "other": ("sed -i 's/{fn}_old/{fn}/' src/{mod}.py", "chmod +x scripts/run.sh"),
}


@dataclass(frozen=True)
class SynthConfig:
    seed: int
    name: str | None = None
    duration_s: float | None = None  # None: drawn uniformly in 5-11 minutes
    baseline_mb: float = 185.0
    sample_interval_s: float = 1.0
    heavy_bursts: int | None = None  # None: each call of a heavy category is heavy with its tail_p; N: exactly N
    retry_loops: int | None = None  # None: one loop with probability retry_p; N: exactly N (in the verify phase)
    retry_p: float = 0.3


@dataclass
class _Call:
    start: float
    duration: float
    kind: str
    command: str | None
    spike: float  # MB above the level at the start
    heavy: bool
    retain: float  # MB never released (retry loops)
    lead: float = 0.0  # shape, relative to the call's start: ramp starts after `lead`
    up: float = 0.0
    hold: float = 0.0
    down: float = 0.0

    @property
    def end(self) -> float:
        return self.start + self.duration

    def above(self, t: float) -> float:
        """MB this call adds to the agent's memory at time t (its retained part stays after the call)."""
        a = self.start + self.lead
        if t <= a or self.spike <= 0:
            return 0.0 if t <= a else self.retain
        if t < a + self.up:
            return self.spike * (t - a) / self.up
        if t <= a + self.up + self.hold:
            return self.spike
        if t < a + self.up + self.hold + self.down:
            return self.spike - (self.spike - self.retain) * (t - a - self.up - self.hold) / self.down
        return self.retain


def spike_mb(rng: random.Random, kind: str, heavy: bool | None = None) -> tuple[float, bool]:
    """(MB, heavy) of one call's memory spike: from the category's lognormal body, or, when `heavy` (drawn with
    the category's tail_p when None), from the Pareto tail (TAIL_MIN_MB x Pareto(TAIL_ALPHA), capped)."""
    model = CALL_MODELS[kind]
    if heavy is None:
        heavy = model.tail_p > 0 and rng.random() < model.tail_p
    if heavy:
        return min(TAIL_MIN_MB * rng.paretovariate(TAIL_ALPHA), TAIL_CAP_MB), True
    if model.spike_mb <= 0:
        return 0.0, False
    return min(rng.lognormvariate(math.log(model.spike_mb), model.sigma), TAIL_MIN_MB * 0.9), False


def phase_at(fraction: float) -> str:
    """The phase a point of the run (0..1 of its duration) is in."""
    edge = 0.0
    for name, share, _ in PHASES:
        edge += share
        if fraction < edge:
            return name
    return PHASES[-1][0]


def _command(rng: random.Random, kind: str) -> str | None:
    if kind not in _COMMANDS:
        return None
    return rng.choice(_COMMANDS[kind]).format(mod=rng.choice(_MODULES), fn=rng.choice(_FUNCS),
                                              pkg=rng.choice(_PACKAGES))


def _shape(rng: random.Random, call: _Call) -> None:
    """Fit the burst into the call (lengthening the call when a heavy burst needs more room), rates bounded."""
    if call.spike <= 0:
        return
    rate_up = rng.uniform(*RAMP_RATE) * MAX_RATE_MB_S
    rate_down = rng.uniform(*RAMP_RATE) * MAX_RATE_MB_S
    call.lead = rng.uniform(0.05, 0.3) * call.duration
    call.down = max((call.spike - call.retain) / rate_down, 0.05)
    if call.heavy:
        call.up = max(call.spike / rate_up, 0.2)
        call.hold = rng.uniform(*HEAVY_HOLD_S)
    else:  # the tool's footprint grows while it imports and loads, and stays until it exits
        call.up = max(call.spike / rate_up, min(0.3 * call.duration, 2.0))
        call.hold = max(call.duration - call.lead - call.up - call.down - 0.05, 0.0)
    call.duration = max(call.duration, call.lead + call.up + call.hold + call.down + 0.05)


def _new_call(rng: random.Random, start: float, kind: str, heavy: bool | None, command: str | None = None,
              retain: float = 0.0) -> _Call:
    model = CALL_MODELS[kind]
    duration = rng.lognormvariate(math.log(model.duration_s), model.duration_sigma)
    spike, is_heavy = spike_mb(rng, kind, heavy)
    spike = max(spike, retain)
    call = _Call(start, duration, kind, command if command is not None else _command(rng, kind), spike, is_heavy,
                 retain)
    _shape(rng, call)
    return call


def _retry_loop(rng: random.Random, start: float) -> list[_Call]:
    """The same test command 3-5 times (an Edit in between half of the time), each leaving memory behind."""
    command = _command(rng, "test")
    calls, t = [], start
    for i in range(rng.randint(3, 5)):
        if i and rng.random() < 0.5:
            calls.append(_new_call(rng, t, "Edit", False))
            t = calls[-1].end + rng.lognormvariate(math.log(THINK_S[0]), THINK_S[1])
        retain = rng.lognormvariate(math.log(RETRY_RETAIN_MB[0]), RETRY_RETAIN_MB[1])
        calls.append(_new_call(rng, t, "test", False, command, retain))
        t = calls[-1].end + rng.lognormvariate(math.log(THINK_S[0] / 2), THINK_S[1])
    return calls


def _calls(rng: random.Random, config: SynthConfig, duration: float, startup: float) -> tuple[list[_Call], int]:
    """The run's tool calls in time order, and how many retry loops they contain."""
    loops = config.retry_loops if config.retry_loops is not None else int(rng.random() < config.retry_p)
    forced = config.heavy_bursts is not None
    calls: list[_Call] = []
    placed = 0
    t = startup + rng.uniform(3.0, 8.0)  # the first LLM turn
    while t < duration - 8.0:
        phase = phase_at(t / duration)
        if phase == "verify" and placed < loops:
            calls += _retry_loop(rng, t)
            placed += 1
        else:
            weights = dict(next(p[2] for p in PHASES if p[0] == phase))
            kind = rng.choices(list(weights), weights=list(weights.values()))[0]
            calls.append(_new_call(rng, t, kind, False if forced else None))
        t = calls[-1].end + rng.lognormvariate(math.log(THINK_S[0]), THINK_S[1])
    if forced and config.heavy_bursts:
        candidates = [i for i, c in enumerate(calls) if c.kind in HEAVY_CATEGORIES and not c.retain]
        for i in sorted(rng.sample(candidates, min(config.heavy_bursts, len(candidates)))):
            old = calls[i]
            heavy = _new_call(rng, old.start, old.kind, True, old.command)
            calls[i] = heavy
            shift = heavy.duration - old.duration
            for later in calls[i + 1:]:
                later.start += max(shift, 0.0)
    calls = [c for c in calls if c.end < duration - 2.0]
    return calls, sum(1 for _ in _retry_streaks(calls))


def _retry_streaks(calls: list[_Call]):
    """Streaks of 3+ identical test commands (other tools in between allowed), as analyze.retry_groups counts."""
    streak: list[_Call] = []
    for c in [c for c in calls if CALL_MODELS[c.kind].tool == "Bash"] + [None]:
        if streak and (c is None or c.command != streak[0].command):
            if len(streak) >= 3:
                yield streak
            streak = []
        if c is not None:
            streak.append(c)


def generate(config: SynthConfig) -> Trace:
    """One synthetic run (deterministic in config, seed included)."""
    rng = random.Random(config.seed)
    duration = config.duration_s if config.duration_s is not None else rng.uniform(300.0, 660.0)
    startup = rng.uniform(2.0, 4.0)
    baseline = config.baseline_mb * rng.uniform(0.95, 1.05)
    growth = rng.uniform(5.0, 40.0)  # MB the framework gains over the run (conversation context)
    calls, loops = _calls(rng, config, duration, startup)

    samples, wobble = [], 0.0
    n = int(duration / config.sample_interval_s)
    for k in range(n + 1):
        t = k * config.sample_interval_s
        wobble = 0.95 * wobble + rng.gauss(0.0, 0.8)
        if t < startup:
            agent = 10.0 + (baseline - 10.0) * t / startup
        else:
            agent = baseline + growth * t / duration + wobble
        mem = agent + sum(c.above(t) for c in calls if c.start <= t)
        active = [c for c in calls if c.start <= t <= c.end]
        cpu = 70.0 if t < startup else 3.0
        if active:
            cpu = CALL_MODELS[active[-1].kind].cpu_pct
        cpu = max(cpu * rng.uniform(0.7, 1.2) + rng.uniform(0.0, 2.0), 0.0)
        samples.append(Sample(round(t, 3), int(round(max(mem, 1.0) * MB)), round(cpu, 1)))

    tool_calls = []
    for i, c in enumerate(calls):
        model = CALL_MODELS[c.kind]
        category = c.kind if model.tool == "Bash" else model.tool
        tool_calls.append(ToolCall(round(c.start, 3), round(c.end, 3), model.tool, c.command, category,
                                   f"synth_{i:03d}"))
    edges, acc = [], 0.0
    for name, share, _ in PHASES:
        edges.append([name, round(acc * duration, 3), round((acc + share) * duration, 3)])
        acc += share
    name = config.name or f"seed{config.seed}"
    meta = {"synthetic": True, "generator": "agentcg.workloads.synth", "seed": config.seed, "config": asdict(config),
            "folder": "synthetic", "task": name, "category": "Synthetic", "difficulty": None,
            "phases": edges, "retry_loops": loops,
            "heavy_bursts": [i for i, c in enumerate(calls) if c.heavy],
            "has_calls": True, "notes": []}
    return Trace(f"synth/{name}", "synthetic", samples, tool_calls, meta)


# The fixtures: small enough to commit (< 50 KB each), varied enough to exercise the replayer and a controller.
FIXTURES: dict[str, SynthConfig] = {
    # 5 minutes, no heavy burst, no retry loop: the fidelity check's workload.
    "synth-small": SynthConfig(seed=101, name="small", duration_s=300.0, heavy_bursts=0, retry_loops=0),
    # One multi-GB burst in a tool call: what a static limit cannot absorb.
    "synth-burst": SynthConfig(seed=202, name="burst", duration_s=420.0, heavy_bursts=1, retry_loops=0),
    # A retry loop whose memory accumulates.
    "synth-retry": SynthConfig(seed=303, name="retry", duration_s=480.0, heavy_bursts=0, retry_loops=1),
    # 11 minutes, everything drawn: heavy bursts as they come, maybe a retry loop.
    "synth-long": SynthConfig(seed=404, name="long", duration_s=660.0),
}


def write_fixtures(dest: str | Path = FIXTURES_DIR) -> list[Path]:
    """Write the FIXTURES into dest as agentcg-trace/1 JSON files; the paths written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, config in FIXTURES.items():
        path = dest / f"{stem}.json"
        save(generate(config), path)
        written.append(path)
    return written
