"""benchmarks/learning/uav_vs_baselines.py on a tiny uav_coverage run: every policy row is the evaluation it names
(argmax or sampled skills, mean or sampled actions), and the baselines play the same episodes."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")
pytest.importorskip("matplotlib", reason="the figure needs the train extra (matplotlib); CI installs it")

from hmasd.envs.uav_baselines import evaluate_baseline  # noqa: E402
from hmasd.train import cli  # noqa: E402
from hmasd.train.evaluation import evaluate  # noqa: E402
from learning_scripts import load_script  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)

TINY = ["--preset", "uav_coverage", "--num-envs", "2", "--total-steps", "120", "--set", "horizon=20",
        "--set", "env_options.max_steps=20", "--set", "env_options.num_users=12", "--set", "env_options.num_uavs=3",
        "--eval-interval", "0", "--no-progress", "--seed", "5"]


def test_policy_rows_are_the_evaluations_they_name(tmp_path):
    script = load_script("uav_vs_baselines")
    assert cli.main([*TINY, "--run-dir", str(tmp_path / "runs"), "--name", "tiny"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    out = tmp_path / "eval"
    assert script.main(["--run-dir", str(run), "--episodes", "3", "--seed", "7", "--out", str(out)]) == 0
    record = json.loads((out / "uav_vs_baselines.json").read_text())
    results = record["results"]
    trainer, _ = script.load_trainer(run, "final")
    for name, (skills, actions) in script.POLICY_ROWS.items():
        again = script.evaluate_policy(trainer, 3, 7, skills, actions)  # seeded: the same draws
        assert results[name]["mean_return"] == pytest.approx(again["mean_return"], rel=1e-6), name
    expected = evaluate(trainer, 3, seed=7, deterministic=True)
    assert results["trained (det.)"]["mean_return"] == pytest.approx(expected["mean_return"], rel=1e-6)
    # under the same argmax skills, sampled actions move the UAVs elsewhere than the mean actions
    sampled = results["trained (det. skills, sampled actions)"]["mean_return"]
    assert sampled != results["trained (det.)"]["mean_return"]
    kmeans = evaluate_baseline("kmeans", episodes=3, num_envs=3, seed=7, height=50.0, **record["env_options"])
    assert results["k-means (50 m)"]["return"] == pytest.approx(kmeans["return"], rel=1e-6)
    assert (out / "uav_coverage_vs_baselines.png").stat().st_size > 10_000
