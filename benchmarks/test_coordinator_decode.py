"""Per-decision cost of the skill coordinator: ``SkillCoordinator.act`` (incremental decoding, keys and values
cached) against ``act_reference`` (the whole shifted sequence decoded again for every token, N+1 decoder passes), at
the shapes training uses, in the same run.

Shapes: alice_and_bob (N = 2, n_Z = 2, n_z = 4, the default preset) and uav_seed_parity (uav_coverage with 5 UAVs
and 50 users: N = 5, n_Z = n_z = 3), each with B = 32 and 8 envs deciding at once (``num_envs``, the group's E),
and the trainer's coordinator (n_embd = 64, n_head = 1, n_block = 1, no agent position embedding). One timed call
is ``CALLS`` sampled decisions (``act(state, obs)``) on the same inputs. The two benchmarks of a shape run back to
back (``backend`` is the innermost parameter), so both see the same load; ``speedup_vs_reference`` (the
reference's median time over the incremental one's) and ``speedup_vs_reference_best`` (the same of the fastest
rounds) go to both benchmarks' ``extra_info``. Target: 5x at every shape. One torch thread, as in the other
suites. Run: ``python -m pytest benchmarks/test_coordinator_decode.py --benchmark-json=coordinator.json``.
"""

from __future__ import annotations

from typing import Any

import pytest

import hmasd.envs

from _common import record  # benchmarks/_common.py

torch = pytest.importorskip("torch")
from hmasd.algo.coordinator import SkillCoordinator  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # benchmarks/conftest.py

# name -> (env, its make() options, n_Z, n_z)
SHAPES = {
    "alice_and_bob": ("alice_and_bob", {}, 2, 4),
    "uav_seed_parity": ("uav_coverage", {"num_uavs": 5, "num_users": 50}, 3, 3),
}
BATCHES = (32, 8)
BACKENDS = ("reference", "incremental")
N_EMBD, N_HEAD, N_BLOCK = 64, 1, 1  # TrainConfig's defaults

CALLS = 10  # decisions per timed call: 10-100 ms a call
ROUNDS = {"reference": 15, "incremental": 40}
WARMUP_ROUNDS = 2
SEED = 1234

# Median and fastest call time of each benchmark of a comparison, by group and backend, to divide within this run.
_TIMES: dict[str, dict[str, tuple[float, float]]] = {}
_RECORDS: dict[str, dict[str, dict[str, Any]]] = {}


def coordinator_inputs(shape: str, batch: int) -> tuple[SkillCoordinator, torch.Tensor, torch.Tensor]:
    """The trainer's coordinator for this env (random init) and a batch of random states and observations."""
    env_name, options, n_team, n_indiv = SHAPES[shape]
    env = hmasd.envs.make(env_name, num_envs=1, **options)
    torch.manual_seed(SEED)
    net = SkillCoordinator(env.state_dim, env.obs_dim, env.num_agents, n_team, n_indiv, N_EMBD, N_HEAD, N_BLOCK)
    return net, torch.randn(batch, env.state_dim), torch.randn(batch, env.num_agents, env.obs_dim)


def remember(benchmark: Any, backend: str) -> dict[str, tuple[float, float]]:
    """Keeps this benchmark's median and fastest times and returns its group's so far (nothing without timing, as
    with ``--benchmark-disable``)."""
    group = _TIMES.setdefault(benchmark.group, {})
    if benchmark.stats is not None:
        stats = benchmark.stats.stats
        group[backend] = (stats.median, stats.min)
        _RECORDS.setdefault(benchmark.group, {})[backend] = benchmark.extra_info
    return group


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_coordinator_decode(benchmark: Any, shape: str, batch: int, backend: str) -> None:
    net, state, obs = coordinator_inputs(shape, batch)
    act = net.act if backend == "incremental" else net.act_reference
    _, _, n_team, n_indiv = SHAPES[shape]
    record(benchmark, kind="coordinator_decode", backend=backend, env=shape, num_envs=batch, num_threads=1,
           num_agents=net.num_agents, steps=CALLS)
    benchmark.extra_info.update({"decisions_per_call": CALLS, "num_team_skills": n_team,
                                 "num_indiv_skills": n_indiv, "n_embd": N_EMBD, "n_head": N_HEAD,
                                 "n_block": N_BLOCK, "state_dim": state.shape[1], "obs_dim": obs.shape[2]})

    def decide() -> None:
        for _ in range(CALLS):
            act(state, obs)

    torch.manual_seed(SEED)
    benchmark.pedantic(decide, rounds=ROUNDS[backend], iterations=1, warmup_rounds=WARMUP_ROUNDS)
    skills, logp, values = act(state, obs)
    assert skills.shape == logp.shape == values.shape == (batch, net.num_agents + 1)
    times = remember(benchmark, backend)
    if len(times) == len(BACKENDS):
        (ref_median, ref_best), (median, best) = times["reference"], times["incremental"]
        for extra in _RECORDS[benchmark.group].values():
            extra["speedup_vs_reference"] = ref_median / median
            extra["speedup_vs_reference_best"] = ref_best / best
