"""memcg_bpf_ops conformance: what a kernel offering the memcg_bpf_ops struct_ops (v7 interface) must do.

For reviewers of the RFC series and of our 6.12 port alike: each test checks one promise of the interface, using
the probe policy bpf/tests/memcg_test.bpf.c (counters for every hook, a config map for delays and protection)
and the C loader. On a kernel without memcg_bpf_ops every test skips with that reason.
Timing assertions are ratios against a baseline measured in the same test, never absolute times (TCG).
"""
import errno
import math
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentcg import features
from agentcg.cgroup import cgroup_id, reap
from agentcg.enforce import memcg_bpf
from agentcg.enforce.memcg_bpf import BPF_F_ALLOW_OVERRIDE, BPF_F_CGROUP_FD, LoaderError
from agentcg.harness import bpfmaps, guest
from agentcg.harness.memhog import touch_timed

MIB = 1 << 20
pytestmark = pytest.mark.requires("memcg_bpf_ops")


def attach_probe(cgroup, pins, tag, override=False):
    return memcg_bpf.attach(memcg_bpf.obj("memcg_test"), cgroup.path if cgroup else None, pins / tag,
                            override=override)


def expect_errno(err, call):
    with pytest.raises(LoaderError) as info:
        call()
    assert info.value.errno == err, f"expected {errno.errorcode[err]}, got {info.value}"


# ---- variant and attach rules ---------------------------------------------------------------------------------

# The interface revision is told from BTF member names; this kernel has the v7 members.
def test_variant_is_detected_from_btf():
    info = features.probe()["memcg_bpf_ops"]
    assert info["variant"] == "v7", info
    assert {"memcg_charged", "memcg_uncharged", "below_low", "below_min", "handle_cgroup_online",
            "handle_cgroup_offline"} <= set(info["members"])


# A link created with BPF_F_CGROUP_FD attaches to that cgroup and reports its id in link info.
def test_attach_to_cgroup_reports_cgroup_id(cg, pins):
    att = attach_probe(cg, pins, "a")
    assert att.cgroup_id == cgroup_id(cg.path)
    info = att.info()
    assert info["cgroup_id"] == cgroup_id(cg.path) and info["map_id"] == att.map_id and not info["hup"]


# memcg ops are never global: registering a non-link map is -EOPNOTSUPP, a link without a cgroup -EINVAL.
def test_global_attach_is_rejected(cg, pins):
    expect_errno(errno.EOPNOTSUPP, lambda: memcg_bpf.attach(memcg_bpf.obj("memcg_legacy"), cg.path, pins / "g"))
    expect_errno(errno.EINVAL, lambda: attach_probe(None, pins, "nocg"))


# Only BPF_F_CGROUP_FD and BPF_F_ALLOW_OVERRIDE are accepted, and the latter only with a cgroup.
def test_bad_flags_are_rejected(cg, pins):
    probe = memcg_bpf.obj("memcg_test")
    expect_errno(errno.EINVAL, lambda: memcg_bpf.attach(probe, cg.path, pins / "f1", flags=BPF_F_ALLOW_OVERRIDE))
    expect_errno(errno.EINVAL, lambda: memcg_bpf.attach(probe, cg.path, pins / "f2", flags=BPF_F_CGROUP_FD | 1 << 5))
    assert not list(pins.iterdir()), "a failed attach leaves no pins"


# ---- hierarchy -------------------------------------------------------------------------------------------------

# Attaching below existing ops needs BPF_F_ALLOW_OVERRIDE on the parent's attachment; otherwise -EBUSY.
def test_override_only_with_the_flag(cg, pins):
    cg.enable("memory")
    child = cg.child("c")
    parent_att = attach_probe(cg, pins, "p")
    expect_errno(errno.EBUSY, lambda: attach_probe(child, pins, "c1"))
    parent_att.release()
    attach_probe(cg, pins, "p2", override=True)
    attach_probe(child, pins, "c2")


# -EBUSY: the same cgroup twice; a parent whose descendant has its own ops; a grandchild below a nested
# attachment made without the override flag (the RFC's hierarchy test).
def test_ebusy_cases(cg, pins):
    cg.enable("memory")
    child = cg.child("c")
    child.enable("memory")
    grandchild = child.child("g")
    attach_probe(child, pins, "c")
    expect_errno(errno.EBUSY, lambda: attach_probe(child, pins, "c-again"))
    expect_errno(errno.EBUSY, lambda: attach_probe(cg, pins, "p-over-child", override=True))
    for sub in list(pins.iterdir()):
        memcg_bpf.Attachment(sub, 0, 0, 0).release()
    attach_probe(cg, pins, "p", override=True)
    attach_probe(child, pins, "c2")
    expect_errno(errno.EBUSY, lambda: attach_probe(grandchild, pins, "g"))


