"""Checkpoints: exact resume, clear errors for corrupt or mismatched files, atomic writes."""

from __future__ import annotations

import errno
import os
import stat

import pytest

torch = pytest.importorskip("torch", reason="training needs the train extra (torch); CI installs it")

from hmasd.train import checkpoint, preset  # noqa: E402
from hmasd.train.loop import build, iterate  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)


def tiny(**overrides):
    base = dict(num_envs=4, total_steps=10**6, eval_interval=0, seed=2, env_options={"max_steps": 10})
    return preset("stag_hunt", **{**base, **overrides})


def parameters(trainer) -> dict[str, torch.Tensor]:
    state = {f"agent.{k}": v for k, v in trainer.agent.state_dict().items()}
    for name, optimizer in trainer.agent.optimizers.items():
        for i, s in enumerate(optimizer.state_dict()["state"].values()):
            state.update({f"{name}.{i}.{k}": v for k, v in s.items() if torch.is_tensor(v)})
    return state


def as_legacy_layout(data: dict) -> dict:
    """A checkpoint in the layout written before distributed training: the one rank's state at the top level."""
    (own,) = data.pop("ranks")
    del data["world_size"]
    data["counters"]["engine"] = own["engine"]
    return {**data, "env_snapshot": own["env_snapshot"], "hidden": own["hidden"]}


@pytest.mark.parametrize("algo, layout", [("hmasd", "current"), ("no_high", "current"), ("hmasd", "legacy")])
def test_resume_is_exact(tmp_path, algo, layout):
    n = 2
    straight = build(tiny(algo=algo))
    for _ in range(2 * n):
        iterate(straight)

    first = build(tiny(algo=algo))
    for _ in range(n):
        iterate(first)
    path = checkpoint.save(first, tmp_path / "mid.pt")
    del first
    resumed = build(tiny(algo=algo))
    data = checkpoint.load(path)
    checkpoint.restore(resumed, data if layout == "current" else as_legacy_layout(data))
    assert resumed.iteration == n and resumed.engine.policy_version == n
    for _ in range(n):
        iterate(resumed)

    a, b = parameters(straight), parameters(resumed)
    assert a.keys() == b.keys() and len(a) > 20
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight.env_steps == resumed.env_steps
    assert straight.engine.counters() == resumed.engine.counters()
    assert straight.env._native.snapshot() == resumed.env._native.snapshot()


def test_training_after_a_restore_leaves_the_loaded_checkpoint_as_it_was(tmp_path):
    first = build(tiny())
    iterate(first)
    data = checkpoint.load(checkpoint.save(first, tmp_path / "mid.pt"))
    runs = []
    for _ in range(2):  # two resumes from one loaded dict (a sweep, a notebook) must be the same run
        resumed = build(tiny())
        checkpoint.restore(resumed, data)
        iterate(resumed)
        runs.append(parameters(resumed))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
    fresh = checkpoint.load(tmp_path / "mid.pt")
    for name, state in fresh["optimizers"].items():
        for i, moments in state["state"].items():
            for k, v in moments.items():
                assert torch.equal(v, data["optimizers"][name]["state"][i][k]), (name, i, k)


def test_corrupt_truncated_and_foreign_files_raise_clear_errors(tmp_path):
    trainer = build(tiny())
    good = checkpoint.save(trainer, tmp_path / "good.pt")
    blob = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all" * 10)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    for name, message in [("truncated.pt", "not a readable hmasd checkpoint"),
                          ("garbage.pt", "not a readable hmasd checkpoint"),
                          ("foreign.pt", "has format None, expected 'hmasd-checkpoint-v1'"),
                          ("missing.pt", "does not exist")]:
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.load(tmp_path / name)


@pytest.mark.parametrize("overrides, message", [
    ({"env": "alice_and_bob", "env_options": {}}, "name='stag_hunt', but this run has name='alice_and_bob'"),
    ({"env_options": {"num_agents": 3, "max_steps": 10}}, "num_agents=4, but this run has num_agents=3"),
    ({"num_team_skills": 5}, "num_team_skills=3, but this run has num_team_skills=5"),
    ({"num_envs": 6}, "exact resume needs the same"),
])
def test_a_checkpoint_for_another_run_raises(tmp_path, overrides, message):
    path = checkpoint.save(build(tiny()), tmp_path / "a.pt")
    other = build(tiny(**overrides))
    before = [p.clone() for p in other.agent.parameters()]
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.restore(other, checkpoint.load(path), path)
    if "num_envs" not in overrides:  # shape checks run before anything is loaded
        assert all(torch.equal(a, b) for a, b in zip(before, other.agent.parameters()))


