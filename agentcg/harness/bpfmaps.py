"""Tests read and write an attached program's maps with the kernel tree's own bpftool (built with each kernel we
build, agentcg.harness.kbuild), through the pins memcg_loader made (<pin>/<map name>); and see the test program
bpf/tests/memcg_test.bpf.c (its counters, its config map) and the policy map of bpf/memcg_policy.bpf.c so.
The product's loader keeps only what bpftool does not do for a controller: attach, the serve session, the ring
buffer."""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

from agentcg import bpf_abi
from agentcg.enforce import memcg_bpf

# Names of memcg_test.bpf.c's counters, in index order (its C_* enum in bpf/include/memcg_test.h).
_TEST = bpf_abi.constants("memcg_test.h")
TEST_COUNTERS = tuple(k[2:].lower() for k, _ in sorted(_TEST.items(), key=lambda kv: kv[1]) if k.startswith("C_"))
_TEST_CONFIG = bpf_abi.layout("memcg_test.h", "memcg_test_config")


class BpftoolError(Exception):
    pass


def bpftool() -> Path:
    """The bpftool built beside the BPF objects under test (<kernel cache>/tools/bpftool/bpftool)."""
    return memcg_bpf.bpf_dir().parent / "tools" / "bpftool" / "bpftool"


def _run(*args: str):
    from agentcg.harness import slowness
    proc = subprocess.run([str(bpftool()), "-j", *args], capture_output=True, text=True,
                          timeout=slowness.scaled(60))
    try:
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
    except ValueError:
        raise BpftoolError(f"bpftool {' '.join(args)}: no JSON (exit {proc.returncode}): {proc.stderr[-1000:]}")
    if proc.returncode != 0 or (isinstance(out, dict) and "error" in out):
        raise BpftoolError(f"bpftool {' '.join(args)}: {out.get('error') if isinstance(out, dict) else proc.stderr}")
    return out


def _hex(data: bytes) -> list[str]:
    return ["hex", *(f"{b:02x}" for b in data)]


def _bytes(values: list[str]) -> bytes:
    return bytes(int(v, 16) for v in values)


def dump(pin: Path) -> list[tuple[bytes, bytes]]:
    return [(_bytes(e["key"]), _bytes(e["value"])) for e in _run("map", "dump", "pinned", str(pin))]


def lookup(pin: Path, key: bytes) -> bytes:
    return _bytes(_run("map", "lookup", "pinned", str(pin), "key", *_hex(key))["value"])


def update(pin: Path, key: bytes, value: bytes) -> None:
    _run("map", "update", "pinned", str(pin), "key", *_hex(key), "value", *_hex(value))


# ---- bpf/tests/memcg_test.bpf.c ------------------------------------------------------------------------------

def counters(att: memcg_bpf.Attachment) -> dict[str, int]:
    entries = sorted(dump(att.pin / "counters"))
    return {name: struct.unpack("<Q", value)[0] for name, (_key, value) in zip(TEST_COUNTERS, entries)}


def counters_since(att: memcg_bpf.Attachment, before: dict[str, int]) -> dict[str, int]:
    """How much each counter grew since `before` (an earlier counters(att))."""
    return {name: value - before[name] for name, value in counters(att).items()}


def set_test_config(att: memcg_bpf.Attachment, delay_cgid: int = 0, delay_ms: int = 0, protect_cgid: int = 0,
                    protect_low: bool = False, protect_min: bool = False, watch_cgid: int = 0) -> None:
    """Fill memcg_test.bpf.c's config map (struct memcg_test_config)."""
    value = _TEST_CONFIG.pack(delay_cgid=delay_cgid, delay_ms=delay_ms, protect_low=int(protect_low),
                              protect_cgid=protect_cgid, protect_min=int(protect_min), watch_cgid=watch_cgid)
    update(att.pin / "test_config", struct.pack("<I", 0), value)


# ---- bpf/memcg_policy.bpf.c's policy map ---------------------------------------------------------------------

def set_policy(att: memcg_bpf.Attachment, cgid: int, policy: memcg_bpf.Policy) -> None:
    update(att.pin / "policies", struct.pack("<Q", cgid), policy.pack())


def get_policy(att: memcg_bpf.Attachment, cgid: int) -> memcg_bpf.Policy:
    return memcg_bpf.Policy.unpack(lookup(att.pin / "policies", struct.pack("<Q", cgid)))