# Ops are copied down: an existing descendant and a cgroup created later both run the attached ops, and the new
# one's handle_cgroup_online runs.
def test_descendants_inherit_and_online_hook_runs(cg, pins):
    cg.enable("memory")
    existing = cg.child("existing")
    att = attach_probe(cg, pins, "p")
    bpfmaps.set_test_config(att, watch_cgid=cgroup_id(existing.path))
    _, delta = touch_timed(existing, 1024, counters_of=att)
    assert delta["charged_watched"] >= 1
    online_before = bpfmaps.counters(att)["online"]
    later = cg.child("later")
    assert bpfmaps.counters(att)["online"] == online_before + 1
    bpfmaps.set_test_config(att, watch_cgid=cgroup_id(later.path))
    _, delta = touch_timed(later, 1024, counters_of=att)
    assert delta["charged_watched"] >= 1


# Detach gives the subtree its parent's ops back.
def test_detach_restores_parent_ops(cg, pins):
    cg.enable("memory")
    child = cg.child("c")
    outer = attach_probe(cg, pins, "outer", override=True)
    inner = attach_probe(child, pins, "inner")
    _, d_outer = touch_timed(child, 1024, counters_of=outer)
    assert d_outer["charged"] == 0, "the nested attachment, not the outer one, runs for the child"
    inner.detach()
    _, d_outer = touch_timed(child, 1024, counters_of=outer)
    assert d_outer["charged"] >= 1, "after detach the child runs the parent's ops again"
    assert inner.info()["map_id"] == 0


# A nested override survives the detach of its parent's attachment; the parent's own subtree loses the ops.
def test_nested_override_survives_parent_detach(cg, pins):
    cg.enable("memory")
    child, sibling = cg.child("c"), cg.child("s")
    outer = attach_probe(cg, pins, "outer", override=True)
    inner = attach_probe(child, pins, "inner")
    outer.detach()
    _, d_inner = touch_timed(child, 1024, counters_of=inner)
    assert d_inner["charged"] >= 1
    _, d_outer = touch_timed(sibling, 1024, counters_of=outer)
    assert d_outer["charged"] == 0


# ---- one struct_ops map through several links (the RFC's hierarchy selftest attaches one map three times) ------

def link_probe(att, cgroup, pins, tag, override=False):
    """One more link of `att`'s map (its programs and maps shared) to `cgroup`."""
    return memcg_bpf.link(att.ops_map, cgroup.path, pins / tag, override=override)


def charged_in(cg, att) -> int:
    """Charges the shared probe counted for cg (its watched cgroup) while cg allocated 1 MiB."""
    bpfmaps.set_test_config(att, watch_cgid=cgroup_id(cg.path))
    _, delta = touch_timed(cg, 1024, counters_of=att)
    return delta["charged_watched"]


def nested(cg, depth: int) -> list:
    """cg and `depth` - 1 descendants below it, one per level, the memory controller enabled down to the last."""
    levels = [cg]
    for i in range(depth - 1):
        levels[-1].enable("memory")
        levels.append(levels[-1].child(f"l{i + 1}"))
    return levels


# /cg with BPF_F_ALLOW_OVERRIDE, /cg/cg without flags: both links of one map attach, each reporting its own
# cgroup; /cg/cg/cg without flags is -EBUSY (its ops come from a link made without the override flag).
def test_one_map_attaches_to_several_cgroups(cg, pins):
    top, mid, low = nested(cg, 3)
    outer = attach_probe(top, pins, "outer", override=True)
    inner = link_probe(outer, mid, pins, "inner")
    assert inner.map_id == outer.map_id and inner.link_id != outer.link_id
    assert (outer.info()["cgroup_id"], inner.info()["cgroup_id"]) == (cgroup_id(top.path), cgroup_id(mid.path))
    expect_errno(errno.EBUSY, lambda: link_probe(outer, low, pins, "lowest"))
    expect_errno(errno.EBUSY, lambda: link_probe(outer, mid, pins, "mid-again", override=True))
    assert charged_in(low, outer) >= 1, "the nested link's cgroups run the map's programs"


