"""Params sections: typed, frozen, no code defaults, and one line naming every bad key."""

from __future__ import annotations

from typing import Literal

import pytest

from affectpipe.config import ConfigError, from_section, params_section, validate_section


@params_section
class Inner:
    size: int
    mode: Literal["fast", "slow"]


@params_section
class Outer:
    inner: Inner
    lr: float
    workers: int | Literal["auto"]


GOOD = {"inner": {"size": 3, "mode": "fast"}, "lr": 0.1, "workers": "auto"}


def test_a_section_builds_nested_typed_and_frozen():
    cfg = from_section(Outer, GOOD, "sec")
    assert cfg.inner == Inner(size=3, mode="fast") and cfg.lr == 0.1
    with pytest.raises(Exception, match="cannot assign"):
        cfg.lr = 0.2  # type: ignore[misc]


def test_a_code_default_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match=r"no code defaults \['size'\]"):

        @params_section
        class WithDefault:
            size: int = 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**GOOD, "lr": None} | {"inner": {"size": 3}}, "missing key 'sec.inner.mode'"),
        ({**GOOD, "extra": 1}, "unknown key 'sec.extra' (valid: inner, lr, workers)"),
        ({**GOOD, "inner": {"size": 3, "mode": "warp"}}, "'sec.inner.mode': Input should be"),
        ({**GOOD, "workers": "many"}, "or Input should be 'auto', got 'many'"),
    ],
)
def test_every_bad_key_is_named_in_one_line(values, message):
    with pytest.raises(ConfigError) as err:
        from_section(Outer, values, "sec")
    text = str(err.value)
    assert text.startswith("params.yaml: ") and message in text and "\n" not in text


def test_several_problems_are_all_named():
    with pytest.raises(ConfigError) as err:
        from_section(Outer, {"inner": {"size": "x", "mode": "fast"}, "zz": 1}, "sec")
    for part in ("'sec.inner.size'", "missing key 'sec.lr'", "unknown key 'sec.zz'"):
        assert part in str(err.value)


def test_a_recorded_config_is_named_by_its_keys_alone():
    with pytest.raises(ConfigError, match=r"^missing key 'mode'$"):
        validate_section(Inner, {"size": 1}, "")


def test_only_params_sections_are_built():
    class Plain:
        pass

    with pytest.raises(TypeError, match="not a @params_section"):
        from_section(Plain, {}, "sec")
