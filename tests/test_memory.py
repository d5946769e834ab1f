"""Stepping does not grow resident memory (no per-step allocation that leaks)."""

from __future__ import annotations

import numpy as np

import hmasd.envs


def resident_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def test_stepping_does_not_grow_resident_memory(env_name):
    env = hmasd.envs.make(env_name, num_envs=1, seed=0)
    env.reset()
    actions = hmasd.envs.random_actions(env, np.random.default_rng(0))  # one fixed action per agent
    for _ in range(20_000):  # warm up allocator and caches
        env.step(actions)
    before = resident_kib()
    # a million steps, or 200,000 of uav_coverage's 10x costlier ones: either catches a leak of 6 bytes a step
    steps = 200_000 if env.continuous else 1_000_000
    for _ in range(steps):
        env.step(actions)
    grown = resident_kib() - before
    assert grown < 1024, f"resident memory grew by {grown} KiB over {steps} steps"
