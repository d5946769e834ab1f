"""The Stable-Baselines3 VecEnv adapter (hmasd.envs.sb3) held against the native buffers, through SB3's own wrappers,
helpers and algorithms (PPO, sb3-contrib's MaskablePPO), and the SuperSuit recipe over the PettingZoo adapter."""

from __future__ import annotations

import math
import subprocess
import sys
import time

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecCheckNan, VecEnv, VecMonitor

import hmasd.envs
from hmasd.envs.agent_rows import EPISODE_KEY
from hmasd.envs.sb3 import NO_NEWS, HmasdSB3VecEnv

pytestmark = pytest.mark.adapter

# Small episodes so that every test crosses episode ends: stag hunt truncates after 9 steps, alice_and_bob on a 4 x 4
# grid terminates within a few random steps (and truncates at 12), uav_coverage (continuous) truncates after 7.
SHORT = {"stag_hunt": {"max_steps": 9}, "alice_and_bob": {"height": 4, "width": 4, "max_steps": 12},
         "uav_coverage": {"num_uavs": 3, "num_users": 10, "max_steps": 7}}
INFO_KEYS = {"terminal_observation", "TimeLimit.truncated", "episode", EPISODE_KEY}


def row_actions(env: HmasdSB3VecEnv, rng: np.random.Generator) -> np.ndarray:
    """A random valid action per row, as SB3 sends them (int64 [rows] or float32 [rows, action_dim])."""
    if env.vec.continuous:
        return rng.uniform(-1, 1, (env.num_envs, env.vec.action_dim)).astype(np.float32)
    masks = env.action_masks()
    return (rng.random(masks.shape) * masks).argmax(axis=1).astype(np.int64)


def native_actions(env: HmasdSB3VecEnv, actions: np.ndarray) -> np.ndarray:
    e, n = env.num_env_copies, env.num_agents
    return actions.reshape((e, n, -1) if env.vec.continuous else (e, n))


def twin_of(env: HmasdSB3VecEnv, name: str) -> hmasd.envs.VecEnv:
    """A native env stepped beside the adapter with the same seed and actions: the expected values."""
    return hmasd.envs.make(name, num_envs=env.num_env_copies, seed=env.vec.seed, **SHORT[name])


def expected_record(twin: hmasd.envs.VecEnv, e: int, i: int) -> dict[str, Any]:
    record = {"return": float(twin.episode_return[e, i]), "length": int(twin.episode_length[e])}
    for field, values in twin.episode_info.items():
        record[field] = float(values[e, i] if values.ndim == 2 else values[e])
    return record


def test_import_hmasd_envs_does_not_import_sb3_or_torch() -> None:
    code = ("import sys, hmasd.envs; bad = [m for m in ('torch', 'stable_baselines3', 'hmasd.envs.sb3') "
            "if m in sys.modules]; sys.exit(', '.join(bad) or None)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("name", hmasd.envs.registered_envs())
def test_is_an_sb3_vec_env_of_agent_rows(name: str) -> None:
    env = HmasdSB3VecEnv(name, num_envs=3, seed=2, **SHORT[name])
    n = env.num_agents
    assert isinstance(env, VecEnv)
    assert env.num_envs == 3 * n and env.num_env_copies == 3
    assert env.observation_space == env.vec.observation_space and env.action_space == env.vec.action_space
    obs = env.reset()
    assert obs.shape == (3 * n, env.vec.obs_dim) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs.reshape(3, n, -1), env.vec.obs)
    kept = obs.copy()
    obs2, rewards, dones, infos = env.step(row_actions(env, np.random.default_rng(0)))
    # SB3 keeps the previous observations while stepping: nothing returned may alias the native buffers.
    np.testing.assert_array_equal(obs, kept)
    for array, native in ((obs2, env.vec.obs), (rewards, env.vec.rewards)):
        assert not np.shares_memory(array, native)
    assert rewards.shape == dones.shape == (3 * n,) and dones.dtype == np.bool_
    assert isinstance(infos, list) and len(infos) == 3 * n


