import struct

import pytest

from agentcg import btf, features


def build_btf(structs: dict[str, list[str]], extra_int: bool = True) -> bytes:
    """A minimal valid BTF blob: one INT type, then one STRUCT per entry, with members of that INT type."""
    strings = b"\0"

    def add(s: str) -> int:
        nonlocal strings
        off = len(strings)
        strings += s.encode() + b"\0"
        return off
    types = b""
    if extra_int:
        types += struct.pack("<III", add("int"), 1 << 24, 4) + struct.pack("<I", 32)
    for name, members in structs.items():
        types += struct.pack("<III", add(name), (4 << 24) | len(members), 8 * len(members))
        for i, m in enumerate(members):
            types += struct.pack("<III", add(m), 1, i * 64)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_members_of_wanted_struct():
    blob = build_btf({"memcg_bpf_ops": ["handle_cgroup_online", "below_low"], "other": ["x"]})
    assert btf.struct_members(blob, {"memcg_bpf_ops"}) == {"memcg_bpf_ops": ["handle_cgroup_online", "below_low"]}


def test_absent_struct_is_absent():
    assert btf.struct_members(build_btf({"a": ["b"]}), {"memcg_bpf_ops"}) == {}


def test_only_a_struct_of_exactly_that_name_counts():
    # the name as a member, as the tail of a longer struct name, or as a string of no struct: not the struct
    blob = build_btf({"x_memcg_bpf_ops": ["memcg_bpf_ops"], "memcg_bpf_ops_v2": ["a"]})
    assert btf.struct_members(blob, {"memcg_bpf_ops"}) == {}
    both = build_btf({"x_memcg_bpf_ops": ["memcg_bpf_ops"], "memcg_bpf_ops": ["below_low"]})
    assert btf.struct_members(both, {"memcg_bpf_ops", "absent"}) == {"memcg_bpf_ops": ["below_low"]}


def test_bad_magic_and_truncation_are_errors():
    blob = build_btf({"a": ["b"]})
    with pytest.raises(btf.BTFError, match="magic"):
        btf.struct_members(b"\0\0" + blob[2:], {"a"})
    with pytest.raises(btf.BTFError, match="truncated"):
        btf.struct_members(blob[:-3], {"a"})


V7 = ["handle_cgroup_online", "handle_cgroup_offline", "below_low", "below_min", "memcg_charged", "memcg_uncharged"]
V6 = ["handle_cgroup_online", "handle_cgroup_offline", "below_low", "below_min", "get_high_delay_ms"]


def test_memcg_ops_variant_from_btf_members():
    members = btf.struct_members(build_btf({"memcg_bpf_ops": V7}), {"memcg_bpf_ops"})["memcg_bpf_ops"]
    assert features.memcg_ops_variant(members) == "v7"
    assert features.memcg_ops_variant(V6) == "v6"
    assert features.memcg_ops_variant(["something_else"]) == "unknown"
    assert features.memcg_ops_variant(None) is None
