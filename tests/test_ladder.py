"""The graduated response, decision by decision (agentcg.ladder)."""
from dataclasses import replace

import pytest

from agentcg import ladder
from agentcg.ladder import MIB, LadderConfig, ToolView, decide, next_stage

CFG = LadderConfig(reserve_bytes=64 * MIB, runaway_factor=4, stall_frac=0.5, freeze_after_s=1, kill_after_s=3)


def view(**kw):
    base = dict(usage=100 * MIB, budget=256 * MIB, headroom=1024 * MIB, stall_frac=0.0, stage="running",
                stage_age=0.0, stalled_for=0.0)
    base.update(kw)
    return ToolView(**base)


def test_within_budget_nothing_happens():
    assert decide(view(), CFG).action == "none"


def test_over_budget_with_headroom_is_allowed():
    assert decide(view(usage=300 * MIB), CFG).action == "none"


def test_over_budget_without_headroom_is_throttled_at_current_usage():
    d = decide(view(usage=300 * MIB, headroom=10 * MIB), CFG)
    assert d.action == "throttle" and d.high == 300 * MIB and "10 MiB left" in d.reason


def test_runaway_is_throttled_from_twice_the_reserve_but_not_with_memory_to_spare():
    assert decide(view(usage=1100 * MIB, headroom=1024 * MIB), CFG).action == "none"
    d = decide(view(usage=1100 * MIB, headroom=100 * MIB), CFG)  # 100 MiB: above the reserve, under twice it
    assert d.action == "throttle" and "4x its budget" in d.reason
    assert decide(view(usage=300 * MIB, headroom=100 * MIB), CFG).action == "none"  # not a runaway


def test_throttled_or_frozen_runaway_resumes_when_memory_is_plentiful():
    assert decide(view(stage="throttled", usage=1100 * MIB, headroom=1024 * MIB), CFG).action == "release"
    assert decide(view(stage="frozen", usage=1100 * MIB, headroom=1024 * MIB, stage_age=5), CFG).action == "thaw"


def test_throttled_call_released_when_headroom_returns():
    assert decide(view(stage="throttled", usage=300 * MIB, headroom=200 * MIB), CFG).action == "release"


def test_throttled_call_stalling_long_enough_is_frozen():
    v = view(stage="throttled", usage=300 * MIB, headroom=10 * MIB, stall_frac=0.9)
    assert decide(ToolView(**{**v.__dict__, "stalled_for": 0.5}), CFG).action == "none"
    d = decide(ToolView(**{**v.__dict__, "stalled_for": 1.2}), CFG)
    assert d.action == "freeze" and "stalled on memory.high for 1.2 s" in d.reason


def test_frozen_call_thawed_when_room_returns_else_killed_after_timeout():
    frozen = dict(stage="frozen", usage=300 * MIB)
    assert decide(view(**frozen, headroom=500 * MIB, stage_age=0.2), CFG).action == "thaw"
    assert decide(view(**frozen, headroom=0, stage_age=2.9), CFG).action == "none"
    d = decide(view(**frozen, headroom=0, stage_age=3.1), CFG)
    assert d.action == "kill" and "frozen 3.1 s" in d.reason


def test_killed_is_final_and_stage_transitions():
    assert decide(view(stage="killed", usage=10**12, headroom=0), CFG).action == "none"
    order = ["throttle", "freeze", "kill"]
    stage = "running"
    for action in order:
        stage = next_stage(stage, action)
    assert stage == "killed"
    assert next_stage("frozen", "thaw") == "running" and next_stage("running", "none") == "running"


def test_config_is_validated():
    with pytest.raises(ValueError):
        LadderConfig(runaway_factor=0.5)
    with pytest.raises(ValueError):
        LadderConfig(stall_frac=0)


def test_low_priority_is_throttled_first_high_priority_last():
    tight = dict(usage=300 * MIB, headroom=100 * MIB)  # between 0.5x and 2x the 64 MiB reserve
    assert decide(view(**tight, priority="low"), CFG).action == "throttle"
    assert decide(view(**tight, priority="normal"), CFG).action == "none"
    assert decide(view(usage=300 * MIB, headroom=40 * MIB, priority="high"), CFG).action == "none"
    assert decide(view(usage=300 * MIB, headroom=20 * MIB, priority="high"), CFG).action == "throttle"


