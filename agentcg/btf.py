"""A small reader for raw BTF (/sys/kernel/btf/vmlinux): enough to list a struct's member names.

Used to detect kernel features by their types (e.g. `struct memcg_bpf_ops` and whether it has v6 or v7 members)
without bpftool, which Debian ships too old.
"""
from __future__ import annotations

import struct
from pathlib import Path

MAGIC = 0xEB9F
KIND_STRUCT = 4
# Bytes that follow the 12-byte common header, per kind: fixed extra, and per-vlen-entry size.
_EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0), 15: (0, 12),
          17: (4, 0), 19: (0, 12)}


class BTFError(Exception):
    pass


def struct_members(data: bytes, wanted: set[str]) -> dict[str, list[str]]:
    """{struct name: [member names]} for every struct in `wanted` found in the BTF blob."""
    if len(data) < 24:
        raise BTFError("BTF blob too short")
    magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    if magic != MAGIC:
        raise BTFError(f"bad BTF magic {magic:#x}")
    types = data[hdr_len + type_off: hdr_len + type_off + type_len]
    strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
    if len(types) != type_len or len(strings) != str_len:
        raise BTFError("BTF blob truncated")

    def name(off: int) -> str:
        end = strings.find(b"\0", off)
        return strings[off:end if end >= 0 else None].decode(errors="replace")

    # Where each wanted name sits in the string section (a whole string: NUL on both sides; offset 0 is the empty
    # string). A kernel without any of them needs no walk through its ~100,000 types (under TCG: seconds), and the
    # walk compares offsets instead of decoding every struct's name.
    wanted_at: dict[int, str] = {}
    for sname in wanted:
        key, at = b"\0" + sname.encode() + b"\0", -1
        while (at := strings.find(key, at + 1)) >= 0:
            wanted_at[at + 1] = sname
    if not wanted_at:
        return {}
    found: dict[str, list[str]] = {}
    pos = 0
    while pos + 12 <= len(types):
        name_off, info, _size = struct.unpack_from("<III", types, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        fixed, per = _EXTRA.get(kind, (0, 0))
        body = pos + 12
        if kind == KIND_STRUCT and name_off in wanted_at:
            found[wanted_at[name_off]] = [name(struct.unpack_from("<I", types, body + 12 * i)[0]) for i in range(vlen)]
            if len(found) == len(wanted):
                return found  # the rest of the walk (under TCG ~2 s on a kernel that has them) finds nothing more
        pos = body + fixed + per * vlen
    if pos != len(types):
        raise BTFError("BTF type section does not parse to its end")
    return found


def kernel_struct_members(wanted: set[str], path: Path = Path("/sys/kernel/btf/vmlinux")) -> dict[str, list[str]]:
    return struct_members(path.read_bytes(), wanted)
