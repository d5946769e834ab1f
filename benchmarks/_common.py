"""Helpers shared by the benchmark suites: pre-drawn actions (discrete and continuous) and the timed stepping loop.

Imported as the top-level module ``_common``: benchmarks/ is not a package, so pytest puts benchmarks/ (not the
repository root, whose uncompiled hmasd/ would shadow the installed package) first on sys.path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ACTION_SEED = 1234


def make_actions(num_steps: int, num_envs: int, num_agents: int, num_actions: int) -> list[np.ndarray]:
    """``num_steps`` C-contiguous int32 [E, N] arrays of uniform valid actions, drawn before any timing."""
    rng = np.random.default_rng(ACTION_SEED)
    batch = rng.integers(0, num_actions, size=(num_steps, num_envs, num_agents), dtype=np.int32)
    return [np.ascontiguousarray(batch[t]) for t in range(num_steps)]


def make_continuous_actions(num_steps: int, num_envs: int, num_agents: int, action_dim: int) -> list[np.ndarray]:
    """``num_steps`` C-contiguous float32 [E, N, action_dim] arrays uniform in [-1, 1], drawn before any timing."""
    rng = np.random.default_rng(ACTION_SEED)
    batch = rng.uniform(-1.0, 1.0, size=(num_steps, num_envs, num_agents, action_dim)).astype(np.float32)
    return [np.ascontiguousarray(batch[t]) for t in range(num_steps)]


def stepper(step: Callable[[np.ndarray], Any], actions: list[np.ndarray]) -> Callable[[], None]:
    """A call that steps once per action array: the timed unit."""

    def run() -> None:
        for a in actions:
            step(a)

    return run


def record(benchmark: Any, *, kind: str, backend: str, env: str, num_envs: int, num_threads: int | None,
           num_agents: int, steps: int) -> None:
    """A benchmark's group and the labels report.py reads (steps per call: env steps and agent-steps)."""
    benchmark.group = f"{kind} {env} E={num_envs}"
    benchmark.extra_info.update({
        "kind": kind,
        "backend": backend,
        "env": env,
        "num_envs": num_envs,
        "num_threads": num_threads,
        "num_agents": num_agents,
        "steps_per_call": steps,
        "env_steps": steps * num_envs,
        "agent_steps": steps * num_envs * num_agents,
    })


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or "unknown" where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return "unknown"
