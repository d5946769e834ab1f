"""The CUDA backend against the CPU backend: same seed and same actions, every buffer compared, for every env and
both clocks over thousands of steps with auto-resets; bad inputs on device tensors; DLPack without copies.

Skipped, with the reason, where no CUDA build or no visible device exists (the CPU suite covers the shared rules).
"""

from __future__ import annotations

import numpy as np
import pytest

import hmasd.envs
from hmasd import _native
from conftest import gpu_marks
from hmasd.rollout import RolloutEngine

torch = pytest.importorskip("torch")

_INFO = _native.build_info()
pytestmark = gpu_marks()

# (env, options, num_envs, steps): short episodes so that auto-resets are frequent.
CASES = [
    ("alice_and_bob", {"height": 6, "width": 7, "max_steps": 15}, 257, 2000),
    ("stag_hunt", {"max_steps": 20}, 129, 2000),
    ("stag_hunt", {"reward_mode": "team", "num_agents": 3, "grid_size": 5, "tie_break": "index"}, 65, 1500),
    ("uav_coverage", {"max_steps": 25}, 33, 300),
    ("uav_coverage", {"action_type": "discrete", "scenario": "base_station", "max_steps": 25}, 33, 300),
    ("uav_coverage", {"user_grid": 7, "max_steps": 25}, 33, 300),
    ("uav_coverage", {"uav_load": True, "max_connections": 4, "max_steps": 25}, 33, 300),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


def host(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def assert_same(cpu, gpu, what: str, name: str) -> None:
    """Bit-identical, except uav_coverage's float buffers: its reset draws user positions with libm's log, cos and
    sin, which CUDA computes within 2 ulp of glibc (CUDA programming guide, maths functions), so a coordinate may
    differ by one float32 ulp and everything derived from it by a few."""
    a, b = host(cpu), host(gpu)
    if name == "uav_coverage" and a.dtype.kind == "f":
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4, err_msg=what)
    else:
        np.testing.assert_array_equal(b, a, err_msg=what)


def actions_for(env, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    return hmasd.envs.random_actions(env, rng, mask=mask)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_env_steps_match_the_cpu_backend(case):
    name, options, num_envs, steps = case
    cpu = hmasd.envs.make(name, num_envs=num_envs, seed=11, **options)
    gpu = hmasd.envs.make(name, num_envs=num_envs, seed=11, device="cuda", **options)
    cpu.reset(), gpu.reset()
    rng = np.random.default_rng(0)
    keys = ("obs", "state", "rewards", "terminated", "truncated", "action_mask")
    for t in range(steps):
        actions = actions_for(cpu, rng, cpu.action_mask)
        cpu.step(actions)
        gpu.step(torch.from_numpy(actions).cuda())
        for key in keys:
            assert_same(getattr(cpu, key), getattr(gpu, key), f"{key} at step {t}", name)
        ended = cpu.terminated | cpu.truncated
        for key in ("final_obs", "final_state", "episode_return", "episode_length"):
            assert_same(getattr(cpu, key)[ended], host(getattr(gpu, key))[ended], f"{key} at step {t}", name)
        if t % 250 == 249:
            stats_cpu, stats_gpu = cpu.episode_stats(), gpu.episode_stats()
            assert stats_cpu.keys() == stats_gpu.keys() and stats_cpu["episodes"] > 0
            for key in stats_cpu:
                assert_same(stats_cpu[key], stats_gpu[key], f"episode stat {key} at step {t}", name)


@pytest.mark.parametrize("clock", ["episode", "global"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_engine_batches_match_the_cpu_backend(case, clock):
    name, options, num_envs, steps = case
    horizon, k, batches = 37, 5, max(2, steps // 400)
    engines = []
    for device in ("cpu", "cuda"):
        env = hmasd.envs.make(name, num_envs=num_envs, seed=5, device=device, **options)
        env.reset()
        engines.append(RolloutEngine(env, horizon, k, 3, 4, clock=clock))
    cpu, gpu = engines
    n = cpu.env.num_agents
    rng = np.random.default_rng(1)
    for batch in range(batches):
        while not cpu.ready:
            ids = cpu.decision_env_ids()
            np.testing.assert_array_equal(host(gpu.decision_env_ids()), ids)
            if len(ids):
                d = len(ids)
                team = rng.integers(0, 3, d).astype(np.int32)
                indiv = rng.integers(0, 4, (d, n)).astype(np.int32)
                logp = rng.normal(size=(d, n + 1)).astype(np.float32)
                values = rng.normal(size=(d, n + 1)).astype(np.float32)
                cpu.decide(ids, team, indiv, logp, values)
                if batch % 2 == 0:  # env_ids form
                    gpu.decide(*(torch.from_numpy(x).cuda() for x in (ids, team, indiv, logp, values)))
                else:  # the no-sync form: rows for every env
                    rows = [np.zeros((num_envs,) + x.shape[1:], x.dtype) for x in (team, indiv, logp, values)]
                    for row, x in zip(rows, (team, indiv, logp, values)):
                        row[ids] = x
                    gpu.decide_all(*(torch.from_numpy(x).cuda() for x in rows), check=False)
            actions = actions_for(cpu.env, rng, cpu.action_mask)
            lp = rng.normal(size=(num_envs, n)).astype(np.float32)
            v = rng.normal(size=(num_envs, n)).astype(np.float32)
            cpu.step(actions, lp, v)
            gpu.step(*(torch.from_numpy(x).cuda() for x in (actions, lp, v)), check=batch % 2 == 0)
        gpu.check_errors()
        assert gpu.ready
        for key, value in cpu.low_level().items():
            assert_same(value, gpu.low_level()[key], f"low/{key} in batch {batch}", name)
        high_cpu, high_gpu = cpu.high_level(), gpu.high_level()
        assert high_cpu.keys() == high_gpu.keys()
        for key in high_cpu:
            assert_same(high_cpu[key], high_gpu[key], f"high/{key} in batch {batch}", name)
        for key in ("bootstrap_obs", "bootstrap_state"):
            assert_same(cpu.windows[key], gpu.windows[key], f"{key} in batch {batch}", name)
        assert cpu.counters() == gpu.counters()
        cpu.resume(), gpu.resume()


def test_buffers_are_torch_tensors_on_the_device_without_a_copy():
    env = hmasd.envs.make("stag_hunt", num_envs=64, device="cuda")
    env.reset()
    assert env.obs.is_cuda and env.obs.device.index == 0
    again = torch.from_dlpack(env._buffers["obs"])
    assert again.data_ptr() == env.obs.data_ptr() == env._buffers["obs"].data_ptr
    actions = torch.zeros((64, env.num_agents), dtype=torch.int64, device="cuda")
    before = env.obs.data_ptr()
    env.step(actions)
    assert env.obs.data_ptr() == before, "a step must write the same buffer in place"
    engine = RolloutEngine(env, 8, 2, 2, 2)
    assert engine.low_level()["obs"].is_cuda


def test_bad_inputs_on_device_tensors_raise_before_anything_changes():
    env = hmasd.envs.make("stag_hunt", num_envs=16, device="cuda")
    env.reset()
    twin = hmasd.envs.make("stag_hunt", num_envs=16, device="cuda")
    twin.reset()
    n = env.num_agents
    good = torch.zeros((16, n), dtype=torch.int32, device="cuda")
    bad_value = good.clone()
    bad_value[3, 1] = 7
    cases = [
        (good.cpu(), ValueError, "is on the host .* the env is on cuda:0"),
        (good.float(), TypeError, "must be an int32 or int64 tensor"),
        (good[:8], ValueError, r"must have shape \(num_envs, num_agents\)"),
        (good.t().contiguous().t(), ValueError, "C-contiguous"),
        (bad_value, ValueError, r"actions\[3, 1\] = 7 is out of range \[0, 5\)"),
        (np.zeros((16, n), np.int32), ValueError, "is on the host"),
        ([[0] * n] * 16, TypeError, "must be a tensor on the env's device"),
    ]
    for actions, error, message in cases:
        with pytest.raises(error, match=message):
            env.step(actions)
        assert torch.equal(env.obs, twin.obs) and torch.equal(env.state, twin.state)
    # the unchecked form skips the bad step on the device and raises at the next check
    env.step(bad_value, check=False)
    assert torch.equal(env.state, twin.state)
    with pytest.raises(ValueError, match="out of range"):
        env.check_errors()
    env.step(good), twin.step(good)
    assert torch.equal(env.obs, twin.obs)


def test_bad_decisions_on_device_tensors_raise():
    env = hmasd.envs.make("alice_and_bob", num_envs=8, device="cuda")
    env.reset()
    engine = RolloutEngine(env, 6, 3, 2, 2)
    ids = engine.decision_env_ids()
    n = env.num_agents
    ok = dict(team=torch.zeros(8, dtype=torch.int32, device="cuda"),
              indiv=torch.zeros((8, n), dtype=torch.int32, device="cuda"),
              logp=torch.zeros((8, n + 1), device="cuda"), values=torch.zeros((8, n + 1), device="cuda"))
    with pytest.raises(ValueError, match="team_skill\\[2\\] is out of range"):
        team = ok["team"].clone()
        team[2] = 5
        engine.decide(ids, team, ok["indiv"], ok["logp"], ok["values"])
    with pytest.raises(ValueError, match="needs a decision but env_ids does not list it"):
        engine.decide(ids[:4], ok["team"][:4], ok["indiv"][:4], ok["logp"][:4], ok["values"][:4])
    with pytest.raises(ValueError, match="listed twice"):
        twice = ids.clone()
        twice[1] = twice[0]
        engine.decide(twice, ok["team"], ok["indiv"], ok["logp"], ok["values"])
    with pytest.raises(ValueError, match="needs a skill decision"):
        engine.step(torch.zeros((8, n), dtype=torch.int32, device="cuda"), torch.zeros((8, n), device="cuda"),
                    torch.zeros((8, n), device="cuda"))
    engine.decide(ids, ok["team"], ok["indiv"], ok["logp"], ok["values"])
    assert not engine.needs_decision.any()


def test_a_bad_device_index_is_refused():
    with pytest.raises(ValueError, match="CUDA device"):
        hmasd.envs.make("stag_hunt", device=f"cuda:{_INFO['cuda_devices']}")


@pytest.mark.parametrize("name", ["stag_hunt", "alice_and_bob"])
def test_next_step_autoreset_and_chosen_resets_match_the_cpu_backend(name):
    """The rules the adapters for other trainers use: next-step autoreset (Gymnasium) and reset_envs (TorchRL,
    Gymnasium's reset_mask), given a device bool tensor or host indices."""
    options = {"max_steps": 9}
    for mode in ("next_step", "disabled"):
        cpu = hmasd.envs.make(name, num_envs=65, seed=3, autoreset=mode, **options)
        gpu = hmasd.envs.make(name, num_envs=65, seed=3, autoreset=mode, device="cuda", **options)
        cpu.reset(), gpu.reset()
        rng = np.random.default_rng(1)
        for t in range(60):
            ended = cpu.terminated | cpu.truncated
            if mode == "disabled" and (ended.any() or t % 7 == 6):
                chosen = ended | (rng.random(65) < 0.2)
                cpu.reset_envs(chosen)
                gpu.reset_envs(torch.from_numpy(chosen).cuda() if t % 2 else np.flatnonzero(chosen))
            else:
                actions = actions_for(cpu, rng, cpu.action_mask)
                cpu.step(actions)
                gpu.step(torch.from_numpy(actions).cuda())
            for key in ("obs", "state", "rewards", "terminated", "truncated", "action_mask"):
                assert_same(getattr(cpu, key), getattr(gpu, key), f"{mode}: {key} at step {t}", name)
