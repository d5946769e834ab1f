"""The rollout engine's guarantees, tested as properties over random E, N, k, T, seeds and episode ends."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hmasd.envs
from conftest import random_actions
from hmasd.rollout import RolloutEngine

N_TEAM, N_INDIV = 3, 4


def make_engine(name="stag_hunt", num_envs=6, horizon=40, k=5, clock="episode", seed=0, threads=1,
                ring_capacity=None, **options):
    env = hmasd.envs.make(name, num_envs=num_envs, seed=seed, num_threads=threads, **options)
    env.reset()
    return RolloutEngine(env, horizon, k, N_TEAM, N_INDIV, clock=clock, ring_capacity=ring_capacity)


def decide_all(engine: RolloutEngine, rng: np.random.Generator, log: list | None = None) -> None:
    ids = engine.decision_env_ids()
    if len(ids) == 0:
        return
    d, n = len(ids), engine.env.num_agents
    team = rng.integers(0, N_TEAM, d).astype(np.int32)
    indiv = rng.integers(0, N_INDIV, (d, n)).astype(np.int32)
    logp = rng.normal(size=(d, n + 1)).astype(np.float32)
    values = rng.normal(size=(d, n + 1)).astype(np.float32)
    if log is not None:
        for j, e in enumerate(ids):
            log.append((int(e), engine.steps_in_batch, engine.state[e].copy(), engine.obs[e].copy(),
                        int(team[j]), indiv[j].copy()))
    engine.decide(ids, team, indiv, logp, values)


def collect(engine: RolloutEngine, rng: np.random.Generator, log: list | None = None) -> None:
    e, n = engine.env.num_envs, engine.env.num_agents
    while not engine.ready:
        decide_all(engine, rng, log)
        actions = random_actions(engine.env, rng, mask=engine.action_mask)
        engine.step(actions, rng.normal(size=(e, n)).astype(np.float32),
                    rng.normal(size=(e, n)).astype(np.float32))


def check_batch(engine: RolloutEngine) -> dict:
    low, high = engine.low_level(), engine.high_level()
    t_total, e_total = low["rewards"].shape[:2]
    k, clock = engine._native.skill_interval, engine._native.clock
    assert t_total == engine._native.horizon
    for e in range(e_total):
        mine = np.flatnonzero(high["env"] == e)
        starts, lengths = high["start"][mine], high["length"][mine]
        # windows tile the batch: contiguous, no gap, no overlap, lengths sum to T
        assert starts[0] == 0 and np.all(starts[1:] == starts[:-1] + lengths[:-1])
        assert lengths.sum() == t_total
        for j, (s, length) in enumerate(zip(starts, lengths)):
            rewards = low["rewards"][s:s + length, e]  # [length, N] float32
            expected = np.zeros(rewards.shape[1], np.float32)
            for row in rewards:  # same order, same precision as the engine
                expected = expected + row
            np.testing.assert_array_equal(high["reward_sum"][mine[j]], expected)
            assert np.all(low["team_skill"][s:s + length, e] == high["team_skill"][mine[j]])
            assert np.all(low["indiv_skill"][s:s + length, e] == high["indiv_skill"][mine[j]])
            # the decision-time state/obs are the env's at the decision step
            np.testing.assert_array_equal(high["state"][mine[j]], low["state"][s, e])
            np.testing.assert_array_equal(high["obs"][mine[j]], low["obs"][s, e])
            ended = low["terminated"][s:s + length, e] | low["truncated"][s:s + length, e]
            if clock == "episode":
                assert 1 <= length <= k
                assert not ended[:-1].any(), "a window straddles an episode boundary"
                assert high["terminated"][mine[j]] == low["terminated"][s + length - 1, e]
            else:
                assert length == k or s + length == t_total
        np.testing.assert_allclose(high["reward_sum"][mine].sum(0, dtype=np.float64),
                                   low["rewards"][:, e].sum(0, dtype=np.float64), rtol=0, atol=1e-9)
        last = mine[-1]
        assert high["truncated"][last] or high["terminated"][last]
    return high


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(["alice_and_bob", "stag_hunt"]), num_envs=st.integers(1, 9),
       horizon=st.integers(1, 60), k=st.integers(1, 12), seed=st.integers(0, 2**32), max_steps=st.integers(3, 40),
       clock=st.sampled_from(["episode", "global"]))
def test_conservation_tiling_and_no_starvation(name, num_envs, horizon, k, seed, max_steps, clock):
    engine = make_engine(name, num_envs, horizon, k, clock, seed, max_steps=max_steps)
    collect(engine, np.random.default_rng(seed))
    high = check_batch(engine)
    count = len(high["env"])
    if clock == "episode":
        assert count >= num_envs * -(-horizon // k)
    elif horizon % k == 0:
        assert count == num_envs * horizon // k
    assert engine.counters()["ring_overflows"] == 0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), batches=st.integers(2, 4), clock=st.sampled_from(["episode", "global"]))
def test_strict_on_policy_across_resumes(seed, batches, clock):
    engine = make_engine(num_envs=5, horizon=17, k=4, clock=clock, seed=seed, max_steps=9)
    rng = np.random.default_rng(seed)
    emitted = 0
    for version in range(batches):
        assert engine.policy_version == version
        collect(engine, rng)
        low, high = engine.low_level(), engine.high_level()
        assert np.all(low["policy_version"] == version)
        assert np.all(high["policy_version"] == version)
        check_batch(engine)
        emitted += len(high["env"])
        engine.resume()
        # nothing of the old batch reads as data of the new one
        assert engine.steps_in_batch == 0 and len(engine.high_level()["env"]) == 0
        assert engine.low_level()["obs"].shape[0] == 0
        assert np.all(engine._low["policy_version"] == -1)
        assert engine.needs_decision.all()
    counters = engine.counters()
    assert counters["high_level_transitions"] == emitted
    assert counters["low_level_samples"] == batches * 17 * 5 * 4


@pytest.mark.parametrize("clock", ["episode", "global"])
def test_emission_is_identical_for_any_thread_count_and_never_torn(clock):
    results = []
    for threads in (1, 2):
        engine = make_engine(num_envs=256, horizon=50, k=6, clock=clock, seed=3, threads=threads, max_steps=13)
        collect(engine, np.random.default_rng(0))
        assert engine.env._native.threads_used == threads  # 256 envs: the two-thread run really forked
        high = check_batch(engine)
        # each env's range holds its windows in its first `count` slots, all published, and nothing after them
        count, slots = engine._high["count"], engine._native.slots_per_env
        published = engine._high["published"].reshape(-1, slots).astype(bool)
        assert np.array_equal(published, np.arange(slots) < count[:, None])
        assert count.sum() == engine._native.transitions_in_batch == len(high["env"])
        keys = set(zip(high["env"].tolist(), high["start"].tolist()))
        assert len(keys) == len(high["env"]), "a transition was emitted twice"
        results.append((engine.low_level(), high))
    (low1, high1), (low2, high2) = results
    for key in high1:
        np.testing.assert_array_equal(high1[key], high2[key], err_msg=key)
    for key in low1:
        np.testing.assert_array_equal(low1[key], low2[key], err_msg=key)


def test_decision_time_state_and_obs_are_the_envs_at_that_step():
    engine = make_engine("alice_and_bob", num_envs=7, horizon=45, k=8, max_steps=20)
    log: list = []
    collect(engine, np.random.default_rng(1), log)
    high = engine.high_level()
    assert len(log) == len(high["env"])
    for e, start, state, obs, team, indiv in log:
        j = np.flatnonzero((high["env"] == e) & (high["start"] == start))
        assert len(j) == 1
        np.testing.assert_array_equal(high["state"][j[0]], state)
        np.testing.assert_array_equal(high["obs"][j[0]], obs)
        assert high["team_skill"][j[0]] == team and np.array_equal(high["indiv_skill"][j[0]], indiv)


def test_barrier_force_closes_open_windows_and_keeps_the_bootstrap():
    engine = make_engine(num_envs=4, horizon=12, k=5, max_steps=100)
    collect(engine, np.random.default_rng(2))
    high = engine.high_level()
    # 12 = 5 + 5 + 2: the last window of every env is cut by the barrier
    assert high["length"].tolist() == [5, 5, 2] * 4
    assert high["at_barrier"].tolist() == [False, False, True] * 4
    assert high["truncated"].tolist() == [False, False, True] * 4
    assert engine.counters()["force_closed_windows"] == 4
    np.testing.assert_array_equal(engine.windows["bootstrap_obs"], engine.env.obs)
    np.testing.assert_array_equal(engine.windows["bootstrap_state"], engine.env.state)
    next_obs, next_state = engine.next_observations()
    np.testing.assert_array_equal(next_obs[-1], engine.env.obs)
    np.testing.assert_array_equal(next_obs[:-1], engine.low_level()["obs"][1:])


def test_next_observations_use_the_final_obs_at_episode_ends():
    engine = make_engine(num_envs=3, horizon=10, k=4, max_steps=3)
    collect(engine, np.random.default_rng(3))
    low = engine.low_level()
    next_obs, next_state = engine.next_observations()
    for t in (2, 5, 8):  # episodes of 3 steps end at batch steps 2, 5, 8
        assert low["truncated"][t].all()
        np.testing.assert_array_equal(next_obs[t], low["final_obs"][t])
        assert not np.array_equal(next_obs[t], low["obs"][t + 1])
        np.testing.assert_allclose(next_state[t][:, -1], 1.0)  # t / T of the final state


def test_global_clock_windows_span_episode_ends_like_the_official_code():
    engine = make_engine(num_envs=2, horizon=12, k=4, clock="global", max_steps=5)
    collect(engine, np.random.default_rng(4))
    high = engine.high_level()
    assert high["length"].tolist() == [4, 4, 4] * 2 and high["start"].tolist() == [0, 4, 8] * 2
    assert not high["terminated"].any()  # stag_hunt only truncates


def bad_calls(engine: RolloutEngine):
    e, n = engine.env.num_envs, engine.env.num_agents
    zeros_f = np.zeros((e, n), np.float32)
    acts = np.zeros((e, n), np.int32)
    ids = engine.decision_env_ids()
    d = len(ids)
    good = dict(team=np.zeros(d, np.int32), indiv=np.zeros((d, n), np.int32),
                logp=np.zeros((d, n + 1), np.float32), values=np.zeros((d, n + 1), np.float32))
    return [
        (lambda: engine.step(acts, zeros_f, zeros_f), RuntimeError, "needs a skill decision"),
        (lambda: engine.decide(ids[:-1], good["team"][:-1], good["indiv"][:-1], good["logp"][:-1],
                               good["values"][:-1]), ValueError, "needs a decision but env_ids does not list it"),
        (lambda: engine.decide(np.array([e], np.int32), good["team"][:1], good["indiv"][:1], good["logp"][:1],
                               good["values"][:1]), ValueError, "is not an env index"),
        (lambda: engine.decide(np.array([0, 0], np.int32), good["team"][:2], good["indiv"][:2], good["logp"][:2],
                               good["values"][:2]), ValueError, "appears twice"),
        (lambda: engine.decide(ids, good["team"] + N_TEAM, good["indiv"], good["logp"], good["values"]),
         ValueError, r"team_skill\[0\] = 3 is out of range \[0, 3\)"),
        (lambda: engine.decide(ids, good["team"], good["indiv"] - 1, good["logp"], good["values"]),
         ValueError, r"indiv_skill\[0, 0\] = -1 is out of range"),
        (lambda: engine.decide(ids, good["team"].astype(np.int64) + 2**32, good["indiv"], good["logp"],
                               good["values"]), ValueError, "team_skill holds 4294967296 at flat index 0, outside int32"),
        (lambda: engine.decide(ids.astype(np.int64) - 2**32, good["team"], good["indiv"], good["logp"],
                               good["values"]), ValueError, "env_ids holds -4294967296 at flat index 0"),
        (lambda: engine.decide(ids, good["team"], good["indiv"], good["logp"] * np.nan, good["values"]),
         ValueError, "logp.* is not finite"),
        (lambda: engine.decide(ids, good["team"], good["indiv"], good["logp"].astype(np.float64), good["values"]),
         TypeError, "logp must be a float32 array"),
        (lambda: engine.decide(ids, good["team"], good["indiv"][:, :1], good["logp"], good["values"]),
         ValueError, "indiv_skill must have shape"),
    ]


def test_bad_calls_raise_and_record_nothing():
    engine = make_engine(num_envs=4, horizon=20, k=5)
    twin = make_engine(num_envs=4, horizon=20, k=5)
    for call, error, message in bad_calls(engine):
        with pytest.raises(error, match=message):
            call()
    assert engine.needs_decision.all() and engine.steps_in_batch == 0
    assert engine.env._native.snapshot() == twin.env._native.snapshot()
    rng = np.random.default_rng(5)
    decide_all(engine, rng)
    e, n = 4, 4
    acts = np.zeros((e, n), np.int32)
    ok = np.zeros((e, n), np.float32)
    for actions, logp, values, error, message in [
        (acts + 5, ok, ok, ValueError, r"actions\[0, 0\] = 5 is out of range"),
        (acts.astype(np.int64) + 2**32 + 1, ok, ok, ValueError, r"actions\[0, 0\] = 4294967297 is out of range"),
        (acts, ok * np.nan, ok, ValueError, "logp.* is not finite"),
        (acts, ok, ok[:2], ValueError, "values must have shape"),
        (acts.astype(np.float32), ok, ok, TypeError, "actions must be an integer array"),
    ]:
        before = engine.env._native.snapshot()
        with pytest.raises(error, match=message):
            engine.step(actions, logp, values)
        assert engine.env._native.snapshot() == before and engine.steps_in_batch == 0
    with pytest.raises(ValueError, match="does not need a decision"):
        engine.decide(np.array([0], np.int32), np.zeros(1, np.int32), np.zeros((1, n), np.int32),
                      np.zeros((1, n + 1), np.float32), np.zeros((1, n + 1), np.float32))
    collect(engine, rng)
    with pytest.raises(RuntimeError, match="after the barrier"):
        engine.step(acts, ok, ok)
    check_batch(engine)


def test_resume_before_the_barrier_and_bad_construction_raise():
    engine = make_engine(num_envs=2, horizon=5, k=2)
    with pytest.raises(RuntimeError, match="resume\\(\\) before the barrier"):
        engine.resume()
    env = hmasd.envs.make("stag_hunt", num_envs=2)
    for kwargs, message in [({"horizon": 0}, r"horizon must be in \[1, 2147483647\], got 0"), ({"skill_interval": 0}, "skill_interval"),
                            ({"clock": "wall"}, "clock must be"), ({"ring_capacity": 1}, "ring_capacity must be")]:
        args = dict(horizon=10, skill_interval=2, num_team_skills=2, num_indiv_skills=2) | kwargs
        with pytest.raises(ValueError, match=message):
            RolloutEngine(env, **args)
    with pytest.raises(ValueError, match="autoreset='same_step'"):
        RolloutEngine(hmasd.envs.make("stag_hunt", autoreset="disabled"), 10, 2, 2, 2)


def test_a_small_ring_raises_before_it_would_overflow():
    engine = make_engine(num_envs=4, horizon=30, k=1, ring_capacity=10)
    rng = np.random.default_rng(6)
    with pytest.raises(OverflowError, match="high-level ring could overflow"):
        collect(engine, rng)
    # nothing was dropped: every emitted window is published
    assert engine.counters()["ring_overflows"] == 0
    assert engine._native.transitions_in_batch == 8 and engine._native.slots_per_env == 2
    assert np.array_equal(engine._high["count"], [2, 2, 2, 2]) and engine._high["published"][:8].all()


def test_disabled_collection_steps_the_env_without_recording():
    engine = make_engine(num_envs=3, horizon=6, k=3)
    engine.disable_collection()
    before = engine.env.state.copy()
    engine.step(np.zeros((3, 4), np.int32))
    assert engine.steps_in_batch == 0 and not np.array_equal(before, engine.env.state)
    engine.enable_collection()
    assert engine.needs_decision.all()
    collect(engine, np.random.default_rng(7))
    check_batch(engine)
    assert engine.policy_version == 0
    engine.resume()
    assert engine.policy_version == 1


def test_buffers_reach_torch_without_a_copy():
    torch = pytest.importorskip("torch", reason="torch is in the train extra; CI installs it")
    engine = make_engine(num_envs=2, horizon=4, k=2)
    tensor = torch.from_numpy(engine._low["rewards"])
    collect(engine, np.random.default_rng(8))
    assert tensor.data_ptr() == engine._low["rewards"].__array_interface__["data"][0]
    assert torch.equal(tensor, torch.from_numpy(engine.low_level()["rewards"].copy()))


@pytest.mark.parametrize("name, threads", [("alice_and_bob", 1), ("stag_hunt", 2)])
def test_observations_written_in_place_equal_a_bare_envs(name, threads):
    # the env writes each step's observations straight into the batch; a twin stepped directly must agree
    engine = make_engine(name, num_envs=128, horizon=23, k=4, seed=9, threads=threads, max_steps=7)
    twin = hmasd.envs.make(name, num_envs=128, seed=9, max_steps=7)
    twin.reset()
    rng = np.random.default_rng(0)
    e, n = 128, engine.env.num_agents
    for batch in range(2):
        while not engine.ready:
            t = engine.steps_in_batch
            np.testing.assert_array_equal(engine.obs, twin.obs, err_msg=f"batch {batch} step {t}")
            np.testing.assert_array_equal(engine.state, twin.state)
            np.testing.assert_array_equal(engine.action_mask, twin.action_mask)
            decide_all(engine, rng)
            actions = random_actions(engine.env, rng, mask=engine.action_mask)
            given = actions.astype(np.int64) if t % 2 else actions  # both integer widths go through uncopied
            engine.step(given, np.zeros((e, n), np.float32), np.zeros((e, n), np.float32))
            twin.step(actions)
            low = engine.low_level()
            ended = twin.terminated | twin.truncated
            np.testing.assert_array_equal(low["final_obs"][t][ended], twin.final_obs[ended])
            np.testing.assert_array_equal(low["rewards"][t], twin.rewards)
        np.testing.assert_array_equal(engine.env.obs, twin.obs)  # at the barrier the env's own buffers are current
        check_batch(engine)
        engine.resume()


def test_continuous_actions_are_recorded_as_given_and_bad_ones_record_nothing():
    """uav_coverage through the engine: float [E, N, 3] actions are stored unclipped (the env clips what it
    applies), and a NaN action raises before any env moves or anything is recorded."""
    env = hmasd.envs.make("uav_coverage", num_envs=3, seed=2, num_uavs=2, num_users=6, max_steps=7)
    env.reset()
    engine = RolloutEngine(env, 10, 4, N_TEAM, N_INDIV)
    zeros = np.zeros((3, 2), np.float32)
    rng = np.random.default_rng(0)
    sent = []
    for t in range(3):  # inside the first k = 4-step windows: the bad step below needs no decision
        ids = engine.decision_env_ids()
        if len(ids):
            engine.decide(ids, np.zeros(len(ids), np.int32), np.zeros((len(ids), 2), np.int32),
                          np.zeros((len(ids), 3), np.float32), np.zeros((len(ids), 3), np.float32))
        actions = rng.uniform(-2, 2, (3, 2, 3)).astype(np.float32)
        engine.step(actions, zeros, zeros)
        sent.append(actions)
    np.testing.assert_array_equal(engine.low_level()["actions"], np.stack(sent))
    before = (engine.counters(), env._native.snapshot())
    bad = rng.uniform(-1, 1, (3, 2, 3)).astype(np.float32)
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"actions\[1, 0, 2\]"):
        engine.step(bad, zeros, zeros)
    with pytest.raises(ValueError, match="shape"):
        engine.step(bad[:, :, :2].copy(), zeros, zeros)
    assert (engine.counters(), env._native.snapshot()) == before
