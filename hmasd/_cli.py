"""Helpers shared by the command-line tools (hmasd-train, hmasd-audit); no heavy imports."""

from __future__ import annotations

import ast
from typing import Any


def parse_value(text: str) -> Any:
    """A --set value: '3' -> 3, '1e-4' -> 0.0001, 'true' -> True, '{"a": 1}' -> dict, anything else a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
