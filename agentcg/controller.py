"""The user-space controller: observe every tool call's cgroup each tick, ask the ladder, carry out its decision.

Works on any cgroup v2 kernel (no BPF needed). Per tick and tool call it reads memory.current, the stall time
from memory.pressure ("some" total) and the workload's headroom; agentcg.ladder decides; the action is written
to the cgroup (memory.high, cgroup.freeze, memory.reclaim, cgroup.kill; between the calls under one limit, the
lower priority yields first: agentcg.ladder.yields) and logged as one JSON line with its reason. A killed
call's reason is stored in its metadata for the agent (`agentcg exec` prints it). Finished calls teach the
budgets their peaks and are removed. While workloads are short of headroom it also reads their agent leaves, and
agents take turns growing (agentcg.ladder.agent_turns: the others, below high priority, wait at memory.high).

With an in-kernel policy (agentcg.enforce.inkernel, on kernels with memcg_bpf_ops) the controller also keeps the policy's
maps in step with the tree, and the policy's throttle events wake it at once: the kernel delays a call within a
charge batch, the ladder's next rungs follow from here without waiting for the tick.

With agentcg's sched_ext scheduler (agentcg.enforce.sched) the controller tells it each cgroup's CPU class (agent leaf
LATENCY, calls by command category). If the kernel reverts to its default scheduler (an error, the watchdog),
the controller logs why and carries on: every call already has its class's cpu.weight (agentcg.layout).
"""
from __future__ import annotations

import errno
import json
import os
import re
import select
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

from agentcg import ladder
from agentcg.budgets import Budgets
from agentcg.cgroup import ROOT, Cgroup, ChildWatch, FileCache, parse_keyed, parse_pressure
from agentcg.enforce import sched
from agentcg.layout import Layout

UNLIMITED = 2**63 - 1
# A call's cgroup exists before its process does (the launcher makes it, then moves the process in). One that has
# never held a process is only over once its launcher says it moved one (meta.pid) or after this long (a launcher
# that died in between), so the controller never removes a call its launcher is about to fill.
CALL_START_GRACE_S = 30.0
META_REREAD_S = 1.0


@dataclass
class CallState:
    stage: str = "running"
    stage_since: float = field(default_factory=time.monotonic)
    stall_total_us: float | None = None
    stall_seen: float | None = None
    stalled_since: float | None = None
    stall_swapped: int = 0  # its memory.swap.current when the stall (window) began
    peak: int = 0
    was_populated: bool = False
    first_seen: float = field(default_factory=time.monotonic)
    meta: object = None  # its metadata once nothing the controller uses can change (started, budget recorded)


@dataclass
class AgentState:
    """What the controller remembers of an agent leaf between ticks, for the agents' turn."""
    usage: int | None = None
    rose_at: float = float("-inf")
    waiting: bool = False


@dataclass
class CallEntry:
    """A call cgroup the controller has seen: its id (a new cgroup under the same name is another call)."""
    cgid: int
    cg: Cgroup
    finished: bool = False


class Look(NamedTuple):
    """One call as a look observed it: what ladder.yields weighs between calls, and what carrying out needs."""
    pool: str  # the cgroup whose limit binds its workload ("" for the host's memory)
    workload: str
    cg: Cgroup
    state: CallState
    decision: ladder.Decision  # ladder.decide's, before the calls are weighed against each other
    view: ladder.ToolView
    meta: object


class EventLog:
    """JSON lines, one per decision or lifecycle event; also kept in memory (last N) for status."""

    def __init__(self, path: Path | None, keep: int = 200):
        self.path, self.keep, self.recent = path, keep, []
        self._lock = threading.Lock()

    def emit(self, **event) -> dict:
        event = {"ts": time.time(), "mono": time.monotonic(), **event}
        with self._lock:
            self.recent = (self.recent + [event])[-self.keep:]
            if self.path:
                with open(self.path, "a") as f:
                    f.write(json.dumps(event) + "\n")
        return event


def cgroup_gone(e: OSError) -> bool:
    """The cgroup was removed while we looked: ENOENT before opening its file, ENODEV after."""
    return e.errno in (errno.ENOENT, errno.ENODEV)


def read_text(path: Path) -> str:
    return Path(path).read_text()


