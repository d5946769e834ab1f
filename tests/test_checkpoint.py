"""Checkpoints: exact resume, clear errors for corrupt or mismatched files, atomic writes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training needs the train extra (torch); CI installs it")

from hmasd.train import checkpoint, preset  # noqa: E402
from hmasd.train.loop import build, iterate  # noqa: E402


def tiny(**overrides):
    base = dict(num_envs=4, total_steps=10**6, eval_interval=0, seed=2, env_options={"max_steps": 10})
    return preset("stag_hunt", **{**base, **overrides})


def parameters(trainer) -> dict[str, torch.Tensor]:
    state = {f"agent.{k}": v for k, v in trainer.agent.state_dict().items()}
    for name, optimizer in trainer.agent.optimizers.items():
        for i, s in enumerate(optimizer.state_dict()["state"].values()):
            state.update({f"{name}.{i}.{k}": v for k, v in s.items() if torch.is_tensor(v)})
    return state


@pytest.mark.parametrize("algo", ["hmasd", "no_high"])
def test_resume_is_exact(tmp_path, algo):
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
    checkpoint.restore(resumed, checkpoint.load(path))
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
    data = checkpoint.load(path)  # the old file is intact
    assert data["counters"]["iteration"] == 0
    checkpoint.save(trainer, path)
    assert checkpoint.load(path)["counters"]["iteration"] == 1
