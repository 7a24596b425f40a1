"""What a test may not leave behind: cgroups, processes, BPF programs/maps/links, pinned BPF objects.

A snapshot is taken before each in-guest test and compared after it; anything new is a leak and fails the test.
Also: a cursor over /dev/kmsg, so each test sees only the kernel messages printed while it ran.
"""
from __future__ import annotations

import ctypes
import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
BPFFS = Path("/sys/fs/bpf")

_NR_BPF = 321  # x86_64
_GET_NEXT_ID = {"prog": 11, "map": 12, "link": 31}


@dataclass
class Snapshot:
    cgroups: set[str] = field(default_factory=set)
    pids: set[int] = field(default_factory=set)
    bpf: dict[str, set[int]] = field(default_factory=dict)
    pins: set[str] = field(default_factory=set)


def cgroups(root: Path = CGROUP_ROOT) -> set[str]:
    return {os.path.relpath(d, root) for d, _, _ in os.walk(root)} - {"."}


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def user_pids() -> set[int]:
    """Live pids that are not kernel threads (kthreadd is pid 2 and parents every kernel thread)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pid = int(entry)
            ppid = _ppid(pid)
            if ppid is not None and pid != 2 and ppid != 2:
                out.add(pid)
    return out


def bpf_ids(kind: str) -> set[int]:
    """All ids of BPF objects of a kind, through BPF_{PROG,MAP,LINK}_GET_NEXT_ID."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 4)()
    ids, start = set(), 0
    while True:
        attr[0], attr[1] = start, 0
        if libc.syscall(_NR_BPF, _GET_NEXT_ID[kind], ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
            err = ctypes.get_errno()
            if err not in (errno.ENOENT, errno.EPERM, errno.ENOSYS, errno.EINVAL):
                raise OSError(err, f"bpf GET_NEXT_ID({kind})")
            return ids
        start = attr[1]
        ids.add(start)


def pins(root: Path = BPFFS) -> set[str]:
    if not root.is_dir():
        return set()
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


def snapshot() -> Snapshot:
    return Snapshot(cgroups=cgroups(), pids=user_pids(), bpf={k: bpf_ids(k) for k in _GET_NEXT_ID}, pins=pins())


def leaks(before: Snapshot, after: Snapshot, own_pid: int | None = None) -> list[str]:
    """Human-readable list of what `after` has that `before` did not."""
    found = []
    new_cgroups = sorted(after.cgroups - before.cgroups)
    if new_cgroups:
        found.append(f"leftover cgroups: {', '.join(new_cgroups)}")
    new_pids = sorted(after.pids - before.pids - {own_pid})
    described = [d for d in (_describe(p) for p in new_pids) if d]
    if described:
        found.append(f"leftover processes: {', '.join(described)}")
    for kind in sorted(after.bpf):
        new = sorted(after.bpf[kind] - before.bpf.get(kind, set()))
        if new:
            found.append(f"leftover BPF {kind}s: ids {new}")
    new_pins = sorted(after.pins - before.pins)
    if new_pins:
        found.append(f"leftover pinned BPF objects: {', '.join(new_pins)}")
    return found


def settled_leaks(before: Snapshot, own_pid: int | None = None, settle_s: float = 10.0) -> list[str]:
    """leaks() once the kernel had a bounded chance to finish asynchronous teardown.

    BPF maps and links are freed after RCU grace periods (struct_ops maps after RCU-tasks ones too), and killed
    processes may still be exiting: what is still there after `settle_s` seconds is a leak.
    """
    deadline = time.monotonic() + settle_s
    while True:
        found = leaks(before, snapshot(), own_pid)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def _describe(pid: int) -> str | None:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # exited between the two reads: not a leak
    comm, state = stat[stat.index("(") + 1: stat.rindex(")")], stat[stat.rindex(")") + 2]
    if state == "Z":
        return f"{pid} ({comm}: zombie, never reaped)"
    return f"{pid} ({cmd or comm})"


class KmsgCursor:
    """Reads the kernel log records appended after construction (/dev/kmsg, non-blocking)."""

    def __init__(self, path: str = "/dev/kmsg"):
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read_new(self) -> str:
        lines = []
        while True:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # records overwritten in the ring buffer: keep reading from the next
                continue
            if not record:
                break
            # "prio,seq,usec,flags;message\n continuation lines"
            lines.append(record.decode(errors="replace").split(";", 1)[-1].rstrip("\n"))
        return "\n".join(lines)

    def close(self) -> None:
        os.close(self.fd)
