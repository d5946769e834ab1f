"""The TorchRL env (hmasd/envs/torchrl_env.py) against the TorchRL route through PettingZoo, and against the bare native
step, in the same run.

- ``test_torchrl_rollout_throughput``: env steps per second of a TorchRL ``rollout`` of one stag_hunt episode
  (35 steps, from a reset) at E = 16 and 64, through the batched ``HmasdTorchRLEnv`` and through torchrl's
  ``SerialEnv`` of E ``PettingZooWrapper(stag_hunt_v0.parallel_env())``. Both play the same pre-drawn random
  actions (no policy network). ``speedup_vs_pettingzoo`` (the slow route's median time over the fast one's, at the
  same E) goes to both benchmarks' ``extra_info``. Target: at least 50x at E = 16. The slow route costs E times
  one env's TorchRL step, the batched one about one TorchRL step, so the ratio grows with E.
- ``test_torchrl_overhead``: T = 35 steps at E = 1024 (stag_hunt: one episode, so resets are in the timed call;
  uav_coverage: no episode end), the same pre-drawn actions for each of: ``bare`` (``VecEnv.step``, autoreset
  ``same_step``), ``adapter`` (only this project's part: ``HmasdTorchRLEnv._step`` building the output
  tensordict, and ``_reset`` of the envs that ended) and ``torchrl`` (what a TorchRL collector runs:
  ``step_and_maybe_reset``, i.e. the adapter plus TorchRL's own bookkeeping, ``step_mdp`` and the reset merge).
  ``overhead_vs_bare`` (median time over the bare median, minus 1) goes to ``extra_info``. Target: the adapter
  at most +25 % at E = 1024.

Everything runs on one thread (native ``num_threads=1``, torch intra-op threads 1), as the other suites do, and a
benchmark's partner runs right after it (the backend is the innermost parameter), so both see the same load. Run:
``python -m pytest benchmarks/test_torchrl_throughput.py --benchmark-json=torchrl.json``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hmasd.envs

from _common import make_actions, make_continuous_actions, record  # benchmarks/_common.py

torch = pytest.importorskip("torch")
pytest.importorskip("torchrl")
with warnings.catch_warnings():
    # torchrl 0.14 deprecates its own weight updater at import (torchrl.envs pulls in torchrl.collectors)
    warnings.filterwarnings("ignore", "Creating .* which inherits from WeightUpdaterBase", DeprecationWarning)
    from tensordict import TensorDict
    from torchrl.envs import PettingZooWrapper, SerialEnv

    from hmasd.envs.torchrl_env import GROUP, HmasdTorchRLEnv

ROLLOUT_ENV = "stag_hunt"
ROLLOUT_NUM_ENVS = (16, 64)
EPISODE_STEPS = 35  # stag_hunt's default max_steps: one call is one whole episode
# The PettingZoo route takes ~0.7 s per call at E = 16 on a 2-core VM, and its time grows with E.
ROLLOUT_ROUNDS = {("pettingzoo", 16): 5, ("pettingzoo", 64): 3, ("hmasd", 16): 20, ("hmasd", 64): 20}

OVERHEAD_ENVS = ("stag_hunt", "uav_coverage")
OVERHEAD_NUM_ENVS = 1024
OVERHEAD_ROUNDS = {"stag_hunt": 15, "uav_coverage": 6}  # uav_coverage: ~6 ms per step at E = 1024

# Median call time of each benchmark of a comparison, by group and backend, to divide within this run.
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # benchmarks/conftest.py

_MEDIANS: dict[str, dict[str, float]] = {}
_RECORDS: dict[str, dict[str, Any]] = {}



def remember(benchmark: Any, backend: str) -> dict[str, float]:
    """Keeps this benchmark's median and returns the medians of its group so far (nothing without timing, as with
    ``--benchmark-disable``)."""
    group = _MEDIANS.setdefault(benchmark.group, {})
    if benchmark.stats is not None:
        group[backend] = benchmark.stats.stats.median
        _RECORDS.setdefault(benchmark.group, {})[backend] = benchmark.extra_info
    return group


def replay(actions: list[torch.Tensor], key: Any) -> Callable[[TensorDict], TensorDict]:
    """A policy that plays ``actions`` in a cycle: the same random moves for every route, drawn before timing."""
    step = 0

    def policy(td: TensorDict) -> TensorDict:
        nonlocal step
        td.set(key, actions[step % len(actions)])
        step += 1
        return td

    return policy


# ---- (a) batched env versus a SerialEnv of PettingZoo envs ---------------------------------------------------------


def pettingzoo_serial(num_envs: int) -> Any:
    from hmasd.envs.pettingzoo import stag_hunt_v0

    def one() -> Any:
        with warnings.catch_warnings():  # torchrl tests PettingZoo 1.24 and says so for 1.27
            warnings.filterwarnings("ignore", "PettingZoo in TorchRL is tested", UserWarning)
            return PettingZooWrapper(env=stag_hunt_v0.parallel_env())

    return SerialEnv(num_envs, one)


@pytest.mark.parametrize("backend", ["pettingzoo", "hmasd"])
@pytest.mark.parametrize("num_envs", ROLLOUT_NUM_ENVS)
def test_torchrl_rollout_throughput(benchmark: Any, num_envs: int, backend: str) -> None:
    e = num_envs
    env = pettingzoo_serial(e) if backend == "pettingzoo" else HmasdTorchRLEnv(ROLLOUT_ENV, num_envs=e, seed=0)
    (action_key,) = env.action_keys
    spec = env.full_action_spec[action_key]
    n = spec.shape[-1]
    actions = [torch.from_numpy(a).long() for a in make_actions(EPISODE_STEPS, e, n, spec.space.n)]
    policy = replay(actions, action_key)
    record(benchmark, kind="torchrl_rollout", backend=backend, env=ROLLOUT_ENV, num_envs=e, num_threads=1,
           num_agents=n, steps=EPISODE_STEPS)
    data = benchmark.pedantic(lambda: env.rollout(EPISODE_STEPS, policy=policy, break_when_any_done=False),
                              rounds=ROLLOUT_ROUNDS[backend, e], iterations=1, warmup_rounds=1)
    assert data.batch_size == (e, EPISODE_STEPS) and data["next", "done"][:, -1].all()
    env.close()
    medians = remember(benchmark, backend)
    if len(medians) == 2:
        speedup = medians["pettingzoo"] / medians["hmasd"]
        for extra in _RECORDS[benchmark.group].values():
            extra["speedup_vs_pettingzoo"] = speedup


# ---- (b) what the adapter adds to the native step --------------------------------------------------------------


def overhead_actions(env: hmasd.envs.VecEnv) -> list[np.ndarray]:
    e, n = env.num_envs, env.num_agents
    if env.continuous:
        return make_continuous_actions(EPISODE_STEPS, e, n, env.action_dim)
    return make_actions(EPISODE_STEPS, e, n, env.num_actions)


def bare_loop(name: str) -> tuple[Callable[[], None], hmasd.envs.VecEnv]:
    vec = hmasd.envs.make(name, num_envs=OVERHEAD_NUM_ENVS, seed=0, num_threads=1)
    vec.reset()
    actions = overhead_actions(vec)

    def run() -> None:
        for a in actions:
            vec.step(a)

    return run, vec


def adapter_loop(name: str) -> tuple[Callable[[], None], hmasd.envs.VecEnv]:
    """This project's part of a TorchRL step only: the output tensordict, and the reset of the envs that ended."""
    env = HmasdTorchRLEnv(name, num_envs=OVERHEAD_NUM_ENVS, seed=0, num_threads=1)
    env.reset()
    actions = [TensorDict({(GROUP, "action"): torch.from_numpy(a)}, batch_size=env.batch_size)
               for a in overhead_actions(env.vec_env)]

    def run() -> None:
        for action in actions:
            done = env._step(action)["done"]
            if done.any():
                env._reset(TensorDict({"_reset": done}, batch_size=env.batch_size))

    return run, env.vec_env


