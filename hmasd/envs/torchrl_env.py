"""A TorchRL environment over one batched native env: ``HmasdTorchRLEnv("stag_hunt", num_envs=E, seed=0)``.

The whole batch is one :class:`torchrl.envs.EnvBase` of ``batch_size=[E]``, stepped by a single native call per
step (no Python loop over envs or agents), so TorchRL's collectors and losses see E envs at the cost of one. This
module imports torch, tensordict and torchrl; ``import hmasd.envs`` does not import it (import it explicitly).

Layout (E envs, N agents; every agent lives and ends with its env):

- ``("agents", "observation")`` float32 [E, N, obs_dim], bounded by the env's declared observation bounds;
- ``("agents", "action")``: int64 [E, N] (``Categorical(num_actions)``) for discrete envs, float32
  [E, N, action_dim] (``Bounded(-1, 1)``, the env clips) for continuous ones (``uav_coverage`` by default);
- ``("agents", "action_mask")`` bool [E, N, num_actions], discrete envs only (invalid moves act as "stay"; give
  it to a masked policy, or to TorchRL's ``ActionMask`` transform for masked random actions);
- ``("agents", "reward")`` float32 [E, N, 1];
- ``("agents", "done" | "terminated" | "truncated")`` bool [E, N, 1], and the same three at the root, [E, 1];
- ``"state"`` float32 [E, state_dim], the global state (for a centralised critic);
- ``"episode"`` (batch [E]): ``return`` float32 [E, N] (each agent's undiscounted return), ``length`` int32 [E]
  and the env's episode fields (docs/envs.md; [E, N] for per-agent fields such as stag_hunt's ``stags``, else
  [E]). Under ``"next"`` they describe the episode that ended in that step, at the rows where ``("next",
  "done")`` is True, and are 0 in every other row (and after a reset), so ``data["next", "episode", "return"]
  [data["next", "done"].squeeze(-1)]`` are the finished episodes' returns.

Episode ends: the native env runs with ``autoreset="disabled"``, so the step that ends an episode returns its
last observation under ``"next"``; TorchRL's ``"_reset"`` mask (root [E, 1] or ``("agents", "_reset")``) then
restarts the chosen envs only, through ``VecEnv.reset_envs``. Stepping the batch while some env is still done
raises (the native env refuses it), so use ``rollout(..., break_when_any_done=...)`` or a collector
(``torchrl.collectors.Collector``, 0.14's name for ``SyncDataCollector``), both of which reset what ended; partial
steps (TorchRL's ``"_step"``, from ``break_when_all_done``) are not supported. A pickled or deep-copied env is an
exact copy (the native batch snapshots itself) with its own buffers (CPU envs; a CUDA env cannot be pickled).

Seeding: ``set_seed(s)`` reseeds the batch exactly (env e draws from the stream keyed by ``(s, e)``): the same
``s`` gives the same rollout for the same actions, and the next ``reset()`` starts those episodes. An env built
without a seed draws one from the OS (``make(seed=None)``), so unseeded copies differ; ``native_seed`` tells which.

Device: ``device="cuda"`` (a CUDA build) runs the batch in device memory and every tensor here is on that device;
the buffers are read in place (``torch.from_numpy`` of the NumPy views on CPU, the DLPack tensors on CUDA), so a
step copies each buffer once, on its device, into the tensors it returns (the native buffers are rewritten by the
next step), and nothing goes through the host.

BenchMARL is not offered: its latest release (1.5.2) requires ``torchrl<0.12`` and torchvision, which would replace
the torch/torchrl this project pins; this env's ``"agents"`` group is what a BenchMARL task would wrap.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from hmasd.envs._args import fresh_seed
from hmasd.envs.registry import make
from hmasd.envs.vec_env import ACTION_HIGH, ACTION_LOW, VecEnv

__all__ = ["EPISODE", "GROUP", "HmasdTorchRLEnv"]

GROUP = "agents"
"""The name of the one agent group (all agents are alike and share it)."""
EPISODE = "episode"
"""The sub-tensordict of episode metrics."""

_log = logging.getLogger(__name__)


def _as_tensor(buffer: Any) -> torch.Tensor:
    """A torch view of a native buffer: NumPy (CPU env) via ``from_numpy``, a CUDA env's tensors as they are."""
    return buffer if isinstance(buffer, torch.Tensor) else torch.from_numpy(buffer)


def _tensordict(source: dict[str, Any], batch_size: tuple[int, ...], device: torch.device) -> TensorDictBase:
    """A TensorDict of leaves already known to have ``batch_size`` and ``device`` (built by this module), without
    the per-leaf checks of the public constructor where this tensordict version offers that."""
    size = torch.Size(batch_size)
    unchecked = getattr(TensorDict, "_new_unsafe", None)
    if unchecked is None:
        return TensorDict(source, batch_size=size, device=device)
    return unchecked(source, batch_size=size, device=device)


