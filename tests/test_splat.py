from agentcg.harness import splat

WARN_LOG = """\
[   12.1] ------------[ cut here ]------------
[   12.1] WARNING: CPU: 1 PID: 342 at mm/memcontrol.c:2190 try_charge_memcg+0x1a/0x30
[   12.1] Call Trace:
"""
OOM_LOG = """\
[   20.0] python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[   20.0] CPU: 0 PID: 211 Comm: python3 Not tainted 6.12.117+deb12-amd64 #1
[   20.0] Call Trace:
[   20.0]  dump_stack_lvl+0x5d/0x80
[   20.0] Memory cgroup out of memory: Killed process 211 (python3) total-vm:150000kB
"""


def test_warning_is_a_splat():
    found = splat.scan(WARN_LOG)
    assert [s.kind for s in found] == ["warning", "warning"]


def test_oom_report_with_stack_dump_is_not_a_splat():
    assert splat.scan(OOM_LOG) == []


def test_each_kind_is_recognised():
    samples = {
        "panic": "Kernel panic - not syncing: sysrq triggered crash",
        "bug": "BUG: kernel NULL pointer dereference, address: 0000000000000000",
        "oops": "Oops: 0002 [#1] PREEMPT SMP NOPTI",
        "lockdep": "WARNING: possible circular locking dependency detected",
        "rcu_stall": "rcu: INFO: rcu_preempt self-detected stall on CPU",
        "hung_task": "INFO: task kworker/0:1:34 blocked for more than 120 seconds.",
        "sanitizer": "UBSAN: shift-out-of-bounds in mm/memcontrol.c:123:4",
        "refcount": "refcount_t: underflow; use-after-free.",
        "list_corruption": "list_del corruption, ffff888003b2c0c8->next is LIST_POISON1",
    }
    for kind, line in samples.items():
        found = splat.scan(line)
        assert found and found[0].kind == kind, (kind, found)


def test_lockdep_warning_line_counts_once():
    found = splat.scan("WARNING: possible recursive locking detected")
    assert len(found) == 1


def test_summary_lists_and_truncates():
    found = splat.scan("\n".join(["BUG: x"] * 12))
    text = splat.summary(found, limit=10)
    assert text.startswith("12 kernel splat(s)") and "and 2 more" in text
