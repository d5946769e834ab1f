"""benchmarks/learning/uav_episode_profile.py: its per-step profile is the same episodes the evaluations score
(its means equal theirs), and the script writes its figure and numbers for a run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")
pytest.importorskip("matplotlib", reason="the figure needs the train extra (matplotlib); CI installs it")

import hmasd.envs  # noqa: E402
from hmasd.envs.uav_baselines import evaluate_baseline, kmeans_policy  # noqa: E402
from hmasd.train import checkpoint, preset  # noqa: E402
from hmasd.train.evaluation import evaluate  # noqa: E402
from hmasd.train.loop import build  # noqa: E402
from learning_scripts import load_script  # noqa: E402

OPTIONS = {"max_steps": 30, "user_grid": 4}


def scripts():
    load_script("uav_vs_baselines")  # the profile script imports it by name
    return load_script("uav_episode_profile")


def test_kmeans_profile_averages_to_the_baseline_evaluation():
    profiler = scripts()
    probe = hmasd.envs.make("uav_coverage", num_envs=6, seed=11, **OPTIONS)
    act = kmeans_policy(probe, seed=11, height=50.0)
    series = profiler.profile(act, lambda ended: None, OPTIONS, episodes=6, seed=11)
    expected = evaluate_baseline("kmeans", episodes=6, num_envs=6, seed=11, height=50.0, **OPTIONS)
    assert series["coverage_ratio"].mean() == pytest.approx(expected["coverage_ratio"], rel=1e-5)
    assert series["reward_quality"].mean() == pytest.approx(expected["reward_quality"], rel=1e-5)
    assert series["reward"].sum() == pytest.approx(expected["return"], rel=1e-5)
    assert series["metres_per_step"][0] > 0  # the UAVs set off towards their centres
    assert series["metres_per_step"][-5:].max() < 1e-3  # ... and hover there


def test_policy_profile_averages_to_evaluate_and_the_script_writes_its_outputs(tmp_path):
    profiler = scripts()
    trainer = build(preset("uav_coverage", num_envs=2, eval_interval=0, seed=4, env_options=OPTIONS))
    run = tmp_path / "run"
    checkpoint.save(trainer, run / "checkpoints" / "final.pt")
    loaded, _ = profiler.load_trainer(run, "final")
    act, stepped = profiler.policy_actor(loaded, episodes=5, seed=9)
    options = dict(loaded.config.env_options)
    series = profiler.profile(act, stepped, options, episodes=5, seed=9)
    expected = evaluate(trainer, 5, seed=9, deterministic=True)
    assert series["coverage_ratio"].mean() == pytest.approx(expected["coverage_ratio"], rel=1e-5)
    assert series["reward"].sum() == pytest.approx(expected["mean_return"], rel=1e-5)

    out = tmp_path / "profile"
    assert profiler.main(["--run-dir", str(run), "--label", "tiny", "--episodes", "3", "--seed", "9",
                          "--sampled-actions", "--out", str(out)]) == 0
    record = json.loads((out / "episode_profile.json").read_text())
    assert set(record["per_step"]) == {"tiny", "tiny, sampled actions", "k-means (50 m)"}
    sampled = evaluate(trainer, 3, seed=9, deterministic=True, low_deterministic=False)
    mean = evaluate(trainer, 3, seed=9, deterministic=True)
    assert sum(record["per_step"]["tiny"]["reward"]) == pytest.approx(mean["mean_return"], rel=1e-4)
    assert sum(record["per_step"]["tiny, sampled actions"]["reward"]) == pytest.approx(sampled["mean_return"],
                                                                                      rel=1e-4)
    assert sampled["mean_return"] != pytest.approx(mean["mean_return"], rel=1e-4)
    assert len(record["per_step"]["tiny"]["coverage_ratio"]) == OPTIONS["max_steps"]
    assert [row["steps"] for row in record["phases"]["tiny"]] == ["0-25", "25-30"]
    assert np.isfinite(record["per_step"]["tiny"]["metres_per_step"]).all()
    assert (out / "episode_profile.png").stat().st_size > 10_000
