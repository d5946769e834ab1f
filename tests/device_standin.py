"""Host-backed stand-ins for the native CUDA objects (_native.DeviceEnv, _native.DeviceEngine).

They answer every call of the device API with the CPU env and engine and export the buffers as torch CPU tensors
through hmasd's DLPack path, so the Python side of the CUDA backend (DeviceVecEnv, DeviceRolloutEngine, and the
trainer's device path) runs on a machine without a GPU. ``facade(...)`` builds a DeviceVecEnv over them.

``strict=True`` makes them hold the caller to the no-sync protocol: the engine's per-step calls must receive
torch tensors (never NumPy) of the documented dtypes, and the syncing ``decide`` is refused (use ``decide_all``).
They read tensors with ``np.from_dlpack``, not ``Tensor.numpy()``, so a test may forbid ``Tensor.numpy`` to the
code under test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import hmasd.envs
from hmasd import _native
from hmasd.envs.device import DeviceVecEnv
from hmasd.rollout import RolloutEngine


def exported(buffers: dict) -> dict:
    """Native buffers as DLPack capsules (what the native device objects hand out)."""
    return {key: _native.dlpack_view(value) for key, value in buffers.items()}


def host(x: Any) -> np.ndarray:
    """A contiguous NumPy view of a CPU tensor, without ``Tensor.numpy`` (see the module docstring)."""
    return np.ascontiguousarray(np.from_dlpack(x.detach()))


def _require_tensors(call: str, strict: bool, **arrays: Any) -> None:
    """In strict mode: every argument is a torch tensor, of an accepted dtype where one is documented."""
    if not strict:
        return
    import torch

    accepted = {"team": (torch.int32,), "indiv": (torch.int32,), "logp": (torch.float32,),
                "values": (torch.float32,), "actions": (torch.int32, torch.int64, torch.float32)}
    for name, value in arrays.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{call}: {name} must be a torch tensor on the device, got {type(value).__name__}")
        if name in accepted and value.dtype not in accepted[name]:
            raise TypeError(f"{call}: {name} must be one of {accepted[name]}, got {value.dtype}")


class HostDeviceEnv:
    """The calls of _native.DeviceEnv, answered by a CPU env."""

    device = 0

    def __init__(self, cpu: Any, strict: bool = False) -> None:
        self.cpu, self.strict = cpu, strict
        self.steps = 0
        for key in ("num_envs", "num_agents", "obs_dim", "state_dim", "num_actions", "action_dim", "seed",
                    "first_env", "has_reset", "info_fields"):
            setattr(HostDeviceEnv, key, property(lambda self, key=key: getattr(self.cpu._native, key)))

    def buffers(self) -> dict:
        return exported(self.cpu._native.buffers())

    def reset(self, seed: Any, stream: int) -> None:
        self.cpu._native.reset(seed)

    def step(self, actions: Any, stream: int, check: bool) -> None:
        _require_tensors("env.step", self.strict, actions=actions)
        self.steps += 1
        self.cpu._native.step(host(actions))

    def check_errors(self, stream: int) -> None:
        pass

    def drain_episode_log(self, stream: int) -> dict:
        return self.cpu._native.drain_episode_log()

    def make_engine(self, horizon: int, k: int, n_team: int, n_indiv: int, clock: str, capacity: int
                    ) -> HostDeviceEngine:
        return HostDeviceEngine(RolloutEngine(self.cpu, horizon, k, n_team, n_indiv, clock=clock), self.strict)


class HostDeviceEngine:
    """The calls of _native.DeviceEngine, answered by a CPU engine; counts the calls that sync on a device."""

    def __init__(self, engine: RolloutEngine, strict: bool = False) -> None:
        self.engine, self.g, self.strict = engine, engine._native, strict
        self.calls: dict[str, int] = {}
        for key in ("horizon", "steps_in_batch", "ready", "policy_version", "slots_per_env", "samples_collected"):
            setattr(HostDeviceEngine, key, property(lambda self, key=key: getattr(self.g, key)))

    def _count(self, call: str) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1

    def buffers(self, device: int) -> dict:
        out = {}
        for group, values in self.g.buffers().items():
            out.update({f"{group}/{key}": value for key, value in values.items()})
        return exported(out)

    def decide(self, device, n, ids, team, indiv, logp, values, stream, check) -> None:
        if self.strict:
            raise AssertionError("decide() with env ids needs the ids on the host (a sync): use decide_all()")
        self.engine.decide(*(host(x) for x in (ids, team, indiv, logp, values)))

    def decide_all(self, device, num_envs, n, team, indiv, logp, values, stream, check) -> None:
        _require_tensors("decide_all", self.strict, team=team, indiv=indiv, logp=logp, values=values)
        if self.strict and check:
            raise AssertionError("decide_all(check=True) waits for the device-side check: pass check=False")
        self._count("decide_all")
        ids = np.flatnonzero(self.engine.needs_decision).astype(np.int32)
        self.engine.decide(ids, *(host(x)[ids] for x in (team, indiv, logp, values)))

    def step(self, env, actions, logp, values, stream, check) -> None:
        _require_tensors("engine.step", self.strict, actions=actions, logp=logp, values=values)
        if self.strict and check:
            raise AssertionError("step(check=True) waits for the device-side check: pass check=False")
        self._count("step")
        self.engine.step(*(host(x) for x in (actions, logp, values)))

    def resume(self, stream: int) -> None:
        self.engine.resume()

    def check_errors(self, stream: int) -> None:
        self._count("check_errors")

    def transitions_emitted(self, stream: int) -> int:
        self._count("transitions_emitted")
        return self.g.transitions_emitted

    def transitions_in_batch(self, stream: int) -> int:
        self._count("transitions_in_batch")
        return self.g.transitions_in_batch

    def forced_closed(self, stream: int) -> int:
        self._count("forced_closed")
        return self.g.forced_closed

    def restore_counters(self, policy_version, samples, transitions, forced, stream) -> None:
        self.g.restore_counters(policy_version, samples, transitions, forced)


def facade(name: str, num_envs: int, seed: int = 3, strict: bool = False, **options: Any) -> DeviceVecEnv:
    """A DeviceVecEnv of ``num_envs`` copies of env ``name`` over the host stand-in (``env.device == "cuda:0"``)."""
    cpu = hmasd.envs.make(name, num_envs=num_envs, seed=seed, **options)
    env = DeviceVecEnv(name, HostDeviceEnv(cpu, strict), dict(options), hmasd.envs.make(name, **options))
    env._autoreset = "same_step"
    return env
