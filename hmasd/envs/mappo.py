"""The face MAPPO-style runners expect (the ``on-policy`` code's ``ShareVecEnv``, SMAC form): obs [E, N, O],
share_obs [E, N, S], rewards [E, N, 1], dones [E, N], per-agent infos and available_actions [E, N, A], over one
native batch with same-step autoreset."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from hmasd.envs.agent_rows import EPISODE_KEY, AgentRows, gc_paused
from hmasd.envs.registry import make
from hmasd.envs.vec_env import VecEnv

Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any], np.ndarray]


class MappoVecEnv:
    """E copies of one env for a MAPPO runner: ``reset() -> (obs, share_obs, available_actions)`` and
    ``step(actions) -> (obs, share_obs, rewards, dones, infos, available_actions)``.

    Every array returned is a fresh copy (never a view of native memory). ``share_obs`` is the global state, the
    same row for every agent of a copy: a read-only broadcast view of one copy (assign or ``.copy()`` it).
    ``available_actions`` is float32 1/0 (continuous envs: ones of width 1, as runners expect an array). An ended
    episode is restarted inside the step (its last observation is in ``infos[e][i]["terminal_obs"]``).
    ``infos[e]`` is a list of N mappings: ``bad_transition`` (True when the episode was cut by its time limit, the
    flag MAPPO runners read to bootstrap) on every step, and on an ending step also ``episode_metrics`` (the agent's
    return, the length and the env's episode fields). The copies without news share one read-only mapping per agent
    (no Python loop over envs per step): copy one before writing to it.

    Args:
        env: a registered env name, or an existing native :class:`~hmasd.envs.VecEnv` made with
            ``autoreset="same_step"``.
        num_envs: env copies E (with a name). seed: the batch seed (None: fresh entropy). num_threads: native
        threads. **options: env options (docs/envs.md).
    """

    def __init__(self, env: str | VecEnv = "stag_hunt", num_envs: int = 1, seed: int | None = None,
                 num_threads: int = 1, **options: Any) -> None:
        if isinstance(env, VecEnv):
            if env.device != "cpu":
                raise ValueError(f"the env lives on {env.device}; MappoVecEnv hands NumPy arrays to its runner and "
                                 "needs a CPU VecEnv")
            if env.autoreset != "same_step":
                raise ValueError(f"MappoVecEnv needs an env made with autoreset='same_step', got {env.autoreset!r}")
            self.vec = env
        else:
            self.vec = make(env, num_envs=num_envs, seed=seed, num_threads=num_threads, **options)
        vec = self.vec
        self.num_envs, self.num_agents = vec.num_envs, vec.num_agents
        self.observation_space = [vec.observation_space for _ in range(self.num_agents)]
        self.share_observation_space = [vec.state_space for _ in range(self.num_agents)]
        self.action_space = [vec.action_space for _ in range(self.num_agents)]
        self._rows = AgentRows(vec)
        self._quiet = [MappingProxyType({"bad_transition": False})] * self.num_agents
        self._pending: Any = None
        self._seed: int | None = None

    def seed(self, seed: int) -> None:
        """The batch seed of the next ``reset()`` (the on-policy runners call this before the first reset)."""
        self._seed = int(seed)

    def reset(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Resets every copy (reseeded by an earlier :meth:`seed`) and returns obs, share_obs, available_actions."""
        seed, self._seed = self._seed, None
        self.vec.reset(seed)
        return self.vec.obs.copy(), self._share_obs(), self._available_actions()

    def step_async(self, actions: Any) -> None:
        self._pending = actions

    def step_wait(self) -> Step:
        actions, self._pending = self._pending, None
        return self.step(actions)

    def step(self, actions: Any) -> Step:
        """Steps every copy with actions [E, N] or [E, N, 1] (discrete; one-hot [E, N, A] is accepted too) or
        [E, N, action_dim] (continuous)."""
        vec = self.vec
        vec.step(self._native_actions(actions))
        ended = vec.terminated | vec.truncated
        infos: list[Any] = [self._quiet] * self.num_envs
        if ended.any():
            with gc_paused():
                self._add_ended_infos(infos, np.flatnonzero(ended))
        # NumPy's own copies here: measured faster than copy_outputs' [E, N] layout with a float32 mask
        dones = np.repeat(ended[:, None], self.num_agents, axis=1)
        rewards = vec.rewards[:, :, None].copy()
        return vec.obs.copy(), self._share_obs(), rewards, dones, infos, self._available_actions()

    def render(self, mode: str = "rgb_array", env_index: int = 0) -> np.ndarray:
        if mode != "rgb_array":
            raise ValueError(f"mode must be 'rgb_array', got {mode!r}")
        return self.vec.render(env_index)

    def close(self) -> None:
        """Nothing to release: the native env is freed with this object."""

    # ---- helpers -------------------------------------------------------------------------------------
    def _native_actions(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions)
        e, n, vec = self.num_envs, self.num_agents, self.vec
        if vec.continuous:
            return array
        if array.shape == (e, n, 1):
            return array[:, :, 0]
        if array.shape == (e, n, vec.num_actions) and vec.num_actions > 1:  # one-hot, as some runners send
            if not np.isin(array, (0, 1)).all() or not (array.sum(axis=2) == 1).all():
                raise ValueError(f"actions of shape {array.shape} must be one-hot over the {vec.num_actions} actions")
            return array.argmax(axis=2)
        return array

    def _share_obs(self) -> np.ndarray:
        # a read-only broadcast of one copy of the state: [E, N, S] without writing the state N times
        state = self.vec.state.copy()
        return np.broadcast_to(state[:, None, :], (self.num_envs, self.num_agents, state.shape[1]))

    def _available_actions(self) -> np.ndarray:
        if self.vec.continuous:
            return np.ones((self.num_envs, self.num_agents, 1), dtype=np.float32)
        return self.vec.action_mask.astype(np.float32)

    def _add_ended_infos(self, infos: list[Any], env_ids: np.ndarray) -> None:
        """Fresh per-agent dicts for the copies whose episode ended (the only Python loop, over those copies)."""
        n = self.num_agents
        records = self._rows.episode_records(env_ids)
        final_obs, cut = self._rows.ended_rows(env_ids)
        per_agent = [{"bad_transition": c, "terminal_obs": o, EPISODE_KEY: r}
                     for c, o, r in zip(cut, final_obs, records)]
        for j, e in enumerate(env_ids.tolist()):
            infos[e] = per_agent[j * n:(j + 1) * n]
