"""Training on uav_coverage: the Gaussian low-level policy, continuous actions through the engine, the env's
Performance/ metrics in TensorBoard tags and the episode CSV, the presets, and a learning check."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")

from hmasd.algo.networks import LowActor  # noqa: E402
from hmasd.train.config import PRESETS, preset  # noqa: E402
from hmasd.train.evaluation import evaluate  # noqa: E402
from hmasd.train.loop import build, collect, iterate, performance_tag  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)

SMALL_ENV = {"num_uavs": 3, "num_users": 12, "max_steps": 30}


def small_config(**overrides):
    options = {**SMALL_ENV, **overrides.pop("env_options", {})}
    settings = {"num_envs": 4, "horizon": 20, "total_steps": 10_000, "eval_interval": 0, "high_epochs": 2,
                "low_epochs": 2, "disc_epochs": 2, **overrides}
    return preset("uav_coverage", env_options=options, **settings)


def test_gaussian_actor_scores_actions_with_a_state_independent_std():
    torch.manual_seed(0)
    actor = LowActor(obs_dim=6, num_indiv_skills=3, num_actions=0, action_dim=3, log_std_init=-0.5)
    obs, skill = torch.randn(50, 6), torch.randint(0, 3, (50,))
    action, logp, entropy, _ = actor.get_action_and_logp(obs, skill)
    assert action.shape == (50, 3) and action.dtype == torch.float32
    mean, _ = actor.net(obs, skill)
    expected = torch.distributions.Normal(mean, math.exp(-0.5)).log_prob(action).sum(-1)
    torch.testing.assert_close(logp, expected)
    torch.testing.assert_close(entropy, torch.full((50,), 3 * (0.5 * math.log(2 * math.pi * math.e) - 0.5)))
    deterministic, _, _, _ = actor.get_action_and_logp(obs, skill, deterministic=True)
    torch.testing.assert_close(deterministic, mean)
    # the std does not depend on the observation: the same action scored under other inputs moves only the mean
    # (other inputs, not a shifted copy: the input LayerNorm would remove a constant shift)
    _, logp_other, entropy_other, _ = actor.get_action_and_logp(torch.randn(50, 6), skill, action=action)
    torch.testing.assert_close(entropy_other, entropy)
    assert not torch.allclose(logp_other, logp)


@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
def test_an_iteration_stores_the_sampled_actions_and_reports_the_env_metrics(action_type):
    collected = build(small_config(env_options={"action_type": action_type}))
    collect(collected)
    actions = collected.engine.low_level()["actions"]
    if action_type == "continuous":  # the unclipped Gaussian samples are stored; the env clips what it applies
        assert actions.dtype == np.float32 and actions.shape == (20, 4, 3, 3)
        assert np.abs(actions).max() > 1.0
    else:
        assert actions.dtype == np.int32 and actions.shape == (20, 4, 3) and actions.max() < 7
    trainer = build(small_config(env_options={"action_type": action_type}))
    log_std_before = trainer.agent.actor.log_std.detach().clone() if action_type == "continuous" else None
    metrics = {}
    for _ in range(2):  # 40 steps: every env finishes a 30-step episode
        metrics = iterate(trainer)
    for name in ("system_throughput_mbps", "connected_users", "coverage_ratio", "connectivity_ratio", "avg_hops"):
        assert performance_tag(name) in metrics
    assert 0.0 <= metrics["Performance/Episode_Coverage_Ratio"] <= 1.0
    assert metrics["Performance/Episode_Connected_Users"] == pytest.approx(
        metrics["Performance/Episode_Coverage_Ratio"] * SMALL_ENV["num_users"], rel=1e-5)
    if action_type == "continuous":  # the Gaussian's log-std is a trained parameter
        assert not torch.equal(trainer.agent.actor.log_std.detach(), log_std_before)
    episodes = trainer.last_batch.episode_metrics
    assert len(episodes) == 4 and all("coverage_ratio" in values for values in episodes.values())


def test_log_std_ceiling_moves_linearly_and_caps_every_actor_after_its_update():
    config = small_config(log_std_init=-0.5, low_log_std_final=-2.5, total_steps=1000)
    assert [config.low_log_std_ceiling_at(s) for s in (0, 500, 1000, 4000)] == pytest.approx([-0.5, -1.5, -2.5, -2.5])
    assert small_config().low_log_std_ceiling_at(10**9) is None  # None: learned freely
    with pytest.raises(ValueError, match="low_log_std_final"):
        small_config(low_log_std_final=math.nan)
    with pytest.raises(ValueError, match="discrete actions"):
        build(small_config(low_log_std_final=-2.0, env_options={"action_type": "discrete"}))

    one_iteration = 4 * 20  # the update is at the end of the schedule: the ceiling is low_log_std_final
    def after_one_iteration(**overrides):
        trainer = build(small_config(total_steps=one_iteration, torch_threads=1, **overrides))
        metrics = iterate(trainer)
        return trainer, metrics

    capped, metrics = after_one_iteration(low_log_std_final=-2.5, policy_sharing="independent")
    assert metrics["Training/LowLogStdCeiling"] == pytest.approx(-2.5)
    assert len(capped.agent.actors) == 3
    for actor in capped.agent.actors:  # one update cannot move a log-std from -0.5 to -2.5: each is capped
        assert actor.log_std.detach().tolist() == pytest.approx([-2.5] * 3)
    free, free_metrics = after_one_iteration(policy_sharing="independent")
    assert "Training/LowLogStdCeiling" not in free_metrics
    assert all((actor.log_std > -1.0).all() for actor in free.agent.actors)
    # a ceiling above every log-std changes nothing: the same parameters as a run without one
    loose, _ = after_one_iteration(low_log_std_final=1.0, policy_sharing="independent")
    assert all(torch.equal(a, b) for a, b in zip(loose.agent.parameters(), free.agent.parameters()))
    # the next batch is collected under the capped noise: its sampled moves spread less around the means
    collect(capped)
    collect(free)
    spread = {name: float(np.std(t.engine.low_level()["actions"])) for name, t in (("capped", capped),
                                                                                    ("free", free))}
    assert spread["capped"] < spread["free"]


def test_performance_tags_are_the_issue_names():
    assert performance_tag("system_throughput_mbps") == "Performance/Episode_System_Throughput_Mbps"
    assert performance_tag("connected_users") == "Performance/Episode_Connected_Users"
    assert performance_tag("coverage_ratio") == "Performance/Episode_Coverage_Ratio"
    assert performance_tag("connectivity_ratio") == "Performance/Episode_Connectivity_Ratio"
    assert performance_tag("avg_hops") == "Performance/Episode_Avg_Hops"


def test_episode_csv_carries_the_env_metrics(tmp_path):
    pytest.importorskip("tensorboard", reason="run tracking needs the train extra")
    from hmasd.train.tracking import EPISODE_COLUMNS, RunTracker

    trainer = build(small_config())
    tracker = RunTracker(tmp_path, trainer.config, 4, trainer.env.num_agents)
    for _ in range(2):
        tracker.log_iteration(trainer, iterate(trainer))
    tracker.export(trainer.env_steps)
    with (tmp_path / "paper_data" / f"episode_rewards_step_{trainer.env_steps}.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames
    assert tuple(columns[:len(EPISODE_COLUMNS)]) == EPISODE_COLUMNS
    assert {"coverage_ratio", "system_throughput_mbps", "connectivity_ratio", "avg_hops"} <= set(columns)
    assert len(rows) == 4
    recorded = sorted(float(row["coverage_ratio"]) for row in rows)
    expected = sorted(v["coverage_ratio"] for v in trainer.last_batch.episode_metrics.values())
    np.testing.assert_allclose(recorded, expected, rtol=1e-6)
    tracker.close({})


def test_presets_describe_the_requested_settings():
    parity = PRESETS["uav_seed_parity"]
    assert parity.env == "uav_coverage" and parity.num_envs == 32 and parity.skill_interval == 10
    assert parity.num_team_skills == parity.num_indiv_skills == 3
    assert parity.env_options == {"num_uavs": 5, "num_users": 50, "channel_model": "3gpp-36777", "max_steps": 5000,
                                  "backhaul_min_snr_db": 0.0, "gbs_tx_power_dbm": 30.0}
    trainer = build(parity.replace(num_envs=2))  # the options are valid for the env
    assert trainer.env.options["max_steps"] == 5000 and trainer.env.continuous
    assert PRESETS["uav_coverage"].env == "uav_coverage"
    grid = PRESETS["uav_coverage_grid"]  # uav_coverage, only the users' encoding differs
    assert grid == PRESETS["uav_coverage"].replace(env_options={"user_grid": 10})
    trainer = build(grid.replace(num_envs=2))
    assert trainer.env.obs_dim == 3 + 100 + 3 * 4 + 1 + 3 + 1 + 1
    load = PRESETS["uav_coverage_load"]  # the grid plus the UAV loads, a decaying rate, the issue's 3M budget
    assert load == grid.replace(env_options={"user_grid": 10, "uav_load": True}, lr_final=0.0,
                                total_steps=3_000_000)
    trainer = build(load.replace(num_envs=2))
    assert trainer.env.obs_dim == 3 + 100 + 3 * 4 + 1 + 3 + 1 + 1 + 4 * 5
    assert trainer.env.state_dim == 3 * 5 + 100 + 1 + 100 + 4 * 5
    low_noise = PRESETS["uav_coverage_low_noise"]  # the same env and budget, less noise in the low-level signal
    assert low_noise == load.replace(skill_interval=50, gamma=0.9, lambda_team=0.01, lambda_indi=0.01)


@pytest.mark.learning
def test_mappo_with_a_gaussian_policy_learns_to_cover_users():
    """Two UAVs, clustered users, 30-step episodes: coverage after ~60k steps beats the untrained policy."""
    config = small_config(algo="mappo", num_envs=16, horizon=30, total_steps=16 * 30 * 60, seed=3, low_epochs=5,
                          env_options={"num_uavs": 2, "num_users": 20, "user_distribution": "cluster",
                                       "scenario": "base_station", "max_connections": 20, "min_sinr_db": 10.0})
    trainer = build(config)
    before = evaluate(trainer, 32, seed=5)
    while trainer.env_steps < config.total_steps:
        iterate(trainer)
    after = evaluate(trainer, 32, seed=5)
    assert after["mean_reward"] > before["mean_reward"] + 1.0, (before["mean_reward"], after["mean_reward"])
    assert np.mean(after["coverage_ratio"]) > np.mean(before["coverage_ratio"]), (before, after)