# can_act() lets the controller skip observing a call; it must never hide a decision decide() would make.
@pytest.mark.parametrize("priority", ["low", "normal", "high"])
def test_can_act_is_false_only_where_decide_would_say_nothing(priority):
    cfg = LadderConfig(reserve_bytes=64 * MIB, runaway_factor=4)
    budget = 32 * MIB
    for stage in ("running", "throttled", "frozen"):
        for headroom_mib in (0, 16, 31, 32, 63, 64, 127, 128, 129, 255, 256, 257, 1024):
            if ladder.can_act(stage, headroom_mib * MIB, priority, cfg):
                continue
            for usage_mib in (1, 32, 33, 100, 128, 129, 4096):
                for stalled in (0.0, 10.0):
                    v = ToolView(usage=usage_mib * MIB, budget=budget, headroom=headroom_mib * MIB,
                                 stall_frac=1.0 if stalled else 0.0, stage=stage, stage_age=100.0,
                                 stalled_for=stalled, priority=priority)
                    assert not decide(v, cfg).acts, (stage, headroom_mib, usage_mib, stalled)
    assert ladder.can_act("running", 0, priority, cfg)  # no headroom: observe
    assert ladder.can_act("throttled", 1 << 40, priority, cfg)  # a throttled call must be released
    assert not ladder.can_act("running", 1 << 40, priority, cfg)


# ---- the agents' turn --------------------------------------------------------------------------------------

TURN_CFG = LadderConfig(reserve_bytes=50 * MIB, growing_s=0.2)  # low priority keeps 100 MiB, normal 50, high 25


def agent(name, priority="low", usage=300 * MIB, headroom=80 * MIB, idle_for=0.0, waiting=False):
    return ladder.AgentView(name, priority, usage, headroom, idle_for, waiting)


def acts(decisions):
    return {name: d.action for name, d in decisions}


def test_agents_with_headroom_need_no_turn():
    turn, decisions = ladder.agent_turns([agent("a", headroom=300 * MIB), agent("b", headroom=300 * MIB)], None,
                                         TURN_CFG)
    assert turn is None and decisions == []


def test_two_low_agents_growing_into_a_short_limit_take_turns():
    turn, decisions = ladder.agent_turns([agent("a", usage=300 * MIB), agent("b", usage=320 * MIB)], None, TURN_CFG)
    assert turn == "b", "the larger one goes on: it has more invested"
    (name, d), = decisions
    assert name == "a" and d.action == "throttle" and d.high == 300 * MIB and "while b grows" in d.reason


def test_the_holder_keeps_its_turn_through_the_shortage_even_when_it_stops_growing():
    """An agent on a plateau still holds its memory: the waiting one must not grow into room that is not there."""
    for idle in (0.0, 5.0):
        turn, decisions = ladder.agent_turns([agent("a", usage=400 * MIB, idle_for=idle),
                                              agent("b", waiting=True, idle_for=5)], "a", TURN_CFG)
        assert turn == "a" and decisions == []


def test_a_newly_growing_agent_waits_for_the_holder():
    turn, decisions = ladder.agent_turns([agent("a", usage=300 * MIB, idle_for=3), agent("b", usage=350 * MIB)],
                                         "a", TURN_CFG)
    assert turn == "a" and acts(decisions) == {"b": "throttle"}


def test_higher_priority_takes_the_turn_and_high_priority_never_waits():
    agents = [agent("low"), agent("normal", "normal", headroom=30 * MIB)]
    turn, decisions = ladder.agent_turns(agents, "low", TURN_CFG)
    assert turn == "normal" and acts(decisions) == {"low": "throttle"}
    turn, decisions = ladder.agent_turns([agent("high", "high", headroom=10 * MIB), agent("low", headroom=10 * MIB)],
                                         None, TURN_CFG)
    assert turn == "high" and acts(decisions) == {"low": "throttle"}
    turn, decisions = ladder.agent_turns([agent("high", "high", headroom=10 * MIB),
                                          agent("normal", "normal", headroom=10 * MIB)], "normal", TURN_CFG)
    assert turn == "high" and acts(decisions) == {"normal": "throttle"}


