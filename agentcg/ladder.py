"""The graduated answer to a tool call's memory pressure: throttle -> freeze -> kill the tool call, never the agent.

This module is the one place where agentcg decides what to do with a tool call; the controller only observes and
executes. Each decision carries the reason that goes into the event log and, for a kill, to the agent.

The ladder, per tool call:
- running: above its budget the call may keep growing while the workload has headroom (a budget is where
  throttling starts under contention, not a static limit). When headroom falls below the reserve
  (`reserve_bytes`, x2 for low-priority workloads, x0.5 for high-priority ones, so low priority is throttled
  first) it is throttled: memory.high is set at its current usage. A runaway, over `runaway_factor` x its
  budget, is throttled from twice the reserve. With memory to spare nothing is throttled: a pytest run may
  legitimately burst 15x its class's usual peak, and slowing it then protects nobody.
- throttled: when headroom comes back (2 x reserve) memory.high is lifted again. When the call keeps stalling
  on memory.high (its memory PSI `stall_frac` >= `stall_frac` of the time) for `freeze_after_s`, it is frozen:
  a throttle alone can stall a call forever when nothing is reclaimable (no swap). While its pages go to swap
  during the stall (and swap can take its growth, the reserve) the stall is progress at that pace: it stays
  throttled (freezing it would stop it, and pushing it out would need room for all of it to come back), and
  the next `freeze_after_s` must show progress again.
- frozen: thawed (and memory.high lifted) as soon as the workload has room for it again, one call of a pool at a
  time (`one_thaw_at_a_time`). When several calls are
  due to be killed at once, only the lowest-priority one (the largest of those) is, and the others are looked at
  again; none while a call killed under the same limit is still giving its memory back, and a lower-priority call
  whose death could not let a held higher-priority call go on is spared until that call is dealt with
  (`first_to_kill`). With swap free for
  all it holds, its memory is pushed out (memory.reclaim on the frozen call): it stops holding the memory others
  need, and waits in swap. Without swap, killed as a last resort after `kill_after_s` without room. Killing
  takes the whole tool subtree (cgroup.kill).
- swapped (frozen, its memory in swap): thawed once the workload has room for what it swapped out and its
  reserve on top, so it does not come back only to be pushed out again. After `swap_wait_s` without that
  room it resumes all the same while swap still has room (it runs throttled, what it touches comes back from
  swap and its growth goes there), and is killed when swap is full.

Between calls (`yields`): a call of higher priority short of memory is not held (throttled, frozen, pushed to
swap) while lower-priority calls under the same limit can make room: those over their budget whose memory swap can
take are frozen at once (and then pushed to swap by the rungs above), the higher one goes on.

Between agents (`agent_turns`): an agent leaf is never frozen or killed, but when agents grow together while
their shared headroom is under their reserve, one holds the turn and goes on (the one of highest priority, else
the larger: it has more invested); the others below high priority wait at memory.high = their usage until the
shortage is over (headroom back at their reserve). Without swap, two bursts that do not fit together can only be
taken one after the other: letting both creep on runs the shared limit out of memory with nothing but agents in
it, and an agent caught at its peak cannot give memory back.
"""
from __future__ import annotations

from dataclasses import dataclass

from agentcg.vocab import MIB, PRIORITIES, PRIORITY

STAGES = ("running", "throttled", "frozen", "swapped", "killed")
ACTIONS = ("none", "throttle", "release", "freeze", "reclaim", "thaw", "kill")


@dataclass(frozen=True)
class LadderConfig:
    reserve_bytes: int = 64 * MIB   # headroom below which calls over budget are throttled
    runaway_factor: float = 4.0     # above budget x this, throttle from twice the reserve
    stall_frac: float = 0.5         # share of time stalled on memory that counts as "still under pressure"
    freeze_after_s: float = 1.0
    kill_after_s: float = 3.0
    swap_wait_s: float = 30.0       # a call waits in swap this long for room, then resumes (or dies: swap full)
    growing_s: float = 0.2          # an agent whose usage rose within this long is growing
    burst_bytes_per_s: float = 3e9  # the fastest a tool call grows (measured bursts: up to 3 GB/s)
    calm_tick_s: float = 0.25       # the longest the controller sleeps while nothing can need it

    def __post_init__(self):
        if self.reserve_bytes < 0 or self.runaway_factor < 1 or not 0 < self.stall_frac <= 1 \
                or self.freeze_after_s < 0 or self.kill_after_s < 0 or self.growing_s < 0 \
                or self.swap_wait_s < 0 \
                or not self.burst_bytes_per_s > 0 or self.calm_tick_s < 0:
            raise ValueError("ladder: reserve >= 0, runaway_factor >= 1, 0 < stall_frac <= 1, burst rate > 0, "
                             "times >= 0")


