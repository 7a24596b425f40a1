"""Every evaluation scenario creates the pressure it exists for, computed from the traces themselves (the summed
demand of its agents started together), so a scenario can never silently lose its pressure. Recorded traces come
from ../shared/traces: without them these skip."""
import json
from pathlib import Path

import pytest

from agentcg.vocab import MIB
from agentcg.workloads.scenario import SCENARIO_DIR, ScenarioError, SharedTracesMissing, load_scenario
from agentcg.workloads.traces import FORMAT

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


def test_contention_is_over_its_budget_for_every_seed_and_each_seed_draws_its_own_offsets():
    starts = set()
    for seed in range(1, 11):
        s = load_scenario(SCENARIO_DIR / "contention.yaml", seed=seed)
        _, top = peak(s.summed_demand())
        assert top >= 1.10 * s.budget_bytes(), f"seed {seed}: concurrent peak {top / s.budget_bytes():.0%}"
        assert s.seed == seed
        starts.add(tuple(a.trace.meta.get("start_s", 0) for a in s.agents))
    assert len(starts) == 10, "a new draw per seed"
    again = load_scenario(SCENARIO_DIR / "contention.yaml", seed=3)
    assert [a.trace.samples for a in again.agents] == \
        [a.trace.samples for a in load_scenario(SCENARIO_DIR / "contention.yaml", seed=3).agents], "same seed, same run"


def test_moderate_is_contention_with_a_budget_its_concurrent_peak_just_fits_for_every_seed():
    for seed in range(1, 11):
        s, c = (load_scenario(SCENARIO_DIR / f"{n}.yaml", seed=seed) for n in ("moderate", "contention"))
        assert [a.trace.samples for a in s.agents] == [a.trace.samples for a in c.agents], "the same draw"
        _, top = peak(s.summed_demand())
        assert 0.95 <= top / s.budget_bytes() <= 1.0, f"seed {seed}: concurrent peak {top / s.budget_bytes():.1%}"


def test_roomy_is_contention_with_a_budget_its_concurrent_peak_never_nears_for_every_seed():
    for seed in range(1, 11):
        s, c = (load_scenario(SCENARIO_DIR / f"{n}.yaml", seed=seed) for n in ("roomy", "contention"))
        assert [a.trace.samples for a in s.agents] == [a.trace.samples for a in c.agents], "the same draw"
        _, top = peak(s.summed_demand())
        assert top / s.budget_bytes() <= 0.501, f"seed {seed}: concurrent peak {top / s.budget_bytes():.1%}"


def _two_agents(tmp_path, extra: str, name: str = "s") -> Path:
    """Two synthetic agents (bursts at different times) in a scenario file with `extra` lines."""
    traces = []
    for i, burst_at in enumerate((20, 50)):
        samples = [[t, (400 if burst_at <= t < burst_at + 3 else 100) * MIB, 5.0] for t in range(0, 80)]
        calls = [{"start": burst_at - 1, "end": burst_at + 4, "tool": "Bash", "command": "pytest", "id": f"c{i}"}]
        path = tmp_path / f"a{i}.json"
        path.write_text(json.dumps({"format": FORMAT, "name": f"a{i}", "model": "haiku", "meta": {},
                                    "samples": samples, "calls": calls}))
        traces.append(path)
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"agents:\n  - trace: {traces[0]}\n  - trace: {traces[1]}\n{extra}")
    return path


def test_a_window_keeps_only_the_span_around_the_concurrent_peak(tmp_path):
    s = load_scenario(_two_agents(tmp_path, "align: peaks\nwindow: {before_s: 10, after_s: 5}\n"))
    for a in s.agents:
        assert a.trace.duration == pytest.approx(15, abs=1e-6)
        assert a.curve.at(10.5) == 400 * MIB, "the peak sits before_s into the window"
        assert a.curve.at(0) == 100 * MIB and a.curve.at(15) == 100 * MIB
        (call,) = a.trace.calls
        assert (call.end - call.start) == pytest.approx(5), "the burst's call kept whole"
    _, top = peak(s.summed_demand(1.0))
    assert top == 800 * MIB, "the bursts still meet"


def test_a_window_cuts_a_call_that_starts_before_it(tmp_path):
    s = load_scenario(_two_agents(tmp_path, "align: peaks\nwindow: {before_s: 0.5, after_s: 1}\n"))
    for a in s.agents:
        (call,) = a.trace.calls
        assert call.start == a.trace.samples[0].t and call.end - call.start == pytest.approx(1.5)


@pytest.mark.parametrize("extra, message", [
    ("window: {before_s: 10}\n", "before_s: S, after_s: S"),
    ("window: {before_s: 10, after_s: 0}\n", "after_s"),
    ("window: 5\n", "window"),
    ("jitter_s: -1\n", "jitter_s"),
    ("window: {before_s: 1, after_s: 1, around: x}\n", "around"),
])
def test_bad_windows_and_jitters_are_one_scenario_error(tmp_path, extra, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(_two_agents(tmp_path, extra))


def test_jitter_moves_starts_only_with_a_seed(tmp_path):
    path = _two_agents(tmp_path, "jitter_s: 5\n")
    assert load_scenario(path).seed is None
    assert [a.trace.samples for a in load_scenario(path).agents] == \
        [a.trace.samples for a in load_scenario(_two_agents(tmp_path, "", "plain")).agents], "no seed: no jitter"
    moved = load_scenario(path, seed=7)
    assert moved.seed == 7
    starts = [a.trace.meta.get("start_s", 0) for a in moved.agents]
    assert min(starts) == 0 and 0 < max(starts) <= 10


def test_an_absurd_budget_share_is_one_scenario_error(tmp_path):
    path = _two_agents(tmp_path, "budget: {share_of_peaks: 2.0e+299}\n")
    with pytest.raises(ScenarioError, match="at most 100"):
        load_scenario(path)
