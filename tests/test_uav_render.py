"""The uav_coverage top-view renderer: image format, UAV and user colours, routes, and that frames follow the env."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import hmasd.envs
from hmasd.envs.render_uav import GBS, ROUTE, SIZE, UNSERVED, render_uav_coverage, to_pixel, uav_colour


def env_details(seed: int = 0, steps: int = 0, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    env = hmasd.envs.make("uav_coverage", seed=seed, **options)
    env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, (1, env.num_agents, 3)).astype(np.float32))
    return env.options, env.details(0)


def pixels_of(image: np.ndarray, colour: tuple[int, int, int], row: float, col: float, radius: int) -> int:
    """How many pixels of ``colour`` lie in the square of half-width ``radius`` around (row, col)."""
    r, c = int(round(row)), int(round(col))
    window = image[max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1]
    return int(np.all(window == np.array(colour, np.uint8), axis=-1).sum())


def test_shape_dtype_and_vec_env_render() -> None:
    options, details = env_details(seed=1, steps=3)
    image = render_uav_coverage(options, details)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    env = hmasd.envs.make("uav_coverage", seed=1)
    env.reset()
    rng = np.random.default_rng(1)
    for _ in range(3):
        env.step(rng.uniform(-1, 1, (1, env.num_agents, 3)).astype(np.float32))
    assert np.array_equal(env.render(0), image)  # VecEnv.render hands the details to this renderer
    assert render_uav_coverage(options, details, size=200).shape == (200, 200, 3)


def test_each_uav_colour_appears_at_its_position() -> None:
    options, details = env_details(seed=2, num_uavs=4)
    image = render_uav_coverage(options, details)
    area = options["area_size"]
    for u, (x, y, _) in enumerate(details["uav_pos"]):
        row, col = to_pixel(x, y, area)
        # the marker is a disc of radius >= 5 px: its centre square is all UAV colour, unless a later UAV covers it
        assert pixels_of(image, uav_colour(u), row, col, 3) > 0, f"UAV {u}"


def test_user_dot_takes_its_serving_uav_colour_and_grey_when_unserved() -> None:
    options, details = env_details(seed=0)
    area = options["area_size"]
    uav_px = np.array([to_pixel(x, y, area) for x, y, _ in details["uav_pos"]])
    checked = {"served": 0, "unserved": 0}
    for j, (x, y) in enumerate(details["user_pos"]):
        row, col = to_pixel(x, y, area)
        if np.min(np.hypot(uav_px[:, 0] - row, uav_px[:, 1] - col)) < 16:
            continue  # under or next to a UAV marker
        owner = int(details["serving"][j])
        expected = uav_colour(owner) if owner >= 0 else UNSERVED
        image = render_uav_coverage(options, details)
        assert pixels_of(image, expected, row, col, 1) >= 5, f"user {j} served by {owner}"
        checked["served" if owner >= 0 else "unserved"] += 1
        if min(checked.values()) >= 3:
            break
    assert min(checked.values()) >= 1, checked

    # reassigning a user recolours its dot
    j = next(j for j in range(len(details["serving"])) if details["serving"][j] >= 0
             and np.min(np.hypot(*(uav_px - np.array(to_pixel(*details["user_pos"][j], area))).T)) > 16)
    changed = copy.deepcopy(details)
    new_owner = (int(details["serving"][j]) + 1) % len(details["uav_pos"])
    changed["serving"][j] = new_owner
    row, col = to_pixel(*details["user_pos"][j], area)
    assert pixels_of(render_uav_coverage(options, changed), uav_colour(new_owner), row, col, 1) >= 5


def test_moving_a_uav_changes_the_image_where_it_went() -> None:
    options, details = env_details(seed=3)
    before = render_uav_coverage(options, details)
    moved = copy.deepcopy(details)
    moved["uav_pos"][0, :2] = (options["area_size"] * 0.9, options["area_size"] * 0.1)
    after = render_uav_coverage(options, moved)
    assert not np.array_equal(before, after)
    row, col = to_pixel(*moved["uav_pos"][0, :2], options["area_size"])
    assert pixels_of(after, uav_colour(0), row, col, 3) > 20
    # flying higher draws a larger marker
    higher = copy.deepcopy(moved)
    higher["uav_pos"][0, 2] = options["max_height"]
    moved["uav_pos"][0, 2] = options["min_height"]
    assert (pixels_of(render_uav_coverage(options, higher), uav_colour(0), row, col, 12)
            > pixels_of(render_uav_coverage(options, moved), uav_colour(0), row, col, 12))


def test_routes_and_ground_base_station_are_drawn() -> None:
    options, details = env_details(seed=0)
    area = options["area_size"]
    image = render_uav_coverage(options, details)
    gbs_row, gbs_col = to_pixel(*details["gbs_pos"][0, :2], area)
    assert pixels_of(image, GBS, gbs_row, gbs_col, 7) > 20
    routed = [u for u in range(len(details["next_hop"])) if details["next_hop"][u] >= 0]
    assert routed, "expected a UAV with a backhaul route at reset"
    u = routed[0]
    hop = int(details["next_hop"][u])
    num_uavs = len(details["uav_pos"])
    end = details["uav_pos"][hop, :2] if hop < num_uavs else details["gbs_pos"][hop - num_uavs, :2]
    start_px, end_px = np.array(to_pixel(*details["uav_pos"][u, :2], area)), np.array(to_pixel(*end, area))
    midpoint = (start_px + end_px) / 2
    assert pixels_of(image, ROUTE, *midpoint, 2) > 0
    # without the route, that line is gone
    unrouted = copy.deepcopy(details)
    unrouted["next_hop"][:] = -1
    assert pixels_of(render_uav_coverage(options, unrouted), ROUTE, *midpoint, 2) < pixels_of(image, ROUTE,
                                                                                              *midpoint, 2)


@pytest.mark.parametrize("options", [{"scenario": "base_station"}, {"num_users": 1, "num_uavs": 1},
                                     {"n_ground_bs": 9, "area_size": 50.0}])
def test_other_configurations_render(options: dict[str, Any]) -> None:
    env_options, details = env_details(seed=4, steps=2, **options)
    image = render_uav_coverage(env_options, details)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
