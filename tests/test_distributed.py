"""Distributed training under torchrun, 2 CPU processes (gloo): the same run as one process with all the envs, strictly
on-policy across ranks, exact resume, a refused resume with another world size, a killed rank ending the job, and
hmasd-train itself under torchrun. Each test launches torchrun on tests/distributed_worker.py (or the CLI)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.distributed  # noqa: E402

from hmasd.train import checkpoint, loop  # noqa: E402
from hmasd.train.config import TrainConfig  # noqa: E402

pytestmark = [pytest.mark.trainer, pytest.mark.skipif(not torch.distributed.is_available(),
                                                      reason="this torch build has no torch.distributed")]
WORKER = Path(__file__).with_name("distributed_worker.py")
LAUNCH_TIMEOUT = 240


def launch(args: list[str], nproc: int = 2, module: bool = False, timeout: float = LAUNCH_TIMEOUT,
           check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """torchrun --standalone --nproc_per_node=nproc on the worker script (or ``-m`` a module) with ``args``."""
    target = ["-m", *args] if module else [str(WORKER), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           *target], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if check and done.returncode != 0:
        raise AssertionError(f"torchrun exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


def single(out: Path, *args: str) -> dict:
    """The worker in one process (no torchrun): every env in one rank."""
    subprocess.run([sys.executable, str(WORKER), str(out), *args], check=True, timeout=LAUNCH_TIMEOUT,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return torch.load(out / "rank0.pt", weights_only=False)


def ranks(out: Path, world: int = 2) -> list[dict]:
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def two_vs_one(tmp_path_factory) -> tuple[dict, list[dict], Path]:
    """3 iterations of the small config: one process with 4 envs, and 2 ranks with 2 envs each, rank 1 slowed by
    1 s after each of its updates (which must change nothing but the time), saving a checkpoint after update 2."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    launch([str(two), "3", "--slow-rank", "1", "1.0", "--save-at", "2"])
    return single(one, "3"), ranks(two), two


def test_the_ranks_first_batch_is_the_single_process_first_batch_env_by_env(two_vs_one):
    whole, (rank0, rank1), _ = two_vs_one
    assert (rank0["first_env"], rank1["first_env"]) == (0, 2)
    for key, value in whole["first_batch"].items():
        halves = torch.cat([rank0["first_batch"][key], rank1["first_batch"][key]], dim=1)  # [T, E, ...]
        assert torch.equal(halves, value), key


