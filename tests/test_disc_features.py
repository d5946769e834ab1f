"""The skill discriminators' inputs: the paper's raw s' / o_i', and stag_hunt's positions relative to the stag."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import hmasd.envs  # noqa: E402
from hmasd.algo.disc_features import disc_features  # noqa: E402
from hmasd.envs.stag_hunt_baselines import decode_state  # noqa: E402
from hmasd.train.config import preset  # noqa: E402
from hmasd.train.loop import build, collect, low_level_batch  # noqa: E402

GRID, N, H = 8, 4, 4


def stag_features(**options):
    env = hmasd.envs.make("stag_hunt", num_envs=16, seed=3, **options)
    return env, disc_features("stag_relative", "stag_hunt", dict(env.options), env.state_dim, env.obs_dim)


def state_of(agents: np.ndarray, stag: np.ndarray, hares: np.ndarray, t: float) -> np.ndarray:
    """A stag_hunt global state from cells (the env's layout: agents, stag, hares over grid_size - 1, then t/T)."""
    cells = np.concatenate([agents.reshape(-1), stag, hares.reshape(-1)]).astype(np.float32) / (GRID - 1)
    return np.append(cells, np.float32(t))


def test_team_features_are_every_agent_and_hare_offset_from_the_stag_and_the_time():
    env, features = stag_features()
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(rng.integers(0, env.num_actions, (env.num_envs, env.num_agents), dtype=np.int32))
        state = env.state.copy()
        grid = decode_state(state, GRID, N, H)
        expected = np.concatenate([(grid.agents - grid.stag[:, None]).reshape(16, -1),
                                   (grid.hares - grid.stag[:, None]).reshape(16, -1)], axis=1) / (GRID - 1)
        got = features.team(torch.from_numpy(state)).numpy()
        assert got.shape == (16, features.team_dim) == (16, 2 * N + 2 * H + 1)
        np.testing.assert_allclose(got[:, :-1], expected, atol=1e-6)
        np.testing.assert_array_equal(got[:, -1], state[:, -1])


def test_indiv_features_are_the_observation_without_the_agents_own_cell():
    env, features = stag_features()
    env.reset()
    obs = env.obs.copy()
    got = features.indiv(torch.from_numpy(obs)).numpy()
    assert got.shape == (*obs.shape[:-1], features.indiv_dim) and features.indiv_dim == env.obs_dim - 2
    np.testing.assert_array_equal(got, obs[..., 2:])


cells = st.tuples(st.integers(0, GRID - 1), st.integers(0, GRID - 1))


@settings(max_examples=60, deadline=None)
@given(st.lists(cells, min_size=N + 1 + H, max_size=N + 1 + H), cells, st.floats(0, 1, width=32))
def test_team_features_do_not_change_when_the_whole_grid_shifts(positions, shift, t):
    # the property that makes them "relative": moving every agent, hare and the stag by one offset is invisible
    # to q_D (cells are allowed off the 8 x 8 grid here; the features are linear in the positions)
    cells_now = np.array(positions, dtype=np.int64)
    moved = cells_now + np.array(shift)
    _, features = stag_features()

    def team(c: np.ndarray) -> np.ndarray:
        return features.team(torch.from_numpy(state_of(c[:N], c[N], c[N + 1:], t))[None]).numpy()

    np.testing.assert_allclose(team(cells_now), team(moved), atol=1e-5)
    alone = cells_now.copy()
    alone[0] += (1, 0)  # one agent moving alone is seen
    assert not np.allclose(team(cells_now), team(alone), atol=1e-5)


def test_the_agent_scores_and_trains_its_discriminators_on_the_features():
    trainer = build(preset("stag_hunt", disc_features="stag_relative", num_envs=4, torch_threads=1))
    agent = trainer.agent
    assert agent.team_disc.base.net[0].normalized_shape == (agent.features.team_dim,)
    assert agent.indiv_disc.base.net[0].normalized_shape == (agent.features.indiv_dim + agent.config.num_team_skills,)
    collect(trainer)
    _, disc_batch, _ = low_level_batch(trainer)
    team, _ = agent.intrinsic_rewards(disc_batch.next_state, disc_batch.next_obs.reshape(-1, 4, trainer.env.obs_dim),
                                      disc_batch.team_skill, disc_batch.indiv_skill.reshape(-1, 4))
    with torch.no_grad():
        direct = torch.log_softmax(agent.team_disc(agent.features.team(disc_batch.next_state)), -1)
    torch.testing.assert_close(team, direct.gather(-1, disc_batch.team_skill.long()[:, None])[:, 0])
    stats = agent.update_discriminator("team", disc_batch, True)
    assert torch.isfinite(stats["team_loss"])


def test_raw_features_are_the_default_and_the_others_refuse_other_envs():
    assert preset("stag_hunt").disc_features == "raw"
    trainer = build(preset("quickstart", num_envs=2, torch_threads=1))
    assert trainer.agent.team_disc.base.net[0].normalized_shape == (trainer.env.state_dim,)
    with pytest.raises(ValueError, match="stag_hunt"):
        preset("alice_and_bob", disc_features="stag_relative")
    with pytest.raises(ValueError, match="disc_features must be one of"):
        preset("stag_hunt", disc_features="relative")
    with pytest.raises(ValueError, match="global state"):
        disc_features("stag_relative", "stag_hunt", {"num_agents": 4, "num_hares": 3}, 19, 19)