# Priorities between workloads: a low-priority workload's calls are throttled while more headroom remains (and
# so first), a high-priority workload's only when headroom is nearly gone.


def reserve_for(reserve_bytes: int, priority: str) -> int:
    """The headroom below which a workload of this priority has its calls throttled (user space and kernel)."""
    return int(reserve_bytes * (PRIORITY[priority].reserve_factor if priority in PRIORITY else 1.0))


@dataclass(frozen=True)
class ToolView:
    """One tick's observation of a tool call."""
    usage: int          # memory.current of the tool cgroup
    budget: int         # its budget (bytes)
    headroom: int       # what its workload can still take before its limit (or the host runs out)
    stall_frac: float   # share of the last tick the tool's tasks stalled on memory (memory.pressure "some")
    stage: str          # one of STAGES
    stage_age: float    # seconds since it entered that stage
    stalled_for: float  # seconds it has been continuously stalled (stall_frac above the threshold)
    priority: str = "normal"  # of its workload
    swapped: int = 0    # memory.swap.current of the tool cgroup (0 without swap)
    swap_free: int = 0  # what swap can still take (0 without swap)
    reclaiming: bool = False  # its memory is being pushed to swap (memory.reclaim under way)
    swapped_in_stall: int = 0  # how much more it holds in swap than when its stall began


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str = ""
    high: int | None = None  # for throttle: the memory.high to write
    reclaim: int | None = None  # for reclaim: the bytes to write to memory.reclaim
    new_stall_window: bool = False  # a throttled call's stall was progress into swap: judge it afresh from now

    @property
    def acts(self) -> bool:
        return self.action != "none"


NOTHING = Decision("none")


def _mib(n: int) -> str:
    return f"{n / MIB:.0f} MiB"


def decide(v: ToolView, cfg: LadderConfig) -> Decision:
    reserve = reserve_for(cfg.reserve_bytes, v.priority)
    if v.stage == "running":
        if v.usage <= v.budget:
            return NOTHING
        if v.usage > v.budget * cfg.runaway_factor and v.headroom < 2 * reserve:
            return Decision("throttle", f"usage {_mib(v.usage)} is over {cfg.runaway_factor:g}x its budget "
                                        f"{_mib(v.budget)} and the workload has {_mib(max(v.headroom, 0))} left "
                                        f"(under twice the {v.priority} priority reserve)", high=v.usage)
        if v.headroom < reserve:
            return Decision("throttle", f"usage {_mib(v.usage)} over budget {_mib(v.budget)} and the workload "
                                        f"has {_mib(max(v.headroom, 0))} left ({v.priority} priority reserve "
                                        f"{_mib(reserve)})", high=v.usage)
        return NOTHING
    if v.stage == "throttled":
        if v.headroom >= resume_room(v, cfg):
            return Decision("release", f"workload headroom back to {_mib(v.headroom)}")
        if v.stalled_for < cfg.freeze_after_s:
            return NOTHING
        if v.swap_free >= reserve and v.swapped_in_stall > 0:
            return Decision("none", f"stalled {v.stalled_for:.1f} s while {_mib(v.swapped_in_stall)} went to swap: "
                                    f"progress, judged again over the next {cfg.freeze_after_s:g} s",
                            new_stall_window=True)
        return Decision("freeze", f"stalled on memory.high for {v.stalled_for:.1f} s with "
                                  f"{_mib(max(v.headroom, 0))} headroom")
    if v.stage == "frozen":
        if v.headroom >= resume_room(v, cfg):
            return Decision("thaw", f"workload headroom back to {_mib(v.headroom)}")
        if v.usage > 0 and v.swap_free >= v.usage + reserve:
            return Decision("reclaim", f"frozen at {_mib(v.usage)} with {_mib(max(v.headroom, 0))} headroom: its "
                                       f"memory goes to swap ({_mib(v.swap_free)} free) while it waits for room",
                            reclaim=v.usage)
        if v.stage_age >= cfg.kill_after_s:
            return Decision("kill", f"frozen {v.stage_age:.1f} s at {_mib(v.usage)} (budget {_mib(v.budget)}) "
                                    f"with no room to resume ({_mib(max(v.headroom, 0))} headroom)")
        return NOTHING
    if v.stage == "swapped":
        if v.headroom >= resume_room(v, cfg):
            return Decision("thaw", f"workload headroom back to {_mib(v.headroom)}, room for the "
                                    f"{_mib(v.swapped)} it swapped out")
        if v.stage_age >= cfg.swap_wait_s and v.swap_free >= reserve:
            return Decision("thaw", f"waited {v.stage_age:.1f} s in swap ({_mib(v.swapped)}) for room "
                                    f"({_mib(max(v.headroom, 0))} headroom): resumes with its memory in swap "
                                    f"({_mib(v.swap_free)} free)")
        if v.stage_age >= cfg.swap_wait_s:
            return Decision("kill", f"waited {v.stage_age:.1f} s in swap ({_mib(v.swapped)}) with no room to "
                                    f"resume ({_mib(max(v.headroom, 0))} headroom) and swap full "
                                    f"({_mib(v.swap_free)} free)")
        return NOTHING
    return NOTHING


