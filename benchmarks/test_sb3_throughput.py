"""Stable-Baselines3 through the native VecEnv adapter (hmasd.envs.sb3), against what SB3 users ran before it, in the
same run:

- ``test_sb3_rollout_throughput``: SB3's ``PPO.collect_rollouts`` (an ``MlpPolicy`` in the loop) through
  ``HmasdSB3VecEnv`` vs the SuperSuit recipe (``pettingzoo_env_to_vec_env_v1`` + ``concat_vec_envs_v1(...,
  base_class="stable_baselines3")`` + ``VecMonitor``) over the PettingZoo adapter: same env (stag_hunt), same E env
  copies of N agents, the same policy weights. ``extra_info["speedup_vs_supersuit"]`` is SuperSuit's median time
  over the adapter's (target: at least 5x). The SuperSuit recipe never sets ``TimeLimit.truncated``, so SB3 skips
  its per-row value bootstrap there (treating every time limit as a termination). The adapter runs both ways:
  ``time_limits="truncate"`` (its default: SB3 bootstraps each truncated row, one ``predict_values`` call per row)
  and ``time_limits="terminate"`` (SuperSuit's semantics, so the two sides do the same work); and the default
  with ``TimeLimitBootstrap``, the adapter module's callback that does SB3's bootstrap of a step's truncated rows
  in one ``predict_values`` call (SB3's targets up to float rounding, its work batched).
- ``test_sb3_vec_env_step_throughput``: the same two VecEnvs stepped with pre-drawn random actions, no policy: what
  the env side alone costs SB3.
- ``test_sb3_adapter_overhead``: ``step_async``/``step_wait`` at E = 1024 on one thread without a policy, vs the bare
  native ``env.step`` with the same pre-drawn actions. ``extra_info["overhead"]`` is the adapter's median time over
  the bare env's, minus 1 (target: at most +25 %). Each call runs whole episodes, so their ends (every copy of the
  batch truncates in the same step, and each of its rows gets a fresh info dict) weigh in as in training.

The two sides of each comparison alternate round by round (the baseline runs in pytest-benchmark's untimed ``setup``,
timed here), so a shared machine's load hits both alike. ``python -m pytest benchmarks/test_sb3_throughput.py
--benchmark-only`` runs it (under a minute on a 2-core machine); add ``--benchmark-json=FILE`` to keep the numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hmasd.envs

from _common import make_actions, stepper  # benchmarks/_common.py

logger = logging.getLogger(__name__)

ENV = "stag_hunt"
ROLLOUT_ENVS = (64, 256)  # env copies: 256 and 1024 SB3 rows of stag_hunt's 4 agents
ROLLOUT_STEPS = 32  # steps per collect_rollouts call (one call is one timed round)
ROLLOUT_ROUNDS = 5
TARGET_SPEEDUP = 5.0
STEP_ENVS = 64
STEP_STEPS = 35  # one stag_hunt episode per call
STEP_ROUNDS = 7

OVERHEAD_ENVS = 1024
OVERHEAD_ENVS_NAMES = ("stag_hunt", "alice_and_bob")
# Whole episodes per call (stag_hunt: 2 x 35 steps, alice_and_bob: 100, its time limit, which random play reaches)
OVERHEAD_STEPS = {"stag_hunt": 70, "alice_and_bob": 100}
OVERHEAD_ROUNDS = 9
TARGET_OVERHEAD = 0.25
NUM_THREADS = 1
WARMUP_ROUNDS = 1


class BaselineRounds:
    """Runs one baseline round per call and keeps its time: given to ``benchmark.pedantic`` as ``setup``, so that
    the baseline and the benchmarked target alternate. Warm-up rounds are dropped, as pytest-benchmark drops its."""

    def __init__(self, run: Callable[[], None], warmup_rounds: int) -> None:
        self._run = run
        self._skip = warmup_rounds
        self.times: list[float] = []

    def __call__(self) -> None:
        start = time.perf_counter()
        self._run()
        elapsed = time.perf_counter() - start
        if self._skip:
            self._skip -= 1
        else:
            self.times.append(elapsed)

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def best(self) -> float:
        return float(min(self.times))


def compare(benchmark: Any, baseline: BaselineRounds) -> tuple[float, float] | None:
    """(target median, target best) seconds of the finished benchmark, or None with ``--benchmark-disable``."""
    if benchmark.stats is None or not baseline.times:
        return None
    stats = benchmark.stats.stats
    return float(stats.median), float(stats.min)


def rollout_collector(env: Any, weights: dict[str, Any] | None, callback: Any = None
                      ) -> tuple[Callable[[], None], Any]:
    """A call that runs one ``collect_rollouts`` of ROLLOUT_STEPS steps of a PPO ``MlpPolicy`` on ``env`` (with the SB3
    ``callback``, if any), and the policy's weights (``weights`` given: loaded, so both sides run the same network)."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", env, n_steps=ROLLOUT_STEPS, batch_size=ROLLOUT_STEPS * env.num_envs, device="cpu",
                verbose=0)
    if weights is not None:
        model.policy.load_state_dict(weights)
    # learn() would also train; collect_rollouts alone needs the state learn() sets up first (obs, callback)
    _, callback = model._setup_learn(total_timesteps=10**12, callback=callback)

    def collect() -> None:
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=ROLLOUT_STEPS)

    return collect, model.policy.state_dict()