def workload_headroom(wl: Cgroup, available: int | None = None, memo: dict | None = None,
                      read: Callable[[Path], str] = read_text) -> int:
    """Bytes the workload can still charge: the tightest memory.max among it and its ancestors, or what the
    host has available (agents often share a parent budget rather than having their own). Per tick, pass the
    host's `available` and one `memo` for all workloads: their shared ancestors are then read once."""
    return workload_room(wl, available, memo, read)[0]


def workload_room(wl: Cgroup, available: int | None = None, memo: dict | None = None,
                  read: Callable[[Path], str] = read_text, limits: dict | None = None) -> tuple[int, str]:
    """The workload's headroom (workload_headroom) and its pool: the cgroup whose limit binds it ("" for the
    host's memory). Workloads of one pool compete for the same headroom. `limits` (path: memory.max) keeps the
    limits read across looks: they are configuration, and change rarely."""
    available = host_available(read) if available is None else available
    return _room(str(wl.path), available, {} if memo is None else memo, read, {} if limits is None else limits)


_ROOT = str(ROOT)


def _room(path: str, available: int, memo: dict, read: Callable[[Path], str], limits: dict) -> tuple[int, str]:
    """What `path` and its ancestors still let be charged below it, and where the tightest limit is (paths as
    strings: 20 times a second)."""
    if path in memo:
        return memo[path]
    if path == _ROOT:  # the root cgroup has no memory.max: only the host limits (no failing open each tick)
        memo[path] = (available, "")
        return memo[path]
    limit = _limit(path + "/memory.max", read, limits)
    if limit is None:  # no memory controller: only the host limits
        memo[path] = (available, "")
        return memo[path]
    room = _room(os.path.dirname(path), available, memo, read, limits)
    if limit < UNLIMITED:
        here = limit - int(read(path + "/memory.current"))
        if here < room[0]:
            room = (here, path)
    memo[path] = room
    return room


def _limit(file: str, read: Callable[[Path], str], limits: dict) -> int | None:
    """A limit file's value (UNLIMITED for "max"; None without the file), kept in `limits` across looks."""
    limit = limits.get(file)
    if limit is None:
        try:
            limit = limits[file] = int(read(file).replace("max", str(UNLIMITED)))
        except FileNotFoundError:
            return None
    return limit


def swap_room(path: str, swap_free: int, memo: dict, read: Callable[[Path], str], limits: dict) -> int:
    """What `path` may still put in swap: the host's free swap, within every memory.swap.max from it up (a
    parent at memory.swap.max 0 keeps everything below it out of swap, whatever the host has)."""
    if path in memo:
        return memo[path]
    parent = os.path.dirname(path)
    if path == _ROOT or parent == path:
        return swap_free
    limit = _limit(path + "/memory.swap.max", read, limits)  # None: no swap accounting here
    room = swap_room(parent, swap_free, memo, read, limits)
    if limit is not None and limit < UNLIMITED:
        room = min(room, limit - int(read(path + "/memory.swap.current")))
    memo[path] = room
    return room


_MEMINFO_FIELD = re.compile(r"^(MemAvailable|SwapFree):\s+(\d+) kB$", re.MULTILINE)


def meminfo(read: Callable[[Path], str] = read_text) -> dict[str, int]:
    """What the controller needs of /proc/meminfo, in bytes: MemAvailable and SwapFree (one regular expression
    over the text: splitting its ~55 lines every tick cost the controller a third of its CPU under TCG)."""
    return {name: int(kib) * 1024 for name, kib in _MEMINFO_FIELD.findall(read(Path("/proc/meminfo")))}


def host_available(read: Callable[[Path], str] = read_text) -> int:
    return meminfo(read).get("MemAvailable", 0)


