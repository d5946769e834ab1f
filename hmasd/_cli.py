"""Helpers shared by the command-line tools (hmasd-train, hmasd-audit, hmasd-baseline); no heavy imports."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

import numpy as np


def parse_value(text: str) -> Any:
    """A --set value: '3' -> 3, '1e-4' -> 0.0001, 'true' -> True, '{"a": 1}' -> dict, anything else a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_pairs(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``flag`` names the option in the error) as a dict of parsed values; ValueError on a
    malformed pair."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {pair!r}")
        parsed[key.strip()] = parse_value(value)
    return parsed


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` fallback for the reports the tools write: NumPy scalars and arrays, paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
