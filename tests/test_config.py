"""agentcg.config: every config file is read one way, and every problem is one error naming the file and key."""
from dataclasses import dataclass, field

import pytest

from agentcg import config
from agentcg.config import ConfigError


@dataclass
class Sample:
    size: float = 1.5
    names: list = field(default_factory=list)
    low: int = 0
    high: int = 10


CONVERT = {"size": float, "names": list, "range": lambda raw: {"low": int(raw[0]), "high": int(raw[1])}}


def test_defaults_come_from_the_dataclass_alone():
    assert config.build(Sample, {}, CONVERT, "f") == Sample()
    assert config.build(Sample, {"size": 3}, CONVERT, "f") == Sample(size=3.0)


def test_one_key_may_set_several_fields():
    assert config.build(Sample, {"range": [2, 5]}, CONVERT, "f") == Sample(low=2, high=5)


@pytest.mark.parametrize("data, message", [
    ({"sise": 1}, r"f: unknown keys \['sise'\] \(known: names, range, size\)"),
    ({"size": "big"}, "f: size: could not convert"),
])
def test_bad_keys_and_values_are_one_error(data, message):
    with pytest.raises(ConfigError, match=message):
        config.build(Sample, data, CONVERT, "f")


@pytest.mark.parametrize("text, message", [
    ("a: [", "is not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping at the top level"),
])
def test_read_mapping_refuses_what_is_not_a_mapping(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        config.read_mapping(p)


def test_read_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("")
    assert config.read_mapping(p) == {}
    p.write_text("a: 1\n")
    assert config.read_mapping(p) == {"a": 1}
    with pytest.raises(ConfigError, match="cannot read"):
        config.read_mapping(tmp_path / "missing.yaml")


@pytest.mark.parametrize("value, kw, message", [
    (True, {}, "must be a number"), ("3", {}, "must be a number"), (float("nan"), {}, "must be a number"),
    (0, {}, "must be positive"), (-1, {"allow_zero": True}, "must be >= 0"), (1.5, {"integer": True}, "whole"),
])
def test_number_refuses(value, kw, message):
    with pytest.raises(ConfigError, match=message):
        config.number(value, "n", "f", **kw)


def test_number_and_one_of_accept():
    assert config.number(0, "n", "f", allow_zero=True) == 0.0
    assert config.number(4.0, "n", "f", integer=True) == 4
    assert config.one_of("a", ("a", "b"), "k", "f") == "a"
    with pytest.raises(ConfigError, match="k must be one of a, b, got 'c'"):
        config.one_of("c", ("a", "b"), "k", "f")
