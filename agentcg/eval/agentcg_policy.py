"""The `agentcg` replay policy: the user-space controller itself, run against the replayer's agents.

The replayer builds the same tree agentcg manages (<parent>/<agent>/{agent, tools/call-N}), so each replayed agent
is an agentcg workload and each replayed tool call a tool call. This policy protects every agent leaf
(memory.min at the agent's scaled average, its priority's oom_score_adj for its processes), gives each agent its
priority's cpu.weight, and runs agentcg.controller in a thread with budgets and reserve scaled like the replay's
memory. `agentcg-kernel` is the same controller with the
in-kernel policy attached to the replay's parent (agentcg.enforce.inkernel): it needs memcg_bpf_ops.
`protect-only` is the ablation: the same layout, agent protection and cpu.weight, no controller (no ladder, no
turns, no BPF), so what the graduated response adds shows against it.
"""
from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from agentcg import ladder
from agentcg.budgets import Budgets, load_config
from agentcg.cgroup import Cgroup
from agentcg.classify import CATEGORIES
from agentcg.controller import Controller, EventLog
from agentcg.layout import Layout, ToolCallMeta, agent_oom_score_adj
from agentcg.vocab import PRIORITY
from agentcg.workloads.plan import ReplayError
from agentcg.workloads.policy import AgentCgroups, Policy


