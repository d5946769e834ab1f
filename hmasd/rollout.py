"""The native rollout engine from Python: k-step skill windows, the high-level ring, and the sync barrier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hmasd.envs._args import INT32_MAX, as_choice, as_int
from hmasd.envs.vec_env import VecEnv


def _engine_args(horizon: Any, skill_interval: Any, num_team_skills: Any, num_indiv_skills: Any, clock: Any,
                 ring_capacity: Any) -> tuple[int, int, int, int, str, int]:
    """The engine's arguments checked by name (types and int32 ranges; the native side checks how they relate)."""
    ring = 0 if ring_capacity is None else as_int(ring_capacity, "ring_capacity", 1, 2**30,
                                                   " (None for the default num_envs * horizon)")
    return (as_int(horizon, "horizon", 1, INT32_MAX), as_int(skill_interval, "skill_interval", 1, INT32_MAX),
            as_int(num_team_skills, "num_team_skills", 1, INT32_MAX),
            as_int(num_indiv_skills, "num_indiv_skills", 1, INT32_MAX),
            as_choice(clock, "clock", ("episode", "global")), ring)


class RolloutEngine:
    """Collects one on-policy batch of T steps from every env of a :class:`VecEnv`, natively.

    Per step: read :attr:`needs_decision` and the current :attr:`obs` / :attr:`state` / :attr:`action_mask`
    (written in place into the batch: ``env.obs`` is stale inside a batch), run the high level for exactly those
    envs and hand the result to
    :meth:`decide`, then :meth:`step` with the low-level actions, log-probs and values. After T steps the engine
    closes every open window (flagged truncated), refuses further steps and reports :attr:`ready`; the learner
    updates and calls :meth:`resume`, which bumps :attr:`policy_version` and asks every env for a fresh decision.

    Args:
        env: the batched env (``autoreset="same_step"``); the engine steps it.
        horizon: T, env steps per env per batch.
        skill_interval: k, env steps per skill window.
        num_team_skills, num_indiv_skills: n_Z and n_z (decisions outside these ranges are rejected).
        clock: ``"episode"`` (a window closes after k steps or when its episode ends; a new episode starts a new
            window) or ``"global"`` (the official code's chunk-relative clock: windows close at batch steps
            k, 2k, ... and may span an episode end).
        ring_capacity: high-level ring slots; the default E * T can never overflow. A smaller ring raises
            :class:`OverflowError` before a step that could overflow it.
    """

    def __new__(cls, env: Any = None, *args: Any, **kwargs: Any) -> RolloutEngine:
        # An engine lives where its env lives: a CUDA env gets the device engine.
        if cls is RolloutEngine and getattr(env, "device", "cpu") != "cpu":
            cls = DeviceRolloutEngine
        return super().__new__(cls)

    def __init__(self, env: VecEnv, horizon: int, skill_interval: int, num_team_skills: int, num_indiv_skills: int,
                 clock: str = "episode", ring_capacity: int | None = None) -> None:
        if not isinstance(env, VecEnv):
            raise TypeError(f"env must be a hmasd.envs.VecEnv, got {type(env).__name__}")
        args = _engine_args(horizon, skill_interval, num_team_skills, num_indiv_skills, clock, ring_capacity)
        self.env = env
        engine_type = type(env._native).Rollout  # each native env class names its engine (bind_rollout.cpp)
        self._native = engine_type(env._native, *args)
        buffers = self._native.buffers()
        self._low: dict[str, np.ndarray] = buffers["low"]
        self._high: dict[str, np.ndarray] = buffers["high"]
        self.windows: dict[str, np.ndarray] = buffers["windows"]
        self.needs_decision: np.ndarray = self.windows["needs_decision"]

    # ---- protocol ------------------------------------------------------------------------------
    def decision_env_ids(self) -> np.ndarray:
        """Indices of the envs that need a high-level decision now, ascending."""
        return np.flatnonzero(self.needs_decision).astype(np.int32)

    def decide(self, env_ids: np.ndarray, team_skill: np.ndarray, indiv_skill: np.ndarray, logp: np.ndarray,
               values: np.ndarray) -> None:
        """Opens a skill window in each env of ``env_ids`` (exactly the envs that need one).

        Shapes with D = len(env_ids): team_skill int[D], indiv_skill int[D, N], logp and values float32[D, N+1]
        (token 0 is Z, token i + 1 is z_i). The decision-time state and observations are taken from the env.
        Integers may come in any width, every array in any byte order, alignment and strides; values that a
        conversion would change (floats as skills, float64 log-probs) are refused by name.
        """
        self._native.decide(env_ids, team_skill, indiv_skill, logp, values)

    def step(self, actions: np.ndarray, logp: np.ndarray | None = None, values: np.ndarray | None = None) -> None:
        """Steps every env: int actions [E, N] (float [E, N, action_dim] for continuous envs) and the low-level
        float32 log-probs and values [E, N].

        While collection is disabled the env is stepped with ``actions`` alone and nothing is recorded.
        """
        if not self._native.collecting:
            self.env.step(actions)
            return
        if logp is None or values is None:
            raise ValueError("step() while collecting needs logp and values")
        self._native.step(actions, logp, values)

    def resume(self) -> None:
        """Starts the next batch after the update: policy version + 1, every env decides afresh."""
        self._native.resume()

    def disable_collection(self) -> None:
        """Steps pass straight to the env and nothing is recorded (e.g. evaluation between batches)."""
        self._native.disable_collection()

    def enable_collection(self) -> None:
        """Starts a fresh batch under the current policy version."""
        self._native.enable_collection()

    # ---- the current observation (written in place into the batch: read it here, not from env.obs) -----------
    def _current(self, key: str, env_buffer: np.ndarray) -> np.ndarray:
        t = self.steps_in_batch
        return self._low[key][t] if 0 < t < self._native.horizon else env_buffer

    @property
    def obs(self) -> np.ndarray:
        """float32[E, N, O] observations the next step acts on. While a batch is collected the env writes them
        straight into the batch (row t), so ``env.obs`` is only current at batch boundaries."""
        return self._current("obs", self.env.obs)

    @property
    def state(self) -> np.ndarray:
        """float32[E, S] global state the next step acts on (see :attr:`obs`)."""
        return self._current("state", self.env.state)

    @property
    def action_mask(self) -> np.ndarray:
        """bool[E, N, A] valid actions of the next step (see :attr:`obs`)."""
        return self._current("action_mask", self.env.action_mask)

    # ---- state and counters ----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once the batch holds T steps: update, then :meth:`resume`."""
        return self._native.ready

    @property
    def policy_version(self) -> int:
        return self._native.policy_version

    @property
    def steps_in_batch(self) -> int:
        return self._native.steps_in_batch

    def counters(self) -> dict[str, int]:
        """Policy version, samples and transitions so far, windows force-closed at barriers, ring overflows."""
        g = self._native
        return {
            "policy_version": g.policy_version,
            "low_level_samples": g.samples_collected,
            "high_level_transitions": g.transitions_emitted,
            "high_level_in_batch": g.transitions_in_batch,
            "force_closed_windows": g.forced_closed,
            "ring_overflows": g.ring_overflows,
        }

    def restore_counters(self, counters: dict[str, int]) -> None:
        """Sets the counters from :meth:`counters` of a checkpoint (only at the start of a batch)."""
        keys = ("policy_version", "low_level_samples", "high_level_transitions", "force_closed_windows")
        if not isinstance(counters, Mapping):
            raise TypeError(f"restore_counters() needs the dict of counters(), got {type(counters).__name__}")
        missing = [key for key in keys if key not in counters]
        if missing:
            raise KeyError(f"restore_counters(): the counters lack {', '.join(missing)}")
        version, samples, emitted, forced = (as_int(counters[key], key, 0, 2**63 - 1) for key in keys)
        self._native.restore_counters(as_int(version, "policy_version", 0, INT32_MAX - 1), samples, emitted, forced)

    # ---- the batch ------------------------------------------------------------------------------
    def low_level(self) -> dict[str, np.ndarray]:
        """Views [t, E, ...] of the steps collected in this batch (valid until :meth:`resume`).

        Keys: obs, state, action_mask, actions, logp, values, rewards, terminated, truncated, team_skill,
        indiv_skill, policy_version, and final_obs/final_state (meaningful where the episode ended).
        """
        t = self.steps_in_batch
        return {key: value[:t] for key, value in self._low.items()}

    def next_observations(self) -> tuple[np.ndarray, np.ndarray]:
        """(next_obs [t, E, N, O], next_state [t, E, S]): what each step led to, before any auto-reset."""
        low = self.low_level()
        t = self.steps_in_batch
        next_obs = np.empty_like(low["obs"])
        next_state = np.empty_like(low["state"])
        next_obs[:-1], next_state[:-1] = low["obs"][1:], low["state"][1:]
        if t:
            next_obs[-1], next_state[-1] = self.obs, self.state
        ended = low["terminated"] | low["truncated"]
        next_obs[ended] = low["final_obs"][ended]
        next_state[ended] = low["final_state"][ended]
        return next_obs, next_state

    def high_level(self) -> dict[str, np.ndarray]:
        """The published transitions of this batch, copied, in (env, start) order.

        Each env fills its own range of the ring in window order, so the order comes from reading the ranges one
        after the other: no sort.

        Keys: env, start, length, team_skill, indiv_skill [M, N], logp/values [M, N+1], reward_sum [M, N],
        terminated, truncated, at_barrier, policy_version, state [M, S], obs [M, N, O].
        """
        count = self._high["count"]
        slots = self._native.slots_per_env
        used = np.arange(slots) < count[:, None]  # [E, slots]: slot j of env e holds a window of this batch
        order = np.flatnonzero(used.ravel())
        order = order[self._high["published"][order].astype(bool)]
        high = {key: value[order] for key, value in self._high.items() if key not in ("published", "count")}
        # the decision-time state and observations are the batch rows the windows started at
        high["state"] = self._low["state"][high["start"], high["env"]]
        high["obs"] = self._low["obs"][high["start"], high["env"]]
        return high

    def __repr__(self) -> str:
        g = self._native
        return (f"RolloutEngine({self.env.name!r}, num_envs={g.num_envs}, horizon={g.horizon}, "
                f"skill_interval={g.skill_interval}, clock={g.clock!r}, policy_version={g.policy_version})")


