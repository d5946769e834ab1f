"""The Python side of the CUDA backend (DeviceVecEnv, DeviceRolloutEngine), run on this machine over a stand-in
for the native device objects that keeps its buffers in host memory and exports them through hmasd's DLPack path.
The stand-in answers each call with the CPU engine, so the facade's own logic (buffer binding, decision rows,
the ring read in (env, start) order with torch, next observations, counters) is held to the CPU engine here."""

from __future__ import annotations

import numpy as np
import pytest

import hmasd.envs
from hmasd.rollout import DeviceRolloutEngine, RolloutEngine

torch = pytest.importorskip("torch")

from device_standin import facade  # noqa: E402  (the stand-ins export tensors: torch first)


@pytest.mark.parametrize("clock", ["episode", "global"])
def test_the_device_engine_facade_reads_batches_as_the_cpu_engine(clock):
    env = facade("stag_hunt", 24, max_steps=9)
    twin = hmasd.envs.make("stag_hunt", num_envs=24, seed=3, max_steps=9)
    env.reset(), twin.reset()
    assert isinstance(env.obs, torch.Tensor) and env.device == "cuda:0"
    assert env.obs.data_ptr() == env._native.cpu.obs.ctypes.data, "the facade must alias the buffers"
    engine = RolloutEngine(env, 20, 4, 3, 4, clock=clock)
    reference = RolloutEngine(twin, 20, 4, 3, 4, clock=clock)
    assert isinstance(engine, DeviceRolloutEngine) and not isinstance(reference, DeviceRolloutEngine)
    rng = np.random.default_rng(2)
    n = env.num_agents
    for batch in range(3):
        while not reference.ready:
            ids = reference.decision_env_ids()
            assert torch.equal(engine.decision_env_ids(), torch.from_numpy(ids))
            if len(ids):
                d = len(ids)
                rows = (rng.integers(0, 3, d).astype(np.int32), rng.integers(0, 4, (d, n)).astype(np.int32),
                        rng.normal(size=(d, n + 1)).astype(np.float32), rng.normal(size=(d, n + 1)).astype(np.float32))
                reference.decide(ids, *rows)
                if batch == 1:
                    full = [np.zeros((24,) + x.shape[1:], x.dtype) for x in rows]
                    for f, x in zip(full, rows):
                        f[ids] = x
                    engine.decide_all(*(torch.from_numpy(f) for f in full), check=False)
                else:
                    engine.decide(*(torch.from_numpy(x) for x in (ids, *rows)))
            actions = hmasd.envs.random_actions(reference.env, rng, mask=reference.action_mask)
            lp, v = rng.normal(size=(2, 24, n)).astype(np.float32)
            reference.step(actions, lp, v)
            engine.step(*(torch.from_numpy(x) for x in (actions, lp, v)))
            assert torch.equal(engine.obs, torch.from_numpy(reference.obs))
        high, expected = engine.high_level(), reference.high_level()
        assert high.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(high[key].numpy(), expected[key], err_msg=key)
        for got, want in zip(engine.next_observations(), reference.next_observations()):
            np.testing.assert_array_equal(got.numpy(), want)
        assert engine.counters() == reference.counters()
        engine.resume(), reference.resume()
    assert env.episode_stats().keys() == twin.episode_stats().keys()


def test_the_device_env_facade_refuses_what_it_cannot_do():
    env = facade("alice_and_bob", 4)
    with pytest.raises(TypeError, match="cannot be pickled"):
        env.__getstate__()
    with pytest.raises(NotImplementedError, match="CPU envs"):
        env.details()
    assert env.observation_space.shape == (env.obs_dim,)
    engine = RolloutEngine(env, 4, 2, 2, 2)
    with pytest.raises(NotImplementedError, match="evaluate on a CPU env"):
        engine.disable_collection()
