"""Every evaluation scenario creates the pressure it exists for, computed from the traces themselves (the summed
demand of its agents started together), so a scenario can never silently lose its pressure. Recorded traces come
from ../shared/traces: without them these skip."""
import pytest

from agentcg.vocab import MIB
from agentcg.workloads.scenario import SCENARIO_DIR, SharedTracesMissing, load_scenario

PAPER_LOW_HIGH = 400 * MIB  # memory.high the paper gives each LOW (../shared/design/paper-evaluation.md)


def scenario(name: str):
    try:
        return load_scenario(SCENARIO_DIR / f"{name}.yaml")
    except SharedTracesMissing as e:
        pytest.skip(f"{name} needs the recorded traces: {e}")


def peak(curve) -> tuple[float, int]:
    return max(curve, key=lambda p: p[1])


def test_paper_scenarios_are_the_papers_setup():
    for name, budget in (("paper-tight", 1100), ("paper-moderate", 1300)):
        s = scenario(name)
        assert s.budget_bytes() == budget * MIB and s.speed == 5 and s.mem_scale == 1.0  # 5x: see the scenario file
        assert [(a.name, a.priority) for a in s.agents] == [("high", "high"), ("low1", "low"), ("low2", "low")]
        assert s.agents[1].trace.samples == s.agents[2].trace.samples, "both LOWs replay the same trace"
        assert s.model.base_mib == 100 and s.model.step_mib == 64
        # the paper's "combined demand ~1233 MB" is the sum of the three individual peaks, base included
        assert sum(s.peaks()) / MIB == pytest.approx(1232, abs=2)


def test_paper_tight_demand_exceeds_its_budget():
    s = scenario("paper-tight")
    when, top = peak(s.summed_demand())
    over = [t for t, b in s.summed_demand() if b > s.budget_bytes()]
    assert top > s.budget_bytes(), f"summed demand peaks at {top / MIB:.0f} MiB, under the budget"
    assert len(over) >= 5, "over the budget for several samples, not one"
    assert 60 < when < 95, when


def test_paper_moderate_throttles_lows_without_exceeding_its_budget():
    s = scenario("paper-moderate")
    _, top = peak(s.summed_demand())
    assert top < s.budget_bytes(), "moderate is about latency under throttling, not about the OOM killer"
    assert top / s.budget_bytes() > 0.8
    for low in s.agents[1:]:
        assert max(x.mem_bytes for x in low.trace.samples) > PAPER_LOW_HIGH, f"{low.name} never reaches memory.high"


def test_process_model_levels_read_mb_as_mib_plus_base():
    s = scenario("paper-tight")
    first = s.agents[0].trace.samples[0]
    assert first.mem_bytes == 100 * MIB + int(11.96e6 * MIB / 1e6)  # dask's first sample: 11.96MB
    assert s.agents[0].trace.calls == []


def test_contention_bursts_meet_and_their_concurrent_peak_is_over_the_budget():
    s = scenario("contention")
    when, top = peak(s.summed_demand())
    assert top >= 1.10 * s.budget_bytes(), f"concurrent peak {top / s.budget_bytes():.0%} of the budget"
    at_peak = [a.curve.at(when) / a.curve.peak for a in s.agents]
    assert all(x > 0.95 for x in at_peak), f"every agent at its own peak then: {at_peak}"
    tight = scenario("tight")
    assert [a.trace.samples[1:] for a in tight.agents] != [a.trace.samples[1:] for a in s.agents], "started late"
    assert max(b for _, b in tight.summed_demand()) < top, "started together, the same agents never meet"