def torchrl_loop(name: str) -> tuple[Callable[[], None], hmasd.envs.VecEnv]:
    """The loop of a TorchRL collector without a policy: ``step_and_maybe_reset`` with the next actions."""
    env = HmasdTorchRLEnv(name, num_envs=OVERHEAD_NUM_ENVS, seed=0, num_threads=1)
    state = {"td": env.reset()}
    actions = [torch.from_numpy(a) for a in overhead_actions(env.vec_env)]

    def run() -> None:
        td = state["td"]
        for a in actions:
            td.set((GROUP, "action"), a)
            _, td = env.step_and_maybe_reset(td)
        state["td"] = td

    return run, env.vec_env


LOOPS = {"bare": bare_loop, "adapter": adapter_loop, "torchrl": torchrl_loop}


@pytest.mark.parametrize("backend", list(LOOPS))
@pytest.mark.parametrize("env_name", OVERHEAD_ENVS)
def test_torchrl_overhead(benchmark: Any, env_name: str, backend: str) -> None:
    run, vec = LOOPS[backend](env_name)
    record(benchmark, kind="torchrl_overhead", backend=backend, env=env_name, num_envs=OVERHEAD_NUM_ENVS,
           num_threads=1, num_agents=vec.num_agents, steps=EPISODE_STEPS)
    benchmark.pedantic(run, rounds=OVERHEAD_ROUNDS[env_name], iterations=1, warmup_rounds=1)
    assert np.isfinite(vec.rewards).all()
    medians = remember(benchmark, backend)
    if "bare" in medians:
        for other, extra in _RECORDS[benchmark.group].items():
            if other != "bare" and other in medians:
                extra["overhead_vs_bare"] = medians[other] / medians["bare"] - 1
