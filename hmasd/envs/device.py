"""Batched envs in CUDA device memory: the same protocol as :class:`VecEnv`, with torch tensors (via DLPack) instead of
NumPy arrays, and every call on torch's current stream. torch is needed only to see the buffers as tensors."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from hmasd.envs._args import as_env_mask, as_seed
from hmasd.envs.vec_env import VecEnv

_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def parse_device(device: Any) -> tuple[str, int]:
    """``"cpu"`` -> ("cpu", 0); ``"cuda"`` / ``"cuda:N"`` (or a torch.device) -> ("cuda", N)."""
    text = str(device) if type(device).__name__ == "device" else device
    if not isinstance(text, str):
        raise TypeError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if text == "cpu":
        return "cpu", 0
    match = _DEVICE.match(text)
    if match is None:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return "cuda", int(match.group(1) or 0)


def check_cuda_available(index: int) -> None:
    """A clear error when this build or this machine cannot run a CUDA env on device ``index``."""
    from hmasd import _native

    info = _native.build_info()
    if not info["cuda"]:
        raise RuntimeError("device='cuda' needs a build with CUDA (this one was built without nvcc)")
    if info["cuda_devices"] == 0:
        raise RuntimeError("device='cuda': this build has CUDA, but no CUDA device is visible")
    if index >= info["cuda_devices"]:
        raise ValueError(f"device='cuda:{index}': only {info['cuda_devices']} CUDA device(s) are visible")


def current_stream(index: int) -> int:
    """The raw handle of torch's current stream on device ``index`` (0, the default stream, without torch)."""
    try:
        import torch
    except ImportError:
        return 0
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.current_stream(index).cuda_stream)


def as_tensors(buffers: dict[str, Any]) -> dict[str, Any]:
    """Native DLPack buffers as torch tensors over the same memory (the buffers themselves without torch)."""
    try:
        import torch
    except ImportError:
        return dict(buffers)
    return {key: torch.from_dlpack(value) for key, value in buffers.items()}


class DeviceVecEnv(VecEnv):
    """``num_envs`` copies of one env on a CUDA device (see :func:`hmasd.envs.make` with ``device="cuda"``).

    ``obs``, ``state``, ``rewards``, ... are torch tensors that alias device memory and are rewritten in place, as
    the NumPy arrays of :class:`VecEnv` are. ``step`` takes a tensor on the same device; by default it waits for the
    device-side check of the actions and raises before anything changes (``check=False`` skips that host sync: a
    rejected step is then skipped on the device and raised by the next :meth:`check_errors`).
    """

    def __init__(self, name: str, native: Any, options: dict[str, Any], spec: Any) -> None:
        self._spec = spec  # a one-copy CPU env of the same options: bounds, spaces, rendering
        super().__init__(name, native, options)

    def _bind_buffers(self) -> None:
        self._buffers = self._native.buffers()  # keeps the DLPack exports (and the env) alive
        tensors = as_tensors(self._buffers)
        for key in ("obs", "state", "rewards", "terminated", "truncated", "action_mask", "final_obs", "final_state",
                    "episode_return", "episode_length"):
            setattr(self, key, tensors[key])
        self._bind_episode_info(tensors["episode_info"])
        self._info = {"state": self.state, "action_mask": self.action_mask, "final_obs": self.final_obs,
                      "final_state": self.final_state, "episode_return": self.episode_return,
                      "episode_length": self.episode_length, **self.episode_info}
        self._step_result = (self.obs, self.rewards, self.terminated, self.truncated, self._info)

    @property
    def device(self) -> str:
        return f"cuda:{self._native.device}"

    @property
    def num_threads(self) -> int:
        return 0

    @property
    def autoreset(self) -> str:
        return self._autoreset

    @property
    def options(self) -> dict[str, Any]:
        return self._spec.options

    @property
    def _stream(self) -> int:
        return current_stream(self._native.device)

    def _bounds(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self._spec._native, which)()

    def reset(self, seed: int | None = None) -> tuple[Any, dict[str, Any]]:
        self._native.reset(None if seed is None else as_seed(seed), self._stream)
        return self.obs, self._info

    def reset_envs(self, envs: Any) -> tuple[Any, dict[str, Any]]:
        """As :meth:`VecEnv.reset_envs`; a bool tensor [num_envs] on this device is used in place (no host sync),
        anything else is read on the host and copied over."""
        import torch

        if isinstance(envs, torch.Tensor) and envs.dtype == torch.bool and envs.device == torch.device(self.device):
            mask = envs.contiguous()  # shape is checked natively
        else:
            mask = torch.from_numpy(as_env_mask(envs, self.num_envs)).to(self.device)
        self._native.reset_envs(mask, self._stream)
        return self.obs, self._info

    def step(self, actions: Any, check: bool = True) -> Any:
        self._native.step(actions, self._stream, check)
        return self._step_result

    def check_errors(self) -> None:
        """Raises the first rejection found by device-side checks of ``step(..., check=False)`` calls (one host sync)."""
        self._native.check_errors(self._stream)

    def _drain_log(self) -> dict[str, Any]:
        log = self._native.drain_episode_log(self._stream)
        return {**log, "return_sum": np.asarray(log["return_sum"]), "info_sum": np.asarray(log["info_sum"])}

    def copy_outputs(self, rows: bool = True, obs: bool = True, flags: str = "split",
                     mask: str = "") -> tuple[Any, ...]:
        raise NotImplementedError("copy_outputs() builds NumPy arrays of a CPU env; a CUDA env's outputs are the "
                                  "tensors obs, rewards, terminated, truncated and action_mask (clone what you keep)")

    def render(self, env_index: int = 0) -> np.ndarray:
        raise NotImplementedError("render() runs on CPU envs; copy the state with env.state[i].cpu() and use a CPU "
                                  "env of the same options")

    def details(self, env_index: int = 0) -> dict[str, Any]:
        raise NotImplementedError("details() is available on CPU envs only")

    def set_positions(self, env_index: int, uav_pos: Any, user_pos: Any = None) -> None:
        raise NotImplementedError("set_positions() is available on CPU envs only")

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a CUDA env cannot be pickled; checkpoint a CPU env of the same options instead")

    def __repr__(self) -> str:
        return f"DeviceVecEnv({self.name!r}, num_envs={self.num_envs}, device={self.device!r})"
