"""Draws keyed by env (hmasd.algo.draws): a policy's random choices for an env do not depend on which other envs are in
the batch or which process steps it; with every env in order they are the plain draws of before."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hmasd.algo.agent import EnvDims, HMASDAgent  # noqa: E402
from hmasd.algo.config import AlgoConfig  # noqa: E402
from hmasd.algo.draws import EnvRows, sample_rows  # noqa: E402
from hmasd.train.config import TrainConfig  # noqa: E402
from hmasd.train.loop import build, decide  # noqa: E402

pytestmark = pytest.mark.trainer
DISCRETE = EnvDims(num_agents=3, obs_dim=5, state_dim=7, num_actions=4)
CONTINUOUS = EnvDims(num_agents=3, obs_dim=5, state_dim=7, num_actions=0, action_dim=2)


def agent(dims: EnvDims) -> HMASDAgent:
    torch.manual_seed(0)
    return HMASDAgent(dims, AlgoConfig(num_team_skills=3, num_indiv_skills=2, hidden=8, n_embd=8))


def low_inputs(dims: EnvDims, envs: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(5)
    obs = torch.randn(envs, dims.num_agents, dims.obs_dim, generator=g)
    skill = torch.randint(2, (envs, dims.num_agents), generator=g)
    mask = torch.rand(envs, dims.num_agents, max(dims.num_actions, 0), generator=g) > 0.3
    mask[..., :1] = True
    return obs, skill, mask, torch.randn(envs, dims.state_dim, generator=g), torch.randint(3, (envs,), generator=g)


def test_all_envs_in_order_draw_exactly_the_plain_draws():
    probs = torch.rand(12, 5).softmax(-1)
    state = torch.get_rng_state()
    plain = torch.multinomial(probs, 1, True)[:, 0]
    torch.set_rng_state(state)
    keyed = sample_rows(probs, EnvRows.block(0, 4, 4).exponential(3, 5, "cpu"))
    assert torch.equal(plain, keyed)
    mean, std = torch.randn(12, 2), torch.rand(12, 2) + 0.1
    torch.set_rng_state(state)
    plain = torch.normal(mean, std)
    torch.set_rng_state(state)
    assert torch.equal(plain, EnvRows.block(0, 4, 4).normal(3, 2, "cpu").mul(std).add(mean))


@pytest.mark.parametrize("dims", [DISCRETE, CONTINUOUS], ids=["discrete", "continuous"])
@settings(max_examples=25, deadline=None)
@given(total=st.integers(2, 9), cut=st.data())
def test_low_level_actions_of_a_split_batch_are_those_of_the_whole(dims, total, cut):
    split = cut.draw(st.integers(1, total - 1))
    net, inputs = agent(dims), low_inputs(dims, total)
    torch.manual_seed(11)
    whole = net.act_low(*inputs, draws=EnvRows.block(0, total, total))[0]
    parts = []
    for first, count in ((0, split), (split, total - split)):  # each "rank" from the same RNG state
        torch.manual_seed(11)
        rows = slice(first, first + count)
        parts.append(net.act_low(*(x[rows] for x in inputs), draws=EnvRows.block(first, count, total))[0])
    if dims.continuous:  # the same noise; the means agree to rounding (a matmul's last bit can follow batch size)
        torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-6, atol=1e-6)
    else:
        assert torch.equal(torch.cat(parts), whole)


@settings(max_examples=25, deadline=None)
@given(total=st.integers(2, 9), picked=st.data())
def test_a_decision_for_some_envs_draws_what_it_draws_for_those_envs_among_all(total, picked):
    ids = picked.draw(st.lists(st.integers(0, total - 1), min_size=1, max_size=total, unique=True).map(sorted))
    coordinator = agent(DISCRETE).coordinator
    obs, _, _, state, _ = low_inputs(DISCRETE, total)
    every = EnvRows.block(0, total, total)
    torch.manual_seed(3)
    all_skills = coordinator.act(state, obs, draws=every)[0]
    torch.manual_seed(3)
    index = torch.tensor(ids)
    some_skills = coordinator.act(state[index], obs[index], draws=every.pick(index))[0]
    assert torch.equal(some_skills, all_skills[index])


def test_no_high_draws_each_envs_skills_whatever_else_decides():
    trainer = build(TrainConfig(env="stag_hunt", algo="no_high", num_envs=6, horizon=14, skill_interval=7,
                                hidden=8, n_embd=8, num_team_skills=3, num_indiv_skills=3))
    state, obs = torch.zeros(6, trainer.env.state_dim), torch.zeros(6, trainer.env.num_agents, trainer.env.obs_dim)
    every = EnvRows.block(0, 6, 6)
    trainer.generator.manual_seed(9)
    all_skills = decide(trainer, state, obs, draws=every)[0]
    index = torch.tensor([1, 4])
    trainer.generator.manual_seed(9)
    some = decide(trainer, state[index], obs[index], draws=every.pick(index))[0]
    np.testing.assert_array_equal(some, all_skills[[1, 4]])
    assert len(np.unique(all_skills, axis=0)) > 1  # the envs do get different skills
