"""Memory budgets for tool calls: defaults per command class from YAML, adapted from observed peaks.

The class comes from agentcg.classify (the same classifier `agentcg analyze` uses), so a budget follows what the
command is (a test run, an install, a `git status`), not which tool issued it: the same Bash tool varies 14x.
"""
from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agentcg import classify
from agentcg.paths import REPO_ROOT
from agentcg.stats import percentile
from agentcg.vocab import MIB

DEFAULT_FILE = REPO_ROOT / "fixtures" / "budgets.yaml"


class BudgetError(Exception):
    pass


@dataclass
class BudgetConfig:
    default_mib: float
    classes: dict[str, float]
    headroom: float = 1.25
    window: int = 50
    min_mib: float = 32
    max_mib: float = 8192


def load_config(path: Path = DEFAULT_FILE) -> BudgetConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise BudgetError(f"budget file {path}: {e.strerror}")
    except yaml.YAMLError as e:
        raise BudgetError(f"budget file {path} is not valid YAML: {e}")
    if not isinstance(data, dict) or not isinstance(data.get("classes", {}), dict):
        raise BudgetError(f"budget file {path}: expected 'default_mib' and a 'classes' mapping")
    adapt = data.get("adapt") or {}
    try:
        cfg = BudgetConfig(default_mib=float(data.get("default_mib", 256)),
                           classes={str(k): float(v) for k, v in (data.get("classes") or {}).items()},
                           headroom=float(adapt.get("headroom", 1.25)), window=int(adapt.get("window", 50)),
                           min_mib=float(adapt.get("min_mib", 32)), max_mib=float(adapt.get("max_mib", 8192)))
    except (TypeError, ValueError) as e:
        raise BudgetError(f"budget file {path}: numbers expected ({e})")
    values = [cfg.default_mib, cfg.min_mib, cfg.max_mib, *cfg.classes.values()]
    if any(v <= 0 or math.isnan(v) for v in values) or cfg.min_mib > cfg.max_mib or cfg.headroom < 1:
        raise BudgetError(f"budget file {path}: budgets must be positive, min_mib <= max_mib, headroom >= 1")
    unknown = set(cfg.classes) - set(classify.CATEGORIES)
    if unknown:
        raise BudgetError(f"budget file {path}: unknown classes {sorted(unknown)} "
                          f"(known: {', '.join(classify.CATEGORIES)})")
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

    def observe_peak(self, cls: str, peak_bytes: int) -> None:
        window = self._peaks[cls]
        window.append(peak_bytes)
        while len(window) > self.config.window:
            window.popleft()