def supersuit_env(num_envs: int) -> Any:
    import supersuit as ss
    from stable_baselines3.common.vec_env import VecMonitor

    from hmasd.envs.pettingzoo import stag_hunt_v0

    vec = ss.pettingzoo_env_to_vec_env_v1(stag_hunt_v0.parallel_env())
    return VecMonitor(ss.concat_vec_envs_v1(vec, num_envs, num_cpus=0, base_class="stable_baselines3"))


def record_speedup(benchmark: Any, baseline: BaselineRounds, env_steps: int) -> None:
    """SuperSuit's times and its median over the adapter's (the speedup) in ``extra_info``, once both are timed."""
    timed = compare(benchmark, baseline)
    if timed is None:
        return
    median, best = timed
    speedup = baseline.median / median
    benchmark.extra_info.update({
        "env_steps_per_s": env_steps / median, "supersuit_env_steps_per_s": env_steps / baseline.median,
        "supersuit_median_s": baseline.median, "supersuit_best_s": baseline.best,
        "speedup_vs_supersuit": speedup, "speedup_vs_supersuit_best": baseline.best / best,
        "target_met": speedup >= TARGET_SPEEDUP})
    logger.info("%s: %.0f env-steps/s native, %.0f SuperSuit: %.1fx", benchmark.group, env_steps / median,
                env_steps / baseline.median, speedup)


def labels(kind: str, num_envs: int, num_agents: int, steps: int, **more: Any) -> dict[str, Any]:
    return {"kind": kind, "backend": "sb3_native", "baseline": "supersuit", "env": ENV, "num_envs": num_envs,
            "num_threads": NUM_THREADS, "num_agents": num_agents, "steps_per_call": steps,
            "env_steps": steps * num_envs, "agent_steps": steps * num_envs * num_agents,
            "target_speedup": TARGET_SPEEDUP, **more}


# (time_limits, whether TimeLimitBootstrap batches SB3's bootstrap of truncated rows)
ROLLOUT_VARIANTS = {"truncate": ("truncate", False), "truncate+TimeLimitBootstrap": ("truncate", True),
                    "terminate": ("terminate", False)}


@pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")  # SuperSuit's wrapper
@pytest.mark.parametrize("variant", list(ROLLOUT_VARIANTS))
@pytest.mark.parametrize("num_envs", ROLLOUT_ENVS)
def test_sb3_rollout_throughput(benchmark: Any, num_envs: int, variant: str, one_torch_thread: None) -> None:
    from hmasd.envs.sb3 import HmasdSB3VecEnv, TimeLimitBootstrap

    time_limits, batched = ROLLOUT_VARIANTS[variant]
    native = HmasdSB3VecEnv(ENV, num_envs=num_envs, seed=0, num_threads=NUM_THREADS, time_limits=time_limits)
    collect_native, weights = rollout_collector(native, None, TimeLimitBootstrap() if batched else None)
    collect_supersuit, _ = rollout_collector(supersuit_env(num_envs), weights)
    baseline = BaselineRounds(collect_supersuit, WARMUP_ROUNDS)
    benchmark.group = f"sb3_rollout {ENV} E={num_envs} time_limits={variant}"
    benchmark.extra_info.update(labels("sb3_rollout", num_envs, native.num_agents, ROLLOUT_STEPS, torch_threads=1,
                                       variant=f"time_limits={variant}"))
    benchmark.pedantic(collect_native, setup=baseline, rounds=ROLLOUT_ROUNDS, iterations=1,
                       warmup_rounds=WARMUP_ROUNDS)
    record_speedup(benchmark, baseline, ROLLOUT_STEPS * num_envs)


@pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")
def test_sb3_vec_env_step_throughput(benchmark: Any) -> None:
    from hmasd.envs.sb3 import HmasdSB3VecEnv

    native = HmasdSB3VecEnv(ENV, num_envs=STEP_ENVS, seed=0, num_threads=NUM_THREADS)
    supersuit = supersuit_env(STEP_ENVS)
    n = native.num_agents
    actions = [a.reshape(-1) for a in make_actions(STEP_STEPS, STEP_ENVS, n, native.action_space.n)]
    native.reset()
    supersuit.reset()
    baseline = BaselineRounds(stepper(supersuit.step, actions), WARMUP_ROUNDS)
    benchmark.group = f"sb3_vec_env_step {ENV} E={STEP_ENVS}"
    benchmark.extra_info.update(labels("sb3_vec_env_step", STEP_ENVS, n, STEP_STEPS))
    benchmark.pedantic(stepper(native.step, actions), setup=baseline, rounds=STEP_ROUNDS, iterations=1,
                       warmup_rounds=WARMUP_ROUNDS)
    record_speedup(benchmark, baseline, STEP_STEPS * STEP_ENVS)


@pytest.mark.parametrize("env_name", OVERHEAD_ENVS_NAMES)
def test_sb3_adapter_overhead(benchmark: Any, env_name: str) -> None:
    from hmasd.envs.sb3 import HmasdSB3VecEnv

    bare = hmasd.envs.make(env_name, num_envs=OVERHEAD_ENVS, seed=0, num_threads=NUM_THREADS)
    adapter = HmasdSB3VecEnv(hmasd.envs.make(env_name, num_envs=OVERHEAD_ENVS, seed=0, num_threads=NUM_THREADS))
    n, steps = bare.num_agents, OVERHEAD_STEPS[env_name]
    actions = make_actions(steps, OVERHEAD_ENVS, n, bare.num_actions)
    rows = [a.reshape(-1) for a in actions]  # one action per agent row, as SB3 sends them
    bare.reset()
    adapter.reset()

    def adapter_steps() -> None:
        for a in rows:
            adapter.step_async(a)
            adapter.step_wait()

    baseline = BaselineRounds(stepper(bare.step, actions), WARMUP_ROUNDS)
    benchmark.group = f"sb3_adapter_overhead {env_name} E={OVERHEAD_ENVS}"
    benchmark.extra_info.update({"kind": "sb3_adapter_overhead", "backend": "sb3", "baseline": "bare",
                                 "env": env_name, "num_envs": OVERHEAD_ENVS, "num_threads": NUM_THREADS,
                                 "num_agents": n, "steps_per_call": steps, "env_steps": steps * OVERHEAD_ENVS,
                                 "agent_steps": steps * OVERHEAD_ENVS * n, "target_overhead": TARGET_OVERHEAD})
    benchmark.pedantic(adapter_steps, setup=baseline, rounds=OVERHEAD_ROUNDS, iterations=1,
                       warmup_rounds=WARMUP_ROUNDS)
    timed = compare(benchmark, baseline)
    if timed is not None:
        median, best = timed
        overhead = median / baseline.median - 1
        benchmark.extra_info.update({
            "bare_median_s": baseline.median, "bare_best_s": baseline.best, "overhead": overhead,
            "overhead_best": best / baseline.best - 1, "target_met": overhead <= TARGET_OVERHEAD})
        logger.info("SB3 adapter %s E=%d: %+.0f %% over the bare step (best rounds %+.0f %%)", env_name,
                    OVERHEAD_ENVS, 100 * overhead, 100 * (best / baseline.best - 1))
    # both ran the same actions from the same seed: the adapter's rows are the bare env's buffers
    np.testing.assert_array_equal(adapter.vec.obs, bare.obs)
