"""agentcg.eval.reproduce without a kernel: one run's record and the summary over repeats, by the paper's
definitions (../shared/design/paper-evaluation.md), and failed runs kept apart from every median."""
from types import SimpleNamespace as NS

import pytest

from agentcg.eval import reproduce as paper


def agent(name, survived=True, completion=10.0, lat=None, killed=False):
    return NS(name=name, survived=survived, completion_s=completion if survived else None,
              oom_kills=[{"process": "agent", "count": 1}] if killed else [], growth_latencies_ms=lat)


def result(agents, errors=(), actions=()):
    return NS(agents=agents, errors=list(errors), policy_actions=list(actions), wall_s=12.0, work_lost_s=0.0)


def test_paper_p95_drops_zeros_and_takes_element_floor_095n():
    assert paper.paper_p95([0.0] * 5 + [float(x) for x in range(1, 21)]) == 20.0  # n=20: floor(19) -> the last
    assert paper.paper_p95([float(x) for x in range(1, 101)]) == 96.0


def test_a_run_record():
    r = paper.run_record(result([agent("high", completion=11.0, lat=[0.0, 5.0, 7.0, 9.0]), agent("low1"),
                                 agent("low2", survived=False, killed=True)],
                                actions=[{"action": "throttled", "count": 3}, {"action": "throttled", "count": 4}]),
                         alone_s=10.0)
    assert r["survived"] == ["high", "low1"] and r["killed"] == ["low2"] and not r["failed"]
    assert r["hp_completion_vs_alone"] == pytest.approx(1.1)
    assert r["hp_alloc_p50_ms"] == 7.0 and r["hp_alloc_p95_ms"] == 9.0 and r["hp_growths"] == 3
    assert r["hp_alloc_max_ms"] == 9.0 and r["hp_growth_latencies_ms"] == [0.0, 5.0, 7.0, 9.0]
    assert r["total_completion_s"] is None, "not every process finished"
    assert r["throttle_events"] == 7


def test_a_run_record_keeps_what_stopped_or_ended_a_call_in_order():
    acts = [{"agent": "a", "action": "throttle", "reason": "r0", "call": "c1"},
            {"agent": "a", "action": "freeze", "reason": "r1", "call": "c1", "headroom": 3, "usage": 9},
            {"agent": "b", "action": "kernel-oom-kill", "reason": "r2", "call": "c2"},
            {"agent": "a", "action": "thaw", "reason": "r3", "call": "c1", "headroom": 40}]
    r = paper.run_record(result([agent("high")], actions=acts), 10.0)
    assert [(s["action"], s["call"], s["headroom"]) for s in r["stops"]] == \
        [("freeze", "c1", 3), ("kernel-oom-kill", "c2", None), ("thaw", "c1", 40)]
    assert r["decisions"] == {"throttle": 1, "freeze": 1, "thaw": 1}


def test_summary_counts_survival_over_all_runs_and_medians_only_over_good_ones():
    good = paper.run_record(result([agent("high", completion=10.0, lat=[4.0]), agent("a"), agent("b")]), 10.0)
    slow = paper.run_record(result([agent("high", completion=12.0, lat=[6.0]), agent("a"), agent("b")]), 10.0)
    stalled = paper.run_record(result([agent("high", completion=99.0, lat=[50.0]), agent("a", survived=False),
                                       agent("b", survived=False)], errors=["a: not finished within 70 s"]), 10.0)
    s = paper.summarize([good, slow, stalled], processes=3)
    assert s["runs"] == 3 and s["failed_runs"] == 1 and s["all_survived_runs"] == 2
    assert s["survival_rate"] == round(7 / 9, 4)
    assert s["hp_alloc_p95_ms"] == {"median": 5.0, "min": 4.0, "max": 6.0, "n": 2}, "the failed run is out"
    assert s["hp_completion_vs_alone"]["median"] == pytest.approx(1.1)
    assert s["throttle_events"]["n"] == 0


def test_each_growth_gets_its_median_over_runs_only_when_the_runs_made_the_same_growths():
    runs = [paper.run_record(result([agent("high", lat=lat)]), 10.0)
            for lat in ([1.0, 10.0, 100.0], [3.0, 30.0, 300.0], [2.0, 20.0, 200.0])]
    s = paper.summarize(runs, processes=1)
    assert s["hp_growth_median_ms"] == [2.0, 20.0, 200.0]
    assert s["hp_alloc_max_ms"] == {"median": 200.0, "min": 100.0, "max": 300.0, "n": 3}
    short = paper.run_record(result([agent("high", lat=[1.0, 2.0])]), 10.0)
    assert paper.summarize(runs + [short], processes=1)["hp_growth_median_ms"] is None
