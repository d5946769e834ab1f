"""RunTracker on a tiny real stag-hunt run: paper_data files, episode rows, skill usage and TensorBoard tags."""

from __future__ import annotations

import copy
import csv
import json
import pathlib
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("tensorboard")
pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from hmasd.train.config import preset  # noqa: E402
from hmasd.train.evaluation import evaluate  # noqa: E402
from hmasd.train.loop import build, iterate  # noqa: E402
from hmasd.train.tracking import EPISODE_COLUMNS, REWARD_COLUMNS, SYNC_COLUMNS, RunTracker  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)

ITERATIONS = 3
EXTRA = {"Training/Success": 0.5, "Performance/Collisions": 2.0, "Custom/Unprefixed": 1.0}  # on iteration 1 only


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """3 iterations (episodes of 10 steps, batches of 35: episodes end inside and across batches), an eval."""
    run_dir = tmp_path_factory.mktemp("run")
    config = preset("stag_hunt", num_envs=4, total_steps=ITERATIONS * 35 * 4, eval_interval=0,
                    env_options={"max_steps": 10})
    trainer = build(config)
    tracker = RunTracker(run_dir, trainer.config, config.num_envs, trainer.env.num_agents)
    batches, metrics_seen, mid_step = [], [], None
    for i in range(ITERATIONS):
        metrics = iterate(trainer)
        batches.append(copy.deepcopy(trainer.last_batch))
        metrics_seen.append(dict(metrics))
        tracker.log_iteration(trainer, {**metrics, **EXTRA} if i == 0 else metrics)
        if i == 1:
            mid_step = trainer.env_steps
            tracker.export(mid_step)
    eval_result = evaluate(trainer, 8)
    tracker.log_eval(trainer.env_steps, eval_result)
    summary_path = tracker.close({"run": "test"})
    return SimpleNamespace(run_dir=run_dir, paper=run_dir / "paper_data", trainer=trainer, batches=batches,
                           metrics=metrics_seen, mid_step=mid_step, step=trainer.env_steps, eval=eval_result,
                           summary_path=summary_path)


