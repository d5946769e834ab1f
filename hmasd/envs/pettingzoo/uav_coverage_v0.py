"""PettingZoo ``uav_coverage_v0``: UAV base stations serving ground users, as a parallel (``parallel_env``) or AEC
(``env``) environment; continuous (Box) moves by default, ``action_type="discrete"`` for 7 moves."""

from __future__ import annotations

from typing import Any

from hmasd.envs.pettingzoo._adapter import HmasdParallelEnv, aec_constructors


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


raw_env, env = aec_constructors(parallel_env)
