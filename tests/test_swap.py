"""Swap as a replay dimension, the parts a host can check: what a replayed process counts as held, what its
pages hold (zram must not get them for free), and the controller's clock on a replay."""
import zlib

import pytest

from agentcg.eval.agentcg_policy import TICK_FLOOR_S, replay_clock
from agentcg.ladder import LadderConfig
from agentcg.vocab import MIB
from agentcg.workloads import worker
from agentcg.workloads.engine import worker_plan
from agentcg.workloads.plan import build_plan
from agentcg.workloads.policy import AgentCgroups
from agentcg.workloads.scenario import AgentSpec, ScenarioError, load_scenario
from agentcg.workloads.traces import Sample, Trace


def test_with_swap_a_process_counts_what_it_swapped_out_as_held():
    assert worker.counters("/cg/a", {"accounting": "cgroup", "counter": ["memory.current", "memory.swap.current"]}) \
        == ["/cg/a/memory.current", "/cg/a/memory.swap.current"]
    assert worker.counters("/cg/a", {"accounting": "cgroup", "counter": "memory.current"}) == ["/cg/a/memory.current"]
    assert worker.counters("/cg/a", {"accounting": "self", "counter": "memory.current"}) is None


def test_the_engine_asks_for_the_swap_counter_only_with_swap(tmp_path):
    from agentcg.cgroup import Cgroup
    trace = Trace("t", "haiku", [Sample(0, 10 * MIB, 0), Sample(1, 20 * MIB, 0)], [])
    cg = AgentCgroups(AgentSpec("a", trace), 1, 1, Cgroup(tmp_path), Cgroup(tmp_path / "agent"),
                      Cgroup(tmp_path / "tools"))
    plan = build_plan(trace).scaled(1, 1)
    assert worker_plan(plan, cg, 4096, "cgroup")["counter"] == "memory.current"
    assert worker_plan(plan, cg, 4096, "cgroup", swap="zram")["counter"] == ["memory.current", "memory.swap.current"]


def test_replayed_pages_compress_like_program_memory_not_like_a_constant():
    page = worker.FILL
    assert len(page) == 4096
    ratio = len(page) / len(zlib.compress(page))
    assert 1.5 < ratio < 3, f"a page compresses {ratio:.1f}:1"
    assert len(set(page)) > 200, "not a same-filled page (zram would store it as one word)"


def test_the_controllers_clock_runs_at_the_replays_speed():
    d = LadderConfig()
    cfg, tick, delays = replay_clock(reserve=5 * MIB, interval=0.05, speed=5, mem_scale=0.05)
    assert cfg.reserve_bytes == 5 * MIB
    assert cfg.freeze_after_s == pytest.approx(d.freeze_after_s / 5)
    assert cfg.kill_after_s == pytest.approx(d.kill_after_s / 5)
    assert cfg.swap_wait_s == pytest.approx(d.swap_wait_s / 5)
    assert cfg.growing_s == pytest.approx(max(d.growing_s / 5, 2 * 0.01))
    assert cfg.burst_bytes_per_s == pytest.approx(d.burst_bytes_per_s * 0.05 * 5)
    assert tick == pytest.approx(0.01) and delays == (4, 400)
    _, tick, delays = replay_clock(reserve=0, interval=0.05, speed=50, mem_scale=0.05)
    assert tick == TICK_FLOOR_S and delays == (1, 40), "no shorter than the floor, whole milliseconds"
    cfg, tick, delays = replay_clock(reserve=0, interval=0.05, speed=1, mem_scale=1)
    assert (cfg.freeze_after_s, cfg.kill_after_s, tick, delays) == (d.freeze_after_s, d.kill_after_s, 0.05, (20, 2000))


def test_a_scenarios_swap_is_none_or_zram(tmp_path):
    trace = tmp_path / "t.json"
    trace.write_text('{"format": "agentcg-trace/1", "name": "t", "model": "haiku", "meta": {}, '
                     '"samples": [[0, 1000000, 1.0], [1, 2000000, 1.0]], "calls": []}')
    path = tmp_path / "s.yaml"
    path.write_text(f"swap: zram\nagents:\n  - trace: {trace}\n")
    assert load_scenario(path).swap == "zram"
    path.write_text(f"agents:\n  - trace: {trace}\n")
    assert load_scenario(path).swap == "none"
    path.write_text(f"swap: disk\nagents:\n  - trace: {trace}\n")
    with pytest.raises(ScenarioError, match="swap must be one of none, zram"):
        load_scenario(path)
