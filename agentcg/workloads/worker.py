"""The replayed agent: one long-lived process per agent that holds the agent's memory and forks its tool calls.

python -m agentcg.workloads.worker PLAN.json

Started by agentcg.workloads.engine inside `<agent>/agent` (Cgroup.spawn). Why one worker per agent that forks: a new
interpreter costs ~1 s under TCG and an agent makes 50-120 tool calls, so tool calls are `fork()`s of this
process; the child moves itself into `<agent>/tools/call-N` (writes its pid into that cgroup.procs, which the
worker creates just before) before it allocates anything, so every byte a tool call touches is charged there.
Only the standard library is imported (startup cost, and the footprint the agent's cgroup carries).

Protocol. The plan file (written by agentcg.workloads.engine.worker_plan) holds the chunk size, the cgroup paths and the
events in time order, times in wall seconds after "go", memory in (already scaled) bytes:
  {"k": "a", "t", "b"}                   the agent process holds b bytes from t on
  {"k": "c", "t", "n", "g", "p", "h", "o"} fork tool call n (of call group g); p = [[dt, bytes], ...] its memory
                                         over time after its own start; h: it keeps its last value after its
                                         last point (retry-loop accumulation) until released; o: it carries
                                         its group's window (reports checkpoints)
  {"k": "w", "t", "g"}                   wait until every call of group g has finished (exited, or is holding)
  {"k": "r", "t", "n": [..]}             release held calls (they exit and free their memory)
stdin: one line "go <time.monotonic() of the start>" once every agent is ready (one shared clock for all).
stdout: JSON lines: ready (pid, overhead), fork (n, pid), call (n, pid, times, exit status, chunk latencies,
the call cgroup's memory.events and memory.pressure: the worker removes the cgroup once the call is reaped),
progress (checkpoints [[planned t, actual t]] of the agent and, as "ccp", of the calls that carry a window; the
agent's own chunk latencies), end (elapsed, delay).
A tool call's child reports to the worker over a socketpair: "L <us> ..." chunk latencies, "P <bytes>" its peak,
"C <planned> <actual>" a checkpoint of the call that carries its window, "D" when it keeps memory,
"E <text>" on an error; end of file means it exited (or was killed).

The process model ("model": "process", the paper's): the agent holds "base" bytes from before "ready" and each
"a" event's bytes (base included) as `Steps`, no tool calls; one latency sample per growth.

Memory is steered by the cgroup's own memory.current (accounting "cgroup"): the interpreter's footprint, fork
overheads and charge batching are then part of what is held, so the cgroup shows the trace, not the trace plus
Python. Allocation is in chunks (mmap + touching every byte, no transparent huge pages so frees are immediate);
each chunk's time is a latency sample. Accounting "self" counts only the chunks (hosts without cgroups: tests).

Time: work is never skipped. When allocating memory (or, for the agent, waiting for its tool calls) makes a
process late for its next step, its schedule shifts by the lateness: a throttled tool call takes longer and the
agent, which waits for it, finishes later, as a real agent would. The replay's own overheads (fork, mkdir,
cgroup migration, sleep overshoot) do not shift anything: the process catches up. The shift is reported (delay)
and shows as achieved speed below 1.
"""
from __future__ import annotations

import gc
import json
import mmap
import os
import select
import socket
import sys
import time

LATE_TOLERANCE_S = 0.002  # lateness below this (sleep overshoot) does not shift the schedule
FLUSH_EVERY_S = 0.1
_MAP = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
# What a page holds: half random, half zeros, so it compresses about 2:1 as program memory does. A constant fill
# would be stored by zram as one word per page (its same-filled pages) and make swap look free.
FILL = os.urandom(2048) + bytes(2048)


def _chunk(size: int, dontfork: bool) -> mmap.mmap:
    """An anonymous mapping, without transparent huge pages (so frees are immediate), not inherited by forks when
    dontfork (the agent's chunks must not be shared with, and kept alive by, its forked calls)."""
    area = mmap.mmap(-1, size, flags=_MAP)
    try:
        area.madvise(mmap.MADV_NOHUGEPAGE)
    except OSError:
        pass  # a kernel without transparent huge pages (EINVAL): nothing to turn off
    if dontfork:
        area.madvise(mmap.MADV_DONTFORK)
    return area


