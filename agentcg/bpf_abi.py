"""The BPF <-> user-space ABI, read from the one header each ABI has (bpf/include/*.h).

A BPF program, its C loader and this package share each map value and ring-buffer record. They are written
once, in bpf/include/<abi>.h, and Python reads the layouts and constants from there instead of repeating them:
`layout("memcg_policy.h", "policy")` is a struct.Struct plus the field names, `constants("memcg_policy.h")`
the values of its enums. The headers keep to what this reader understands: structs of fixed-width integer
fields (__u8 ... __s64) and char arrays, and enums of names with optional integer values. Layouts follow the
C rules of x86-64 and BPF alike: each field at its natural alignment, the struct padded to its largest one.
tests/test_bpf_abi.py compiles every header with the C compiler and checks sizes and offsets against these.
"""
from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass

from agentcg.paths import BPF_INCLUDE

INCLUDE = BPF_INCLUDE
_TYPES = {"__u8": "B", "__s8": "b", "__u16": "H", "__s16": "h", "__u32": "I", "__s32": "i", "__u64": "Q",
          "__s64": "q", "char": "s"}


class AbiError(Exception):
    pass


@dataclass(frozen=True)
class Layout:
    name: str
    fields: tuple[str, ...]
    offsets: tuple[int, ...]
    codec: struct.Struct
    arrays: frozenset[str] = frozenset()  # the char array fields (bytes); the rest are integers

    @property
    def size(self) -> int:
        return self.codec.size

    def pack(self, **values) -> bytes:
        """The struct's bytes; fields not given are zero."""
        unknown = set(values) - set(self.fields)
        if unknown:
            raise AbiError(f"struct {self.name} has no field {', '.join(sorted(unknown))}")
        return self.codec.pack(*(values.get(f, b"" if f in self.arrays else 0) for f in self.fields))

    def unpack(self, data: bytes) -> dict:
        if len(data) < self.size:
            raise AbiError(f"struct {self.name} needs {self.size} bytes, got {len(data)}")
        return dict(zip(self.fields, self.codec.unpack(data[:self.size])))


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r"^\s*#.*?(?<!\\)$", " ", text, flags=re.M | re.S)


@functools.lru_cache(maxsize=None)
def _source(header: str) -> str:
    path = INCLUDE / header
    try:
        return _strip_comments(path.read_text())
    except OSError as e:
        raise AbiError(f"cannot read {path}: {e}")


@functools.lru_cache(maxsize=None)
def constants(header: str) -> dict[str, int]:
    """Every enumerator of the header's plain enums (`enum { A = 1, B, ... };`). An enum built by a macro (an
    X-macro list of names, as the scheduler's stats) is the C side's own and is not read."""
    values: dict[str, int] = {}
    for body in re.findall(r"\benum\s*(?:\w+\s*)?\{([^}]*)\}", _source(header)):
        if re.search(r"\w\s*\(", body):
            continue
        nxt = 0
        for item in (x.strip() for x in body.split(",")):
            if not item:
                continue
            m = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:=\s*(.+))?", item)
            if not m:
                raise AbiError(f"{header}: cannot read enumerator {item!r}")
            if m.group(2) is not None:
                try:
                    nxt = int(m.group(2), 0)
                except ValueError:
                    raise AbiError(f"{header}: {m.group(1)} = {m.group(2)} is not an integer literal")
            values[m.group(1)] = nxt
            nxt += 1
    return values


@functools.lru_cache(maxsize=None)
def layout(header: str, name: str) -> Layout:
    """`struct name` of the header."""
    m = re.search(r"\bstruct\s+" + re.escape(name) + r"\s*\{([^}]*)\}\s*;", _source(header))
    if not m:
        raise AbiError(f"{header} has no struct {name}")
    fields, offsets, codes, arrays = [], [], [], set()
    offset, align_max = 0, 1
    for decl in (d.strip() for d in m.group(1).split(";")):
        if not decl:
            continue
        f = re.fullmatch(r"(\w+)\s+(\w+)\s*(?:\[\s*(\d+)\s*\])?", decl)
        if not f or f.group(1) not in _TYPES:
            raise AbiError(f"{header}: struct {name}: cannot read field {decl!r}")
        ctype, field, count = f.group(1), f.group(2), f.group(3)
        if ctype == "char":
            if count is None:
                raise AbiError(f"{header}: struct {name}: a char field must be an array ({field})")
            size, align, code = int(count), 1, f"{count}s"
            arrays.add(field)
        else:
            if count is not None:
                raise AbiError(f"{header}: struct {name}: integer arrays are not read ({field})")
            size = align = struct.calcsize(_TYPES[ctype])
            code = _TYPES[ctype]
        pad = -offset % align
        if pad:
            codes.append(f"{pad}x")
        offset += pad
        fields.append(field)
        offsets.append(offset)
        codes.append(code)
        offset += size
        align_max = max(align_max, align)
    tail = -offset % align_max
    if tail:
        codes.append(f"{tail}x")
    return Layout(name, tuple(fields), tuple(offsets), struct.Struct("<" + "".join(codes)), frozenset(arrays))
