"""Misuse found by fuzzing (issue 14, findings 4, 6, 7, 8 and 10): byte order, alignment, float32 overflow, bounds,
errors that name their argument, and two threads on one env. Each test failed on the code before its fix."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hmasd.envs
from hmasd import _native
from hmasd.rollout import RolloutEngine


def stepped(name: str, num_envs: int = 2, **options) -> hmasd.envs.VecEnv:
    env = hmasd.envs.make(name, num_envs=num_envs, seed=5, **options)
    env.reset()
    return env


def unaligned(values: np.ndarray) -> np.ndarray:
    """The same values, C-contiguous but one byte off alignment."""
    raw = np.zeros(values.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, values.dtype, values.size, offset=1).reshape(values.shape)
    out[...] = values
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def engine_for(env: hmasd.envs.VecEnv) -> RolloutEngine:
    return RolloutEngine(env, horizon=4, skill_interval=2, num_team_skills=2, num_indiv_skills=2)


# ---- finding 4: byte order and alignment are converted, never read raw ------------------------------------------

def forms(values: np.ndarray) -> dict[str, np.ndarray]:
    swapped = values.astype(values.dtype.newbyteorder(">"))
    return {"big-endian": swapped, "unaligned": unaligned(values),
            "unaligned big-endian": unaligned(swapped), "strided": np.repeat(values, 2, axis=-1)[..., ::2]}


@pytest.mark.parametrize("form", ["big-endian", "unaligned", "unaligned big-endian", "strided"])
def test_continuous_actions_in_any_byte_order_or_alignment_act_like_native_ones(form):
    native = stepped("uav_coverage", 1)
    other = stepped("uav_coverage", 1)
    actions = np.full((1, 5, 3), 0.5, np.float32)
    actions[0, 1] = (-1.0, 0.25, 1.0)
    native.step(actions)
    other.step(forms(actions)[form])
    np.testing.assert_array_equal(other.details(0)["uav_pos"], native.details(0)["uav_pos"])
    assert other._native.snapshot() == native._native.snapshot()


@pytest.mark.parametrize("form", ["big-endian", "unaligned", "unaligned big-endian", "strided"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_discrete_actions_in_any_byte_order_or_alignment_act_like_native_ones(form, dtype):
    native, other = stepped("stag_hunt"), stepped("stag_hunt")
    actions = np.array([[1, 2, 3, 4], [0, 1, 2, 3]], dtype)
    native.step(actions)
    other.step(forms(actions)[form])  # big-endian values used to be read as 16777216 and refused
    assert other._native.snapshot() == native._native.snapshot()


@pytest.mark.parametrize("form", ["big-endian", "unaligned", "unaligned big-endian"])
def test_engine_records_log_probs_of_any_byte_order_as_their_values(form):
    env = stepped("stag_hunt")
    engine = engine_for(env)
    ids = engine.decision_env_ids()
    logp = np.array([[-0.5, -1.0, -1.5, -2.0, -2.5]] * 2, np.float32)
    engine.decide(forms(ids)[form], forms(np.zeros(2, np.int32))[form], forms(np.ones((2, 4), np.int32))[form],
                  forms(logp)[form], np.zeros((2, 5), np.float32))
    np.testing.assert_array_equal(engine.windows["logp"], logp)  # was 2.7e-43 for a big-endian -0.5
    np.testing.assert_array_equal(engine.windows["indiv_skill"], np.ones((2, 4)))
    low_logp = np.full((2, 4), -0.75, np.float32)
    engine.step(np.ones((2, 4), np.int32), forms(low_logp)[form], forms(np.zeros((2, 4), np.float32))[form])
    np.testing.assert_array_equal(engine.low_level()["logp"][0], low_logp)


def test_integer_actions_of_other_widths_are_taken_at_their_values_and_wide_ones_are_range_checked():
    reference = stepped("stag_hunt")
    reference.step(np.array([[1, 2, 3, 4]] * 2, np.int32))
    for dtype in (np.int8, np.int16, np.uint8, np.uint16, np.uint32, np.uint64):
        env = stepped("stag_hunt")
        env.step(np.array([[1, 2, 3, 4]] * 2, dtype))
        assert env._native.snapshot() == reference._native.snapshot(), dtype
    env = stepped("stag_hunt")
    before = env._native.snapshot()
    with pytest.raises(ValueError, match=r"actions holds 18446744073709551615 at flat index 0, outside int64"):
        env.step(np.array([[2**64 - 1, 0, 0, 0]] * 2, np.uint64))
    assert env._native.snapshot() == before


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((2, 4), bool), TypeError, "actions must be an integer array, got dtype bool"),
    (np.zeros((2, 4), np.float16), TypeError, "actions must be an integer array, got dtype float16"),
    (np.zeros((2, 4), np.complex64), TypeError, "got dtype complex64"),
    (None, TypeError, "actions must be an array, got None"),
    ([[0, 1, 2, 3], [0, 1]], ValueError, "actions must be an array-like of numbers, got a list"),
    ([[0, 1, 2, 3], [0, 1, 2, 3]], None, None),
])
def test_actions_that_are_not_integer_arrays_are_refused_by_name_and_lists_are_read(bad, error, message):
    env, twin = stepped("stag_hunt"), stepped("stag_hunt")
    if error is None:
        env.step(bad)
        twin.step(np.array(bad, np.int32))
    else:
        with pytest.raises(error, match=message):
            env.step(bad)
    assert env._native.snapshot() == twin._native.snapshot()


def test_engine_arguments_name_themselves_when_ragged_or_none():
    env = stepped("stag_hunt")
    engine = engine_for(env)
    ok = dict(env_ids=engine.decision_env_ids(), team_skill=np.zeros(2, np.int32),
              indiv_skill=np.zeros((2, 4), np.int32), logp=np.zeros((2, 5), np.float32),
              values=np.zeros((2, 5), np.float32))
    for name in ok:
        for bad, error, message in [(None, TypeError, f"{name} must be an array, got None"),
                                    ([[0], [0, 1]], ValueError, f"{name} must be an array-like")]:
            with pytest.raises(error, match=message):
                engine.decide(**{**ok, name: bad})
    with pytest.raises(TypeError, match="logp must be a float32 array, got dtype float64"):
        engine.decide(**{**ok, "logp": np.zeros((2, 5))})
    engine.decide(**{**ok, "logp": [[0.0] * 5] * 2})  # a list of Python floats is read as float32
    assert not engine.needs_decision.any()


# ---- finding 6: float options and positions stay inside float32 and their physical ranges ------------------------

@pytest.mark.parametrize("name, option, value, message", [
    ("uav_coverage", "area_size", 1e300, r"area_size must be in \[1, 1e\+06\]"),
    ("uav_coverage", "area_size", 1e-300, r"area_size must be in \[1, 1e\+06\]"),
    ("uav_coverage", "max_height", 1e300, r"max_height must be in \[0, 10000\]"),
    ("uav_coverage", "dt", 1e38, r"dt must be in"),
    ("uav_coverage", "max_speed", 1e20, r"max_speed must be in \[0, 10000\]"),
    ("uav_coverage", "noise_dbm", -1e6, r"noise_dbm must be in \[-150, 150\]"),
    ("stag_hunt", "hare_reward", 3e38, r"hare_reward must be in \[-1e\+06, 1e\+06\]"),
    ("stag_hunt", "stag_reward", -1e39, r"stag_reward must be in"),
])
def test_float_options_beyond_their_physical_range_are_refused(name, option, value, message):
    with pytest.raises(ValueError, match=message):
        hmasd.envs.make(name, **{option: value})


def extreme_options(name: str) -> st.SearchStrategy[dict]:
    """Each float option of the table at its min, max, or default: the corners where float32 would break first."""
    choices = {}
    for option, spec in hmasd.envs.option_table(name).items():
        if spec.type not in ("float", "double"):
            continue
        assert spec.min is not None and spec.max is not None, f"{name}.{option} has no physical range"
        low = math.nextafter(spec.min, math.inf) if spec.min_exclusive and spec.min == 0 else spec.min
        if spec.min_exclusive and spec.min != 0:
            low = spec.min * (1 + 1e-9)
        choices[option] = st.sampled_from([low, spec.max, spec.default])
    return st.fixed_dictionaries(choices)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(data=st.data())
def test_every_option_setting_inside_the_bounds_gives_finite_observations_and_rewards(data):
    name = data.draw(st.sampled_from(["uav_coverage", "stag_hunt"]))
    options = data.draw(extreme_options(name))
    if name == "uav_coverage" and options["min_height"] >= options["max_height"]:
        options["min_height"], options["max_height"] = 0.0, 10000.0
    if name == "stag_hunt":
        options["reward_mode"] = data.draw(st.sampled_from(["individual", "team"]))
    env = hmasd.envs.make(name, num_envs=2, seed=1, **options)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(12):
        if env.continuous:
            env.step(rng.uniform(-1, 1, (2, env.num_agents, env.action_dim)).astype(np.float32))
        else:
            env.step(rng.integers(0, env.num_actions, (2, env.num_agents)))
        for buffer in (env.obs, env.state, env.rewards, env.episode_return):
            assert np.isfinite(buffer).all(), options


@pytest.mark.parametrize("column, value, message", [
    (0, 1e39, r"uav_pos\[0, 0\] = 1e\+39 is outside the area \[0, 1000\]"),
    (1, -1.0, r"uav_pos\[0, 1\] = -1 is outside the area"),
    (2, 10.0, r"uav_pos\[0, 2\] = 10 is outside the height range \[50, 150\]"),
    (0, math.nan, r"uav_pos\[0, 0\] = nan is outside the area"),
])
def test_set_positions_refuses_places_no_uav_can_be_and_changes_nothing(column, value, message):
    env = stepped("uav_coverage", 1)
    before = env._native.snapshot()
    positions = env.details(0)["uav_pos"].astype(np.float64)
    positions[0, column] = value
    with pytest.raises(ValueError, match=message):
        env.set_positions(0, positions)
    users = env.details(0)["user_pos"].astype(np.float64)
    users[3, 1] = 2000.0
    with pytest.raises(ValueError, match=r"user_pos\[3, 1\] = 2000 is outside the area"):
        env.set_positions(0, env.details(0)["uav_pos"], users)
    assert env._native.snapshot() == before
    env.set_positions(0, env.details(0)["uav_pos"].tolist())  # a list, read as float64
    assert env._native.snapshot() == before


# ---- findings 7 and 8: bounds, and errors that name their argument ----------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda: hmasd.envs.make("stag_hunt", num_envs=2**31), ValueError, r"num_envs must be in \[1, 2147483647\]"),
    (lambda: hmasd.envs.make("stag_hunt", num_envs=True), TypeError, "num_envs must be an int, got True"),
    (lambda: hmasd.envs.make("stag_hunt", num_envs="4"), TypeError, "num_envs must be an int, got '4'"),
    (lambda: hmasd.envs.make("stag_hunt", seed=2**64), ValueError, "seed must be in"),
    (lambda: hmasd.envs.make("stag_hunt", seed=1.0), TypeError, "seed must be an int"),
    (lambda: hmasd.envs.make("stag_hunt", autoreset=None), TypeError, "autoreset must be one of"),
    (lambda: hmasd.envs.make("stag_hunt", num_threads=10**6), ValueError, "num_threads must be in"),
    (lambda: hmasd.envs.make("stag_hunt", max_steps=2**31), ValueError, "max_steps must fit in int32"),
    (lambda: hmasd.envs.make("uav_coverage", num_envs=2**31 - 1), MemoryError,
     r"uav_coverage with num_envs=2147483647 needs \d+\.\d GiB of buffers; this machine has"),
])
def test_bad_construction_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(clock=None), TypeError, "clock must be one of 'episode', 'global', got None"),
    (dict(ring_capacity=1.5), TypeError, "ring_capacity must be an int, got 1.5"),
    (dict(ring_capacity=-5), ValueError, r"ring_capacity must be in \[1, 1073741824\] \(None for the default"),
    (dict(ring_capacity=0), ValueError, "ring_capacity must be in"),
    (dict(horizon=2**31), ValueError, r"horizon must be in \[1, 2147483647\]"),
    (dict(horizon=10**9), ValueError, r"ring_capacity must be <= 2\*\*30 slots, got 2000000000 \(num_envs \* horizon\)"),
    (dict(skill_interval=None), TypeError, "skill_interval must be an int, got None"),
    (dict(horizon=2**29), MemoryError, r"a rollout engine of horizon 536870912 over 2 envs needs \d+\.\d GiB"),
])
def test_bad_engine_arguments_name_themselves(kwargs, error, message):
    env = stepped("stag_hunt")
    args = {**dict(horizon=4, skill_interval=2, num_team_skills=2, num_indiv_skills=2), **kwargs}
    with pytest.raises(error, match=message):
        RolloutEngine(env, **args)
    engine_for(env)  # nothing was left attached to the env


def test_numpy_integers_are_ints_everywhere_and_bools_are_not_indices():
    env = hmasd.envs.make("uav_coverage", num_envs=np.int64(2), seed=np.uint32(3), num_threads=np.int8(1))
    assert (env.num_envs, env.seed) == (2, 3)
    env.reset(seed=np.int64(4))
    assert env.seed == 4
    assert env.details(np.int32(1))["t"] == 0
    for call in (lambda: env.details(True), lambda: env.render(False),
                 lambda: env.set_positions(True, env.details(0)["uav_pos"])):
        with pytest.raises(TypeError, match="env_index must be an int, got"):
            call()
    with pytest.raises(IndexError, match=r"env_index must be in \[0, 2\), got 2"):
        env.details(2)


def test_num_threads_zero_means_the_cpus_this_process_may_use():
    import os

    env = hmasd.envs.make("stag_hunt", num_threads=0)
    assert env.num_threads == len(os.sched_getaffinity(0)) == _native.usable_cpus()
    assert _native.max_threads() == max(8, _native.usable_cpus())


# ---- finding 10: two threads on one env ----------------------------------------------------------------------

def test_a_second_thread_is_refused_while_the_first_steps_and_no_step_is_torn():
    num_envs, actions = 4096, np.full((4096, 4), 4, np.int32)
    env, twin = stepped("stag_hunt", num_envs), stepped("stag_hunt", num_envs)
    done, refusals = [0, 0], []

    def worker(k: int) -> None:
        for _ in range(150):
            try:
                env.step(actions)
                done[k] += 1
            except RuntimeError as error:
                refusals.append(str(error))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refusals, "the two threads never overlapped: the test proved nothing"
    assert all("in use by another thread" in message for message in refusals)
    for _ in range(sum(done)):
        twin.step(actions)
    assert env._native.snapshot() == twin._native.snapshot()  # every accepted step whole, in every env copy
    assert np.unique(env.state[:, -1]).size == 1  # one clock over all env copies


def test_snapshot_and_reset_are_refused_while_another_thread_steps():
    env = stepped("stag_hunt", 4096)
    stop, seen = threading.Event(), set()

    def stepper() -> None:
        while not stop.is_set():
            try:
                env.step(np.zeros((4096, 4), np.int32))
            except RuntimeError:
                pass

    thread = threading.Thread(target=stepper)
    thread.start()
    try:
        for _ in range(5000):
            for what, call in (("snapshot()", env._native.snapshot), ("reset()", env.reset),
                               ("drain_episode_log()", env.episode_stats)):
                try:
                    call()
                except RuntimeError as error:
                    assert f"{what}: this env is in use by another thread" in str(error)
                    seen.add(what)
            if len(seen) == 3:
                break
    finally:
        stop.set()
        thread.join()
    assert seen == {"snapshot()", "reset()", "drain_episode_log()"}


# ---- found by the fuzz suite (tests/test_fuzz.py) -------------------------------------------------------------

def test_a_never_reset_env_pickles_and_a_forged_never_reset_snapshot_is_refused():
    import pickle

    from test_snapshot import reseal  # recomputes the checksum, as a forger would

    for name in hmasd.envs.registered_envs():
        fresh = hmasd.envs.make(name, num_envs=2, seed=5)
        clone = pickle.loads(pickle.dumps(fresh))  # alice_and_bob used to refuse it: zeros are no grid position
        assert clone._native.snapshot() == fresh._native.snapshot() and not clone._native.has_reset
        played = stepped(name)  # seed 5 too: the blobs first differ at the has_reset flag
        blob, zeros = bytearray(played._native.snapshot()), fresh._native.snapshot()
        flag = next(k for k in range(len(zeros)) if blob[k] != zeros[k])
        assert (blob[flag], zeros[flag]) == (1, 0)
        blob[flag] = 0
        target = hmasd.envs.make(name, num_envs=2, seed=5)
        with pytest.raises(ValueError, match="the snapshot is of an env never reset, yet holds state"):
            target._native.restore(reseal(blob))
        assert target._native.snapshot() == zeros


def test_disable_collection_after_decisions_frees_the_env_for_plain_steps():
    env, twin = stepped("stag_hunt"), stepped("stag_hunt")
    engine = engine_for(env)
    ids = engine.decision_env_ids()
    engine.decide(ids, np.zeros(2, np.int32), np.zeros((2, 4), np.int32), np.zeros((2, 5), np.float32),
                  np.zeros((2, 5), np.float32))
    engine.disable_collection()  # used to leave the batch open: every later step refused
    for _ in range(3):
        engine.step(np.ones((2, 4), np.int32))
        env.step(np.ones((2, 4), np.int32))
        twin.step(np.ones((2, 4), np.int32))
        twin.step(np.ones((2, 4), np.int32))
    assert env._native.snapshot() == twin._native.snapshot()
    engine.enable_collection()
    assert engine.needs_decision.all() and engine.steps_in_batch == 0


def test_restore_takes_bytes_likes_and_names_what_it_needs():
    env = stepped("stag_hunt")
    blob = env._native.snapshot()
    for form in (bytearray(blob), memoryview(blob)):
        other = hmasd.envs.make("stag_hunt", num_envs=2)
        other._native.restore(form)
        assert other._native.snapshot() == blob
    for bad in (None, 3, "snapshot", [1, 2]):
        with pytest.raises(TypeError, match=r"restore\(\) needs the bytes of a snapshot\(\), got"):
            env._native.restore(bad)
    engine = engine_for(env)
    for bad in (None, 3, [1]):
        with pytest.raises(TypeError, match=r"restore_counters\(\) needs the dict of counters\(\)"):
            engine.restore_counters(bad)
    with pytest.raises(KeyError, match="the counters lack force_closed_windows"):
        engine.restore_counters({"policy_version": 0, "low_level_samples": 0, "high_level_transitions": 0})
    with pytest.raises(ValueError, match=r"env_ids\[1\] = 1 appears twice in env_ids"):
        engine.decide(np.array([1, 1]), np.zeros(2, np.int32), np.zeros((2, 4), np.int32),
                      np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32))


@pytest.mark.parametrize("name, mine, theirs, message", [
    ("alice_and_bob", {"height": 20}, {"height": 10}, "made with height=20, this env has height=10;"),
    ("stag_hunt", {"reward_mode": "team"}, {}, "made with reward_mode='team', this env has reward_mode='individual';"),
    ("stag_hunt", {"agent_id_in_obs": True}, {}, "made with agent_id_in_obs=True, this env has agent_id_in_obs=False;"),
    ("stag_hunt", {"hare_reward": 2.5}, {}, "made with hare_reward=2.5, this env has hare_reward=1;"),
])
def test_a_snapshot_of_other_options_names_the_values_as_they_are_written(name, mine, theirs, message):
    source = hmasd.envs.make(name, num_envs=2, **mine)
    target = hmasd.envs.make(name, num_envs=2, **theirs)
    with pytest.raises(ValueError, match=message):  # was "height=20.000000" and a choice's code number
        target._native.restore(source._native.snapshot())
