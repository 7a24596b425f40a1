"""The real user-space peers (agentcg.eval.peers): oomd's configuration and how each peer's kills are read back."""
from pathlib import Path

import pytest

from agentcg.eval import peers
from agentcg.eval.registry import make_policy
from agentcg.workloads.plan import ReplayError


def test_oomd_config_is_debians_ruleset_on_the_budget_scaled_to_the_replay():
    cfg = peers.oomd_config("agentcg-test-1", speed=50)
    (rules,) = cfg["rulesets"]
    (group,) = rules["detectors"]
    pressure, reclaim = group[1], group[2]
    assert pressure["name"] == "pressure_above" and pressure["args"]["cgroup"] == "agentcg-test-1"
    assert pressure["args"]["threshold"] == "60" and pressure["args"]["resource"] == "memory"
    # 30 s and 10 s of trace time at 50x are under oomd's 1 s granularity
    assert pressure["args"]["duration"] == "1" and reclaim["args"]["duration"] == "1"
    (action,) = rules["actions"]
    assert action["name"] == "kill_by_memory_size_or_growth"
    assert action["args"]["cgroup"] == "agentcg-test-1/*" and action["args"]["recursive"] == "true"
    # at real time the durations are Debian's
    slow = peers.oomd_config("p", speed=1)["rulesets"][0]["detectors"][0]
    assert slow[1]["args"]["duration"] == "30" and slow[2]["args"]["duration"] == "10"


def test_earlyoom_kill_lines_name_the_pid_and_its_settings_line_is_not_a_kill():
    policy = peers.EarlyoomPolicy()
    assert policy.parse_kill('sending SIGTERM to process 4242 uid 0 "python3": badness 880, VmRSS 210 MiB') == \
        {"pid": 4242}
    assert policy.parse_kill("sending SIGTERM when mem <= 10.00% and swap <= 10.00%,") is None
    assert policy.parse_kill("mem avail: 1200 of 1985 MiB (60.45%)") is None


def test_oomd_kills_are_attributed_through_the_cgroup_path():
    policy = peers.OomdPolicy()
    policy.parent = Path("/sys/fs/cgroup/agentcg-test-1")
    kill = policy.parse_kill("Killed 2 procs in /sys/fs/cgroup/agentcg-test-1/bio-hard/tools/call-35")
    assert policy.by_cgroup(kill["cgroup"]) == ("bio-hard", "call-35")
    # printed relative to the cgroup fs
    assert policy.by_cgroup("agentcg-test-1/ml-easy/agent") == ("ml-easy", "agent")
    assert policy.by_cgroup("/sys/fs/cgroup/agentcg-test-1/ml-easy") == ("ml-easy", "*")
    assert policy.by_cgroup("/sys/fs/cgroup/system.slice/x") == ("?", "/sys/fs/cgroup/system.slice/x")
    assert policy.parse_kill("Running oomd") is None


def test_a_missing_peer_binary_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTCG_PEERS_DIR", str(tmp_path))
    with pytest.raises(ReplayError, match="oomd is missing"):
        peers._need("oomd")


def test_peer_policies_are_known_to_the_replayer():
    assert make_policy("oomd").name == "oomd"
    assert make_policy("earlyoom").name == "earlyoom"
