from agentcg.features import requirement_decision

PRESENT = {"memcg": True, "sched_ext": False, "psi": True}


def test_present_feature_runs():
    assert requirement_decision("memcg", PRESENT, {"memcg"}, "k") is None


def test_missing_feature_declared_absent_is_a_skip_with_reason():
    action, reason = requirement_decision("sched_ext", PRESENT, {"memcg"}, "debian-6.12")
    assert action == "skip" and "debian-6.12 lacks sched_ext" in reason


def test_missing_feature_declared_present_fails():
    action, reason = requirement_decision("sched_ext", PRESENT, {"sched_ext"}, "agentcg-6.12")
    assert action == "fail" and "declared to have sched_ext" in reason


def test_undeclared_kernel_skips():
    action, reason = requirement_decision("sched_ext", PRESENT, None, "bzImage")
    assert action == "skip" and "no declaration" in reason


def test_unknown_feature_name_fails():
    action, reason = requirement_decision("warp_drive", PRESENT, set(), "k")
    assert action == "fail" and "unknown feature" in reason
