"""A curriculum's warm-up (TrainConfig.warmup_steps): other env options first, then the real env, the agent and
its random streams carried over; exact resume on either side of the switch."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training needs the train extra (torch); CI installs it")

from hmasd.train import checkpoint, preset  # noqa: E402
from hmasd.train.cli import apply_overrides  # noqa: E402
from hmasd.train.evaluation import evaluate  # noqa: E402
from hmasd.train.loop import build, iterate  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)

STEPS_PER_ITERATION = 4 * 35  # num_envs x horizon


def curriculum(**overrides):
    base = dict(num_envs=4, total_steps=10**6, eval_interval=0, seed=2, torch_threads=1,
                warmup_steps=2 * STEPS_PER_ITERATION, warmup_env_options={"stag_min_hunters": 1})
    return preset("stag_hunt", **{**base, **overrides})


def test_the_env_options_of_each_phase():
    config = curriculum(env_options={"max_steps": 20})
    assert config.env_options_at(0) == {"max_steps": 20, "stag_min_hunters": 1}
    assert config.env_options_at(2 * STEPS_PER_ITERATION - 1) == {"max_steps": 20, "stag_min_hunters": 1}
    assert config.env_options_at(2 * STEPS_PER_ITERATION) == {"max_steps": 20}
    assert preset("stag_hunt").env_options_at(0) == preset("stag_hunt").env_options  # no warm-up
    with pytest.raises(ValueError, match="warmup_env_options"):
        preset("stag_hunt", warmup_steps=10)
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        preset("stag_hunt", warmup_steps=-1)
    given = apply_overrides(preset("stag_hunt"), {"warmup_env_options.stag_min_hunters": 1, "warmup_steps": 5},
                            "--set")
    assert given.warmup_env_options == {"stag_min_hunters": 1} and given.warmup_steps == 5


def test_the_envs_switch_once_at_the_end_of_the_warm_up_and_the_agent_carries_on():
    trainer = build(curriculum())
    warm_env, params = trainer.env, list(trainer.agent.parameters())
    assert warm_env.options["stag_min_hunters"] == 1
    seen = []
    for _ in range(4):
        iterate(trainer)
        seen.append((trainer.env_steps, trainer.env.options["stag_min_hunters"], trainer.env is warm_env))
    assert seen == [(140, 1, True), (280, 2, False), (420, 2, False), (560, 2, False)]
    assert trainer.engine.env is trainer.env  # the engine steps the new envs
    assert all(a is b for a, b in zip(params, trainer.agent.parameters()))
    assert trainer.engine.counters()["policy_version"] == 2  # the new engine counts from the switch


def test_evaluations_play_the_real_env_during_the_warm_up():
    config = curriculum(warmup_env_options={"stag_reward": 0.0})  # a warm-up without stag rewards
    trainer = build(config)
    assert trainer.env.options["stag_reward"] == 0.0
    result = evaluate(trainer, 8)
    real = evaluate(build(config.replace(warmup_steps=0, warmup_env_options={})), 8)
    assert result["mean_return"] == real["mean_return"]  # same policy (same seed), same real episodes


@pytest.mark.parametrize("saved_at", [1, 3])  # in the warm-up, after the switch (at the end of iteration 2)
def test_resume_is_exact_on_either_side_of_the_switch(tmp_path, saved_at):
    straight = build(curriculum())
    for _ in range(4):
        iterate(straight)
    first = build(curriculum())
    for _ in range(saved_at):
        iterate(first)
    path = checkpoint.save(first, tmp_path / "mid.pt")
    resumed = build(curriculum())
    checkpoint.restore(resumed, checkpoint.load(path))
    assert resumed.env.options["stag_min_hunters"] == (1 if saved_at < 2 else 2)
    for _ in range(4 - saved_at):
        iterate(resumed)
    for key, value in straight.agent.state_dict().items():
        assert torch.equal(value, resumed.agent.state_dict()[key]), key
    assert straight.env._native.snapshot() == resumed.env._native.snapshot()
    assert straight.engine.counters() == resumed.engine.counters()
