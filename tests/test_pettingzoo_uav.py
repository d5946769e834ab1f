"""PettingZoo ``uav_coverage_v0``: PettingZoo's API tests for continuous and discrete moves, Box actions, seeded
determinism, agreement with the native batched env, and rendering."""

from __future__ import annotations

import functools
import pickle
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.test import (
    max_cycles_test,
    parallel_seed_test,
    render_test,
    seed_test,
)
from test_pettingzoo import assert_same, assert_same_trace, no_warnings
from test_pettingzoo import run_episodes as shared_run_episodes

import hmasd.envs
from hmasd.envs.pettingzoo import uav_coverage_v0
from hmasd.envs.pettingzoo._adapter import HmasdParallelEnv

# Small configs keep PettingZoo's many-cycle tests fast; the base_station variant has no backhaul features.
ACTION_TYPES = ["continuous", "discrete"]
CONFIGS = [
    pytest.param({"num_uavs": 3, "num_users": 20, "max_steps": 60}, id="continuous"),
    pytest.param({"num_uavs": 3, "num_users": 20, "max_steps": 60, "action_type": "discrete"}, id="discrete"),
    pytest.param({"num_uavs": 2, "num_users": 10, "max_steps": 30, "scenario": "base_station",
                  "user_distribution": "hotspot"}, id="continuous-base_station"),
]


def variant(action_type: str) -> SimpleNamespace:
    """A stand-in for the module whose env constructors default to ``action_type`` (for PettingZoo's tests that
    take a module or a constructor)."""
    return SimpleNamespace(parallel_env=functools.partial(uav_coverage_v0.parallel_env, action_type=action_type),
                           env=functools.partial(uav_coverage_v0.env, action_type=action_type))


def random_actions(env: HmasdParallelEnv, rng: np.random.Generator) -> dict[str, Any]:
    """Uniform random actions for the live agents: float32[3] in [-1, 1], or an int among the valid moves."""
    if env.options["action_type"] == "continuous":
        return {agent: rng.uniform(-1.0, 1.0, 3).astype(np.float32) for agent in env.agents}
    return {agent: int(rng.integers(7)) for agent in env.agents}


# ---- PettingZoo's own test utilities (parallel_api_test, api_test and state_test run in test_pettingzoo.py) ----


@pytest.mark.parametrize("action_type", ACTION_TYPES)
def test_max_cycles(action_type: str) -> None:
    with no_warnings():
        max_cycles_test(variant(action_type))


@pytest.mark.parametrize("action_type", ACTION_TYPES)
def test_render(action_type: str) -> None:
    def env_fn(render_mode: str | None = None) -> AECEnv:
        # as in test_pettingzoo: render_test asks for "human" only to read metadata; we offer rgb_array only
        return uav_coverage_v0.env(render_mode="rgb_array" if render_mode == "human" else render_mode,
                                   action_type=action_type, num_users=20)

    with no_warnings():
        render_test(env_fn)


@pytest.mark.parametrize("action_type", ACTION_TYPES)
def test_pettingzoo_seed_tests(action_type: str) -> None:
    module = variant(action_type)
    with no_warnings():
        seed_test(functools.partial(module.env, num_users=20), num_cycles=50)
        parallel_seed_test(functools.partial(module.parallel_env, num_users=20), num_cycles=50)


# ---- spaces and actions --------------------------------------------------------------------------


@pytest.mark.parametrize("action_type", ACTION_TYPES)
def test_spaces_and_infos(action_type: str) -> None:
    env = uav_coverage_v0.parallel_env(action_type=action_type, num_uavs=4)
    native = hmasd.envs.make("uav_coverage", action_type=action_type, num_uavs=4)
    assert env.metadata["name"] == "uav_coverage_v0" and str(env) == "uav_coverage_v0"
    assert env.possible_agents == [f"agent_{i}" for i in range(4)]
    expected = (spaces.Box(-1.0, 1.0, (3,), np.float32) if action_type == "continuous" else spaces.Discrete(7))
    for agent in env.possible_agents:
        assert env.action_space(agent) == expected and env.action_space(agent) is env.action_space(agent)
        assert env.observation_space(agent) == native.observation_space
    assert env.action_space("agent_0") is not env.action_space("agent_1")
    assert env.state_space == native.state_space
    obs, infos = env.reset(seed=0)
    for agent in env.agents:
        assert env.observation_space(agent).contains(obs[agent])
        if action_type == "continuous":
            assert "action_mask" not in infos[agent]
        else:
            mask = infos[agent]["action_mask"]
            assert mask.dtype == np.int8 and mask.shape == (7,) and mask.all()


