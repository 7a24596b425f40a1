"""How much slower than the reference machine this one is: the one factor every harness time bound scales with.

Machines of one kind differ in speed by up to ~3x (../shared/design/machine.md), and a guest under TCG runs at
the speed of the host core it gets. A bound that holds on one machine must not turn red on a slower one, so the
watchdog, the boot bound, the in-guest per-test timeout and the replayer's time-outs are written for the reference
machine and multiplied by `factor()`:

- measured on the host: the best of several runs of a fixed pure-Python loop, over the loop's time on the
  reference machine (REFERENCE_S), never below 1 (a faster machine keeps the written bounds);
- divided by the slow-mode share: `AGENTCG_SLOW=0.5` runs each VM with half a core (cpu_limit), to check that
  the suite holds on a machine twice as slow;
- `AGENTCG_SLOWNESS=F` sets the factor outright. The host passes it into the guest that way, since a guest
  cannot calibrate itself against a host reference.

Tests assert ratios measured in the same run, counts and orderings; only time-outs (what bounds a hang) scale.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

ENV_FACTOR = "AGENTCG_SLOWNESS"
ENV_SLOW = "AGENTCG_SLOW"
# The calibration loop's best time on the machine the suite's bounds were last checked on (2-core Debian 12 of
# this project's machine kind; 14.8-15.2 ms, best of 5, three rounds).
REFERENCE_S = 0.015

_factor: float | None = None


class SlownessError(Exception):
    pass


def _loop() -> int:
    x = 0
    for i in range(300_000):
        x += i * i % 7
    return x


def calibrate(runs: int = 5) -> float:
    """The loop's best time on this machine, in seconds."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        _loop()
        best = min(best, time.perf_counter() - started)
    return best


def slow_share() -> float | None:
    """The share of one core each VM gets in slow mode (AGENTCG_SLOW), None when slow mode is off."""
    text = os.environ.get(ENV_SLOW, "").strip()
    if not text:
        return None
    try:
        share = float(text)
    except ValueError:
        raise SlownessError(f"{ENV_SLOW} must be a share of one core in (0, 1], got {text!r}")
    if not 0.05 <= share <= 1.0:
        raise SlownessError(f"{ENV_SLOW} must be a share of one core between 0.05 and 1, got {text!r}")
    return share


def factor() -> float:
    """This machine's slowness (>= 1), measured once per process unless AGENTCG_SLOWNESS says it."""
    global _factor
    text = os.environ.get(ENV_FACTOR, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            raise SlownessError(f"{ENV_FACTOR} must be a number >= 1, got {text!r}")
        if value < 1.0:
            raise SlownessError(f"{ENV_FACTOR} must be a number >= 1, got {text!r}")
        return value
    if os.environ.get("AGENTCG_GUEST"):
        return 1.0  # a guest started without the host's factor: nothing to calibrate against
    if _factor is None:
        share = slow_share() or 1.0
        _factor = round(max(1.0, calibrate() / REFERENCE_S) / share, 2)
    return _factor


def scaled(seconds: float) -> float:
    """A time bound written for the reference machine, on this one."""
    return seconds * factor()


def guest_env() -> dict[str, str]:
    """The environment that hands the host's factor to a guest command."""
    return {ENV_FACTOR: str(factor())}


# ---- slow mode: a VM limited to a share of one core ------------------------------------------------------

def _cpu_hierarchy() -> tuple[Path, str, str]:
    """(directory to create cgroups in, the quota file, its format) for cgroup v2 or v1's cpu controller."""
    v2 = Path("/sys/fs/cgroup")
    controllers = v2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        if "cpu" not in (v2 / "cgroup.subtree_control").read_text().split():
            (v2 / "cgroup.subtree_control").write_text("+cpu")
        return v2, "cpu.max", "{quota} 100000"
    v1 = Path("/sys/fs/cgroup/cpu")
    if (v1 / "cpu.cfs_quota_us").exists():
        return v1, "cpu.cfs_quota_us", "{quota}"
    raise SlownessError("slow mode needs the cpu controller (cgroup v2 cpu.max or v1 cpu.cfs_quota_us)")


@contextlib.contextmanager
def cpu_limit(share: float | None, name: str):
    """A cgroup that holds whatever joins it to `share` of one core; yields the function a child process calls
    (preexec_fn) to join it, or None when share is None. The cgroup is removed afterwards."""
    if share is None:
        yield None
        return
    base, quota_file, fmt = _cpu_hierarchy()
    path = base / f"agentcg-slow-{name}-{os.getpid()}"
    try:
        path.mkdir()
        if quota_file == "cpu.cfs_quota_us":
            (path / "cpu.cfs_period_us").write_text("100000")
        (path / quota_file).write_text(fmt.format(quota=int(share * 100000)))
    except OSError as e:
        with contextlib.suppress(OSError):
            path.rmdir()
        raise SlownessError(f"cannot set up slow mode in {path}: {e}")
    procs = str(path / "cgroup.procs")

    def join() -> None:
        with open(procs, "w") as f:
            f.write("0")
    try:
        yield join
    finally:
        for _ in range(50):  # the VM's processes are gone, but their exit can lag a moment
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
