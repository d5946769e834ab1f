"""Scripted baselines for ``stag_hunt``: hare hunters, a pair of stag chasers, everyone on the stag; and their
evaluation on whole episodes. They show what each equilibrium pays on the episodes a learner is evaluated on.
NumPy only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from hmasd.envs.actions import random_actions
from hmasd.envs.registry import make
from hmasd.envs.vec_env import VecEnv

log = logging.getLogger(__name__)

ENV_NAME = "stag_hunt"
BASELINES = ("random", "hares", "stag_pair", "all_stag")
# the env's moves: 0 up (row - 1), 1 down, 2 left (col - 1), 3 right, 4 stay
UP, DOWN, LEFT, RIGHT, STAY = range(5)


@dataclass(frozen=True)
class Positions:
    """Cells as (row, col) ints, decoded from the observations or the global state: ``agents [..., N, 2]``,
    ``stag [..., 2]``, ``hares [..., H, 2]``."""

    agents: np.ndarray
    stag: np.ndarray
    hares: np.ndarray


def decode(obs: np.ndarray, grid_size: int, num_hares: int) -> Positions:
    """The grid from ``obs [E, N, O]``: agent i sees its own cell, then the offsets of the other agents (in the
    order i+1, i+2, ...), of the stag and of each hare, all divided by ``grid_size - 1`` (then the time, and
    optionally its id, which are not read)."""
    cells = np.rint(np.asarray(obs, np.float64) * (grid_size - 1)).astype(np.int64)
    n = obs.shape[1]
    own = cells[:, :, 0:2]
    stag = own[:, 0] + cells[:, 0, 2 * n:2 * n + 2]
    hares = own[:, :1] + cells[:, 0, 2 * n + 2:2 * n + 2 + 2 * num_hares].reshape(len(obs), num_hares, 2)
    return Positions(own, stag, hares)


def decode_state(state: np.ndarray, grid_size: int, num_agents: int, num_hares: int) -> Positions:
    """The grid from global states ``[..., S]`` (every agent's cell, the stag's, each hare's, all divided by
    ``grid_size - 1``, then the time): ``agents [..., N, 2]``, ``stag [..., 2]``, ``hares [..., H, 2]``."""
    cells = np.rint(np.asarray(state, np.float64) * (grid_size - 1)).astype(np.int64)
    lead, n = cells.shape[:-1], num_agents
    return Positions(cells[..., : 2 * n].reshape(*lead, n, 2), cells[..., 2 * n:2 * n + 2],
                     cells[..., 2 * n + 2:2 * n + 2 + 2 * num_hares].reshape(*lead, num_hares, 2))


def step_toward(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``int32[...]`` moves one cell toward ``target`` along the axis with the larger distance (rows on a tie);
    stay on it."""
    delta = target - position
    rows_first = np.abs(delta[..., 0]) >= np.abs(delta[..., 1])
    row_move = np.where(delta[..., 0] < 0, UP, DOWN)
    col_move = np.where(delta[..., 1] < 0, LEFT, RIGHT)
    move = np.where(rows_first, row_move, col_move)
    return np.where((delta == 0).all(-1), STAY, move).astype(np.int32)


def nearest_hare(grid: Positions) -> np.ndarray:
    """``[E, N, 2]``: for each agent the hare at the least Manhattan distance (the lowest index on a tie)."""
    distance = np.abs(grid.agents[:, :, None, :] - grid.hares[:, None, :, :]).sum(-1)  # [E, N, H]
    closest = distance.argmin(-1)
    return np.take_along_axis(grid.hares, closest[..., None].repeat(2, -1), axis=1)


class ScriptedPolicy:
    """Agents in ``stag_hunters`` walk to the stag, the others to their nearest hare, one greedy step at a time."""

    def __init__(self, env: VecEnv, stag_hunters: tuple[int, ...]) -> None:
        self.grid_size, self.num_hares = int(env.options["grid_size"]), int(env.options["num_hares"])
        self.hunters = np.zeros(env.num_agents, dtype=bool)
        self.hunters[list(stag_hunters)] = True

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        grid = decode(obs, self.grid_size, self.num_hares)
        stag = np.broadcast_to(grid.stag[:, None, :], grid.agents.shape)
        target = np.where(self.hunters[None, :, None], stag, nearest_hare(grid))
        return step_toward(grid.agents, target)


def make_policy(name: str, env: VecEnv, seed: int = 0):
    """The baseline ``name`` (one of :data:`BASELINES`): a function of the observations to ``int32[E, N]``."""
    if name == "random":
        rng = np.random.default_rng(seed)
        return lambda obs: random_actions(env, rng)
    hunters = {"hares": (), "stag_pair": (0, 1), "all_stag": tuple(range(env.num_agents))}
    if name not in hunters:
        raise ValueError(f"unknown baseline {name!r}; baselines: {', '.join(BASELINES)}")
    return ScriptedPolicy(env, hunters[name])


def evaluate_baseline(name: str, episodes: int = 200, seed: int = 0, **env_options: Any) -> dict[str, Any]:
    """Runs ``name`` on ``episodes`` copies of ``make("stag_hunt", seed=seed, **env_options)`` for one episode each:
    the episodes that :func:`hmasd.train.evaluation.evaluate` runs with the same seed and count. Returns the mean
    per-agent return, and the env's ``stags`` and ``hares`` per episode, per agent and summed over agents."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    env = make(ENV_NAME, num_envs=episodes, seed=seed, autoreset="disabled", **env_options)
    policy = make_policy(name, env, seed=seed)
    obs, _ = env.reset(seed)
    for _ in range(int(env.options["max_steps"])):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
    if not (terminated | truncated).all():
        raise RuntimeError(f"{ENV_NAME} episodes did not all end after max_steps")
    stats = env.episode_stats()
    stags, hares = np.asarray(stats["stags"], np.float64), np.asarray(stats["hares"], np.float64)
    result = {"baseline": name, "episodes": int(stats["episodes"]), "seed": seed,
              "per_agent_return": float(np.mean(stats["return"])), "stags": float(stags.sum()),
              "hares": float(hares.sum()), "stags_per_agent": stags.tolist(), "hares_per_agent": hares.tolist()}
    log.info("%s: %d episodes, per-agent return %.2f, stags %.2f, hares %.2f", name, result["episodes"],
             result["per_agent_return"], result["stags"], result["hares"])
    return result
