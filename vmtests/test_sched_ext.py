"""agentcg's sched_ext scheduler (bpf/scx_agent.bpf.c, driven by agentcg.enforce.sched) on a kernel with sched_ext.

Each test checks one promise: the scheduler attaches and detaches cleanly, short tool calls under CPU-bound bulk
neighbours complete faster than with the default scheduler while the bulk work keeps running, an error in the
scheduler reverts the kernel to its default scheduler with the reason reported (the kernel logs the reason and a
backtrace without a WARNING header, which the splat scan does not flag), and a second scheduler is refused.
Timing assertions are ratios against the default scheduler measured in the same test (TCG guests are slow).
"""
import errno
import json
import os
import statistics
import subprocess
import sys
import time

import pytest

from agentcg.cgroup import parse_keyed, reap
from agentcg.enforce import sched
from agentcg.enforce.memcg_bpf import bpf_dir
from agentcg.enforce.sched import BULK, LATENCY, SchedError, SchedExt

pytestmark = pytest.mark.requires("sched_ext")

BUSY_LOOP = ["sh", "-c", "while :; do :; done"]
# A short interactive tool call (a `git status`, a `grep`): think for 20 ms, then a fixed burst of CPU work;
# prints how long each burst took to complete (milliseconds).
SHORT_CALLS = """
import json, sys, time
work, repeats = int(sys.argv[1]), int(sys.argv[2])
took = []
for _ in range(repeats):
    time.sleep(0.02)
    t0 = time.perf_counter()
    for _ in range(work):
        pass
    took.append((time.perf_counter() - t0) * 1e3)
print(json.dumps(took))
"""


@pytest.fixture
def scx():
    """agentcg's scheduler, attached; detached (and its loader reaped) after the test."""
    s = SchedExt()
    s.start(bpf_dir())
    yield s
    s.stop()


