"""A generic PettingZoo ``ParallelEnv`` over one copy of a native hmasd env (``make(..., num_envs=1)``)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec, parallel_to_aec_wrapper

from hmasd.envs._args import fresh_seed
from hmasd.envs.agent_rows import EPISODE_KEY
from hmasd.envs.registry import make, option_names
from hmasd.envs.render import RENDER_FPS, HumanWindow, display_available


def _as_seed(seed: Any) -> int:
    """``seed`` as a Python int (NumPy integers welcome); range errors are left to ``VecEnv.reset``."""
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    try:
        return operator.index(seed)
    except TypeError:
        raise TypeError(f"seed must be an int, got {seed!r}") from None


Action = int | np.ndarray


class HmasdParallelEnv(ParallelEnv[str, np.ndarray, Action]):
    """One native env behind PettingZoo's parallel API; agents are named ``agent_0 .. agent_{N-1}``.

    All agents live and end together: after the step that terminates or truncates the episode, ``agents`` is
    ``[]`` until ``reset()``. Everything returned is a copy (observations ``float32[obs_dim]``, rewards Python
    floats, ``state()`` ``float32[state_dim]``). Discrete envs take an integer per agent and each agent's info
    holds ``action_mask`` (``int8[num_actions]``, 1 = valid; masked moves act as "stay"); continuous envs
    (``uav_coverage`` by default) take a float vector of shape ``(action_dim,)`` per agent (a ``Box(-1, 1)``
    space; values outside are clipped by the env) and have no ``action_mask``. On the step that ends the
    episode, each info also holds ``episode_metrics``: the agent's return, the episode length and the env's
    episode fields (docs/envs.md). (Not ``episode``: SB3's ``Monitor`` and Gymnasium's ``RecordEpisodeStatistics``
    write their ``{"r", "l", "t"}`` there.)

    Seeding: ``reset(seed=s)`` reseeds (same ``s``, same episodes); ``reset()`` without a seed starts the next
    episode of the current stream, so it differs from the previous one. An env first reset without a seed draws a
    fresh one from the OS (Gymnasium's rule), so unseeded copies (SuperSuit's, TorchRL's ``SerialEnv``) differ;
    ``seed`` in the constructor fixes it instead. ``reset(options=...)`` is accepted for API compatibility
    and ignored: env options are fixed at construction.

    Args:
        env_name: a registered env (``hmasd.envs.registered_envs()``).
        render_mode: ``None``, ``"rgb_array"`` (``render()`` returns ``uint8[H, W, 3]``) or ``"human"`` (a window,
            at ``metadata["render_fps"]`` frames per second; where no window can open, ``render()`` raises a
            RuntimeError saying why, and ``metadata["render_modes"]`` lists ``"rgb_array"`` only).
        seed: the seed of the first ``reset()`` without one (None: fresh entropy).
        max_cycles: PettingZoo's name for the episode length; sets the env option ``max_steps``.
        **options: env options (docs/envs.md); unknown names raise TypeError.
    """

    metadata: dict[str, Any] = {"name": "hmasd", "render_modes": ["rgb_array", "human"], "render_fps": RENDER_FPS,
                                "is_parallelizable": True}

    def __init__(self, env_name: str, render_mode: str | None = None, max_cycles: int | None = None,
                 seed: int | None = None, **options: Any) -> None:
        metadata = dict(type(self).metadata)
        if type(self) is HmasdParallelEnv:
            metadata["name"] = env_name
        if render_mode is not None and render_mode not in metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {metadata['render_modes']}, got {render_mode!r}")
        if not display_available():  # what this process can show: no window without a display
            metadata["render_modes"] = [mode for mode in metadata["render_modes"] if mode != "human"]
        self.metadata = metadata
        self._window = HumanWindow(f"hmasd {env_name}", metadata["render_fps"]) if render_mode == "human" else None
        if max_cycles is not None:
            if "max_steps" not in option_names(env_name):
                raise TypeError(f"env {env_name!r} has no episode length option, so max_cycles is not supported")
            if "max_steps" in options and options["max_steps"] != max_cycles:
                raise TypeError(f"max_cycles={max_cycles!r} and max_steps={options['max_steps']!r} disagree; "
                                "pass only one of them")
            options["max_steps"] = max_cycles
        self.env_name = env_name
        self.render_mode = render_mode
        # Without a seed the stream is drawn at the first reset, not here: SuperSuit and TorchRL copy an env
        # before resetting it, and copies made now must not share one stream.
        self._vec = make(env_name, num_envs=1, seed=0 if seed is None else _as_seed(seed), autoreset="disabled",
                         **options)
        self._draw_seed = seed is None
        num_agents = self._vec.num_agents
        self.possible_agents: list[str] = [f"agent_{i}" for i in range(num_agents)]
        self.agents: list[str] = []
        self._agent_index = {agent: i for i, agent in enumerate(self.possible_agents)}
        # One space object per agent, built once: PettingZoo requires the same object on every call.
        self.observation_spaces: dict[str, spaces.Box] = {
            agent: self._vec.observation_space for agent in self.possible_agents}
        self.action_spaces: dict[str, spaces.Space[Any]] = {
            agent: self._vec.action_space for agent in self.possible_agents}
        self.state_space: spaces.Box = self._vec.state_space
        self._continuous = self._vec.continuous
        self._actions = (np.zeros((1, num_agents, self._vec.action_dim), dtype=np.float32) if self._continuous
                         else np.zeros((1, num_agents), dtype=np.int64))

    # ---- spaces and options ----------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        """The observation space of ``agent`` (the same object on every call)."""
        return self.observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        """The action space of ``agent``: Discrete, or Box for continuous envs (the same object on every call)."""
        return self.action_spaces[self._check_agent(agent)]

    @property
    def options(self) -> dict[str, Any]:
        """Every env option with the value in force (defaults included)."""
        return self._vec.options

    def _check_agent(self, agent: str) -> str:
        if agent not in self._agent_index:
            raise KeyError(f"unknown agent {agent!r}; possible agents: {self.possible_agents}")
        return agent

    # ---- protocol --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Starts an episode: reseeded with ``seed``, else the next one of the stream; ``options`` is ignored."""
        if seed is None and self._draw_seed:
            seed = fresh_seed()
        self._draw_seed = False
        self._vec.reset(None if seed is None else _as_seed(seed))
        self.agents = self.possible_agents[:]
        return self._observations(), self._infos(ended=False)

    def step(self, actions: dict[str, Action]) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, bool],
                                                        dict[str, bool], dict[str, dict[str, Any]]]:
        """Steps every agent; ``actions`` must hold an action for each agent in ``agents``.

        Missing or unknown agents raise ValueError. Discrete envs: non-integer actions raise TypeError, actions
        outside ``[0, num_actions)`` the native ValueError. Continuous envs: non-numeric actions raise TypeError,
        a wrong shape ValueError, non-finite values the native ValueError. The env does not move in any of these
        cases.
        """
        if not self.agents:
            raise RuntimeError("no live agents: call reset() before step() (and again after an episode ends)")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"actions are missing for agents {missing}; every agent in env.agents must act")
        unknown = [agent for agent in actions if agent not in self._agent_index]
        if unknown:
            raise ValueError(f"actions given for unknown agents {unknown}; agents are {self.agents}")
        for agent, index in self._agent_index.items():
            if self._continuous:
                self._actions[0, index] = self._as_vector(agent, actions[agent], self._actions.shape[2])
            else:
                self._actions[0, index] = self._as_action(agent, actions[agent])
        self._vec.step(self._actions)

        terminated = bool(self._vec.terminated[0])
        truncated = bool(self._vec.truncated[0])
        agents = self.agents
        rewards = dict(zip(self.possible_agents, self._vec.rewards[0].tolist()))
        terminations = dict.fromkeys(agents, terminated)
        truncations = dict.fromkeys(agents, truncated)
        observations, infos = self._observations(), self._infos(ended=terminated or truncated)
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """A copy of the global state, ``float32[state_dim]``."""
        return self._vec.state[0].copy()

    def render(self) -> np.ndarray | None:
        """``uint8[H, W, 3]`` with ``render_mode="rgb_array"``; with ``"human"``, shows the frame in a window and
        returns None; warns and returns None without a render mode."""
        if self.render_mode is None:
            gymnasium.logger.warn("You are calling render method without specifying any render mode. "
                                  f"Pass render_mode='rgb_array' when creating {self.metadata['name']!r}.")
            return None
        frame = self._vec.render(0)
        if self._window is not None:
            self._window.show(frame)
            return None
        return frame

    def close(self) -> None:
        """Closes the window of ``render_mode="human"``; the native env is freed with this object."""
        if self._window is not None:
            self._window.close()

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _as_action(agent: str, value: Any) -> int:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"action of {agent!r} must be an integer, got {value!r}")
        try:
            return operator.index(value)
        except TypeError:
            raise TypeError(f"action of {agent!r} must be an integer, got {value!r}") from None

    @staticmethod
    def _as_vector(agent: str, value: Any, dim: int) -> np.ndarray:
        vector = np.asarray(value)
        # bools, strings and objects are not moves; letting NumPy cast them would hide a caller's bug
        if vector.dtype.kind not in "iuf":
            raise TypeError(f"action of {agent!r} must be a float vector of shape ({dim},), got {value!r}")
        if vector.shape != (dim,):
            raise ValueError(f"action of {agent!r} must have shape ({dim},), got shape {vector.shape}")
        return vector.astype(np.float32)

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self._vec.obs[0]
        return {agent: obs[i].copy() for i, agent in enumerate(self.possible_agents)}

    def _infos(self, ended: bool) -> dict[str, dict[str, Any]]:
        if self._continuous:  # a continuous env has no actions to mask
            infos: dict[str, dict[str, Any]] = {agent: {} for agent in self.possible_agents}
        else:
            masks = self._vec.action_mask[0]
            infos = {agent: {"action_mask": masks[i].astype(np.int8)} for i, agent in enumerate(self.possible_agents)}
        if ended:
            vec = self._vec
            length = int(vec.episode_length[0])
            for i, agent in enumerate(self.possible_agents):
                episode: dict[str, float | int] = {"return": float(vec.episode_return[0, i]), "length": length}
                for field, values in vec.episode_info.items():
                    row = values[0]
                    episode[field] = float(row[i] if np.ndim(row) else row)
                infos[agent][EPISODE_KEY] = episode
        return infos

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.env_name!r}, num_agents={len(self.possible_agents)}, "
                f"render_mode={self.render_mode!r})")


def aec_constructors(parallel_env: Callable[..., HmasdParallelEnv]) -> tuple[Callable[..., AECEnv],
                                                                                Callable[..., AECEnv]]:
    """A module's ``raw_env`` and ``env`` (PettingZoo's names) from its ``parallel_env``."""

    def raw_env(render_mode: str | None = None, **options: Any) -> AECEnv:
        """The AEC env without PettingZoo's order-enforcing wrapper."""
        return parallel_to_aec_wrapper(parallel_env(render_mode=render_mode, **options))

    def env(render_mode: str | None = None, **options: Any) -> AECEnv:
        """The AEC env (agents act in turn; the native env steps once every agent has acted), order-enforced."""
        return parallel_to_aec(parallel_env(render_mode=render_mode, **options))

    return raw_env, env