class HmasdTorchRLEnv(EnvBase):
    """E copies of a native hmasd env as one batched TorchRL env (layout and rules in the module docstring).

    Args:
        env_name: a registered env (``hmasd.envs.registered_envs()``).
        num_envs: the batch size E.
        seed: the batch seed; None draws a fresh one from the OS.
        num_threads: CPU threads stepping the batch (``hmasd.envs.make``; 0 = one per usable CPU).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (a CUDA build); where the env and all its tensors live.
        vec_env: an existing ``VecEnv`` made with ``autoreset="disabled"``, wrapped instead of building one (then
            pass nothing else). The wrapper takes it over: its first ``reset()`` resets the whole batch.
        **options: env options (docs/envs.md), e.g. ``max_steps=9``.
    """

    def __init__(self, env_name: str | None = None, num_envs: int = 1, seed: int | None = None, *,
                 num_threads: int = 1, device: Any = "cpu", vec_env: VecEnv | None = None, **options: Any) -> None:
        vec = self._vec_env(env_name, num_envs, seed, num_threads, device, vec_env, options)
        super().__init__(device=torch.device(vec.device), batch_size=torch.Size([vec.num_envs]))
        self._vec = vec
        self._host = vec.device == "cpu"
        self._started = False  # reset_envs needs one full reset first
        self._seeded = False  # set_seed already put the batch at the start of fresh episodes
        self._bind_views()
        self._make_specs()
        _log.debug("TorchRL env over %r on %s", vec, self.device)

    @staticmethod
    def _vec_env(env_name: str | None, num_envs: int, seed: int | None, num_threads: int, device: Any,
                 vec_env: VecEnv | None, options: dict[str, Any]) -> VecEnv:
        if vec_env is None:
            if env_name is None:
                raise TypeError("HmasdTorchRLEnv needs an env name (or vec_env=an existing VecEnv)")
            return make(env_name, num_envs=num_envs, seed=seed, num_threads=num_threads, autoreset="disabled",
                        device=device, **options)
        if not isinstance(vec_env, VecEnv):
            raise TypeError(f"vec_env must be a hmasd VecEnv, got {type(vec_env).__name__}")
        given = env_name is not None or num_envs != 1 or seed is not None or num_threads != 1 or device != "cpu"
        if given or options:
            raise TypeError("vec_env fixes the env, its size, seed, threads, device and options: pass nothing else")
        if vec_env.autoreset != "disabled":
            raise ValueError(f"vec_env must be made with autoreset='disabled' (TorchRL resets finished envs "
                             f"itself), got autoreset={vec_env.autoreset!r}")
        return vec_env

    _VIEWS = ("_obs", "_state", "_rewards", "_terminated", "_truncated", "_mask", "_return", "_length", "_info",
              "_metric_sources")

    def _bind_views(self) -> None:
        """Torch views of the native buffers, made once: the buffers stay put and are rewritten in place."""
        vec = self._vec
        self._obs, self._state = _as_tensor(vec.obs), _as_tensor(vec.state)
        self._rewards = _as_tensor(vec.rewards)
        self._terminated, self._truncated = _as_tensor(vec.terminated), _as_tensor(vec.truncated)
        self._mask = None if vec.continuous else _as_tensor(vec.action_mask)
        self._return, self._length = _as_tensor(vec.episode_return), _as_tensor(vec.episode_length)
        self._info = {field: _as_tensor(values) for field, values in vec.episode_info.items()}
        self._metric_sources = {"return": self._return, **self._info}
        # Metrics grouped by shape, so that each group is zeroed or selected by one op per step.
        self._agent_metrics = ["return", *(key for key, values in self._info.items() if values.dim() == 2)]
        self._env_metrics = [key for key, values in self._info.items() if values.dim() == 1]

    # ---- specs ---------------------------------------------------------------------------------
    def _make_specs(self) -> None:
        vec, device = self._vec, self.device
        e, n = vec.num_envs, vec.num_agents
        observation = {"observation": self._box(vec.observation_space, (e, n, vec.obs_dim))}
        if vec.continuous:
            action = Bounded(low=ACTION_LOW, high=ACTION_HIGH, shape=(e, n, vec.action_dim), dtype=torch.float32,
                             device=device)
        else:
            action = Categorical(vec.num_actions, shape=(e, n), dtype=torch.int64, device=device)
            observation["action_mask"] = Binary(n=vec.num_actions, shape=(e, n, vec.num_actions), dtype=torch.bool,
                                                device=device)
        self.observation_spec = Composite(
            {GROUP: Composite(observation, shape=(e, n), device=device),
             "state": self._box(vec.state_space, (e, vec.state_dim)),
             EPISODE: self._episode_spec(e, n)},
            shape=(e,), device=device)
        self.action_spec = Composite({GROUP: Composite(action=action, shape=(e, n), device=device)},
                                     shape=(e,), device=device)
        reward = Unbounded(shape=(e, n, 1), dtype=torch.float32, device=device)
        self.reward_spec = Composite({GROUP: Composite(reward=reward, shape=(e, n), device=device)},
                                     shape=(e,), device=device)
        self.done_spec = Composite(
            {**self._flag_specs((e, 1)), GROUP: Composite(self._flag_specs((e, n, 1)), shape=(e, n), device=device)},
            shape=(e,), device=device)

    def _box(self, space: Any, shape: tuple[int, ...]) -> Bounded | Unbounded:
        """A float32 spec of ``shape`` whose last axis has the bounds of the gymnasium Box ``space``."""
        low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            return Unbounded(shape=shape, dtype=torch.float32, device=self.device)
        return Bounded(low=torch.from_numpy(low).expand(shape).contiguous(),
                       high=torch.from_numpy(high).expand(shape).contiguous(),
                       shape=shape, dtype=torch.float32, device=self.device)

    def _flag_specs(self, shape: tuple[int, ...]) -> dict[str, Categorical]:
        return {key: Categorical(2, shape=shape, dtype=torch.bool, device=self.device)
                for key in ("done", "terminated", "truncated")}

    def _episode_spec(self, e: int, n: int) -> Composite:
        entries: dict[str, Unbounded] = {
            "return": Unbounded(shape=(e, n), dtype=torch.float32, device=self.device),
            "length": Unbounded(shape=(e,), dtype=torch.int32, device=self.device),
        }
        for field, values in self._info.items():
            entries[field] = Unbounded(shape=tuple(values.shape), dtype=torch.float32, device=self.device)
        return Composite(entries, shape=(e,), device=self.device)

    # ---- properties ----------------------------------------------------------------------------
    @property
    def vec_env(self) -> VecEnv:
        """The native batch (its buffers are rewritten by every step; copy what you keep)."""
        return self._vec

    @property
    def native_seed(self) -> int:
        """The batch seed in force (the one drawn from the OS for an env built without a seed)."""
        return self._vec.seed

    @property
    def num_agents(self) -> int:
        return self._vec.num_agents

    # ---- protocol ------------------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        mask = self._reset_mask(tensordict)
        if not self._started or mask is None:
            if not self._seeded:  # set_seed has just restarted every env: keep those first episodes
                self._vec.reset()
            self._started = True
        else:
            self._vec.reset_envs(mask if mask.is_cuda else mask.numpy())
        self._seeded = False
        return self._outputs(stepped=False)

    def _reset_mask(self, tensordict: TensorDictBase | None) -> torch.Tensor | None:
        """The envs TorchRL asks to restart, bool [E] (from the root and/or the group ``"_reset"``), or None for
        all of them."""
        if tensordict is None:
            return None
        e = self._vec.num_envs
        root = tensordict.get("_reset", None)
        group = tensordict.get((GROUP, "_reset"), None)
        mask = None if root is None else root.reshape(e)
        if group is not None:
            agents = group.reshape(e, -1).any(-1)
            mask = agents if mask is None else mask | agents
        return None if mask is None else mask.to(self.device, torch.bool).contiguous()

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        partial = tensordict.get("_step", None)
        if partial is not None and not bool(partial.all()):
            raise NotImplementedError("HmasdTorchRLEnv steps all its envs together: partial steps ('_step', from "
                                      "rollout(break_when_all_done=True)) are not supported")
        self._vec.step(self._native_actions(tensordict.get((GROUP, "action"))))
        self._seeded = False
        return self._outputs(stepped=True)

    def _native_actions(self, action: torch.Tensor) -> Any:
        """The action tensor as the native step reads it, without a host copy: a NumPy view on CPU, a contiguous
        tensor of the env's dtype on CUDA."""
        action = action.detach()
        if self._vec.continuous and action.dtype != torch.float32:
            action = action.to(torch.float32)
        if action.is_cuda:
            return action.contiguous()
        return action.numpy()

    def _outputs(self, stepped: bool) -> TensorDictBase:
        """Fresh tensors (the native buffers change with the next call) of what a reset or step returns.

        A torch op or a checked TensorDict leaf costs microseconds, as much as copying a whole E = 1024 buffer, so
        a CPU env's arrays come from one native call (``VecEnv.copy_outputs``), a CUDA env's from one op per
        related group (the six done flags are slices of two tensors), and the tensordicts are assembled without
        re-checking leaves built right here."""
        group, root, ended = self._host_outputs(stepped) if self._host else self._device_outputs(stepped)
        e, n = self._vec.num_envs, self._vec.num_agents
        return _tensordict({GROUP: _tensordict(group, (e, n), self.device), "state": self._state.clone(), **root,
                            EPISODE: self._episode(root["done"][:, 0], ended)}, (e,), self.device)

    def _host_outputs(self, stepped: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], bool]:
        obs, rewards, terminated, truncated, done, mask, num_ended = self._vec.copy_outputs(
            False, True, "all", "" if self._mask is None else "bool")
        flags = {"done": done, "terminated": terminated, "truncated": truncated}  # [E, N] each, fresh
        group = {"observation": torch.from_numpy(obs),
                 **{key: torch.from_numpy(values[:, :, None]) for key, values in flags.items()}}
        if mask is not None:
            group["action_mask"] = torch.from_numpy(mask)
        if stepped:
            group["reward"] = torch.from_numpy(rewards[:, :, None])
        root = {key: torch.from_numpy(values[:, :1].copy()) for key, values in flags.items()}  # an env's agents agree
        return group, root, stepped and num_ended > 0

    def _device_outputs(self, stepped: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], bool]:
        e, n = self._vec.num_envs, self._vec.num_agents
        terminated, truncated = self._terminated, self._truncated
        flags = torch.stack((terminated | truncated, terminated, truncated)).unsqueeze(-1)  # [3, E, 1]
        done, terminated, truncated = flags.unbind(0)
        agent_done, agent_terminated, agent_truncated = flags.unsqueeze(2).expand(3, e, n, 1).clone().unbind(0)
        group: dict[str, torch.Tensor] = {"observation": self._obs.clone(), "done": agent_done,
                                          "terminated": agent_terminated, "truncated": agent_truncated}
        if self._mask is not None:
            group["action_mask"] = self._mask.clone()
        if stepped:
            group["reward"] = self._rewards.unsqueeze(-1).clone()
        # whether an episode ended would be a host sync here: the masked select of the metrics always runs
        return group, {"done": done, "terminated": terminated, "truncated": truncated}, stepped

    def _episode(self, done: torch.Tensor, ended: bool) -> TensorDictBase:
        """The metrics of the episodes that ended in this step at the rows in ``done`` (bool [E]), 0 elsewhere;
        ``ended`` False (no episode ended, or a reset) gives zeros, far cheaper than a masked select."""
        e, n = self._vec.num_envs, self._vec.num_agents
        per_agent = self._metric_block(self._agent_metrics, done[:, None] if ended else None, (e, n))
        per_env = self._metric_block(self._env_metrics, done if ended else None, (e,))
        length = (torch.where(done, self._length, 0) if ended
                  else torch.zeros(e, dtype=torch.int32, device=self.device))
        values = {"length": length, **dict(zip(self._agent_metrics, per_agent.unbind(0))),
                  **dict(zip(self._env_metrics, per_env.unbind(0)))}
        return _tensordict(values, (e,), self.device)

    def _metric_block(self, keys: list[str], rows: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
        """The float32 metrics ``keys`` stacked as [len(keys), *shape]: the native values at ``rows`` (a mask that
        broadcasts to ``shape``) and 0 elsewhere, or all 0 when ``rows`` is None."""
        if rows is None or not keys:
            return torch.zeros((len(keys), *shape), dtype=torch.float32, device=self.device)
        return torch.where(rows, torch.stack([self._metric_sources[key] for key in keys]), 0)

    def _set_seed(self, seed: int | None) -> None:
        """Reseeds the batch (env e keyed by ``(seed, e)``; None: fresh OS entropy) and restarts every env, so the
        next ``reset()`` returns the first observation of that seed's episodes."""
        self._vec.reset(fresh_seed() if seed is None else seed)
        self._started = True
        self._seeded = True

    # ---- pickling: the VecEnv copies itself exactly; the views must then point into the copy's buffers --------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in self._VIEWS:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._bind_views()

    def to(self, device: Any) -> HmasdTorchRLEnv:
        """The env itself when ``device`` is where it lives; the native batch cannot move (build it there)."""
        target = torch.device(device)
        if target.type == self.device.type and target.index in (None, self.device.index):
            return self
        raise ValueError(f"HmasdTorchRLEnv lives on {self.device} and cannot move to {target}: build it with "
                         f"device={str(target)!r}")

    def __repr__(self) -> str:
        return (f"HmasdTorchRLEnv({self._vec.name!r}, num_envs={self._vec.num_envs}, "
                f"num_agents={self._vec.num_agents}, device={self.device})")
