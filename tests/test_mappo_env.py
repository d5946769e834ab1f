"""The MAPPO-runner face (hmasd.envs.mappo): on-policy's ShareVecEnv shapes, held against the native buffers."""

from __future__ import annotations

import numpy as np
import pytest

import hmasd.envs
from hmasd.envs.mappo import MappoVecEnv

pytestmark = pytest.mark.adapter


@pytest.mark.parametrize(("name", "options"), [("stag_hunt", {"max_steps": 9}),
                                               ("alice_and_bob", {"height": 4, "width": 4, "max_steps": 12}),
                                               ("uav_coverage", {"num_uavs": 3, "num_users": 10, "max_steps": 7})])
def test_shapes_and_values_follow_the_native_env(name: str, options: dict) -> None:
    env = MappoVecEnv(name, num_envs=4, **options)
    env.seed(21)
    twin = hmasd.envs.make(name, num_envs=4, seed=21, **options)
    e, n = 4, env.num_agents
    obs, share_obs, available = env.reset()
    twin.reset()
    assert len(env.observation_space) == len(env.share_observation_space) == len(env.action_space) == n
    assert obs.shape == (e, n, twin.obs_dim) and share_obs.shape == (e, n, twin.state_dim)
    assert available.shape[:2] == (e, n)
    rng, ends, cuts = np.random.default_rng(0), 0, 0
    for _ in range(30):
        if twin.continuous:
            actions = rng.uniform(-1, 1, (e, n, twin.action_dim)).astype(np.float32)
        else:  # [E, N, 1], as the runners send them, drawn from available_actions
            actions = np.array([[[rng.choice(np.flatnonzero(a))] for a in row] for row in available])
        env.step_async(actions)
        obs, share_obs, rewards, dones, infos, available = env.step_wait()
        twin.step(actions if twin.continuous else actions[:, :, 0])
        np.testing.assert_array_equal(obs, twin.obs)
        np.testing.assert_array_equal(share_obs, np.repeat(twin.state[:, None], n, axis=1))
        assert rewards.shape == (e, n, 1) and dones.shape == (e, n) and dones.dtype == np.bool_
        np.testing.assert_array_equal(rewards[:, :, 0], twin.rewards)
        ended = twin.terminated | twin.truncated
        np.testing.assert_array_equal(dones, np.repeat(ended[:, None], n, axis=1))
        if not twin.continuous:
            np.testing.assert_array_equal(available, twin.action_mask.astype(np.float32))
        assert len(infos) == e and all(len(agent_infos) == n for agent_infos in infos)
        for k in range(e):
            cut = bool(twin.truncated[k] and not twin.terminated[k])
            assert all(info["bad_transition"] == cut for info in infos[k])
            assert all(("episode_metrics" in info) == bool(ended[k]) for info in infos[k])
            if ended[k]:
                ends += 1
                cuts += cut
                for i, info in enumerate(infos[k]):
                    np.testing.assert_array_equal(info["terminal_obs"], twin.final_obs[k, i])
                    assert info["episode_metrics"]["return"] == twin.episode_return[k, i]
                    assert info["episode_metrics"]["length"] == twin.episode_length[k]
    assert ends > 0 and (cuts > 0 or name == "alice_and_bob")


def test_one_hot_actions_and_read_only_quiet_infos() -> None:
    env = MappoVecEnv("stag_hunt", num_envs=2, seed=1)
    twin = hmasd.envs.make("stag_hunt", num_envs=2, seed=1)
    env.reset()
    twin.reset()
    actions = np.zeros((2, env.num_agents), dtype=np.int64)
    actions[1] = 3
    one_hot = np.eye(twin.num_actions, dtype=np.float32)[actions]
    obs, *_, infos, _ = env.step(one_hot)
    twin.step(actions)
    np.testing.assert_array_equal(obs, twin.obs)
    with pytest.raises(TypeError):
        infos[0][0]["won"] = True  # shared by every quiet copy: writing to it would write to all
    with pytest.raises(ValueError, match="one-hot"):
        env.step(one_hot * 2)
    with pytest.raises(ValueError, match="autoreset='same_step'"):
        MappoVecEnv(hmasd.envs.make("stag_hunt", autoreset="disabled"))
