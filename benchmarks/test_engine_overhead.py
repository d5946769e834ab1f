"""What the rollout engine costs on top of the bare env step: one batch through the engine versus the same env steps
on an identical bare env, at E = 4096 on one thread, in the same run.

The two benchmarks of one (env, clock) pair run back to back (``backend`` is the innermost parameter), so they
see nearly the same machine load; the report divides their median times. A third benchmark per env writes the
bytes one batch stores, and nothing else, to show how much of the overhead this machine's memory bandwidth alone
accounts for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hmasd.envs
from hmasd.rollout import RolloutEngine

from _common import make_actions, stepper  # benchmarks/_common.py

ENVS = ("alice_and_bob", "stag_hunt")
CLOCKS = ("episode", "global")
BACKENDS = ("engine", "bare")

NUM_ENVS = 4096
NUM_THREADS = 1
HORIZON = 50  # T: env steps per batch (one timed call)
SKILL_INTERVAL = 10  # k
NUM_TEAM_SKILLS = 2
NUM_INDIV_SKILLS = 4

# One call is one batch of T steps (tens to hundreds of ms at E = 4096); the warm-up round also faults in the
# engine's batch buffers.
ROUNDS = 7
WARMUP_ROUNDS = 1

POLICY_SEED = 4321


class PolicyOutputs:
    """Preallocated stand-ins for the policy's outputs: low-level log-probs and values [E, N], and full-size
    decision arrays (team skill [E], individual skills [E, N], log-probs and values [E, N+1]) that each decision
    step slices to its D envs. Nothing is allocated or drawn inside the timed loop except the engine's own
    ``decision_env_ids()``."""

    def __init__(self, num_envs: int, num_agents: int) -> None:
        rng = np.random.default_rng(POLICY_SEED)
        self.logp = -rng.random((num_envs, num_agents), dtype=np.float32)
        self.values = rng.standard_normal((num_envs, num_agents), dtype=np.float32)
        self.team = rng.integers(0, NUM_TEAM_SKILLS, size=num_envs, dtype=np.int32)
        self.indiv = rng.integers(0, NUM_INDIV_SKILLS, size=(num_envs, num_agents), dtype=np.int32)
        self.decision_logp = -rng.random((num_envs, num_agents + 1), dtype=np.float32)
        self.decision_values = rng.standard_normal((num_envs, num_agents + 1), dtype=np.float32)


def engine_batch(engine: RolloutEngine, actions: list[np.ndarray], policy: PolicyOutputs) -> Callable[[], None]:
    """One full batch: T steps, each preceded by ``decide()`` for the envs that need a decision, then
    ``resume()`` (policy version + 1, every env decides afresh at the next batch's first step)."""
    decision_env_ids, decide, step, resume = engine.decision_env_ids, engine.decide, engine.step, engine.resume
    logp, values = policy.logp, policy.values
    team, indiv, d_logp, d_values = policy.team, policy.indiv, policy.decision_logp, policy.decision_values

    def run() -> None:
        for a in actions:
            ids = decision_env_ids()
            d = len(ids)
            if d:
                decide(ids, team[:d], indiv[:d], d_logp[:d], d_values[:d])
            step(a, logp, values)
        resume()

    return run


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("clock", CLOCKS)
@pytest.mark.parametrize("env_name", ENVS)
def test_engine_overhead(benchmark: Any, env_name: str, clock: str, backend: str) -> None:
    env = hmasd.envs.make(env_name, num_envs=NUM_ENVS, seed=0, num_threads=NUM_THREADS)
    env.reset()
    n = env.num_agents
    actions = make_actions(HORIZON, NUM_ENVS, n, env.num_actions)

    benchmark.group = f"engine_overhead {env_name} clock={clock} E={NUM_ENVS}"
    benchmark.extra_info.update({
        "kind": "engine_overhead",
        "backend": backend,
        "env": env_name,
        "clock": clock,
        "E": NUM_ENVS,
        "T": HORIZON,
        "k": SKILL_INTERVAL,
        "num_envs": NUM_ENVS,
        "num_threads": NUM_THREADS,
        "num_agents": n,
        "steps_per_call": HORIZON,
        "agent_steps": HORIZON * NUM_ENVS * n,
    })

    if backend == "engine":
        engine = RolloutEngine(env, horizon=HORIZON, skill_interval=SKILL_INTERVAL, num_team_skills=NUM_TEAM_SKILLS,
                               num_indiv_skills=NUM_INDIV_SKILLS, clock=clock)
        benchmark.pedantic(engine_batch(engine, actions, PolicyOutputs(NUM_ENVS, n)), rounds=ROUNDS, iterations=1,
                           warmup_rounds=WARMUP_ROUNDS)
        # one batch per timed call; `--benchmark-disable` makes a single call, so count what actually ran
        counters = engine.counters()
        batches = counters["policy_version"]
        assert batches >= 1
        assert counters["low_level_samples"] == batches * HORIZON * NUM_ENVS * n  # agent-steps
        assert not engine.ready and engine.steps_in_batch == 0
    else:
        benchmark.pedantic(stepper(env.step, actions), rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
        assert env.rewards.shape == (NUM_ENVS, n)


def batch_rows(num_envs: int, n: int, obs_dim: int, state_dim: int, num_actions: int) -> list[np.ndarray]:
    """Arrays [T, E, ...] of every per-step record the engine keeps: what the env writes into the batch (obs, state,
    action mask) and what the engine records (actions, log-probs, values, rewards, end flags, skills, version)."""
    shapes = [((n, obs_dim), np.float32), ((state_dim,), np.float32), ((n, num_actions), np.bool_),
              ((n,), np.int32), ((n,), np.float32), ((n,), np.float32), ((n,), np.float32), ((), np.bool_),
              ((), np.bool_), ((), np.int32), ((n,), np.int32), ((), np.int32)]
    return [np.ones((HORIZON, num_envs, *shape), dtype=dtype) for shape, dtype in shapes]


def store_batch(rows: list[np.ndarray]) -> Callable[[], None]:
    """One batch of stores alone: each step fills its row of every array (one contiguous memset each), so the
    bytes match the engine's and only the work around them is missing."""

    def run() -> None:
        for t in range(HORIZON):
            for array in rows:
                array[t].fill(0)

    return run


@pytest.mark.parametrize("env_name", ENVS)
def test_engine_store_floor(benchmark: Any, env_name: str) -> None:
    env = hmasd.envs.make(env_name, num_envs=NUM_ENVS, seed=0, num_threads=NUM_THREADS)
    n = env.num_agents
    rows = batch_rows(NUM_ENVS, n, env.obs_dim, env.state_dim, env.num_actions)
    benchmark.group = f"engine_overhead {env_name} store floor E={NUM_ENVS}"
    benchmark.extra_info.update({
        "kind": "engine_store_floor",
        "backend": "store",
        "env": env_name,
        "E": NUM_ENVS,
        "T": HORIZON,
        "num_envs": NUM_ENVS,
        "num_threads": NUM_THREADS,
        "num_agents": n,
        "steps_per_call": HORIZON,
        "agent_steps": HORIZON * NUM_ENVS * n,
        "batch_bytes": sum(array.nbytes for array in rows),
    })
    benchmark.pedantic(store_batch(rows), rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    assert all(not array.any() for array in rows)  # every row of every array was written
