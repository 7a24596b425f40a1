"""Scenarios: which agents replay together (a trace and a priority each), at what speed, memory scale and
parent budget. Loaded from YAML (fixtures/scenarios), a trace file, a recorded run or `recorded:<folder>[/<task>]`
(the traces of ../shared/traces); every error is a ScenarioError naming the file and the field."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from agentcg import config
from agentcg.config import ConfigError
from agentcg.paths import REPO_ROOT
from agentcg.vocab import DEFAULT_PRIORITY, MIB, PRIORITIES
from agentcg.workloads import traces as tracefiles
from agentcg.workloads.plan import Curve, step_at
from agentcg.workloads.swap import SWAPS
from agentcg.workloads.traces import Sample, Trace, TraceError

DEFAULT_SPEED = 50.0


DEFAULT_MEM_SCALE = 0.05


SCENARIO_DIR = REPO_ROOT / "fixtures" / "scenarios"


RECORDED = "recorded:"




class ScenarioError(ConfigError):
    """A scenario file that cannot be used; the message names the file and the problem."""


class SharedTracesMissing(ScenarioError):
    """A `recorded:` trace was asked for and the shared traces directory is not there (skip, do not fail)."""


@dataclass
class AgentSpec:
    name: str
    trace: Trace
    source: str = ""
    priority: str = "normal"

    @property
    def curve(self) -> Curve:
        return Curve(self.trace)


@dataclass(frozen=True)
class ProcessModel:
    """The AgentCgroup paper's replay model (../shared/design/paper-evaluation.md): one process per agent holds the
    whole trace, no tool-call children. It holds a constant base plus the level of the last sample (a step
    function), read as MiB where the recording says MB when mb_as_mib (as the paper's replayer parses it); it grows
    in steps of at most `step_mib` (one allocation-latency sample per growth) and frees whole steps when the level
    falls (agentcg.workloads.worker)."""
    base_mib: float = 100
    step_mib: float = 64
    mb_as_mib: bool = True

    @property
    def base_bytes(self) -> int:
        return int(self.base_mib * MIB)

    @property
    def step_bytes(self) -> int:
        return int(self.step_mib * MIB)

    def process_trace(self, trace: Trace) -> Trace:
        """What the agent's process holds over time: base + each sample's level; no tool calls."""
        factor = MIB / 1e6 if self.mb_as_mib else 1.0
        samples = [Sample(s.t, self.base_bytes + int(s.mem_bytes * factor), s.cpu_pct) for s in trace.samples]
        return Trace(trace.name, trace.model, samples, [], {**trace.meta, "replay_model": "process"})


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
    model: ProcessModel | None = None  # None: the tool-call model (agentcg.workloads.plan)
    seed: int | None = None  # the seed its start offsets were drawn from (None: no jitter asked for, or none drawn)
    swap: str = "none"  # none | zram (agentcg.workloads.swap), for every policy alike

    def summed_demand(self, mem_scale: float | None = None) -> list[tuple[float, int]]:
        """(trace second, bytes) of all agents together (all start at once), at every sample time of any agent:
        the step function the process model holds, or the linear curve the tool-call model follows; scaled."""
        scale = self.mem_scale if mem_scale is None else mem_scale
        times = sorted({s.t for a in self.agents for s in a.trace.samples})
        if self.model is not None:
            points = [[(s.t, s.mem_bytes) for s in a.trace.samples] for a in self.agents]
            totals = [sum(step_at(p, when + 1e-9) for p in points) for when in times]
        else:
            curves = [(a.curve, a.trace.duration) for a in self.agents]
            totals = [sum(int(c.at(when)) if when <= d else 0 for c, d in curves) for when in times]
        return [(when, int(round(total * scale))) for when, total in zip(times, totals)]

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
    try:
        return _resolve_trace(ref, base_dir, traces_root)
    except OSError as e:  # a path the file system refuses to look at (too long, a loop, no permission)
        shown = ref if len(ref) <= 120 else ref[:120] + "..."
        raise ScenarioError(f"trace {shown!r}: {e.strerror or e}") from None


def _resolve_trace(ref: str, base_dir: Path | None, traces_root: Path | None) -> tuple[Trace, str]:
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


def load_scenario(path: str | Path, traces_root: Path | None = None, seed: int | None = None) -> Scenario:
    """Read and validate a scenario YAML; budgets are computed from the traces here.

    name: tight                      # optional (default: the file's stem)
    description: ...                 # optional
    speed: 50                        # optional defaults for the replay
    mem_scale: 0.05
    budget: {share_of_peaks: 0.89}   # parent memory.max = share x the summed (scaled) peaks; or
                                     # {share_of_concurrent_peak: F}: F x the peak of the agents' summed demand
                                     # (start offsets included); or {bytes: N} or {mib: N} (fixed, not scaled);
                                     # or null / absent: no budget
    align: peaks                     # optional: start each agent late enough that all peak at the same moment
    jitter_s: 20                     # optional: each agent's start moves by a uniform draw in [-20, 20] s from
                                     # the seed given to load_scenario (one draw per agent; no seed: no jitter)
    window: {before_s: 60, after_s: 40}  # optional: replay only this span around the agents' concurrent peak
                                     # (the peak of their summed demand, offsets included): shorter runs whose
                                     # bursts still meet, since a replay's lateness cannot pile up before them
    swap: zram                       # optional: none (default) or zram, the same for every policy
    model: tool-call                 # or {process: {base_mib: 100, step_mib: 64, mb_as_mib: true}} (ProcessModel)
    agents:
      - trace: recorded:batch_swebench_18tasks/Medical_Bio_Hard   # or fixtures/traces/synth-burst.json
        name: bio-hard               # optional (default: from the trace name)
        priority: high               # high | normal | low (default normal)
        start_s: 30                  # optional: the agent starts this many trace seconds after the others
    """
    path = Path(path)
    where = str(path)
    data = config.read_mapping(path, ScenarioError)
    config.check_keys(data, ("name", "description", "speed", "mem_scale", "budget", "agents", "model", "align",
                             "jitter_s", "window", "swap"), where, ScenarioError)
    model = _model(data.get("model", "tool-call"), where)
    raw_agents = data.get("agents")
    if not isinstance(raw_agents, list) or not raw_agents:
        raise ScenarioError(f"{where}: agents must be a non-empty list")
    speed = config.number(data.get("speed", DEFAULT_SPEED), "speed", where, ScenarioError)
    mem_scale = config.number(data.get("mem_scale", DEFAULT_MEM_SCALE), "mem_scale", where, ScenarioError)
    agents, taken = [], set()
    for i, raw in enumerate(raw_agents):
        at = f"{where}: agents[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("trace"), str) or not raw["trace"]:
            raise ScenarioError(f"{at}: expected a mapping with a 'trace' string")
        config.check_keys(raw, ("trace", "name", "priority", "start_s"), at, ScenarioError)
        priority = config.one_of(raw.get("priority", DEFAULT_PRIORITY), PRIORITIES, "priority", at, ScenarioError)
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
        start = config.number(raw.get("start_s", 0), "start_s", at, ScenarioError, allow_zero=True)
        if start > MAX_START_S:
            raise ScenarioError(f"{at}: start_s must be at most {MAX_START_S:g}, got {start!r}")
        agents.append(AgentSpec(name, delayed(model.process_trace(trace) if model else trace, start), source,
                                priority))
    align = data.get("align")
    if align is not None:
        if align != "peaks":
            raise ScenarioError(f"{where}: align must be peaks (or absent), got {align!r}")
        if any("start_s" in raw for raw in raw_agents):
            raise ScenarioError(f"{where}: align: peaks sets each agent's start: no start_s beside it")
        agents = aligned_peaks(agents)
    jitter = config.number(data.get("jitter_s", 0), "jitter_s", where, ScenarioError, allow_zero=True)
    if jitter > MAX_START_S:
        raise ScenarioError(f"{where}: jitter_s must be at most {MAX_START_S:g}, got {jitter!r}")
    if jitter and seed is not None:
        agents = jittered(agents, jitter, seed)
    if data.get("window") is not None:
        agents = around_concurrent_peak(agents, _window(data["window"], where), model)
    share, budget, fixed = None, None, None
    raw_budget = data.get("budget")
    if raw_budget is not None:
        if not isinstance(raw_budget, dict) or len(raw_budget) != 1 or \
                not set(raw_budget) <= {"share_of_peaks", "share_of_concurrent_peak", "bytes", "mib"}:
            raise ScenarioError(f"{where}: budget must be {{share_of_peaks: F}}, {{share_of_concurrent_peak: F}}, "
                                "{bytes: N}, {mib: N} or null")
        for key in ("share_of_peaks", "share_of_concurrent_peak"):
            if key in raw_budget and isinstance(raw_budget[key], (int, float)) and raw_budget[key] > MAX_SHARE:
                raise ScenarioError(f"{where}: budget {key} must be at most {MAX_SHARE:g}, got {raw_budget[key]!r}")
        if "share_of_peaks" in raw_budget:
            share = config.number(raw_budget["share_of_peaks"], "budget share_of_peaks", where, ScenarioError)
            budget = int(round(share * sum(Curve(a.trace).peak for a in agents)))
        elif "share_of_concurrent_peak" in raw_budget:
            share = config.number(raw_budget["share_of_concurrent_peak"], "budget share_of_concurrent_peak", where,
                                  ScenarioError)
            unscaled = Scenario("", agents, model=model, mem_scale=1.0)
            budget = int(round(share * max(b for _, b in unscaled.summed_demand())))
        elif "mib" in raw_budget:
            fixed = int(config.number(raw_budget["mib"], "budget mib", where, ScenarioError) * MIB)
        else:
            fixed = int(config.number(raw_budget["bytes"], "budget bytes", where, ScenarioError))
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: name must be a non-empty string")
    description = data.get("description", "")
    swap = config.one_of(data.get("swap", "none"), SWAPS, "swap", where, ScenarioError)
    return Scenario(name, agents, share, budget, fixed, speed, mem_scale, str(description or ""), where, model,
                    seed if jitter else None, swap)


MAX_START_S = 86400.0
MAX_SHARE = 100.0  # a budget share beyond this is a typo (and beyond floats' reach as an int)


def delayed(trace: Trace, start_s: float) -> Trace:
    """The trace of an agent that starts `start_s` seconds late: until then it holds what its first sample holds
    (an agent framework already up, its task not yet begun); every sample and tool call comes that much later."""
    if not start_s or not trace.samples:
        return trace
    first = trace.samples[0]
    samples = [Sample(first.t, first.mem_bytes, 0.0)] + [Sample(x.t + start_s, x.mem_bytes, x.cpu_pct)
                                                           for x in trace.samples]
    calls = [replace(c, start=c.start + start_s, end=c.end + start_s) for c in trace.calls]
    return Trace(trace.name, trace.model, samples, calls,
                 {**trace.meta, "start_s": round(trace.meta.get("start_s", 0) + start_s, 3)})


def aligned_peaks(agents: list[AgentSpec]) -> list[AgentSpec]:
    """Each agent started late enough that every agent's peak falls at the same moment (the latest peak's): the
    bursts meet, which agents started together rarely do."""
    curves = [Curve(a.trace) for a in agents]
    at = [c.ts[c.ms.index(c.peak)] for c in curves]
    latest = max(at)
    return [replace(a, trace=delayed(a.trace, round(latest - t, 3))) for a, t in zip(agents, at)]


def jittered(agents: list[AgentSpec], jitter_s: float, seed: int) -> list[AgentSpec]:
    """Each agent's start moved by its own uniform draw in [-jitter_s, jitter_s] (random.Random(seed): the same
    seed, the same offsets), then all shifted so the earliest starts at 0."""
    rng = random.Random(seed)
    offsets = [rng.uniform(-jitter_s, jitter_s) for _ in agents]
    low = min(offsets)
    return [replace(a, trace=delayed(a.trace, round(o - low, 3))) for a, o in zip(agents, offsets)]


def _window(raw, where: str) -> tuple[float, float]:
    at = f"{where}: window"
    w = config.mapping(raw, "window", where, ScenarioError)
    config.check_keys(w, ("before_s", "after_s"), at, ScenarioError)
    if set(w) != {"before_s", "after_s"}:
        raise ScenarioError(f"{at}: expected {{before_s: S, after_s: S}}")
    before = config.number(w["before_s"], "before_s", at, ScenarioError, allow_zero=True)
    after = config.number(w["after_s"], "after_s", at, ScenarioError)
    if before > MAX_START_S or after > MAX_START_S:
        raise ScenarioError(f"{at}: before_s and after_s must be at most {MAX_START_S:g}")
    return before, after


def around_concurrent_peak(agents: list[AgentSpec], window: tuple[float, float],
                           model: ProcessModel | None) -> list[AgentSpec]:
    """Every agent's trace cut to [peak - before, peak + after], where peak is the moment of the agents' highest
    summed demand; times then count from the window's start. An agent that has ended before the window or not
    begun by its end is refused (it would replay nothing)."""
    demand = Scenario("", agents, model=model, mem_scale=1.0).summed_demand()
    top = max(b for _, b in demand)
    peak_t = next(t for t, b in demand if b == top)
    a, b = max(peak_t - window[0], 0.0), peak_t + window[1]
    out = []
    for spec in agents:
        t0 = spec.trace.samples[0].t
        if spec.trace.samples[-1].t - t0 <= a:
            raise ScenarioError(f"agent {spec.name}: its trace ends before the window [{a:.0f}, {b:.0f}] s")
        out.append(replace(spec, trace=windowed(spec.trace, a, b)))
    return out


def windowed(trace: Trace, a: float, b: float) -> Trace:
    """The trace over [a, b] (seconds since its first sample), times then counted from a: memory at a and at b
    interpolated as the tool-call model reads it (agentcg.workloads.plan.Curve), the tool calls that overlap the
    window cut to it."""
    curve = Curve(trace)
    t0 = trace.samples[0].t
    b = min(b, curve.duration)
    inside = [s for s in trace.samples if a < s.t - t0 < b]
    before = [s for s in trace.samples if s.t - t0 <= a]
    cpu = before[-1].cpu_pct if before else 0.0
    samples = [Sample(t0, int(curve.at(a)), cpu)] + [Sample(s.t - a, s.mem_bytes, s.cpu_pct) for s in inside] + \
        [Sample(t0 + b - a, int(curve.at(b)), (inside[-1].cpu_pct if inside else cpu))]
    calls = [replace(c, start=max(c.start, t0 + a) - a, end=min(c.end, t0 + b) - a) for c in trace.calls
             if c.end > t0 + a and c.start < t0 + b]
    return Trace(trace.name, trace.model, samples, calls, {**trace.meta, "window_s": [round(a, 3), round(b, 3)]})


def _model(raw, where: str) -> ProcessModel | None:
    """`model: tool-call` (the default) or `model: {process: {base_mib, step_mib, mb_as_mib}}`."""
    if raw == "tool-call":
        return None
    if not isinstance(raw, dict) or list(raw) != ["process"]:
        raise ScenarioError(f"{where}: model must be tool-call or {{process: {{base_mib, step_mib, mb_as_mib}}}}")
    at = f"{where}: model process"

    def flag(value) -> bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{at}: mb_as_mib must be true or false")
        return value
    return config.build(ProcessModel, config.mapping(raw["process"], "model process", where, ScenarioError), {
        "base_mib": lambda v: config.number(v, "base_mib", at, ScenarioError, allow_zero=True),
        "step_mib": lambda v: config.number(v, "step_mib", at, ScenarioError),
        "mb_as_mib": flag}, at, ScenarioError)


def single(trace: Trace, source: str = "", priority: str = "normal") -> Scenario:
    """A one-agent scenario without a budget (replaying one trace)."""
    return Scenario(trace.name, [AgentSpec(agent_name(trace.name, set()), trace, source, priority)])


def load_target(target: str, bench_mode: bool = False, seed: int | None = None) -> Scenario:
    """SCENARIO.yaml, a trace file, a recorded run directory or `recorded:<folder>/<task>`; with bench_mode also a
    directory of runs or `recorded:<folder>` (every usable run in it)."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and not target.startswith(RECORDED):
        if not path.is_file() and (SCENARIO_DIR / path.name).is_file():
            path = SCENARIO_DIR / path.name
        return load_scenario(path, seed=seed)
    if not path.suffix and not target.startswith(RECORDED) and not path.exists() \
            and (SCENARIO_DIR / f"{target}.yaml").is_file():
        return load_scenario(SCENARIO_DIR / f"{target}.yaml", seed=seed)  # `agentcg replay tight`
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
