"""Swap as a dimension of a replay: `none` or `zram`.

Without swap a throttle can only postpone a burst: anonymous memory has nowhere to go, so two bursts that do not
fit together end with a kill. With zram (a compressed swap device in RAM, what desktop distributions and Android
ship) memory that waits (a frozen tool call, an idle agent) can be pushed out and make room. Every policy of a
replay sees the same swap:

- `none`: the replay's parent gets memory.swap.max 0 (nothing under it swaps, whatever the machine has);
- `zram`: a zram device made for the replay (hot-added, so an existing zram0 is left alone), `mkswap` + `swapon`,
  the parent's memory.swap.max `max`; swapped off and removed afterwards, also on errors.

What a replayed process holds is then memory.current + memory.swap.current (agentcg.workloads.worker).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from agentcg.workloads.plan import ReplayError

SWAPS = ("none", "zram")
ZRAM_CONTROL = Path("/sys/class/zram-control")


def _run(argv: list[str]) -> None:
    tool = shutil.which(argv[0])
    if tool is None:
        raise ReplayError(f"swap zram: `{argv[0]}` not found (Debian: util-linux)")
    done = subprocess.run([tool, *argv[1:]], capture_output=True, text=True)
    if done.returncode != 0:
        raise ReplayError(f"swap zram: {' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")


class ZramSwap:
    """A zram swap device of `size` bytes for the length of a `with` block; with `ram_limit`, the most RAM it may
    use for what it stores (zram's mem_limit: beyond it, swapping out fails and the memory stays where it is)."""

    def __init__(self, size: int, ram_limit: int | None = None):
        self.size, self.ram_limit = size, ram_limit
        self.index: int | None = None
        self.on = False

    @property
    def device(self) -> str:
        return f"/dev/zram{self.index}"

    def __enter__(self) -> ZramSwap:
        if not ZRAM_CONTROL.exists():
            subprocess.run(["modprobe", "zram"], capture_output=True)  # a module on distribution kernels
        if not ZRAM_CONTROL.exists():
            raise ReplayError("swap zram: this kernel has no zram (CONFIG_ZRAM, or the zram module)")
        try:
            self.index = int((ZRAM_CONTROL / "hot_add").read_text())
            Path(f"/sys/block/zram{self.index}/disksize").write_text(str(self.size))
            if self.ram_limit is not None:
                Path(f"/sys/block/zram{self.index}/mem_limit").write_text(str(self.ram_limit))
            _run(["mkswap", self.device])
            _run(["swapon", self.device])
            self.on = True
        except (OSError, ValueError) as e:
            self.__exit__(None, None, None)
            raise ReplayError(f"swap zram: cannot set up a {self.size}-byte device: {e}") from e
        except ReplayError:
            self.__exit__(None, None, None)
            raise
        return self

    def stats(self) -> dict:
        """The device's mm_stat: the most RAM it used (compressed pages, outside every cgroup's budget: zram's
        memory is not charged to the cgroup that swapped) and the same-filled pages it stored as one word."""
        try:
            fields = Path(f"/sys/block/zram{self.index}/mm_stat").read_text().split()
            return {"mem_used_max_bytes": int(fields[4]), "same_pages": int(fields[5])}
        except (OSError, ValueError, IndexError, TypeError):
            return {}

    def __exit__(self, *exc) -> None:
        if self.index is None:
            return
        if self.on:
            subprocess.run(["swapoff", self.device], capture_output=True)
            self.on = False
        try:
            Path(f"/sys/block/zram{self.index}/reset").write_text("1")
            (ZRAM_CONTROL / "hot_remove").write_text(str(self.index))
        except OSError:
            pass  # still busy (a swapoff that failed): the device stays; nothing else depends on it
        self.index = None
