"""What the trainer-facing adapters (Gymnasium VectorEnv, MAPPO runner face) add on top of the bare native step, at
E = 1024 on one thread, without a policy in the loop, measured back to back in the same run (``backend`` is the
innermost parameter); the report divides their median times. The SB3 and TorchRL adapters have suites of their own
(test_sb3_throughput.py, test_torchrl_throughput.py) in the same format."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hmasd.envs
from hmasd.envs.gym_vector import HmasdVectorEnv
from hmasd.envs.mappo import MappoVecEnv

from _common import make_actions, stepper  # benchmarks/_common.py

ENVS = ("stag_hunt", "alice_and_bob")
BACKENDS = ("gymnasium", "mappo", "bare")
NUM_ENVS = 1024
NUM_THREADS = 1
STEPS_PER_CALL = 50
ROUNDS = 9
WARMUP_ROUNDS = 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("env_name", ENVS)
def test_adapter_overhead(benchmark: Any, env_name: str, backend: str) -> None:
    env = hmasd.envs.make(env_name, num_envs=NUM_ENVS, seed=0, num_threads=NUM_THREADS,
                          autoreset="next_step" if backend == "gymnasium" else "same_step")
    n = env.num_agents
    actions = make_actions(STEPS_PER_CALL, NUM_ENVS, n, env.num_actions)
    benchmark.group = f"adapter_overhead {env_name} E={NUM_ENVS}"
    benchmark.extra_info.update({"kind": "adapter_overhead", "backend": backend, "env": env_name,
                                 "num_envs": NUM_ENVS, "num_threads": NUM_THREADS, "num_agents": n,
                                 "agent_steps": STEPS_PER_CALL * NUM_ENVS * n})
    if backend == "gymnasium":
        adapter = HmasdVectorEnv(env)
        adapter.reset()
        rows = [a.reshape(-1) for a in actions]  # one action per agent row, as a Gymnasium learner sends them
        benchmark.pedantic(stepper(adapter.step, rows), rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    elif backend == "mappo":
        runner_env = MappoVecEnv(env)
        runner_env.reset()
        per_agent = [a[:, :, None] for a in actions]  # [E, N, 1], as on-policy's runners send them
        benchmark.pedantic(stepper(runner_env.step, per_agent), rounds=ROUNDS, iterations=1,
                           warmup_rounds=WARMUP_ROUNDS)
    else:
        env.reset()
        benchmark.pedantic(stepper(env.step, actions), rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    assert np.isfinite(env.rewards).all()
