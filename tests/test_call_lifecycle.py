"""When the controller takes an empty tool-call cgroup for a finished call (agentcg.controller)."""
import time

from agentcg.controller import CALL_START_GRACE_S, CallState, Controller
from agentcg.layout import ToolCallMeta


def meta(pid=None):
    return ToolCallMeta("w1", "call-1", "pytest", "test", 1 << 20, time.time() - 3600, pid=pid)


def test_an_empty_call_its_launcher_has_not_filled_is_not_over():
    assert not Controller._call_over(CallState(), meta())
    assert not Controller._call_over(CallState(), None)


def test_an_empty_call_is_over_once_a_process_was_in_it():
    assert Controller._call_over(CallState(was_populated=True), meta())


def test_an_empty_call_is_over_once_its_launcher_recorded_the_pid():
    assert Controller._call_over(CallState(), meta(pid=1234))


def test_a_call_no_process_ever_entered_is_over_after_the_grace():
    assert Controller._call_over(CallState(first_seen=time.monotonic() - CALL_START_GRACE_S - 1), meta())
