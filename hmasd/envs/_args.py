"""Checks of the scalar arguments of the public API, so that a bad one fails here, by name, before native code."""

from __future__ import annotations

import operator
from typing import Any

INT32_MAX = 2**31 - 1


def as_int(value: Any, name: str, low: int | None = None, high: int | None = None, hint: str = "") -> int:
    """``value`` as a Python int in [low, high]: ints and NumPy integers (anything with ``__index__``), never bools
    (a ``True`` where a count belongs is a typo) nor floats (1.5 envs is not a number of envs)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"[{low}, {high}]" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        raise ValueError(f"{name} must be {'in ' if '[' in bounds else ''}{bounds}{hint}, got {number}")
    return number


def as_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices`` (strings), else a TypeError or ValueError naming them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def as_seed(value: Any) -> int:
    """A batch seed: an int in [0, 2**64)."""
    return as_int(value, "seed", 0, 2**64 - 1)


def as_env_index(value: Any, num_envs: int) -> int:
    """An env copy's index in [0, num_envs); out of range is an IndexError, as for a sequence."""
    index = as_int(value, "env_index")
    if not 0 <= index < num_envs:
        raise IndexError(f"env_index must be in [0, {num_envs}), got {index}")
    return index
