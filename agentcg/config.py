"""Config files, read one way: YAML into typed dataclasses whose fields state every default once.

The daemon's config (agentcg.daemon), the budget file (agentcg.budgets) and replay scenarios
(agentcg.workloads.scenario) all go through these helpers, so each problem is one error naming the file and the
key, worded the same everywhere; a key a file leaves out takes the dataclass field's default.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Iterable


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


def read_text(path: str | Path, error: type[Exception] = ConfigError) -> str:
    """A text file agentcg reads (config, table, trace): UTF-8, or one error naming the file."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start})") from None


def parse_yaml(text: str, path: str | Path, error: type[Exception] = ConfigError):
    """YAML (safe: plain data only) or one error naming the file; nesting too deep to parse is an error too."""
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{path} is not valid YAML: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise error(f"{path}: nested too deeply") from None


def parse_json(text: str, path: str | Path, error: type[Exception] = ConfigError):
    try:
        return json.loads(text)
    except ValueError as e:
        raise error(f"{path}: malformed JSON ({e})") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply") from None


def read_mapping(path: str | Path, error: type[Exception] = ConfigError) -> dict:
    """The file's YAML, which must be a mapping at the top level (an empty file is an empty mapping)."""
    data = parse_yaml(read_text(path, error), path, error)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data


def mapping(value, what: str, where: str, error: type[Exception] = ConfigError) -> dict:
    """A nested mapping (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(f"{where}: {what} must be a mapping")
    return value


def check_keys(data: dict, known: Iterable[str], where: str, error: type[Exception] = ConfigError) -> None:
    unknown = set(data) - set(known)
    if unknown:
        raise error(f"{where}: unknown keys {sorted(map(str, unknown))} (known: {', '.join(sorted(known))})")


def number(value, what: str, where: str, error: type[Exception] = ConfigError, *, allow_zero: bool = False,
           integer: bool = False) -> float:
    """A finite positive number (or >= 0 with allow_zero); YAML's booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise error(f"{where}: {what} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise error(f"{where}: {what} must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    if integer and value != int(value):
        raise error(f"{where}: {what} must be a whole number, got {value!r}")
    return int(value) if integer else float(value)


def one_of(value, choices: Iterable[str], what: str, where: str, error: type[Exception] = ConfigError) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise error(f"{where}: {what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def build(cls, data: dict, convert: dict[str, Callable], where: str, error: type[Exception] = ConfigError):
    """cls (a dataclass) from the keys data has, each through convert[key]; the others keep cls's defaults.
    Unknown keys are an error; so is a conversion that raises TypeError or ValueError."""
    check_keys(data, convert, where, error)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, raw in data.items():
        try:
            value = convert[key](raw)
        except (TypeError, ValueError) as e:
            raise error(f"{where}: {key}: {e}") from None
        if isinstance(value, dict) and key not in names:  # a converter that sets several fields
            values.update(value)
        else:
            values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise error(f"{where}: {e}") from None
