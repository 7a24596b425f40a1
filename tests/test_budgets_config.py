"""Budgets per command class, and the daemon's config validation: bad input is one clear error."""
import json

import pytest

from agentcg import budgets, daemon
from agentcg.budgets import MIB


def test_shipped_budgets_load_and_classify_commands():
    b = budgets.Budgets(budgets.load_config())
    assert b.classify("cd repo && python -m pytest -x tests/") == "test"
    assert b.classify("pip install -e .") == "install"
    assert b.budget_bytes("test") == 1024 * MIB
    assert b.budget_bytes("git") < b.budget_bytes("test")


def test_budgets_adapt_to_observed_peaks_within_bounds():
    b = budgets.Budgets(budgets.load_config())
    for mib in [100, 110, 120, 130, 400]:
        b.observe_peak("test", mib * MIB)
    assert b.budget_bytes("test") == int(400 * 1.25 * MIB)  # P95 of 5 samples is the max, times headroom
    for _ in range(60):
        b.observe_peak("git", 1 * MIB)
    assert b.budget_bytes("git") == 32 * MIB, "never below min_mib"


@pytest.mark.parametrize("text, message", [
    ("classes: [1, 2", "not valid YAML"),
    ("classes: {test: -5}", "must be positive"),
    ("classes: {warp: 5}", "unknown classes"),
    ("classes: {test: lots}", "numbers expected"),
    ("adapt: {window: .inf}", "numbers expected"),
    ("adapt: {headroom: .inf}", "must be positive"),
    ("classes: {test: .inf}", "must be positive"),
])
def test_bad_budget_files_are_one_clear_error(tmp_path, text, message):
    p = tmp_path / "b.yaml"
    p.write_text(text)
    with pytest.raises(budgets.BudgetError, match=message):
        budgets.load_config(p)


@pytest.mark.parametrize("text, message", [
    ("root: [", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("wrkloads: []", "unknown keys"),
    ("interval_ms: 0", "interval_ms must be positive"),
    ("interval_ms: .nan", "interval_ms must be a number"),
    ("interval_ms: 1.0e-9", "interval_ms must be within"),
    ("metrics_port: 1.0e+300", "metrics_port must be"),
    ("metrics_port: 80.5", "whole number"),
    ("root: relative/dir", "absolute path"),
    ("state: [a]", "absolute path"),
    ("ladder: {kill_after_s: .inf}", "kill_after_s must be a number"),
    ("ladder: {stall_frac: 2}", "stall_frac"),
    ("workloads: [{name: a, agent_min_mib: .inf}]", "agent_min_mib must be a number"),
    ("workloads: [{name: 'a\n'}]", "invalid workload name"),
    ("ladder: {reserve: 3}", "ladder takes"),
    ("ladder: {runaway_factor: 0.1}", "runaway_factor"),
    ("workloads: [{priority: high}]", "needs name"),
    ("workloads: [{name: a}, {name: a}]", "listed twice"),
    ("workloads: [{name: '../x'}]", "invalid workload name"),
    ("workloads: [{name: a, priority: urgent}]", "priority must be one of"),
    ("workloads: [{name: a, memory_max_mib: -1}]", "memory_max_mib must be positive"),
    ("memory_policy: bpf", "memory_policy must be one of auto, kernel, user"),
    ("cpu_scheduler: eevdf", "cpu_scheduler must be one of"),
    ("exec_tracer: yes", "exec_tracer must be one of"),
])
def test_bad_daemon_configs_are_one_clear_error(tmp_path, text, message):
    p = tmp_path / "agentcg.yaml"
    p.write_text(text)
    with pytest.raises(daemon.ConfigError, match=message):
        daemon.load_config(p)


def test_exec_tracer_off_is_off_although_yaml_reads_it_as_false(tmp_path):
    p = tmp_path / "agentcg.yaml"
    p.write_text("exec_tracer: off\nmetrics_port: 0\n")
    cfg = daemon.load_config(p)
    assert cfg.exec_tracer == "off" and cfg.metrics_port == 0


def test_good_daemon_config(tmp_path):
    p = tmp_path / "agentcg.yaml"
    p.write_text("interval_ms: 20\nladder: {reserve_mib: 128, kill_after_s: 5}\n"
                 "workloads: [{name: claude-1, priority: high, agent_min_mib: 256, memory_max_mib: 4096}]\n")
    cfg = daemon.load_config(p)
    assert cfg.interval_ms == 20 and cfg.ladder.reserve_bytes == 128 * MIB and cfg.ladder.kill_after_s == 5
    assert cfg.workloads[0]["priority"] == "high"


# What the budgets learned survives a daemon restart; a damaged file gives back only what is well-formed.
def test_learned_peaks_come_back_and_garbage_is_skipped():
    from agentcg.budgets import Budgets, load_config
    first = Budgets(load_config())
    for peak in (100 * MIB, 200 * MIB):
        first.observe_peak("test", peak)
    second = Budgets(load_config())
    assert second.restore(json.loads(json.dumps(first.learned()))) == 2
    assert second.budget_bytes("test") == first.budget_bytes("test")
    third = Budgets(load_config())
    assert third.restore({"test": [True, -1, "x", 1 << 60, 5 * MIB], "nope": [1], "git": "x"}) == 1
    assert third.restore([1, 2]) == 0
