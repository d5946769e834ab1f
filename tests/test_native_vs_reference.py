"""The native envs held against the NumPy reference, step by step, over many seeds, options and auto-resets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hmasd.envs
from conftest import random_actions
from hmasd.envs.reference import ReferenceVecEnv

FIELDS = ("obs", "state", "rewards", "terminated", "truncated", "action_mask", "episode_return", "episode_length")

OPTION_SETS = [
    ("alice_and_bob", {}),
    ("alice_and_bob", {"height": 5, "width": 7, "max_steps": 30}),
    ("alice_and_bob", {"height": 4, "width": 4, "max_steps": 12}),
    ("stag_hunt", {}),
    ("stag_hunt", {"grid_size": 4, "num_agents": 4, "num_hares": 3}),
    ("stag_hunt", {"grid_size": 5, "num_agents": 3, "num_hares": 2, "reward_mode": "team", "lone_stag_penalty": 0.5,
                   "agent_id_in_obs": True, "max_steps": 20}),
    ("stag_hunt", {"grid_size": 3, "num_agents": 2, "num_hares": 1, "stag_move_prob": 1.0, "stag_min_hunters": 1,
                   "tie_break": "index", "stag_reward": 4.0, "hare_reward": 0.25}),
    ("stag_hunt", {"num_agents": 6, "num_hares": 0, "stag_move_prob": 0.0, "stag_min_hunters": 3, "max_steps": 15}),
]


def toward(row: int, col: int, target: tuple[int, int]) -> int:
    """alice_and_bob action that moves one cell towards target (rows first)."""
    if row != target[0]:
        return 3 if row < target[0] else 2
    if col != target[1]:
        return 0 if col < target[1] else 1
    return 4


def solver_actions(env, rng: np.random.Generator, epsilon: float) -> np.ndarray:
    """A noisy scripted alice_and_bob solver: hold button 1 while the partner takes diamond 1, then swap roles."""
    height, width = env.options["height"], env.options["width"]
    actions = random_actions(env, rng)
    for e in range(env.num_envs):
        grid = env.state[e].reshape(height, width)
        (r0, c0), (r1, c1) = env.obs[e, 0, 9:11].astype(int), env.obs[e, 1, 9:11].astype(int)
        diamond1 = (height - 2, width - 2)
        first_phase = grid[diamond1] == 7 or (r1, c1) == diamond1
        targets = [(1, 1), diamond1] if first_phase else [(height - 2, 1), (1, width - 2)]
        for i, (row, col) in enumerate([(r0, c0), (r1, c1)]):
            if rng.random() > epsilon:
                actions[e, i] = toward(row, col, targets[i])
    return actions


def scripted_actions(env, rng: np.random.Generator) -> np.ndarray:
    """Random play for stag_hunt; a noisy solver for alice_and_bob so that its success path is exercised."""
    if env.name == "alice_and_bob":
        return solver_actions(env, rng, epsilon=0.3)
    return random_actions(env, rng)


def compare(name: str, options: dict, seed: int, num_envs: int, steps: int, action_seed: int,
            autoreset: str = "same_step", partial_resets: bool = False) -> dict[str, int]:
    native = hmasd.envs.make(name, num_envs=num_envs, seed=seed, autoreset=autoreset, **options)
    reference = ReferenceVecEnv(name, num_envs, seed=seed, autoreset=autoreset, **options)
    native.reset()
    reference.reset()
    rng = np.random.default_rng(action_seed)
    counts = {"terminated": 0, "truncated": 0, "reward": 0, "restarted": 0}
    previously_ended = np.zeros(num_envs, dtype=bool)
    for t in range(steps + 1):
        if autoreset == "next_step" and previously_ended.any():
            # the step after an episode's end began the next episode: nothing happened, nothing ended
            assert not (native.terminated | native.truncated)[previously_ended].any()
            assert (native.rewards[previously_ended] == 0).all()
            counts["restarted"] += int(previously_ended.sum())
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(native, field), getattr(reference, field),
                                          err_msg=f"{name} {options} seed={seed}: {field} differs at step {t}")
        ended = native.terminated | native.truncated
        np.testing.assert_array_equal(native.final_obs[ended], reference.final_obs[ended])
        np.testing.assert_array_equal(native.final_state[ended], reference.final_state[ended])
        for key, values in reference.episode_info.items():
            np.testing.assert_array_equal(native.episode_info[key][ended], values[ended], err_msg=key)
        counts["terminated"] += int(native.terminated.sum())
        counts["truncated"] += int(native.truncated.sum())
        counts["reward"] += int((native.rewards != 0).sum())
        if t == steps:
            break
        previously_ended = ended.copy()
        if autoreset == "disabled" and ended.any():
            if partial_resets:  # the finished envs and a few others; the rest must not move
                chosen = ended | (rng.random(num_envs) < 0.2)
                native.reset_envs(chosen)
                reference.reset_envs(chosen)
                counts["restarted"] += int(chosen.sum())
            else:
                native.reset()
                reference.reset()
            continue
        if partial_resets and rng.random() < 0.15:  # a reset of running envs mid-episode (they fall out of step)
            chosen = rng.random(num_envs) < 0.4
            native.reset_envs(chosen)
            reference.reset_envs(chosen)
            counts["restarted"] += int(chosen.sum())
            continue
        actions = scripted_actions(native, rng)
        native.step(actions)
        reference.step(actions)
    native_stats, reference_stats = native.episode_stats(), reference.episode_stats()
    assert native_stats.keys() == reference_stats.keys()
    for key in native_stats:
        np.testing.assert_allclose(native_stats[key], reference_stats[key], rtol=1e-6, err_msg=key)
    return counts


@pytest.mark.parametrize("name, options", OPTION_SETS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTION_SETS)])
def test_native_equals_reference_over_thousands_of_steps(name, options):
    totals = {"terminated": 0, "truncated": 0, "reward": 0}
    for seed in (0, 1, 2**40 + 17):
        counts = compare(name, options, seed=seed, num_envs=12, steps=300, action_seed=seed % 97)
        totals = {k: totals[k] + counts[k] for k in totals}
    # the comparison crossed episode ends (auto-resets) and saw non-zero rewards
    assert totals["truncated"] > 0
    assert totals["reward"] > 0
    if name == "alice_and_bob":
        assert totals["terminated"] > 0, "no alice_and_bob episode was solved: the success path went untested"


@pytest.mark.parametrize("name", ["alice_and_bob", "stag_hunt"])
def test_native_equals_reference_with_autoreset_disabled(name):
    counts = compare(name, {"max_steps": 9}, seed=5, num_envs=5, steps=200, action_seed=3, autoreset="disabled")
    assert counts["truncated"] > 0


@pytest.mark.parametrize("name", ["alice_and_bob", "stag_hunt"])
def test_native_equals_reference_with_partial_resets(name):
    counts = compare(name, {"max_steps": 9}, seed=7, num_envs=6, steps=200, action_seed=4, autoreset="disabled",
                     partial_resets=True)
    assert counts["truncated"] > 0 and counts["restarted"] > counts["truncated"]


@pytest.mark.parametrize("name", ["alice_and_bob", "stag_hunt"])
def test_native_equals_reference_with_next_step_autoreset(name):
    counts = compare(name, {"max_steps": 9}, seed=9, num_envs=5, steps=200, action_seed=5, autoreset="next_step")
    assert counts["truncated"] > 0 and counts["restarted"] == counts["truncated"] + counts["terminated"]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), num_envs=st.integers(1, 6), grid_size=st.integers(3, 9),
       num_agents=st.integers(1, 6), num_hares=st.integers(0, 5), move=st.sampled_from([0.0, 0.3, 1.0]),
       hunters=st.integers(1, 3), mode=st.sampled_from(["individual", "team"]),
       tie=st.sampled_from(["random", "index"]))
def test_stag_hunt_matches_reference_for_random_options(seed, num_envs, grid_size, num_agents, num_hares, move,
                                                        hunters, mode, tie):
    if grid_size * grid_size < num_agents + 1 + num_hares:
        return
    options = dict(grid_size=grid_size, num_agents=num_agents, num_hares=num_hares, stag_move_prob=move,
                   stag_min_hunters=hunters, reward_mode=mode, tie_break=tie, max_steps=25)
    compare("stag_hunt", options, seed=seed, num_envs=num_envs, steps=60, action_seed=seed % 1013)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), height=st.integers(4, 9), width=st.integers(4, 9))
def test_alice_and_bob_matches_reference_for_random_sizes(seed, height, width):
    compare("alice_and_bob", dict(height=height, width=width, max_steps=40), seed=seed, num_envs=4, steps=90,
            action_seed=seed % 1013)