# Detaching the outer link of a map leaves the cgroups of the same map's nested link alone (they are not the
# outer link's to restore); its own subtree outside the nested link loses the ops. Then the nested link's detach
# restores what its parent runs by then: nothing.
def test_outer_link_of_a_map_detaches_without_touching_its_nested_link(cg, pins):
    top, mid, low = nested(cg, 3)
    side = top.child("side")
    outer = attach_probe(top, pins, "outer", override=True)
    inner = link_probe(outer, mid, pins, "inner")
    outer.detach()
    assert outer.info()["map_id"] == 0 and inner.info()["map_id"] == outer.map_id
    assert charged_in(side, outer) == 0, "the outer link's own subtree has no ops after its detach"
    assert charged_in(low, outer) >= 1, "the nested link still runs for its subtree"
    inner.detach()
    assert charged_in(low, outer) == 0, "detached both: the subtree has its parent's ops again (none)"


# Removing the cgroups of a map's links, innermost first (each link hangs up in turn, the outer one keeps running
# for what remains), or after the outer link was detached: each link detaches once, with its own cgroup kept in
# link info, and nothing is left attached.
@pytest.mark.parametrize("order", ["inner-first", "outer-detached-first"])
def test_cgroups_of_one_maps_links_can_be_removed_in_either_order(cg, pins, order):
    cg.enable("memory")
    top, mid, low = nested(cg.child("t"), 3)  # below the fixture's cgroup: removable
    outer = attach_probe(top, pins, "outer", override=True)
    inner = link_probe(outer, mid, pins, "inner")
    if order == "outer-detached-first":
        outer.detach()
    low.path.rmdir()
    mid.path.rmdir()
    assert inner.wait_hup(5000), "the nested link hangs up with its cgroup"
    assert inner.info()["cgroup_id"] == inner.cgroup_id
    if order == "inner-first":
        assert not outer.info()["hup"] and outer.info()["map_id"] == outer.map_id
        after = top.child("after")
        assert charged_in(after, outer) >= 1, "the outer link still runs below its cgroup"
        after.path.rmdir()
    top.path.rmdir()
    assert outer.wait_hup(5000) and outer.info()["map_id"] == 0


# Removing the cgroup of an attach point detaches the link: its fd polls EPOLLHUP and it reports no map.
def test_cgroup_removal_auto_detaches_with_hangup(cg, pins):
    cg.enable("memory")
    doomed = cg.child("doomed")
    att = attach_probe(doomed, pins, "d")
    offline_before = bpfmaps.counters(att)["offline"]
    doomed.path.rmdir()
    assert att.wait_hup(5000), "link fd reports hang-up after the cgroup is removed"
    info = att.info()
    assert info["map_id"] == 0 and info["cgroup_id"] == att.cgroup_id
    assert bpfmaps.counters(att)["offline"] == offline_before + 1


# ---- verifier --------------------------------------------------------------------------------------------------

# Hooks run in the charge path under RCU: a sleepable program is rejected at load.
def test_verifier_rejects_sleepable_program(cg, pins):
    with pytest.raises(LoaderError) as info:
        memcg_bpf.attach(memcg_bpf.obj("memcg_bad_sleepable"), cg.path, pins / "s")
    assert info.value.stage == "load"


# Policies may read the memcg but never write through it.
def test_verifier_rejects_write_through_memcg(cg, pins):
    with pytest.raises(LoaderError) as info:
        memcg_bpf.attach(memcg_bpf.obj("memcg_bad_write"), cg.path, pins / "w")
    assert info.value.stage == "load"
    assert "only read is supported" in str(info.value)


# ---- charge delay ----------------------------------------------------------------------------------------------

def delayed_run(cg, att, delay_ms, kib):
    """(seconds, delayed charges) for one allocation with the given BPF delay on cg."""
    cgid = cgroup_id(cg.path)
    seconds, delta = touch_timed(cg, kib, before_go=lambda: bpfmaps.set_test_config(att, delay_cgid=cgid,
                                                                                delay_ms=delay_ms),
                                 counters_of=att)
    bpfmaps.set_test_config(att, )
    return seconds, delta["delayed"]


# The delay a policy returns is slept by the charging task; the observed extra time matches the requested
# delay per delayed charge. Over 20 paired samples (median and 95th percentile of the relative error, nearest
# rank); the median is bounded, the 95th percentile is recorded (TCG preempts the guest at times). On a sanitizer
# kernel a pair takes ~50 s under TCG: 5 pairs there, and the upper bound is 1.5: there a 40-ms delay measured
# 1.21-1.28x (median 1.245x), ~10 ms per delayed charge more than asked, which only a delayed charge pays (the
# over-high path, PSI accounting and the timed sleep, under KASAN and lockdep; not broken down further).
SANITIZED = "sanitizers" in (guest.DECLARED or set())


