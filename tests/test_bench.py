"""The evaluation report (agentcg.eval.bench): the sweep's verdict and the comparison table, from recorded numbers."""
from agentcg.eval.bench import densest, density_split, next_count, peak_provisioned, rows, smallest_share


def run(share, policy, survived, agents=3, **kw):
    return {"share": share, "policy": policy, "survived": survived, "agents": agents,
            "no_loss": survived == agents and not kw.get("tool_calls_killed"), **kw}


def test_smallest_share_is_where_no_work_is_lost_from_there_up():
    runs = [run(0.7, "a", 2), run(0.8, "a", 3), run(0.9, "a", 3), run(1.0, "a", 3),
            run(0.7, "b", 3), run(0.8, "b", 2), run(0.9, "b", 3), run(1.0, "b", 3)]
    assert smallest_share(runs, "a") == 0.8
    assert smallest_share(runs, "b") == 0.9  # survival at 0.7 was luck: 0.8 failed


def test_a_killed_tool_call_is_a_loss_though_every_agent_survived():
    runs = [run(0.8, "a", 3, tool_calls_killed=1), run(0.9, "a", 3), run(1.0, "a", 3)]
    assert smallest_share(runs, "a") == 0.9


def test_smallest_share_none_when_the_largest_fails_or_errors():
    assert smallest_share([run(0.9, "a", 3), run(1.0, "a", 1)], "a") is None
    assert smallest_share([{"share": 1.0, "policy": "k", "error": "no memcg_bpf_ops"}], "k") is None
    assert smallest_share([], "a") is None


def test_table_compares_user_space_and_in_kernel_from_one_run():
    m = {"tight_policies": {"alone_s": 13.0,
                            "static-avg": {"survived": 0, "agents": 3},
                            "agentcg": {"survived": 3, "agents": 3, "throttles": 1, "high_overhead": 1.4},
                            "agentcg-kernel": {"survived": 3, "agents": 3, "throttles": 2, "kernel_delays": 5,
                                               "high_overhead": 1.38}},
         "reaction_kernel_vs_user": {"user_p50_s": 0.056, "user_max_s": 0.066, "kernel_p50_s": 0.007,
                                     "kernel_max_s": 0.014}}
    table = {r[0]: r[1:] for r in rows(m)}
    assert table["tight: agents surviving"] == ("3/3", "3/3", "static-avg 0/3")
    assert table["tight: throttles / kernel delays"][1] == "2 / 5"
    assert table["reaction P50 (burst -> enforcement)"][:2] == ("56.0 ms", "7.0 ms")
    assert "moderate: high-prio alloc P50 vs none" not in table  # not measured: no row


def test_peak_provisioning_admits_agents_while_their_peaks_fit():
    assert peak_provisioned([4, 2, 1, 1], 7) == 3
    assert peak_provisioned([4, 2, 1, 1], 8) == 4
    assert peak_provisioned([9, 1], 8) == 0  # the first agent alone does not fit: none is admitted


def test_densest_count_is_below_the_smallest_failure():
    assert densest({4: True, 8: True, 16: False, 12: True, 14: False, 13: True}) == 13
    assert densest({4: True, 8: False, 12: True}) == 4  # 12 holding above a failure at 8 was luck
    assert densest({4: False}) == 0


def test_density_search_gallops_then_bisects():
    def search(holds_up_to, start, pool):
        tried = {}
        while (n := next_count(tried, start, pool)) is not None:
            tried[n] = n <= holds_up_to
        return densest(tried), len(tried)
    assert search(11, 4, 15) == (11, 6)  # 4, 8 hold, 15 fails, 11 holds, 13 and 12 fail
    assert search(15, 4, 15)[0] == 15  # the pool runs out first
    assert search(2, 4, 15)[0] == 2  # fewer than peak provisioning admits
    assert search(0, 1, 15)[0] == 0


def test_table_reports_the_sweep_with_tool_calls_killed_and_density():
    m = {"budget_sweep": {"shares": [0.7, 0.8], "smallest_share_no_loss": {
            "none": 0.7, "oomd": 0.8, "agentcg": 0.8, "agentcg-kernel": 0.7},
            "runs": [run(0.7, "none", 3, tool_calls_killed=1), run(0.7, "agentcg-kernel", 3, tool_calls_killed=0),
                     run(0.7, "agentcg", 2, tool_calls_killed=2), run(0.7, "oomd", 2, tool_calls_killed=1)]},
         "density": {"memory_bytes": 6 * 2**30, "peak_provisioning": 4, "pool_exhausted": ["agentcg-kernel"],
                     "densest_no_loss": {"none": 6, "agentcg": 9, "agentcg-kernel": 15}}}
    table = {r[0]: r[1:] for r in rows(m)}
    assert table["sweep: smallest budget (of the concurrent peak), no work lost"] == ("80%", "70%", "none 70%, oomd 80%")
    assert table["sweep at 70%: tool calls killed"] == ("2", "0", "none 1, oomd 1")
    assert table["density: agents in 6 GiB, no work lost"] == ("9", "15+", "peak provisioning 4, none 6")


def test_the_sweep_with_zram_is_its_own_row():
    m = {"budget_sweep": {"shares": [0.6, 0.8], "smallest_share_no_loss": {
            "none": None, "agentcg": None, "agentcg-kernel": None,
            "none+zram": 0.8, "agentcg+zram": 0.8, "agentcg-kernel+zram": 0.6}, "runs": []}}
    table = {r[0]: r[1:] for r in rows(m)}
    assert table["sweep with zram: smallest budget, no work lost"] == ("80%", "60%", "none+zram 80%")
    assert table["sweep: smallest budget (of the concurrent peak), no work lost"] == ("-", "-", "none -")


def test_the_contention_cells_report_work_lost_and_completion():
    def cell(lost, clean, killed=0, hp=1.1, p95=None):
        return {"summary": {"work_lost_s_median": lost, "runs_without_loss": clean, "runs": 5,
                            "agents_killed_median": killed, "hp_completion_vs_alone_median": hp,
                            "hp_alloc_p95_ms_median": p95}}
    m = {"contention": {"scenarios": {"contention+zram": {
        "none": cell(0, 5, hp=1.17), "k8s": cell(34.7, 0, killed=1, hp=None), "agentcg": cell(0, 5, hp=1.43),
        "agentcg-kernel": cell(0, 5, hp=1.26)}}},
         "moderate_bench": {"scenarios": {"moderate": {"none": cell(0, 5, p95=6.04), "agentcg": cell(0, 5, p95=6.5),
                                                       "agentcg-kernel": cell(0, 5, p95=5.5)}}}}
    table = {r[0]: r[1:] for r in rows(m)}
    assert table["contention+zram: work lost per run (median)"] == (
        "0 s, 5/5 without loss", "0 s, 5/5 without loss",
        "none 0 s, 5/5 without loss; k8s 35 s, 0/5 without loss, 1 agents killed")
    assert table["contention+zram: high-prio completion vs alone"] == ("1.43x", "1.26x", "none 1.17x, k8s -")
    assert table["moderate: high-prio alloc P95 (median)"] == ("6.5 ms", "5.5 ms", "none 6.0 ms")


def test_density_with_zram_counts_zrams_ram_in_the_same_memory():
    assert density_split(4 * 2**30, "none") == (4 * 2**30, None)
    budget, ram = density_split(4 * 2**30, "zram")
    assert budget + ram == 4 * 2**30 and ram == 2**30
