"""stag_hunt is symmetric: under random play no agent index earns more, and a planted index bias is caught."""

from __future__ import annotations

import numpy as np

import hmasd.envs
from conftest import random_actions


def per_agent_returns(tie_break: str, episodes_per_env: int = 12, num_envs: int = 256) -> np.ndarray:
    # a 4 x 4 grid makes two agents on one hare common, so a tie-break bias has room to show
    env = hmasd.envs.make("stag_hunt", num_envs=num_envs, seed=123, tie_break=tie_break, grid_size=4, num_threads=2)
    env.reset()
    rng = np.random.default_rng(7)
    returns = []
    for _ in range(episodes_per_env * 35):
        env.step(random_actions(env, rng))
        if env.truncated.any():
            returns.append(env.episode_return[env.truncated].copy())
    return np.concatenate(returns)  # [episodes, N]


def max_pairwise_z(returns: np.ndarray) -> float:
    """Largest |mean_i - mean_j| / SE over agent pairs, SE from the paired per-episode differences."""
    n = returns.shape[1]
    worst = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            diff = returns[:, i] - returns[:, j]
            worst = max(worst, abs(diff.mean()) / (diff.std(ddof=1) / np.sqrt(len(diff))))
    return worst


def test_random_play_gives_no_agent_an_advantage():
    returns = per_agent_returns("random")
    assert returns.shape == (256 * 12, 4)
    assert returns.mean() > 1.0  # prey are caught: the statistic is not vacuous
    # 6 pairs at a Bonferroni-corrected two-sided 0.1% level
    assert max_pairwise_z(returns) < 3.9


def test_index_tie_break_is_detected_and_favours_agent_zero():
    returns = per_agent_returns("index")
    means = returns.mean(axis=0)
    assert max_pairwise_z(returns) > 3.9
    assert np.argmax(means) == 0 and np.all(np.diff(means) < 0)
