"""Agent-steps per second of the native envs and of the NumPy reference over the same batch sizes, in one run."""

from __future__ import annotations

from typing import Any

import pytest

import hmasd.envs
from hmasd.envs.reference.vec import ReferenceVecEnv

from _common import make_actions, record, stepper  # benchmarks/_common.py

ENVS = ("alice_and_bob", "stag_hunt")
NUM_ENVS = (1, 64, 4096)
THREADS = (1, 2)

# Steps per benchmarked call and timed rounds, chosen so that one call lasts milliseconds (well above timer
# resolution) and the whole suite stays within a few minutes on a 2-core machine.
NATIVE_STEPS = {1: 1000, 64: 100, 4096: 20}
NATIVE_ROUNDS = {1: 60, 64: 60, 4096: 25}
# The reference steps its envs one by one in Python (seconds per step at E = 4096): few steps, few rounds.
REFERENCE_STEPS = {1: 20, 64: 3, 4096: 1}
REFERENCE_ROUNDS = {1: 5, 64: 3, 4096: 3}


@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("num_envs", NUM_ENVS)
@pytest.mark.parametrize("env_name", ENVS)
def test_native_throughput(benchmark: Any, env_name: str, num_envs: int, num_threads: int) -> None:
    env = hmasd.envs.make(env_name, num_envs=num_envs, seed=0, num_threads=num_threads)
    env.reset()
    steps = NATIVE_STEPS[num_envs]
    actions = make_actions(steps, num_envs, env.num_agents, env.num_actions)
    record(benchmark, kind="throughput", backend="native", env=env_name, num_envs=num_envs,
           num_threads=num_threads, num_agents=env.num_agents, steps=steps)
    benchmark.pedantic(stepper(env.step, actions), rounds=NATIVE_ROUNDS[num_envs], iterations=1, warmup_rounds=1)
    assert env.rewards.shape == (num_envs, env.num_agents)


@pytest.mark.parametrize("num_envs", NUM_ENVS)
@pytest.mark.parametrize("env_name", ENVS)
def test_reference_throughput(benchmark: Any, env_name: str, num_envs: int) -> None:
    env = ReferenceVecEnv(env_name, num_envs, seed=0)
    env.reset()
    steps = REFERENCE_STEPS[num_envs]
    actions = make_actions(steps, num_envs, env.num_agents, env.num_actions)
    record(benchmark, kind="throughput", backend="reference", env=env_name, num_envs=num_envs,
           num_threads=None, num_agents=env.num_agents, steps=steps)
    warmup = 0 if num_envs >= 4096 else 1
    benchmark.pedantic(stepper(env.step, actions), rounds=REFERENCE_ROUNDS[num_envs], iterations=1,
                       warmup_rounds=warmup)
    assert env.rewards.shape == (num_envs, env.num_agents)


@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("env_name", ENVS)
def test_native_round_trip(benchmark: Any, env_name: str, num_threads: int) -> None:
    """One Python ``env.step(a)`` call at E = 1, calibrated by pytest-benchmark to many iterations per round."""
    env = hmasd.envs.make(env_name, num_envs=1, seed=0, num_threads=num_threads)
    env.reset()
    (action,) = make_actions(1, 1, env.num_agents, env.num_actions)
    record(benchmark, kind="round_trip", backend="native", env=env_name, num_envs=1, num_threads=num_threads,
           num_agents=env.num_agents, steps=1)
    benchmark(env.step, action)
    assert env.rewards.shape == (1, env.num_agents)
