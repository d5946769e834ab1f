"""PettingZoo ``uav_coverage_v0``: UAV base stations serving ground users, as a parallel (``parallel_env``) or AEC
(``env``) environment; continuous (Box) moves by default, ``action_type="discrete"`` for 7 moves."""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec, parallel_to_aec_wrapper

from hmasd.envs.pettingzoo._adapter import HmasdParallelEnv


class UavCoverageParallelEnv(HmasdParallelEnv):
    """``uav_coverage`` (options in docs/envs.md, e.g. ``num_uavs``, ``action_type``; ``max_cycles`` =
    ``max_steps``). Continuous actions are ``float32[3]`` in ``[-1, 1]`` (x, y, z speed as a fraction of
    ``max_speed``); ``render()`` is a top view of users, UAVs, coverage and backhaul routes."""

    metadata: dict[str, Any] = {**HmasdParallelEnv.metadata, "name": "uav_coverage_v0"}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        super().__init__("uav_coverage", render_mode=render_mode, **options)


def parallel_env(render_mode: str | None = None, **options: Any) -> UavCoverageParallelEnv:
    """The parallel env (PettingZoo's ``ParallelEnv``)."""
    return UavCoverageParallelEnv(render_mode=render_mode, **options)


def raw_env(render_mode: str | None = None, **options: Any) -> AECEnv:
    """The AEC env without PettingZoo's order-enforcing wrapper."""
    return parallel_to_aec_wrapper(parallel_env(render_mode=render_mode, **options))


def env(render_mode: str | None = None, **options: Any) -> AECEnv:
    """The AEC env (agents act in turn; the native env steps once every agent has acted), order-enforced."""
    return parallel_to_aec(parallel_env(render_mode=render_mode, **options))
