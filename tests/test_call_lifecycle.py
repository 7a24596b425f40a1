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


def node(path, limit, current):
    path.mkdir(parents=True)
    (path / "memory.max").write_text(f"{limit}\n")
    (path / "memory.current").write_text(f"{current}\n")
    return path


# Headroom: the tightest memory.max minus usage among a workload and its ancestors, else the host's available.
def test_headroom_is_the_tightest_ancestor_limit(tmp_path):
    from agentcg.cgroup import Cgroup
    from agentcg.controller import workload_headroom

    parent = node(tmp_path / "parent", 1000, 900)          # 100 left for everyone below
    w1 = node(parent / "w1", "max", 50)
    w2 = node(parent / "w2", 60, 20)                        # 40 left: tighter than the parent
    memo = {}
    assert workload_headroom(Cgroup(w1), 10_000, memo) == 100
    assert workload_headroom(Cgroup(w2), 10_000, memo) == 40
    assert memo[str(parent)] == (100, str(parent)), "the shared parent is read once per tick"
    assert workload_headroom(Cgroup(w1), 30) == 30, "the host has less than the limits allow"


def test_a_workloads_pool_is_where_its_tightest_limit_is(tmp_path):
    """Workloads under one binding limit compete for one headroom (ladder.yields works within a pool)."""
    from agentcg.cgroup import Cgroup
    from agentcg.controller import workload_room

    parent = node(tmp_path / "parent", 1000, 900)
    w1, w2 = node(parent / "w1", "max", 50), node(parent / "w2", 60, 20)
    assert workload_room(Cgroup(w1), 10_000) == (100, str(parent))
    assert workload_room(Cgroup(w2), 10_000) == (40, str(w2))
    assert workload_room(Cgroup(w1), 30) == (30, ""), "the host's memory binds: the host's pool"


def test_swap_room_is_the_hosts_free_swap_within_every_swap_limit_above(tmp_path):
    """A parent at memory.swap.max 0 (a replay without swap, a kubelet's NoSwap) leaves its calls no swap, whatever
    the host has: the ladder must not count on swap there."""
    from agentcg.controller import swap_room

    def swap(path, limit, current):
        (path / "memory.swap.max").write_text(f"{limit}\n")
        (path / "memory.swap.current").write_text(f"{current}\n")
        return path
    parent = swap(node(tmp_path / "parent", 1000, 900), 0, 0)
    call = swap(node(parent / "w" / "tools" / "call-1", "max", 10), "max", 0)
    assert swap_room(str(call), 5000, {}, lambda p: open(p).read(), {}) == 0
    (parent / "memory.swap.max").write_text("300\n")
    (parent / "memory.swap.current").write_text("100\n")
    assert swap_room(str(call), 5000, {}, lambda p: open(p).read(), {}) == 200
    assert swap_room(str(call), 150, {}, lambda p: open(p).read(), {}) == 150, "the host's swap is the bound"
