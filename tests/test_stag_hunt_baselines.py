"""hmasd.envs.stag_hunt_baselines: the grid read back from observations is the env's, the greedy step closes the
distance, and the scripted policies do what they are named for on the evaluation's own episodes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hmasd.envs
from hmasd.envs.reference import StagHuntRef
from hmasd.envs.stag_hunt_baselines import decode, decode_state, evaluate_baseline, make_policy, step_toward


@pytest.mark.parametrize("options", [{}, {"agent_id_in_obs": True}, {"grid_size": 5, "num_hares": 2, "num_agents": 3}])
def test_cells_decoded_from_obs_and_state_are_the_reference_state(options):
    env = StagHuntRef(7, 3, **options)
    rng = np.random.default_rng(0)
    env.reset(0)
    for _ in range(20):
        from_obs = decode(env.observe()[None], env.grid_size, env.num_hares)
        from_state = decode_state(env.global_state(), env.grid_size, env.num_agents, env.num_hares)
        for grid, lead in ((from_obs, (0,)), (from_state, ())):
            np.testing.assert_array_equal(grid.agents[lead], env.agent_pos)
            np.testing.assert_array_equal(grid.stag[lead], env.stag_pos)
            np.testing.assert_array_equal(grid.hares[lead], env.hare_pos)
        env.step(rng.integers(0, 5, env.num_agents))


cells = st.tuples(st.integers(0, 7), st.integers(0, 7))


@settings(max_examples=200, deadline=None)
@given(cells, cells)
def test_a_greedy_step_closes_the_distance_by_one_and_stays_on_the_target(position, target):
    p, t = np.array(position), np.array(target)
    move = int(step_toward(p, t))
    after = p + np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)][move])
    distance = np.abs(t - p).sum()
    assert np.abs(t - after).sum() == max(distance - 1, 0)
    assert (move == 4) == (distance == 0)


def test_the_baselines_run_on_the_evaluations_episodes():
    # evaluate() resets its env without a seed; the baselines reset with the seed: both must start the same way
    plain, seeded = (hmasd.envs.make("stag_hunt", num_envs=8, seed=100_004) for _ in range(2))
    np.testing.assert_array_equal(plain.reset()[0], seeded.reset(100_004)[0])


def test_each_scripted_policy_hunts_what_it_is_named_for():
    got = {name: evaluate_baseline(name, 32, seed=11) for name in ("random", "hares", "stag_pair", "all_stag")}
    assert got["hares"]["hares"] > 3 * got["random"]["hares"]
    # the pair's stags go to agents 0 and 1 only (a stag on a hare hunter's path is never caught by it alone)
    pair = np.array(got["stag_pair"]["stags_per_agent"])
    assert pair[:2].min() > 1 and pair[2:].max() < pair[:2].min() / 4
    assert got["all_stag"]["stags"] > got["stag_pair"]["stags"] > 10 * got["hares"]["stags"]
    for result in got.values():  # the return is the env's: 10 per stag and 1 per hare, per agent
        expected = (10 * result["stags"] + result["hares"]) / 4
        assert result["per_agent_return"] == pytest.approx(expected, rel=1e-5)


def test_bad_arguments_are_refused_by_name():
    env = hmasd.envs.make("stag_hunt", num_envs=2, seed=0)
    with pytest.raises(ValueError, match="unknown baseline 'stags'"):
        make_policy("stags", env)
    with pytest.raises(ValueError, match="episodes must be an int >= 1"):
        evaluate_baseline("hares", 0)