class Held:
    """Anonymous memory a process holds in equal chunks, steered towards a target by a memory counter."""

    def __init__(self, chunk: int, counters: list[str] | None, dontfork: bool):
        self.chunk = chunk
        self.pattern = FILL * (chunk // len(FILL)) + FILL[:chunk % len(FILL)]
        self.chunks: list[mmap.mmap] = []
        self.fds = [os.open(path, os.O_RDONLY) for path in counters or []]
        self.dontfork = dontfork  # the agent's chunks must not be shared with (and kept alive by) forked calls
        self.latencies: list[float] = []  # seconds per chunk, not yet reported
        self.peak = 0

    def current(self) -> int:
        value = sum(int(os.pread(fd, 64, 0)) for fd in self.fds) if self.fds else len(self.chunks) * self.chunk
        if value > self.peak:
            self.peak = value
        return value

    def adjust(self, target: int) -> None:
        """Allocate or free chunks until the counter is within half a chunk of target."""
        half = self.chunk // 2
        current = self.current()
        bound = max(target - current, 0) // self.chunk * 2 + 8  # a counter that never moves must not loop forever
        while current < target - half and bound > 0:
            started = time.perf_counter()
            area = _chunk(self.chunk, self.dontfork)
            area.write(self.pattern)
            self.latencies.append(time.perf_counter() - started)
            self.chunks.append(area)
            bound -= 1
            current = self.current()
        while current > target + half and self.chunks:
            self.chunks.pop().close()
            current = self.current()


class Steps:
    """Memory held as the AgentCgroup paper's replayer holds it (the process model): a growth allocates exactly
    the difference, in chunks of at most `chunk` bytes (whole pages), touching one byte per page, and is one
    latency sample; a fall frees whole chunks, newest first, until the total is at or below the target. Counts
    its own chunks (accounting "self")."""

    PAGE = 4096

    def __init__(self, chunk: int, dontfork: bool):
        self.chunk = max(chunk // self.PAGE, 1) * self.PAGE
        self.chunks: list[mmap.mmap] = []
        self.total = 0
        self.dontfork = dontfork
        self.latencies: list[float] = []
        self.peak = 0

    def current(self) -> int:
        return self.total

    def adjust(self, target: int) -> None:
        target = -(-target // self.PAGE) * self.PAGE  # whole pages
        if target > self.total:
            started = time.perf_counter()
            while self.total < target:
                size = min(self.chunk, target - self.total)
                area = _chunk(size, self.dontfork)
                area[::self.PAGE] = b"\x01" * (size // self.PAGE)
                self.chunks.append(area)
                self.total += size
            self.latencies.append(time.perf_counter() - started)
            self.peak = max(self.peak, self.total)
        while self.chunks and self.total > target:
            area = self.chunks.pop()
            self.total -= len(area)
            area.close()


class Reporter:
    """JSON lines to the replayer (unbuffered writes: nothing is duplicated into forked children)."""

    def __init__(self, fd: int = 1):
        self.fd = fd

    def send(self, obj: dict) -> None:
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def _micros(latencies: list[float]) -> list[int]:
    return [int(x * 1e6) for x in latencies]


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def counters(cgroup: str, plan: dict) -> list[str] | None:
    """The files whose sum is what a cgroup holds (accounting "cgroup"): memory.current, plus memory.swap.current
    when the replay has swap (memory pushed out is still held); None: count the chunks (accounting "self")."""
    if plan["accounting"] != "cgroup":
        return None
    names = plan["counter"] if isinstance(plan["counter"], list) else [plan["counter"]]
    return [os.path.join(cgroup, name) for name in names]


def run_call(path: str, event: dict, sock: socket.socket, plan: dict, due: float, t0: float) -> None:
    """Body of a forked tool call: join its cgroup, follow its memory points, report, maybe hold, exit.
    Its schedule starts when the call was due: fork and cgroup migration (an RCU grace period, slow under TCG)
    are part of the call's time and are caught up; only allocating late shifts the schedule.
    The call that carries its group's window ("o") reports where it is on the plan as it starts each point
    ("C <planned> <actual>", both in seconds after go): during the window the memory follows its schedule, which
    shifts when it allocates late, not the agent's."""
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write("0")
    # A tool call does not keep its agent's OOM protection (agentcg exec resets it the same way; a no-op when
    # nothing protected the agent).
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("0")
    held = Held(plan["chunk"], counters(path, plan), dontfork=False)
    points = event["p"]
    origin = due
    owner = bool(event.get("o"))
    for j, (dt, target) in enumerate(points):
        _sleep_until(origin + dt)
        if owner:
            sock.sendall(f"C {event['t'] + dt!r} {time.monotonic() - t0!r}\n".encode())
        held.adjust(int(target))
        worked = bool(held.latencies)
        if worked:
            sock.sendall(("L " + " ".join(map(str, _micros(held.latencies))) + "\n").encode())
            held.latencies.clear()
        if worked and j + 1 < len(points):
            late = time.monotonic() - (origin + points[j + 1][0])
            if late > LATE_TOLERANCE_S:
                origin += late
    sock.sendall(f"P {held.peak}\n".encode())
    if event["h"]:
        sock.sendall(b"D\n")
        while sock.recv(64):  # hold until the worker closes its end (release, or the worker died)
            pass


class Agent:
    """The agent process: follows its own memory plan, forks tool calls, waits for them like an agent does."""

    def __init__(self, plan: dict, out: Reporter):
        self.plan = plan
        self.out = out
        self.base = None
        if plan.get("model") == "process":  # the base is held before the start and is no latency sample
            self.base = Steps(plan["chunk"], dontfork=True)
            self.base.adjust(int(plan.get("base", 0)))
            self.held = Steps(plan["chunk"], dontfork=True)
        else:
            self.held = Held(plan["chunk"], counters(plan["leaf"], plan), dontfork=True)
        self.calls: dict[int, dict] = {}
        self.checkpoints: list[list[float]] = []
        self.call_checkpoints: list[list[float]] = []  # the window owners' (see run_call)
        self.t0 = 0.0
        self.last_flush = 0.0

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    # --- tool calls ---------------------------------------------------------------------------------------

    def start_call(self, event: dict, due: float) -> None:
        n = event["n"]
        path = os.path.join(self.plan["tools"], f"call-{n}")
        os.mkdir(path)
        mine, theirs = socket.socketpair()
        started = self.elapsed()
        pid = os.fork()
        if pid == 0:  # the tool call
            code = 0
            try:
                mine.close()
                for other in self.calls.values():  # or a held call would never see its release
                    if other["sock"] is not None:
                        other["sock"].close()
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                run_call(path, event, theirs, self.plan, due, self.t0)
            except BaseException as e:  # noqa: BLE001 - report anything, then leave without cleanup
                code = 1
                try:
                    theirs.sendall(f"E {type(e).__name__}: {e}\n".replace("\n", " ").encode() + b"\n")
                except OSError:
                    pass
            os._exit(code)
        theirs.close()
        self.calls[n] = {"n": n, "pid": pid, "sock": mine, "group": event["g"], "hold": bool(event["h"]),
                         "start": started, "done": None, "lat": [], "peak": None, "error": None, "buf": b""}
        self.out.send({"ev": "fork", "n": n, "pid": pid, "at": started})

    def poll_calls(self, timeout: float) -> None:
        """Read what running calls report (for at most timeout seconds); reap the ones that exited."""
        live = {c["sock"]: c for c in self.calls.values() if c["sock"] is not None}
        if not live:
            if timeout > 0:
                time.sleep(timeout)
            return
        readable, _, _ = select.select(list(live), [], [], max(timeout, 0.0))
        for sock in readable:
            call = live[sock]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.finish(call)
                continue
            call["buf"] += data
            *lines, call["buf"] = call["buf"].split(b"\n")
            for line in lines:
                kind, _, rest = line.decode(errors="replace").partition(" ")
                if kind == "L":
                    call["lat"] += [int(x) for x in rest.split()]
                elif kind == "C":
                    planned, actual = rest.split()
                    self.call_checkpoints.append([float(planned), round(float(actual), 6)])
                elif kind == "P":
                    call["peak"] = int(rest)
                elif kind == "D":
                    call["done"] = self.elapsed()
                elif kind == "E":
                    call["error"] = rest

    def finish(self, call: dict) -> None:
        """The call's process exited (or is being released): reap it, report, remove its cgroup."""
        if call["sock"] is not None:
            call["sock"].close()
            call["sock"] = None
        _, status = os.waitpid(call["pid"], 0)
        now = self.elapsed()
        if call["done"] is None:
            call["done"] = now
        report = {"ev": "call", "n": call["n"], "pid": call["pid"], "start": call["start"], "done": call["done"],
                  "exit_at": now, "status": os.waitstatus_to_exitcode(status), "hold": call["hold"],
                  "lat": call["lat"], "peak": call["peak"], "error": call["error"]}
        if self.plan["accounting"] == "cgroup":
            # Its counters go into the report and the empty cgroup goes away: a memcg's per-CPU data and files
            # are charged to the cgroup that created it (ours), and an agent makes a hundred calls.
            path = os.path.join(self.plan["tools"], f"call-{call['n']}")
            for key, file in (("memory_events", "memory.events"), ("memory_pressure", "memory.pressure")):
                try:
                    with open(os.path.join(path, file)) as f:
                        report[key] = f.read()
                except OSError:
                    pass
            try:
                os.rmdir(path)
            except OSError:
                pass
        self.out.send(report)
        call["reaped"] = True

    def wait_group(self, group: int) -> None:
        while any(c["group"] == group and c["done"] is None for c in self.calls.values()):
            self.poll_calls(1.0)

    def release(self, n: int) -> None:
        call = self.calls.get(n)
        if call is not None and not call.get("reaped"):
            self.finish(call)  # closing our end is the release: the child sees end of file and exits

    # --- the agent's timeline -----------------------------------------------------------------------------

    def sleep_until(self, deadline: float) -> None:
        while True:
            remaining = deadline - time.monotonic()
            self.poll_calls(max(remaining, 0.0))
            if remaining <= 0:
                return

    def flush(self) -> None:
        self.out.send({"ev": "progress", "cp": self.checkpoints, "ccp": self.call_checkpoints,
                       "lat": _micros(self.held.latencies)})
        self.checkpoints, self.call_checkpoints = [], []
        self.held.latencies.clear()
        self.last_flush = time.monotonic()

    def run(self, t0: float) -> None:
        self.t0 = origin = t0
        events = self.plan["events"]
        for i, event in enumerate(events):
            self.sleep_until(origin + event["t"])
            began = time.monotonic()
            kind = event["k"]
            chunks_before = len(self.held.latencies)
            if kind == "a":
                self.held.adjust(int(event["b"]) - (self.base.total if self.base else 0))
            elif kind == "c":
                self.start_call(event, origin + event["t"])
            elif kind == "w":
                self.wait_group(event["g"])
            elif kind == "r":
                for n in event["n"]:
                    self.release(n)
            now = time.monotonic()
            # Where the agent is on the plan: a wait is passed when it ends, everything else when it starts.
            self.checkpoints.append([event["t"], round((now if kind == "w" else began) - t0, 6)])
            worked = kind == "w" or len(self.held.latencies) > chunks_before
            if worked and i + 1 < len(events):
                late = now - (origin + events[i + 1]["t"])
                if late > LATE_TOLERANCE_S:
                    origin += late
            if now - self.last_flush >= FLUSH_EVERY_S:
                self.flush()
        for n in list(self.calls):
            self.release(n)
        self.flush()
        self.out.send({"ev": "end", "elapsed": self.elapsed(), "delay": round(origin - t0, 6)})


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m agentcg.workloads.worker PLAN.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        plan = json.load(f)
    gc.disable()  # no collector passes: they would touch (and copy) every object page in forked calls
    agent = Agent(plan, Reporter(1))
    agent.out.send({"ev": "ready", "pid": os.getpid(), "overhead": agent.held.current()})
    words = sys.stdin.readline().split()
    if len(words) != 2 or words[0] != "go":
        return 3  # the replayer gave up before starting
    agent.run(float(words[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