def test_an_interrupted_write_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    trainer = build(tiny())
    path = checkpoint.save(trainer, tmp_path / "best.pt")
    iterate(trainer)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    real_save = torch.save

    def half_write(obj, handle):
        handle.write(b"partial bytes of a new checkpoint")
        crash()

    monkeypatch.setattr(torch, "save", half_write)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(trainer, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]  # the partial temporary file is gone
    data = checkpoint.load(path)  # the old file is intact
    assert data["counters"]["iteration"] == 0
    checkpoint.save(trainer, path)
    assert checkpoint.load(path)["counters"]["iteration"] == 1


# ---- I/O failures: a clear error naming the file, no partial file left, the previous checkpoint intact ----------


def enospc_mid_write(obj, handle):
    """torch.save on a disk that fills up: some bytes reach the temporary file, then ENOSPC."""
    handle.write(b"\0" * 1_100_000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def failing(error: int):
    def fail(*args, **kwargs):
        raise OSError(error, os.strerror(error))
    return fail


# Tests run as root here, where chmod does not stop writes: a read-only folder and lost permissions are simulated by
# making the call that would meet them fail with the errno the kernel gives (EROFS, EACCES).
@pytest.mark.parametrize("where, error", [
    ("torch.save", errno.ENOSPC),   # the disk fills up while the checkpoint is written
    ("open", errno.EROFS),          # the run folder is (re)mounted read-only
    ("open", errno.EACCES),         # the folder's permissions were taken away
    ("os.fsync", errno.EIO),        # the data never reached the disk
    ("os.replace", errno.EACCES),   # the rename is refused
])
def test_a_failed_write_raises_an_error_naming_the_file_and_the_cause(tmp_path, monkeypatch, where, error):
    trainer = build(tiny())
    path = checkpoint.save(trainer, tmp_path / "step_10.pt")
    iterate(trainer)
    if where == "torch.save":
        monkeypatch.setattr(torch, "save", enospc_mid_write)
    elif where == "open":
        monkeypatch.setattr(checkpoint, "open", failing(error), raising=False)  # the module's view of open()
    else:
        monkeypatch.setattr(os, where.split(".")[1], failing(error))
    with pytest.raises(checkpoint.CheckpointWriteError) as caught:
        checkpoint.save(trainer, path)
    assert str(caught.value) == f"cannot write checkpoint {path}: {os.strerror(error)}"
    assert caught.value.errno == error and caught.value.filename == str(path)
    assert isinstance(caught.value, OSError)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_10.pt"]  # no temporary file left behind
    assert checkpoint.load(path)["counters"]["iteration"] == 0  # the previous checkpoint is intact


def test_a_really_full_device_is_reported_and_cleaned_up(tmp_path):
    """No monkeypatching: the temporary file is a link to /dev/full, where every write fails with ENOSPC."""
    trainer = build(tiny())
    path = tmp_path / "final.pt"
    (tmp_path / "final.pt.tmp").symlink_to("/dev/full")
    with pytest.raises(checkpoint.CheckpointWriteError, match=f"cannot write checkpoint {path}: No space left"):
        checkpoint.save(trainer, path)
    assert list(tmp_path.iterdir()) == []  # the link is removed (not /dev/full), no final.pt appeared
    assert os.path.exists("/dev/full")


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    def fsync(fd):
        info = os.fstat(fd)
        folder = stat.S_ISDIR(info.st_mode) and os.path.samestat(info, os.stat(tmp_path))
        events.append(("fsync", "folder" if folder else "file"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    path = checkpoint.save(build(tiny()), tmp_path / "best.pt")
    assert events == [("fsync", "file"), ("replace", str(path)), ("fsync", "folder")]


def test_without_o_directory_the_folder_sync_is_skipped(tmp_path, monkeypatch):
    """Platforms without O_DIRECTORY (Windows) cannot open a folder to sync it: the save still works."""
    monkeypatch.delattr(os, "O_DIRECTORY")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    path = checkpoint.save(build(tiny()), tmp_path / "best.pt")
    assert len(synced) == 1 and checkpoint.load(path)["format"] == checkpoint.FORMAT


def test_stale_temporary_files_are_removed_but_not_a_write_in_progress(tmp_path):
    import fcntl  # POSIX; the writer's lock is what tells a write in progress from a leftover

    (tmp_path / "step_10.pt.tmp").write_bytes(b"\0" * 1_100_000)  # left by a run killed mid-write
    (tmp_path / "best.pt").write_bytes(b"kept")
    (tmp_path / "notes.tmp").write_text("not a checkpoint: kept")
    with open(tmp_path / "step_20.pt.tmp", "wb") as live:  # another process is writing this one right now
        fcntl.flock(live.fileno(), fcntl.LOCK_EX)
        assert checkpoint.remove_stale_temps(tmp_path) == [tmp_path / "step_10.pt.tmp"]
        assert (tmp_path / "step_20.pt.tmp").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "notes.tmp", "step_20.pt.tmp"]
    assert checkpoint.remove_stale_temps(tmp_path) == [tmp_path / "step_20.pt.tmp"]  # its writer is gone now