class DeviceRolloutEngine(RolloutEngine):
    """The rollout engine of a CUDA env (:class:`~hmasd.envs.device.DeviceVecEnv`), on its device.

    The same protocol and buffers as :class:`RolloutEngine`, as torch tensors in device memory. For a loop with no
    host sync per step, use :meth:`decide_all` (the coordinator's output for every env; the engine keeps the rows of
    the envs that need a decision, selected on the device) and ``check=False`` (a rejected call is skipped on the
    device and raised by :meth:`check_errors`, which discards the batch). The ring always has T slots per env.
    """

    def __init__(self, env: VecEnv, horizon: int, skill_interval: int, num_team_skills: int, num_indiv_skills: int,
                 clock: str = "episode", ring_capacity: int | None = None) -> None:
        from hmasd.envs.device import DeviceVecEnv, as_tensors

        if not isinstance(env, DeviceVecEnv):
            raise TypeError(f"env must be a hmasd DeviceVecEnv, got {type(env).__name__}")
        args = _engine_args(horizon, skill_interval, num_team_skills, num_indiv_skills, clock, ring_capacity)
        self.env = env
        self._device = env._native.device
        self._native = env._native.make_engine(*args)
        self._clock, self._skill_interval = clock, skill_interval
        self._buffers = self._native.buffers(self._device)
        tensors = as_tensors(self._buffers)
        self._low = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("low/")}
        self._high = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("high/")}
        self.windows = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("windows/")}
        self.needs_decision = self.windows["needs_decision"]

    @property
    def _stream(self) -> int:
        return self.env._stream

    def decision_env_ids(self) -> Any:
        """Indices (int32 device tensor) of the envs that need a decision now, ascending (one host sync)."""
        import torch

        return torch.nonzero(self.needs_decision).flatten().to(torch.int32)

    def decide(self, env_ids: Any, team_skill: Any, indiv_skill: Any, logp: Any, values: Any,
               check: bool = True) -> None:
        self._native.decide(self._device, self.env.num_agents, env_ids, team_skill, indiv_skill, logp, values,
                            self._stream, check)

    def decide_all(self, team_skill: Any, indiv_skill: Any, logp: Any, values: Any, check: bool = True) -> None:
        """Decisions for all E envs (int32 [E], int32 [E, N], float32 [E, N+1] twice); rows of envs that need no
        decision are ignored."""
        self._native.decide_all(self._device, self.env.num_envs, self.env.num_agents, team_skill, indiv_skill, logp,
                                values, self._stream, check)

    def step(self, actions: Any, logp: Any = None, values: Any = None, check: bool = True) -> None:
        if logp is None or values is None:
            raise ValueError("step() needs logp and values")
        self._native.step(self.env._native, actions, logp, values, self._stream, check)

    def check_errors(self) -> None:
        self._native.check_errors(self._stream)

    def resume(self) -> None:
        self._native.resume(self._stream)

    def disable_collection(self) -> None:
        raise NotImplementedError("collection cannot be disabled on a CUDA engine; evaluate on a CPU env")

    def enable_collection(self) -> None:
        raise NotImplementedError("collection cannot be disabled on a CUDA engine; evaluate on a CPU env")

    def counters(self) -> dict[str, int]:
        g, s = self._native, self._stream
        return {
            "policy_version": g.policy_version,
            "low_level_samples": g.samples_collected,
            "high_level_transitions": g.transitions_emitted(s),
            "high_level_in_batch": g.transitions_in_batch(s),
            "force_closed_windows": g.forced_closed(s),
            "ring_overflows": 0,
        }

    def restore_counters(self, counters: dict[str, int]) -> None:
        self._native.restore_counters(counters["policy_version"], counters["low_level_samples"],
                                      counters["high_level_transitions"], counters["force_closed_windows"],
                                      self._stream)

    def next_observations(self) -> tuple[Any, Any]:
        import torch

        low = self.low_level()
        t = self.steps_in_batch
        next_obs, next_state = torch.empty_like(low["obs"]), torch.empty_like(low["state"])
        next_obs[:-1], next_state[:-1] = low["obs"][1:], low["state"][1:]
        if t:
            next_obs[-1], next_state[-1] = self.obs, self.state
        # torch.where, not boolean indexing: a boolean index would wait for the device to count the rows
        ended = low["terminated"] | low["truncated"]
        next_obs = torch.where(ended[:, :, None, None], low["final_obs"], next_obs)
        next_state = torch.where(ended[:, :, None], low["final_state"], next_state)
        return next_obs, next_state

    def high_level(self) -> dict[str, Any]:
        """The published transitions of this batch in (env, start) order: each env's range of the ring, one after
        the other, gathered on the device (one host sync, for the count)."""
        import torch

        count, slots = self._high["count"], self._native.slots_per_env
        used = torch.arange(slots, device=count.device) < count[:, None]
        order = torch.nonzero(used.flatten() & self._high["published"].bool()).flatten()
        high = {key: value[order] for key, value in self._high.items() if key not in ("published", "count")}
        start, env = high["start"].long(), high["env"].long()
        high["state"] = self._low["state"][start, env]
        high["obs"] = self._low["obs"][start, env]
        return high

    def __repr__(self) -> str:
        return (f"DeviceRolloutEngine({self.env.name!r}, num_envs={self.env.num_envs}, device={self.env.device!r}, "
                f"horizon={self._native.horizon}, skill_interval={self._skill_interval}, clock={self._clock!r})")
