"""What the running kernel offers, probed from the kernel itself (never from its version string).

Each feature is a name used by `@pytest.mark.requires(...)` in vmtests and by the controller to choose between
its in-kernel and user-space paths.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from agentcg import btf

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Member names that tell the memcg_bpf_ops RFC revisions apart (see ../shared/design/memcg_bpf_ops.md).
MEMCG_OPS_V7 = {"memcg_charged", "memcg_uncharged", "below_low", "below_min"}
MEMCG_OPS_V6 = {"get_high_delay_ms", "below_low", "below_min"}

KNOWN = ("cgroup2", "memcg", "cpu_controller", "psi", "btf", "bpf_syscall", "cgroup_freeze", "cgroup_kill",
         "sched_ext", "memcg_bpf_ops", "zram", "sanitizers", "lkdtm")


def memcg_ops_variant(members: list[str] | None) -> str | None:
    """'v7', 'v6' or None from the member names of struct memcg_bpf_ops."""
    if not members:
        return None
    names = set(members)
    if MEMCG_OPS_V7 <= names:
        return "v7"
    if MEMCG_OPS_V6 <= names:
        return "v6"
    return "unknown"


def _cgroup2_controllers() -> list[str] | None:
    try:
        return (CGROUP_ROOT / "cgroup.controllers").read_text().split()
    except OSError:
        return None


def _psi() -> bool:
    try:
        (Path("/proc/pressure/memory")).read_text()
        return True
    except OSError:
        return False


def _bpf_syscall() -> bool:
    """bpf(2) exists when an invalid command gives EINVAL rather than ENOSYS."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    nr_bpf = 321  # x86_64
    ret = libc.syscall(nr_bpf, -1, None, 0)
    return ret == -1 and ctypes.get_errno() != errno.ENOSYS


def probe() -> dict:
    """{feature: bool} plus details (controllers, memcg_bpf_ops variant and members)."""
    controllers = _cgroup2_controllers()
    has_btf = Path("/sys/kernel/btf/vmlinux").exists()
    members = None
    if has_btf:
        try:
            members = btf.kernel_struct_members({"memcg_bpf_ops"}).get("memcg_bpf_ops")
        except (OSError, btf.BTFError):
            members = None
    kernfs_files = {f.name for f in CGROUP_ROOT.glob("*/cgroup.*")} if controllers is not None else set()
    present = {
        "cgroup2": controllers is not None,
        "memcg": bool(controllers) and "memory" in controllers,
        "cpu_controller": bool(controllers) and "cpu" in controllers,
        "psi": _psi(),
        "btf": has_btf,
        "bpf_syscall": _bpf_syscall(),
        "cgroup_freeze": "cgroup.freeze" in kernfs_files or _root_child_has("cgroup.freeze"),
        "cgroup_kill": "cgroup.kill" in kernfs_files or _root_child_has("cgroup.kill"),
        "sched_ext": Path("/sys/kernel/sched_ext").is_dir(),
        "memcg_bpf_ops": members is not None,
        "zram": _zram(),
        # lockdep and KFENCE show themselves without debugfs; KASAN has no runtime file (generic mode), and
        # the kernel pipeline verifies it in the built .config with the others.
        "sanitizers": Path("/proc/lockdep").exists() and Path("/sys/module/kfence").is_dir(),
        "lkdtm": Path("/sys/module/lkdtm").is_dir(),
    }
    return {"features": present, "controllers": controllers or [], "release": os.uname().release,
            "memcg_bpf_ops": {"members": members, "variant": memcg_ops_variant(members)}}


def _zram() -> bool:
    """zram built in (its control class exists) or as a module of the running kernel (not loaded by probing)."""
    if Path("/sys/class/zram-control").is_dir():
        return True
    return any(Path(f"/lib/modules/{os.uname().release}/kernel/drivers/block/zram").glob("zram.ko*"))


def _root_child_has(name: str) -> bool:
    """Non-root cgroup files only show in children; make a throwaway child when there is none."""
    probe_dir = CGROUP_ROOT / "agentcg-feature-probe"
    try:
        probe_dir.mkdir()
    except OSError:
        return False
    try:
        return (probe_dir / name).exists()
    finally:
        probe_dir.rmdir()


def requirement_decision(feature: str, present: dict[str, bool], declared: set[str] | None,
                         kernel: str) -> tuple[str, str] | None:
    """None to run a test that requires `feature`, or ('skip'|'fail', reason).

    A missing feature is a skip only where the kernel is declared not to have it; a kernel declared to have it
    (kernel/kernels.yaml) must really have it, or the test fails. A bare bzImage declares nothing: skip.
    """
    if feature not in KNOWN:
        return "fail", f"unknown feature {feature!r} (known: {', '.join(KNOWN)})"
    if present.get(feature):
        return None
    if declared is None:
        return "skip", f"kernel {kernel} lacks {feature} (no declaration for this kernel)"
    if feature in declared:
        return "fail", f"kernel {kernel} is declared to have {feature}, but the running kernel does not"
    return "skip", f"kernel {kernel} lacks {feature} (declared in kernel/kernels.yaml)"
