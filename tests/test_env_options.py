"""The one option table per env (csrc/core/options.h): the native configs, make(), the registry and the NumPy
reference all agree with it."""

from __future__ import annotations

import importlib
import math
import re
from typing import Any

import numpy as np
import pytest

import hmasd.envs
from hmasd import _native
from hmasd.envs.registry import OptionInfo, entry, option_table

ENVS = hmasd.envs.registered_envs()


@pytest.fixture(params=ENVS)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def native_config(name: str) -> Any:
    return getattr(_native, entry(name).native_config)()


def test_build_info_lists_the_registered_envs() -> None:
    assert list(_native.build_info()["envs"]) == ENVS


def test_table_is_exported_on_the_config_class_and_names_are_unique(name: str) -> None:
    rows = _native.env_options(name)
    assert getattr(_native, entry(name).native_config).options == rows
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names))
    config_properties = {k for k, v in vars(type(native_config(name))).items() if isinstance(v, property)}
    assert config_properties - {"options"} == set(names)
    with pytest.raises(ValueError, match="no native env named"):
        _native.env_options("no_such_env")


def test_table_defaults_equal_the_default_config(name: str) -> None:
    # The config getters read the C++ fields, so this holds the table defaults to the struct's initialisers.
    config = native_config(name)
    for option in option_table(name).values():
        value = getattr(config, option.name)
        assert value == option.default and type(value) is type(option.default), option.name
    assert hmasd.envs.default_options(name) == {o.name: o.default for o in option_table(name).values()}


def test_table_types_bounds_and_choices_are_consistent(name: str) -> None:
    for option in option_table(name).values():
        assert option.type in ("int", "float", "double", "bool", "choice"), option
        assert option.doc, option.name
        if option.type == "choice":
            assert option.choices and option.default in option.choices, option
            assert option.min is None and option.max is None
        else:
            assert option.choices is None, option
        if option.min is not None:
            assert option.default > option.min if option.min_exclusive else option.default >= option.min, option
        if option.max is not None:
            assert option.default <= option.max, option


def other_values(option: OptionInfo) -> list[Any]:
    """Valid values of one option other than its default (each alone valid with every other option at default)."""
    if option.type == "choice":
        assert option.choices is not None
        return [c for c in option.choices if c != option.default]
    if option.type == "bool":
        return [not option.default]
    if option.type == "int":
        return [option.default + 1 if option.max is None or option.default < option.max else option.default - 1]
    if option.max is not None and option.default < option.max:
        # a small step towards the bound: halfway could cross a bound set by another option (min_height < max_height)
        return [option.default + (option.max - option.default) * 1e-3]
    return [option.default * 2 if option.default > 0 else option.default + 1.0]


def test_every_option_is_settable_through_make(name: str) -> None:
    for option in option_table(name).values():
        for value in other_values(option):
            env = hmasd.envs.make(name, num_envs=1, **{option.name: value})
            got = getattr(env._native.config, option.name)
            expected = float(np.float32(value)) if option.type == "float" else value
            assert got == expected, (option.name, value, got)
            env.reset()


def test_env_options_are_the_table_and_make_takes_them_back(name: str) -> None:
    # a run's env.options is what scripts pass back to make() (uav_vs_baselines.py, checkpoints): only options
    env = hmasd.envs.make(name, num_envs=1, seed=3)
    assert sorted(env.options) == sorted(option_table(name))
    assert hmasd.envs.make(name, num_envs=1, seed=3, **env.options).options == env.options


def bad_values(option: OptionInfo) -> list[tuple[Any, type[Exception]]]:
    """Values of one option that make() must refuse, with the error type."""
    step = 1 if option.type == "int" else 0.5
    out: list[tuple[Any, type[Exception]]] = []
    if option.min is not None:
        out.append((option.min if option.min_exclusive else option.min - step, ValueError))
    if option.max is not None:
        out.append((option.max + step, ValueError))
    if option.type in ("float", "double"):
        out += [(math.nan, ValueError), ("1.0", TypeError)]
    if option.type == "int":
        out += [(2**31, ValueError), (1.5, TypeError), (True, TypeError)]
    if option.type == "bool":
        out.append((1, TypeError))
    if option.type == "choice":
        out += [("no_such_choice", ValueError), (0, TypeError)]
    return out


def test_bad_values_raise_naming_the_option(name: str) -> None:
    for option in option_table(name).values():
        for value, error in bad_values(option):
            with pytest.raises(error, match=re.escape(option.name)):
                hmasd.envs.make(name, num_envs=1, **{option.name: value})


def test_unknown_choice_lists_the_valid_names(name: str) -> None:
    for option in option_table(name).values():
        if option.type != "choice":
            continue
        assert option.choices is not None
        listed = ", ".join(f"'{c}'" for c in option.choices)
        for setter in (lambda: setattr(native_config(name), option.name, "nope"),
                       lambda: hmasd.envs.make(name, **{option.name: "nope"})):
            with pytest.raises(ValueError, match=re.escape(f"{name}: {option.name} must be one of {listed}")):
                setter()


def test_reference_defaults_and_choices_equal_the_native_table(name: str) -> None:
    # The reference stays free of the native module (an independent oracle of the physics); this is what keeps its
    # copy of the option metadata from drifting.
    reference = importlib.import_module(f"hmasd.envs.reference.{name}")
    table = option_table(name)
    assert reference.DEFAULTS == {o.name: o.default for o in table.values()}
    for key, value in reference.DEFAULTS.items():
        assert type(value) is type(table[key].default), key
    choices = {o.name: o.choices for o in table.values() if o.type == "choice"}
    assert getattr(reference, "CHOICES", {}) == choices
