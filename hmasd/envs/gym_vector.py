"""A Gymnasium 1.x ``VectorEnv`` over one native batch: E env copies x N agents as E * N sub-envs (agents as rows,
parameter sharing), with the next-step, same-step and disabled autoreset modes; registered as ``hmasd/<env>-v0``.

``gymnasium.make_vec("hmasd/stag_hunt-v0", num_envs=64)`` builds 64 env copies, so ``num_envs`` of the result is
64 x 4 = 256 rows (as SuperSuit's ``pettingzoo_env_to_vec_env_v1`` counts them); ``num_env_copies`` and
``num_agents`` give the two factors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hmasd.envs.agent_rows import EPISODE_KEY, AgentRows
from hmasd.envs.registry import make
from hmasd.envs.render import RENDER_FPS
from hmasd.envs.vec_env import VecEnv

NATIVE_AUTORESET = {AutoresetMode.NEXT_STEP: "next_step", AutoresetMode.SAME_STEP: "same_step",
                    AutoresetMode.DISABLED: "disabled"}


def _autoreset_mode(value: AutoresetMode | str) -> AutoresetMode:
    """An ``AutoresetMode``, its value (``"NextStep"``) or the native name (``"next_step"``)."""
    if isinstance(value, AutoresetMode):
        return value
    for mode, native in NATIVE_AUTORESET.items():
        if value in (mode.value, native):
            return mode
    raise ValueError(f"autoreset_mode must be an AutoresetMode or one of "
                     f"{', '.join(repr(n) for n in NATIVE_AUTORESET.values())}, got {value!r}")


class HmasdVectorEnv(VectorEnv):
    """E native env copies, their N agents as E * N Gymnasium sub-envs (row ``e * N + i`` is agent ``i`` of copy
    ``e``); one native call per ``step``, no Python loop over envs or agents.

    Observations come back as fresh float32 arrays [E * N, obs_dim]; rewards float32 [E * N]; an env's agents
    terminate and truncate together. ``infos`` follows Gymnasium's vector format (a key per field, ``_key`` marks the
    rows that have it): discrete envs give ``action_mask`` (int8 [E * N, num_actions], for
    ``single_action_space.sample(mask)``); an ended episode gives ``episode_metrics`` (``return``, ``length`` and the
    env's episode fields per row) in the ending step's info, which same-step autoreset moves under ``final_info``
    next to ``final_obs``, as ``SyncVectorEnv`` does. The ``episode`` key is left to
    ``gymnasium.wrappers.vector.RecordEpisodeStatistics``.

    Args:
        env: a registered env name, or an existing native :class:`~hmasd.envs.VecEnv` (its autoreset must match).
        num_envs: env copies E (with a name).
        seed: the batch seed of the first ``reset()`` without one (None: fresh entropy; a seeded reset reseeds).
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (Gymnasium's default), ``SAME_STEP`` or ``DISABLED`` (finished
            rows must be reset with ``reset(options={"reset_mask": mask})``), or their names.
        render_mode: None or ``"rgb_array"`` (``render()`` returns one frame per env copy).
        num_threads: native threads stepping the batch (0: every usable CPU).
        **options: env options (docs/envs.md).
    """

    def __init__(self, env: str | VecEnv = "stag_hunt", num_envs: int = 1, seed: int | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, render_mode: str | None = None,
                 num_threads: int = 1, **options: Any) -> None:
        mode = _autoreset_mode(autoreset_mode)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if isinstance(env, VecEnv):
            if env.device != "cpu":
                raise ValueError(f"the env lives on {env.device}; HmasdVectorEnv hands NumPy arrays to its caller "
                                 "and needs a CPU VecEnv (HmasdTorchRLEnv keeps a CUDA env's tensors on the device)")
            if env.autoreset != NATIVE_AUTORESET[mode]:
                raise ValueError(f"the env was made with autoreset={env.autoreset!r}; this autoreset_mode needs "
                                 f"{NATIVE_AUTORESET[mode]!r}")
            self.vec = env
        else:
            self.vec = make(env, num_envs=num_envs, seed=seed, num_threads=num_threads,
                            autoreset=NATIVE_AUTORESET[mode], **options)
        self.rows = AgentRows(self.vec)
        self.num_envs = self.rows.num_rows
        self.num_env_copies = self.vec.num_envs
        self.num_agents = self.vec.num_agents
        self.render_mode = render_mode
        self.metadata = {"autoreset_mode": mode, "render_modes": ["rgb_array"], "render_fps": RENDER_FPS}
        self.single_observation_space = self.vec.observation_space
        self.single_action_space = self.vec.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._masked = not self.vec.continuous
        self._mask_dtype = "int8" if self._masked else ""
        self._every_row = np.ones(self.num_envs, dtype=bool)
        self._every_row.flags.writeable = False
        self._has_reset = False

    # ---- protocol ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets every env copy (reseeded with an int ``seed``), or with ``options={"reset_mask": bool[E * N]}``
        only the copies whose rows are set (the rows of one copy must agree; the others do not move).

        ``seed`` is one batch seed: env copy ``e`` then draws from the stream keyed by ``(seed, e)``. A list of
        per-row seeds is refused unless every entry is None (Gymnasium's "no seed"). ``reset_mask`` and ``seed``
        together are refused: a reseed restarts every copy.
        """
        seed = self._batch_seed(seed)
        mask = self._reset_mask(options)
        if mask is not None:
            if seed is not None:
                raise ValueError("reset(seed=..., options={'reset_mask': ...}): a seed restarts every env copy; "
                                 "reset the chosen ones without a seed")
            if not self._has_reset:
                raise RuntimeError("call reset() once before resetting chosen rows with a reset_mask")
            self.vec.reset_envs(mask)
        else:
            super().reset(seed=seed)  # seeds self.np_random, as Gymnasium's vector envs do
            self.vec.reset(seed)
            self._has_reset = True
        return self.rows.obs(), self._step_info()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Steps every env copy with one action per row ([E * N] ints, or [E * N, action_dim] floats)."""
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        vec = self.vec
        vec.step(self.rows.env_actions(actions))
        # every fresh output array in one native call: the bare step of a small env costs only tens of us
        obs, rewards, terminated, truncated, _, mask, num_ended = vec.copy_outputs(True, True, "split",
                                                                                 self._mask_dtype)
        info = {} if mask is None else {"action_mask": mask, "_action_mask": self._every_row}
        if num_ended:
            self._add_episode_info(info, vec.terminated | vec.truncated)
        return obs, rewards, terminated, truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One ``uint8[H, W, 3]`` frame per env copy (its agents share it) with ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            return None
        return tuple(self.vec.render(e) for e in range(self.num_env_copies))

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release: the native env is freed with this object."""

    # ---- helpers -------------------------------------------------------------------------------------
    @staticmethod
    def _batch_seed(seed: int | Sequence[int | None] | None) -> int | None:
        if seed is None or isinstance(seed, (int, np.integer)):
            return seed
        if isinstance(seed, Sequence) and all(s is None for s in seed):
            return None
        raise TypeError("seed must be one int (the batch seed; env copy e draws from the stream (seed, e)) or None, "
                        f"got {seed!r}")

    def _reset_mask(self, options: dict[str, Any] | None) -> np.ndarray | None:
        if not options:
            return None
        unknown = sorted(set(options) - {"reset_mask"})
        if unknown:
            raise ValueError(f"reset options {unknown} are not understood: only 'reset_mask' is; env options are "
                             "fixed when the env is made")
        return self.rows.env_mask(options["reset_mask"])

    def _step_info(self) -> dict[str, Any]:
        if not self._masked:
            return {}
        return {"action_mask": self.vec.action_mask.reshape(self.num_envs, -1).astype(np.int8),
                "_action_mask": self._every_row}

    def _add_episode_info(self, info: dict[str, Any], ended: np.ndarray) -> None:
        rows = self.rows.per_row(ended)
        vec = self.vec
        record: dict[str, Any] = {
            "return": np.where(rows, vec.episode_return.reshape(-1), 0.0).astype(np.float32),
            "length": np.where(rows, self.rows.per_row(vec.episode_length), 0).astype(np.int32),
        }
        for field, values in vec.episode_info.items():
            per_row = values.reshape(-1) if values.ndim == 2 else self.rows.per_row(values)
            record[field] = np.where(rows, per_row, 0.0).astype(np.float32)
        record.update({"_" + key: rows for key in list(record)})
        if self.metadata["autoreset_mode"] is not AutoresetMode.SAME_STEP:
            info[EPISODE_KEY], info["_" + EPISODE_KEY] = record, rows
            return
        env_ids = np.flatnonzero(ended)
        final_obs = np.full(self.num_envs, None, dtype=object)
        for row, last in zip(self.rows.rows_of(env_ids).tolist(), self.rows.ended_rows(env_ids)[0]):
            final_obs[row] = last  # Gymnasium's format: an object array, one observation per ended row
        info["final_obs"], info["_final_obs"] = final_obs, rows
        info["final_info"] = {EPISODE_KEY: record, "_" + EPISODE_KEY: rows}
        info["_final_info"] = rows

    def __repr__(self) -> str:
        return (f"HmasdVectorEnv({self.vec.name!r}, num_env_copies={self.num_env_copies}, "
                f"num_agents={self.num_agents}, autoreset_mode={self.metadata['autoreset_mode']})")


def make_vector_env(env: str, num_envs: int = 1, **kwargs: Any) -> HmasdVectorEnv:
    """The vector entry point of the ``hmasd/<env>-v0`` ids (``gymnasium.make_vec`` passes ``num_envs`` and the
    caller's keyword arguments)."""
    return HmasdVectorEnv(env, num_envs=num_envs, **kwargs)
