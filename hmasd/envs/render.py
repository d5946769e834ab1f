"""RGB rendering of one env copy from its global state (pure NumPy), and the window of render_mode="human"."""

from __future__ import annotations

import os
import sys
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


# ---- render_mode="human": frames shown in a window --------------------------------------------------------------

RENDER_FPS = 10
"""Frames per second of a ``render_mode="human"`` window (and ``metadata["render_fps"]``)."""


def display_available() -> bool:
    """Whether this process can open a window: always on macOS and Windows, with an X11 or Wayland display on other
    systems (a headless server, a container or CI has none)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _interactive_backend() -> bool:
    """Whether matplotlib's backend (after pyplot chose one) can open windows."""
    import matplotlib

    return matplotlib.get_backend().lower() in {name.lower() for name in
                                               matplotlib.rcsetup.interactive_bk}  # type: ignore[attr-defined]


class HumanWindow:
    """A matplotlib window showing the frames of one env, ``fps`` of them per second at most.

    The window opens at the first frame; without a display, matplotlib, or an interactive matplotlib backend the
    first frame raises a RuntimeError that says which one is missing and how to get frames without a window.
    """

    def __init__(self, title: str, fps: int = RENDER_FPS) -> None:
        self.title = title
        self.fps = fps
        self._figure: Any = None
        self._image: Any = None

    def show(self, frame: np.ndarray) -> None:
        if self._figure is None:
            self._open(frame)
        else:
            self._image.set_data(frame)
        self._figure.canvas.draw_idle()
        self._figure.canvas.flush_events()
        self._figure.canvas.start_event_loop(1.0 / self.fps)

    def _open(self, frame: np.ndarray) -> None:
        fallback = "; use render_mode='rgb_array' to get the frames as arrays instead"
        if not display_available():
            raise RuntimeError("render_mode='human' needs a display to open a window, and this process has none "
                               "(DISPLAY and WAYLAND_DISPLAY are unset)" + fallback)
        try:
            import matplotlib.pyplot as pyplot
        except ImportError:
            raise RuntimeError("render_mode='human' draws its window with matplotlib, which is not installed "
                               "(pip install matplotlib)" + fallback) from None
        if not _interactive_backend():
            import matplotlib

            raise RuntimeError(f"render_mode='human': matplotlib's backend {matplotlib.get_backend()!r} cannot open "
                               "a window (install tkinter or PyQt, or set MPLBACKEND)" + fallback)
        pyplot.ion()
        self._figure, axes = pyplot.subplots(num=self.title)
        axes.set_axis_off()
        self._image = axes.imshow(frame)
        self._figure.tight_layout()
        self._figure.show()

    def close(self) -> None:
        if self._figure is not None:
            import matplotlib.pyplot as pyplot

            pyplot.close(self._figure)
            self._figure = self._image = None