def read_csv(path: pathlib.Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def expected_episodes(batches) -> list[tuple[int, float, int, int]]:
    """(env, env-reward sum, length, first step) of every finished episode, in (time, env) order, from the raw
    batches concatenated in time."""
    rewards = np.concatenate([b.env_reward for b in batches]).astype(np.float64)
    ended = np.concatenate([b.ended for b in batches])
    last_end = np.full(rewards.shape[1], -1)
    out = []
    for t, e in np.argwhere(ended):
        out.append((int(e), float(rewards[last_end[e] + 1:t + 1, e].sum()), int(t - last_end[e]),
                    int(last_end[e] + 1)))
        last_end[e] = t
    return out


def test_paper_data_files(run):
    for step in (run.mid_step, run.step):
        for name, columns in ((f"episode_rewards_step_{step}.csv", EPISODE_COLUMNS),
                              (f"sync_metrics_step_{step}.csv", SYNC_COLUMNS),
                              (f"reward_components_step_{step}.csv", REWARD_COLUMNS)):
            header, _ = read_csv(run.paper / name)
            assert header == list(columns), name
        assert (run.paper / f"skill_usage_step_{step}.json").is_file()
        image = imread(run.paper / f"training_progress_step_{step}.png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert run.summary_path == run.paper / "training_summary.json"
    assert EPISODE_COLUMNS == ("episode", "env_id", "total_reward", "episode_length", "timestamp", "env_component",
                               "team_disc_component", "ind_disc_component")
    assert SYNC_COLUMNS == ("policy_version", "samples_collected", "collection_time", "update_time",
                            "sync_efficiency")


def test_episode_rows(run):
    expected = expected_episodes(run.batches)
    assert len(expected) == sum(int(b.ended.sum()) for b in run.batches)
    horizon = run.batches[0].ended.shape[0]
    assert any(start // horizon != (start + length - 1) // horizon for _, _, length, start in expected)
    _, rows = read_csv(run.paper / f"episode_rewards_step_{run.step}.csv")
    assert len(rows) == len(expected)
    for i, (row, (env, total, length, _)) in enumerate(zip(rows, expected)):
        assert int(row["episode"]) == i and int(row["env_id"]) == env and int(row["episode_length"]) == length
        assert float(row["total_reward"]) == pytest.approx(total, abs=1e-5)
        assert float(row["env_component"]) == pytest.approx(run.trainer.config.lambda_env * total, abs=1e-5)
    _, mid_rows = read_csv(run.paper / f"episode_rewards_step_{run.mid_step}.csv")
    assert len(mid_rows) == len(expected_episodes(run.batches[:2]))
    # the env's own episode log agrees: per iteration, the mean over the episodes it finished
    done = 0
    for batch, metrics in zip(run.batches, run.metrics):
        count = int(batch.ended.sum())
        mean = np.mean([float(r["total_reward"]) for r in rows[done:done + count]])
        assert metrics["Training/Episodes_Completed"] == count
        assert metrics["Training/Episode_Reward"] == pytest.approx(mean, abs=1e-4)
        done += count


def test_skill_usage(run):
    usage = json.loads((run.paper / f"skill_usage_step_{run.step}.json").read_text())
    assert {"team_skill_counts", "individual_skill_counts", "skill_switches", "total_steps", "sync_updates",
            "skill_diversity"} <= usage.keys()
    team = np.concatenate([b.team_skill for b in run.batches])
    c = run.trainer.config
    assert usage["team_skill_counts"] == {str(k): int(v) for k, v in
                                          enumerate(np.bincount(team, minlength=c.num_team_skills))}
    assert sum(usage["team_skill_counts"].values()) == len(team)
    assert len(usage["individual_skill_counts"]) == run.trainer.env.num_agents
    for counts in usage["individual_skill_counts"].values():
        assert sum(counts.values()) == len(team)
    per_env: dict[int, list[int]] = {}
    for b in run.batches:
        for env, skill in zip(b.high_env, b.team_skill):
            per_env.setdefault(int(env), []).append(int(skill))
    switches = sum(int(np.count_nonzero(np.diff(seq))) for seq in per_env.values())
    assert usage["skill_switches"] == switches
    assert usage["total_steps"] == run.step and usage["sync_updates"] == ITERATIONS
    assert 0.0 <= usage["skill_diversity"] <= 1.0
    summary = json.loads(run.summary_path.read_text())
    assert summary["run"] == "test" and summary["total_episodes"] == len(expected_episodes(run.batches))
    assert summary["best_eval"]["mean_reward"] == pytest.approx(run.eval["mean_reward"])
    assert summary["skill_usage"]["skill_switches"] == switches and summary["wall_time_seconds"] > 0


def test_tensorboard_scalars(run):
    events = EventAccumulator(str(run.run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    required = {f"Training/{t}" for t in ("Episode_Reward", "Episode_Length", "Avg_Reward_10ep", "Episodes_Completed",
                                          "Skill_Diversity_Recent", "Skill_Switches_Total")}
    required |= {f"Sync/{t}" for t in ("PolicyVersion", "Total_Updates", "CollectionTime", "UpdateTime",
                                       "Efficiency")}
    required |= {f"Buffer/{t}" for t in ("SamplesCollected", "high_level_samples_total", "low_level_samples",
                                         "ForceClosedWindows")}
    required |= {f"Losses/{net}/{t}" for net in ("Coordinator", "Discoverer") for t in
                 ("total", "policy", "value", "entropy")}
    required |= {"Losses/Discriminator/team_loss", "Losses/Discriminator/indiv_loss"}
    required |= {f"Rewards/{t}" for t in ("HighLevel/K_Step_Accumulated_Mean", "Intrinsic/Team",
                                          "Intrinsic/Individual", "Env")}
    required |= {f"Agents/{i}/Return" for i in range(run.trainer.env.num_agents)}
    required |= {"Eval/MeanReward", "Eval/StdReward", "Performance/Episode_Success_Rate", "Performance/Collisions"}
    assert required <= tags, sorted(required - tags)
    assert "Eval/SuccessRate" not in tags  # stag hunt has no success
    assert not any(t.startswith(("Custom/", "Detailed/")) for t in tags)  # detailed=False
    values = lambda tag: [(e.step, e.value) for e in events.Scalars(tag)]  # noqa: E731
    assert values("Sync/Total_Updates")[-1] == (run.step, ITERATIONS)
    assert values("Buffer/low_level_samples")[-1][1] == 35 * 4 * run.trainer.env.num_agents
    _, rows = read_csv(run.paper / f"episode_rewards_step_{run.step}.csv")
    last10 = np.mean([float(r["total_reward"]) for r in rows[-10:]])
    assert values("Training/Avg_Reward_10ep")[-1][1] == pytest.approx(last10, abs=1e-5)


def test_detailed_and_missing_batch(tmp_path):
    """detailed=True writes unprefixed metrics under Detailed/; a trainer without a batch record is tolerated."""
    config = preset("stag_hunt", num_envs=2)
    tracker = RunTracker(tmp_path, config, num_envs=2, num_agents=4, detailed=True)
    trainer = SimpleNamespace(config=config, env_steps=70, iteration=1, last_batch=None)
    tracker.log_iteration(trainer, {"Custom/Thing": 3.0, "Sync/PolicyVersion": 1.0, "note": "text"})
    tracker.log_eval(70, {"mean_reward": 1.0, "std_reward": 0.0, "success_rate": 0.25})
    tracker.close({})
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"Detailed/Custom/Thing", "Sync/PolicyVersion", "Sync/Total_Updates", "Eval/SuccessRate"} <= tags
    assert not any("note" in t for t in tags)
    _, rows = read_csv(tmp_path / "paper_data" / "episode_rewards_step_70.csv")
    assert rows == []
