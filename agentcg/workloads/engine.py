"""Replay agent traces as real processes in real cgroups, so resource policies meet realistic workloads.

A controller for agents has to be judged on what agents do: a steady framework footprint, short multi-GB tool
bursts, memory that retry loops never give back. The engine turns each agent's plan (agentcg.workloads.plan)
into processes (agentcg.workloads.worker) that allocate and free memory along it, in the cgroup layout agentcg
controls, lets a policy (agentcg.workloads.policy) act, and measures what it did. It runs as root on a cgroup v2
kernel (inside a VM here: the host's hierarchy is hybrid v1/v2 without controllers).

Layout, per agent, under a parent cgroup that carries the scenario's memory budget (memory.max):

    <parent>/<agent>/agent          the agent process: the trace outside tool calls
    <parent>/<agent>/tools/call-N   one cgroup per tool call, N its index in the trace's call list

Measured: memory.current of each agent's cgroup (fidelity, agentcg.workloads.measure); achieved speed (trace
duration / wall time / speed, 1 = on schedule); per-chunk allocation latency of every process; memory.events
(high, max, oom, oom_kill) and memory.pressure stall totals of every cgroup; which process was OOM-killed (the
agent or tool call N); what was frozen at the end; survival and completion time per agent.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from agentcg.cgroup import ROOT as CGROUP_ROOT
from agentcg.cgroup import Cgroup, CgroupError, parse_keyed, parse_pressure
from agentcg.harness import slowness
from agentcg.paths import REPO_ROOT
from agentcg.vocab import PAGE
from agentcg.workloads.measure import fidelity, latency_summary, timeline
from agentcg.workloads.plan import DEFAULT_CHUNK, ReplayError, TracePlan, build_plan, worker_events
from agentcg.workloads.policy import AgentCgroups, NoPolicy, Policy
from agentcg.workloads.results import AgentResult, CallResult, ReplayResult
from agentcg.workloads.swap import SWAPS, ZramSwap
from agentcg.workloads.scenario import DEFAULT_MEM_SCALE, DEFAULT_SPEED, AgentSpec, ProcessModel, Scenario

COUNTER = "memory.current"  # what the workers steer by and the sampler reads (hierarchical: includes tools/)
SWAPPED = "memory.swap.current"  # ... plus this when the replay has swap: memory pushed out is still held


READY_TIMEOUT_S = 120.0  # worker start-up: ~1 s per interpreter under TCG, several starting at once


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


def worker_plan(plan: TracePlan, cgroups: AgentCgroups, chunk: int, accounting: str,
                model: ProcessModel | None = None, swap: str = "none") -> dict:
    """The JSON document agentcg.workloads.worker reads. The process model: chunks are its growth steps, the base
    is held from the start, and the worker counts its own memory."""
    doc = {"name": plan.name, "speed": plan.speed, "chunk": chunk, "accounting": accounting,
           "counter": [COUNTER, SWAPPED] if swap != "none" else COUNTER,
           "leaf": str(cgroups.agent.path), "tools": str(cgroups.tools.path), "duration": plan.duration,
           "events": worker_events(plan)}
    if model is not None:
        doc.update(model="process", chunk=int(model.step_bytes * plan.mem_scale), accounting="self",
                   base=int(model.base_bytes * plan.mem_scale))
    return doc


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
        self.current_fds: list[int] = []
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
        on_progress: Callable[[str, float], None] | None = None, accounting: str = "cgroup",
        model: ProcessModel | None = None, swap: str = "none", swap_ram_bytes: int | None = None) -> ReplayResult:
    """Replay the agents' traces together under `parent` (which must exist and have the memory controller), with
    the parent's memory.max set to budget_bytes (restored afterwards), under `policy`. Everything created under
    the parent is destroyed before returning, also on errors and KeyboardInterrupt. With a process model
    (agentcg.workloads.scenario.ProcessModel) each agent is one process holding its (process) trace, no tool calls.
    `swap` (agentcg.workloads.swap): `none` keeps everything under the parent out of swap, `zram` gives the replay a
    compressed swap device of the agents' summed peaks (using at most swap_ram_bytes of RAM, when given)."""
    policy = policy or NoPolicy()
    policy.scale(speed=speed, mem_scale=mem_scale)
    if speed <= 0 or mem_scale <= 0 or chunk_bytes < PAGE:
        raise ReplayError("speed and mem_scale must be positive and the chunk at least one page")
    if budget_bytes is not None and budget_bytes <= 0:
        raise ReplayError(f"budget must be positive, got {budget_bytes}")
    if not agents:
        raise ReplayError("nothing to replay")
    if swap not in SWAPS:
        raise ReplayError(f"swap must be one of {', '.join(SWAPS)}, got {swap!r}")
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
    old_swap_max = None
    device = ZramSwap(sum(p.peak for p in plans), swap_ram_bytes) if swap == "zram" else None
    was_subreaper = _subreaper(True)
    errors: list[str] = []
    set_up = False
    try:
        try:
            if "memory" not in old_subtree.split():
                parent.enable("memory")
            if budget_bytes is not None:
                parent.write("memory.max", max(-(-budget_bytes // PAGE) * PAGE, PAGE))
            old_swap_max = _read(parent, "memory.swap.max")
            if old_swap_max is None and swap != "none":
                raise ReplayError(f"swap {swap}: {parent.path} has no memory.swap.max (a kernel without swap)")
            if old_swap_max is not None:
                parent.write("memory.swap.max", "max" if swap != "none" else 0)
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
        if device is not None:
            device.__enter__()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
        for i, r in enumerate(runs):
            plan_path = workdir / f"plan-{i}.json"
            plan_path.write_text(json.dumps(worker_plan(r.plan, r.cg, chunk_bytes, accounting, model, swap)))
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
            r.current_fds = [os.open(r.cg.top.path / name, os.O_RDONLY)
                             for name in ([COUNTER, SWAPPED] if swap != "none" else [COUNTER])]
        t0 = time.monotonic() + 0.1  # every worker is blocked on stdin: a moment to wake them all
        for r in runs:
            try:
                r.proc.stdin.write(f"go {t0!r}\n".encode())
                r.proc.stdin.close()
            except BrokenPipeError:  # died since it was ready: the monitor reports it
                pass
        _monitor(runs, policy, t0, timeout, sample_interval, on_progress, errors)
        results = [_agent_result(r, policy, speed, mem_scale, model is not None) for r in runs]
        wall = time.monotonic() - t0
    finally:
        try:
            if set_up:
                policy.teardown()
        finally:
            _cleanup(runs, tops, parent, budget_bytes, old_budget, old_subtree, errors)
            if old_swap_max is not None:
                try:
                    parent.write("memory.swap.max", old_swap_max.strip())
                except OSError as e:
                    errors.append(f"restoring {parent.path}/memory.swap.max: {e}")
            swap_stats = device.stats() if device is not None else {}
            if device is not None:
                device.__exit__(None, None, None)
            _subreaper(was_subreaper)
            shutil.rmtree(workdir, ignore_errors=True)
    return ReplayResult(scenario, policy.name, speed, mem_scale, chunk_bytes, budget_bytes, round(wall, 3), results,
                        policy.actions, errors, swap, swap_stats)


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
                if not r.finished and r.ended is None and r.current_fds and elapsed >= 0:
                    try:
                        r.samples.append((round(elapsed, 6), sum(int(os.pread(fd, 64, 0)) for fd in r.current_fds)))
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


def _agent_result(r: _Run, policy: Policy, speed: float, mem_scale: float, process: bool = False) -> AgentResult:
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
        overhead_bytes=r.overhead, calls=call_results, error=r.error,
        growth_latencies_ms=[round(x / 1000.0, 3) for x in r.agent_lat] if process else None,
        work_lost_s=work_lost(survived, r.progress() * curve.duration, call_results, speed))


def work_lost(survived: bool, reached_trace_s: float, calls: list[CallResult], speed: float) -> float:
    """Trace seconds of work lost: an agent that died loses everything it had done (its minutes of state), as far
    as its trace had got; one that lived loses the active window of each tool call killed (by a signal, whoever
    sent it), which the agent must run again."""
    if not survived:
        return round(reached_trace_s, 3)
    return round(sum(c.planned_s * speed for c in calls if c.status is not None and c.status < 0), 3)


def _cleanup(runs: list[_Run], tops: list[Cgroup], parent: Cgroup, budget: int | None, old_budget: str | None,
             old_subtree: str, errors: list[str]) -> None:
    """Destroy every agent cgroup (killing what is left), reap every process, restore the parent."""
    pids: set[int] = set()
    for r in runs:
        for fd in r.current_fds:
            os.close(fd)
        r.current_fds = []
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


def run_scenario(scenario: Scenario, parent: Cgroup, policy: Policy | None = None, *, speed: float | None = None,
                 mem_scale: float | None = None, **kw) -> ReplayResult:
    """Replay a scenario: its agents together, the parent's budget computed from the traces for this scale."""
    speed = speed if speed is not None else scenario.speed
    mem_scale = mem_scale if mem_scale is not None else scenario.mem_scale
    kw.setdefault("swap", scenario.swap)
    return run(scenario.agents, parent, policy, speed=speed, mem_scale=mem_scale,
               budget_bytes=scenario.budget_bytes(mem_scale), scenario=scenario.name, model=scenario.model, **kw)


def bench(agents: list[AgentSpec], parent: Cgroup, *, speed: float = DEFAULT_SPEED,
          mem_scale: float = DEFAULT_MEM_SCALE, chunk_bytes: int = DEFAULT_CHUNK,
          on_progress: Callable[[str, float], None] | None = None) -> list[AgentResult]:
    """Replay each trace alone (no budget, no policy): how faithful and how fast the replay is, per trace."""
    return [run([a], parent, NoPolicy(), speed=speed, mem_scale=mem_scale, chunk_bytes=chunk_bytes,
                scenario=f"bench:{a.name}", on_progress=on_progress).agents[0] for a in agents]
