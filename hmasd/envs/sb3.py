"""A Stable-Baselines3 ``VecEnv`` over one native batch: E env copies x N agents as E * N SB3 sub-envs ("rows",
SuperSuit's parameter-sharing layout: row ``e * N + i`` is agent ``i`` of copy ``e``).

``HmasdSB3VecEnv("stag_hunt", num_envs=64)`` has ``num_envs`` = 64 x 4 = 256 rows and goes straight into
``PPO("MlpPolicy", env)`` or sb3-contrib's ``MaskablePPO`` (``action_masks()``), with no ``DummyVecEnv``, SuperSuit or
``VecMonitor`` around it: one native call steps every row.

What SB3 gets, per row: the per-agent observation and action spaces; fresh observation, reward and done arrays each
step (SB3 keeps the previous observations while stepping, so nothing returned aliases the native buffers); an
agent's ``done`` is its env copy's ``terminated or truncated`` (all agents of a copy end together, and the copy is
reset inside that step). ``infos`` is a list of E * N mappings. Rows without news share one read-only empty mapping
(building E * N dicts per step would cost more than the native step); the rows of copies that ended in the step get
fresh dicts, as ``DummyVecEnv`` plus ``Monitor`` would give them:

- ``terminal_observation``: the row's last observation (the returned one already starts the next episode);
- ``TimeLimit.truncated``: truncated and not terminated (SB3 bootstraps the value of those, one ``predict_values``
  call per row, which can be half of a rollout's time: :class:`TimeLimitBootstrap` makes it one call per step), or
  always False with ``time_limits="terminate"`` (SuperSuit's behaviour: a time limit counts as a termination, and
  SB3 skips its value bootstrap);
- ``episode``: ``{"r": return, "l": length, "t": seconds since this object was made}``, rounded as ``Monitor``
  rounds them, so SB3's ``rollout/ep_rew_mean``, ``evaluate_policy`` and callbacks work without a ``Monitor``;
- ``episode_metrics`` (:data:`~hmasd.envs.agent_rows.EPISODE_KEY`): hmasd's record of the episode (the agent's
  return, the length and the env's episode fields, docs/envs.md).

Because the rows already carry ``Monitor``'s record, ``env_is_wrapped(Monitor)`` says True, and a ``VecMonitor``
on top warns that it overwrites it (SB3's own warning); it is not needed.

:class:`TimeLimitBootstrap` is an SB3 callback for PPO, A2C and ``MaskablePPO`` that does their value bootstrap of
time-limited rows for all the rows of a step in one ``predict_values`` call instead of one call per row (with any
SB3 ``VecEnv``, not only this one).

This module imports stable-baselines3; ``import hmasd.envs`` does not import it (import it explicitly).
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv as SB3VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn, tile_images

from hmasd.envs._args import as_seed, fresh_seed
from hmasd.envs.agent_rows import EPISODE_KEY, AgentRows, gc_paused
from hmasd.envs.registry import make
from hmasd.envs.vec_env import VecEnv

__all__ = ["HmasdSB3VecEnv", "NO_NEWS", "TimeLimitBootstrap"]

NO_NEWS: Mapping[str, Any] = types.MappingProxyType({})
"""The info of every row whose episode did not end in the step: one shared, read-only empty mapping."""

MONITOR_DIGITS = 6
"""``Monitor`` rounds an episode's return and time to this many decimals."""

RENDER_MODES = (None, "rgb_array")
TIME_LIMITS = ("truncate", "terminate")

# Per-row methods: called through ``env_method``/``get_attr`` they answer for the row, not for the whole batch.
_ROW_METHODS = ("action_masks", "render")
# Attributes every row shares with the adapter itself (the rest is looked up on the native batch).
_ADAPTER_ATTRIBUTES = ("render_mode", "observation_space", "action_space", "metadata", "num_agents",
                       "num_env_copies", "time_limits")


