"""The Gymnasium VectorEnv adapter (hmasd.envs.gym_vector) held against the native buffers, in every autoreset
mode, with Gymnasium's own vector wrappers on top."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import NormalizeObservation, RecordEpisodeStatistics

import hmasd.envs
from hmasd.envs.gym_vector import HmasdVectorEnv

pytestmark = pytest.mark.adapter

# Small episodes so that every test crosses episode ends: stag hunt truncates after 9 steps, alice_and_bob on a 4 x 4
# grid terminates within a few random steps.
SHORT = {"stag_hunt": {"max_steps": 9}, "alice_and_bob": {"height": 4, "width": 4, "max_steps": 12},
         "uav_coverage": {"num_uavs": 3, "num_users": 10, "max_steps": 7}}
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]


def row_actions(env: HmasdVectorEnv, rng: np.random.Generator, info: dict) -> np.ndarray:
    """A valid random action per row (masked for discrete envs)."""
    if env.vec.continuous:
        return rng.uniform(-1, 1, (env.num_envs, env.vec.action_dim)).astype(np.float32)
    mask = info["action_mask"].astype(bool)
    return np.array([rng.choice(np.flatnonzero(m)) for m in mask], dtype=np.int64)


def twin_of(env: HmasdVectorEnv, name: str) -> hmasd.envs.VecEnv:
    return hmasd.envs.make(name, num_envs=env.num_env_copies, seed=env.vec.seed, autoreset=env.vec.autoreset,
                           **SHORT[name])


@pytest.mark.parametrize("name", hmasd.envs.registered_envs())
def test_make_vec_builds_agents_as_rows(name: str) -> None:
    env = gymnasium.make_vec(f"hmasd/{name}-v0", num_envs=6, **SHORT[name])
    assert isinstance(env.unwrapped, HmasdVectorEnv)
    n = env.num_agents
    assert env.num_envs == 6 * n and env.num_env_copies == 6
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert env.single_observation_space == env.vec.observation_space
    assert env.observation_space.shape == (6 * n, *env.single_observation_space.shape)
    obs, info = env.reset(seed=4)
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs.reshape(6, n, -1), env.vec.obs)
    assert not np.shares_memory(obs, env.vec.obs)  # a copy: the next step rewrites the native rows
    actions = env.action_space.sample()
    obs, rewards, terminated, truncated, info = env.step(actions)
    assert rewards.shape == terminated.shape == truncated.shape == (6 * n,)
    np.testing.assert_array_equal(rewards.reshape(6, n), env.vec.rewards)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("name", ["stag_hunt", "alice_and_bob", "uav_coverage"])
def test_each_autoreset_mode_follows_the_native_env_step_by_step(name: str, mode: AutoresetMode) -> None:
    env = HmasdVectorEnv(name, num_envs=5, seed=11, autoreset_mode=mode, **SHORT[name])
    twin = twin_of(env, name)
    n, rng = env.num_agents, np.random.default_rng(0)
    obs, info = env.reset()
    twin.reset()
    ends = restarts = 0
    previous_end = np.zeros(5 * n, dtype=bool)
    for _ in range(60):
        actions = row_actions(env, rng, info)
        if mode is AutoresetMode.DISABLED and previous_end.any():
            with pytest.raises(RuntimeError, match="finished its episode"):
                env.step(actions)
            obs, info = env.reset(options={"reset_mask": previous_end})
            twin.reset_envs(previous_end.reshape(5, n)[:, 0])
            previous_end[:] = False
            np.testing.assert_array_equal(obs.reshape(5, n, -1), twin.obs)
            continue
        obs, rewards, terminated, truncated, info = env.step(actions)
        twin.step(actions.reshape((5, n, -1) if twin.continuous else (5, n)))
        np.testing.assert_array_equal(obs.reshape(5, n, -1), twin.obs)
        np.testing.assert_array_equal(rewards, twin.rewards.reshape(-1))
        np.testing.assert_array_equal(terminated, np.repeat(twin.terminated, n))
        np.testing.assert_array_equal(truncated, np.repeat(twin.truncated, n))
        ended = terminated | truncated
        if mode is AutoresetMode.NEXT_STEP and previous_end.any():  # the step after an end restarts those rows
            assert not ended[previous_end].any() and (rewards[previous_end] == 0).all()
            restarts += int(previous_end.sum())
        metrics = info.get("final_info", info).get("episode_metrics")
        assert (metrics is not None) == bool(ended.any())
        if ended.any():
            ends += int(ended.sum())
            np.testing.assert_array_equal(info.get("final_info", info)["_episode_metrics"], ended)
            np.testing.assert_array_equal(metrics["return"][ended], twin.episode_return.reshape(-1)[ended])
            np.testing.assert_array_equal(metrics["length"][ended], np.repeat(twin.episode_length, n)[ended])
            if mode is AutoresetMode.SAME_STEP:
                final = twin.final_obs.reshape(5 * n, -1)
                assert all(np.array_equal(info["final_obs"][r], final[r]) for r in np.flatnonzero(ended))
                assert all(info["final_obs"][r] is None for r in np.flatnonzero(~ended))
            else:  # the ending step returns the terminal observation itself
                np.testing.assert_array_equal(obs[ended], twin.final_obs.reshape(5 * n, -1)[ended])
        previous_end = ended
    assert ends > 0 and (mode is not AutoresetMode.NEXT_STEP or restarts > 0)


def test_reset_mask_resets_only_whole_env_copies() -> None:
    env = HmasdVectorEnv("stag_hunt", num_envs=4, seed=2, autoreset_mode="disabled")
    n = env.num_agents
    with pytest.raises(RuntimeError, match="reset\\(\\) once"):
        env.reset(options={"reset_mask": np.ones(4 * n, dtype=bool)})
    obs, info = env.reset()
    for _ in range(3):
        obs, *_ = env.step(row_actions(env, np.random.default_rng(1), info))
    mask = np.zeros(4 * n, dtype=bool)
    mask[n:2 * n] = True  # env copy 1
    after, _ = env.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(after[~mask], obs[~mask])
    assert not np.array_equal(after[mask], obs[mask])
    half = mask.copy()
    half[n] = False
    with pytest.raises(ValueError, match="agents of env 1"):
        env.reset(options={"reset_mask": half})
    with pytest.raises(ValueError, match="shape"):
        env.reset(options={"reset_mask": np.ones(4, dtype=bool)})
    with pytest.raises(ValueError, match="a seed restarts every env copy"):
        env.reset(seed=1, options={"reset_mask": mask})
    with pytest.raises(ValueError, match="not understood"):
        env.reset(options={"grid_size": 5})
    with pytest.raises(TypeError, match="one int"):
        env.reset(seed=[1, 2])
    np.testing.assert_array_equal(env.vec.obs.reshape(4 * n, -1), after)  # refused resets changed nothing
    with pytest.raises(ValueError, match="actions must have shape"):
        env.step(np.zeros(4, dtype=np.int64))


def test_unseeded_envs_differ_and_seeded_ones_repeat() -> None:
    def rollout(seed: int | None, reset_seed: int | None) -> list[np.ndarray]:
        env = HmasdVectorEnv("stag_hunt", num_envs=3, seed=seed)
        obs, info = env.reset(seed=reset_seed)
        rng, out = np.random.default_rng(5), [obs]
        for _ in range(12):
            obs, *_, info = env.step(row_actions(env, rng, info))
            out.append(obs)
        return out

    assert not data_equivalence(rollout(None, None), rollout(None, None))
    assert data_equivalence(rollout(None, 8), rollout(None, 8))
    assert data_equivalence(rollout(3, None), rollout(3, None))
    assert data_equivalence(rollout(3, None), rollout(None, 3))
    assert data_equivalence(rollout(3, None), rollout(3, [None] * 12))  # a list of Nones is "no seed"


def test_gymnasium_vector_wrappers_run_on_top() -> None:
    env = RecordEpisodeStatistics(NormalizeObservation(HmasdVectorEnv("stag_hunt", num_envs=4, seed=0,
                                                                       max_steps=9)))
    obs, info = env.reset(seed=0)
    rng, episodes = np.random.default_rng(0), 0
    for _ in range(20):
        obs, rewards, terminated, truncated, info = env.step(row_actions(env.unwrapped, rng, info))
        assert np.isfinite(obs).all()
        if "episode" in info:  # RecordEpisodeStatistics' own record agrees with hmasd's
            rows = info["_episode"]
            episodes += int(rows.sum())
            np.testing.assert_allclose(info["episode"]["r"][rows], info["episode_metrics"]["return"][rows],
                                       rtol=1e-6)
            np.testing.assert_array_equal(info["episode"]["l"][rows], info["episode_metrics"]["length"][rows])
    assert episodes == 2 * 4 * env.unwrapped.num_agents  # two episodes of 9 steps in 20 steps (next-step resets)


def test_render_gives_a_frame_per_env_copy() -> None:
    env = HmasdVectorEnv("stag_hunt", num_envs=2, seed=0, render_mode="rgb_array")
    env.reset()
    frames = env.render()
    assert len(frames) == 2 and all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)
    np.testing.assert_array_equal(frames[1], env.vec.render(1))
    assert HmasdVectorEnv("stag_hunt", num_envs=1).render() is None
    with pytest.raises(ValueError, match="render_mode"):
        HmasdVectorEnv("stag_hunt", render_mode="human")
    with pytest.raises(ValueError, match="autoreset_mode"):
        HmasdVectorEnv("stag_hunt", autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="autoreset"):
        HmasdVectorEnv(hmasd.envs.make("stag_hunt"), autoreset_mode="next_step")