@pytest.mark.parametrize("name", hmasd.envs.registered_envs())
def test_vec_check_nan_wrapping_it_runs(name: str) -> None:
    env = VecCheckNan(HmasdSB3VecEnv(name, num_envs=4, seed=1, **SHORT[name]), raise_exception=True)
    rng = np.random.default_rng(1)
    env.reset()
    ends = 0
    for _ in range(25):
        _, rewards, dones, _ = env.step(row_actions(env.venv, rng))
        ends += int(dones.sum())
        assert np.isfinite(rewards).all()
    assert ends > 0


def check_ended_rows(env: HmasdSB3VecEnv, twin: hmasd.envs.VecEnv, infos: list, dones: np.ndarray,
                     t_bounds: tuple[float, float]) -> tuple[int, int]:
    """Every row's info against the twin's buffers; returns (terminated, truncated) episode counts of the step.
    ``t_bounds``: the least and the most Monitor's ``t`` (seconds since the adapter was made) can be."""
    n = env.num_agents
    ended = twin.terminated | twin.truncated
    np.testing.assert_array_equal(dones, np.repeat(ended, n))
    for row, info in enumerate(infos):
        e, i = divmod(row, n)
        if not ended[e]:
            assert info is NO_NEWS
            continue
        assert type(info) is dict and set(info) == INFO_KEYS
        np.testing.assert_array_equal(info["terminal_observation"], twin.final_obs[e, i])
        assert not np.shares_memory(info["terminal_observation"], twin.final_obs)
        assert info["TimeLimit.truncated"] is bool(twin.truncated[e] and not twin.terminated[e])
        episode = info["episode"]
        assert set(episode) == {"r", "l", "t"}
        assert episode["r"] == round(float(twin.episode_return[e, i]), 6)  # Monitor's rounding, exactly
        assert episode["l"] == int(twin.episode_length[e]) and type(episode["l"]) is int
        assert t_bounds[0] - 1e-6 <= episode["t"] <= t_bounds[1] + 1e-6 and episode["t"] == round(episode["t"], 6)
        assert info[EPISODE_KEY] == expected_record(twin, e, i)
    return int(twin.terminated.sum()), int((twin.truncated & ~twin.terminated).sum())


@pytest.mark.parametrize("name", ["stag_hunt", "alice_and_bob", "uav_coverage"])
def test_terminal_observations_and_truncation_flags_match_the_native_env(name: str) -> None:
    made = time.time()
    env = HmasdSB3VecEnv(name, num_envs=6, seed=11, **SHORT[name])
    built = time.time()
    twin = twin_of(env, name)
    rng = np.random.default_rng(3)
    obs = env.reset()
    twin.reset()
    np.testing.assert_array_equal(obs, twin.obs.reshape(env.num_envs, -1))
    terminated = truncated = 0
    for _ in range(40):
        actions = row_actions(env, rng)
        before = time.time()
        obs, rewards, dones, infos = env.step(actions)
        after = time.time()
        twin.step(native_actions(env, actions))
        np.testing.assert_array_equal(obs, twin.obs.reshape(env.num_envs, -1))
        np.testing.assert_array_equal(rewards, twin.rewards.reshape(-1))
        counts = check_ended_rows(env, twin, infos, dones, (before - built, after - made))
        terminated, truncated = terminated + counts[0], truncated + counts[1]
    assert truncated > 0
    if name == "alice_and_bob":
        assert terminated > 0  # both kinds of ends crossed, so TimeLimit.truncated is seen True and False


def test_time_limits_terminate_clears_only_the_truncation_flag() -> None:
    # the same seed and actions through both conventions: every info is the same but TimeLimit.truncated, which
    # "terminate" never sets (so SB3 skips its value bootstrap, as on SuperSuit's path)
    truncating = HmasdSB3VecEnv("stag_hunt", num_envs=3, seed=5)
    terminating = HmasdSB3VecEnv("stag_hunt", num_envs=3, seed=5, time_limits="terminate")
    assert terminating.get_attr("time_limits") == ["terminate"] * terminating.num_envs
    rng = np.random.default_rng(0)
    truncating.reset()
    terminating.reset()
    cut_rows = 0
    for _ in range(40):
        actions = row_actions(truncating, rng)
        obs, rewards, dones, infos = truncating.step(actions)
        obs_t, rewards_t, dones_t, infos_t = terminating.step(actions)
        np.testing.assert_array_equal(obs_t, obs)
        np.testing.assert_array_equal(rewards_t, rewards)
        np.testing.assert_array_equal(dones_t, dones)
        for info, info_t in zip(infos, infos_t):
            if info is NO_NEWS:
                assert info_t is NO_NEWS
                continue
            cut_rows += info["TimeLimit.truncated"]
            assert info_t["TimeLimit.truncated"] is False
            np.testing.assert_array_equal(info_t["terminal_observation"], info["terminal_observation"])
            assert info_t[EPISODE_KEY] == info[EPISODE_KEY] and info_t["episode"]["r"] == info["episode"]["r"]
    assert cut_rows > 0  # stag_hunt ends by its time limit within 40 steps