def _rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITY else PRIORITIES.index("normal")


def resume_room(v: ToolView, cfg: LadderConfig) -> int | None:
    """The headroom at which decide() lets a held call go on (released, thawed; from swap, with room for what it
    swapped out); None for a running call."""
    reserve = reserve_for(cfg.reserve_bytes, v.priority)
    if v.stage in ("throttled", "frozen"):
        return 2 * reserve
    if v.stage == "swapped":
        return 2 * reserve + v.swapped
    return None


def first_to_kill(candidates: list[tuple[str, ToolView]], observed: list[tuple[str, ToolView]],
                  cfg: LadderConfig) -> int | None:
    """Of the calls the ladder would kill in the same look ((pool, view) each), the one to kill now (its index), or
    None: the lowest priority, the largest of those; the others wait for the next look, which may find the room its
    death made (and thaw them instead). observed: (pool, view) of every call of the look. No call is killed for
    nothing:
    - while a call killed in its pool is still dying (its memory not yet given back, for at most `kill_after_s`),
      that memory is the room on its way: nobody else there is killed meanwhile;
    - when a held call of higher priority in its pool (throttled, frozen, in swap) could not go on even with every
      lower-priority call due to be killed gone (their memory and the headroom short of its resume_room), killing
      them saves nobody. They wait, frozen, and the higher call goes first when it is due: its memory is what makes
      room (without swap: two bursts that cannot meet in the limit lose one call, not two)."""
    dying = {pool for pool, v in observed if v.stage == "killed" and v.usage > 0 and v.stage_age < cfg.kill_after_s}

    def futile(i: int) -> bool:
        pool, v = candidates[i]
        if pool in dying:
            return True
        for hpool, h in observed:
            if hpool != pool or _rank(h.priority) <= _rank(v.priority) or resume_room(h, cfg) is None:
                continue
            freed = sum(c.usage for cpool, c in candidates if cpool == pool and _rank(c.priority) < _rank(h.priority))
            if h.headroom + freed < resume_room(h, cfg):
                return True
        return False
    order = sorted(range(len(candidates)),
                   key=lambda i: (_rank(candidates[i][1].priority), -candidates[i][1].usage, i))
    return next((i for i in order if not futile(i)), None)


