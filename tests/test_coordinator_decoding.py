"""SkillCoordinator.act (incremental decoding with cached keys and values) against act_reference (the whole sequence
decoded again for every token) and teacher-forced evaluate: the same skills from the same RNG state, the same
log-probs and values, masked skills never drawn, the first token drawn by its probabilities, and each position's
logits those of decode on the full shifted input."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the coordinator needs the train extra (torch); CI installs it")

from hmasd.algo.coordinator import MASKED, IncrementalDecoder, SkillCoordinator, sample  # noqa: E402

# trainer: deselected by the sanitizer job (.ci/sanitize); one torch thread (tests/conftest.py): on a busy 2-core
# machine parallel ops on these small tensors stall
pytestmark = [pytest.mark.trainer, pytest.mark.usefixtures("one_torch_thread")]

# act and the reference compute the same maths in different orders: float rounding, amplified by the weights
TOLERANCE = {"atol": 1e-6, "rtol": 1e-5}
STATE_DIM, OBS_DIM = 9, 6

# n_block, n_head, agents (N), n_Z, n_z, agent_pos_embedding
CONFIGS = [
    (1, 1, 2, 2, 4, False),  # alice_and_bob's coordinator
    (1, 1, 5, 3, 3, False),  # uav_seed_parity's
    (2, 2, 5, 3, 3, True),
    (2, 1, 1, 5, 2, True),  # one agent, n_Z > n_z
    (1, 2, 3, 2, 6, False),  # n_z > n_Z
]
CONFIG_IDS = [f"blocks{b}-heads{h}-N{n}-Z{nz}-z{ni}{'-pos' if p else ''}" for b, h, n, nz, ni, p in CONFIGS]


def coordinator(config: tuple, perturbation: float = 0.0, seed: int = 0) -> SkillCoordinator:
    """A coordinator at its initialisation, its weights then moved by Gaussian noise of the given scale: the init
    alone has near-uniform heads (gain 0.01) and zero biases and position embeddings, which would hide mistakes."""
    n_block, n_head, agents, n_team, n_indiv, position = config
    torch.manual_seed(seed)
    net = SkillCoordinator(STATE_DIM, OBS_DIM, agents, n_team, n_indiv, n_head=n_head, n_block=n_block,
                           agent_pos_embedding=position)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(perturbation * torch.randn_like(parameter))
    return net


def inputs(net: SkillCoordinator, batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, STATE_DIM, generator=generator),
            torch.randn(batch, net.num_agents, OBS_DIM, generator=generator))


@pytest.mark.parametrize("perturbation", [0.0, 0.05, 0.1])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_act_draws_what_the_reference_draws(config, perturbation):
    net = coordinator(config, perturbation)
    state, obs = inputs(net, 64)
    parameters = {k: v.clone() for k, v in net.state_dict().items()}
    for deterministic in (False, True):
        torch.manual_seed(7)
        skills, logp, values = net.act(state, obs, deterministic)
        rng_after = torch.get_rng_state()
        torch.manual_seed(7)
        ref_skills, ref_logp, ref_values = net.act_reference(state, obs, deterministic)
        assert skills.dtype == torch.int64 and skills.shape == logp.shape == values.shape == (64, net.num_agents + 1)
        assert torch.equal(skills, ref_skills), deterministic
        torch.testing.assert_close(logp, ref_logp, **TOLERANCE)
        torch.testing.assert_close(values, ref_values, **TOLERANCE)
        assert torch.equal(rng_after, torch.get_rng_state())  # the global generator advanced alike
        assert not (logp.requires_grad or values.requires_grad)
    # act keeps no state in the module: its parameters and buffers (what checkpoints save) are as they were
    assert net.state_dict().keys() == parameters.keys()
    assert all(torch.equal(v, parameters[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_teacher_forced_evaluate_scores_the_skills_act_drew(config):
    net = coordinator(config, 0.1, seed=2)
    state, obs = inputs(net, 128, seed=3)
    skills, logp, values = net.act(state, obs)
    forced_logp, entropy, forced_values = net.evaluate(state, obs, skills)
    torch.testing.assert_close(forced_logp, logp, **TOLERANCE)
    torch.testing.assert_close(forced_values, values, **TOLERANCE)
    assert torch.all(entropy >= 0)


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[2]], ids=[CONFIG_IDS[1], CONFIG_IDS[2]])
def test_each_position_sees_exactly_its_prefix(config):
    """Per-position logits of the incremental decoder against decode on the full shifted input, for arbitrary
    (not drawn) skill sequences: a key or value cached at the wrong position, or one missing, changes the logits
    from position 2 on, where the prefix holds two choices."""
    net = coordinator(config, 0.1, seed=4)
    state, obs = inputs(net, 64, seed=5)
    tokens = net.num_agents + 1
    generator = torch.Generator().manual_seed(6)
    skills = torch.randint(0, net.num_indiv_skills, (64, tokens), generator=generator)
    skills[:, 0] = torch.randint(0, net.num_team_skills, (64,), generator=generator)
    with torch.no_grad():
        rep, _ = net.encode(state, obs)
        full = net.decode(net.shifted_input(skills), rep)
        decoder = IncrementalDecoder(net, rep)
        for i in range(tokens):
            logits = decoder.logits(i, skills[:, i - 1:i] if i else None)
            valid = ~net.invalid[i]
            torch.testing.assert_close(logits[:, valid], full[:, i, valid], **TOLERANCE)
            assert torch.all(logits[:, ~valid] <= MASKED / 2)
    # the check has teeth: another first choice changes every later position's logits
    other = skills.clone()
    other[:, 0] = (other[:, 0] + 1) % net.num_team_skills
    with torch.no_grad():
        moved = net.decode(net.shifted_input(other), rep)
    assert (moved[:, 2:] - full[:, 2:]).abs().amax(dim=(0, 2)).min() > 1e-3


@pytest.mark.parametrize("n_team, n_indiv", [(3, 5), (5, 2)])
def test_masked_skills_are_never_drawn_and_the_first_token_follows_its_probabilities(n_team, n_indiv):
    draws = 10_000
    net = coordinator((1, 1, 3, n_team, n_indiv, False), 0.3, seed=8)
    state, obs = inputs(net, 1, seed=9)
    state, obs = state.expand(draws, -1), obs.expand(draws, -1, -1)  # one distribution, many draws
    with torch.no_grad():
        rep, _ = net.encode(state[:1], obs[:1])
        probs = net.decode(net.shifted_input(torch.zeros(1, 4, dtype=torch.long)), rep)[0, 0].softmax(-1)
    assert probs[n_team:].sum() == 0 and probs.max() - probs.min() > 0.1  # far from uniform: a wrong sampler shows
    torch.manual_seed(10)
    skills, _, _ = net.act(state, obs)
    assert skills.min() >= 0 and skills[:, 0].max() < n_team and skills[:, 1:].max() < n_indiv
    counts = torch.bincount(skills[:, 0], minlength=n_team).double()
    expected = draws * probs[:n_team].double()
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < 30.0, (counts, expected)  # df <= 4: P(chi2 > 30) < 1e-5


def test_sample_draws_what_torch_multinomial_draws():
    generator = torch.Generator().manual_seed(11)
    probs = torch.rand(257, 6, generator=generator)
    probs[:, 4:] = 0.0  # masked skills
    probs /= probs.sum(-1, keepdim=True)
    torch.manual_seed(12)
    draws = sample(probs)
    rng_after = torch.get_rng_state()
    torch.manual_seed(12)
    assert torch.equal(draws, torch.multinomial(probs, 1, True))
    assert torch.equal(rng_after, torch.get_rng_state())
    assert draws.shape == (257, 1) and draws.max() < 4