def test_agents_that_are_not_growing_are_left_alone():
    turn, decisions = ladder.agent_turns([agent("a", idle_for=1.0), agent("b", idle_for=1.0)], None, TURN_CFG)
    assert turn is None and decisions == []


def test_waiting_agents_go_on_when_the_shortage_is_over():
    turn, decisions = ladder.agent_turns([agent("a", waiting=True, headroom=150 * MIB, idle_for=3)], "b", TURN_CFG)
    assert turn is None and acts(decisions) == {"a": "release"}


def test_a_waiting_agent_that_creeps_on_takes_a_free_turn():
    turn, decisions = ladder.agent_turns([agent("a", waiting=True, idle_for=0.1)], None, TURN_CFG)
    assert turn == "a" and acts(decisions) == {"a": "release"}


# ---- how long the controller sleeps between looks --------------------------------------------------------

PACE = LadderConfig(reserve_bytes=64 * MIB, burst_bytes_per_s=1000 * MIB, calm_tick_s=0.25)


def test_far_from_the_reserve_the_controller_sleeps_until_a_burst_could_get_there_at_most_calm_tick():
    assert ladder.next_tick([(10_000 * MIB, "normal")], True, 0.05, PACE) == 0.25
    # 228 MiB free, the ladder acts from 128 MiB: a 1000 MiB/s burst needs 0.1 s to get there
    assert ladder.next_tick([(228 * MIB, "normal")], True, 0.05, PACE) == pytest.approx(0.1)


def test_the_tightest_workload_sets_the_pace_and_its_priority_counts():
    # a low-priority workload acts from 2 x 2 x 64 MiB: 300 MiB free leaves it 44 MiB, less than one tick
    assert ladder.next_tick([(10_000 * MIB, "high"), (300 * MIB, "low")], True, 0.05, PACE) == 0.05
    assert ladder.next_tick([(300 * MIB, "high")], True, 0.05, PACE) == pytest.approx((300 - 64) / 1000)


def test_near_or_under_the_reserve_or_with_anything_throttled_frozen_or_waiting_every_tick_counts():
    assert ladder.next_tick([(100 * MIB, "normal")], True, 0.05, PACE) == 0.05
    assert ladder.next_tick([(10_000 * MIB, "normal")], False, 0.05, PACE) == 0.05


def test_with_the_kernel_taking_the_first_rung_the_controller_looks_only_as_often_as_its_own_rungs_need():
    # the kernel delays within a charge batch and wakes the controller; freeze (after 1 s stalled) and kill
    # are timed to a quarter of freeze_after_s, however short the configured tick
    assert ladder.next_tick([(100 * MIB, "normal")], True, 0.05, PACE, kernel_first=True) == 0.25
    assert ladder.next_tick([(10_000 * MIB, "normal")], False, 0.01, PACE, kernel_first=True) == 0.25
    assert ladder.next_tick([(10_000 * MIB, "normal")], False, 0.5, PACE, kernel_first=True) == 0.5
    assert ladder.next_tick([(100 * MIB, "normal")], True, 0.05, PACE, kernel_first=False) == 0.05


def test_pace_never_goes_below_the_configured_tick_nor_above_it_when_calm_is_shorter():
    assert ladder.next_tick([], True, 0.05, PACE) == 0.25
    assert ladder.next_tick([(10_000 * MIB, "normal")], True, 0.5, PACE) == 0.5
    assert ladder.next_tick([(10_000 * MIB, "normal")], True, 0.05, LadderConfig(calm_tick_s=0)) == 0.05


