"""Checks of the scalar arguments of the public API, so that a bad one fails here, by name, before native code."""

from __future__ import annotations

import operator
import os
from typing import Any

import numpy as np

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


def as_first_env(value: Any, num_envs: int) -> int:
    """The env index of a batch's first copy: an int in [0, 2**32 - num_envs], so that every copy's index
    ``first_env + e`` is a uint32 (the key word of its random stream)."""
    hint = f" (first_env + num_envs may not exceed 2**32: an env index is a uint32; num_envs={num_envs})"
    return as_int(value, "first_env", 0, 2**32 - num_envs, hint)


def fresh_seed() -> int:
    """A batch seed from the OS's entropy (for envs made or reset without a seed)."""
    return int.from_bytes(os.urandom(8), "little")


def as_env_mask(value: Any, num_envs: int, name: str = "envs") -> np.ndarray:
    """Which envs to act on, as a C-contiguous bool[num_envs]: a bool mask of that shape, or env indices (an int,
    a sequence or an integer array; repeats allowed). Anything else is a TypeError/ValueError naming ``name``."""
    array = np.asarray(value)
    if array.dtype == np.bool_:
        if array.shape != (num_envs,):
            raise ValueError(f"{name} as a bool mask must have shape ({num_envs},), got {array.shape}")
        return np.ascontiguousarray(array)
    if array.size == 0 and array.dtype.kind not in "iu":  # [] is an empty list of indices
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu" or array.ndim > 1:
        raise TypeError(f"{name} must be a bool mask of shape ({num_envs},) or env indices, got {value!r}")
    indices = array.reshape(-1).astype(np.int64)
    bad = indices[(indices < 0) | (indices >= num_envs)]
    if bad.size:
        raise IndexError(f"{name}: env index {int(bad[0])} is out of range [0, {num_envs})")
    mask = np.zeros(num_envs, dtype=bool)
    mask[indices] = True
    return mask


def as_env_index(value: Any, num_envs: int) -> int:
    """An env copy's index in [0, num_envs); out of range is an IndexError, as for a sequence."""
    index = as_int(value, "env_index")
    if not 0 <= index < num_envs:
        raise IndexError(f"env_index must be in [0, {num_envs}), got {index}")
    return index
