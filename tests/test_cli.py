"""hmasd-train end to end on a tiny config: the run folder, TensorBoard families, paper_data, checkpoints, eval."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs the train extra (torch); CI installs it")
pytest.importorskip("tensorboard", reason="training needs the train extra (tensorboard); CI installs it")

from hmasd.train import cli  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)

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


# ---- resuming: flags the checkpoint fixes, refusals that leave nothing behind, leftovers of killed writes ----------


def no_run_folder(parent: Path) -> bool:
    return not parent.exists() or not any(parent.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--num-envs", "8"], r"hmasd-train: --num-envs 8 does not fit the resume from \S+step_280\.pt: an exact resume "
                          r"continues the checkpoint's envs \(num_envs=4\); leave it out"),
    (["--seed", "7"], r"hmasd-train: --seed 7 does not fit the resume from \S+step_280\.pt: a resume continues the "
                      r"checkpoint's random streams \(seed=3\)"),
    (["--preset", "stag_hunt", "--set", "env_options.max_steps=10", "--num-envs", "8"], "--num-envs 8 does not fit"),
    (["--preset", "stag_hunt", "--set", "env_options.max_steps=10", "--set", "seed=7"], "seed=7 does not fit"),
    (["--preset", "alice_and_bob"], "name='stag_hunt', but this run has name='alice_and_bob'"),
    (["--eval-only", "--num-envs", "8"], "--num-envs has no effect with --eval-only"),
])
def test_a_refused_resume_names_the_flag_and_leaves_no_run_folder(run_dir, tmp_path, argv, message):
    parent = tmp_path / "runs"
    with pytest.raises(SystemExit, match=message):
        cli.main(["--model-path", str(run_dir / "checkpoints" / "step_280.pt"), *argv, "--run-dir", str(parent),
                  "--no-progress"])
    assert no_run_folder(parent), list(parent.rglob("*"))


def copied_checkpoint(run_dir: Path, tmp_path: Path, name: str = "step_280.pt") -> Path:
    folder = tmp_path / "old_run" / "checkpoints"
    folder.mkdir(parents=True)
    return Path(shutil.copy(run_dir / "checkpoints" / name, folder / name))


def test_a_resume_takes_the_checkpoints_own_values_and_removes_stale_temp_files(run_dir, tmp_path):
    path = copied_checkpoint(run_dir, tmp_path)
    stale = path.parent / "step_420.pt.tmp"
    stale.write_bytes(b"\0" * 1_100_000)  # a write killed half way (the one that kept the disk full)
    parent = tmp_path / "runs"
    assert cli.main(["--model-path", str(path), "--num-envs", "4", "--seed", "3", "--total-steps", "420",
                     "--run-dir", str(parent), "--no-progress"]) == 0
    (folder,) = parent.iterdir()
    assert not stale.exists() and sorted(p.name for p in path.parent.iterdir()) == ["step_280.pt"]
    log = (folder / "train.log").read_text()
    assert f"removed {stale}, left by an interrupted checkpoint write" in log and "resumed" in log
    config = json.loads((folder / "config.json").read_text())
    assert config["num_envs"] == 4 and config["seed"] == 3
    assert json.loads((folder / "paper_data" / "training_summary.json").read_text())["env_steps"] == 420
    assert not any(p.name.endswith(".tmp") for p in folder.rglob("*"))


def test_a_resume_with_a_preset_takes_num_envs_and_seed_from_the_checkpoint(run_dir, tmp_path):
    """The preset's num_envs (32) and seed (1) were not asked for: the checkpoint's (4, 3) are kept, not refused."""
    parent = tmp_path / "runs"
    assert cli.main(["--model-path", str(run_dir / "checkpoints" / "step_280.pt"), "--preset", "stag_hunt",
                     "--set", "env_options.max_steps=10", "--set", "lr=1e-4", "--total-steps", "420",
                     "--eval-interval", "0", "--eval-episodes", "2", "--run-dir", str(parent), "--no-progress"]) == 0
    (folder,) = parent.iterdir()
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_envs"], config["seed"], config["lr"]) == (4, 3, 1e-4)
    assert json.loads((folder / "paper_data" / "training_summary.json").read_text())["env_steps"] == 420


def test_eval_only_honours_seed(run_dir, tmp_path):
    results = {}
    for seed in (3, 11):
        parent = tmp_path / str(seed)
        assert cli.main(["--eval-only", "--model-path", str(run_dir / "checkpoints" / "final.pt"), "--seed",
                         str(seed), "--eval-episodes", "8", "--run-dir", str(parent), "--no-progress"]) == 0
        (folder,) = parent.iterdir()
        assert json.loads((folder / "config.json").read_text())["seed"] == seed
        results[seed] = json.loads((folder / "eval.json").read_text())
    assert results[3]["per_agent_return"] != results[11]["per_agent_return"]  # other evaluation episodes


# ---- I/O failures: one line naming the file and the cause, no traceback, no partial file --------------------------

SHORT = ["--preset", "stag_hunt", "--num-envs", "4", "--total-steps", "140", "--set", "env_options.max_steps=10",
         "--eval-interval", "0", "--eval-episodes", "2", "--checkpoint-interval", "1", "--no-progress", "--seed", "3"]


def fill_the_disk(obj, handle):
    handle.write(b"\0" * 1_100_000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def refuse_renames(src, dst):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src), None, str(dst))


# Tests run as root here, where chmod does not stop writes: a read-only folder is simulated by the rename failing
# with the errno the kernel gives for one (EROFS).
@pytest.mark.parametrize("target, fake, cause", [
    ("torch.save", fill_the_disk, "No space left on device"),
    ("os.replace", refuse_renames, "Read-only file system"),
])
def test_a_failed_checkpoint_write_stops_the_run_with_one_line(tmp_path, monkeypatch, target, fake, cause):
    import torch

    monkeypatch.setattr(torch if target == "torch.save" else os, target.split(".")[1], fake)
    parent = tmp_path / "runs"
    with pytest.raises(SystemExit) as caught:
        cli.main([*SHORT, "--run-dir", str(parent), "--name", "full"])
    (folder,) = parent.iterdir()
    assert caught.value.code == f"hmasd-train: cannot write checkpoint {folder / 'checkpoints' / 'step_140.pt'}: {cause}"
    assert not any(p.name.endswith(".tmp") for p in folder.rglob("*"))


def test_a_full_disk_exits_non_zero_without_a_traceback(tmp_path):
    argv = [*SHORT, "--run-dir", str(tmp_path / "runs")]
    script = ("import errno, os, sys, torch\n"
              "def full(obj, handle):\n"
              "    handle.write(bytes(1_100_000))\n"
              "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
              "torch.save = full\n"
              "from hmasd.train.cli import main\n"
              f"sys.exit(main({argv!r}))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.fullmatch(r"hmasd-train: cannot write checkpoint \S+/checkpoints/step_140\.pt: No space left on device",
                        result.stderr.strip().splitlines()[-1]), result.stderr
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "runs").rglob("*"))


def test_a_run_folder_that_cannot_be_made_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match=r"^hmasd-train: cannot create the run folder \S+/a_file/runs/stag_hunt_hmasd_"
                                         r"\S+: Not a directory$"):
        cli.main([*SHORT, "--run-dir", str(blocker / "runs")])


def test_a_read_only_run_folder_is_a_one_line_error(tmp_path, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    parent = tmp_path / "runs"
    with pytest.raises(SystemExit) as caught:
        cli.main([*SHORT, "--run-dir", str(parent)])
    monkeypatch.undo()
    (folder,) = parent.iterdir()
    assert caught.value.code == f"hmasd-train: {folder / 'config.json'}: Read-only file system"


def test_an_unreadable_config_file_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match=r"cannot read --config \S+/none\.toml: No such file or directory"):
        cli.main(["--config", str(tmp_path / "none.toml"), "--run-dir", str(tmp_path)])
    (tmp_path / "bad.toml").write_text("lr = = 3")
    with pytest.raises(SystemExit, match=r"--config \S+/bad\.toml is not valid TOML"):
        cli.main(["--config", str(tmp_path / "bad.toml"), "--run-dir", str(tmp_path)])
