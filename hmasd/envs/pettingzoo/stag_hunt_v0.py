"""PettingZoo ``stag_hunt_v0``: the N-agent Markov stag hunt as a parallel (``parallel_env``) or AEC
(``env``) environment."""

from __future__ import annotations

from typing import Any

from hmasd.envs.pettingzoo._adapter import HmasdParallelEnv, aec_constructors


class StagHuntParallelEnv(HmasdParallelEnv):
    """``stag_hunt`` (options in docs/envs.md, e.g. ``num_agents``; ``max_cycles`` = ``max_steps``)."""

    metadata: dict[str, Any] = {**HmasdParallelEnv.metadata, "name": "stag_hunt_v0"}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        super().__init__("stag_hunt", render_mode=render_mode, **options)


def parallel_env(render_mode: str | None = None, **options: Any) -> StagHuntParallelEnv:
    """The parallel env (PettingZoo's ``ParallelEnv``)."""
    return StagHuntParallelEnv(render_mode=render_mode, **options)


raw_env, env = aec_constructors(parallel_env)
