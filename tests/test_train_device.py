"""The trainer's device path (env, engine and learner on one CUDA device, no host copy per step).

On this machine it runs over the host-backed stand-ins of tests/device_standin.py: the loop sees a DeviceVecEnv and
a DeviceRolloutEngine of torch tensors, and the strict stand-in refuses NumPy and the syncing calls. The per-step
loop is also run with every host conversion of torch forbidden. The real device is exercised by the gpu-marked
tests at the end (skipped, with the reason, where there is none).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import gpu_marks  # noqa: E402
from device_standin import facade  # noqa: E402
from hmasd.rollout import DeviceRolloutEngine  # noqa: E402
from hmasd.train import evaluation, loop  # noqa: E402
from hmasd.train.config import TrainConfig  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)

# what every batch of the device path waits for (docs/training.md): check_errors 1, high_level 1, the policy
# version check 1, low-level stats 1, the tracker's batch record 8, high-level stats 1, one per update's losses 3,
# counters 3, episode_stats 1; + 1 for the per-episode info log of envs with scalar episode metrics
BASE_SYNCS = 20


def expected_syncs(config: TrainConfig, env) -> int:
    """BASE_SYNCS for HMASD; MAPPO has no high level (stats, coordinator) nor discriminators, no_high no
    coordinator; + 1 where the env has scalar episode metrics."""
    missing = {"mappo": 3, "no_high": 2}.get(config.algo, 0)
    return BASE_SYNCS - missing + bool(loop.scalar_info_fields(env))

CASES = {
    "stag_hunt": dict(env="stag_hunt", env_options={"max_steps": 9}, horizon=14, skill_interval=7,
                      num_team_skills=3, num_indiv_skills=3, lambda_env=1.0, num_envs=6),
    "alice_and_bob": dict(env="alice_and_bob", env_options={"max_steps": 12}, horizon=20, skill_interval=5,
                          num_envs=4),
    "alice_and_bob_gru": dict(env="alice_and_bob", env_options={"max_steps": 12}, horizon=20, skill_interval=5,
                              num_envs=4, recurrent=True, chunk_length=10, clock="global"),
    "uav_coverage": dict(env="uav_coverage", env_options={"max_steps": 8}, horizon=10, skill_interval=5,
                         num_team_skills=2, num_indiv_skills=2, lambda_env=1.0, num_envs=3),
    "mappo": dict(env="stag_hunt", algo="mappo", horizon=14, num_envs=4),
    "no_high": dict(env="stag_hunt", algo="no_high", horizon=14, skill_interval=7, num_envs=4),
}


def small(case: str) -> TrainConfig:
    return TrainConfig(**CASES[case], total_steps=10**6, high_epochs=2, low_epochs=2, disc_epochs=2,
                       eval_interval=0)


def device_trainer(config: TrainConfig) -> loop.Trainer:
    """A trainer whose env is the strict host stand-in of a CUDA env (the learner stays on the CPU)."""
    env = facade(config.env, config.num_envs, seed=config.seed, strict=True, **config.env_options)
    trainer = loop.build(config, env=env)
    assert trainer.on_device and isinstance(trainer.engine, DeviceRolloutEngine)
    return trainer


def _forbidden(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the per-step device loop called {what}")
    return refuse


@contextlib.contextmanager
def no_host_round_trips(trainer: loop.Trainer, monkeypatch: pytest.MonkeyPatch):
    """Within: every way torch has to bring a tensor to the host (or NumPy into torch) raises, and so do the
    engine calls that sync. bool(tensor) is how torch.distributions' argument checks sync."""
    with monkeypatch.context() as patch:
        patch.setattr(torch, "from_numpy", _forbidden("torch.from_numpy"))
        for name in ("numpy", "cpu", "item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
            patch.setattr(torch.Tensor, name, _forbidden(f"Tensor.{name}"))
        for name in ("decision_env_ids", "high_level", "counters", "decide"):
            patch.setattr(trainer.engine, name, _forbidden(f"engine.{name}"))
        yield


@pytest.mark.parametrize("case", list(CASES))
def test_the_device_path_trains_end_to_end(case, monkeypatch):
    config = small(case)
    trainer = device_trainer(config)
    stand_in = trainer.engine._native
    for _ in range(2):
        with no_host_round_trips(trainer, monkeypatch), loop.distribution_checks_off():
            loop.collect(trainer)
        # one call of each per step, one deferred check per batch
        assert stand_in.calls["step"] == stand_in.calls["decide_all"] == trainer.config.horizon
        assert stand_in.calls["check_errors"] == 1
        stand_in.calls.clear()
        # the rest of the iteration on the collected batch: what iterate() does after collect()
        collect = loop.collect
        monkeypatch.setattr(loop, "collect", lambda trainer: None)
        try:
            metrics = loop.iterate(trainer)
        finally:
            monkeypatch.setattr(loop, "collect", collect)
        losses = {k: v for k, v in metrics.items() if k.startswith("Losses/")}
        assert losses and all(math.isfinite(v) for v in losses.values()), losses
        fields = loop.scalar_info_fields(trainer.env)
        # the batch's count: collect() counted its check_errors, iterate() the rest
        assert metrics[loop.SYNC_METRIC] == expected_syncs(trainer.config, trainer.env), trainer.syncs.by_call
        # after collect: only the counters reach the native engine, one call each
        assert stand_in.calls == {"transitions_emitted": 1, "transitions_in_batch": 1, "forced_closed": 1}
        stand_in.calls.clear()
    record = trainer.last_batch
    assert isinstance(record.ended, np.ndarray) and isinstance(record.high_env, np.ndarray)
    ended = {(int(t), int(e)) for t, e in zip(*np.nonzero(record.ended))}
    if fields:  # exact per-episode metrics from the per-batch read of the info log
        assert ended and set(record.episode_metrics) == ended
        assert all(set(v) == set(fields) and all(map(math.isfinite, v.values()))
                   for v in record.episode_metrics.values())
    else:
        assert record.episode_metrics == {}


def test_iterate_on_the_device_path_counts_its_syncs():
    trainer = device_trainer(small("stag_hunt"))
    for _ in range(2):
        metrics = loop.iterate(trainer)
        assert metrics[loop.SYNC_METRIC] == BASE_SYNCS
    assert trainer.syncs.by_call == {
        "check_errors": 1, "high_level": 1, "policy_version_check": 1, "low_level_stats": 1, "batch_record": 8,
        "high_level_stats": 1, "coordinator_losses": 1, "discoverer_losses": 1, "discriminator_losses": 1,
        "counters": 3, "episode_stats": 1}
    assert trainer.env_steps == 2 * 14 * 6 and trainer.engine.policy_version == 2


def test_the_device_episode_metrics_are_the_cpu_envs():
    """The per-batch read of the info log gives what the CPU path reads per step, for the same trajectories:
    drive both with the same recorded actions through the engines' own calls."""
    config = small("uav_coverage")
    cpu = loop.build(config)
    loop.collect(cpu)
    dev = device_trainer(config)
    # replay the CPU run's skills and actions on the stand-in (same env seed: same trajectories)
    low, high = cpu.engine.low_level(), cpu.engine.high_level()
    engine, n = dev.engine, dev.env.num_agents
    info_fields = loop.scalar_info_fields(dev.env)
    log = torch.zeros(config.horizon, config.num_envs, len(info_fields))
    for t in range(config.horizon):
        rows = high["start"] == t
        team = torch.zeros(config.num_envs, dtype=torch.int32)
        indiv = torch.zeros(config.num_envs, n, dtype=torch.int32)
        team[high["env"][rows]] = torch.from_numpy(high["team_skill"][rows].astype(np.int32))
        indiv[high["env"][rows]] = torch.from_numpy(high["indiv_skill"][rows].astype(np.int32))
        zeros = torch.zeros(config.num_envs, n + 1)
        engine.decide_all(team, indiv, zeros, zeros, check=False)
        engine.step(torch.from_numpy(np.ascontiguousarray(low["actions"][t])), torch.from_numpy(low["logp"][t]),
                    torch.from_numpy(low["values"][t]), check=False)
        log[t] = torch.stack([dev.env.episode_info[k] for k in info_fields], -1)
    dev.episode_info_log = log
    ended = low["terminated"] | low["truncated"]
    assert loop.episode_metrics_from_log(dev, ended) == cpu.episode_metrics and cpu.episode_metrics


def test_a_device_run_evaluates_checkpoints_and_resumes_without_env_state(tmp_path, caplog):
    from hmasd.train import checkpoint

    config = small("alice_and_bob_gru")
    trainer = device_trainer(config)
    loop.iterate(trainer)
    result = evaluation.evaluate(trainer, 2)  # on a CPU env of the same options
    assert result["episodes"] == 2 and math.isfinite(result["mean_return"])
    path = checkpoint.save(trainer, tmp_path / "device.pt")
    data = checkpoint.load(path)
    assert data["ranks"][0]["env_snapshot"] is None, "a CUDA env has no snapshot"
    resumed = device_trainer(config)
    with caplog.at_level("WARNING", logger="hmasd.train"):
        checkpoint.restore(resumed, data, path)
    assert "holds no env state" in caplog.text
    assert resumed.iteration == 1 and bool(resumed.starts.all()), "fresh envs restart the GRU states"
    metrics = loop.iterate(resumed)
    assert metrics[loop.SYNC_METRIC] == expected_syncs(config, resumed.env)


def test_the_cpu_path_is_untouched_by_the_device_code():
    trainer = loop.build(small("stag_hunt"))
    assert not trainer.on_device
    metrics = loop.iterate(trainer)
    assert loop.SYNC_METRIC not in metrics


def test_cuda_without_a_device_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    from hmasd.train.cli import main

    with pytest.raises(ValueError, match="sees no CUDA device"):
        loop.build(small("stag_hunt").replace(device="cuda"))
    with pytest.raises(SystemExit, match="hmasd-train: device='cuda'.*sees no CUDA device"):
        main(["--device", "cuda", "--run-dir", str(tmp_path), "--no-progress"])
    assert not any(tmp_path.iterdir()), "no run folder for a run that cannot start"
    with pytest.raises(SystemExit, match="device must be cpu, cuda or cuda:N"):
        main(["--device", "tpu", "--run-dir", str(tmp_path), "--no-progress"])


# ---- on a real device --------------------------------------------------------------------------------------
on_a_gpu = [
    *gpu_marks(),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device (a CPU-only torch?)"),
]


@pytest.mark.parametrize("case", ["stag_hunt", "alice_and_bob", "alice_and_bob_gru"])
@pytest.mark.parametrize("marks", [pytest.param(None, marks=on_a_gpu)])
def test_training_on_the_device_keeps_everything_there(case, marks):
    config = small(case).replace(device="cuda", total_steps=3 * CASES[case]["horizon"] * CASES[case]["num_envs"])
    trainer = loop.build(config)
    assert trainer.env.device == "cuda:0" and trainer.on_device and trainer.env.obs.is_cuda
    # the per-step loop launches work only: torch must not wait for the device in it
    torch.cuda.set_sync_debug_mode("error")
    try:
        with loop.distribution_checks_off():
            loop.collect(trainer)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    monkey = pytest.MonkeyPatch()
    monkey.setattr(loop, "collect", lambda trainer: None)
    try:
        metrics = loop.iterate(trainer)
    finally:
        monkey.undo()
    assert metrics[loop.SYNC_METRIC] == expected_syncs(trainer.config, trainer.env)
    while trainer.env_steps < config.total_steps:
        metrics = loop.iterate(trainer)
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("Losses/"))


@pytest.mark.parametrize("marks", [pytest.param(None, marks=on_a_gpu)])
def test_hmasd_train_runs_on_the_device(tmp_path, marks):
    from hmasd.train.cli import main

    assert main(["--device", "cuda", "--total-steps", "448", "--num-envs", "8", "--run-dir", str(tmp_path),
                 "--eval-interval", "0", "--eval-episodes", "2", "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    assert "host syncs per batch" in (run / "train.log").read_text()
