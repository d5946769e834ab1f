"""The random policy of every tool and test: uniformly random actions for any env's action space (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hmasd.envs.vec_env import ACTION_HIGH, ACTION_LOW


def random_actions(env: Any, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
    """One batch of uniformly random actions for ``env`` (a :class:`~hmasd.envs.VecEnv` with NumPy buffers).

    Continuous envs: ``float32[E, N, action_dim]``, each component uniform in [-1, 1) (the env's Box).
    Discrete envs: ``int32[E, N]``, uniform among the valid actions of ``mask`` (``bool[E, N, num_actions]``,
    by default ``env.action_mask``; pass ``engine.action_mask`` while a rollout engine holds the env). A row
    without any valid action gets action 0.
    """
    e, n = env.num_envs, env.num_agents
    if env.continuous:
        return rng.uniform(ACTION_LOW, ACTION_HIGH, (e, n, env.action_dim)).astype(np.float32)
    mask = np.asarray(env.action_mask if mask is None else mask, dtype=bool)
    if mask.shape != (e, n, env.num_actions):
        raise ValueError(f"random_actions: mask of shape {mask.shape}, expected {(e, n, env.num_actions)} "
                         f"(num_envs, num_agents, num_actions) for {env.name!r}")
    return (rng.random(mask.shape) * mask).argmax(axis=-1).astype(np.int32)


def random_actions_text(env: Any) -> str:
    """What :func:`random_actions` draws from for ``env``, in words (for reports)."""
    if env.continuous:
        return f"uniform over the action space [{ACTION_LOW:g}, {ACTION_HIGH:g}]^{env.action_dim}"
    return "uniform over valid actions"
