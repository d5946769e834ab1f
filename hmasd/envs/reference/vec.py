"""A batch of reference env copies stepped in a Python loop with the batched protocol of docs/envs.md.

It presents the same attributes and methods as the native VecEnv facade so that tests can compare them field by field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hmasd.envs.reference.alice_and_bob import AliceAndBobRef
from hmasd.envs.reference.philox import EnvRng
from hmasd.envs.reference.stag_hunt import StagHuntRef
from hmasd.envs.reference.uav_coverage import UavCoverageRef

REFERENCE_ENVS: dict[str, type[AliceAndBobRef] | type[StagHuntRef] | type[UavCoverageRef]] = {
    "alice_and_bob": AliceAndBobRef,
    "stag_hunt": StagHuntRef,
    "uav_coverage": UavCoverageRef,
}

AUTORESET_MODES = ("same_step", "next_step", "disabled")


class ReferenceVecEnv:
    """`num_envs` copies of one reference env; env e draws from EnvRng(seed, first_env + e).

    The arrays (`obs`, `state`, `rewards`, ...) are allocated once and overwritten in place by every call, like the
    native buffers: copy them to keep a value across steps.
    """

    def __init__(self, name: str, num_envs: int, seed: int = 0, autoreset: str = "same_step", first_env: int = 0,
                 **options: Any) -> None:
        if name not in REFERENCE_ENVS:
            raise ValueError(f"unknown env {name!r}; known: {sorted(REFERENCE_ENVS)}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if autoreset not in AUTORESET_MODES:
            raise ValueError(f"autoreset must be one of {AUTORESET_MODES}, got {autoreset!r}")
        if not 0 <= first_env <= 2**32 - num_envs:
            raise ValueError(f"first_env must be in [0, 2**32 - num_envs], got {first_env}")
        self.name = name
        self.num_envs = int(num_envs)
        self.seed = int(seed)
        self.autoreset = autoreset
        self.first_env = int(first_env)
        self.envs = [REFERENCE_ENVS[name](self.seed, self.first_env + e, **options) for e in range(self.num_envs)]
        first = self.envs[0]
        self.num_agents: int = first.num_agents
        self.obs_dim: int = first.obs_dim
        self.state_dim: int = first.state_dim
        self.num_actions: int = first.num_actions
        # Envs with continuous actions take float [E, N, action_width]; discrete ones int [E, N].
        self.action_type: str = getattr(first, "action_type", "discrete")
        self.action_width: int = getattr(first, "action_width", 1)

        e, n = self.num_envs, self.num_agents
        self.obs = np.zeros((e, n, self.obs_dim), dtype=np.float32)
        self.state = np.zeros((e, self.state_dim), dtype=np.float32)
        self.rewards = np.zeros((e, n), dtype=np.float32)
        self.terminated = np.zeros(e, dtype=bool)
        self.truncated = np.zeros(e, dtype=bool)
        self.action_mask = np.zeros((e, n, self.num_actions), dtype=bool)
        self.final_obs = np.zeros((e, n, self.obs_dim), dtype=np.float32)
        self.final_state = np.zeros((e, self.state_dim), dtype=np.float32)
        self.episode_return = np.zeros((e, n), dtype=np.float32)
        self.episode_length = np.zeros(e, dtype=np.int32)
        self.episode_info: dict[str, np.ndarray] = {
            key: np.zeros((e, *np.shape(value)), dtype=np.float32) for key, value in first.episode_info().items()
        }

        self._running_return = np.zeros((e, n), dtype=np.float32)
        self._running_length = np.zeros(e, dtype=np.int64)
        self._finished = np.zeros(e, dtype=bool)
        self._has_reset = False
        self._clear_stats()

    # --- episode statistics ------------------------------------------------------------------------

    def _clear_stats(self) -> None:
        self._stats_episodes = 0
        self._stats_return = np.zeros(self.num_agents, dtype=np.float64)
        self._stats_length = 0.0
        self._stats_info = {
            key: np.zeros(value.shape[1:], dtype=np.float64) for key, value in self.episode_info.items()
        }

    def episode_stats(self) -> dict[str, Any]:
        """Means over the episodes finished since the last call (then cleared); {"episodes": 0} if none."""
        count = self._stats_episodes
        if count == 0:
            return {"episodes": 0}
        stats: dict[str, Any] = {
            "episodes": count,
            "return": (self._stats_return / count).astype(np.float32),
            "length": self._stats_length / count,
        }
        for key, total in self._stats_info.items():
            mean = total / count
            stats[key] = float(mean) if mean.ndim == 0 else mean.astype(np.float32)
        self._clear_stats()
        return stats

    # --- protocol ----------------------------------------------------------------------------------

    def _write_views(self, e: int) -> None:
        env = self.envs[e]
        self.obs[e] = env.observe()
        self.state[e] = env.global_state()
        self.action_mask[e] = env.action_mask()

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reset every env: with a seed, reseed and restart at episode 0; without, episode + 1 (0 the first time)."""
        if seed is not None:
            self.seed = int(seed)
            for e, env in enumerate(self.envs):
                env.rng = EnvRng(self.seed, self.first_env + e)
        for env in self.envs:
            episode = 0 if seed is not None or not self._has_reset else env.episode + 1
            env.reset(episode)
        self._has_reset = True
        self._running_return[:] = 0.0
        self._running_length[:] = 0
        self._finished[:] = False
        self.rewards[:] = 0.0
        self.terminated[:] = False
        self.truncated[:] = False
        for e in range(self.num_envs):
            self._write_views(e)
        return self.obs, {"state": self.state, "action_mask": self.action_mask}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        if not self._has_reset:
            raise RuntimeError("step() before reset(): call reset() first")
        actions = np.asarray(actions)
        if self.action_type == "continuous":
            self._check_continuous(actions)
        else:
            self._check_discrete(actions)
        # Checked for the whole batch first so that a refused step changes no env.
        if self.autoreset == "disabled" and self._finished.any():
            raise RuntimeError(
                f"env(s) {np.flatnonzero(self._finished).tolist()} finished their episode and autoreset is "
                "'disabled': call reset() before stepping again"
            )
        for e, env in enumerate(self.envs):
            if self._finished[e]:  # next_step: the step after an episode's end begins the next one instead
                self._begin_next_episode(e)
                continue
            env_actions = actions[e] if self.action_type == "continuous" else actions[e].tolist()
            rewards, terminated, truncated = env.step(env_actions)
            self.rewards[e] = rewards
            self.terminated[e] = terminated
            self.truncated[e] = truncated
            self._running_return[e] += rewards
            self._running_length[e] += 1
            if terminated or truncated:
                self._end_episode(e)
            self._write_views(e)
        info = {
            "state": self.state,
            "action_mask": self.action_mask,
            "final_obs": self.final_obs,
            "final_state": self.final_state,
            "episode_return": self.episode_return,
            "episode_length": self.episode_length,
            **self.episode_info,
        }
        return self.obs, self.rewards, self.terminated, self.truncated, info

    def reset_envs(self, chosen: np.ndarray) -> None:
        """Begins the next episode of the envs flagged in ``chosen`` (bool [E]); the others stay as they are."""
        if not self._has_reset:
            raise RuntimeError("call reset() once before resetting chosen envs")
        for e in np.flatnonzero(chosen):
            self._begin_next_episode(int(e))

    def _begin_next_episode(self, e: int) -> None:
        self.envs[e].reset(self.envs[e].episode + 1)
        self._finished[e] = False
        self._running_return[e] = 0.0
        self._running_length[e] = 0
        self.rewards[e] = 0.0
        self.terminated[e] = False
        self.truncated[e] = False
        self._write_views(e)

    def _check_discrete(self, actions: np.ndarray) -> None:
        if actions.shape != (self.num_envs, self.num_agents) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be an integer array of shape {(self.num_envs, self.num_agents)}, "
                f"got {actions.dtype} {actions.shape}"
            )
        if actions.size and (actions.min() < 0 or actions.max() >= self.num_actions):
            raise ValueError(
                f"actions must be in [0, {self.num_actions}), got values from {actions.min()} to {actions.max()}"
            )

    def _check_continuous(self, actions: np.ndarray) -> None:
        shape = (self.num_envs, self.num_agents, self.action_width)
        real = np.issubdtype(actions.dtype, np.floating) or np.issubdtype(actions.dtype, np.integer)
        if actions.shape != shape or not real:
            raise ValueError(f"actions must be a real array of shape {shape}, got {actions.dtype} {actions.shape}")
        if not np.isfinite(actions).all():
            raise ValueError("actions must be finite")

    def details(self, env_index: int) -> dict[str, Any]:
        """The env copy's own details (positions, links, metrics of its last radio evaluation), if it has any."""
        if not 0 <= env_index < self.num_envs:
            raise ValueError(f"env_index must be in [0, {self.num_envs}), got {env_index}")
        env = self.envs[env_index]
        if not hasattr(env, "details"):
            raise NotImplementedError(f"{self.name} has no details()")
        return env.details()

    def _end_episode(self, e: int) -> None:
        env = self.envs[e]
        self.final_obs[e] = env.observe()
        self.final_state[e] = env.global_state()
        self.episode_return[e] = self._running_return[e]
        self.episode_length[e] = self._running_length[e]
        info = env.episode_info()
        for key, value in info.items():
            self.episode_info[key][e] = value
        self._stats_episodes += 1
        self._stats_return += self._running_return[e]
        self._stats_length += float(self._running_length[e])
        for key, value in info.items():
            self._stats_info[key] += value
        self._running_return[e] = 0.0
        self._running_length[e] = 0
        if self.autoreset == "same_step":
            env.reset(env.episode + 1)
        else:
            self._finished[e] = True