def test_time_limits_must_be_a_known_convention() -> None:
    with pytest.raises(ValueError, match="time_limits must be 'truncate' or 'terminate'"):
        HmasdSB3VecEnv("stag_hunt", num_envs=1, time_limits="bootstrap")


def test_partial_ends_leave_other_rows_without_news() -> None:
    # alice_and_bob copies terminate at different steps: a step where only some copies end
    env = HmasdSB3VecEnv("alice_and_bob", num_envs=8, seed=5, **SHORT["alice_and_bob"])
    twin = twin_of(env, "alice_and_bob")
    rng = np.random.default_rng(0)
    env.reset()
    twin.reset()
    partial = 0
    for _ in range(60):
        actions = row_actions(env, rng)
        _, _, dones, infos = env.step(actions)
        twin.step(native_actions(env, actions))
        check_ended_rows(env, twin, infos, dones, (0.0, math.inf))
        partial += int(0 < dones.sum() < env.num_envs)
    assert partial > 0


def timeless(info: Any) -> dict[str, Any]:
    """An info without Monitor's wall-clock ``t``, the one value two identical runs do not share."""
    out = dict(info)
    if "episode" in out:
        out["episode"] = {key: value for key, value in out["episode"].items() if key != "t"}
    return out


def rollout(env: HmasdSB3VecEnv, steps: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    out: list[Any] = [env.reset()]
    for _ in range(steps):
        obs, rewards, dones, infos = env.step(row_actions(env, rng))
        out += [obs, rewards, dones, [timeless(info) for info in infos]]
    return out


def test_unseeded_copies_differ_and_seeded_ones_repeat_exactly() -> None:
    unseeded = [HmasdSB3VecEnv("stag_hunt", num_envs=4, **SHORT["stag_hunt"]) for _ in range(2)]
    assert unseeded[0].vec.seed != unseeded[1].vec.seed
    assert not data_equivalence(rollout(unseeded[0], 3), rollout(unseeded[1], 3), exact=True)
    seeded = [HmasdSB3VecEnv("stag_hunt", num_envs=4, seed=9, **SHORT["stag_hunt"]) for _ in range(2)]
    first, second = rollout(seeded[0], 20), rollout(seeded[1], 20)
    assert data_equivalence(first, second, exact=True)
    # the same stream from a native env made with the constructor's seed
    twin = hmasd.envs.make("stag_hunt", num_envs=4, seed=9, **SHORT["stag_hunt"])
    np.testing.assert_array_equal(first[0], twin.reset()[0].reshape(16, -1))


def test_seed_is_kept_for_the_next_reset_as_sb3_does() -> None:
    env = HmasdSB3VecEnv("stag_hunt", num_envs=4, seed=1, **SHORT["stag_hunt"])
    first = env.reset()
    assert env.seed(123) == [123] * env.num_envs
    assert env.vec.seed == 1  # nothing happens before the reset
    reseeded = env.reset()
    assert env.vec.seed == 123
    np.testing.assert_array_equal(reseeded, hmasd.envs.make("stag_hunt", num_envs=4, seed=123, **SHORT["stag_hunt"])
                                  .reset(123)[0].reshape(16, -1))
    assert not np.array_equal(first, reseeded)
    assert not np.array_equal(env.reset(), reseeded)  # the seed is used once: the next reset continues the stream
    env.seed(123)
    np.testing.assert_array_equal(env.reset(), reseeded)
    fresh = env.seed()
    assert len(set(fresh)) == 1 and fresh[0] != 123
    env.reset()
    assert env.vec.seed == fresh[0]
    env._seeds = list(range(env.num_envs))  # per-row seeds cannot reseed one shared batch
    with pytest.raises(ValueError, match="one seed"):
        env.reset()


def test_reset_options_are_refused_not_ignored() -> None:
    env = HmasdSB3VecEnv("stag_hunt", num_envs=2, seed=0)
    env.set_options(None)
    env.set_options({})
    env.reset()
    with pytest.raises(ValueError, match="reset options are not supported"):
        env.set_options({"max_steps": 5})
    with pytest.raises(ValueError, match="reset options are not supported"):
        env.set_options([{}] * (env.num_envs - 1) + [{"x": 1}])
    env._options[0] = {"x": 1}
    with pytest.raises(ValueError, match="reset options are not supported"):
        env.reset()


def test_get_attr_and_set_attr_over_rows() -> None:
    env = HmasdSB3VecEnv("stag_hunt", num_envs=3, seed=4)
    rows = env.num_envs
    assert env.get_attr("render_mode") == [None] * rows
    assert env.get_attr("seed", indices=[0, 5]) == [4, 4]
    assert env.get_attr("num_agents", indices=2) == [4]
    assert env.get_attr("name", indices=-1) == ["stag_hunt"]
    with pytest.raises(AttributeError):
        env.get_attr("no_such_attribute")
    with pytest.raises(AttributeError):
        env.get_attr("_native")  # the batch's private parts are not row attributes
    assert env.has_attr("action_masks") and env.has_attr("options") and not env.has_attr("nope")
    with pytest.raises(IndexError, match="out of range"):
        env.get_attr("seed", indices=[rows])
    env.set_attr("level", 3, indices=[1, 2])
    assert env.get_attr("level", indices=[2, 1]) == [3, 3]
    with pytest.raises(AttributeError, match="rows \\[0\\]"):
        env.get_attr("level", indices=[0])
    assert not env.has_attr("level")  # not every row has it
    env.set_attr("level", 7)
    assert env.has_attr("level")
    env.set_attr("level", 8, indices=4)
    assert env.get_attr("level") == [7] * 4 + [8] + [7] * (rows - 5)
    for shared in ("seed", "render_mode", "options", "action_masks"):
        with pytest.raises(AttributeError, match="cannot be"):
            env.set_attr(shared, 1)


def test_env_method_over_rows() -> None:
    env = HmasdSB3VecEnv("stag_hunt", num_envs=3, seed=4, **SHORT["stag_hunt"])
    rows = env.num_envs
    env.reset()
    native_masks = env.vec.action_mask.reshape(rows, -1)
    masks = env.env_method("action_masks")
    assert isinstance(masks, list) and len(masks) == rows
    np.testing.assert_array_equal(np.stack(masks), native_masks)
    assert not native_masks.all()  # agents at the border: a mask that is not all-True, so rows are told apart
    assert not any(np.shares_memory(m, env.vec.action_mask) for m in masks)
    chosen = env.env_method("action_masks", indices=[7, -1, 0])
    np.testing.assert_array_equal(np.stack(chosen), native_masks[[7, rows - 1, 0]])
    np.testing.assert_array_equal(env.get_attr("action_masks", indices=[7])[0](), native_masks[7])
    np.testing.assert_array_equal(env.action_masks(), native_masks)
    # a method of the shared batch runs once for the batch; each chosen row gets that result
    rng = np.random.default_rng(0)
    for _ in range(SHORT["stag_hunt"]["max_steps"]):
        env.step(row_actions(env, rng))
    stats = env.env_method("episode_stats", indices=[0, 5])
    assert stats[0] is stats[1] and stats[0]["episodes"] == 3
    assert env.env_method("episode_stats") == [{"episodes": 0}] * rows  # drained by the single call above
    assert env.env_method("episode_stats", indices=[]) == []
    # a callable set for some rows is called per row
    env.set_attr("greet", lambda who: f"hi {who}", indices=[1, 2])
    assert env.env_method("greet", "bob", indices=[2, 1]) == ["hi bob", "hi bob"]
    with pytest.raises(TypeError, match="not a method"):
        env.env_method("seed")
    with pytest.raises(AttributeError):
        env.env_method("no_such_method")


def test_env_is_wrapped_says_monitor_only() -> None:
    env = HmasdSB3VecEnv("stag_hunt", num_envs=2, seed=0)
    assert env.env_is_wrapped(Monitor) == [True] * env.num_envs
    assert env.env_is_wrapped(gymnasium.wrappers.TimeLimit) == [False] * env.num_envs
    assert env.env_is_wrapped(Monitor, indices=[3]) == [True]
    # a VecMonitor on top is redundant, and SB3 says so
    with pytest.warns(UserWarning, match="already wrapped with a `Monitor`"):
        VecMonitor(env)


def test_render_and_get_images() -> None:
    env = HmasdSB3VecEnv("stag_hunt", num_envs=3, seed=0, render_mode="rgb_array")
    env.reset()
    frames = env.get_images()
    n = env.num_agents
    assert len(frames) == env.num_envs
    for row, frame in enumerate(frames):
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert frame is frames[row - row % n]  # the agents of a copy share its frame
        np.testing.assert_array_equal(frame, env.vec.render(row // n))
    assert not np.array_equal(frames[0], frames[n])
    h, w, _ = frames[0].shape
    tiled = env.render()
    assert tiled.shape == (2 * h, 2 * w, 3)  # 3 copies, each once, in SB3's 2 x 2 tiling
    np.testing.assert_array_equal(tiled[:h, w:], frames[n])
    np.testing.assert_array_equal(env.env_method("render", indices=[n])[0], frames[n])
    plain = HmasdSB3VecEnv("stag_hunt", num_envs=2, seed=0)
    assert plain.get_images() == [None] * plain.num_envs
    with pytest.warns(UserWarning, match="no `render_mode`"):
        assert plain.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        HmasdSB3VecEnv("stag_hunt", render_mode="human")


def test_an_existing_native_env_is_used_when_it_fits() -> None:
    vec = hmasd.envs.make("stag_hunt", num_envs=2, seed=3)
    env = HmasdSB3VecEnv(vec)
    assert env.vec is vec and env.num_envs == 2 * vec.num_agents
    with pytest.raises(ValueError, match="same_step"):
        HmasdSB3VecEnv(hmasd.envs.make("stag_hunt", num_envs=2, autoreset="next_step"))
    with pytest.raises(TypeError, match="fixed"):
        HmasdSB3VecEnv(vec, max_steps=4)


def test_stepping_errors_name_the_problem() -> None:
    env = HmasdSB3VecEnv("stag_hunt", num_envs=2, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.num_envs, dtype=np.int64))
    env.reset()
    with pytest.raises(RuntimeError, match="step_async"):
        env.step_wait()
    with pytest.raises(ValueError, match="one row per agent"):
        env.step_async(np.zeros(env.num_envs - 1, dtype=np.int64))
    env.step_async(np.full(env.num_envs, 9, dtype=np.int64))
    with pytest.raises(ValueError):
        env.step_wait()  # out of range: the native check, before any env moves
    env.close()


# ---- learning ----------------------------------------------------------------------------------------------

LEARN_ENVS = 16  # env copies (64 rows of stag_hunt's 4 agents)
LEARN_STEPS = 300_000  # agent-steps, about 15 s per algorithm on one core of the 2-core CI machine
EVAL_ENVS = 64
EVAL_EPISODES = 2 * EVAL_ENVS * 4  # two episodes per row
PPO_KWARGS = {"n_steps": 64, "batch_size": 512, "n_epochs": 4, "learning_rate": 1e-3, "gamma": 0.95, "seed": 0,
              "device": "cpu", "verbose": 0}
MARGIN = 1.75  # the trained policy's mean return must be at least this many times random play's


def random_play_return(seed: int) -> float:
    """Mean per-agent episode return of uniformly random valid actions, measured like the policies' (Monitor's
    info["episode"]["r"] of two episodes per row)."""
    env = HmasdSB3VecEnv("stag_hunt", num_envs=EVAL_ENVS, seed=seed)
    rng = np.random.default_rng(seed)
    env.reset()
    returns: list[float] = []
    while len(returns) < EVAL_EPISODES:
        _, _, _, infos = env.step(row_actions(env, rng))
        returns += [info["episode"]["r"] for info in infos if "episode" in info]
    return float(np.mean(returns))


def stag_hunt_masks(obs: np.ndarray) -> np.ndarray:
    """stag_hunt's action mask from each row's own position (docs/envs.md): up, down, left, right, stay."""
    d = 7  # default grid_size 8 - 1
    r, c = np.rint(obs[:, 0] * d), np.rint(obs[:, 1] * d)
    return np.stack([r > 0, r < d, c > 0, c < d, np.ones_like(r, dtype=bool)], axis=1)


@pytest.mark.learning
@pytest.mark.trainer
def test_ppo_beats_random_play_on_stag_hunt(one_torch_thread: None) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    model = PPO("MlpPolicy", HmasdSB3VecEnv("stag_hunt", num_envs=LEARN_ENVS), **PPO_KWARGS)
    model.learn(LEARN_STEPS)
    assert model.ep_info_buffer and all(set(info) == {"r", "l", "t"} for info in model.ep_info_buffer)
    # evaluate_policy counts episodes from Monitor's info (env_is_wrapped(Monitor)); it would warn otherwise
    trained, _ = evaluate_policy(model, HmasdSB3VecEnv("stag_hunt", num_envs=EVAL_ENVS, seed=1),
                                 n_eval_episodes=EVAL_EPISODES, deterministic=False)
    random_play = random_play_return(seed=1)
    assert trained >= MARGIN * random_play, (trained, random_play)


@pytest.mark.learning
@pytest.mark.trainer
def test_maskable_ppo_with_masks_beats_random_play_on_stag_hunt(one_torch_thread: None) -> None:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.evaluation import evaluate_policy
    from stable_baselines3.common.callbacks import BaseCallback

    class CheckMasks(BaseCallback):
        """Each step's masks (from env_method) belong to the rows they were given for, and were obeyed."""

        def _on_step(self) -> bool:
            masks, actions = self.locals["action_masks"], self.locals["actions"]
            np.testing.assert_array_equal(masks, stag_hunt_masks(self.model._last_obs))
            assert masks[np.arange(len(actions)), actions].all()
            self.checked = getattr(self, "checked", 0) + 1
            return True

    check = CheckMasks()
    model = MaskablePPO("MlpPolicy", HmasdSB3VecEnv("stag_hunt", num_envs=LEARN_ENVS), **PPO_KWARGS)
    model.learn(LEARN_STEPS, callback=check)
    rollout_size = LEARN_ENVS * 4 * PPO_KWARGS["n_steps"]
    assert check.checked == math.ceil(LEARN_STEPS / rollout_size) * PPO_KWARGS["n_steps"]  # every step was checked
    trained, _ = evaluate_policy(model, HmasdSB3VecEnv("stag_hunt", num_envs=EVAL_ENVS, seed=1),
                                 n_eval_episodes=EVAL_EPISODES, deterministic=False)
    random_play = random_play_return(seed=1)
    assert trained >= MARGIN * random_play, (trained, random_play)


@pytest.mark.trainer
def test_ppo_runs_on_the_continuous_env(one_torch_thread: None) -> None:
    from stable_baselines3 import PPO

    env = HmasdSB3VecEnv("uav_coverage", num_envs=2, **SHORT["uav_coverage"])
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=24, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(2 * 8 * env.num_envs)
    assert model.ep_info_buffer and all(info["l"] == SHORT["uav_coverage"]["max_steps"]
                                        for info in model.ep_info_buffer)
    actions, _ = model.predict(env.reset())
    assert actions.shape == (env.num_envs, env.vec.action_dim) and actions.dtype == np.float32


# ---- the SuperSuit recipe over the PettingZoo adapter -----------------------------------------------------------


@pytest.mark.trainer
@pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")  # SuperSuit's wrapper
@pytest.mark.parametrize("monitored", [True, False], ids=["VecMonitor", "bare"])
def test_the_supersuit_recipe_trains_and_logs(monitored: bool, one_torch_thread: None) -> None:
    import supersuit as ss
    from stable_baselines3 import PPO

    from hmasd.envs.pettingzoo import stag_hunt_v0

    vec = ss.pettingzoo_env_to_vec_env_v1(stag_hunt_v0.parallel_env(max_cycles=9, seed=0))
    vec = ss.concat_vec_envs_v1(vec, 2, num_cpus=0, base_class="stable_baselines3")
    vec.reset()
    rng = np.random.default_rng(0)
    for _ in range(9):
        _, _, dones, infos = vec.step(rng.integers(0, 5, vec.num_envs))
    assert dones.all()
    # hmasd's record has its own key; "episode" is left to Monitor/VecMonitor (SB3 reads "r" from it)
    assert all(EPISODE_KEY in info and "episode" not in info for info in infos)
    env = VecMonitor(vec) if monitored else vec
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=64, n_epochs=1, device="cpu", verbose=0)
    model.learn(3 * 16 * vec.num_envs, log_interval=1)  # dump_logs after every rollout: the old crash
    if monitored:
        assert model.ep_info_buffer and all(set(info) == {"r", "l", "t"} for info in model.ep_info_buffer)
    else:
        assert not model.ep_info_buffer


@pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")  # SuperSuit's wrapper
def test_supersuit_copies_of_an_unseeded_env_differ() -> None:
    """SuperSuit copies the env before its first reset; each copy must draw its own stream then."""
    import supersuit as ss

    from hmasd.envs.pettingzoo import stag_hunt_v0

    vec = ss.concat_vec_envs_v1(ss.pettingzoo_env_to_vec_env_v1(stag_hunt_v0.parallel_env()), 3, num_cpus=0,
                                base_class="stable_baselines3")
    obs = vec.reset().reshape(3, -1)
    assert not np.array_equal(obs[0], obs[1]) and not np.array_equal(obs[0], obs[2])


@pytest.mark.parametrize("collector_on", [True, False])
def test_ending_steps_pause_the_cyclic_gc_only_while_building_infos(collector_on: bool) -> None:
    import gc

    from hmasd.envs.mappo import MappoVecEnv

    sb3_env = HmasdSB3VecEnv("stag_hunt", num_envs=8, seed=0, max_steps=3)
    runner_env = MappoVecEnv("stag_hunt", num_envs=8, seed=0, max_steps=3)
    sb3_env.reset()
    runner_env.reset()
    was_enabled = gc.isenabled()
    (gc.enable if collector_on else gc.disable)()
    try:
        for _ in range(3):  # every copy ends at the third step: 32 fresh info dicts
            _, _, dones, infos = sb3_env.step(np.zeros(sb3_env.num_envs, dtype=np.int64))
            *_, runner_dones, runner_infos, _ = runner_env.step(np.zeros((8, 4), dtype=np.int64))
            assert gc.isenabled() is collector_on
        assert dones.all() and all("episode" in info for info in infos)
        assert runner_dones.all() and all("terminal_obs" in info for per_env in runner_infos for info in per_env)
    finally:
        (gc.enable if was_enabled else gc.disable)()


# ---- TimeLimitBootstrap: SB3's time-limit bootstrap, batched -----------------------------------------------------
def collected(model: Any, callback: Any, steps: int) -> tuple[Any, int]:
    """One ``collect_rollouts`` of ``steps`` steps with ``callback``: the rollout buffer and how many times the policy's
    ``predict_values`` was called (SB3: once per truncated row plus once for the last observation)."""
    calls = 0
    predict_values = model.policy.predict_values

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return predict_values(*args, **kwargs)

    model.policy.predict_values = counted
    _, callback = model._setup_learn(total_timesteps=10**9, callback=callback)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=steps)
    return model.rollout_buffer, calls


