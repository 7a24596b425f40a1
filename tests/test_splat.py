import pytest

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
    assert [s.kind for s in found] == ["warning"], "the WARNING line; its cut line goes with it"
    assert "try_charge_memcg" in found[0].line


def test_a_cut_line_with_no_report_after_it_still_counts():
    found = splat.scan("[ 1.0] ------------[ cut here ]------------\n[ 1.0] something garbled\n")
    assert [s.kind for s in found] == ["warning"]


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


def allow_file(tmp_path, text):
    path = tmp_path / "allow.yaml"
    path.write_text(text)
    return path


def test_an_allowed_line_passes_with_its_cut_line_only_on_the_kernels_named(tmp_path):
    allow = splat.load_allow(allow_file(tmp_path, """allow:
  - pattern: 'at mm/memcontrol.c:2190'
    kernels: ['debian-*']
    reason: a known warning of the stock kernel
"""))
    assert splat.scan(WARN_LOG, allow, "debian-6.12") == []
    assert [s.kind for s in splat.scan(WARN_LOG, allow, "agentcg-6.12")] == ["warning"]
    assert [s.kind for s in splat.scan(WARN_LOG + "[ 13.0] BUG: KASAN: use-after-free\n", allow, "debian-6.12")] \
        == ["bug"], "only the allowed line passes"


@pytest.mark.parametrize("text, why", [
    ("allow: [{pattern: x}]", "reason"),
    ("allow: [{pattern: x, reason: '  '}]", "reason"),
    ("allow: [{pattern: '(', reason: r}]", "bad pattern"),
    ("allow: [{pattern: x, reason: r, kernels: debian}]", "globs"),
    ("allow: [{pattern: x, reason: r, why: y}]", "reason"),
    ("allow: nope", "list"),
    ("[", "not valid YAML"),
])
def test_a_bad_allow_list_is_one_clear_error(tmp_path, text, why):
    with pytest.raises(splat.AllowListError, match=why):
        splat.load_allow(allow_file(tmp_path, text))


def test_the_repository_allow_list_loads_and_every_entry_has_a_reason():
    assert all(a.reason for a in splat.load_allow())


def test_outside_guards_is_what_no_test_watched():
    log = "\n".join([
        "[ 0.5] boot line",
        "[ 1.0] agentcg-guard: on 1 vmtests/a.py::t1",
        "[ 1.1] BUG: in t1",
        "[ 1.2] agentcg-guard: off 1 vmtests/a.py::t1",
        "[ 1.3] WARNING: CPU: 0 PID: 1 at teardown",
        "[ 1.4] agentcg-guard: on 2 vmtests/a.py::t2",
        "[ 1.5] inside t2",
    ])
    outside = splat.outside_guards(log)
    assert "boot line" in outside and "at teardown" in outside
    assert "in t1" not in outside and "inside t2" not in outside and "agentcg-guard" not in outside
    assert [s.kind for s in splat.scan(outside)] == ["warning"]
