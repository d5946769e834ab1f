"""The native rollout engine from Python: k-step skill windows, the high-level ring, and the sync barrier."""

from __future__ import annotations

import numpy as np

from hmasd.envs.vec_env import VecEnv


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

    def __init__(self, env: VecEnv, horizon: int, skill_interval: int, num_team_skills: int, num_indiv_skills: int,
                 clock: str = "episode", ring_capacity: int | None = None) -> None:
        if not isinstance(env, VecEnv):
            raise TypeError(f"env must be a hmasd.envs.VecEnv, got {type(env).__name__}")
        for name, value in (("horizon", horizon), ("skill_interval", skill_interval),
                            ("num_team_skills", num_team_skills), ("num_indiv_skills", num_indiv_skills)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        self.env = env
        engine_type = type(env._native).Rollout  # each native env class names its engine (bind_rollout.cpp)
        self._native = engine_type(env._native, horizon, skill_interval, num_team_skills, num_indiv_skills, clock,
                                   ring_capacity or 0)
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
        """
        self._native.decide(np.asarray(env_ids), np.asarray(team_skill), np.asarray(indiv_skill), np.asarray(logp),
                            np.asarray(values))

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
        self._native.restore_counters(counters["policy_version"], counters["low_level_samples"],
                                      counters["high_level_transitions"], counters["force_closed_windows"])

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
