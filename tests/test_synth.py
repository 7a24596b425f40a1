"""The synthetic trace generator: reproducible, and with the properties the controller is designed against."""
import random
import statistics

import pytest

from agentcg.analysis import analyze
from agentcg.classify import classify_call
from agentcg.workloads import synth, traces

MB = 1_000_000


def gen(seed, **kw):
    return synth.generate(synth.SynthConfig(seed=seed, **kw))


def mem_mb(trace):
    return [s.mem_bytes / MB for s in trace.samples]


def test_same_seed_gives_the_identical_trace():
    a, b = gen(7), gen(7)
    assert traces.to_dict(a) == traces.to_dict(b)
    assert traces.to_dict(gen(8)) != traces.to_dict(a)


def test_same_config_gives_the_same_bytes_on_disk(tmp_path):
    first = synth.write_fixtures(tmp_path / "a")
    second = synth.write_fixtures(tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_committed_fixtures_are_what_write_fixtures_produces(tmp_path):
    """fixtures/traces is regenerated with synth.write_fixtures(); a change to the generator shows up here."""
    for path in synth.write_fixtures(tmp_path):
        committed = synth.FIXTURES_DIR / path.name
        assert committed.is_file(), f"{committed} missing: run synth.write_fixtures()"
        assert committed.read_bytes() == path.read_bytes(), f"{committed.name} is stale: run synth.write_fixtures()"


@pytest.mark.parametrize("stem", list(synth.FIXTURES))
def test_fixtures_are_small_loadable_traces(stem):
    path = synth.FIXTURES_DIR / f"{stem}.json"
    assert path.stat().st_size < 50_000
    trace = traces.load(path)
    assert trace.model == "synthetic" and trace.meta["seed"] == synth.FIXTURES[stem].seed
    assert trace.calls and trace.meta["has_calls"]


@pytest.mark.parametrize("seed", range(12))
def test_runs_last_5_to_11_minutes_with_a_185mb_framework(seed):
    trace = gen(seed)
    assert 300 <= trace.duration <= 660
    assert [s.t for s in trace.samples] == sorted(s.t for s in trace.samples)
    base = analyze.baseline(trace) / MB
    assert 165 <= base <= 215, base
    # Outside tool calls and after start-up, the framework holds its baseline (plus slow growth, retained memory).
    spans = [(c.start, c.end) for c in trace.calls]
    quiet = [s.mem_bytes / MB for s in trace.samples
             if s.t > 10 and not any(a - 1 <= s.t <= b + 1 for a, b in spans)]
    assert statistics.median(quiet) < base + 80


@pytest.mark.parametrize("seed", range(40))
def test_memory_changes_at_most_3_gb_per_second(seed):
    trace = gen(seed)
    assert max(analyze.mem_rates(trace)) <= synth.MAX_RATE_MB_S


def test_spikes_are_heavy_tailed():
    rng = random.Random(1)
    spikes = sorted(synth.spike_mb(rng, "test")[0] for _ in range(20000))
    p50, p99 = spikes[len(spikes) // 2], spikes[int(len(spikes) * 0.99)]
    assert 15 < p50 < 40  # the body: tens of MB, as recorded test calls
    assert p99 > synth.TAIL_MIN_MB  # the tail: heavy bursts of 0.5 GB and more
    assert p99 / p50 > 20
    assert max(spikes) <= synth.TAIL_CAP_MB
    heavy = sum(s >= synth.TAIL_MIN_MB for s in spikes) / len(spikes)
    assert abs(heavy - synth.CALL_MODELS["test"].tail_p) < 0.01
    # Pareto(1.2) tail above 0.5 GB: about (500/2000)^1.2 = 19% of the heavy bursts exceed 2 GB.
    tail = [s for s in spikes if s >= synth.TAIL_MIN_MB]
    assert 0.1 < sum(s > 2000 for s in tail) / len(tail) < 0.3


def test_quiet_tools_add_no_memory():
    rng = random.Random(2)
    for kind in ("git", "explore", "Read", "Edit"):
        spikes = [synth.spike_mb(rng, kind)[0] for _ in range(2000)]
        assert statistics.median(spikes) < 2 and max(spikes) < synth.TAIL_MIN_MB


def test_peak_to_average_reaches_about_15x_across_runs():
    ratios = [max(mem_mb(t)) / statistics.fmean(mem_mb(t)) for t in (gen(s) for s in range(60))]
    assert max(ratios) >= 10
    assert statistics.median(ratios) < 3  # most runs never see a heavy burst


def test_forced_heavy_burst_reaches_gigabytes_for_one_to_two_seconds_inside_a_call():
    trace = synth.generate(synth.FIXTURES["synth-burst"])
    heavy = trace.meta["heavy_bursts"]
    assert len(heavy) == 1
    call = trace.calls[heavy[0]]
    peak = max(trace.samples, key=lambda s: s.mem_bytes)
    assert peak.mem_bytes > 700 * MB
    assert call.start <= peak.t <= call.end
    base = analyze.baseline(trace)
    high = [s for s in trace.samples if s.mem_bytes > base + 0.9 * (peak.mem_bytes - base)]
    assert 1 <= len(high) <= 3  # sampled once per second: the plateau shows in 1-2 samples


def test_bursts_fall_inside_tool_calls():
    runs = [gen(s, retry_loops=0) for s in range(30)]  # what retry loops leave behind is no burst
    bursts = analyze.burst_attribution(runs, mem_threshold_mb=300)
    assert bursts["mem_bursts"] > 0 and bursts["mem_in_calls"] == 1.0


def test_retry_loops_accumulate_memory_that_is_not_released():
    trace = synth.generate(synth.FIXTURES["synth-retry"])
    groups = analyze.retry_groups(trace)
    assert groups and groups[0]["count"] >= 3 and trace.meta["retry_loops"] == 1
    command = groups[0]["command"]
    loop = [c for c in trace.calls if c.command and c.command.strip() == command]
    before = [s.mem_bytes for s in trace.samples if loop[0].start - 6 <= s.t < loop[0].start]
    after = [s.mem_bytes for s in trace.samples if loop[-1].end + 2 <= s.t <= loop[-1].end + 8]
    # each retry leaves ~40 MB behind: 3+ retries, 100+ MB more than before the loop, still there afterwards
    assert statistics.fmean(after) - statistics.fmean(before) > 100 * MB
    tail = [s.mem_bytes for s in trace.samples if s.t > trace.duration - 10]
    assert min(tail) - statistics.fmean(before) > 80 * MB


def test_no_retry_loop_when_none_asked_for():
    assert analyze.retry_groups(synth.generate(synth.FIXTURES["synth-small"])) == []


def test_phases_have_their_own_tool_mix():
    counts = {name: {} for name, _, _ in synth.PHASES}
    for seed in range(30):
        trace = gen(seed, retry_loops=0)
        for c in trace.calls:
            phase = synth.phase_at(c.start / trace.duration)
            counts[phase][c.category] = counts[phase].get(c.category, 0) + 1

    def share(phase, *kinds):
        total = sum(counts[phase].values())
        return sum(counts[phase].get(k, 0) for k in kinds) / total
    assert share("understand", "explore", "Read", "Grep", "Glob") > 0.5
    assert share("modify", "Edit") > share("understand", "Edit") + 0.15
    assert share("verify", "test") > 0.3 > share("understand", "test")


def test_commands_classify_as_their_category():
    for seed in range(20):
        for c in gen(seed).calls:
            assert classify_call(c.tool, c.command) == c.category, c


def test_calls_do_not_overlap_and_stay_inside_the_run():
    for seed in range(20):
        trace = gen(seed)
        for a, b in zip(trace.calls, trace.calls[1:]):
            assert a.end <= b.start
        assert trace.calls[-1].end <= trace.duration
