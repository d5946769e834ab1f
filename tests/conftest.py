"""Shared helpers for the test suite."""

from __future__ import annotations

import numpy as np
import pytest

import hmasd.envs
from hmasd.envs import random_actions  # the package's random policy, for every action space

__all__ = ["ENV_NAMES", "gpu_marks", "random_actions", "snapshot_buffers"]

# Every registered env: a new env is in the conformance, bad-input, memory and determinism tests from its first
# commit, not when someone remembers to add it to a list.
ENV_NAMES = hmasd.envs.registered_envs()


def gpu_marks() -> list:
    """The `gpu` marker and the skips, with their reasons, of a test that needs the CUDA backend and a device."""
    from hmasd import _native

    info = _native.build_info()
    return [
        pytest.mark.gpu,
        pytest.mark.skipif(not info["cuda"], reason="this build has no CUDA backend (built without nvcc)"),
        pytest.mark.skipif(info["cuda"] and info["cuda_devices"] == 0,
                           reason="no CUDA device is visible on this machine"),
    ]


def snapshot_buffers(env) -> dict[str, np.ndarray]:
    """Copies of every buffer an env exposes, for comparing two envs."""
    out = {name: getattr(env, name).copy() for name in
           ("obs", "state", "rewards", "terminated", "truncated", "action_mask", "episode_return", "episode_length")}
    out.update({f"info_{k}": v.copy() for k, v in env.episode_info.items()})
    return out


@pytest.fixture(params=ENV_NAMES)
def env_name(request) -> str:
    return request.param
