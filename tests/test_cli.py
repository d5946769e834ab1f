"""hmasd-train end to end on a tiny config: the run folder, TensorBoard families, paper_data, checkpoints, eval."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="training needs the train extra (torch); CI installs it")
pytest.importorskip("tensorboard", reason="training needs the train extra (tensorboard); CI installs it")

from hmasd.train import cli  # noqa: E402

TINY = ["--preset", "stag_hunt", "--num-envs", "4", "--total-steps", "560", "--set", "env_options.max_steps=10",
        "--eval-interval", "2", "--eval-episodes", "4", "--export-interval", "280", "--checkpoint-interval", "2",
        "--no-progress", "--seed", "3"]
FAMILIES = ["Training/", "Sync/", "Buffer/", "Losses/Coordinator/", "Losses/Discoverer/", "Losses/Discriminator/",
            "Rewards/", "Agents/0/", "Eval/"]
CSV_COLUMNS = {
    "episode_rewards": ["episode", "env_id", "total_reward", "episode_length", "timestamp", "env_component",
                        "team_disc_component", "ind_disc_component"],
    "sync_metrics": ["policy_version", "samples_collected", "collection_time", "update_time", "sync_efficiency"],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    parent = tmp_path_factory.mktemp("runs")
    assert cli.main([*TINY, "--run-dir", str(parent), "--name", "tiny"]) == 0
    (folder,) = parent.iterdir()
    return folder


def test_run_folder_holds_config_log_events_and_checkpoints(run_dir):
    assert run_dir.name.startswith("tiny_")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env"] == "stag_hunt" and config["num_envs"] == 4 and config["env_options"] == {"max_steps": 10}
    assert "done: stag_hunt/hmasd" in (run_dir / "train.log").read_text()
    names = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert {"best.pt", "final.pt", "step_280.pt", "step_560.pt"} <= names
    assert not any(name.endswith(".tmp") for name in names)
    agents = json.loads((run_dir / "agents.json").read_text())
    assert agents["policy_sharing"] == "shared" and len(agents["agents"]) == 4
    assert {a["updates_applied"] for a in agents["agents"]} == {4 * 15}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # tensorboard's event reader on some protobuf versions
def test_events_have_every_family(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(run_dir)).Reload().Tags()["scalars"]
    for family in FAMILIES:
        assert any(tag.startswith(family) for tag in tags), family
    for tag in ["Training/Episode_Reward", "Training/Avg_Reward_10ep", "Sync/PolicyVersion", "Sync/Efficiency",
                "Buffer/ForceClosedWindows", "Rewards/HighLevel/K_Step_Accumulated_Mean", "Rewards/Intrinsic/Team",
                "Losses/Coordinator/entropy", "Eval/MeanReward"]:
        assert tag in tags, tag


def test_paper_data_files_have_the_stated_columns(run_dir):
    data = run_dir / "paper_data"
    for step in (280, 560):
        for stem, columns in CSV_COLUMNS.items():
            with open(data / f"{stem}_step_{step}.csv") as handle:
                rows = list(csv.reader(handle))
            assert rows[0] == columns and len(rows) > 1
        assert (data / f"reward_components_step_{step}.csv").is_file()
        usage = json.loads((data / f"skill_usage_step_{step}.json").read_text())
        assert {"team_skill_counts", "individual_skill_counts", "skill_switches", "total_steps", "sync_updates",
                "skill_diversity"} <= usage.keys()
        assert (data / f"training_progress_step_{step}.png").stat().st_size > 1000
    summary = json.loads((data / "training_summary.json").read_text())
    assert summary["env_steps"] == 560 and summary["updates"] == 4


def test_eval_only_on_the_checkpoint_writes_eval_json_a_table_and_a_gif(run_dir, tmp_path, capsys):
    assert cli.main(["--eval-only", "--model-path", str(run_dir / "checkpoints" / "final.pt"),
                     "--eval-episodes", "6", "--render", "--run-dir", str(tmp_path), "--no-progress"]) == 0
    (folder,) = tmp_path.iterdir()
    result = json.loads((folder / "eval.json").read_text())
    assert result["episodes"] == 6 and len(result["per_agent_return"]) == 4
    assert {"mean_return", "std_return", "stags", "hares"} <= result.keys()
    assert "mean_return" in capsys.readouterr().out
    assert (folder / "episode.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_resuming_from_a_checkpoint_continues_the_count(run_dir, tmp_path):
    assert cli.main(["--model-path", str(run_dir / "checkpoints" / "step_280.pt"), "--total-steps", "700",
                     "--run-dir", str(tmp_path), "--no-progress"]) == 0
    (folder,) = tmp_path.iterdir()
    assert "resumed" in (folder / "train.log").read_text()
    summary = json.loads((folder / "paper_data" / "training_summary.json").read_text())
    assert summary["env_steps"] == 700 and summary["updates"] == 5  # 280 + 3 updates of 4 envs x 35 steps


@pytest.mark.parametrize("argv, message", [
    (["--set", "no_such_field=3"], "unknown config field 'no_such_field'"),
    (["--set", "horizon"], "--set expects KEY=VALUE"),
    (["--eval-only"], "--eval-only needs --model-path"),
    (["--model-path", "/nonexistent.pt"], "does not exist"),
    (["--set", "clock=wall"], "clock must be"),
])
def test_bad_arguments_exit_with_a_clear_message(argv, message, tmp_path):
    with pytest.raises(SystemExit, match=message):
        cli.main([*argv, "--run-dir", str(tmp_path)])


def test_help_documents_every_flag_with_defaults():
    result = subprocess.run([sys.executable, "-m", "hmasd.train.cli", "--help"], capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert result.returncode == 0
    for flag in ["--env", "--preset", "--config", "--set", "--seed", "--num-envs", "--total-steps", "--device",
                 "--run-dir", "--name", "--log-level", "--detailed-logging", "--export-interval", "--eval-interval",
                 "--model-path", "--eval-only", "--eval-episodes", "--algo", "--render"]:
        assert flag in result.stdout, flag
    assert "(default: quickstart)" in result.stdout
