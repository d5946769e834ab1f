"""The VecEnv facade: spaces and bounds, zero-copy buffers, episode statistics, pickling, rendering."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest

import hmasd.envs
from conftest import random_actions, snapshot_buffers


def stepped(name: str, num_envs: int = 16, steps: int = 300, **options):
    env = hmasd.envs.make(name, num_envs=num_envs, seed=5, **options)
    env.reset()
    rng = np.random.default_rng(9)
    for _ in range(steps):
        env.step(random_actions(env, rng))
    return env


def test_registry_lists_every_env_with_its_defaults():
    assert hmasd.envs.registered_envs() == ["alice_and_bob", "stag_hunt", "uav_coverage"]
    assert hmasd.envs.default_options("alice_and_bob") == {"height": 10, "width": 10, "max_steps": 100}
    defaults = hmasd.envs.default_options("stag_hunt")
    assert defaults["grid_size"] == 8 and defaults["num_agents"] == 4 and defaults["max_steps"] == 35
    assert defaults["reward_mode"] == "individual" and defaults["tie_break"] == "random"
    uav = hmasd.envs.default_options("uav_coverage")
    assert (uav["num_uavs"], uav["num_users"], uav["max_steps"], uav["channel_model"], uav["scenario"]) == \
        (5, 50, 500, "3gpp-36777", "cooperative_network")
    assert (uav["backhaul_min_snr_db"], uav["gbs_tx_power_dbm"], uav["action_type"]) == (30.0, 20.0, "continuous")


@pytest.mark.parametrize("name, options, n, obs_dim, state_dim", [
    ("alice_and_bob", {}, 2, 11, 100),
    ("alice_and_bob", {"height": 6, "width": 7}, 2, 11, 42),
    ("stag_hunt", {}, 4, 19, 19),
    ("stag_hunt", {"num_agents": 3, "num_hares": 2, "agent_id_in_obs": True}, 3, 2 + 4 + 2 + 4 + 1 + 3, 6 + 2 + 4 + 1),
])
def test_every_observation_stays_inside_its_declared_space(name, options, n, obs_dim, state_dim):
    env = hmasd.envs.make(name, num_envs=8, seed=1, **options)
    assert (env.num_agents, env.obs_dim, env.state_dim, env.num_actions) == (n, obs_dim, state_dim, 5)
    obs_space, state_space = env.observation_space, env.state_space
    assert obs_space.shape == (obs_dim,) and state_space.shape == (state_dim,)
    assert env.action_space.n == 5
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(200):
        env.step(random_actions(env, rng))
        for e in range(env.num_envs):
            assert state_space.contains(env.state[e])
            for i in range(n):
                assert obs_space.contains(env.obs[e, i]), (e, i, env.obs[e, i])


def test_buffers_alias_native_memory_and_are_rewritten_in_place(env_name):
    env = hmasd.envs.make(env_name, num_envs=4, seed=0)
    obs, info = env.reset()
    assert obs is env.obs and info["state"] is env.state
    before = obs.copy()
    address = obs.__array_interface__["data"][0]
    result = env.step(hmasd.envs.random_actions(env, np.random.default_rng(0)))
    assert result[0] is obs and obs.__array_interface__["data"][0] == address
    assert not np.array_equal(before, obs) or env_name == "alice_and_bob"
    # a write through the view lands in the native buffer the next snapshot reads
    env.obs[...] = -7.0
    assert pickle.loads(pickle.dumps(env)).obs.min() == -7.0


def test_torch_sees_the_same_memory(env_name):
    torch = pytest.importorskip("torch", reason="torch is in the train extra; CI installs it")
    env = hmasd.envs.make(env_name, num_envs=4, seed=0)
    env.reset()
    tensor = torch.from_numpy(env.obs)
    env.step(hmasd.envs.random_actions(env, np.random.default_rng(0)))
    assert np.array_equal(tensor.numpy(), env.obs)
    assert tensor.data_ptr() == env.obs.__array_interface__["data"][0]


def test_pickled_and_cloudpickled_envs_continue_identically(env_name):
    env = stepped(env_name, num_envs=6, steps=40)
    for clone in (pickle.loads(pickle.dumps(env)), cloudpickle.loads(cloudpickle.dumps(env))):
        assert clone.options == env.options and clone.num_envs == env.num_envs
        twin = pickle.loads(pickle.dumps(env))
        rng = np.random.default_rng(4)
        for _ in range(80):
            actions = random_actions(twin, rng)
            clone.step(actions)
            twin.step(actions)
            a, b = snapshot_buffers(clone), snapshot_buffers(twin)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


def test_final_obs_holds_the_last_observation_before_the_auto_reset():
    env = hmasd.envs.make("stag_hunt", num_envs=3, seed=2, max_steps=4)
    env.reset()
    stay = np.full((3, 4), 4, np.int32)
    for _ in range(3):
        env.step(stay)
    last_obs, last_state = env.obs.copy(), env.state.copy()
    env.step(stay)
    assert env.truncated.all() and not env.terminated.any()
    # staying agents do not move, so the final obs equals the previous one except for the clock and prey
    np.testing.assert_array_equal(env.final_obs[..., :2], last_obs[..., :2])
    np.testing.assert_allclose(env.final_state[:, -1], 1.0)
    np.testing.assert_allclose(env.state[:, -1], 0.0)
    assert not np.array_equal(env.state, last_state)
    np.testing.assert_array_equal(env.episode_length, [4, 4, 4])


def test_episode_stats_average_the_finished_episodes():
    env = hmasd.envs.make("stag_hunt", num_envs=5, seed=8, max_steps=10)
    env.reset()
    rng = np.random.default_rng(3)
    returns, hares = [], []
    for _ in range(50):
        env.step(random_actions(env, rng))
        for e in np.flatnonzero(env.truncated):
            returns.append(env.episode_return[e].copy())
            hares.append(env.episode_info["hares"][e].copy())
    stats = env.episode_stats()
    assert stats["episodes"] == len(returns) == 25
    np.testing.assert_allclose(stats["return"], np.mean(returns, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["hares"], np.mean(hares, axis=0), rtol=1e-6)
    assert stats["length"] == 10.0
    assert env.episode_stats() == {"episodes": 0}


def test_alice_and_bob_episode_info_in_stats():
    env = hmasd.envs.make("alice_and_bob", num_envs=64, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(1000):
        env.step(random_actions(env, rng))
    stats = env.episode_stats()
    # random play almost never solves the task (the paper's MAPPO gets 0) but does collect single diamonds
    assert stats["episodes"] == 640 and stats["length"] == 100.0
    assert 0.0 < stats["diamonds_collected"] < 2.0
    np.testing.assert_allclose(stats["return"], [stats["success"]] * 2, rtol=1e-9)


def test_render_draws_the_grid(env_name):
    env = hmasd.envs.make(env_name, num_envs=2, seed=0)
    env.reset()
    image = env.render(1)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if not env.continuous:  # the grid envs draw 24 px per cell (uav_coverage's plot: tests/test_uav_render.py)
        size = 10 if env_name == "alice_and_bob" else 8
        assert image.shape == (size * 24, size * 24, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) >= 4
    # every grid agent moves right (col + 1) or down; every UAV flies at full speed along +x
    moves = np.ones((2, env.num_agents, env.action_dim), np.float32) if env.continuous else \
        np.zeros((2, env.num_agents), np.int32)
    moved = False
    for _ in range(3):
        env.step(moves)
        moved = moved or not np.array_equal(image, env.render(1))
    assert moved


# ---- chosen-env resets and unseeded envs -------------------------------------------------------------------------

def test_reset_envs_restarts_only_the_chosen_envs_and_checks_its_argument():
    env = hmasd.envs.make("stag_hunt", num_envs=6, seed=3)
    with pytest.raises(RuntimeError, match="call reset"):
        env.reset_envs([0])
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(4):
        env.step(hmasd.envs.random_actions(env, rng))
    before = {key: getattr(env, key).copy() for key in ("obs", "state", "rewards", "action_mask")}
    lengths = env._native.buffers()["episode_length"].copy()
    twin = hmasd.envs.make("stag_hunt", num_envs=6, seed=3)
    twin.reset()
    twin.reset_envs(np.ones(6, dtype=bool))  # episode 1 of every env: what a chosen env must now show
    env.reset_envs([1, 4, 4])
    chosen = np.isin(np.arange(6), [1, 4])
    for key, old in before.items():
        np.testing.assert_array_equal(getattr(env, key)[~chosen], old[~chosen], err_msg=key)
    np.testing.assert_array_equal(env.obs[chosen], twin.obs[chosen])
    assert (env.rewards[chosen] == 0).all() and not env.terminated[chosen].any()
    np.testing.assert_array_equal(env._native.buffers()["episode_length"], lengths)
    for bad, error in (([6], IndexError), ([-1], IndexError), (np.ones(5, bool), ValueError), ([0.5], TypeError),
                       ("0", TypeError), (np.ones((6, 1), bool), ValueError)):
        with pytest.raises(error):
            env.reset_envs(bad)
    np.testing.assert_array_equal(env.obs[chosen], twin.obs[chosen])  # refused calls changed nothing


def test_unseeded_envs_draw_fresh_seeds_and_report_them():
    first, second = (hmasd.envs.make("stag_hunt", num_envs=2, seed=None) for _ in range(2))
    assert first.seed != second.seed
    first.reset()
    second.reset()
    assert not np.array_equal(first.obs, second.obs)
    replay = hmasd.envs.make("stag_hunt", num_envs=2, seed=first.seed)
    replay.reset()
    np.testing.assert_array_equal(replay.obs, first.obs)


@pytest.mark.parametrize("rows", [True, False])
@pytest.mark.parametrize("flags", ["split", "done", "all", "none"])
@pytest.mark.parametrize("mask", ["", "bool", "int8", "float32"])
def test_copy_outputs_are_fresh_copies_of_the_buffers_in_the_asked_layout(env_name, rows, flags, mask):
    env = hmasd.envs.make(env_name, num_envs=6, seed=3, max_steps=5)
    env.reset()
    rng = np.random.default_rng(4)
    e, n = env.num_envs, env.num_agents
    lead = (e * n,) if rows else (e, n)
    seen_end = False
    for _ in range(12):  # two episode ends in twelve steps of five
        env.step(random_actions(env, rng))
        obs, rewards, term, trunc, done, got_mask, num_ended = env.copy_outputs(rows, True, flags, mask)
        assert obs.shape == (*lead, env.obs_dim) and obs.dtype == np.float32
        np.testing.assert_array_equal(obs.reshape(env.obs.shape), env.obs)
        assert not np.shares_memory(obs, env.obs) and not np.shares_memory(rewards, env.rewards)
        np.testing.assert_array_equal(rewards.reshape(e, n), env.rewards)
        ended = env.terminated | env.truncated
        assert num_ended == int(ended.sum())
        seen_end |= num_ended > 0
        expected = {"terminated": env.terminated, "truncated": env.truncated, "done": ended}
        asked = {"split": {"terminated", "truncated"}, "done": {"done"}, "all": set(expected), "none": set()}[flags]
        for key, got in zip(("terminated", "truncated", "done"), (term, trunc, done)):
            if key not in asked:
                assert got is None
                continue
            assert got.dtype == np.bool_ and got.shape == lead
            np.testing.assert_array_equal(got.reshape(e, n), np.repeat(expected[key][:, None], n, axis=1))
        if not mask or env.continuous:
            assert got_mask is None or env.continuous
            continue
        assert got_mask.dtype == np.dtype(mask) and got_mask.shape == (*lead, env.num_actions)
        np.testing.assert_array_equal(got_mask.reshape(env.action_mask.shape), env.action_mask.astype(mask))
    assert seen_end


def test_copy_outputs_refuses_unknown_flags_and_masks_by_name():
    env = hmasd.envs.make("stag_hunt", num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match="flags must be"):
        env.copy_outputs(True, True, "both", "")
    with pytest.raises(ValueError, match="mask must be"):
        env.copy_outputs(True, True, "split", "uint8")
