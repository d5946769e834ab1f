"""One native batch of E envs x N agents seen as E * N single-agent rows (row ``e * N + i`` is agent ``i`` of env
``e``): the parameter-sharing layout of SuperSuit and PufferLib, shared by the SB3 and Gymnasium adapters."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import numpy as np

from hmasd.envs.vec_env import VecEnv

EPISODE_KEY = "episode_metrics"
"""The info key of hmasd's own record of an ended episode (``return``, ``length`` and the env's episode fields).
It is not ``"episode"``: that key belongs to SB3's ``Monitor`` and Gymnasium's ``RecordEpisodeStatistics``, which
write ``{"r", "l", "t"}`` there."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """CPython's cyclic collector paused while a step builds its per-row info dicts.

    When every env copy ends in one step, E * N rows get fresh dicts: thousands of container allocations, which
    trigger collections that scan them (and, as they pile up, the older generations), about 2/3 of the build time
    measured at E = 1024. The dicts hold no cycles, so reference counting frees them all; nothing is leaked.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class AgentRows:
    """Index arithmetic and copies between the native [E, N, ...] buffers and [E * N, ...] rows.

    Everything here is vectorised: no Python loop over envs or agents, except over the envs whose episode just
    ended when their records are built.
    """

    def __init__(self, env: VecEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.num_agents = env.num_agents
        self.num_rows = env.num_envs * env.num_agents
        n = self.num_agents
        self._action_shape = ((self.num_envs, n, env.action_dim) if env.continuous else (self.num_envs, n))
        self._agent_offsets = np.arange(n)

    # ---- native buffers -> rows ----------------------------------------------------------------------------
    def obs(self, source: np.ndarray | None = None) -> np.ndarray:
        """A fresh copy of the observations (or of ``source``, e.g. ``final_obs``) as rows [E * N, obs_dim]."""
        array = self.env.obs if source is None else source
        return array.reshape(self.num_rows, -1).copy()

    def per_row(self, env_values: np.ndarray) -> np.ndarray:
        """A per-env array [E, ...] repeated for each agent: [E * N, ...]."""
        return np.repeat(env_values, self.num_agents, axis=0)

    def action_masks(self) -> np.ndarray:
        """Valid actions as bool rows [E * N, num_actions] (a copy; a continuous env has num_actions = 0)."""
        return self.env.action_mask.reshape(self.num_rows, -1).copy()

    def rows_of(self, env_ids: np.ndarray) -> np.ndarray:
        """The rows of the envs ``env_ids`` (each env's N agents in order)."""
        return (np.asarray(env_ids)[:, None] * self.num_agents + self._agent_offsets).reshape(-1)

    def ended_rows(self, env_ids: np.ndarray) -> tuple[list[np.ndarray], list[bool]]:
        """For the envs ``env_ids`` whose episode ended in the last step, per row (in row order): its last
        observation (row views of one fresh copy of ``final_obs``) and whether the episode was cut by its time
        limit (truncated and not terminated: the rows a learner bootstraps)."""
        env = self.env
        final_obs = env.final_obs[env_ids].reshape(len(env_ids) * self.num_agents, -1)
        cut = np.repeat(env.truncated[env_ids] & ~env.terminated[env_ids], self.num_agents)
        return list(final_obs), cut.tolist()

    # ---- rows -> native buffers ----------------------------------------------------------------------------
    def env_actions(self, row_actions: Any) -> np.ndarray:
        """Row actions ([E * N] ints, or [E * N, action_dim] floats) as the native [E, N(, action_dim)] array. The
        env checks the values and dtype; a wrong number of rows is refused here by name."""
        array = np.asarray(row_actions)
        expected = (self.num_rows, *self._action_shape[2:])
        if array.shape != expected and not (array.ndim == 2 and array.shape == (self.num_rows, 1)
                                            and not self.env.continuous):
            raise ValueError(f"actions must have shape {expected} (one row per agent of every env: "
                             f"{self.num_envs} envs x {self.num_agents} agents), got {array.shape}")
        return array.reshape(self._action_shape)

    def env_mask(self, row_mask: Any, name: str = "reset_mask") -> np.ndarray:
        """A row mask [E * N] as an env mask [E]; the rows of one env must agree, since its agents reset together."""
        rows = np.asarray(row_mask)
        if rows.dtype != np.bool_ or rows.shape != (self.num_rows,):
            raise ValueError(f"{name} must be a bool array of shape ({self.num_rows},) (one entry per agent row), "
                             f"got {rows.dtype} {rows.shape}")
        per_env = rows.reshape(self.num_envs, self.num_agents)
        mixed = np.flatnonzero(per_env.any(axis=1) != per_env.all(axis=1))
        if mixed.size:
            raise ValueError(f"{name}: the agents of env {int(mixed[0])} (rows {int(mixed[0]) * self.num_agents}.."
                             f"{(int(mixed[0]) + 1) * self.num_agents - 1}) disagree; an env's agents reset together")
        return np.ascontiguousarray(per_env[:, 0])

    # ---- episode records ------------------------------------------------------------------------------------
    def episode_records(self, env_ids: np.ndarray) -> list[dict[str, float]]:
        """hmasd's record of each ended episode of ``env_ids``, one dict per row of those envs (in row order):
        ``return`` (the agent's), ``length`` and every episode field (the agent's value for per-agent fields)."""
        env = self.env
        ids = np.asarray(env_ids)
        n = self.num_agents
        returns = env.episode_return[ids].reshape(-1).tolist()
        lengths = np.repeat(env.episode_length[ids], n).tolist()
        records = [{"return": r, "length": length} for r, length in zip(returns, lengths)]
        # Filled a field at a time: a dict display plus one store per value is ~2x cheaper than dict(zip(...)) per
        # row, and every env copy of a batch can end in the same step (E * N records at once).
        for field, values in env.episode_info.items():
            chosen = values[ids]
            per_row = chosen.reshape(-1) if chosen.ndim == 2 else np.repeat(chosen, n)
            for record, value in zip(records, per_row.tolist()):
                record[field] = value
        return records
