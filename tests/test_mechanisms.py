"""agentcg.mechanisms: which memory policy, CPU scheduler and exec tracer the daemon runs, and why."""
import pytest

from agentcg import mechanisms
from agentcg.mechanisms import CPU_CHOICES, MEMORY_CHOICES, MechanismError, pick


def never(): return None                      # nothing against the preferred mechanism
def lacking(): return "the kernel has no X"   # a reason it cannot run


def test_auto_takes_the_preferred_mechanism_when_it_can_run():
    assert pick("auto", MEMORY_CHOICES, "kernel", "user", never) == ("kernel", "available")


def test_auto_falls_back_and_says_why():
    assert pick("auto", MEMORY_CHOICES, "kernel", "user", lacking) == ("user", "the kernel has no X")


def test_asking_for_a_mechanism_that_cannot_run_is_an_error():
    with pytest.raises(MechanismError, match="sched_ext was asked for but cannot run: the kernel has no X"):
        pick("sched_ext", CPU_CHOICES, "sched_ext", "weights", lacking)


def test_the_fallback_is_taken_without_asking_the_kernel():
    def must_not_be_called():
        raise AssertionError("probed")
    assert pick("weights", CPU_CHOICES, "sched_ext", "weights", must_not_be_called) == ("weights", "configured")


def test_unknown_settings_are_refused():
    with pytest.raises(MechanismError, match="unknown setting 'fast'"):
        pick("fast", MEMORY_CHOICES, "kernel", "user", never)
    with pytest.raises(MechanismError, match="unknown exec tracer"):
        mechanisms.start("user", "weights", "dtrace", root=None, reserve_bytes=0)


def test_user_space_only_starts_nothing(tmp_path):
    m = mechanisms.start("user", "weights", "off", root=tmp_path, reserve_bytes=0)
    assert m.summary() == {"memory": "user", "cpu": "weights", "tracer": "off",
                           "reasons": {"memory": "configured", "cpu": "configured"}}
    assert m.inkernel is None and m.scheduler is None
    mechanisms.start_tracer(m, None, None, None, ["w1"])  # off: no tracer
    assert m.exec_tracer is None
    m.close()


def test_sched_ext_is_unavailable_without_it_or_while_another_scheduler_runs(monkeypatch):
    monkeypatch.setattr(mechanisms.sched, "kernel_state", lambda root=None: "unsupported")
    assert mechanisms.why_no_sched_ext() == "the kernel has no sched_ext"
    monkeypatch.setattr(mechanisms.sched, "kernel_state", lambda root=None: "enabled")
    assert "another BPF scheduler is loaded" in mechanisms.why_no_sched_ext()