def test_after_three_updates_the_parameters_agree_to_float_tolerance(two_vs_one):
    whole, (rank0, rank1), _ = two_vs_one
    for name, value in whole["params"].items():
        # the ranks hold the same bits: both step on the same all-reduced gradients
        assert torch.equal(rank0["params"][name], rank1["params"][name]), name
        # not the single process's bits: a sum over 2 ranks' partial sums rounds differently from one sum over
        # all samples (and Adam's first steps rescale such differences to the learning rate's order), so the
        # tolerance is a few float32 roundings of a parameter moved by ~3 steps of lr 5e-4
        torch.testing.assert_close(rank0["params"][name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_the_counters_and_metrics_are_the_global_batchs(two_vs_one):
    whole, (rank0, rank1), _ = two_vs_one
    assert rank0["iteration"] == rank1["iteration"] == whole["iteration"] == 3
    assert rank0["env_steps"] == whole["env_steps"]
    assert rank0["samples_pushed"] == whole["samples_pushed"]
    for key in ("Buffer/SamplesCollected", "Buffer/high_level_samples", "Buffer/high_level_samples_total",
                "Training/Episodes_Completed", "Sync/PolicyVersion"):
        assert [m.get(key) for m in rank0["metrics"]] == [m.get(key) for m in whole["metrics"]], key
    for whole_metrics, metrics0, metrics1 in zip(whole["metrics"], rank0["metrics"], rank1["metrics"]):
        for key in ("Rewards/Env", "Rewards/LowLevel", "Losses/Discoverer/policy", "Losses/Discoverer/value",
                    "Losses/Coordinator/value", "Losses/Discriminator/team_loss",
                    "Losses/Discriminator/indiv_accuracy", "Rewards/HighLevel/K_Step_Accumulated_Mean",
                    *(("Training/Episode_Reward",) if "Training/Episode_Reward" in whole_metrics else ())):
            # the same envs under policies equal to float tolerance: the global statistics agree to rounding
            assert metrics0[key] == pytest.approx(whole_metrics[key], rel=1e-3, abs=1e-5), key
            assert metrics0[key] == metrics1[key], key  # and every rank reports the same global figure
    assert "Training/Episode_Reward" in whole["metrics"][-1]  # 42 steps of 35-step episodes: some ended


def test_a_kl_early_stop_stops_every_rank_at_the_same_epoch(tmp_path):
    # the KL is taken over every rank's decisions, so the ranks agree; a rank stopping alone would leave the
    # other waiting in its next collective until the timeout
    launch([str(tmp_path), "2", "--config", json.dumps({"high_target_kl": 1e-6, "high_epochs": 15})])
    rank0, rank1 = ranks(tmp_path)
    epochs = [[m["Losses/Coordinator/epochs"] for m in rank["metrics"]] for rank in (rank0, rank1)]
    assert epochs[0] == epochs[1] and min(epochs[0]) < 15, epochs
    for name, value in rank0["params"].items():
        assert torch.equal(rank1["params"][name], value), name


def test_every_sample_of_every_rank_carries_the_current_policy_version(two_vs_one):
    _, (rank0, rank1), _ = two_vs_one
    for r in (rank0, rank1):
        assert [(v, low, high) for v, low, high in r["versions"]] == [(v, [v], [v]) for v in range(3)]


def test_a_slowed_rank_holds_the_others_at_the_barrier(two_vs_one):
    _, (rank0, rank1), _ = two_vs_one
    done = {it: t for name, it, t in rank1["events"] if name == "updates_done"}  # rank 1, after its sleep
    starts = {it: t for name, it, t in rank0["events"] if name == "collect_start"}
    for iteration in (1, 2):  # rank 0 starts batch v + 1 only once rank 1 has finished update v
        assert starts[iteration] >= done[iteration - 1], (starts, done)
    assert rank0["metrics"][0]["Time/Collectives/Sync"] > 0.9  # and the wait shows where it went


def test_a_two_rank_resume_is_exact_and_another_world_size_is_refused(two_vs_one, tmp_path):
    _, straight, two = two_vs_one
    saved = checkpoint.load(two / "checkpoint.pt")
    assert saved["world_size"] == 2 and len(saved["ranks"]) == 2
    assert [r["hidden"]["actor"].shape[0] for r in saved["ranks"]] == [2, 2]  # each rank's own envs
    launch([str(tmp_path), "1", "--resume", str(two / "checkpoint.pt")])
    for want, got in zip(straight, ranks(tmp_path)):  # update 3 from the checkpoint == update 3 of the straight run
        assert got["iteration"] == 3 and got["counters"] == want["counters"]
        for name, value in want["params"].items():
            assert torch.equal(got["params"][name], value), name
    trainer = loop.build(TrainConfig(**_small()))
    with pytest.raises(checkpoint.CheckpointError, match=r"2 rank\(s\), this run has 1.*nproc_per_node=2"):
        checkpoint.restore(trainer, saved, "checkpoint.pt")


def _small() -> dict:
    sys.path.insert(0, str(WORKER.parent))
    try:
        from distributed_worker import SMALL
    finally:
        sys.path.pop(0)
    return SMALL


def test_a_killed_rank_ends_the_whole_job_with_a_clear_message(tmp_path):
    start = time.monotonic()
    done = launch([str(tmp_path), "5", "--kill-rank", "1", "--kill-at", "2"], check=False, timeout=120)
    assert done.returncode != 0
    assert time.monotonic() - start < 90  # well within the worker's 60 s collective timeout plus start-up
    report = done.stdout + done.stderr
    # torchrun's report names the root cause: rank 1, killed (the other rank was ended with it)
    root_cause = r"Root Cause.*?rank\s*:\s*1 \(local_rank: 1\).*?Signal 9 \(SIGKILL\)"
    assert re.search(root_cause, report, re.S), report[-3000:]
    assert not (tmp_path / "rank0.pt").exists()  # rank 0 did not finish as if nothing happened


def test_hmasd_train_under_torchrun_writes_one_run_folder_from_rank_0(tmp_path):
    sets = [f"--set={key}={value}" for key, value in _small().items() if key not in ("env", "seed", "num_envs")]
    launch(["hmasd.train.cli", "--env", "stag_hunt", "--num-envs", "4", "--total-steps", "112", "--no-progress",
            "--run-dir", str(tmp_path / "runs"), "--name", "dist", "--checkpoint-interval", "1", "--eval-episodes", "2",
            *sets], module=True, cwd=tmp_path)  # -m puts the working directory first on sys.path: not the source tree
    (run_dir,) = (tmp_path / "runs").iterdir()
    final = checkpoint.load(run_dir / "checkpoints" / "final.pt")
    assert final["world_size"] == 2 and final["counters"]["env_steps"] == 112
    assert json.loads((run_dir / "config.json").read_text())["num_envs"] == 4
    assert (run_dir / "train.log").read_text().count("done:") == 1
    summary = json.loads((run_dir / "paper_data" / "training_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["updates"] == 2
