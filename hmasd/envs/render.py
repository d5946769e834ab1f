"""RGB rendering of one env copy from its global state (pure NumPy; no graphics library needed)."""

from __future__ import annotations

from typing import Any

import numpy as np

CELL = 24

_ALICE_COLOURS = {
    0: (245, 245, 240),  # empty
    1: (60, 60, 60),  # wall
    2: (40, 110, 220),  # agent 0 (Alice)
    3: (240, 150, 30),  # agent 1 (Bob)
    4: (230, 120, 120),  # button 0
    5: (120, 150, 230),  # button 1
    6: (200, 20, 20),  # diamond 0
    7: (20, 60, 200),  # diamond 1
}
_AGENT_COLOURS = [(40, 110, 220), (240, 150, 30), (60, 170, 80), (170, 60, 190), (220, 60, 60), (30, 170, 170),
                  (120, 120, 20), (90, 90, 200)]


def _fill(image: np.ndarray, row: int, col: int, colour: tuple[int, int, int], inset: int = 0,
          quadrant: int | None = None) -> None:
    top, left, size = row * CELL + inset, col * CELL + inset, CELL - 2 * inset
    if quadrant is not None:
        half = CELL // 2
        top, left, size = row * CELL + (quadrant // 2) * half + 2, col * CELL + (quadrant % 2) * half + 2, half - 4
    image[top:top + size, left:left + size] = colour


def render_alice_and_bob(options: dict[str, Any], state: np.ndarray) -> np.ndarray:
    height, width = options["height"], options["width"]
    codes = state.reshape(height, width).astype(np.int64)
    image = np.zeros((height * CELL, width * CELL, 3), dtype=np.uint8)
    for row in range(height):
        for col in range(width):
            code = int(codes[row, col])
            _fill(image, row, col, _ALICE_COLOURS[0])
            _fill(image, row, col, _ALICE_COLOURS.get(code, (0, 0, 0)), inset=0 if code in (0, 1) else 3)
    return image


def render_stag_hunt(options: dict[str, Any], state: np.ndarray) -> np.ndarray:
    size, n, hares = options["grid_size"], options["num_agents"], options["num_hares"]
    cells = np.rint(state[:-1] * (size - 1)).astype(np.int64).reshape(-1, 2)
    image = np.full((size * CELL, size * CELL, 3), 245, dtype=np.uint8)
    image[::CELL, :] = 200
    image[:, ::CELL] = 200
    stag = cells[n]
    _fill(image, int(stag[0]), int(stag[1]), (140, 80, 30), inset=2)
    for h in range(hares):
        row, col = cells[n + 1 + h]
        _fill(image, int(row), int(col), (150, 190, 120), inset=6)
    for i in range(n):
        row, col = cells[i]
        _fill(image, int(row), int(col), _AGENT_COLOURS[i % len(_AGENT_COLOURS)], quadrant=i % 4)
    return image


def render_state(name: str, options: dict[str, Any], state: np.ndarray,
                 details: dict[str, Any] | None = None) -> np.ndarray:
    """Dispatches to the env's renderer (uav_coverage draws from the env's details, the grid envs from the state)."""
    if name == "uav_coverage":
        from hmasd.envs.render_uav import render_uav_coverage

        if details is None:
            raise ValueError("rendering uav_coverage needs the env's details()")
        return render_uav_coverage(options, details)
    renderers = {"alice_and_bob": render_alice_and_bob, "stag_hunt": render_stag_hunt}
    if name not in renderers:
        raise NotImplementedError(f"no renderer for env {name!r}")
    return renderers[name](options, state)
