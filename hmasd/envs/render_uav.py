"""Top-view RGB rendering of one ``uav_coverage`` env copy from its ``details()`` (pure NumPy, no graphics library).

Users are dots in the colour of their serving UAV (grey when unserved), UAVs are discs (larger when higher) with a
coverage ring, backhaul routes are lines from each UAV to its next hop, ground base stations are squares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hmasd.envs.render import _AGENT_COLOURS

SIZE = 400
MARGIN = 12
Colour = tuple[int, int, int]

BACKGROUND: Colour = (246, 246, 242)
BORDER: Colour = (170, 170, 170)
UNSERVED: Colour = (150, 150, 150)
ROUTE: Colour = (70, 70, 70)
GBS: Colour = (25, 25, 25)
NO_ROUTE: Colour = (210, 30, 30)
TIME_BAR: Colour = (120, 120, 200)


def uav_colour(u: int) -> Colour:
    """The colour of UAV ``u`` (the palette of the grid renderers, cycled)."""
    return _AGENT_COLOURS[u % len(_AGENT_COLOURS)]


def to_pixel(x: float, y: float, area_size: float, size: int = SIZE) -> tuple[float, float]:
    """(row, col) of the ground point (x, y); y points up, as on a map."""
    scale = (size - 1 - 2 * MARGIN) / area_size
    return MARGIN + (area_size - y) * scale, MARGIN + x * scale


def _blend(colour: Colour, weight: float) -> Colour:
    """``colour`` mixed with the background; lighter rings keep the user dots readable on top of them."""
    return tuple(int(round(weight * c + (1 - weight) * b)) for c, b in zip(colour, BACKGROUND))  # type: ignore


def _disc(image: np.ndarray, row: float, col: float, radius: float, colour: Colour) -> None:
    r0, r1 = max(int(np.floor(row - radius)), 0), min(int(np.ceil(row + radius)) + 1, image.shape[0])
    c0, c1 = max(int(np.floor(col - radius)), 0), min(int(np.ceil(col + radius)) + 1, image.shape[1])
    if r0 >= r1 or c0 >= c1:
        return
    rows, cols = np.ogrid[r0:r1, c0:c1]
    inside = (rows - row) ** 2 + (cols - col) ** 2 <= radius ** 2
    image[r0:r1, c0:c1][inside] = colour


def _ring(image: np.ndarray, row: float, col: float, radius: float, colour: Colour, width: float = 1.0) -> None:
    r0, r1 = max(int(np.floor(row - radius - width)), 0), min(int(np.ceil(row + radius + width)) + 1, image.shape[0])
    c0, c1 = max(int(np.floor(col - radius - width)), 0), min(int(np.ceil(col + radius + width)) + 1, image.shape[1])
    if r0 >= r1 or c0 >= c1:
        return
    rows, cols = np.ogrid[r0:r1, c0:c1]
    distance = np.sqrt((rows - row) ** 2 + (cols - col) ** 2)
    image[r0:r1, c0:c1][np.abs(distance - radius) <= width / 2] = colour


def _line(image: np.ndarray, start: tuple[float, float], end: tuple[float, float], colour: Colour,
          width: int = 2) -> None:
    steps = int(max(abs(end[0] - start[0]), abs(end[1] - start[1]))) + 1
    rows = np.rint(np.linspace(start[0], end[0], steps + 1)).astype(np.int64)
    cols = np.rint(np.linspace(start[1], end[1], steps + 1)).astype(np.int64)
    for dr in range(width):  # a thicker line: the same samples shifted down and right
        for dc in range(width):
            r, c = rows + dr, cols + dc
            keep = (r >= 0) & (r < image.shape[0]) & (c >= 0) & (c < image.shape[1])
            image[r[keep], c[keep]] = colour


def _square(image: np.ndarray, row: float, col: float, half: int, colour: Colour) -> None:
    r, c = int(round(row)), int(round(col))
    image[max(r - half, 0):r + half + 1, max(c - half, 0):c + half + 1] = colour


def _coverage_radius(u: int, uav_pos: np.ndarray, user_pos: np.ndarray, serving: np.ndarray) -> float:
    """Horizontal distance from UAV ``u`` to its farthest served user (0 when it serves none): the footprint it
    actually covers, which a fixed radius would not show."""
    served = user_pos[serving == u]
    if len(served) == 0:
        return 0.0
    return float(np.max(np.hypot(served[:, 0] - uav_pos[u, 0], served[:, 1] - uav_pos[u, 1])))


def render_uav_coverage(options: dict[str, Any], details: dict[str, Any], size: int = SIZE) -> np.ndarray:
    """``uint8[size, size, 3]`` top view of one env copy; ``options`` are the env's options (defaults included)."""
    area = float(options.get("area_size", 1000.0))
    min_h, max_h = float(options.get("min_height", 50.0)), float(options.get("max_height", 150.0))
    uav_pos, user_pos = np.asarray(details["uav_pos"], np.float64), np.asarray(details["user_pos"], np.float64)
    gbs_pos, serving = np.asarray(details["gbs_pos"], np.float64).reshape(-1, 3), np.asarray(details["serving"])
    next_hop = np.asarray(details["next_hop"])
    num_uavs = len(uav_pos)
    scale = (size - 1 - 2 * MARGIN) / area

    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    top, left = to_pixel(0.0, area, area, size)
    bottom, right = to_pixel(area, 0.0, area, size)
    _line(image, (top, left), (top, right), BORDER, 1)
    _line(image, (bottom, left), (bottom, right), BORDER, 1)
    _line(image, (top, left), (bottom, left), BORDER, 1)
    _line(image, (top, right), (bottom, right), BORDER, 1)
    _draw_time_bar(image, details, options)

    uav_px = [to_pixel(uav_pos[u, 0], uav_pos[u, 1], area, size) for u in range(num_uavs)]
    gbs_px = [to_pixel(g[0], g[1], area, size) for g in gbs_pos]
    for u in range(num_uavs):  # rings first: everything else is drawn over them
        radius = _coverage_radius(u, uav_pos, user_pos, serving) * scale
        if radius > 0:
            _ring(image, *uav_px[u], radius, _blend(uav_colour(u), 0.45), width=1.5)
    for u in range(num_uavs):
        hop = int(next_hop[u])
        if 0 <= hop < num_uavs:
            _line(image, uav_px[u], uav_px[hop], ROUTE)
        elif num_uavs <= hop < num_uavs + len(gbs_px):
            _line(image, uav_px[u], gbs_px[hop - num_uavs], ROUTE)
    for row, col in gbs_px:
        _square(image, row, col, 7, GBS)
        _square(image, row, col, 3, BACKGROUND)
    for j, (x, y) in enumerate(user_pos):
        owner = int(serving[j])
        _disc(image, *to_pixel(x, y, area, size), 2.5, uav_colour(owner) if owner >= 0 else UNSERVED)
    routed = "cooperative_network" == options.get("scenario", "cooperative_network")
    for u in range(num_uavs):
        # marker size shows the height: 5 px at min_height up to 9 px at max_height
        height = float(np.clip((uav_pos[u, 2] - min_h) / max(max_h - min_h, 1e-9), 0.0, 1.0))
        radius = 5.0 + 4.0 * height
        outline = NO_ROUTE if routed and next_hop[u] < 0 else ROUTE
        _disc(image, *uav_px[u], radius + 1.5, outline)
        _disc(image, *uav_px[u], radius, uav_colour(u))
    return image


def _draw_time_bar(image: np.ndarray, details: dict[str, Any], options: dict[str, Any]) -> None:
    """A thin bar in the top margin: the fraction of the episode elapsed."""
    max_steps = int(options.get("max_steps", 0))
    if max_steps <= 0:
        return
    fraction = min(max(float(details.get("t", 0)) / max_steps, 0.0), 1.0)
    width = image.shape[1] - 2 * MARGIN
    image[3:7, MARGIN:MARGIN + int(round(fraction * width))] = TIME_BAR