def test_a_frozen_call_goes_to_swap_when_swap_can_take_it_and_is_not_killed_at_the_freeze_bound():
    frozen = dict(stage="frozen", usage=300 * MIB, headroom=0)
    d = decide(view(**frozen, stage_age=0.1, swap_free=1024 * MIB), CFG)
    assert d.action == "reclaim" and d.reclaim == 300 * MIB and "1024 MiB free" in d.reason
    assert next_stage("frozen", "reclaim") == "swapped"
    # swap too small for what it holds (and the reserve): the ladder as without swap
    assert decide(view(**frozen, stage_age=0.1, swap_free=330 * MIB), CFG).action == "none"
    assert decide(view(**frozen, stage_age=3.1, swap_free=330 * MIB), CFG).action == "kill"


def test_a_swapped_call_thaws_only_with_room_for_what_it_swapped_and_waits_longer_than_a_frozen_one():
    swapped = dict(stage="swapped", usage=10 * MIB, swapped=290 * MIB)
    assert decide(view(**swapped, headroom=200 * MIB, stage_age=1), CFG).action == "none", \
        "room for the reserve, not for what it brings back"
    d = decide(view(**swapped, headroom=2 * 64 * MIB + 290 * MIB, stage_age=1), CFG)
    assert d.action == "thaw" and "290 MiB it swapped out" in d.reason
    assert decide(view(**swapped, headroom=0, stage_age=CFG.kill_after_s + 1), CFG).action == "none"
    d = decide(view(**swapped, headroom=0, stage_age=CFG.swap_wait_s + 0.1), CFG)
    assert d.action == "kill" and "swap full" in d.reason


def test_a_call_that_waited_its_time_in_swap_resumes_while_swap_has_room_instead_of_dying():
    swapped = dict(stage="swapped", usage=10 * MIB, swapped=290 * MIB, headroom=0)
    assert decide(view(**swapped, stage_age=CFG.swap_wait_s - 0.1, swap_free=500 * MIB), CFG).action == "none"
    d = decide(view(**swapped, stage_age=CFG.swap_wait_s + 0.1, swap_free=500 * MIB), CFG)
    assert d.action == "thaw" and "resumes with its memory in swap" in d.reason


def test_a_throttled_call_stalling_while_its_pages_go_to_swap_stays_throttled():
    """Its stall is progress at the pace its pages go to swap; frozen it would make none."""
    v = dict(stage="throttled", usage=300 * MIB, headroom=10 * MIB, stall_frac=0.9, stalled_for=5)
    d = decide(view(**v, swap_free=1024 * MIB, swapped_in_stall=8 * MIB), CFG)
    assert d.action == "none" and d.new_stall_window, "and the next window must show progress again"
    assert not decide(view(**{**v, "stalled_for": CFG.freeze_after_s / 2}, swap_free=1024 * MIB,
                           swapped_in_stall=8 * MIB), CFG).new_stall_window, "its window is not over yet"
    assert decide(view(**v, swap_free=10 * MIB, swapped_in_stall=8 * MIB), CFG).action == "freeze", \
        "swap (nearly) full: as without swap"
    assert decide(view(**v, swap_free=1024 * MIB), CFG).action == "freeze", \
        "swap free but nothing of it went there (its memory cannot be reclaimed): a stall, not progress"


def due(priority, usage, pool="p", headroom=100 * MIB):
    """A frozen call due to be killed (a kill candidate and a held call alike)."""
    return pool, view(stage="frozen", priority=priority, usage=usage, headroom=headroom, stage_age=5)


def kill_first(*calls, held=()):
    return ladder.first_to_kill(list(calls), list(calls) + list(held), CFG)


def test_of_calls_due_to_be_killed_together_the_lowest_priority_and_then_the_largest_goes_first():
    """Each in a pool of its own, or where its death lets the higher call go on (100 MiB headroom already covers a
    held call's resume room: twice the reserve, 128 MiB at normal, 64 MiB at high priority)."""
    assert kill_first(due("high", 900 * MIB, "a"), due("normal", 10 * MIB, "b"), due("low", 5 * MIB, "c")) == 2
    assert kill_first(due("high", 900 * MIB), due("normal", 10 * MIB), due("normal", 50 * MIB)) == 2
    assert kill_first(due("high", 1 * MIB)) == 0


