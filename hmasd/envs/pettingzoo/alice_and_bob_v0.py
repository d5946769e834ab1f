"""PettingZoo ``alice_and_bob_v0``: the 2-agent button/diamond task as a parallel (``parallel_env``) or AEC
(``env``) environment."""

from __future__ import annotations

from typing import Any

from hmasd.envs.pettingzoo._adapter import HmasdParallelEnv, aec_constructors


class AliceAndBobParallelEnv(HmasdParallelEnv):
    """``alice_and_bob`` (options ``height``, ``width``, ``max_steps``; ``max_cycles`` = ``max_steps``)."""

    metadata: dict[str, Any] = {**HmasdParallelEnv.metadata, "name": "alice_and_bob_v0"}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        super().__init__("alice_and_bob", render_mode=render_mode, **options)


def parallel_env(render_mode: str | None = None, **options: Any) -> AliceAndBobParallelEnv:
    """The parallel env (PettingZoo's ``ParallelEnv``)."""
    return AliceAndBobParallelEnv(render_mode=render_mode, **options)


raw_env, env = aec_constructors(parallel_env)
