"""Memory budgets for tool calls: defaults per command class from YAML, adapted from observed peaks.

The class comes from agentcg.classify (the same classifier `agentcg analyze` uses), so a budget follows what the
command is (a test run, an install, a `git status`), not which tool issued it: the same Bash tool varies 14x.
"""
from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

from agentcg import classify, config
from agentcg.config import ConfigError
from agentcg.stats import percentile
from agentcg.vocab import MIB

DEFAULT_FILE = Path(__file__).with_name("budgets.yaml")  # shipped with the package


class BudgetError(ConfigError):
    pass


@dataclass
class BudgetConfig:
    default_mib: float = 256
    classes: dict[str, float] = field(default_factory=dict)
    headroom: float = 1.25
    window: int = 50
    min_mib: float = 32
    max_mib: float = 8192


ADAPT_KEYS = ("headroom", "window", "min_mib", "max_mib")


def load_config(path: Path = DEFAULT_FILE) -> BudgetConfig:
    """The budget file: default_mib, classes {class: MiB}, adapt {headroom, window, min_mib, max_mib}; defaults:
    BudgetConfig's fields."""
    where = f"budget file {path}"

    def numbers(convert):
        def conv(raw):
            try:
                return convert(raw)
            except (TypeError, ValueError, AttributeError, OverflowError) as e:
                raise BudgetError(f"{where}: numbers expected ({e})") from None
        return conv

    def adapt(raw) -> dict:
        values = config.mapping(raw, "adapt", where, BudgetError)
        config.check_keys(values, ADAPT_KEYS, f"{where}: adapt", BudgetError)
        return {k: (int(v) if k == "window" else float(v)) for k, v in values.items()}

    def classes(raw) -> dict[str, float]:
        return {str(k): float(v) for k, v in config.mapping(raw, "classes", where, BudgetError).items()}

    cfg = config.build(BudgetConfig, config.read_mapping(path, BudgetError),
                       {"default_mib": numbers(float), "classes": numbers(classes), "adapt": numbers(adapt)},
                       where, BudgetError)
    values = [cfg.default_mib, cfg.min_mib, cfg.max_mib, *cfg.classes.values()]
    if any(v <= 0 or not math.isfinite(v) for v in values) or cfg.min_mib > cfg.max_mib or cfg.headroom < 1 \
            or not math.isfinite(cfg.headroom):
        raise BudgetError(f"{where}: budgets must be positive, min_mib <= max_mib, headroom >= 1")
    unknown = set(cfg.classes) - set(classify.CATEGORIES)
    if unknown:
        raise BudgetError(f"{where}: unknown classes {sorted(unknown)} (known: {', '.join(classify.CATEGORIES)})")
    return cfg


@dataclass
class Budgets:
    """Per-class budgets that learn from the peaks of finished tool calls."""
    config: BudgetConfig
    _peaks: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))

    def classify(self, command: str | None) -> str:
        return classify.classify(command or "")

    def budget_bytes(self, cls: str) -> int:
        peaks = self._peaks.get(cls)
        if peaks:
            mib = percentile(peaks, 95, "nearest-rank") / MIB * self.config.headroom
        else:
            mib = self.config.classes.get(cls, self.config.default_mib)
        mib = min(max(mib, self.config.min_mib), self.config.max_mib)
        return int(mib * MIB)

    def learned(self) -> dict[str, list[int]]:
        """The peaks the budgets learned, per class (what the daemon keeps across restarts)."""
        return {cls: list(window) for cls, window in self._peaks.items() if window}

    def restore(self, learned) -> int:
        """Take back peaks `learned()` gave (from a file: anything malformed is skipped); how many were taken."""
        taken = 0
        for cls, peaks in (learned.items() if isinstance(learned, dict) else ()):
            if cls not in classify.CATEGORIES or not isinstance(peaks, list):
                continue
            for peak in peaks[-self.config.window:]:
                if isinstance(peak, int) and not isinstance(peak, bool) and 0 < peak < 1 << 50:
                    self.observe_peak(cls, peak)
                    taken += 1
        return taken

    def observe_peak(self, cls: str, peak_bytes: int) -> None:
        window = self._peaks[cls]
        window.append(peak_bytes)
        while len(window) > self.config.window:
            window.popleft()
