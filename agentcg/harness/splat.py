"""Kernel log scan: a WARN, BUG, Oops, panic, lockdep report, RCU stall or hung task is a test failure.

As in BPF CI, a splat counts as a failure even when the test's own assertions passed. OOM-killer reports are
expected in memory tests and carry a stack dump, so a bare "Call Trace:" is not a splat by itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# (kind, pattern) in the order they are reported.
PATTERNS: list[tuple[str, re.Pattern]] = [(kind, re.compile(rx)) for kind, rx in [
    ("panic", r"Kernel panic - not syncing"),
    ("bug", r"\bBUG: |kernel BUG at "),
    ("oops", r"\bOops\b|general protection fault|unable to handle (kernel|page)"),
    ("warning", r"WARNING: CPU: \d+ PID: \d+|------------\[ cut here \]------------"),
    ("lockdep", r"possible (circular|recursive) locking|inconsistent lock state|suspicious RCU usage"),
    ("rcu_stall", r"rcu: INFO: rcu_\w+ (self-)?detected stall|rcu_\w+ detected stalls"),
    ("hung_task", r"INFO: task \S+ blocked for more than \d+ seconds"),
    ("sanitizer", r"\b(UBSAN|KASAN|KFENCE|KCSAN): "),
    ("refcount", r"refcount_t: (underflow|overflow|saturated|addition on 0)"),
    ("list_corruption", r"list_(add|del) corruption"),
    ("soft_lockup", r"watchdog: BUG: soft lockup|NMI watchdog: .* hard LOCKUP"),
]]


@dataclass(frozen=True)
class Splat:
    kind: str
    line: str


def scan(text: str) -> list[Splat]:
    """Every line of `text` that matches a splat pattern, with the first matching kind."""
    found = []
    for line in text.splitlines():
        for kind, rx in PATTERNS:
            if rx.search(line):
                found.append(Splat(kind, line.strip()))
                break
    return found


def summary(splats: list[Splat], limit: int = 10) -> str:
    shown = [f"  [{s.kind}] {s.line}" for s in splats[:limit]]
    more = f"\n  ... and {len(splats) - limit} more" if len(splats) > limit else ""
    return f"{len(splats)} kernel splat(s):\n" + "\n".join(shown) + more