def one_thaw_at_a_time(looks: list[tuple[str, ToolView, Decision]], thawed_ago: dict[str, float],
                       cfg: LadderConfig) -> list[Decision]:
    """Held calls go on one at a time per pool. looks: (pool, view, decision) of every call of one look, after
    `yields`; thawed_ago: per pool, seconds since a call of it was last thawed. Of the frozen (or swapped-out)
    calls a look would thaw in one pool, only the highest priority goes on (then the largest: it has most
    invested), and none until `freeze_after_s` after the last thaw there: the headroom that let both go was
    measured with both stopped, and once both grow it runs out for both (without swap the kernel's OOM killer then
    takes one anyway). The others stay held until that call's growth shows in the headroom. Returns the decision
    to carry out for each look, in order."""
    out = [d for _, _, d in looks]
    thaws: dict[str, list[int]] = {}
    for i, (pool, _, d) in enumerate(looks):
        if d.action == "thaw":
            thaws.setdefault(pool, []).append(i)
    for pool, idx in thaws.items():
        recent = thawed_ago.get(pool, float("inf")) < cfg.freeze_after_s
        first = None if recent else max(idx, key=lambda i: (_rank(looks[i][1].priority), looks[i][1].usage, -i))
        for i in idx:
            if i != first:
                out[i] = Decision("none", "waits while another call of its pool goes on first: its growth shows "
                                          "in the headroom before this one is let go")
    return out


HOLDING = ("throttle", "freeze", "reclaim", "kill")  # what slows or stops a call


def yields(looks: list[tuple[str, ToolView, Decision]], cfg: LadderConfig) -> list[Decision]:
    """Priorities between calls sharing a limit. looks: (pool, view, decide()'s decision) of every call observed
    in one look, the pool naming the limit that binds its workload (the calls of one pool compete for one
    headroom). A call is pressed when the ladder holds it (throttles, freezes, pushes out or kills it, or keeps
    it throttled, frozen or in swap). While lower-priority calls of its pool can make room, the ladder takes
    theirs, not the pressed call's: a running or throttled one over its budget whose memory swap can take
    yields (frozen now, without waiting to stall; the ordinary rungs then push it to swap), and the pressed
    calls of the highest priority are let go for this look (a throttled one released, a frozen one thawed; one
    in swap waits for room as before). A frozen call whose memory is going to swap (decide() pushes it out)
    makes room too. Without swap a frozen call makes no room: each call keeps its own rung, and the kills go
    lowest priority first (first_to_kill). Returns the decision to carry out for each look, in order."""
    out = [d for _, _, d in looks]
    pressed: dict[str, int] = {}  # pool -> the highest rank of a pressed call
    for pool, v, d in looks:
        if d.action in HOLDING or (v.stage in ("throttled", "frozen", "swapped") and d.action == "none"):
            pressed[pool] = max(pressed.get(pool, -1), _rank(v.priority))
    yielding, room_made = [], set()
    for i, (pool, v, d) in enumerate(looks):
        if pool not in pressed or _rank(v.priority) >= pressed[pool] or d.action in ("kill", "release", "thaw"):
            continue
        if v.stage in ("running", "throttled") and v.usage > v.budget \
                and v.swap_free >= v.usage + reserve_for(cfg.reserve_bytes, v.priority):
            yielding.append(i)
            room_made.add(pool)
        elif v.reclaiming or (v.stage == "frozen" and v.usage > 0
                              and v.swap_free >= v.usage + reserve_for(cfg.reserve_bytes, v.priority)):
            room_made.add(pool)
    for i in yielding:
        pool, v, _ = looks[i]
        out[i] = Decision("freeze", f"yields to a {PRIORITIES[pressed[pool]]} priority call short of memory "
                                    f"({_mib(max(v.headroom, 0))} headroom): frozen at {_mib(v.usage)}")
    for i, (pool, v, d) in enumerate(looks):
        if pool not in room_made or _rank(v.priority) != pressed[pool]:
            continue
        why = f"lower-priority calls make room ({_mib(max(v.headroom, 0))} headroom)"
        if v.stage == "running" and d.action in HOLDING:
            out[i] = NOTHING
        elif v.stage == "throttled" and d.action in HOLDING + ("none",):
            out[i] = Decision("release", why)
        elif v.stage == "frozen" and d.action in HOLDING + ("none",):
            out[i] = Decision("thaw", why)
    return out


