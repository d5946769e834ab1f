"""hmasd.envs.random_actions: one random policy for every action space (continuous Box and masked Discrete), and
hmasd-demo on every registered env, the continuous uav_coverage included."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

import hmasd.envs
from hmasd import demo

SMALL_UAV = {"num_users": 12, "max_steps": 20}


def test_continuous_actions_lie_in_the_action_space_and_cover_both_signs():
    env = hmasd.envs.make("uav_coverage", num_envs=6, seed=0, **SMALL_UAV)
    env.reset()
    assert env.continuous
    actions = hmasd.envs.random_actions(env, np.random.default_rng(0))
    assert actions.shape == (6, env.num_agents, env.action_dim) == (6, 5, 3) and actions.dtype == np.float32
    space = env.action_space
    assert all(space.contains(actions[e, i]) for e in range(6) for i in range(5))
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    for component in range(3):  # every component takes both signs: the sampler is not one-sided
        values = actions[..., component]
        assert (values < -0.1).any() and (values > 0.1).any(), component
    assert np.unique(actions).size == actions.size  # continuous draws, not a few discrete values
    env.step(actions)  # the env takes them as they are


def test_actions_are_deterministic_for_a_seed_and_differ_across_seeds():
    for name, options in [("uav_coverage", SMALL_UAV), ("stag_hunt", {})]:
        env = hmasd.envs.make(name, num_envs=4, seed=0, **options)
        env.reset()
        draw = [hmasd.envs.random_actions(env, np.random.default_rng(seed)) for seed in (5, 5, 6)]
        np.testing.assert_array_equal(draw[0], draw[1], err_msg=name)
        assert not np.array_equal(draw[0], draw[2]), name


def test_discrete_actions_respect_the_mask_and_reach_every_valid_action():
    env = hmasd.envs.make("stag_hunt", num_envs=2, seed=0)
    env.reset()
    mask = np.zeros_like(env.action_mask)
    mask[..., 1] = mask[..., 3] = True
    rng = np.random.default_rng(1)
    actions = np.stack([hmasd.envs.random_actions(env, rng, mask=mask) for _ in range(200)])
    assert actions.dtype == np.int32 and actions.shape == (200, 2, env.num_agents)
    assert set(np.unique(actions).tolist()) == {1, 3}
    # by default the env's own mask is used
    own = hmasd.envs.random_actions(env, np.random.default_rng(2))
    assert np.take_along_axis(env.action_mask, own[..., None], axis=-1).all()


def test_the_discrete_uav_variant_gets_move_indices():
    env = hmasd.envs.make("uav_coverage", num_envs=3, seed=0, action_type="discrete", **SMALL_UAV)
    env.reset()
    actions = np.stack([hmasd.envs.random_actions(env, np.random.default_rng(s)) for s in range(20)])
    assert actions.dtype == np.int32 and actions.shape == (20, 3, 5)
    assert set(np.unique(actions).tolist()) == set(range(env.num_actions)) == set(range(7))


def test_a_mask_of_the_wrong_shape_is_refused():
    env = hmasd.envs.make("stag_hunt", num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"mask of shape \(2, 4, 2\), expected \(2, 4, 5\)"):
        hmasd.envs.random_actions(env, np.random.default_rng(0), mask=np.ones((2, 4, 2), bool))


def test_the_sampler_does_not_need_torch(tmp_path):
    script = ("import sys, numpy as np, hmasd.envs; "
              "env = hmasd.envs.make('uav_coverage', num_envs=2, seed=0); env.reset(); "
              "a = hmasd.envs.random_actions(env, np.random.default_rng(0)); env.step(a); "
              "assert a.shape == (2, 5, 3), a.shape; "
              "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)  # outside the source tree: the installed package
    assert result.returncode == 0, result.stderr


# ---- hmasd-demo ---------------------------------------------------------------------------------------------------


def test_demo_runs_uav_coverage_end_to_end(caplog):
    # 2 envs x 1010 steps: the default 500-step episodes end twice in each copy
    with caplog.at_level(logging.INFO, logger="hmasd.demo"):
        demo.main(["--env", "uav_coverage", "--num-envs", "2", "--steps", "1010", "--num-threads", "1"])
    text = caplog.text
    assert "random policy on uav_coverage, 2 envs x 1010 steps" in text
    summary = demo.run("uav_coverage", num_envs=2, steps=1010, num_threads=1, seed=0)
    assert summary["episodes"] == 4 and summary["mean_length"] == 500.0
    assert len(summary["mean_return_per_agent"]) == 5
    assert 0.0 <= summary["coverage_ratio"] <= 1.0 and summary["system_throughput_mbps"] > 0
    assert summary["env_steps_per_s"] > 0
    again = demo.run("uav_coverage", num_envs=2, steps=1010, num_threads=1, seed=0)
    assert again["mean_return_per_agent"] == summary["mean_return_per_agent"]  # seeded: the same episodes
    other = demo.run("uav_coverage", num_envs=2, steps=1010, num_threads=1, seed=1)
    assert other["mean_return_per_agent"] != summary["mean_return_per_agent"]


@pytest.mark.parametrize("name", hmasd.envs.registered_envs())
def test_demo_runs_every_registered_env(name):
    summary = demo.run(name, num_envs=2, steps=600, num_threads=1, seed=0)
    assert summary["episodes"] >= 2, summary
    assert len(summary["mean_return_per_agent"]) == hmasd.envs.make(name, num_envs=1).num_agents
