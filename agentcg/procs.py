"""Processes agentcg acts on for someone else (the exec tracer, the tool-call socket): read from /proc, pinned by
pidfd, so that a pid reused by another process is noticed rather than acted on."""
from __future__ import annotations

import select
from pathlib import Path

from agentcg.cgroup import ROOT as CGROUP_ROOT


def alive(pidfd: int) -> bool:
    """A pidfd turns readable when its process exits."""
    return not select.select([pidfd], [], [], 0)[0]


def cgroup_of(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return CGROUP_ROOT / line[3:].lstrip("/")
    raise FileNotFoundError(f"process {pid} is in no cgroup v2")


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])  # after "pid (comm) state": the comm may hold anything


def descends_from(pid: int, ancestor: int, depth: int = 64) -> bool:
    try:
        for _ in range(depth):
            pid = parent_of(pid)
            if pid == ancestor:
                return True
            if pid <= 1:
                return False
    except (OSError, ValueError, IndexError):
        return False
    return False
