"""Bad input raises a clear exception before any state changes; the env then behaves as if never called."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import hmasd.envs
from conftest import random_actions, snapshot_buffers


def twins(name: str, num_envs: int = 4, **options):
    """Two identical envs; one will see bad calls, the other never does."""
    envs = [hmasd.envs.make(name, num_envs=num_envs, seed=3, **options) for _ in range(2)]
    for env in envs:
        env.reset()
    rng = np.random.default_rng(0)
    for _ in range(7):
        actions = random_actions(envs[0], rng)
        for env in envs:
            env.step(actions)
    return envs


def assert_same_afterwards(victim, witness, steps: int = 60) -> None:
    before_v, before_w = snapshot_buffers(victim), snapshot_buffers(witness)
    for key in before_v:
        np.testing.assert_array_equal(before_v[key], before_w[key], err_msg=f"{key} changed by a rejected call")
    assert victim._native.snapshot() == witness._native.snapshot()
    rng = np.random.default_rng(1)
    for _ in range(steps):
        actions = random_actions(witness, rng)
        victim.step(actions)
        witness.step(actions)
        np.testing.assert_array_equal(victim.obs, witness.obs)
        np.testing.assert_array_equal(victim.rewards, witness.rewards)


def bad_continuous_action_cases(env):
    e, n, d = env.num_envs, env.num_agents, env.action_dim
    good = np.zeros((e, n, d), dtype=np.float32)
    nan, inf = good.copy(), good.astype(np.float64)
    nan[1, 2, 0] = math.nan
    inf[3, 0, 2] = 1e39  # finite in float64, inf in float32
    return [
        (good[:-1], ValueError, "shape"),
        (good[..., 0], ValueError, r"must have shape \(num_envs, num_agents, action_dim\)"),
        (good[..., None], ValueError, "shape"),
        (good.astype(bool), TypeError, "actions must be a real-valued"),
        (good.astype(np.complex64), TypeError, "actions must be a real-valued"),
        (nan, ValueError, r"actions\[1, 2, 0\] = nan is not finite"),
        (inf, ValueError, r"actions\[3, 0, 2\] = 1e\+39 is not finite in float32"),
        ("left", TypeError, "got dtype <U4"),
        (None, TypeError, "actions must be an array, got None"),
    ]


def bad_action_cases(env):
    if env.continuous:
        return bad_continuous_action_cases(env)
    e, n = env.num_envs, env.num_agents
    good = np.zeros((e, n), dtype=np.int32)
    out_of_range = good.copy()
    out_of_range[2, n - 1] = env.num_actions
    negative = good.copy()
    negative[1, 0] = -1
    return [
        (good[:-1], ValueError, "shape"),
        (good.reshape(-1), ValueError, "shape"),
        (good[..., None], ValueError, "shape"),
        (good.astype(np.float32), TypeError, "an integer array"),
        (np.full((e, n), math.nan), TypeError, "an integer array"),
        (good.astype(bool), TypeError, "an integer array"),
        (out_of_range, ValueError, rf"actions\[2, {n - 1}\] = {env.num_actions} is out of range"),
        (negative, ValueError, r"actions\[1, 0\] = -1 is out of range"),
        (negative.astype(np.int64), ValueError, r"actions\[1, 0\] = -1 is out of range"),
        # an int64 that would wrap to a valid int32 (2**32 + 1 -> 1) is out of range, not silently accepted
        (good.astype(np.int64) + 2**32 + 1, ValueError, r"actions\[0, 0\] = 4294967297 is out of range"),
        ("left", TypeError, "integer array, got dtype <U4"),
        ([[0.5] * n] * e, TypeError, "got dtype float64"),
    ]


def test_bad_actions_raise_and_leave_state_unchanged(env_name):
    victim, witness = twins(env_name)
    for actions, error, message in bad_action_cases(victim):
        with pytest.raises(error, match=message):
            victim.step(actions)
    assert_same_afterwards(victim, witness)


def test_wide_and_non_contiguous_actions_are_accepted(env_name):
    a, b = twins(env_name)
    rng = np.random.default_rng(2)
    for _ in range(20):
        actions = random_actions(a, rng)
        a.step(actions)
        # int64 for discrete envs; float64 (exact here: float32 values) for continuous ones
        wide = np.asfortranarray(actions.astype(np.float64 if a.continuous else np.int64))
        b.step(wide)
        np.testing.assert_array_equal(a.obs, b.obs)
    assert a._native.snapshot() == b._native.snapshot()


@pytest.mark.parametrize("call, error, message", [
    (lambda: hmasd.envs.make("no_such_env"), ValueError, "unknown env 'no_such_env'; registered envs: alice_and_bob"),
    (lambda: hmasd.envs.make("stag_hunt", num_envs=0), ValueError, r"num_envs must be in \[1, 2147483647\], got 0"),
    (lambda: hmasd.envs.make("stag_hunt", num_envs=-3), ValueError, r"num_envs must be in \[1, 2147483647\], got -3"),
    (lambda: hmasd.envs.make("stag_hunt", num_envs=2.0), TypeError, "num_envs must be an int"),
    (lambda: hmasd.envs.make("stag_hunt", seed=-1), ValueError, "seed must be in"),
    (lambda: hmasd.envs.make("stag_hunt", num_threads=-1), ValueError, "num_threads"),
    (lambda: hmasd.envs.make("stag_hunt", autoreset="sometimes"), ValueError, "autoreset must be"),
    (lambda: hmasd.envs.make("stag_hunt", device="tpu"), ValueError, "device must be 'cpu', 'cuda' or 'cuda:N'"),
    (lambda: hmasd.envs.make("stag_hunt", device="cuda:x"), ValueError, "device must be"),
    (lambda: hmasd.envs.make("stag_hunt", device=3), TypeError, "device must be"),
    (lambda: hmasd.envs.make("stag_hunt", speed=3), TypeError, "unknown option 'speed' for env 'stag_hunt'"),
    (lambda: hmasd.envs.make("stag_hunt", num_agents=0), ValueError, "num_agents must be in"),
    (lambda: hmasd.envs.make("stag_hunt", num_agents=2.5), TypeError, "must be an int"),
    (lambda: hmasd.envs.make("stag_hunt", stag_move_prob=math.nan), ValueError, "stag_move_prob must be in"),
    (lambda: hmasd.envs.make("stag_hunt", stag_reward=math.inf), ValueError, r"stag_reward must be in \[-1e\+06, 1e\+06\], got inf"),
    (lambda: hmasd.envs.make("stag_hunt", reward_mode="shared"), ValueError, "reward_mode must be"),
    (lambda: hmasd.envs.make("stag_hunt", tie_break="oldest"), ValueError, "tie_break must be"),
    (lambda: hmasd.envs.make("stag_hunt", grid_size=2, num_agents=4), ValueError, "cannot hold"),
    (lambda: hmasd.envs.make("alice_and_bob", height=3), ValueError, "height and width must be in"),
    (lambda: hmasd.envs.make("alice_and_bob", max_steps=0), ValueError, "max_steps must be >= 1"),
    (lambda: hmasd.envs.make("alice_and_bob", agent_id_in_obs=True), TypeError, "unknown option"),
])
def test_bad_construction_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_step_before_reset_and_after_disabled_autoreset_episode_end_raise():
    env = hmasd.envs.make("alice_and_bob", num_envs=2, max_steps=3, autoreset="disabled")
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((2, 2), np.int32))
    env.reset()
    for _ in range(3):
        env.step(np.full((2, 2), 4, np.int32))
    assert env.truncated.all()
    frozen = env._native.snapshot()
    with pytest.raises(RuntimeError, match="env 0 has finished its episode"):
        env.step(np.zeros((2, 2), np.int32))
    assert env._native.snapshot() == frozen
    env.reset()
    env.step(np.zeros((2, 2), np.int32))


def test_bad_reset_seed_and_render_index_raise(env_name):
    env = hmasd.envs.make(env_name, num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match="seed must be"):
        env.reset(seed=-5)
    with pytest.raises(IndexError, match=r"env_index must be in \[0, 2\)"):
        env.render(2)


def test_restore_rejects_a_snapshot_of_another_shape():
    small = hmasd.envs.make("stag_hunt", num_envs=2)
    large = hmasd.envs.make("stag_hunt", num_envs=3)
    with pytest.raises(ValueError, match="snapshot has num_envs=2, this env 3"):
        large._native.restore(small._native.snapshot())
    with pytest.raises(ValueError, match="not an hmasd env snapshot"):
        pickle.loads(pickle.dumps(large))._native.restore(b"garbage")