def test_delay_is_honoured_precisely(cg, pins, record_measurement):
    att = attach_probe(cg, pins, "p")
    kib, delay_ms = 4096, 40
    ratios, baselines = [], []
    for _ in range(5 if SANITIZED else 20):
        base, _ = delayed_run(cg, att, 0, kib)
        slow, delayed = delayed_run(cg, att, delay_ms, kib)
        assert delayed >= 8, "a 4 MiB allocation crosses several 64-page batches"
        baselines.append(base)
        ratios.append((slow - base) / (delayed * delay_ms / 1000))
    errors = sorted(abs(r - 1) for r in ratios)
    median_err, p95_err = statistics.median(errors), errors[math.ceil(0.95 * len(errors)) - 1]
    record_measurement("delay_precision", {"delay_ms": delay_ms, "samples": len(ratios), "ratios": ratios,
                                           "median_rel_err": median_err, "p95_rel_err": p95_err,
                                           "max_rel_err": errors[-1], "baseline_s": baselines})
    assert 0.9 <= statistics.median(ratios) <= (1.5 if SANITIZED else 1.2), ratios


# Delays of 10 ms or less are not slept (as for the kernel's own memory.high penalty).
def test_delay_of_10ms_or_less_is_not_slept(cg, pins):
    att = attach_probe(cg, pins, "p")
    base = min(delayed_run(cg, att, 0, 4096)[0] for _ in range(2))
    runs = [delayed_run(cg, att, 10, 4096) for _ in range(2)]  # best of two on both sides: TCG preempts
    short, delayed = min(r[0] for r in runs), min(r[1] for r in runs)
    assert delayed >= 8, "the hook asked for the delay"
    assert short - base < 0.3 * delayed * 0.010, (base, short, delayed)


# Any delay is clamped to 2 s per charge.
def test_delay_is_clamped_to_two_seconds(cg, pins):
    att = attach_probe(cg, pins, "p")
    seconds, delayed = delayed_run(cg, att, 5000, 512)
    assert 1 <= delayed <= 12, "512 KiB: a few batches of user pages plus page tables"
    per_charge = seconds / delayed
    assert 1.6 <= per_charge <= 2.8, f"{per_charge:.2f} s per delayed charge (asked 5 s, clamp 2 s)"


