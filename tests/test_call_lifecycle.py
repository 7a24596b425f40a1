"""When the controller takes an empty tool-call cgroup for a finished call (agentcg.controller)."""
import time

from agentcg.controller import CALL_START_GRACE_S, CallState, Controller
from agentcg.layout import ToolCallMeta


def meta(pid=None):
    return ToolCallMeta("w1", "call-1", "pytest", "test", 1 << 20, time.time() - 3600, pid=pid)


def test_an_empty_call_its_launcher_has_not_filled_is_not_over():
    assert not Controller._call_over(CallState(), meta())
    assert not Controller._call_over(CallState(), None)


def test_an_empty_call_is_over_once_a_process_was_in_it():
    assert Controller._call_over(CallState(was_populated=True), meta())


def test_an_empty_call_is_over_once_its_launcher_recorded_the_pid():
    assert Controller._call_over(CallState(), meta(pid=1234))


def test_a_call_no_process_ever_entered_is_over_after_the_grace():
    assert Controller._call_over(CallState(first_seen=time.monotonic() - CALL_START_GRACE_S - 1), meta())


# Headroom: the tightest memory.max minus usage among a workload and its ancestors, else the host's available.
def test_headroom_is_the_tightest_ancestor_limit(tmp_path):
    from agentcg.cgroup import Cgroup
    from agentcg.controller import workload_headroom

    def node(path, limit, current):
        path.mkdir(parents=True)
        (path / "memory.max").write_text(f"{limit}\n")
        (path / "memory.current").write_text(f"{current}\n")
        return path
    parent = node(tmp_path / "parent", 1000, 900)          # 100 left for everyone below
    w1 = node(parent / "w1", "max", 50)
    w2 = node(parent / "w2", 60, 20)                        # 40 left: tighter than the parent
    memo = {}
    assert workload_headroom(Cgroup(w1), 10_000, memo) == 100
    assert workload_headroom(Cgroup(w2), 10_000, memo) == 40
    assert memo[str(parent)] == 100, "the shared parent is read once per tick"
    assert workload_headroom(Cgroup(w1), 30) == 30, "the host has less than the limits allow"