def wait_until(predicate, timeout, what):
    """Poll `predicate` every 10 ms for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


def usage_usec(cg):
    return cg.keyed("cpu.stat")["usage_usec"]


def percentile(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def short_calls(cg, work, repeats):
    """Run the short tool calls in cg; each burst's completion time in milliseconds."""
    proc = cg.spawn([sys.executable, "-c", SHORT_CALLS, str(work), str(repeats)], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    return json.loads(out)


def calibrated_work(cg, target_ms=20.0):
    """Loop iterations that take about target_ms with the machine to itself."""
    took = short_calls(cg, 20000, 3)
    return max(1000, int(20000 * target_ms / statistics.median(took)))


def start_busy(cg, count):
    return [cg.spawn(BUSY_LOOP) for _ in range(count)]


def stop_busy(procs):
    for p in procs:
        p.kill()
    for p in procs:
        reap(p)


# Attaching makes agentcg the system's scheduler (state "enabled", ops "agentcg") and counts what it schedules;
# detaching gives the CPU back to the default scheduler and leaves no BPF object, process or cgroup behind.
def test_scheduler_attaches_and_detaches_cleanly():
    assert sched.available(), sched.kernel_state()
    s = SchedExt()
    s.start(bpf_dir())
    try:
        assert sched.kernel_state() == "enabled"
        assert (sched.SCHED_EXT / "root" / "ops").read_text().strip() == "agentcg"
        assert s.running and s.poll() is None
        wait_until(lambda: s.stats()["dispatch_normal"] + s.stats()["direct"] > 0, 10, "tasks scheduled")
    finally:
        s.stop()
    assert sched.kernel_state() == "disabled"
    assert not s.running and s.returncode == 0
    s.stop()  # idempotent


# Short tool calls (20 ms bursts of CPU) in a LATENCY cgroup, while three other agents' test suites (BULK cgroups,
# a busy loop per CPU each) saturate the machine, complete faster under ours than under the default scheduler,
# measured in the same test against running alone; the bulk loops still get most of the machine. agentcg's own
# fallback without sched_ext (cpu.weight by class) is measured beside them, and the trials alternate their order
# (default, weights, ours; then ours, weights, default) so neither drift nor warm-up favours one.
def test_short_tool_calls_complete_faster_than_default_and_bulk_is_not_starved(cg, record_measurement):
    cg.enable("cpu")
    lat = cg.child("lat")
    ncpu = os.cpu_count()
    work, repeats = calibrated_work(lat), 13
    alone = short_calls(lat, work, 2 * repeats)
    bulks = [cg.child(f"bulk{i}") for i in range(3)]
    busy = [p for b in bulks for p in start_busy(b, ncpu)]
    took = {"default": [], "weights": [], "sched_ext": []}
    used = {k: [0.0, 0.0] for k in took}  # bulk CPU microseconds, wall seconds
    stats = {}

    def bulk_usage():
        return sum(usage_usec(b) for b in bulks)

    def trial(kind):
        weights = kind == "weights"
        sched.apply_cpu_weight(lat.path, LATENCY if weights else sched.NORMAL)
        for b in bulks:
            sched.apply_cpu_weight(b.path, BULK if weights else sched.NORMAL)
        s = None
        if kind == "sched_ext":
            s = SchedExt()
            s.start(bpf_dir())
            s.set_class(lat.path, LATENCY, 1)
            for i, b in enumerate(bulks):
                s.set_class(b.path, BULK, 2 + i)
        try:
            t0, u0 = time.monotonic(), bulk_usage()
            took[kind] += short_calls(lat, work, repeats)
            used[kind][0] += bulk_usage() - u0
            used[kind][1] += time.monotonic() - t0
            if s:
                for k, v in s.stats().items():
                    stats[k] = stats.get(k, 0) + v
                assert s.poll() is None, s.poll()
        finally:
            if s:
                s.stop()
    try:
        for kind in ("default", "weights", "sched_ext", "sched_ext", "weights", "default"):
            trial(kind)
    finally:
        stop_busy(busy)

    med = statistics.median
    share = {k: u / (t * 1e6 * ncpu) for k, (u, t) in used.items()}
    result = {
        "alone_p50_ms": med(alone), "default_p50_ms": med(took["default"]),
        "default_p95_ms": percentile(took["default"], 95), "weights_p50_ms": med(took["weights"]),
        "weights_p95_ms": percentile(took["weights"], 95),
        "agentcg_p50_ms": med(took["sched_ext"]), "agentcg_p95_ms": percentile(took["sched_ext"], 95),
        "default_slowdown": med(took["default"]) / med(alone), "weights_slowdown": med(took["weights"]) / med(alone),
        "agentcg_slowdown": med(took["sched_ext"]) / med(alone),
        "default_bulk_cpu_share": share["default"], "weights_bulk_cpu_share": share["weights"],
        "agentcg_bulk_cpu_share": share["sched_ext"],
        "busy_loops": 3 * ncpu, **{f"stat_{k}": v for k, v in stats.items()},
    }
    record_measurement("sched_latency", result)
    # the calls ran as LATENCY, the loops as BULK
    assert stats["enq_latency"] + stats["direct"] > 0 and stats["dispatch_bulk"] > 0, stats
    # measured 0.41-0.63 (TCG, 2 vCPUs sharing one host thread: 2x alone is the best a loaded machine gives)
    assert result["agentcg_p50_ms"] < 0.8 * result["default_p50_ms"], result
    assert result["agentcg_bulk_cpu_share"] > 0.5, result


# Bulk CPU is shared between workloads, not between processes: an agent running one test process and an agent
# running three, on a machine they saturate, get about half each (at most one CPU's worth for the single
# process), where fairness between tasks gives the single process a quarter. Both splits are measured in the
# same test, the second with the same cgroups registered without a workload.
def test_bulk_cpu_is_shared_between_workloads_not_processes(cg, scx, record_measurement):
    cg.enable("cpu")
    one, three = cg.child("one"), cg.child("three")
    ncpu = os.cpu_count()
    busy = start_busy(one, max(1, ncpu // 2)) + start_busy(three, 3 * max(1, ncpu // 2))

    def share_of_one(seconds=3.0):
        u1, u3 = usage_usec(one), usage_usec(three)
        time.sleep(seconds)  # a measurement window, not a wait for a condition
        d1, d3 = usage_usec(one) - u1, usage_usec(three) - u3
        return d1 / (d1 + d3)
    try:
        scx.set_class(one.path, BULK, 0)
        scx.set_class(three.path, BULK, 0)
        share_of_one(1.0)  # let the vtimes settle
        per_task = share_of_one()
        scx.set_class(one.path, BULK, 1)
        scx.set_class(three.path, BULK, 2)
        share_of_one(1.0)
        per_workload = share_of_one()
        assert scx.poll() is None, scx.poll()
    finally:
        stop_busy(busy)
    record_measurement("sched_workload_fairness", {"per_task_share_of_single": round(per_task, 3),
                                                   "per_workload_share_of_single": round(per_workload, 3)})
    assert per_task < 0.4, per_task  # 1 of 4 processes: about a quarter
    assert per_workload > 0.4 and per_workload > 1.4 * per_task, (per_task, per_workload)


# An error in the scheduler reverts the kernel to its default scheduler within a bound: the driver reports why,
# the loader exits, the tool call keeps running, and its class falls back to cpu.weight.
def test_scheduler_error_reverts_to_default_scheduler(cg, scx):
    cg.enable("cpu")
    call = cg.child("call")
    busy = start_busy(call, 1)
    try:
        scx.set_class(call.path, BULK, 1)
        scx.force_error()
        wait_until(lambda: sched.kernel_state() == "disabled", 10, "kernel reverted to the default scheduler")
        wait_until(lambda: scx.poll() is not None, 10, "driver saw the exit")
        assert scx.poll().startswith("scx_bpf_error: error forced by user space"), scx.poll()
        wait_until(lambda: scx.returncode is not None, 10, "loader exited")
        assert scx.returncode == 2 and not scx.running

        before = usage_usec(call)
        call.wait("cpu.stat", lambda t: parse_keyed(t)["usage_usec"] > before + 100_000, 10)
        assert busy[0].poll() is None

        sched.apply_cpu_weight(call.path, BULK)
        assert call.read_int("cpu.weight") == sched.CPU_WEIGHT[BULK]
    finally:
        stop_busy(busy)


# Only one sched_ext scheduler can be loaded: a second load is refused with EBUSY and a clear message, and the
# first keeps running.
def test_second_scheduler_is_refused(scx):
    second = SchedExt()
    with pytest.raises(SchedError) as info:
        second.start(bpf_dir())
    assert info.value.stage == "attach" and info.value.errno == errno.EBUSY, info.value
    assert "another sched_ext scheduler is loaded" in str(info.value)
    assert second.returncode == 1 and not second.running  # exited, reaped
    assert scx.running and sched.kernel_state() == "enabled"
    assert (sched.SCHED_EXT / "root" / "ops").read_text().strip() == "agentcg"


# The controller hands each cgroup's class to the scheduler; when the kernel reverts to its default scheduler,
# the controller logs why, keeps managing tool calls, and those run on their class's cpu.weight.
def test_controller_notices_a_revert_and_keeps_running_on_cpu_weight(cg, tmp_path):
    import threading

    from agentcg import ladder
    from agentcg.budgets import Budgets, load_config
    from agentcg.controller import Controller, EventLog
    from agentcg.layout import Layout
    layout = Layout(cg.path / "agentcg", tmp_path / "state")
    layout.ensure_root()
    layout.create_workload("w1")
    s = SchedExt()
    s.start(bpf_dir())
    log = EventLog(tmp_path / "events.jsonl")
    ctl = Controller(layout, Budgets(load_config()), ladder.LadderConfig(), log, interval=0.05, scheduler=s)
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,), daemon=True)
    thread.start()
    procs = []
    try:
        call, _ = layout.start_call("w1", "git status", "git", 32 << 20)
        procs.append(call.spawn(["sh", "-c", "while :; do sleep 0.01; done"]))
        before = s.stats()["enq_latency"]
        wait_until(lambda: s.stats()["enq_latency"] > before + 20, 20, "the call scheduled as LATENCY")

        s.force_error()
        wait_until(lambda: any(e["event"] == "sched_ext_reverted" for e in log.recent), 20, "revert noticed")
        reverted = next(e for e in log.recent if e["event"] == "sched_ext_reverted")
        assert "error forced by user space" in reverted["reason"] and reverted["fallback"] == "cpu.weight"
        assert sched.kernel_state() == "disabled" and ctl.scheduler is None and not s.running

        bulk, _ = layout.start_call("w1", "pytest -x", "test", 32 << 20)
        wait_until(lambda: any(e["event"] == "call_started" and e["call"] == bulk.name for e in log.recent), 10,
                   "the controller still manages new calls")
        assert bulk.read_int("cpu.weight") == sched.CPU_WEIGHT[BULK]
        assert call.read_int("cpu.weight") == sched.CPU_WEIGHT[LATENCY]
    finally:
        stop.set()
        thread.join(timeout=10)
        s.stop()
        stop_busy(procs)
        layout.remove_workload("w1")
