"""Option parsing shared by the reference envs: the defaults of docs/envs.md, unknown names rejected."""

from __future__ import annotations

from typing import Any


def parse_options(env_name: str, defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by `options`, each value checked against the type of its default."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"{env_name}: unknown option(s) {', '.join(map(repr, unknown))}; known: {sorted(defaults)}")
    merged = dict(defaults)
    for name, value in options.items():
        default = defaults[name]
        # bool is an int subclass: reject it for numeric options so a typo like height=True fails loudly.
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise TypeError(f"{env_name}: option {name!r} must be {type(default).__name__}, got {value!r}")
        merged[name] = value
    return merged


def check_choice(env_name: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{env_name}: option {name!r} must be one of {choices}, got {value!r}")


def check_at_least(env_name: str, name: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"{env_name}: option {name!r} must be >= {low}, got {value!r}")