class AgentcgPolicy(Policy):
    name = "agentcg"

    def __init__(self, mem_scale: float = 0.05, interval: float = 0.05, inkernel: bool = False,
                 controller: bool = True):
        super().__init__()
        self.mem_scale, self.interval, self.use_kernel = mem_scale, interval, inkernel
        self.with_controller = controller
        if inkernel:
            self.name = "agentcg-kernel"
        elif not controller:
            self.name = "protect-only"
        self.inkernel = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.ctl: Controller | None = None
        self.agents: list[AgentCgroups] = []
        self._state = tempfile.TemporaryDirectory(prefix="agentcg-replay-")

    def setup(self, agents: list[AgentCgroups]) -> None:
        parent = agents[0].top.path.parent
        self.agents = agents
        limit = int(parent.joinpath("memory.max").read_text().strip()) \
            if parent.joinpath("memory.max").read_text().strip() != "max" else None
        state = Path(self._state.name)
        for a in agents:
            (state / a.name).mkdir(exist_ok=True)  # the workload's priority, as `agentcg workload create` keeps it
            (state / a.name / "workload.json").write_text(json.dumps({"priority": a.spec.priority}))
            a.agent.write("memory.min", a.average)
            adj = agent_oom_score_adj(a.spec.priority)
            for pid in a.agent.procs():
                Path(f"/proc/{pid}/oom_score_adj").write_text(str(adj))
            self.log(a.name, "protect", f"agent leaf: memory.min at its average, oom_score_adj {adj}",
                     bytes=a.average)
        self.cpu_enabled = weigh_cpu(parent, agents)
        if self.cpu_enabled is not None:
            self.log("*", "cpu.weight", "each agent's cpu.weight by its priority, as agentcg.layout gives a workload",
                     weights={a.name: a.top.read_int("cpu.weight") for a in agents})
        if not self.with_controller:
            return
        cfg = load_config()
        scaled = replace(cfg, default_mib=cfg.default_mib * self.mem_scale,
                         classes={k: v * self.mem_scale for k, v in cfg.classes.items()},
                         min_mib=cfg.min_mib * self.mem_scale, max_mib=cfg.max_mib * self.mem_scale)
        reserve = int(0.05 * limit) if limit else int(64 * (1 << 20) * self.mem_scale)
        lad, self.interval, delays = replay_clock(reserve, self.interval, self.speed, self.mem_scale)
        self.log("*", "clock", f"time constants on the replay's clock ({self.speed:g}x): tick "
                                f"{self.interval * 1e3:.0f} ms, freeze after {lad.freeze_after_s * 1e3:.0f} ms, kill "
                                f"after {lad.kill_after_s * 1e3:.0f} ms, kernel delays {delays[0]}-{delays[1]} ms")
        if self.use_kernel:
            from agentcg.enforce.inkernel import InKernelError, InKernelPolicy, why_not
            reason = why_not()
            if reason:
                raise ReplayError(f"policy agentcg-kernel: {reason}")
            try:
                self.inkernel = InKernelPolicy(parent, reserve, base_delay_ms=delays[0], max_delay_ms=delays[1]).open()
            except InKernelError as e:
                raise ReplayError(f"policy agentcg-kernel: {e}") from e
            self.log("*", "attach", f"in-kernel policy on {parent} (reserve {reserve} bytes)")
        layout, budgets = Layout(parent, state), Budgets(scaled)
        for a in agents:
            describe_calls(layout, a)
        self.ctl = Controller(layout, budgets, lad, EventLog(state / "events.jsonl"),
                              interval=self.interval, inkernel=self.inkernel)
        self.thread = threading.Thread(target=self.ctl.run, args=(self.stop,),
                                       kwargs={"on_tick": self._count_cpu}, daemon=True)
        self.thread.start()

    def _count_cpu(self, _ctl) -> None:
        self.controller_cpu_s = time.thread_time()  # in the controller's thread: its own CPU time so far

    def teardown(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(timeout=5)
            self.log("*", "controller-cpu", "CPU time of the controller's thread (its ticks; in-kernel work is "
                                            "charged to the tasks it runs in)",
                     seconds=round(getattr(self, "controller_cpu_s", 0.0), 3))
            if self.ctl and self.ctl.reclaim_cpu_s:
                self.log("*", "reclaim-cpu", "CPU time of the threads writing memory.reclaim (the kernel's reclaim "
                                             "into swap, done in the writer)", seconds=round(self.ctl.reclaim_cpu_s, 3))
        logged = []
        if self.ctl:
            path = self.ctl.log.path
            logged = [json.loads(line) for line in path.read_text().splitlines()] if path and path.exists() else []
            for e in logged:
                if e.get("event") == "decision":
                    self.log(e["workload"], e["action"], e["reason"], call=e["call"], usage=e["usage"],
                             headroom=e.get("headroom"))
                elif e.get("event") == "kernel_oom_kill":
                    self.log(e["workload"], "kernel-oom-kill", "the kernel's OOM killer took the call (its "
                                                               "memory.events oom_kill, seen when a kill was due)",
                             call=e["call"], usage=e["usage"])
                elif e.get("event") == "controller_error":
                    self.log("*", "controller-error", e["error"])
                elif e.get("event") == "kernel_throttle":
                    self.log(e["workload"] or "?", "kernel-delay", f"{e['delay_ms']} ms on the charge path",
                             call=e["call"], usage=e["usage"])
        if self.inkernel:
            for a in self.agents:  # the agent leaf's delayed charge batches, as the policy's map counts them
                stats = self.inkernel.stats(a.agent.path)
                if stats is not None and stats.throttled:
                    self.log(a.name, "throttled", "agent leaf: charges delayed in the kernel (waiting for its turn)",
                             count=stats.throttled, delay_ms_total=stats.delay_ms_total)
            self.inkernel.close()
        else:
            throttles = [e for e in logged if e.get("event") == "decision" and e["action"] == "throttle"]
            for a in self.agents:
                n = sum(e["workload"] == a.name for e in throttles)
                if n:
                    self.log(a.name, "throttled", "memory.high held at usage by the controller (calls and agent "
                                                  "leaf)", count=n)
        if self.cpu_enabled:
            try:
                Cgroup(self.agents[0].top.path.parent).write("cgroup.subtree_control", "-cpu")
            except OSError:
                pass  # still in use below: leave it on
        self._state.cleanup()


TICK_FLOOR_S = 0.01  # the controller's shortest tick: one costs ~5 ms of CPU under TCG


def replay_clock(reserve: int, interval: float, speed: float, mem_scale: float,
                 ) -> tuple[ladder.LadderConfig, float, tuple[int, int]]:
    """The controller's time constants as a replay at `speed` must see them to act as in real time: the ladder's
    bounds and the tick divided by the speed (the tick no shorter than TICK_FLOOR_S), the fastest burst it paces
    by multiplied by speed and memory scale, the in-kernel delays (base, max; whole ms, at least 1) divided by
    the speed. "Growing" (a rise within growing_s) needs two ticks to be seen: never shorter."""
    d = ladder.LadderConfig()
    tick = max(interval / speed, TICK_FLOOR_S)
    cfg = replace(d, reserve_bytes=reserve, freeze_after_s=d.freeze_after_s / speed,
                  kill_after_s=d.kill_after_s / speed, swap_wait_s=d.swap_wait_s / speed,
                  growing_s=max(d.growing_s / speed, 2 * tick), calm_tick_s=max(d.calm_tick_s / speed, tick),
                  burst_bytes_per_s=d.burst_bytes_per_s * mem_scale * speed)
    from agentcg.enforce.inkernel import DEFAULT_DELAYS_MS
    delays = tuple(max(1, round(ms / speed)) for ms in DEFAULT_DELAYS_MS)
    return cfg, tick, delays


def weigh_cpu(parent: Path, agents: list[AgentCgroups]) -> bool | None:
    """Give each agent the cpu.weight of its priority. The cpu controller is enabled from the root down to the
    parent where the kernel offers it: None when it cannot be, else whether the parent's was switched on here."""
    chain = [p for p in [parent, *parent.parents][::-1] if (p / "cgroup.controllers").exists()]
    enabled_here = False
    try:
        for above in chain[:-1]:
            if "cpu" not in (above / "cgroup.subtree_control").read_text().split():
                if "cpu" not in (above / "cgroup.controllers").read_text().split():
                    return None
                Cgroup(above).write("cgroup.subtree_control", "+cpu")
        if "cpu" not in (parent / "cgroup.subtree_control").read_text().split():
            Cgroup(parent).write("cgroup.subtree_control", "+cpu")
            enabled_here = True
        for a in agents:
            a.top.write("cpu.weight", PRIORITY[a.spec.priority].cpu_weight if a.spec.priority in PRIORITY else 100)
    except OSError:
        return None
    return enabled_here


def describe_calls(layout: Layout, agent: AgentCgroups) -> None:
    """What `agentcg exec` records for a call, written ahead for each planned call-N: its category (from the
    trace's command); budget 0 lets the controller give it its class's budget when the call starts (learned
    from the peaks seen so far), as `agentcg exec` would."""
    for c in agent.calls:
        cls = c.category if c.category in CATEGORIES else "other"
        layout.save_meta(ToolCallMeta(agent.name, f"call-{c.n}", c.tool, cls, 0,
                                      time.time(), launcher="replay"))