class Controller:
    def __init__(self, layout: Layout, budgets: Budgets, cfg: ladder.LadderConfig, log: EventLog,
                 interval: float = 0.05, inkernel=None, scheduler: sched.SchedExt | None = None):
        self.layout, self.budgets, self.cfg, self.log, self.interval = layout, budgets, cfg, log, interval
        self.inkernel = inkernel  # agentcg.enforce.inkernel.InKernelPolicy, or None: user space only
        self.scheduler = scheduler  # agentcg.enforce.sched.SchedExt, or None: cpu.weight alone
        self.tracer = None  # agentcg.enforce.tracing.ExecTracer: told of every workload the controller finds
        self.tracked_workloads: set[str] = set()
        self.workload_ids: dict[str, int] = {}
        self.calls: dict[tuple[str, str], CallState] = {}
        self.agents: dict[str, AgentState] = {}
        self.turn: str | None = None  # the agent growing while agents share too little headroom
        self._looks: list[Look] = []  # this look's calls
        self._thawed_at: dict[str, float] = {}  # per pool, when a call of it was last thawed
        self._reclaiming: dict[str, threading.Thread] = {}  # memory.reclaim in progress, per call cgroup
        self._reclaim_errors: list[str] = []  # from those threads, logged by the next tick
        self.reclaim_cpu_s = 0.0
        self._meminfo: dict[str, int] = {}  # /proc/meminfo as last read
        self._limits: dict[str, int] = {}  # memory.max per cgroup path, as last read
        self._slow_read_at = float("-inf")  # when /proc/meminfo and the limits were last read
        self._host_bound = False  # a workload's headroom was the host's available memory at the last look
        self._swap_memo: dict[str, int] = {}  # this look's swap room per cgroup path (swap_room)
        self.files = FileCache()  # what every tick reads, kept open
        self.children = ChildWatch()  # which directories had a cgroup made or removed since the last look
        self._listed: dict[str, dict[str, int]] = {}  # per workload, its call cgroups as last listed (name: id)
        self._workloads_listed: list[tuple[str, int]] = []
        self._priority: dict[str, str] = {}  # per workload, read once: it is fixed when the workload is made
        self._wl: dict[str, tuple[Cgroup, Cgroup]] = {}  # workload -> (its cgroup, its tools cgroup)
        self._call_cgs: dict[tuple[str, str], CallEntry] = {}
        self._metas: dict[Path, tuple] = {}  # call metadata: (file identity, parsed, when)
        self.ticks = 0
        self.decisions = 0
        self.pause = interval  # until the next tick (ladder.next_tick)

    # ---- one pass ----------------------------------------------------------------------------------------

    def tick(self) -> None:
        self.ticks += 1
        self._looks.clear()  # a look cut short by an error carries none over
        while self._reclaim_errors:
            self.log.emit(event="controller_error", error=self._reclaim_errors.pop(0))
        for key in [k for k, t in self._reclaiming.items() if not t.is_alive()]:
            del self._reclaiming[key]
        if self.inkernel:
            self._kernel_events()
        if self.scheduler:
            self._check_scheduler()
        now = time.monotonic()
        read = self.files.read
        self.children.poll()  # which workloads and calls came or went since the last look
        if self._host_bound or now - self._slow_read_at >= self.cfg.calm_tick_s:
            # under a cgroup limit, the host's available memory only bounds the headroom from afar: it, swap free
            # and the limits are read at the calm pace (under TCG /proc/meminfo costs ~2 ms a read); every look
            # while a workload's headroom is the host's own
            self._meminfo, self._limits, self._slow_read_at = meminfo(read), {}, now
        available, memo, host_bound = self._meminfo.get("MemAvailable", 0), {}, False
        self._swap_memo = {}
        workloads = self._workloads()
        agents, rooms = [], []
        for wname in workloads:
            _, wl, tools = self._wl[wname]
            try:
                headroom, pool = workload_room(wl, available, memo, read, self._limits)
                host_bound |= pool == ""
                priority = self._workload_priority(wname)
                rooms.append((headroom, priority))
                if wname not in self.tracked_workloads:
                    self._track_workload(wname, wl)
                agent = self._agent_view(wname, wl, headroom, priority, now)
            except (OSError, ValueError):
                continue  # removed while we looked
            if agent:
                agents.append(agent)
            for cg in self._calls_of(wname, tools):
                self._on_call(wname, cg, self._tick_call, wname, cg, headroom, pool, priority, now)
        self._host_bound = host_bound
        self._decide_look()
        self._take_turns(agents)
        settled = self.turn is None and not any(a.waiting for a in self.agents.values()) \
            and not any(c.stage in ("throttled", "frozen", "swapped") for c in self.calls.values())
        self.pause = ladder.next_tick(rooms, settled, self.interval, self.cfg, kernel_first=self.inkernel is not None)

    # ---- the agents' turn (agentcg.ladder.agent_turns) -----------------------------------------------------

    def _agent_view(self, wname: str, wl: Cgroup, headroom: int, priority: str,
                    now: float) -> ladder.AgentView | None:
        """The agent leaf as the turn sees it; None (and not read) while its workload has twice its reserve, and
        with the in-kernel policy, which takes the turns itself within a charge batch."""
        if self.inkernel:
            return None
        state = self.agents.get(wname)
        if state is None:  # an agent an earlier controller left waiting waits (and is released) as before
            state = self.agents[wname] = AgentState(
                waiting=(wl.path / "agent" / "memory.high").read_text().strip() != "max")  # read once: not cached
        if not state.waiting and headroom >= 2 * ladder.reserve_for(self.cfg.reserve_bytes, priority):
            state.usage = None
            return None
        usage = int(self.files.read(f"{wl.path}/agent/memory.current"))
        if state.usage is not None and usage > state.usage:
            state.rose_at = now
        state.usage = usage
        return ladder.AgentView(wname, priority, usage, headroom, now - state.rose_at, state.waiting)

    def _take_turns(self, agents: list[ladder.AgentView]) -> None:
        if not agents and self.turn is None:
            return
        views = {a.name: a for a in agents}
        self.turn, decisions = ladder.agent_turns(agents, self.turn, self.cfg)
        for wname, decision in decisions:
            state, (_, wl, _) = self.agents[wname], self._wl[wname]
            try:
                Cgroup(wl.path / "agent").write("memory.high",
                                                decision.high if decision.action == "throttle" else "max")
            except OSError as e:
                if not cgroup_gone(e):
                    raise
                continue
            state.waiting = decision.action == "throttle"
            self.decisions += 1
            self.log.emit(event="decision", action=decision.action, reason=decision.reason, workload=wname,
                          call=None, usage=views[wname].usage, budget=None, headroom=views[wname].headroom,
                          stall_frac=None)

    # ---- what the controller keeps per workload and call, dropped as soon as they are gone -----------------

    def _workloads(self) -> list[str]:
        """The workloads now (as Layout.workloads, without re-checking known ones each tick). One removed, or
        removed and made again under its name (a new cgroup id), has everything kept for it dropped."""
        root = self.layout.root
        if self.children.changed(root):
            self._workloads_listed = Cgroup(root).child_ids()
        # a workload is listed once its agent leaf exists (made just after the workload's cgroup: the
        # directory event may come before it); checked again each look until then
        listed = {name: cgid for name, cgid in self._workloads_listed
                  if (name in self._wl and self._wl[name][0] == cgid) or (root / name / "agent").is_dir()}
        for wname in [w for w, kept in self._wl.items() if listed.get(w) != kept[0]]:
            self._drop_workload(wname)
        for wname, cgid in listed.items():
            if wname not in self._wl:
                self._wl[wname] = (cgid, Cgroup(root / wname), Cgroup(root / wname / "tools"))
        return list(listed)

    def _calls_of(self, wname: str, tools: Cgroup) -> list[Cgroup]:
        """The workload's call cgroups still to watch. Calls gone since the last tick (removed by their launcher
        before a tick saw them empty) are dropped; finished ones wait, unwatched, for their launcher to remove
        them (observed again, they would be started and finished twice)."""
        # listed again only when a call cgroup came or went (most ticks: none did)
        if self.children.changed(tools.path) or wname not in self._listed:
            self._listed[wname] = dict(tools.child_ids())
        listed = self._listed[wname]
        for (w, name), entry in list(self._call_cgs.items()):
            if w == wname and listed.get(name) != entry.cgid:
                self._drop_call(wname, name)
        out = []
        for name, cgid in listed.items():
            entry = self._call_cgs.get((wname, name))
            if entry is None:
                entry = self._call_cgs[(wname, name)] = CallEntry(cgid, Cgroup(tools.path / name))
            if not entry.finished:
                out.append(entry.cg)
        return out

    def _release_call(self, wname: str, name: str) -> None:
        """A call is over: its open files, cached metadata, state and kernel map entries go."""
        entry = self._call_cgs.get((wname, name))
        self.calls.pop((wname, name), None)
        self._metas.pop(self.layout.meta_path(wname, name), None)
        if entry is None or entry.finished:
            return
        entry.finished = True
        self.files.forget(entry.cg.path)
        if self.inkernel:
            self.inkernel.forget_id(entry.cgid)
        if self.scheduler:
            self._scheduler_call(self.scheduler.forget_id, entry.cgid)

    def _drop_call(self, wname: str, name: str) -> None:
        """Forget a call whose cgroup is gone."""
        self._release_call(wname, name)
        self._call_cgs.pop((wname, name), None)

    def _drop_workload(self, wname: str) -> None:
        for w, name in [k for k in self._call_cgs if k[0] == wname]:
            self._drop_call(w, name)
        _, wl, _ = self._wl.pop(wname)
        self._priority.pop(wname, None)
        self.agents.pop(wname, None)
        if self.turn == wname:
            self.turn = None
        self.tracked_workloads.discard(wname)
        self.files.forget(wl.path)
        self.children.forget(wl.path / "tools")
        self._listed.pop(wname, None)

    def _workload_priority(self, wname: str) -> str:
        """Fixed when the workload is made: read once, but kept only once its file exists (a workload is listed as
        soon as its agent leaf is, a moment before its priority is written)."""
        if wname in self._priority:
            return self._priority[wname]
        priority = self.layout.priority(wname)
        if (self.layout.state / wname / "workload.json").exists():
            self._priority[wname] = priority
        return priority

    def _load_meta(self, wname: str, call: str):
        """The call's metadata, re-parsed when its file changed (a stat per tick instead of a read) and at least
        once a second (two saves within one timestamp tick can look alike)."""
        path = self.layout.meta_path(wname, call)
        try:
            st = os.stat(path)
        except OSError:
            self._metas.pop(path, None)
            return None
        ident = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._metas.get(path)
        now = time.monotonic()
        if cached is None or cached[0] != ident or now - cached[2] > META_REREAD_S:
            cached = self._metas[path] = (ident, self.layout.load_meta(wname, call), now)
        return cached[1]

    def _decide_look(self) -> None:
        """Carry out what the ladder decides for the calls of this look: each call's rung (ladder.decide), with
        priorities between the calls of a pool (ladder.yields), held calls let go one at a time per pool
        (ladder.one_thaw_at_a_time), and one kill per look, the lowest priority first, never one whose death makes
        no room (ladder.first_to_kill)."""
        looks, self._looks = self._looks, []
        final = ladder.yields([(look.pool, look.view, look.decision) for look in looks], self.cfg)
        now = time.monotonic()
        self._thawed_at = {pool: at for pool, at in self._thawed_at.items() if now - at < self.cfg.freeze_after_s}
        final = ladder.one_thaw_at_a_time([(look.pool, look.view, d) for look, d in zip(looks, final)],
                                          {pool: now - at for pool, at in self._thawed_at.items()}, self.cfg)
        # the kernel's OOM killer may have taken a call of a pool where a kill is due: its memory is coming back
        due = {look.pool for look, d in zip(looks, final) if d.action == "kill"}
        looks = [self._oom_killed(look) if look.pool in due else look for look in looks]
        kills = [(look, d) for look, d in zip(looks, final) if d.action == "kill" and look.view.stage != "killed"]
        victim = ladder.first_to_kill([(look.pool, look.view) for look, _ in kills],
                                      [(look.pool, look.view) for look in looks], self.cfg) if kills else None
        chosen = [kills[victim]] if victim is not None else []
        for look, decision in [(look, d) for look, d in zip(looks, final)
                               if d.acts and d.action != "kill" and look.view.stage != "killed"] + chosen:
            self._on_call(look.workload, look.cg, self._apply, look, decision)

    def _oom_killed(self, look: Look) -> Look:
        """The look as the ladder should see it: a call the kernel's OOM killer took (memory.events oom_kill; a call
        is one OOM group) is killed, and dying while its processes exit, as one the ladder killed."""
        if look.state.stage == "killed":
            return look
        try:
            killed = parse_keyed(self.files.read(f"{look.cg.path}/memory.events")).get("oom_kill", 0)
        except OSError:
            return look
        if not killed:
            return look
        if look.state.stage in ("frozen", "swapped"):
            try:
                self._let_die(look.cg)
            except OSError:
                pass  # gone already
        look.state.stage, look.state.stage_since = "killed", time.monotonic()
        self.log.emit(event="kernel_oom_kill", workload=look.workload, call=look.cg.name, usage=look.view.usage)
        return look._replace(view=replace(look.view, stage="killed", stage_age=0.0))

    def _on_call(self, wname: str, cg: Cgroup, fn, *args) -> None:
        """fn(*args) on a call's cgroup; a call whose cgroup was removed meanwhile is forgotten."""
        try:
            fn(*args)
        except OSError as e:
            if not cgroup_gone(e):
                raise
            self._drop_call(wname, cg.name)

    def _tick_call(self, wname: str, cg: Cgroup, headroom: int, pool: str, priority: str, now: float) -> None:
        key = (wname, cg.name)
        state = self.calls.get(key)
        # before cgroup.events: launchers record the pid after the move
        meta = state.meta if state is not None and state.meta is not None else self._load_meta(wname, cg.name)
        if state is None:
            state = self.calls[key] = CallState(stage=self._adopted_stage(wname, cg))
            if meta and not meta.budget:  # described before it started: its class's budget as of now
                meta.budget = self._budget(meta)
                self.layout.save_meta(meta)
            self.log.emit(event="call_started", workload=wname, call=cg.name,
                          command=meta.command if meta else None, cls=meta.cls if meta else None,
                          budget=self._budget(meta))
            if self.inkernel:
                self.inkernel.track_call(cg, self._budget(meta), priority)
            self._schedule(cg.path, sched.sched_class(meta.cls if meta else "other"), wname)
        populated = "populated 1" in self.files.read(f"{cg.path}/cgroup.events")
        state.was_populated |= populated
        if state.was_populated and meta and meta.budget:
            state.meta = meta  # its budget and pid are fixed from here: no stat of its file every tick
        if not populated and state.stage not in ("frozen", "swapped") and self._call_over(state, meta):
            self._finish(wname, cg, state)
            return
        if not ladder.can_act(state.stage, headroom, priority, self.cfg):
            state.stall_total_us = None  # observing again starts a fresh stall sample
            state.stalled_since = None
            return
        usage = int(self.files.read(f"{cg.path}/memory.current"))
        state.peak = max(state.peak, usage)
        stall_frac = self._stall_frac(cg, state, now)
        swapped = self._swapped(cg) if state.stage != "running" else 0
        if stall_frac < self.cfg.stall_frac:
            state.stalled_since = None
        elif state.stalled_since is None:
            state.stalled_since, state.stall_swapped = now, swapped
        budget = self._budget(meta)
        # swap room matters to a call the ladder holds or may make yield (over its budget); not to the others
        swap_free = swap_room(str(cg.path), self._meminfo.get("SwapFree", 0), self._swap_memo, self.files.read,
                              self._limits) if state.stage != "running" or usage > budget else 0
        view = ladder.ToolView(usage=usage, budget=budget, headroom=headroom, stall_frac=stall_frac,
                               stage=state.stage, stage_age=now - state.stage_since,
                               stalled_for=now - state.stalled_since if state.stalled_since else 0.0,
                               priority=priority, swapped=swapped, swap_free=swap_free,
                               reclaiming=self._is_reclaiming(cg),
                               swapped_in_stall=swapped - state.stall_swapped if state.stalled_since else 0)
        decision = ladder.decide(view, self.cfg)
        if decision.new_stall_window:
            state.stalled_since, state.stall_swapped = now, swapped
        self._looks.append(Look(pool, wname, cg, state, decision, view, meta))

    def _swapped(self, cg: Cgroup) -> int:
        """memory.swap.current of a call (0 on a kernel without swap accounting)."""
        try:
            return int(self.files.read(f"{cg.path}/memory.swap.current"))
        except FileNotFoundError:
            return 0

    def _adopted_stage(self, wname: str, cg: Cgroup) -> str:
        """A call seen for the first time may carry what an earlier controller did to it (one that was killed
        mid-throttle or mid-freeze: only agentcg writes these files in its tree). It resumes there, so the
        ladder thaws or releases it as soon as there is room, instead of leaving it frozen for good."""
        try:
            if cg.read("cgroup.freeze").strip() == "1":  # read once per call: not kept open in the FileCache
                stage = "frozen"
            elif cg.read("memory.high").strip() != "max":
                stage = "throttled"
            else:
                return "running"
        except OSError:
            return "running"
        self.log.emit(event="call_adopted", workload=wname, call=cg.name, stage=stage)
        return stage

    @staticmethod
    def _call_over(state: CallState, meta) -> bool:
        """An empty call cgroup is a finished call, unless no process has entered it yet."""
        if state.was_populated or (meta and meta.pid):
            return True
        return time.monotonic() - state.first_seen > CALL_START_GRACE_S  # not meta.started: the replayer writes it ahead

    def _budget(self, meta) -> int:
        """The call's budget: as recorded when it started, else (unknown call, or a call described before its
        start, budget 0) what its class gets now."""
        if meta and meta.budget:
            return meta.budget
        return self.budgets.budget_bytes(meta.cls if meta else "other")

    def _stall_frac(self, cg: Cgroup, state: CallState, now: float) -> float:
        total = parse_pressure(self.files.read(f"{cg.path}/memory.pressure"))["some"]["total"]
        frac = 0.0
        if state.stall_total_us is not None and now > state.stall_seen:
            frac = min(1.0, (total - state.stall_total_us) / 1e6 / (now - state.stall_seen))
        state.stall_total_us, state.stall_seen = total, now
        return frac

    def _apply(self, look: Look, decision: ladder.Decision) -> None:
        wname, cg, state, view, meta = look.workload, look.cg, look.state, look.view, look.meta
        action = decision.action
        if action == "throttle":
            cg.write("memory.high", decision.high)
        elif action == "release":
            cg.write("memory.high", "max")
        elif action == "freeze":
            cg.freeze(True)
        elif action == "reclaim":
            self._reclaim(cg, decision.reclaim)
        elif action == "thaw":
            cg.write("memory.high", "max")
            cg.freeze(False)
            self._thawed_at[look.pool] = time.monotonic()
        elif action == "kill":
            meta = self.layout.load_meta(wname, cg.name) or meta  # as its launcher last wrote it
            if meta:
                meta.killed_reason = decision.reason
                self.layout.save_meta(meta)
            cg.kill()
            self._let_die(cg)
        state.stage, state.stage_since = ladder.next_stage(state.stage, action), time.monotonic()
        self.decisions += 1
        self.log.emit(event="decision", action=action, reason=decision.reason, workload=wname, call=cg.name,
                      usage=view.usage, budget=view.budget, headroom=view.headroom,
                      stall_frac=round(view.stall_frac, 3))

    @staticmethod
    def _let_die(cg: Cgroup) -> None:
        """Thaw a call that is being killed (by the ladder or the kernel): a frozen task only dies once thawed."""
        cg.freeze(False)

    def _is_reclaiming(self, cg: Cgroup) -> bool:
        thread = self._reclaiming.get(str(cg.path))
        return thread is not None and thread.is_alive()

    def _reclaim(self, cg: Cgroup, amount: int) -> None:
        """Push a frozen call's memory out. The kernel reclaims (into swap: compression, for zram) in the thread
        that writes memory.reclaim, for as long as that takes (under TCG ~2 s of CPU for a few MiB): a thread of its
        own, so the ticks go on meanwhile. Its CPU time is counted apart (reclaim_cpu_s)."""
        if self._is_reclaiming(cg):
            return

        def work() -> None:
            started = time.thread_time()
            try:
                cg.write("memory.reclaim", amount)
            except OSError as e:
                # EAGAIN: less than asked could be reclaimed, the call waits all the same; ENOENT/ENODEV: it is gone
                if e.errno not in (errno.EAGAIN, errno.ENOENT, errno.ENODEV):
                    self._reclaim_errors.append(f"memory.reclaim of {cg.path}: {e}")
            finally:
                self.reclaim_cpu_s += time.thread_time() - started
        thread = threading.Thread(target=work, name="agentcg-reclaim", daemon=True)
        self._reclaiming[str(cg.path)] = thread
        thread.start()

    def _finish(self, wname: str, cg: Cgroup, state: CallState) -> None:
        try:
            peak = max(state.peak, cg.read_int("memory.peak"))
        except OSError:
            peak = state.peak
        meta = self.layout.load_meta(wname, cg.name)
        if meta and state.stage != "killed":
            self.budgets.observe_peak(meta.cls, peak)
        # whoever started the call removes it (agentcg exec needs the kill reason first; the replayer its events);
        # calls the exec tracer found have no launcher waiting for them
        if meta and meta.launcher == "tracer":
            self.layout.finish_call(wname, cg.name)
        self._release_call(wname, cg.name)
        self.log.emit(event="call_finished", workload=wname, call=cg.name, peak=peak, stage=state.stage,
                      cls=meta.cls if meta else None)

    # ---- loop --------------------------------------------------------------------------------------------

    def _track_workload(self, wname: str, wl: Cgroup) -> None:
        if self.inkernel:
            self.inkernel.track_workload(wl, self.layout.priority(wname))
        self._schedule(wl.path / "agent", sched.LATENCY, wname)  # the agent's own turns are interactive
        if self.tracer is not None:
            try:
                self.tracer.watch(wname)
            except Exception as e:  # noqa: BLE001 - the tracer's trouble is logged; the ladder goes on
                self.log.emit(event="tracer_trouble", error=f"watching {wname}: {type(e).__name__}: {e}")
        self.tracked_workloads.add(wname)

    def _schedule(self, path: Path, cls: int, wname: str) -> None:
        if self.scheduler:
            wid = self.workload_ids.setdefault(wname, len(self.workload_ids) + 1)
            self._scheduler_call(self.scheduler.set_class, path, cls, wid)

    def _scheduler_call(self, fn, *args) -> None:
        try:
            fn(*args)
        except sched.SchedError as e:
            self._scheduler_gone(str(e))
        except FileNotFoundError:
            pass  # the cgroup went away first

    def _check_scheduler(self) -> None:
        reason = self.scheduler.poll()
        if reason is not None:
            self._scheduler_gone(reason)

    def _scheduler_gone(self, reason: str) -> None:
        """The kernel runs its default scheduler again: say so once, keep going on cpu.weight."""
        scheduler, self.scheduler = self.scheduler, None
        scheduler.stop()
        self.log.emit(event="sched_ext_reverted", reason=reason, fallback="cpu.weight")

    def _kernel_events(self) -> None:
        """Log what the kernel did on its own (the first rung, before any tick saw the call)."""
        for ev, path in self.inkernel.events():
            where = self.layout.locate(path) if path else None
            self.log.emit(event="kernel_throttle", workload=where[0] if where else None,
                          call=where[1] if where else None, cgroup_id=ev.cgid, delay_ms=ev.delay_ms,
                          usage=ev.usage_pages * 4096, budget=ev.budget_pages * 4096,
                          headroom=ev.headroom_pages * 4096, kernel_mono=ev.ts_ns / 1e9)

    def _wait(self, stop: threading.Event, timeout: float) -> None:
        """Until the next tick, or until the in-kernel policy reports something."""
        if self.inkernel is None:
            stop.wait(timeout)
        elif not self.inkernel.pending():
            select.select([self.inkernel], [], [], timeout)

    def run(self, stop: threading.Event, on_tick=None) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - a dead controller thread protects nobody: log, go on
                self.log.emit(event="controller_error", error=f"{type(e).__name__}: {e}")
            if on_tick:
                on_tick(self)
            self._wait(stop, max(0.0, self.pause - (time.monotonic() - started)))
        self.files.close()
        self.children.close()

    def status(self) -> dict:
        tree = {}
        for wname in self.layout.workloads():
            calls = {}
            for cg in self.layout.calls(wname):
                st = self.calls.get((wname, cg.name))
                meta = self.layout.load_meta(wname, cg.name)
                try:
                    calls[cg.name] = {"stage": st.stage if st else "new", "usage": cg.read_int("memory.current"),
                                      "budget": meta.budget if meta else None, "cls": meta.cls if meta else None,
                                      "command": meta.command if meta else None,
                                      "pressure_some_avg10": cg.pressure("memory")["some"]["avg10"]}
                except OSError:
                    continue
            try:
                wl = self.layout.workload(wname)
                tree[wname] = {"priority": self.layout.priority(wname), "usage": wl.read_int("memory.current"),
                               "headroom": workload_headroom(wl),
                               "pressure_some_avg10": wl.pressure("memory")["some"]["avg10"], "calls": calls}
            except (OSError, ValueError):
                continue
        return {"ticks": self.ticks, "decisions": self.decisions, "workloads": tree,
                "budgets_mib": {c: self.budgets.budget_bytes(c) >> 20 for c in sorted(self.budgets.config.classes)},
                "recent": self.log.recent[-20:]}