class HmasdSB3VecEnv(SB3VecEnv):
    """E native env copies, their N agents as E * N SB3 sub-envs; one native call per step (module docstring).

    Seeding follows SB3: ``seed(s)`` is kept for the next ``reset()``, which reseeds the batch (env copy ``e``
    draws from the stream keyed by ``(s, e)``, so the same ``s`` repeats exactly); a ``reset()`` without a pending
    seed starts the next episodes of the current streams. An env made without a seed draws one from the OS, so
    unseeded copies differ; ``vec.seed`` tells which.

    Args:
        env: a registered env name, or an existing native :class:`~hmasd.envs.VecEnv` made with
            ``autoreset="same_step"`` (SB3's convention) on the CPU.
        num_envs: env copies E (with a name); ``num_envs`` of this object is E * N.
        seed: the batch seed (None: fresh entropy from the OS).
        num_threads: native threads stepping the batch (0: every usable CPU).
        render_mode: None or ``"rgb_array"`` (``get_images()``: one frame per row, shared by the rows of a copy).
        time_limits: ``"truncate"`` (SB3's convention: a time limit sets ``TimeLimit.truncated``, and SB3 bootstraps
            the value of the cut episode) or ``"terminate"`` (SuperSuit's: reported as a termination, no bootstrap;
            faster, and the value target is then biased at time limits).
        **options: env options (docs/envs.md).
    """

    def __init__(self, env: str | VecEnv = "stag_hunt", num_envs: int = 1, seed: int | None = None,
                 num_threads: int = 1, render_mode: str | None = None, time_limits: str = "truncate",
                 **options: Any) -> None:
        if render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if time_limits not in TIME_LIMITS:
            raise ValueError(f"time_limits must be 'truncate' or 'terminate', got {time_limits!r}")
        self.time_limits = time_limits
        self.vec = self._native_batch(env, num_envs, seed, num_threads, options)
        self.rows = AgentRows(self.vec)
        self.num_env_copies = self.vec.num_envs
        self.num_agents = self.vec.num_agents
        self.render_mode = render_mode
        self._row_attrs: dict[str, list[Any]] = {}
        self._actions: np.ndarray | None = None
        self._has_reset = False
        self._t_start = time.time()
        observation_space: spaces.Box = self.vec.observation_space
        action_space: spaces.Space[Any] = self.vec.action_space
        super().__init__(self.rows.num_rows, observation_space, action_space)

    @staticmethod
    def _native_batch(env: str | VecEnv, num_envs: int, seed: int | None, num_threads: int,
                      options: dict[str, Any]) -> VecEnv:
        if not isinstance(env, VecEnv):
            return make(env, num_envs=num_envs, seed=seed, num_threads=num_threads, autoreset="same_step", **options)
        if options:
            raise TypeError(f"env options {sorted(options)} were given with an existing VecEnv, whose options are "
                            "fixed; make the VecEnv with them instead")
        if env.autoreset != "same_step":
            raise ValueError(f"the env was made with autoreset={env.autoreset!r}; SB3 needs 'same_step' (the "
                             "step that ends an episode returns the next episode's first observation)")
        if env.device != "cpu":
            raise ValueError(f"the env lives on {env.device}; the SB3 adapter needs a CPU VecEnv")
        return env

    # ---- the step ------------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Resets every env copy, reseeded with the seed given to :meth:`seed` since the last reset, if any; returns
        the observations as float32 rows [E * N, obs_dim]."""
        seed = self._pending_seed()
        self._check_options(self._options)
        self.vec.reset(seed)
        self._reset_seeds()
        self._reset_options()
        self._actions = None
        self._has_reset = True
        return self.rows.obs()

    def step_async(self, actions: np.ndarray) -> None:
        """Takes one action per row: ints [E * N] (or [E * N, 1]), or floats [E * N, action_dim] for continuous
        envs. A wrong number of rows raises here; bad values raise in :meth:`step_wait` before any env moves."""
        if not self._has_reset:
            raise RuntimeError("call reset() before stepping")
        self._actions = self.rows.env_actions(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Steps every env copy once; returns ``(obs, rewards, dones, infos)`` (module docstring)."""
        if self._actions is None:
            raise RuntimeError("step_wait() needs a step_async(actions) first")
        vec, actions = self.vec, self._actions
        self._actions = None
        vec.step(actions)
        obs, rewards, _, _, dones, _, num_ended = vec.copy_outputs(True, True, "done", "")
        infos: list[Any] = [NO_NEWS] * self.num_envs
        if num_ended:
            with gc_paused():
                infos = self._episode_infos(infos, np.flatnonzero(vec.terminated | vec.truncated))
        return obs, rewards, dones, infos

    def _episode_infos(self, infos: list[Any], env_ids: np.ndarray) -> list[Any]:
        """``infos`` with fresh dicts at the rows of the copies ``env_ids`` that ended in the last step (one pass over
        those rows; when every copy ended, the fresh list replaces ``infos``)."""
        vec, n = self.vec, self.num_agents
        final_rows, truncated = self.rows.ended_rows(env_ids)
        if self.time_limits == "terminate":
            truncated = [False] * len(truncated)
        # Monitor's round(r, 6) on a float64 sum; for a float32 return, x * 1e6 is exact in float64, so NumPy's
        # multiply-rint-divide gives the same number as Python's round, without a call per row.
        returns = np.round(vec.episode_return[env_ids].reshape(-1).astype(np.float64), MONITOR_DIGITS).tolist()
        lengths = np.repeat(vec.episode_length[env_ids], n).tolist()
        elapsed = round(time.time() - self._t_start, MONITOR_DIGITS)
        fresh = [{"terminal_observation": final, "TimeLimit.truncated": cut,
                  "episode": {"r": ret, "l": length, "t": elapsed}, EPISODE_KEY: record}
                 for final, cut, ret, length, record in zip(final_rows, truncated, returns, lengths,
                                                            self.rows.episode_records(env_ids))]
        if len(fresh) == len(infos):
            return fresh
        for row, info in zip(self.rows.rows_of(env_ids).tolist(), fresh):
            infos[row] = info
        return infos

    def action_masks(self) -> np.ndarray:
        """Valid actions as bool rows [E * N, num_actions] (a copy), for sb3-contrib's ``MaskablePPO``."""
        return self.rows.action_masks()

    def close(self) -> None:
        """Releases the native env (its buffers are freed with it)."""
        self.vec.close()

    # ---- seeds and options ---------------------------------------------------------------------------
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Keeps ``seed`` (None: one drawn from the OS) for the next :meth:`reset`, as SB3 does. Returns each row's
        seed: the batch seed for every row (env copy ``e`` draws from the stream ``(seed, e)``, not ``seed + e``)."""
        batch_seed = fresh_seed() if seed is None else as_seed(seed)
        self._seeds = [batch_seed] * self.num_envs
        return list(self._seeds)

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """SB3's per-reset options. hmasd's envs take none (env options are fixed when the env is made), so only
        empty ones are accepted; anything else raises here, rather than being silently ignored at the reset."""
        self._check_options(options)
        super().set_options(options)

    def _pending_seed(self) -> int | None:
        seeds = {seed for seed in self._seeds if seed is not None}
        if not seeds:
            return None
        if len(seeds) > 1 or None in self._seeds:
            raise ValueError("the rows share one native batch, reseeded as a whole: give one seed through seed(s), "
                             f"not different ones per row (got {sorted(seeds)[:4]}...)")
        return seeds.pop()

    @staticmethod
    def _check_options(options: list[dict] | dict | None) -> None:
        given = [options] if isinstance(options, Mapping) or options is None else list(options)
        if any(given_options for given_options in given):
            raise ValueError(f"reset options are not supported (got {options!r}): env options are fixed when the "
                             "env is made; make a new HmasdSB3VecEnv to change them")

    # ---- attributes and methods of the rows -----------------------------------------------------------
    def _row_indices(self, indices: VecEnvIndices) -> list[int]:
        """``indices`` as row numbers, with Python's sequence rules (negative from the end; out of range raises)."""
        if indices is None:
            return list(range(self.num_envs))
        chosen = [indices] if isinstance(indices, (int, np.integer)) else list(indices)
        every_row = range(self.num_envs)
        try:
            return [every_row[int(i)] for i in chosen]
        except IndexError:
            raise IndexError(f"row indices {chosen} out of range for {self.num_envs} rows "
                             f"({self.num_env_copies} env copies x {self.num_agents} agents)") from None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The value of ``attr_name`` for each chosen row. A row is one agent of a shared native batch, so, in this
        order: values given to :meth:`set_attr` for that row; the per-row methods ``action_masks`` and ``render``
        (bound to the row); the adapter's ``render_mode``, spaces, ``metadata`` and sizes; then any public attribute
        of the native batch (``name``, ``seed``, ``options``, ...), the same object for every row."""
        rows = self._row_indices(indices)
        if attr_name in self._row_attrs:
            values = self._row_attrs[attr_name]
            missing = [row for row in rows if values[row] is _UNSET]
            if not missing:
                return [values[row] for row in rows]
            raise AttributeError(f"rows {missing[:4]} have no attribute {attr_name!r} (set_attr set it for others)")
        if attr_name in _ROW_METHODS:
            return [_RowMethod(self, attr_name, row) for row in rows]
        return [self._shared_attr(attr_name)] * len(rows)

    def has_attr(self, attr_name: str) -> bool:
        """Whether every row has ``attr_name`` (:meth:`get_attr`'s rules), without building a value per row:
        sb3-contrib asks for ``action_masks`` before every rollout."""
        if attr_name in self._row_attrs:
            return _UNSET not in self._row_attrs[attr_name]
        if attr_name in _ROW_METHODS:
            return True
        try:
            self._shared_attr(attr_name)
        except AttributeError:
            return False
        return True

    def _shared_attr(self, attr_name: str) -> Any:
        if attr_name in _ADAPTER_ATTRIBUTES:
            return getattr(self, attr_name)
        if not attr_name.startswith("_") and hasattr(self.vec, attr_name):
            return getattr(self.vec, attr_name)
        raise AttributeError(f"the rows of {self.vec.name!r} have no attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Sets ``attr_name`` to ``value`` for the chosen rows only; :meth:`get_attr` and :meth:`env_method` read it
        back per row. Attributes of the shared batch and the adapter (see :meth:`get_attr`) cannot be changed for
        some rows: setting one raises AttributeError."""
        if attr_name not in self._row_attrs:
            try:
                self._shared_attr(attr_name)
            except AttributeError:
                pass
            else:
                raise AttributeError(f"{attr_name!r} belongs to the whole native batch that the rows share (or to "
                                     "the adapter); it cannot be set per row")
            if attr_name in _ROW_METHODS:
                raise AttributeError(f"{attr_name!r} is a per-row method of the adapter; it cannot be replaced")
            self._row_attrs[attr_name] = [_UNSET] * self.num_envs
        values = self._row_attrs[attr_name]
        for row in self._row_indices(indices):
            values[row] = value

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Calls ``method_name`` for each chosen row; returns one result per row.

        ``action_masks`` gives each row's bool[num_actions] mask from one copy of the whole mask buffer (this is
        how sb3-contrib's ``get_action_masks`` asks, every step); ``render`` each row's frame (one render per env
        copy). A callable given to :meth:`set_attr` is called once per row. A method of the native batch (e.g.
        ``episode_stats``) acts on the whole batch, so it is called once and every chosen row gets that result.
        """
        if method_name == "action_masks":
            masks = self.vec.action_mask.reshape(self.num_envs, -1)
            return list(masks.copy() if indices is None else masks[self._row_indices(indices)])
        rows = self._row_indices(indices)
        if method_name == "render":
            return self._row_frames(rows)
        if method_name in self._row_attrs:
            return [method(*method_args, **method_kwargs) for method in self.get_attr(method_name, rows)]
        method = self._shared_attr(method_name)
        if not callable(method):
            raise TypeError(f"{method_name!r} of {self.vec.name!r} is not a method (use get_attr)")
        return [method(*method_args, **method_kwargs)] * len(rows) if rows else []

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """True for SB3's ``Monitor`` (and the classes it derives from), False for any other wrapper: each row
        already reports ``Monitor``'s ``info["episode"]`` (so ``evaluate_policy`` counts its episodes from it), and
        nothing else wraps a row."""
        wrapped = isinstance(wrapper_class, type) and issubclass(Monitor, wrapper_class)
        return [wrapped] * len(self._row_indices(indices))

    # ---- rendering -----------------------------------------------------------------------------------
    def get_images(self) -> Sequence[np.ndarray | None]:
        """One ``uint8[H, W, 3]`` frame per row with ``render_mode="rgb_array"`` (the rows of a copy share the
        same array); without a render mode, a list of None (SB3's ``DummyVecEnv`` rule)."""
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        return self._row_frames(range(self.num_envs))

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: every env copy's frame once, tiled (SB3's layout); other modes go to
        SB3's rules (warnings and None, or OpenCV for ``"human"``)."""
        if (mode or self.render_mode) == "rgb_array" and self.render_mode == "rgb_array":
            return tile_images([self.vec.render(e) for e in range(self.num_env_copies)])
        return super().render(mode=mode)

    def _row_frames(self, rows: Iterable[int]) -> list[np.ndarray]:
        frames: dict[int, np.ndarray] = {}
        n = self.num_agents
        out = []
        for row in rows:  # only when rendering
            copy = row // n
            if copy not in frames:
                frames[copy] = self.vec.render(copy)
            out.append(frames[copy])
        return out

    def __repr__(self) -> str:
        return (f"HmasdSB3VecEnv({self.vec.name!r}, num_env_copies={self.num_env_copies}, "
                f"num_agents={self.num_agents}, num_envs={self.num_envs})")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


class _RowMethod:
    """A per-row method bound to one row, as ``get_attr`` hands it out (``has_attr`` and sb3-contrib's
    ``is_masking_supported`` ask for it)."""

    def __init__(self, env: HmasdSB3VecEnv, name: str, row: int) -> None:
        self._env, self._name, self._row = env, name, row

    def __call__(self) -> Any:
        return self._env.env_method(self._name, indices=[self._row])[0]

    def __repr__(self) -> str:
        return f"<{self._name} of row {self._row}>"


BOOTSTRAPPED = "TimeLimit.bootstrapped"
"""Info key :class:`TimeLimitBootstrap` sets (True) on the rows it bootstrapped, whose ``TimeLimit.truncated`` it
cleared."""


class TimeLimitBootstrap(BaseCallback):
    """SB3's value bootstrap of episodes cut by a time limit, batched: ``learn(..., callback=TimeLimitBootstrap())``.

    After each ``env.step`` SB3's on-policy algorithms add ``gamma * V(terminal_observation)`` to the reward of every
    row whose info says ``TimeLimit.truncated``, calling ``policy.predict_values`` once per row. When all the copies of
    a batch reach their time limit together (E * N rows here), those calls cost more than the rest of the rollout.
    This callback runs in the same step, just before that loop: it computes the values of all the step's truncated
    rows in one call, adds ``gamma * V`` to their rewards (the same sum SB3 makes, in float32), and marks the rows
    done (``TimeLimit.truncated`` False, :data:`BOOTSTRAPPED` True), so that SB3's loop skips them; callbacks after
    it in a ``CallbackList`` see the rows so marked. The targets are SB3's up to float rounding (a product of many
    rows may round differently from one of a single row).

    For ``OnPolicyAlgorithm`` subclasses whose bootstrap is ``predict_values(obs)`` (PPO, A2C, sb3-contrib's
    ``MaskablePPO``); recurrent policies (``RecurrentPPO`` bootstraps with the LSTM state) and off-policy algorithms
    (their replay buffer reads ``TimeLimit.truncated``) are refused when ``learn`` starts. Only rows whose terminal
    observation is an array are batched; any other row is left to SB3's own loop.
    """

    def _init_callback(self) -> None:
        model = self.model
        if not isinstance(model, OnPolicyAlgorithm):
            raise TypeError(f"TimeLimitBootstrap is for on-policy algorithms (PPO, A2C, MaskablePPO); "
                            f"{type(model).__name__} is not one (its replay buffer reads TimeLimit.truncated itself)")
        if hasattr(model, "_last_lstm_states"):  # sb3-contrib's RecurrentPPO
            raise TypeError(f"TimeLimitBootstrap cannot batch {type(model).__name__}'s bootstrap: a recurrent policy's "
                            "value of a terminal observation needs that row's LSTM state")

    def _on_step(self) -> bool:
        dones, infos, rewards = self.locals["dones"], self.locals["infos"], self.locals["rewards"]
        rows = [row for row in np.flatnonzero(dones).tolist()
                if infos[row].get("TimeLimit.truncated", False)
                and isinstance(infos[row].get("terminal_observation"), np.ndarray)]
        if not rows:
            return True
        policy = self.model.policy
        terminal_obs, _ = policy.obs_to_tensor(np.stack([infos[row]["terminal_observation"] for row in rows]))
        with torch.no_grad():
            values = policy.predict_values(terminal_obs).reshape(len(rows))
        rewards[rows] += self.model.gamma * values.cpu().numpy().astype(rewards.dtype, copy=False)
        for row in rows:
            # the row's info is read-only only where no episode ended (NO_NEWS); these are fresh dicts
            infos[row]["TimeLimit.truncated"] = False
            infos[row][BOOTSTRAPPED] = True
        return True
