"""The cgroup v2 behaviour agentcg's controller relies on, checked on the kernel under test.

Sizes are small because these run under TCG; tolerances allow for charges moving in 64-page per-CPU batches.
Waits are on cgroup.events / memory.events / PSI triggers with bounds, never on guessed sleeps.
"""
import os
import select
import subprocess
import sys

import pytest

from agentcg.cgroup import reap

MIB = 1 << 20


def hog(cg, mib, hold=True):
    argv = [sys.executable, "-m", "agentcg.harness.memhog", str(mib)] + (["--hold"] if hold else [])
    return cg.spawn(argv, stdout=subprocess.DEVNULL)


# memory.high is a throttle, not a limit: a cgroup above it is slowed down by reclaim and sleeps, and its
# task is not OOM-killed. With no swap, anonymous memory cannot be reclaimed, so the task stays stuck at high.
@pytest.mark.requires("memcg")
def test_memory_high_throttles_without_oom(cg):
    cg.write("memory.high", 48 * MIB)
    proc = hog(cg, 128)
    cg.wait_key("memory.events", "high", lambda n: n >= 20, timeout=90)

    assert proc.poll() is None, "throttled task must still be alive"
    events = cg.keyed("memory.events")
    assert events["oom_kill"] == 0 and events["oom"] == 0
    assert cg.read_int("memory.current") <= 48 * MIB * 1.1
    assert cg.pressure("memory")["some"]["total"] > 0, "throttling shows as memory pressure stall"


# memory.max is a hard limit: a child cgroup over it OOM-kills inside itself, counts oom_kill in its own and its
# ancestors' memory.events, and leaves processes in sibling cgroups alone.
@pytest.mark.requires("memcg")
def test_memory_max_oom_kills_inside_child_only(cg):
    cg.enable("memory")
    greedy, sibling = cg.child("greedy"), cg.child("sibling")
    greedy.write("memory.max", 48 * MIB)
    bystander = sibling.spawn(["sleep", "600"])
    victim = hog(greedy, 128, hold=False)

    assert reap(victim, timeout=120) == -9, "the task over memory.max is OOM-killed"
    assert greedy.keyed("memory.events")["oom_kill"] >= 1
    assert cg.keyed("memory.events")["oom_kill"] >= 1, "oom_kill counts hierarchically"
    assert sibling.keyed("memory.events")["oom_kill"] == 0
    assert bystander.poll() is None, "the sibling's process survives"


def _heartbeat(cg):
    """A small process tree (shell + looping child) that prints a line every 50 ms."""
    script = "sleep 600 & while :; do echo beat; sleep 0.05; done"
    return cg.spawn(["sh", "-c", script], stdout=subprocess.PIPE)


def _beats_within(proc, seconds):
    """Drain the pipe; True if a new beat arrives within `seconds`."""
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
    ready, _, _ = select.select([fd], [], [], seconds)
    return bool(ready)


# cgroup.freeze stops every task of the subtree (reported as frozen 1 in cgroup.events) and thawing resumes them.
@pytest.mark.requires("cgroup_freeze")
def test_freeze_stops_and_thaw_resumes_process_tree(cg):
    proc = _heartbeat(cg)
    assert _beats_within(proc, 10), "tree runs before freezing"
    assert len(cg.procs()) >= 2

    cg.freeze(True)
    cg.wait_frozen(True, timeout=10)
    assert not _beats_within(proc, 1.0), "no output while frozen"

    cg.freeze(False)
    cg.wait_frozen(False, timeout=10)
    assert _beats_within(proc, 10), "output resumes after thaw"
    proc.stdout.close()


# cgroup.kill sends SIGKILL to every process in the cgroup and all its descendants at once.
@pytest.mark.requires("cgroup_kill")
def test_kill_kills_whole_subtree(cg):
    outer = cg.child("tool")
    inner = outer.child("step")
    procs = [outer.spawn(["sleep", "600"]), inner.spawn(["sh", "-c", "sleep 600 & sleep 600"])]
    inner.wait("cgroup.procs", lambda text: len(text.split()) >= 2, timeout=10)  # the shell has forked

    cg.kill()
    cg.wait_populated(False, timeout=10)
    assert [reap(p) for p in procs] == [-9, -9]
    assert not outer.populated() and not inner.populated()


# A PSI trigger on a cgroup's memory.pressure wakes poll() with POLLPRI once the cgroup stalls long enough.
@pytest.mark.requires("memcg", "psi")
def test_psi_trigger_fires_under_memory_pressure(cg):
    cg.write("memory.high", 32 * MIB)
    fd = os.open(cg.path / "memory.pressure", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(fd, b"some 100000 1000000\0")  # 100 ms of stall within any 1 s window
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        assert poller.poll(0) == [], "no pressure before the workload starts"
        hog(cg, 128)
        events = poller.poll(60_000)
    finally:
        os.close(fd)
    assert events and events[0][1] & select.POLLPRI, "trigger fired within 60 s"