def assert_same_rollouts(plain: Any, batched: Any) -> None:
    """The same rollout but for the bootstrapped rewards, which may differ by float rounding only."""
    for name in ("observations", "actions", "values", "log_probs", "episode_starts"):
        np.testing.assert_array_equal(getattr(batched, name), getattr(plain, name), err_msg=name)
    for name in ("rewards", "returns", "advantages"):
        np.testing.assert_allclose(getattr(batched, name), getattr(plain, name), rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("algo", ["PPO", "MaskablePPO"])
def test_time_limit_bootstrap_gives_sb3s_targets_with_one_value_call_per_ending_step(algo: str,
                                                                                    one_torch_thread: None) -> None:
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    from hmasd.envs.sb3 import TimeLimitBootstrap

    steps, copies = 20, 3  # stag_hunt truncates after 9 steps: two ending steps of 12 rows each
    cls = {"PPO": PPO, "MaskablePPO": MaskablePPO}[algo]

    def model(time_limits: str = "truncate") -> Any:
        env = HmasdSB3VecEnv("stag_hunt", num_envs=copies, seed=4, time_limits=time_limits, **SHORT["stag_hunt"])
        return cls("MlpPolicy", env, n_steps=steps, batch_size=steps * env.num_envs, device="cpu", seed=7)

    plain, plain_calls = collected(model(), None, steps)
    batched, batched_calls = collected(model(), TimeLimitBootstrap(), steps)
    ignored, _ = collected(model("terminate"), None, steps)  # no bootstrap at all
    assert plain_calls == 2 * copies * 4 + 1 and batched_calls == 2 + 1
    assert_same_rollouts(plain, batched)
    ends = np.flatnonzero(ignored.rewards != plain.rewards) // (copies * 4)
    assert sorted(set(ends.tolist())) == [8, 17]  # the bootstrap matters exactly at the two ending steps
    assert len(ends) == 2 * copies * 4


def test_time_limit_bootstrap_works_on_any_sb3_vec_env_and_leaves_terminations_alone(one_torch_thread: None) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from hmasd.envs.sb3 import BOOTSTRAPPED, TimeLimitBootstrap

    class Infos(TimeLimitBootstrap):
        """Counts the rows it bootstrapped and the terminated rows it saw."""
        bootstrapped = terminated = 0

        def _on_step(self) -> bool:
            dones, infos = self.locals["dones"], self.locals["infos"]
            cut = [bool(infos[i].get("TimeLimit.truncated")) for i in np.flatnonzero(dones)]
            assert super()._on_step()
            for row, was_cut in zip(np.flatnonzero(dones).tolist(), cut):
                assert infos[row].get(BOOTSTRAPPED, False) is was_cut
                assert not infos[row]["TimeLimit.truncated"]
                self.bootstrapped += was_cut
                self.terminated += not was_cut
            return True

    steps = 64

    def model() -> Any:  # CartPole falls (terminates) or reaches its limit of 12 steps (truncates)
        env = make_vec_env("CartPole-v1", n_envs=4, seed=3, env_kwargs={"max_episode_steps": 12})
        return PPO("MlpPolicy", env, n_steps=steps, batch_size=steps * 4, device="cpu", seed=7)

    plain, plain_calls = collected(model(), None, steps)
    counter = Infos()
    batched, batched_calls = collected(model(), counter, steps)
    assert counter.bootstrapped > 0 and counter.terminated > 0
    assert plain_calls == counter.bootstrapped + 1 and batched_calls < plain_calls
    assert_same_rollouts(plain, batched)


def test_time_limit_bootstrap_under_vec_normalize_matches_sb3(one_torch_thread: None) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from hmasd.envs.sb3 import TimeLimitBootstrap

    steps = 20

    def model() -> Any:  # VecNormalize normalises the terminal observations in the infos too: SB3 values those
        env = VecNormalize(HmasdSB3VecEnv("stag_hunt", num_envs=2, seed=5, **SHORT["stag_hunt"]))
        return PPO("MlpPolicy", env, n_steps=steps, batch_size=steps * env.num_envs, device="cpu", seed=7)

    plain, plain_calls = collected(model(), None, steps)
    batched, batched_calls = collected(model(), TimeLimitBootstrap(), steps)
    assert (plain_calls, batched_calls) == (2 * 2 * 4 + 1, 2 + 1)
    assert_same_rollouts(plain, batched)


@pytest.mark.parametrize("algo", ["DQN", "RecurrentPPO"])
def test_time_limit_bootstrap_refuses_algorithms_it_cannot_batch(algo: str) -> None:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import DQN

    from hmasd.envs.sb3 import TimeLimitBootstrap

    cls, policy = {"DQN": (DQN, "MlpPolicy"), "RecurrentPPO": (RecurrentPPO, "MlpLstmPolicy")}[algo]
    model = cls(policy, HmasdSB3VecEnv("stag_hunt", num_envs=1, seed=0), device="cpu")
    with pytest.raises(TypeError, match="TimeLimitBootstrap"):
        model.learn(10, callback=TimeLimitBootstrap())
