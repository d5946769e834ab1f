"""benchmarks/learning/uav_vs_baselines.py on a tiny uav_coverage run: every policy row is the evaluation it names
(argmax or sampled skills, mean or sampled actions), and the baselines play the same episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    # the paired rows are episode-by-episode differences from the same k-means episodes
    assert record["reference"] == "k-means (50 m)"
    det = results["trained (det.)"]
    gap = np.subtract(det["episode_returns"], kmeans["episode_returns"])
    assert record["paired"]["trained (det.)"]["return"]["mean"] == pytest.approx(gap.mean(), abs=1e-3)
    cover = np.subtract(det["episode_info"]["coverage_ratio"], kmeans["episode_info"]["coverage_ratio"])
    assert record["paired"]["trained (det.)"]["coverage_ratio"]["higher"] == pytest.approx((cover > 0).mean())


def test_paired_differences_are_per_episode_with_their_standard_error():
    script = load_script("uav_vs_baselines")
    base = {"return": 1.0, "episode_returns": [10.0, 12.0, 14.0], "episode_info": {"coverage_ratio": [.5, .5, .5]}}
    row = {"mean_reward": 1.0, "episode_returns": [11.0, 12.0, 17.0],
           "episode_info": {"coverage_ratio": [.6, .4, .5]}}
    comparison = script.paired({"trained": row, "k-means (50 m)": base}, "k-means (50 m)")
    assert list(comparison) == ["trained"]  # baselines are not compared with themselves
    ret = comparison["trained"]["return"]  # differences 1, 0, 3: mean 4/3, sample std sqrt(7/3)
    assert ret["mean"] == pytest.approx(4 / 3)
    assert ret["stderr"] == pytest.approx(np.sqrt(7 / 3) / np.sqrt(3))
    assert ret["higher"] == pytest.approx(2 / 3)  # a tie is not a win
    assert comparison["trained"]["coverage_ratio"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert comparison["trained"]["coverage_ratio"]["higher"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least 2 episodes"):
        script.paired({"t": {**row, "episode_returns": [1.0]}, "k": {**base, "episode_returns": [1.0]}}, "k")
    with pytest.raises(SystemExit):
        script.parse_args(["--run-dir", "x", "--episodes", "1"])


def test_compact_json_puts_number_lists_on_one_line_and_round_trips():
    script = load_script("uav_vs_baselines")
    record = {"a": [1.5, -2e-05, 3], "b": {"c": [0.25, 1]}, "name": "[1,  2]", "rows": [[1, 2], [3]]}
    text = script.compact_json(record)
    assert json.loads(text) == record  # the string's two spaces kept
    assert '"a": [1.5, -2e-05, 3]' in text and '"c": [0.25, 1]' in text
    assert text.count("\n") < len(json.dumps(record, indent=1).splitlines())


def fake_record(seed: int, lead: float, coverage_lead: float, episodes: int = 512) -> dict:
    summary = {"trained (det.)": {"return": 440.0 + lead, "coverage_ratio": 0.9},
               "k-means (50 m)": {"return": 440.0, "coverage_ratio": 0.88}}
    paired = {"trained (det.)": {"return": {"mean": lead, "stderr": 0.4, "higher": 0.6},
                                 "coverage_ratio": {"mean": coverage_lead, "stderr": 0.002, "higher": 0.7}}}
    return {"env_steps": 3_000_000, "episodes": episodes, "seed": 123, "reference": "k-means (50 m)",
            "summary": summary, "paired": paired}


def test_uav_table_judges_each_seed_on_both_leads_and_refuses_unpaired_files(tmp_path):
    table = load_script("uav_table")
    for seed, lead, cover in ((1, 1.5, 0.02), (2, -0.3, 0.02), (10, 0.2, -0.001)):
        (tmp_path / f"hmasd_seed_{seed}.json").write_text(json.dumps(fake_record(seed, lead, cover)))
    out = tmp_path / "summary"
    assert table.main([f"HMASD gamma=0.9={tmp_path}/hmasd_seed_*.json", "--out", str(out)]) == 0
    rows = [line for line in out.with_suffix(".md").read_text().splitlines() if line.startswith("| HMASD gamma=0.9 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "2", "10"]  # seeds in numeric order
    assert [row.rstrip(" |").rsplit("|", 1)[1].strip() for row in rows] == ["yes", "no", "no"]
    assert "+1.50 +- 0.40" in rows[0]
    assert out.with_suffix(".png").stat().st_size > 5_000
    (tmp_path / "other_seed_1.json").write_text(json.dumps(fake_record(1, 1.0, 0.01, episodes=16)))
    with pytest.raises(SystemExit, match="other episodes"):
        table.main([f"HMASD={tmp_path}/hmasd_seed_*.json", f"X={tmp_path}/other_seed_*.json", "--out", str(out)])
    with pytest.raises(SystemExit, match="LABEL=GLOB"):
        table.main([f"HMASD={tmp_path}/missing_*.json", "--out", str(out)])


@given(st.lists(st.tuples(st.floats(300, 500), st.floats(300, 500), st.floats(0, 1), st.floats(0, 1)),
                min_size=2, max_size=40))
@settings(max_examples=50, deadline=None)
def test_paired_leads_are_differences_of_means_and_change_sign_with_the_roles(episodes):
    script = load_script("uav_vs_baselines")
    a_ret, b_ret, a_cov, b_cov = (list(column) for column in zip(*episodes))
    a = {"mean_reward": 0.0, "episode_returns": a_ret, "episode_info": {"coverage_ratio": a_cov}}
    b = {"mean_reward": 0.0, "episode_returns": b_ret, "episode_info": {"coverage_ratio": b_cov}}
    forward = script.paired({"a": a, "b": b}, "b")["a"]
    backward = script.paired({"a": a, "b": b}, "a")["b"]
    for key, (x, y) in {"return": (a_ret, b_ret), "coverage_ratio": (a_cov, b_cov)}.items():
        assert forward[key]["mean"] == pytest.approx(np.mean(x) - np.mean(y), abs=1e-9)
        assert backward[key]["mean"] == pytest.approx(-forward[key]["mean"], abs=1e-9)
        assert backward[key]["stderr"] == pytest.approx(forward[key]["stderr"]) and forward[key]["stderr"] >= 0
        ties = np.mean(np.asarray(x) == np.asarray(y))
        assert forward[key]["higher"] + backward[key]["higher"] + ties == pytest.approx(1.0)
