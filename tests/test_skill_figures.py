"""benchmarks/learning/skill_figures.py: the recorded episodes are the deterministic evaluation's, window by window,
and every env's figure draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")
pytest.importorskip("matplotlib", reason="the figures need the train extra (matplotlib); CI installs it")

from hmasd.train import checkpoint, preset  # noqa: E402
from hmasd.train.evaluation import evaluate  # noqa: E402
from hmasd.train.loop import build  # noqa: E402
from learning_scripts import load_script  # noqa: E402


def test_recorded_episodes_are_the_deterministic_evaluation():
    figures = load_script("skill_figures")
    trainer = build(preset("alice_and_bob", num_envs=4, eval_interval=0, seed=2))
    run = figures.record(trainer, 16, seed=5)
    expected = evaluate(trainer, 16, seed=5)
    assert run.episode_return.mean() == pytest.approx(expected["mean_reward"])
    lengths = run.alive.sum(0)
    assert lengths.mean() == pytest.approx(expected["mean_length"])
    # k = 50 on 100-step episodes: windows open at steps 0 and 50 of every episode that lasts that long
    assert np.all(run.decided[0]) and np.array_equal(run.decided[50], lengths > 50)
    assert run.decided.sum() == np.sum(1 + (lengths > 50))
    second = np.broadcast_to(np.arange(run.alive.shape[0])[:, None] >= 50, run.alive.shape)
    assert np.array_equal(run.window[run.alive], second[run.alive].astype(int))
    # grid moves: at most one cell per step, inside the 8 x 8 interior
    steps = np.abs(np.diff(run.positions, axis=0)).sum(-1)[run.alive]
    assert steps.max() <= 1 and run.positions.min() >= 1 and run.positions.max() <= 8
    assert run.team_share(2).sum() == pytest.approx(1.0)
    assert np.allclose(run.indiv_share(4).sum(1), 1.0)


@pytest.mark.parametrize("name", ["alice_and_bob", "stag_hunt", "uav_coverage"])
def test_figure_and_numbers_for_every_env(name, tmp_path):
    figures = load_script("skill_figures")
    settings = {"num_envs": 2, "eval_interval": 0, "seed": 1}
    if name == "uav_coverage":
        settings["env_options"] = {"max_steps": 30}
    trainer = build(preset({"alice_and_bob": "alice_and_bob", "stag_hunt": "stag_hunt",
                            "uav_coverage": "uav_coverage"}[name], **settings))
    paths = [checkpoint.save(trainer, tmp_path / f"run_{steps}.pt") for steps in (0, 1)]
    out = tmp_path / "skills.png"
    runs = [figures.record(figures.load_trainer(p), 4, seed=3) for p in paths]
    summary = figures.figure(paths, runs, [0, 1], figures.load_trainer(paths[-1]), out, paths=2)
    assert out.stat().st_size > 10_000
    assert np.allclose(np.sum(summary["team_share"], axis=1), 1.0)
    assert np.allclose(np.sum(summary["team_share_by_window_last"], axis=1), 1.0)
    json.dumps(summary)
    assert ("stag_behaviour_last" in summary) == (name == "stag_hunt")


def test_stag_behaviour_measures_distances_per_skill_and_hunters_at_the_stag():
    figures = load_script("skill_figures")
    size = 8
    # one env, two steps, 2 agents, 1 hare; state = agents, stag, hare cells / (size - 1), then t / T
    step0 = [0, 0, 0, 1, 0, 1, 7, 7, 0.0]  # agent 0 next to the stag, agent 1 on it: both within one cell
    step1 = [0, 0, 5, 5, 0, 1, 7, 7, 0.5]  # agent 1 away: only one hunter near
    cells = np.array([step0, step1, step1], np.float64)
    states = np.concatenate([cells[:, :8] / (size - 1), cells[:, 8:]], axis=1)[:, None, :]
    run = figures.Episodes(team=np.array([[0], [1]]), indiv=np.array([[[0, 1]], [[0, 0]]]),
                           decided=np.array([[True], [True]]), window=np.array([[0], [1]]),
                           positions=np.zeros((3, 1, 2, 2)), alive=np.ones((2, 1), bool),
                           episode_return=np.zeros(1), success=None, states=states)
    got = figures.stag_behaviour(run, {"num_hares": 1, "grid_size": size, "stag_min_hunters": 2}, 2, 2)
    z0, z1 = got["individual_skills"]["z=0"], got["individual_skills"]["z=1"]
    # z = 0: agent 0 at both steps (distance 1 to the stag, 14 to the hare) and agent 1 at step 1 (9 and 4)
    assert z0["share_of_agent_steps"] == 0.75 and z1["share_of_agent_steps"] == 0.25
    assert z0["mean_distance_to_stag"] == pytest.approx((1 + 1 + 9) / 3)
    assert z0["mean_distance_to_nearest_hare"] == pytest.approx((14 + 14 + 4) / 3)
    assert (z1["mean_distance_to_stag"], z1["mean_distance_to_nearest_hare"]) == (0, 13)
    assert got["team_skills"]["Z=0"]["steps_with_hunters_at_the_stag"] == 1.0
    assert got["team_skills"]["Z=1"]["steps_with_hunters_at_the_stag"] == 0.0
    assert got["steps_with_hunters_at_the_stag"] == 0.5


def test_alice_failures_finds_two_cycles_and_reads_the_goal_cells():
    failures = load_script("alice_failures")
    path = np.array([(3, 3), (4, 3)] * 15)
    assert failures.two_cycle(path) == ((3, 3), (4, 3))
    assert failures.two_cycle(np.array([(3, 3)] * 30)) is None
    assert failures.two_cycle(np.array([(3, 3), (4, 3), (5, 3)] * 10)) is None
    assert failures.goal_cells(10, 10) == {(1, 8): "button 0", (1, 1): "button 1", (8, 1): "diamond 0",
                                           (8, 8): "diamond 1"}
    trainer = build(preset("alice_and_bob", num_envs=4, eval_interval=0, seed=2))
    result = failures.analyse(trainer, 12, seed=5)
    assert result["success"]["argmax skills, argmax actions"] == evaluate(trainer, 12, seed=5)["success_rate"]
    assert result["argmax_failures"] == round(12 * (1 - result["success"]["argmax skills, argmax actions"]))
    for key in ("failed_agents_in_2_cycle", "failed_agents_still"):
        assert 0 <= result[key] <= 1
    assert result["failed_agents_in_2_cycle"] + result["failed_agents_still"] <= 1


def test_alice_collapse_swaps_the_levels_and_records_updates_without_changing_them(tmp_path):
    from hmasd.train import session
    from hmasd.train.loop import iterate

    collapse = load_script("alice_collapse")
    trainer = build(preset("alice_and_bob", num_envs=2, eval_interval=0, seed=2))
    first = checkpoint.save(trainer, tmp_path / "first.pt")
    iterate(trainer)
    second = checkpoint.save(trainer, tmp_path / "second.pt")
    swapped = collapse.swap(first, second, episodes=4)
    # "bad" is the second checkpoint as it is, on the run's evaluation episodes
    assert swapped["bad"] == collapse.success(load_script("skill_figures").load_trainer(second), 4)
    assert set(swapped) == {"good", "bad", "good coordinator, bad low level", "bad coordinator, good low level"}
    recorded = collapse.updates(second, 2, {}, episodes=4)
    assert [row["env_steps"] for row in recorded["updates"]] == [2 * 100 * 2, 3 * 100 * 2]
    assert all(row["kl"] >= 0 and row["decisions"] > 0 for row in recorded["updates"])
    changed = collapse.updates(second, 1, {"time_limit_bootstrap": False}, episodes=4)
    assert changed["overrides"] == {"time_limit_bootstrap": False}
    # recording does not change the run: two recorded updates leave the networks those of two plain ones
    data = checkpoint.load(second)
    watched = session.prepare(checkpoint.config_of(data), data, str(second), exact=True)
    rows = collapse.record_updates(watched, 2)
    plain = session.prepare(checkpoint.config_of(data), data, str(second), exact=True)  # after: torch's RNG is global
    iterate(plain), iterate(plain)
    assert len(rows) == 2 and "update_coordinator" not in vars(watched.agent)
    for (name, a), (_, b) in zip(watched.agent.state_dict().items(), plain.agent.state_dict().items()):
        assert torch.equal(a, b), name
    moved = [not torch.equal(a, b) for a, b in zip(watched.agent.coordinator.state_dict().values(),
                                                    trainer.agent.coordinator.state_dict().values())]
    assert any(moved)