def test_continuous_action_errors_leave_the_env_unmoved() -> None:
    env = uav_coverage_v0.parallel_env(num_uavs=2)
    env.reset(seed=1)
    before = env.state()
    good = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="missing.*agent_1"):
        env.step({"agent_0": good})
    with pytest.raises(ValueError, match=r"agent_1.*shape \(3,\)"):
        env.step({"agent_0": good, "agent_1": np.zeros(2)})
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step({"agent_0": 0.5, "agent_1": good})
    with pytest.raises(TypeError, match="agent_0.*float vector"):
        env.step({"agent_0": np.array([True, False, True]), "agent_1": good})
    with pytest.raises(TypeError, match="agent_1.*float vector"):
        env.step({"agent_0": good, "agent_1": "up"})
    with pytest.raises(ValueError, match="not finite"):
        env.step({"agent_0": good, "agent_1": np.array([0.0, np.nan, 0.0])})
    assert np.array_equal(env.state(), before)
    # lists, float64 and ints are fine; values beyond [-1, 1] are clipped by the env like in the native VecEnv
    env.step({"agent_0": [1, 0, 0], "agent_1": np.array([5.0, -7.0, 0.25])})
    native = hmasd.envs.make("uav_coverage", num_uavs=2, seed=1, autoreset="disabled")
    native.reset(seed=1)
    native.step(np.array([[[1, 0, 0], [1, -1, 0.25]]], np.float32))
    assert np.array_equal(env.state(), native.state[0])


def test_discrete_action_errors() -> None:
    env = uav_coverage_v0.parallel_env(num_uavs=2, action_type="discrete")
    env.reset(seed=1)
    with pytest.raises(TypeError, match="agent_0.*integer"):
        env.step({"agent_0": np.zeros(3, np.float32), "agent_1": 0})
    with pytest.raises(ValueError, match="out of range"):
        env.step({"agent_0": 7, "agent_1": 0})


# ---- determinism and agreement with the native env -----------------------------------------------


def run_episodes(env: HmasdParallelEnv, seed: int, episodes: int, action_seed: int) -> list[tuple[Any, ...]]:
    return shared_run_episodes(env, seed, episodes, action_seed, act=lambda env, rng, infos: random_actions(env, rng))


@pytest.mark.parametrize("options", CONFIGS)
def test_same_seed_same_episodes_different_seed_differs(options: dict[str, Any]) -> None:
    first = run_episodes(uav_coverage_v0.parallel_env(**options), seed=11, episodes=3, action_seed=5)
    second = run_episodes(uav_coverage_v0.parallel_env(**options), seed=11, episodes=3, action_seed=5)
    assert sum(entry[0] == "reset" for entry in first) == 3
    assert_same_trace(first, second)
    other = run_episodes(uav_coverage_v0.parallel_env(**options), seed=12, episodes=3, action_seed=5)
    starts = [entry[-1] for entry in first if entry[0] == "reset"]
    other_starts = [entry[-1] for entry in other if entry[0] == "reset"]
    assert all(not np.array_equal(s, o) for s, o in zip(starts, other_starts))
    # the episodes of one stream differ from each other (new users, new UAV starts)
    assert not np.array_equal(starts[0], starts[1])


@pytest.mark.parametrize("options", CONFIGS)
def test_matches_native_vec_env_step_by_step(options: dict[str, Any]) -> None:
    env = uav_coverage_v0.parallel_env(**options)
    native = hmasd.envs.make("uav_coverage", seed=7, autoreset="disabled", **options)
    agents = env.possible_agents
    rng = np.random.default_rng(3)
    obs, _ = env.reset(seed=7)
    native.reset(seed=7)
    while env.agents:
        assert all(np.array_equal(obs[agent], native.obs[0, i]) for i, agent in enumerate(agents))
        assert np.array_equal(env.state(), native.state[0])
        actions = random_actions(env, rng)
        obs, rewards, _, truncations, infos = env.step(actions)
        native.step(np.array([[actions[agent] for agent in agents]]))
        assert rewards == {agent: float(native.rewards[0, i]) for i, agent in enumerate(agents)}
    assert truncations == dict.fromkeys(agents, True)
    for i, agent in enumerate(agents):
        episode = infos[agent]["episode_metrics"]
        assert episode["length"] == options["max_steps"]
        assert episode["return"] == float(native.episode_return[0, i])
        assert episode["coverage_ratio"] == float(native.episode_info["coverage_ratio"][0])
        assert episode["served_users"] == float(native.episode_info["served_users"][0, i])


def test_pickle_mid_episode_continues_identically() -> None:
    env = uav_coverage_v0.parallel_env(num_uavs=3, num_users=20)
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(random_actions(env, rng))
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(5):
        actions = random_actions(env, rng)
        assert_same(env.step(actions), clone.step(actions), "after unpickling")


def test_render_rgb_array_follows_the_env() -> None:
    env = uav_coverage_v0.parallel_env(render_mode="rgb_array", num_uavs=3)
    native = hmasd.envs.make("uav_coverage", num_uavs=3, seed=0, autoreset="disabled")
    env.reset(seed=0)
    native.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert np.array_equal(first, native.render(0))
    move = np.array([1.0, 1.0, 0.0], np.float32)  # every UAV flies diagonally: the frame must change
    for _ in range(3):
        env.step(dict.fromkeys(env.agents, move))
        native.step(np.tile(move, (1, 3, 1)))
    assert np.array_equal(env.render(), native.render(0))
    assert not np.array_equal(env.render(), first)
