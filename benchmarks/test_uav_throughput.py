"""Env steps per second of the native uav_coverage env and of its NumPy reference (stepped per env), in one run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hmasd.envs
from hmasd.envs.reference.vec import ReferenceVecEnv

from _common import make_continuous_actions, stepper  # benchmarks/_common.py

ENV = "uav_coverage"
SIZES = ((5, 50), (10, 200))  # (U UAVs = agents, N ground users)
NUM_ENVS = (1, 64, 1024)
THREADS = (1, 2)
# The reference steps env by env in Python (milliseconds per env step), so its per-env-step rate does not depend on
# E: E = 1024 would take seconds per step and add nothing, the report compares E = 1024 against E = 64.
REFERENCE_NUM_ENVS = (1, 64)
MAX_STEPS = 500  # the env's default, spelled out because the advance check below relies on it

# Steps per benchmarked call, by (U, E), so that one call lasts milliseconds (well above timer resolution) both
# before and after the native env gets faster; U = 10, N = 200 costs ~7x more per env step than U = 5, N = 50.
NATIVE_STEPS = {(5, 1): 300, (5, 64): 5, (5, 1024): 2, (10, 1): 50, (10, 64): 1, (10, 1024): 1}
NATIVE_ROUNDS = {1: 50, 64: 50, 1024: 25}
REFERENCE_STEPS = {(5, 1): 10, (5, 64): 1, (10, 1): 5, (10, 64): 1}
REFERENCE_ROUNDS = {1: 10, 64: 5}


def record(benchmark: Any, *, backend: str, num_uavs: int, num_users: int, num_envs: int,
           num_threads: int | None, steps: int) -> None:
    benchmark.group = f"uav_throughput U={num_uavs} N={num_users} E={num_envs}"
    benchmark.extra_info.update({
        "kind": "uav_throughput",
        "backend": backend,
        "env": ENV,
        "num_envs": num_envs,
        "num_threads": num_threads,
        "num_agents": num_uavs,
        "num_users": num_users,
        "steps_per_call": steps,
        "env_steps": steps * num_envs,
        "agent_steps": steps * num_envs * num_uavs,
    })


def run_counted(benchmark: Any, run: Callable[[], None], rounds: int, warmup_rounds: int) -> int:
    """Times ``run`` and returns how many times it was called (``--benchmark-disable`` calls it only once)."""
    calls = 0

    def counted() -> None:
        nonlocal calls
        calls += 1
        run()

    benchmark.pedantic(counted, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    return calls


def check_advanced(env: Any, num_uavs: int, num_users: int, total_steps: int) -> None:
    """Every env stepped exactly ``total_steps`` times since reset, autoresetting every MAX_STEPS steps: the state's
    time entry (after the UAVs' and users' positions) is ``t / max_steps`` with ``t = total_steps mod MAX_STEPS``."""
    assert env.rewards.shape == (env.num_envs, num_uavs)
    assert np.isfinite(env.rewards).all()
    t = total_steps % MAX_STEPS
    expected = np.float32(t) / np.float32(MAX_STEPS)
    np.testing.assert_array_equal(env.state[:, 3 * num_uavs + 2 * num_users], np.full(env.num_envs, expected))


@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("num_envs", NUM_ENVS)
@pytest.mark.parametrize(("num_uavs", "num_users"), SIZES)
def test_uav_native_throughput(benchmark: Any, num_uavs: int, num_users: int, num_envs: int,
                               num_threads: int) -> None:
    env = hmasd.envs.make(ENV, num_envs=num_envs, seed=0, num_threads=num_threads, num_uavs=num_uavs,
                          num_users=num_users, max_steps=MAX_STEPS)
    env.reset()
    assert env.continuous and env.num_agents == num_uavs
    steps = NATIVE_STEPS[(num_uavs, num_envs)]
    actions = make_continuous_actions(steps, num_envs, num_uavs, env.action_dim)
    record(benchmark, backend="native", num_uavs=num_uavs, num_users=num_users, num_envs=num_envs,
           num_threads=num_threads, steps=steps)
    calls = run_counted(benchmark, stepper(env.step, actions), rounds=NATIVE_ROUNDS[num_envs], warmup_rounds=1)
    check_advanced(env, num_uavs, num_users, calls * steps)


@pytest.mark.parametrize("num_envs", REFERENCE_NUM_ENVS)
@pytest.mark.parametrize(("num_uavs", "num_users"), SIZES)
def test_uav_reference_throughput(benchmark: Any, num_uavs: int, num_users: int, num_envs: int) -> None:
    env = ReferenceVecEnv(ENV, num_envs, seed=0, num_uavs=num_uavs, num_users=num_users, max_steps=MAX_STEPS)
    env.reset()
    assert env.action_type == "continuous" and env.num_agents == num_uavs
    steps = REFERENCE_STEPS[(num_uavs, num_envs)]
    actions = make_continuous_actions(steps, num_envs, num_uavs, env.action_width)
    record(benchmark, backend="reference", num_uavs=num_uavs, num_users=num_users, num_envs=num_envs,
           num_threads=None, steps=steps)
    calls = run_counted(benchmark, stepper(env.step, actions), rounds=REFERENCE_ROUNDS[num_envs], warmup_rounds=1)
    check_advanced(env, num_uavs, num_users, calls * steps)