# When memory.high is breached too, the charging task sleeps max(kernel penalty, BPF delay), not their sum: with
# memory.high at half the process's usage the kernel's own penalty reaches the 2-s clamp per charge batch; a 2-s
# BPF delay on the same batches adds nothing (summed, each would cost ~4 s).
def test_delay_and_high_penalty_combine_as_their_maximum(cg, pins, record_measurement):
    att = attach_probe(cg, pins, "p")
    cg.enable("memory")
    leaf = cg.child("over-high")
    leaf.write("memory.swap.max", 0)  # nothing to reclaim: the usage stays over memory.high
    cgid = cgroup_id(leaf.path)

    def over_high(delay_ms):
        def arm():
            leaf.write("memory.high", leaf.read_int("memory.current") // 2)
            bpfmaps.set_test_config(att, watch_cgid=cgid, delay_cgid=cgid, delay_ms=delay_ms)
        seconds, delta = touch_timed(leaf, 1024, before_go=arm, counters_of=att)
        leaf.write("memory.high", "max")
        bpfmaps.set_test_config(att)
        return seconds, delta

    kernel_s, kernel = over_high(0)
    both_s, both = over_high(2000)
    assert kernel["charged_watched"] >= 3 and both["delayed"] >= 3, (kernel, both)
    kernel_per_batch = kernel_s / kernel["charged_watched"]
    both_per_batch = both_s / both["delayed"]
    record_measurement("delay_with_high_penalty", {"kernel_s": kernel_s, "kernel_batches": kernel["charged_watched"],
                                                   "both_s": both_s, "both_delayed": both["delayed"]})
    assert kernel_per_batch >= 1.4, f"the kernel's penalty alone: {kernel_per_batch:.2f} s per batch (clamp 2 s)"
    assert both_per_batch <= 2.8, f"{both_per_batch:.2f} s per batch with a 2-s BPF delay on top: they added up"
    assert both_s <= 1.3 * kernel_s, (kernel_s, both_s)


# Charges that may not block are never delayed. A TCP receiver in the cgroup is charged for its receive queue in
# softirq context (GFP_NOWAIT), on the sending task's time: with a 2-s delay asked for every charge of the
# receiver's cgroup, the hook runs for those charges and the sender outside the cgroup is not slowed (were the
# delay slept there, 2 MiB would cost seconds, and a sleep in softirq would splat). The receive buffer is made
# large enough (net.core.rmem_max) to take all of it unread.
RECEIVER = """import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
print("accepted", flush=True)
sys.stdin.readline()  # not reading: the data sits in the receive queue, charged to this cgroup
"""


@pytest.fixture
def large_receive_buffers():
    knob = Path("/proc/sys/net/core/rmem_max")
    before = knob.read_text()
    knob.write_text(str(32 * MIB))
    yield
    knob.write_text(before)


def test_charges_that_may_not_block_are_never_delayed(cg, pins, large_receive_buffers, record_measurement):
    import socket
    att = attach_probe(cg, pins, "p")
    cg.enable("memory")
    leaf = cg.child("receiver")
    cgid = cgroup_id(leaf.path)

    def send(delay_ms: int) -> tuple[float, dict]:
        proc = leaf.spawn([sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True)
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            assert proc.stdout.readline().strip() == "accepted"
            bpfmaps.set_test_config(att, watch_cgid=cgid, delay_cgid=cgid, delay_ms=delay_ms)
            c0 = bpfmaps.counters(att)
            start = time.monotonic()
            sock.sendall(b"x" * (2 * MIB))
            seconds = time.monotonic() - start
            delta = bpfmaps.counters_since(att, c0)
            bpfmaps.set_test_config(att)
            queued = leaf.keyed("memory.stat")["sock"]
            proc.stdin.close()
        assert reap(proc, timeout=120) == 0
        assert queued >= MIB, f"the receive queue is charged to the receiver's cgroup: {queued} bytes"
        return seconds, delta

    base, _ = min((send(0) for _ in range(2)), key=lambda run: run[0])
    slow, delta = min((send(2000) for _ in range(2)), key=lambda run: run[0])
    record_measurement("atomic_charges", {"sender_s": base, "sender_with_delays_s": slow,
                                          "delays_asked": delta["delayed"]})
    assert delta["delayed"] >= 4, f"the hook asked to delay the receive-queue charges: {delta}"
    assert slow <= 3 * base + 1.0, f"sender {slow:.2f} s with delays asked vs {base:.2f} s without"


# The delay is slept as a memory stall: it shows in the cgroup's memory.pressure.
def test_delay_shows_in_memory_pressure(cg, pins):
    att = attach_probe(cg, pins, "p")
    before = cg.pressure("memory")["some"]["total"]
    _, delayed = delayed_run(cg, att, 100, 2048)
    stalled_us = cg.pressure("memory")["some"]["total"] - before
    assert stalled_us >= 0.5 * delayed * 100_000, (stalled_us, delayed)


# ---- protection ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zram_swap():
    """Swap on zram, so anonymous memory is reclaimable and protection has something to protect from."""
    dev = Path("/sys/block/zram0")
    if not dev.exists():
        subprocess.run(["modprobe", "zram"], capture_output=True)
    if not dev.exists():
        pytest.fail("kernel declares memcg_bpf_ops but has no zram device for the protection tests")
    (dev / "disksize").write_text(str(512 * MIB))
    subprocess.run(["mkswap", "/dev/zram0"], check=True, capture_output=True)
    subprocess.run(["swapon", "/dev/zram0"], check=True, capture_output=True)
    yield
    subprocess.run(["swapoff", "/dev/zram0"], check=True, capture_output=True)
    (dev / "reset").write_text("1")


def squeeze(cg, protect=None, pins=None):
    """Parent limit 64 MiB: 'kept' holds 40 MiB, then 'pusher' needs 64 MiB. Returns kept's memory afterwards."""
    cg.enable("memory")
    parent = cg.child(f"squeeze-{protect or 'none'}")
    parent.enable("memory")
    parent.write("memory.max", 64 * MIB)
    kept, pusher = parent.child("kept"), parent.child("pusher")
    if protect:
        att = attach_probe(parent, pins, f"protect-{protect}")
        bpfmaps.set_test_config(att, protect_cgid=cgroup_id(kept.path), protect_low=protect == "low",
                            protect_min=protect == "min")
    holder = kept.spawn([sys.executable, "-m", "agentcg.harness.memhog", "40", "--hold"], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"ready"
    push = pusher.spawn([sys.executable, "-m", "agentcg.harness.memhog", "64"], stdout=subprocess.DEVNULL)
    assert reap(push, timeout=180) == 0
    kept_bytes = kept.read_int("memory.current")
    parent.destroy()
    return kept_bytes


# below_low / below_min add protection under a parent limit: the protected cgroup keeps far more of its memory
# than the same cgroup without the policy (same test, same workload).
@pytest.mark.parametrize("kind", ["low", "min"])
def test_protection_hooks_keep_memory_vs_baseline(cg, pins, zram_swap, kind, record_measurement):
    baseline = squeeze(cg)
    protected = squeeze(cg, protect=kind, pins=pins)
    record_measurement(f"protection_below_{kind}", {"baseline_mib": baseline / MIB,
                                                    "protected_mib": protected / MIB})
    assert protected >= 0.85 * 40 * MIB, f"protected kept {protected / MIB:.1f} MiB of 40"
    assert protected >= 1.3 * baseline, f"baseline {baseline / MIB:.1f} MiB vs protected {protected / MIB:.1f}"


# The hook runs once per charge batch (the per-CPU stock refill, 64 pages), not once per page: a 4 MiB allocation
# (1024 pages) makes a few dozen calls at most, each charging a batch's worth on average.
def test_charge_hook_runs_once_per_batch_not_per_page(cg, pins):
    att = attach_probe(cg, pins, "p")
    cg.enable("memory")
    leaf = cg.child("leaf")
    bpfmaps.set_test_config(att, watch_cgid=cgroup_id(leaf.path))
    _, delta = touch_timed(leaf, 4096, counters_of=att)
    calls, pages = delta["charged_watched"], delta["charged_watched_pages"]
    assert pages >= 1024, f"{pages} pages charged for 4 MiB"
    assert 1024 // 64 // 2 <= calls <= 1024 // 16, f"{calls} calls for {pages} pages"
    assert pages / calls >= 16, f"{pages / calls:.1f} pages per call: the hook runs per batch"


# memcg_uncharged sees what is given back: after a process that charged 8 MiB exits, the hooks account for every
# page of the cgroup's counter (pages charged - pages uncharged = memory.current, per-CPU stock included), within
# one 64-page batch for a stock drained between the two reads.
def test_uncharge_hook_sees_the_memory_given_back(cg, pins):
    att = attach_probe(cg, pins, "p")
    cg.enable("memory")
    leaf = cg.child("leaf")
    bpfmaps.set_test_config(att, watch_cgid=cgroup_id(leaf.path))
    proc = leaf.spawn([sys.executable, "-m", "agentcg.harness.memhog", "8"], stdout=subprocess.DEVNULL)
    assert reap(proc, timeout=120) == 0
    c = bpfmaps.counters(att)
    held = leaf.read_int("memory.current") // 4096
    charged, uncharged = c["charged_watched_pages"], c["uncharged_watched_pages"]
    assert charged >= 2048, f"{charged} pages charged for 8 MiB"
    assert uncharged >= 2048, f"{uncharged} pages uncharged after the 8 MiB were freed"
    assert abs(charged - uncharged - held) <= 64, (charged, uncharged, held)


# ---- protection arguments and add-only ---------------------------------------------------------------------------

def squeeze_with_protection(cg, pins, knob: str, mib: int, policy: bool, watch: bool = False):
    """squeeze() with `knob` (memory.low or memory.min) on 'kept' and, if asked, the probe attached answering false
    for everyone (its protect fields unset). Returns (kept's bytes afterwards, the probe's counters or None)."""
    cg.enable("memory")
    tag = f"{knob.split('.')[1]}-{mib}-{'bpf' if policy else 'plain'}"
    parent = cg.child(tag)
    parent.enable("memory")
    parent.write("memory.max", 64 * MIB)
    kept, pusher = parent.child("kept"), parent.child("pusher")
    kept.write(knob, mib * MIB)
    att = attach_probe(parent, pins, f"{tag}-{watch}") if policy else None
    if att:
        bpfmaps.set_test_config(att, watch_cgid=cgroup_id(kept.path) if watch else 0)
    holder = kept.spawn([sys.executable, "-m", "agentcg.harness.memhog", "40", "--hold"], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"ready"
    push = pusher.spawn([sys.executable, "-m", "agentcg.harness.memhog", "64"], stdout=subprocess.DEVNULL)
    assert reap(push, timeout=180) == 0
    kept_bytes = kept.read_int("memory.current")
    counters = bpfmaps.counters(att) if att else None
    parent.destroy()  # its link hangs up
    return kept_bytes, counters


# below_low / below_min receive the effective protection and the usage, in pages: under a parent that is the
# reclaim root, kept's elow (emin) is its memory.low (memory.min) exactly, and its usage is above it (else the
# kernel's own check answers and the hook is not asked).
@pytest.mark.parametrize("knob,asked,effective,usage", [("memory.low", "low_watched", "low_elow", "low_usage"),
                                                        ("memory.min", "min_watched", "min_emin", "min_usage")])
def test_protection_hook_receives_effective_protection_and_usage_in_pages(cg, pins, zram_swap, knob, asked,
                                                                          effective, usage):
    _, c = squeeze_with_protection(cg, pins, knob, 16, policy=True, watch=True)
    assert c[asked] > 0, f"reclaim asked the {knob} hook about kept"
    assert c[effective] == 16 * MIB // 4096, c[effective]
    assert 16 * MIB // 4096 < c[usage] <= 48 * MIB // 4096, c[usage]


# A hook can only add protection: with memory.low set, a policy answering false everywhere keeps kept's memory as
# well as no policy does (the kernel's own check runs first and is not overridden).
def test_a_protection_hook_answering_false_takes_nothing_away(cg, pins, zram_swap, record_measurement):
    plain, _ = squeeze_with_protection(cg, pins, "memory.low", 32, policy=False)
    with_bpf, _ = squeeze_with_protection(cg, pins, "memory.low", 32, policy=True)
    record_measurement("protection_add_only", {"plain_mib": plain / MIB, "bpf_false_mib": with_bpf / MIB})
    assert plain >= 28 * MIB, f"memory.low 32 MiB kept {plain / MIB:.1f} MiB without BPF"
    assert with_bpf >= 0.9 * plain, f"{with_bpf / MIB:.1f} MiB with a policy answering false vs {plain / MIB:.1f}"


# ---- attach points and programs ----------------------------------------------------------------------------------

# There is no global registration; the root cgroup is the attach point that covers every memcg.
def test_attach_at_the_root_cgroup_covers_every_cgroup(cg, pins):
    from agentcg.cgroup import ROOT, Cgroup
    cg.enable("memory")
    leaf = cg.child("leaf")
    att = attach_probe(Cgroup(ROOT), pins, "root")
    try:
        assert att.info()["cgroup_id"] == cgroup_id(ROOT)
        bpfmaps.set_test_config(att, watch_cgid=cgroup_id(leaf.path))
        _, delta = touch_timed(leaf, 1024, counters_of=att)
        assert delta["charged_watched"] > 0, "a cgroup two levels down runs the root's ops"
    finally:
        att.detach()


# Hooks get the base helpers only: a program calling a tracing helper (bpf_get_stackid) is rejected at load.
def test_verifier_rejects_a_helper_outside_the_base_set(cg, pins):
    with pytest.raises(LoaderError) as info:
        memcg_bpf.attach(memcg_bpf.obj("memcg_bad_helper"), cg.path, pins / "h")
    assert info.value.stage == "load"


# A policy that allocates in its charge hook (a hash map without preallocation) re-enters the charge path through
# the BPF allocator: charges still complete, nothing deadlocks, and the hook's inserts happened.
def test_an_allocating_policy_does_not_deadlock_the_charge_path(cg, pins):
    att = memcg_bpf.attach(memcg_bpf.obj("memcg_allocating"), cg.path, pins / "a")
    cg.enable("memory")
    seconds, _ = touch_timed(cg.child("leaf"), 16 * 1024)
    inserted = struct.unpack("<Q", bpfmaps.lookup(att.pin / "allocated", struct.pack("<I", 0)))[0]
    assert inserted > 0, "the hook ran and allocated"
    assert seconds < 60


# ---- the RFC's own selftest scenario -----------------------------------------------------------------------------

# memcg_ops selftest, as the RFC runs it: a parent with memory.max and no swap, children `high` and `low`, each
# writing a file and touching its pages; `low` gets 2000 ms charge delays, `high` below_low. Both finish, and `low`
# takes more than 1 s longer than `high` (wall clock). Scaled for TCG: 1 MiB files under a 96 MiB parent, the
# policy set once both interpreters are up (at 2 s per charge batch their start-up alone would take a minute).
RFC_CHILD = """import sys, time, mmap
print("armed", flush=True); sys.stdin.readline()
t = time.monotonic()
with open(sys.argv[1], "wb") as f:
    f.write(b"x" * (1 << 20))
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    for _ in range(3):
        for off in range(0, len(m), 4096):
            m[off] = 1
print(time.monotonic() - t, flush=True)
"""


def test_rfc_selftest_low_is_delayed_a_second_longer_than_high(cg, pins, tmp_path):
    cg.enable("memory")
    parent = cg.child("rfc")
    parent.enable("memory")
    parent.write("memory.max", 96 * MIB)
    parent.write("memory.swap.max", 0)
    high, low = parent.child("high"), parent.child("low")
    att = attach_probe(parent, pins, "rfc")
    procs = {name: c.spawn([sys.executable, "-c", RFC_CHILD, str(tmp_path / name)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True) for name, c in (("high", high), ("low", low))}
    for proc in procs.values():
        assert proc.stdout.readline().strip() == "armed"
    bpfmaps.set_test_config(att, delay_cgid=cgroup_id(low.path), delay_ms=2000,
                            protect_cgid=cgroup_id(high.path), protect_low=True)
    for proc in procs.values():
        proc.stdin.write("go\n")
        proc.stdin.close()
    took = {}
    for name, proc in procs.items():
        out = proc.stdout.read()
        assert reap(proc, timeout=300) == 0, name
        took[name] = float(out.split()[-1])
    assert took["low"] - took["high"] > 1.0, took


# The RFC's async-reclaim case (a policy reclaiming from a BPF workqueue through a kfunc) needs kfuncs our 6.12
# port does not carry (no mm/bpf_memcontrol.c in 6.12): declared, not silently absent.
@pytest.mark.skip(reason="async reclaim from BPF needs the series' memcg kfuncs (bpf_mem_cgroup_*), which the 6.12 "
                         "port does not carry; the port's scope is the struct_ops hooks")
def test_rfc_async_reclaim_from_a_bpf_workqueue():
    pass


# ---- lifetime stress -------------------------------------------------------------------------------------------

def dying_memcgs():
    return int(dict(line.split() for line in Path("/sys/fs/cgroup/cgroup.stat").read_text().splitlines())
               ["nr_dying_descendants"])


def cycles(kind: str, cgroup: Path, count: int) -> dict:
    """bpf/tests/memcg_cycles: attach (or create, attach and remove) COUNT times in a loop."""
    return memcg_bpf._loader(kind, str(memcg_bpf.obj("memcg_test")), "--cgroup", str(cgroup), "--count", str(count),
                             tool="memcg_cycles")


# 1000 attach/detach cycles under memory load leave no links, maps or memcgs behind (the per-test guard checks
# BPF ids and kernel splats).
def test_attach_detach_cycles_leak_nothing(cg):
    cg.enable("memory")
    load = cg.child("load").spawn([sys.executable, "-m", "agentcg.harness.memhog", "32", "--hold"], stdout=subprocess.PIPE)
    target = cg.child("target")
    assert cycles("attach", target.path, 1000)["cycles"] == 1000
    load.kill()


# The review-flagged teardown races, with the hooks running: 150 cgroups each with 4 processes charging (every
# charge delayed 20 ms, so charges sleep in the hook's delay) and uncharging; while they do, the link is detached,
# or the cgroup removed with its link attached and its tmpfs pages still charged, or both at once, and the pages are
# freed after the cgroup is gone (memcg_uncharged on a removed memcg). On agentcg-6.12-debug, KASAN, lockdep and
# the list checks watch every cycle (the guard fails the test on any report).
def test_detach_and_removal_while_charges_are_in_flight(cg, pins):
    cg.enable("memory")
    parent = cg.child("inflight")
    parent.enable("memory")  # each cycle's cgroup has a memcg to attach to
    before = dying_memcgs()
    result = memcg_bpf._loader("inflight", str(memcg_bpf.obj("memcg_test")), "--cgroup", str(parent.path),
                               "--count", "150", "--chargers", "4", tool="memcg_cycles")
    assert result["cycles"] == 150
    assert result["detached_while_charging"] == result["removed_while_attached"] == result["both_at_once"] == 50
    deadline = time.monotonic() + 60
    while dying_memcgs() > before + 5 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert dying_memcgs() <= before + 5, "removed memcgs went away once their pages did"


# 200 cgroups created, attached to and removed while attached, under load: every link hangs up, and the dying
# memcgs go away.
def test_cgroup_remove_with_attached_link_cycles(cg):
    cg.enable("memory")
    load = cg.child("load").spawn([sys.executable, "-m", "agentcg.harness.memhog", "32", "--hold"], stdout=subprocess.PIPE)
    parent = cg.child("churn")
    parent.enable("memory")
    before = dying_memcgs()
    result = cycles("remove", parent.path, 200)
    assert result["cycles"] == 200 and result["hups"] == 200
    load.kill()
    deadline = time.monotonic() + 30
    while dying_memcgs() > before + 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dying_memcgs() <= before + 5