def can_act(stage: str, headroom: int, priority: str, cfg: LadderConfig) -> bool:
    """False when decide() would say nothing whatever the call's usage and stall: a running call in a workload
    with at least twice its reserve free. The controller then skips observing the call (under TCG its 20 Hz
    reads of every call's files cost the agents 2.6x their allocation latency)."""
    return stage != "running" or headroom < 2 * reserve_for(cfg.reserve_bytes, priority)


def next_tick(rooms: list[tuple[int, str]], settled: bool, tick_s: float, cfg: LadderConfig,
              kernel_first: bool = False) -> float:
    """How long the controller may sleep before its next look. rooms: (headroom, priority) of every workload;
    settled: no call throttled or frozen and no agent waiting or holding the turn (those need every tick).
    While a workload is far from where the ladder acts (twice its reserve), even the fastest burst
    (`burst_bytes_per_s`) needs time to get there: the controller sleeps that long, at most `calm_tick_s`, never
    less than `tick_s`. What it would do in between is nothing (can_act is false for every call): its reads of
    every workload 20 times a second cost the agents CPU (under TCG, 8 ms per tick for three workloads).
    kernel_first: the in-kernel policy takes the first rung (a delay within a charge batch, and the agents'
    turns) and its events wake the controller at once; the controller's own looks then only time the rungs that
    follow (freeze after `freeze_after_s` stalled, thaw, kill), and a quarter of `freeze_after_s` is their
    shortest spacing."""
    if kernel_first:
        tick_s = max(tick_s, cfg.freeze_after_s / 4)
    if not settled or not rooms:
        return tick_s if not settled else max(tick_s, cfg.calm_tick_s)
    slack = min(room - 2 * reserve_for(cfg.reserve_bytes, priority) for room, priority in rooms)
    return max(tick_s, min(cfg.calm_tick_s, slack / cfg.burst_bytes_per_s))


def next_stage(stage: str, action: str) -> str:
    return {"throttle": "throttled", "release": "running", "freeze": "frozen", "reclaim": "swapped",
            "thaw": "running", "kill": "killed"}.get(action, stage)


@dataclass(frozen=True)
class AgentView:
    """One tick's observation of a workload's agent leaf."""
    name: str           # its workload
    priority: str
    usage: int          # memory.current of the agent leaf
    headroom: int       # what its workload can still take
    idle_for: float     # seconds since its usage last rose
    waiting: bool       # held at memory.high until its turn


def agent_turns(agents: list[AgentView], turn: str | None,
                cfg: LadderConfig) -> tuple[str | None, list[tuple[str, Decision]]]:
    """Who of the agents grows while their shared headroom is short: the turn's holder afterwards (None: no
    shortage, or nobody grew in it) and a decision for each agent whose state changes: "throttle" (wait at
    memory.high = usage) or "release" (go on)."""
    short = {a.name: a for a in agents if a.headroom < reserve_for(cfg.reserve_bytes, a.priority)}
    out = [(a.name, Decision("release", f"headroom back to {_mib(max(a.headroom, 0))}"))
           for a in agents if a.waiting and a.name not in short]
    growing = [a for a in short.values() if a.idle_for < cfg.growing_s]
    holder = short.get(turn)
    if growing:
        best = max(growing, key=lambda a: (_rank(a.priority), a.usage, a.name))
        if holder is None or _rank(best.priority) > _rank(holder.priority):
            holder = best
    if holder is not None and holder.waiting:
        out.append((holder.name, Decision("release", f"its turn to grow ({_mib(max(holder.headroom, 0))} left "
                                                     f"under the shared limit)")))
    for a in growing:
        if a is not holder and not a.waiting and a.priority != "high":
            out.append((a.name, Decision(
                "throttle", f"agents share {_mib(max(a.headroom, 0))} of headroom ({a.priority} priority reserve "
                            f"{_mib(reserve_for(cfg.reserve_bytes, a.priority))}): waits at {_mib(a.usage)} "
                            f"while {holder.name} grows", high=a.usage)))
    return (holder.name if holder else None), out