def test_a_lower_priority_call_is_not_killed_when_its_death_cannot_let_the_higher_one_go_on():
    """Without swap two bursts that cannot meet in one limit should cost one call, not two."""
    high, normal = due("high", 900 * MIB, headroom=0), due("normal", 20 * MIB, headroom=0)
    assert kill_first(high, normal) == 0, "20 MiB cannot make the 64 MiB high needs: high's call goes first"
    assert kill_first(normal, held=[high]) is None, "high not due yet: normal waits, frozen, instead of dying"
    big = due("normal", 80 * MIB, headroom=0)
    assert kill_first(high, big) == 1, "80 MiB lets high go on: the lower priority goes first, as ever"
    assert kill_first(due("normal", 20 * MIB, headroom=0), due("normal", 50 * MIB, headroom=0), held=[high]) == 1, \
        "all lower candidates together make the room: they go, the largest first"
    assert kill_first(normal, held=[due("high", 900 * MIB, pool="elsewhere", headroom=0)]) == 0, \
        "a held call under another limit gains nothing from this death, and holds nothing up"


def test_no_call_is_killed_while_one_killed_under_the_same_limit_still_gives_its_memory_back():
    """A killed call's memory comes back only as its processes exit (under TCG, a few looks later)."""
    dying = ("p", view(stage="killed", usage=150 * MIB, headroom=0, stage_age=0.1))
    normal = due("normal", 20 * MIB, headroom=0)
    assert kill_first(normal, held=[dying]) is None
    assert kill_first(normal, held=[("p", replace(dying[1], usage=0))]) == 0, "its memory is back: room or not"
    assert kill_first(normal, held=[("p", replace(dying[1], stage_age=CFG.kill_after_s))]) == 0, \
        "dying too long (stuck in the kernel): the ladder goes on"
    assert kill_first(normal, held=[("elsewhere", dying[1])]) == 0, "dying under another limit"


# Priorities between the calls of one pool (ladder.yields): the lower priority makes room, the higher goes on.
SWAP = 1024 * MIB
def look(pool="parent", **kw):
    v = view(**kw)
    return (pool, v, decide(v, CFG))


def actions(looks):
    return [d.action for d in ladder.yields(looks, CFG)]


def test_a_pressed_high_priority_call_goes_on_while_a_lower_priority_call_over_budget_yields():
    high = look(priority="high", usage=400 * MIB, headroom=10 * MIB)   # decide: throttle
    normal = look(priority="normal", usage=300 * MIB, headroom=10 * MIB, swap_free=SWAP)  # decide: throttle too
    assert high[2].action == "throttle"
    out = ladder.yields([high, normal], CFG)
    assert [d.action for d in out] == ["none", "freeze"]
    assert "yields to a high priority call" in out[1].reason


def test_a_throttled_or_frozen_high_priority_call_is_let_go_while_lower_ones_make_room():
    normal = look(priority="normal", usage=300 * MIB, headroom=10 * MIB, swap_free=SWAP)
    assert actions([look(priority="high", stage="throttled", usage=400 * MIB, headroom=10 * MIB), normal]) \
        == ["release", "freeze"]
    assert actions([look(priority="high", stage="frozen", usage=400 * MIB, headroom=10 * MIB), normal]) \
        == ["thaw", "freeze"]
    # in swap it waits for room as before: letting it back in would only push it out again
    assert actions([look(priority="high", stage="swapped", usage=4 * MIB, swapped=400 * MIB, headroom=10 * MIB),
                    normal]) == ["none", "freeze"]


