"""The kernel under test has what kernel/kernels.yaml declares, and feature probes agree with the kernel."""
from pathlib import Path

import pytest

from agentcg import features
from agentcg.harness import guest


# Every feature a kernel is declared to have is really there: a wrong declaration would turn skips into lies.
def test_declared_features_are_present():
    if guest.DECLARED is None:
        pytest.skip(f"kernel {guest.KERNEL} has no declaration in kernel/kernels.yaml")
    present = guest.kernel_features()["features"]
    missing = sorted(f for f in guest.DECLARED if not present.get(f))
    assert not missing, f"declared but missing: {missing}"


# The memcg_bpf_ops variant is read from BTF member names, and only a known layout counts as the feature.
@pytest.mark.requires("memcg_bpf_ops")
def test_memcg_bpf_ops_variant_is_known():
    info = guest.kernel_features()["memcg_bpf_ops"]
    assert info["variant"] in ("v6", "v7"), f"unknown memcg_bpf_ops layout: {info['members']}"


# sched_ext reports its state in sysfs when the kernel is built with it.
@pytest.mark.requires("sched_ext")
def test_sched_ext_state_readable():
    state = Path("/sys/kernel/sched_ext/state").read_text().strip()
    assert state in ("disabled", "enabled", "enabling", "disabling")


# The BTF reader agrees with the kernel on a struct every BTF-enabled kernel has.
@pytest.mark.requires("btf")
def test_btf_reader_finds_kernel_structs():
    members = features.btf.kernel_struct_members({"task_struct", "mem_cgroup"})
    assert "pid" in members["task_struct"]
    assert "memory" in members["mem_cgroup"]
