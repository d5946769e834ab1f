"""Who owns an env while a rollout engine collects from it: deleting the engine mid-batch, a second engine, direct
steps, resets, restores and pickling mid-batch, and a restarted batch mid-way. Each either works correctly (checked
against a twin that never saw the call) or is refused with a clear error and changes nothing."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest

import hmasd.envs
from hmasd.rollout import RolloutEngine

E, N = 64, 4


def zeros(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def decide_all(engine: RolloutEngine) -> None:
    ids = engine.decision_env_ids()
    d, n = len(ids), engine.env.num_agents
    if d:
        engine.decide(ids, zeros(d, dtype=np.int32), zeros(d, n, dtype=np.int32), zeros(d, n + 1), zeros(d, n + 1))


def actions(t: int, e: int = E) -> np.ndarray:
    return ((np.arange(e * N).reshape(e, N) + t) % 5).astype(np.int32)


def engine_with_steps(steps: int, horizon: int = 10, num_envs: int = E):
    env = hmasd.envs.make("stag_hunt", num_envs=num_envs, seed=1)
    env.reset()
    engine = RolloutEngine(env, horizon=horizon, skill_interval=3, num_team_skills=2, num_indiv_skills=2)
    for t in range(steps):
        decide_all(engine)
        engine.step(actions(t, num_envs), zeros(num_envs, N), zeros(num_envs, N))
    return env, engine


def twin_after(steps: int, num_envs: int = E):
    twin = hmasd.envs.make("stag_hunt", num_envs=num_envs, seed=1)
    twin.reset()
    for t in range(steps):
        twin.step(actions(t, num_envs))
    return twin


def test_deleting_an_engine_mid_batch_hands_the_env_its_current_observation():
    env, engine = engine_with_steps(3)
    del engine
    gc.collect()
    twin = twin_after(3)
    np.testing.assert_array_equal(env.obs, twin.obs)
    np.testing.assert_array_equal(env.state, twin.state)
    # the env is usable again, and a new engine starts from where it is
    env.step(actions(3)), twin.step(actions(3))
    np.testing.assert_array_equal(env.obs, twin.obs)
    engine = RolloutEngine(env, horizon=4, skill_interval=2, num_team_skills=2, num_indiv_skills=2)
    decide_all(engine)
    np.testing.assert_array_equal(engine.obs, twin.obs)


def test_an_engine_that_raised_mid_batch_can_be_replaced():
    env, engine = engine_with_steps(2)
    with pytest.raises(ValueError, match="out of range"):
        engine.step(actions(2) + 9, zeros(E, N), zeros(E, N))
    del engine
    gc.collect()
    np.testing.assert_array_equal(env.obs, twin_after(2).obs)


def test_one_engine_per_env():
    env, engine = engine_with_steps(0)
    with pytest.raises(RuntimeError, match="already stepped by a RolloutEngine"):
        RolloutEngine(env, horizon=4, skill_interval=2, num_team_skills=2, num_indiv_skills=2)
    del engine
    gc.collect()
    RolloutEngine(env, horizon=4, skill_interval=2, num_team_skills=2, num_indiv_skills=2)


@pytest.mark.parametrize("call", ["step", "reset", "restore"])
def test_direct_calls_on_the_env_mid_batch_are_refused_and_change_nothing(call):
    env, engine = engine_with_steps(2)
    blob = twin_after(0)._native.snapshot()
    before = engine.obs.copy(), env.state.copy()
    with pytest.raises(RuntimeError, match="RolloutEngine batch is in progress"):
        {"step": lambda: env.step(actions(9)), "reset": lambda: env.reset(),
         "restore": lambda: env._native.restore(blob)}[call]()
    np.testing.assert_array_equal(engine.obs, before[0])
    # the batch goes on as if the call had not been made
    for t in range(2, 10):
        decide_all(engine)
        engine.step(actions(t), zeros(E, N), zeros(E, N))
    np.testing.assert_array_equal(env.obs, twin_after(10).obs)
    # after the barrier the env is its own again
    env.step(actions(10))


def test_pickling_mid_batch_copies_the_current_env_and_leaves_the_batch_intact():
    env, engine = engine_with_steps(4)
    clone = pickle.loads(pickle.dumps(env))
    twin = twin_after(4)
    np.testing.assert_array_equal(clone.obs, twin.obs)
    np.testing.assert_array_equal(clone.obs, engine.obs)
    for t in range(4, 10):
        decide_all(engine)
        engine.step(actions(t), zeros(E, N), zeros(E, N))
        clone.step(actions(t))
    np.testing.assert_array_equal(env.obs, clone.obs)
    _, reference = engine_with_steps(10)
    for key, value in reference.low_level().items():
        np.testing.assert_array_equal(engine.low_level()[key], value, err_msg=key)


def test_restarting_a_batch_mid_way_is_refused():
    _, engine = engine_with_steps(4)
    with pytest.raises(RuntimeError, match="enable_collection\\(\\) in the middle of a batch"):
        engine.enable_collection()
    assert engine.steps_in_batch == 4 and engine.counters()["high_level_in_batch"] > 0


def test_decide_before_reset_is_refused():
    env = hmasd.envs.make("stag_hunt", num_envs=2)
    engine = RolloutEngine(env, horizon=4, skill_interval=2, num_team_skills=2, num_indiv_skills=2)
    with pytest.raises(RuntimeError, match="call reset\\(\\) on the env before decide"):
        decide_all(engine)


def test_a_rejected_decision_takes_no_batch_start():
    env = hmasd.envs.make("stag_hunt", num_envs=2)
    env.reset()
    engine = RolloutEngine(env, horizon=10, skill_interval=3, num_team_skills=2, num_indiv_skills=2)
    with pytest.raises(ValueError, match="team_skill\\[1\\] = 5 is out of range"):
        engine.decide(np.array([0, 1], np.int32), np.array([0, 5], np.int32), zeros(2, N, dtype=np.int32),
                      zeros(2, 5), zeros(2, 5))
    env.reset(seed=99)  # allowed: the rejected call opened no batch
    expected = env.obs.copy()
    decide_all(engine)
    engine.step(zeros(2, N, dtype=np.int32), zeros(2, N), zeros(2, N))
    np.testing.assert_array_equal(engine.low_level()["obs"][0], expected)


def test_the_policy_version_is_refused_rather_than_wrapped():
    env = hmasd.envs.make("stag_hunt", num_envs=2)
    env.reset()
    engine = RolloutEngine(env, horizon=1, skill_interval=1, num_team_skills=2, num_indiv_skills=2)
    counters = {"low_level_samples": 0, "high_level_transitions": 0, "force_closed_windows": 0}
    with pytest.raises(ValueError, match=r"policy_version must be in \[0, 2147483646\], got 2147483647"):
        engine.restore_counters({"policy_version": 2**31 - 1, **counters})
    engine.restore_counters({"policy_version": 2**31 - 2, **counters})
    for expected in (2**31 - 1, None):
        decide_all(engine)
        engine.step(zeros(2, N, dtype=np.int32), zeros(2, N), zeros(2, N))
        if expected is None:
            with pytest.raises(OverflowError, match="policy_version would pass"):
                engine.resume()
            assert engine.ready and engine.policy_version == 2**31 - 1
        else:
            engine.resume()
            assert engine.policy_version == expected