def test_nothing_yields_across_pools_to_an_equal_priority_below_budget_or_without_swap():
    high = look(priority="high", usage=400 * MIB, headroom=10 * MIB)
    assert actions([high, look(pool="other", priority="normal", usage=300 * MIB, headroom=10 * MIB, swap_free=SWAP)]) \
        == ["throttle", "throttle"], "another limit: its memory is not this pool's room"
    assert actions([look(priority="normal", usage=400 * MIB, headroom=10 * MIB),
                    look(priority="normal", usage=300 * MIB, headroom=10 * MIB, swap_free=SWAP)]) \
        == ["throttle", "throttle"]
    assert actions([high, look(priority="low", usage=100 * MIB, headroom=10 * MIB, swap_free=SWAP)]) \
        == ["throttle", "none"], "a call within its budget is not where the room is"
    assert actions([high, look(priority="low", usage=300 * MIB, headroom=10 * MIB)]) == ["throttle", "throttle"], \
        "without swap a frozen call makes no room: each keeps its own rung"


def test_a_lower_priority_call_on_its_way_to_swap_makes_room_and_one_frozen_without_swap_does_not():
    high = look(priority="high", usage=400 * MIB, headroom=10 * MIB)
    going = look(priority="low", stage="frozen", usage=300 * MIB, headroom=10 * MIB, swap_free=SWAP)
    assert going[2].action == "reclaim"
    assert actions([high, going]) == ["none", "reclaim"]
    reclaiming = look(priority="low", stage="swapped", usage=200 * MIB, headroom=10 * MIB, reclaiming=True)
    assert actions([high, reclaiming]) == ["none", "none"]
    stuck = look(priority="low", stage="frozen", usage=300 * MIB, headroom=10 * MIB)  # no swap: holds its memory
    assert actions([high, stuck]) == ["throttle", "none"]


def test_yielding_leaves_kills_to_first_to_kill_and_calls_with_room_alone():
    quiet = [look(priority="high", usage=400 * MIB), look(priority="normal", usage=300 * MIB)]
    assert actions(quiet) == ["none", "none"], "nobody pressed: nobody yields"
    dying = look(priority="low", stage="frozen", usage=300 * MIB, headroom=10 * MIB, stage_age=5)
    assert actions([look(priority="high", usage=400 * MIB, headroom=10 * MIB), dying]) == ["throttle", "kill"]


# Held calls go on one at a time per pool (ladder.one_thaw_at_a_time): both let go with the headroom measured while
# both were stopped, they would run it out together.
def thaw_look(priority, usage, pool="p", headroom=500 * MIB):
    v = view(stage="frozen", priority=priority, usage=usage, headroom=headroom)
    return pool, v, decide(v, CFG)


def test_of_calls_due_to_thaw_in_one_pool_the_highest_goes_first_and_the_others_wait():
    high, normal = thaw_look("high", 100 * MIB), thaw_look("normal", 300 * MIB)
    assert high[2].action == normal[2].action == "thaw"
    out = ladder.one_thaw_at_a_time([normal, high], {}, CFG)
    assert [d.action for d in out] == ["none", "thaw"]
    assert "goes on first" in out[0].reason
    out = ladder.one_thaw_at_a_time([thaw_look("normal", 10 * MIB), thaw_look("normal", 50 * MIB)], {}, CFG)
    assert [d.action for d in out] == ["none", "thaw"], "equal priority: the larger first"


def test_no_thaw_in_a_pool_until_the_last_ones_growth_can_show_and_other_pools_are_free():
    normal = thaw_look("normal", 300 * MIB)
    assert ladder.one_thaw_at_a_time([normal], {"p": 0.5 * CFG.freeze_after_s}, CFG)[0].action == "none"
    assert ladder.one_thaw_at_a_time([normal], {"p": CFG.freeze_after_s}, CFG)[0].action == "thaw"
    other = thaw_look("normal", 300 * MIB, pool="q")
    assert [d.action for d in ladder.one_thaw_at_a_time([normal, other], {"p": 0.0}, CFG)] == ["none", "thaw"]


def test_one_thaw_at_a_time_leaves_every_other_decision_alone():
    throttle = look(priority="normal", usage=300 * MIB, headroom=10 * MIB)
    release = look(stage="throttled", priority="normal", usage=300 * MIB, headroom=500 * MIB)
    assert [d.action for d in ladder.one_thaw_at_a_time([throttle, release], {"parent": 0.0}, CFG)] == \
        ["throttle", "release"]
