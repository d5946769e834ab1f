"""The batched env facade: NumPy views of native buffers, gymnasium spaces, episode statistics, pickling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hmasd.envs._args import as_env_index, as_env_mask, as_seed

StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]
ACTION_LOW, ACTION_HIGH = -1.0, 1.0
"""Bounds of every component of a continuous action (the native envs clip to them)."""


class VecEnv:
    """``num_envs`` copies of one multi-agent env, stepped together in native code.

    The arrays below alias native memory and are rewritten in place by every ``reset``/``step``: copy what you
    keep. Shapes use E = ``num_envs``, N = ``num_agents``.

    Attributes:
        obs: float32[E, N, obs_dim], each agent's observation.
        state: float32[E, state_dim], the global state.
        rewards: float32[E, N] of the last step.
        terminated, truncated: bool[E] of the last step (an env that ended was already reset when
            ``autoreset="same_step"``).
        action_mask: bool[E, N, num_actions], valid actions (invalid moves act as "stay"); continuous envs have
            num_actions = 0.
        final_obs, final_state: last observation/state of the episodes that ended in the last step (only
            those rows are rewritten).
        episode_return: float32[E, N], episode_length: int32[E], episode_info: per-field arrays, all of the
            episodes that ended in the last step (same row rule).
    """

    def __init__(self, name: str, native: Any, options: dict[str, Any]) -> None:
        self.name = name
        self._native = native
        self._options = options
        self._bind_buffers()

    def _bind_buffers(self) -> None:
        buffers = self._native.buffers()
        self.obs: np.ndarray = buffers["obs"]
        self.state: np.ndarray = buffers["state"]
        self.rewards: np.ndarray = buffers["rewards"]
        self.terminated: np.ndarray = buffers["terminated"]
        self.truncated: np.ndarray = buffers["truncated"]
        self.action_mask: np.ndarray = buffers["action_mask"]
        self.final_obs: np.ndarray = buffers["final_obs"]
        self.final_state: np.ndarray = buffers["final_state"]
        self.episode_return: np.ndarray = buffers["episode_return"]
        self.episode_length: np.ndarray = buffers["episode_length"]
        self._bind_episode_info(buffers["episode_info"])
        self._info: dict[str, Any] = {
            "state": self.state,
            "action_mask": self.action_mask,
            "final_obs": self.final_obs,
            "final_state": self.final_state,
            "episode_return": self.episode_return,
            "episode_length": self.episode_length,
            **self.episode_info,
        }
        self._step_result: StepResult = (self.obs, self.rewards, self.terminated, self.truncated, self._info)

    def _bind_episode_info(self, block: Any) -> None:
        """Per-field views of the episode info buffer [E, width] (NumPy or torch)."""
        self.episode_info: dict[str, Any] = {}
        self._info_slots: list[tuple[str, bool, int]] = []
        offset, n = 0, self.num_agents
        for field, per_agent in self._native.info_fields:
            width = n if per_agent else 1
            view = block[:, offset:offset + width]
            self.episode_info[field] = view if per_agent else view[:, 0]
            self._info_slots.append((field, per_agent, offset))
            offset += width

    # ---- sizes and options ---------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return self._native.num_envs

    @property
    def num_agents(self) -> int:
        return self._native.num_agents

    @property
    def obs_dim(self) -> int:
        return self._native.obs_dim

    @property
    def state_dim(self) -> int:
        return self._native.state_dim

    @property
    def num_actions(self) -> int:
        return self._native.num_actions

    @property
    def action_dim(self) -> int:
        """Components of a continuous action (0 for discrete envs)."""
        return self._native.action_dim

    @property
    def continuous(self) -> bool:
        """Whether actions are float vectors in [-1, 1] (Box) rather than indices (Discrete)."""
        return self.action_dim > 0

    @property
    def num_threads(self) -> int:
        return self._native.num_threads

    @property
    def device(self) -> str:
        """Where the buffers live: ``"cpu"`` (``"cuda:N"`` for a :class:`~hmasd.envs.device.DeviceVecEnv`)."""
        return "cpu"

    @property
    def seed(self) -> int:
        return self._native.seed

    @property
    def first_env(self) -> int:
        """The env index of copy 0: copy ``e`` draws the random stream keyed by ``(seed, first_env + e)``."""
        return self._native.first_env

    @property
    def autoreset(self) -> str:
        return self._native.autoreset

    @property
    def options(self) -> dict[str, Any]:
        """Every env option with the value in force (defaults included)."""
        config = self._native.config
        # the option table names the options; the config class also has other attributes (the table itself)
        return {key: getattr(config, key) for key in sorted(entry["name"] for entry in type(config).options)}

    # ---- spaces (gymnasium is imported lazily: the env itself needs only numpy) ---------------------
    @property
    def observation_space(self) -> Any:
        """Per-agent observation space, built from the bounds the native env declares."""
        from gymnasium import spaces

        low, high = self._bounds("obs_bounds")
        return spaces.Box(low=low, high=high, dtype=np.float32)

    @property
    def state_space(self) -> Any:
        from gymnasium import spaces

        low, high = self._bounds("state_bounds")
        return spaces.Box(low=low, high=high, dtype=np.float32)

    @property
    def action_space(self) -> Any:
        """Per-agent action space: Discrete(num_actions), or Box(-1, 1, (action_dim,)) for continuous envs (values
        outside are clipped by the env)."""
        from gymnasium import spaces

        if self.continuous:
            return spaces.Box(low=ACTION_LOW, high=ACTION_HIGH, shape=(self.action_dim,), dtype=np.float32)
        return spaces.Discrete(self.num_actions)

    def _bounds(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self._native, which)()

    # ---- protocol ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets every env. With ``seed``, reseeds the batch and restarts the episode count."""
        self._native.reset(None if seed is None else as_seed(seed))
        return self.obs, self._info

    def reset_envs(self, envs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Begins the next episode of the chosen envs (a bool mask [num_envs] or env indices) and leaves every other
        env exactly as it is; their rows of ``rewards``, ``terminated`` and ``truncated`` become 0/False. The batch
        seed is kept: each chosen env continues its own stream. Needs one ``reset()`` first."""
        self._native.reset_envs(as_env_mask(envs, self.num_envs))
        return self.obs, self._info

    def step(self, actions: Any) -> StepResult:
        """Steps every env with int actions [num_envs, num_agents] (float [num_envs, num_agents, action_dim] for
        continuous envs); bad actions raise before any env moves. Any array-like of any byte order, alignment and
        strides is accepted (integers of any width for discrete envs, float16/32/64 for continuous ones); it is
        read as a native C-contiguous copy where it is not one already.

        Returns ``(obs, rewards, terminated, truncated, info)``; ``info`` holds ``state``, ``action_mask``,
        ``final_obs``, ``final_state``, ``episode_return``, ``episode_length`` and the env's episode fields.
        """
        self._native.step(actions)
        return self._step_result

    def copy_outputs(self, rows: bool = True, obs: bool = True, flags: str = "split",
                     mask: str = "") -> tuple[Any, ...]:
        """Fresh copies of the last step's outputs in one native call, for adapters that hand arrays to a trainer.

        Returns ``(obs, rewards, terminated, truncated, done, action_mask, num_ended)``. With ``rows`` the arrays are
        [E * N, ...] (row ``e * N + i`` is agent ``i`` of copy ``e``; a copy's flags repeated for each agent), else
        [E, N, ...]. ``flags``: ``"split"`` (terminated and truncated), ``"done"`` (their or), ``"all"`` or
        ``"none"``; ``mask``: the action mask's dtype (``"bool"``, ``"int8"``, ``"float32"``) or ``""`` for none.
        What is not asked for is None; ``num_ended`` counts the copies that ended in the step.
        """
        return self._native.copy_outputs(rows, obs, flags, mask)

    def episode_stats(self, reduce: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
        """Means over the episodes finished since the last call (then forgotten).

        Returns ``{"episodes": n, "return": float[N], "length": float, <info field>: float or float[N]}``, or
        ``{"episodes": 0}`` when no episode finished.

        ``reduce`` (for batches that are slices of one, see ``first_env``): called, on every call, with this
        batch's sums as one float64 vector ``[episodes, length_sum, return_sum[N], info_sum...]``; it returns that
        vector summed over every slice (a distributed run's all-reduce), and the means are of all of them.
        """
        log = self._drain_log()
        if reduce is not None:
            log = self._reduced(log, reduce)
        count = int(log["episodes"])
        if count == 0:
            return {"episodes": 0}
        stats: dict[str, Any] = {
            "episodes": count,
            "return": log["return_sum"] / count,
            "length": log["length_sum"] / count,
        }
        n = self.num_agents
        for field, per_agent, offset in self._info_slots:
            values = log["info_sum"][offset:offset + (n if per_agent else 1)] / count
            stats[field] = values if per_agent else float(values[0])
        return stats

    def _drain_log(self) -> dict[str, Any]:
        return self._native.drain_episode_log()

    @staticmethod
    def _reduced(log: dict[str, Any], reduce: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        returns = np.asarray(log["return_sum"], dtype=np.float64)
        info = np.asarray(log["info_sum"], dtype=np.float64)
        flat = np.concatenate([[float(log["episodes"]), float(log["length_sum"])], returns, info])
        total = np.asarray(reduce(flat), dtype=np.float64)
        if total.shape != flat.shape:
            raise ValueError(f"episode_stats: reduce returned shape {total.shape}, expected {flat.shape}")
        n = returns.size
        return {"episodes": total[0], "length_sum": total[1], "return_sum": total[2:2 + n],
                "info_sum": total[2 + n:]}

    def render(self, env_index: int = 0) -> np.ndarray:
        """An RGB image (uint8[H, W, 3]) of env copy ``env_index``."""
        from hmasd.envs.render import render_state

        env_index = as_env_index(env_index, self.num_envs)
        details = self._native.details(env_index) if hasattr(self._native, "details") else None
        return render_state(self.name, self.options, self.state[env_index], details)

    def details(self, env_index: int = 0) -> dict[str, Any]:
        """Env-specific details of one copy (uav_coverage: positions, SINR, association, routes; docs/envs.md)."""
        if not hasattr(self._native, "details"):
            raise NotImplementedError(f"env {self.name!r} has no details()")
        return self._native.details(as_env_index(env_index, self.num_envs))

    def set_positions(self, env_index: int, uav_pos: Any, user_pos: Any = None) -> None:
        """uav_coverage: places the UAVs (float [U, 3]) and optionally the users (float [N, 2]) of one copy and
        re-evaluates its radio and observation at the current step (hand-built scenarios, baselines, tests)."""
        if not hasattr(self._native, "set_positions"):
            raise NotImplementedError(f"env {self.name!r} has no set_positions()")
        self._native.set_positions(as_env_index(env_index, self.num_envs), uav_pos, user_pos)

    def close(self) -> None:
        """Nothing to release: the native buffers are freed with the object."""

    # ---- pickling: an exact copy, including every env's state and RNG position ------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_envs": self.num_envs,
            "seed": self.seed,
            "first_env": self.first_env,
            "num_threads": self.num_threads,
            "autoreset": self.autoreset,
            "options": self._options,
            "snapshot": self._native.snapshot(),
        }

    def __setstate__(self, saved: dict[str, Any]) -> None:
        from hmasd.envs.registry import make

        # pickles from before first_env existed are of batches at env index 0
        clone = make(saved["name"], num_envs=saved["num_envs"], seed=saved["seed"],
                     first_env=saved.get("first_env", 0), num_threads=saved["num_threads"],
                     autoreset=saved["autoreset"], **saved["options"])
        clone._native.restore(saved["snapshot"])
        self.__dict__.update(clone.__dict__)

    def __repr__(self) -> str:
        return (f"VecEnv({self.name!r}, num_envs={self.num_envs}, num_agents={self.num_agents}, "
                f"obs_dim={self.obs_dim}, state_dim={self.state_dim}, "
                + (f"action_dim={self.action_dim})" if self.continuous else f"num_actions={self.num_actions})"))
