"""Native uav_coverage held against the NumPy reference step by step: every scenario x channel model x action type,
plus the user distributions, shadowing, sharing, a binding connection cap and the old backhaul settings.

Positions move in float32 with the same operations on both sides, so trajectories stay in lockstep; radio values
(float64 through different libm calls) agree to a stated tolerance, and association, routes and roles exactly.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hmasd.envs
from hmasd.envs.reference import ReferenceVecEnv

SCENARIOS = ("base_station", "cooperative_network")
CHANNELS = ("free_space", "urban", "suburban", "3gpp-36777", "al-hourani")
ACTION_TYPES = ("continuous", "discrete")
SMALL = {"num_uavs": 4, "num_users": 24, "max_steps": 25}  # small enough for the Python reference, still relaying

EXTRA_OPTION_SETS: list[dict[str, Any]] = [
    {"user_distribution": "cluster", "shadowing": True},
    {"user_distribution": "hotspot", "bandwidth_sharing": "equal", "reward_split": True},
    {"max_connections": 3, "user_distribution": "hotspot"},  # the cap binds: the full greedy pass runs
    {"n_ground_bs": 3, "max_hops": 2, "area_size": 1500.0},
    {"n_ground_bs": 7, "channel_model": "al-hourani", "al_hourani_env": "suburban"},
    {"backhaul_min_snr_db": 0.0, "gbs_tx_power_dbm": 30.0, "min_height": 20.0, "max_height": 300.0},
    {"num_uavs": 1, "num_users": 5, "max_speed": 100.0, "dt": 0.5},
    {"user_grid": 6, "user_distribution": "hotspot"},  # order-free user features; hotspots crowd a few cells
    {"user_grid": 1, "scenario": "base_station"},  # one cell: every user in it
    {"user_grid": 32, "num_users": 5, "max_connections": 2},  # more cells than users, some users unserved
    {"uav_load": True, "max_connections": 3, "user_distribution": "hotspot"},  # loads with full UAVs
    {"uav_load": True, "user_grid": 5, "min_sinr_db": -10.0, "max_connections": 2},  # users in range of several
    {"uav_load": True, "load_offset_scale": 60.0, "area_size": 800.0},  # offsets in metres, some clipped
]

# float32 observations from float32 positions are exact; user positions pass through cos/sin/log in float64 and
# may round one float32 ulp apart, rewards are float64 terms from different libm calls rounded to float32
OBS_ATOL = 1e-6
REWARD_ATOL = 2e-6
RADIO_RTOL = 1e-9
EXACT_DETAILS = ("serving", "served_count", "unserved_in_range", "hops", "next_hop", "role", "uav_links", "gbs_links")


def random_actions(rng: np.random.Generator, env: Any) -> np.ndarray:
    e, n = env.num_envs, env.num_agents
    if env.continuous:
        return rng.uniform(-1.5, 1.5, size=(e, n, 3)).astype(np.float32)  # beyond [-1, 1]: clipping is exercised
    return rng.integers(0, 7, size=(e, n))


def compare(options: dict[str, Any], seed: int, num_envs: int = 2, steps: int = 60) -> int:
    """Steps both implementations in lockstep; returns the number of env steps compared."""
    native = hmasd.envs.make("uav_coverage", num_envs=num_envs, seed=seed, **options)
    reference = ReferenceVecEnv("uav_coverage", num_envs, seed=seed, **options)
    native.reset()
    reference.reset()
    rng = np.random.default_rng(seed + 1000)
    for t in range(steps + 1):
        where = f"{options} seed={seed} step {t}"
        np.testing.assert_allclose(native.obs, reference.obs, rtol=0, atol=OBS_ATOL, err_msg=f"obs, {where}")
        np.testing.assert_allclose(native.state, reference.state, rtol=0, atol=OBS_ATOL, err_msg=f"state, {where}")
        np.testing.assert_allclose(native.rewards, reference.rewards, rtol=0, atol=REWARD_ATOL,
                                   err_msg=f"rewards, {where}")
        np.testing.assert_array_equal(native.truncated, reference.truncated, err_msg=where)
        np.testing.assert_array_equal(native.terminated, reference.terminated, err_msg=where)
        assert native.action_mask.shape == reference.action_mask.shape
        for e in range(num_envs):
            mine, theirs = native.details(e), reference.details(e)
            for key in EXACT_DETAILS:
                if key in theirs:
                    np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"{key}, env {e}, {where}")
            np.testing.assert_array_equal(mine["uav_pos"], theirs["uav_pos"], err_msg=f"uav_pos, {where}")
            np.testing.assert_allclose(mine["user_pos"], theirs["user_pos"], rtol=0, atol=1e-3)
            np.testing.assert_allclose(mine["gbs_pos"], theirs["gbs_pos"], rtol=1e-12)
            np.testing.assert_allclose(mine["sinr_db"], theirs["sinr_db"], rtol=RADIO_RTOL, atol=1e-9)
            for key, value in theirs["metrics"].items():
                np.testing.assert_allclose(mine["metrics"][key], value, rtol=RADIO_RTOL, atol=1e-9,
                                           err_msg=f"metric {key}, env {e}, {where}")
        ended = native.terminated | native.truncated
        np.testing.assert_allclose(native.final_obs[ended], reference.final_obs[ended], rtol=0, atol=OBS_ATOL)
        for key, values in reference.episode_info.items():
            np.testing.assert_allclose(native.episode_info[key][ended], values[ended], rtol=1e-6, atol=1e-6,
                                       err_msg=f"episode info {key}, {where}")
        if t < steps:
            actions = random_actions(rng, native)
            native.step(actions)
            reference.step(actions)
    return steps * num_envs


@pytest.mark.parametrize("scenario, channel, action_type", list(itertools.product(SCENARIOS, CHANNELS, ACTION_TYPES)))
def test_every_scenario_channel_and_action_type(scenario: str, channel: str, action_type: str) -> None:
    compared = compare({**SMALL, "scenario": scenario, "channel_model": channel, "action_type": action_type},
                       seed=len(channel) + 7 * len(scenario))
    assert compared == 120


@pytest.mark.parametrize("extra", EXTRA_OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_option_variants(extra: dict[str, Any]) -> None:
    compare({**SMALL, **extra}, seed=3, steps=50)


def test_default_size_over_a_whole_episode_batch() -> None:
    """The default U = 5, N = 50 env, three seeds' worth of steps (1,200 env steps with resets)."""
    for seed in (0, 1, 2):
        compare({"max_steps": 40}, seed=seed, num_envs=4, steps=100)


def test_the_connection_cap_binds_in_the_variant_that_tests_it() -> None:
    """Guards the variant above: with max_connections = 3 some UAV must actually be full."""
    env = hmasd.envs.make("uav_coverage", num_envs=4, seed=3, **SMALL, max_connections=3,
                          user_distribution="hotspot")
    env.reset()
    full = [int((env.details(e)["served_count"] == 3).sum()) for e in range(4)]
    assert sum(full) > 0


@settings(max_examples=60, deadline=None)
@given(uavs=st.integers(2, 6), users=st.integers(5, 40), cap=st.integers(1, 5),
       threshold=st.sampled_from([-10.0, 0.0, 10.0]), distribution=st.sampled_from(["uniform", "cluster", "hotspot"]), seed=st.integers(0, 2**32 - 1))
def test_association_under_tight_caps_matches_the_greedy_pass(uavs, users, cap, threshold, distribution, seed):
    """The native association (deferred acceptance) against the reference's literal greedy pass over sorted pairs,
    where the cap binds in almost every step and users are turned away repeatedly."""
    compare({"num_uavs": uavs, "num_users": users, "max_connections": cap, "min_sinr_db": threshold,
             "user_distribution": distribution, "max_steps": 12}, seed=seed, num_envs=2, steps=15)
