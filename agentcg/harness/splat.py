"""Kernel log scan: a WARN, BUG, Oops, panic, lockdep report, RCU stall or hung task is a test failure.

As in BPF CI, a splat counts as a failure even when the test's own assertions passed. OOM-killer reports are
expected in memory tests and carry a stack dump, so a bare "Call Trace:" is not a splat by itself.

Two scans, one log: the guest's per-test guard fails the test during which a splat was printed, and marks the
span it watched in the kernel log (GUARD_ON / GUARD_OFF); after the run the host scans the whole log the guest
saved (boot, between tests, fixture teardown) for splats outside every guarded span (`outside_guards`). Lines
a known kernel issue prints are let pass only through `vmtests/splat-allow.yaml`, each with its reason.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

ALLOW_FILE = Path(__file__).resolve().parents[2] / "vmtests" / "splat-allow.yaml"
GUARD_ON, GUARD_OFF = "agentcg-guard: on ", "agentcg-guard: off "
CUT_HERE = "------------[ cut here ]------------"

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


@dataclass(frozen=True)
class Allowed:
    """A kernel log line that is not a failure: its pattern, the kernels it applies to (globs), and why."""
    pattern: re.Pattern
    reason: str
    kernels: tuple[str, ...] = ("*",)

    def covers(self, line: str, kernel: str | None) -> bool:
        return bool(self.pattern.search(line)) and (kernel is None or any(fnmatch.fnmatch(kernel, k)
                                                                          for k in self.kernels))


class AllowListError(ValueError):
    pass


def load_allow(path: Path = ALLOW_FILE) -> list[Allowed]:
    """vmtests/splat-allow.yaml: `allow: [{pattern, reason, kernels?}]`; every entry needs a reason."""
    from agentcg.config import ConfigError, parse_yaml, read_text
    try:
        data = parse_yaml(read_text(path), path)
    except ConfigError as e:
        raise AllowListError(str(e)) from None
    entries = (data or {}).get("allow") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise AllowListError(f"{path}: expected a mapping with a list `allow`")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) - {"pattern", "reason", "kernels"} \
                or not isinstance(entry.get("pattern"), str) or not str(entry.get("reason") or "").strip():
            raise AllowListError(f"{path}: entry {i}: needs `pattern` and a `reason` (and optionally `kernels`)")
        kernels = entry.get("kernels", ["*"])
        if not isinstance(kernels, list) or not all(isinstance(k, str) for k in kernels):
            raise AllowListError(f"{path}: entry {i}: `kernels` is a list of globs")
        try:
            rx = re.compile(entry["pattern"])
        except re.error as e:
            raise AllowListError(f"{path}: entry {i}: bad pattern: {e}") from None
        out.append(Allowed(rx, entry["reason"].strip(), tuple(kernels)))
    return out


def scan(text: str, allow: list[Allowed] = (), kernel: str | None = None) -> list[Splat]:
    """Every line of `text` that matches a splat pattern, with the first matching kind; lines an allow-list entry
    covers are left out. A "cut here" line counts only when no report line follows it within three lines (the
    WARNING or BUG line that follows is the splat, and allow-listing it takes its cut line along)."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        kind = next((kind for kind, rx in PATTERNS if rx.search(line)), None)
        if kind is None:
            continue
        if CUT_HERE in line and any(rx.search(nxt) for nxt in lines[i + 1:i + 4] for k, rx in PATTERNS
                                    if CUT_HERE not in nxt):
            continue
        if any(a.covers(line, kernel) for a in allow):
            continue
        found.append(Splat(kind, line.strip()))
    return found


def outside_guards(text: str) -> str:
    """The lines of a whole kernel log that no test's guard watched: before the first GUARD_ON, between a
    GUARD_OFF and the next GUARD_ON, and after the last GUARD_OFF (a guard that never closed watched to the end
    of its test: what follows a test that killed the guest is that test's)."""
    out, watching = [], False
    for line in text.splitlines():
        if GUARD_ON in line:
            watching = True
        elif GUARD_OFF in line:
            watching = False
        elif not watching:
            out.append(line)
    return "\n".join(out)


def summary(splats: list[Splat], limit: int = 10) -> str:
    shown = [f"  [{s.kind}] {s.line}" for s in splats[:limit]]
    more = f"\n  ... and {len(splats) - limit} more" if len(splats) > limit else ""
    return f"{len(splats)} kernel splat(s):\n" + "\n".join(shown) + more
