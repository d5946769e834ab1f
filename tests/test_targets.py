"""The learner's pure parts against hand-computed cases: the paper's rewards, the bootstrap rules, GAE, the PPO
update against a plainly written reference loss, and the evaluation's skill clock against the native engine's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")

import hmasd.envs  # noqa: E402
from conftest import random_actions  # noqa: E402
from hmasd.algo import targets  # noqa: E402
from hmasd.algo.ppo import PPOLearner, PPOSettings, ppo_update  # noqa: E402
from hmasd.rollout import RolloutEngine  # noqa: E402
from hmasd.train.evaluation import SkillClock  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)


def t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ---- rewards ------------------------------------------------------------------------------------
@pytest.mark.parametrize("lambdas, expected", [
    ((1.0, 0.1, 0.2), [2.0 + 0.1 * -0.5 + 0.2 * -1.0, -1.0 + 0.1 * -0.5 + 0.2 * -3.0]),
    ((0.0, 0.1, 0.2), [0.1 * -0.5 + 0.2 * -1.0, 0.1 * -0.5 + 0.2 * -3.0]),  # Alice_and_Bob: intrinsic only
    ((1.0, 0.0, 0.2), [2.0 + 0.2 * -1.0, -1.0 + 0.2 * -3.0]),
    ((1.0, 0.1, 0.0), [2.0 + 0.1 * -0.5, -1.0 + 0.1 * -0.5]),
])
def test_low_level_reward_is_eq4_with_each_lambda(lambdas, expected):
    env_reward = t(2.0, -1.0).reshape(1, 1, 2)     # [T, E, N]: two agents
    log_q_team = t(-0.5).reshape(1, 1)              # the same for both agents
    log_q_indiv = t(-1.0, -3.0).reshape(1, 1, 2)
    reward = targets.low_level_reward(env_reward, log_q_team, log_q_indiv, *lambdas)
    torch.testing.assert_close(reward, t(*expected).reshape(1, 1, 2))


def test_high_level_reward_is_the_agent_mean_of_the_window_sums_on_every_token():
    sums = t(3.0, 1.0, 2.0, -4.0).reshape(2, 2)  # two windows, two agents
    torch.testing.assert_close(targets.high_level_reward(sums), t(2.0, 2.0, 2.0, -1.0, -1.0, -1.0).reshape(2, 3))


# ---- bootstrap values ---------------------------------------------------------------------------
def test_expected_barrier_value_weights_the_critic_by_the_team_skill_distribution():
    probs = t(0.25, 0.75, 1.0, 0.0).reshape(2, 2)
    values = t(2.0, 4.0, 10.0, -10.0).reshape(2, 2, 1)
    torch.testing.assert_close(targets.expected_barrier_value(probs, values), t(3.5, 10.0).reshape(2, 1))


def test_low_level_next_values_inside_an_episode_at_its_end_and_at_the_barrier():
    values = t(1.0, 2.0, 3.0).reshape(3, 1, 1)
    final = t(10.0, 20.0, 30.0).reshape(3, 1, 1)
    barrier = t(99.0).reshape(1, 1)
    # step 0 continues into step 1; the episode ends at step 1 (its true last state's value); step 2 runs on
    # into the next batch (the barrier's value)
    ended = torch.tensor([[False], [True], [False]])
    got = targets.low_level_next_values(values, final, ended, barrier)
    torch.testing.assert_close(got, t(2.0, 20.0, 99.0).reshape(3, 1, 1))
    # an episode that ends exactly at the barrier uses its final value, not the barrier's
    got = targets.low_level_next_values(values, final, torch.tensor([[False], [False], [True]]), barrier)
    torch.testing.assert_close(got, t(2.0, 3.0, 30.0).reshape(3, 1, 1))


def test_high_level_next_values_clock_closed_truncated_and_terminated_windows():
    # rows sorted by (env, start): env 0 has windows 0, 1 (clock-closed, then cut by the barrier), env 1 has
    # window 2 (terminated) and window 3 (episode time limit: truncated)
    values = t(1.0, 2.0, 3.0, 4.0).reshape(4, 1)
    boot = t(10.0, 20.0, 30.0, 40.0).reshape(4, 1)
    terminated = torch.tensor([False, False, True, False])
    truncated = torch.tensor([False, True, False, True])
    got = targets.high_level_next_values(values, boot, terminated, truncated)
    torch.testing.assert_close(got, t(2.0, 20.0, 30.0, 40.0).reshape(4, 1))


def test_chain_breaks_add_the_barrier():
    ended = torch.tensor([False, True, False, False])
    assert targets.chain_breaks_at_barrier(ended).tolist() == [False, True, False, True]
    assert ended.tolist() == [False, True, False, False]  # the input is left alone


# ---- GAE ----------------------------------------------------------------------------------------
GAMMA, LAM = 0.9, 0.8


def run_gae(ended_kind: str) -> torch.Tensor:
    """Two steps, V = 1 everywhere, rewards 1 and 2, next value 5 after the last step; the first step ends an
    episode of the given kind (or none)."""
    rewards, values, next_values = t(1.0, 2.0), t(1.0, 1.0), t(1.0, 5.0)
    terminated = torch.tensor([ended_kind == "terminated", False])
    breaks = torch.tensor([ended_kind != "none", True])  # the batch ends after step 1
    advantages, returns = targets.gae(rewards, values, next_values, terminated, breaks, GAMMA, LAM)
    torch.testing.assert_close(returns, advantages + values)
    return advantages


def test_gae_hand_computed_continuing_terminated_and_truncated():
    delta1 = 2.0 + GAMMA * 5.0 - 1.0                      # the barrier's bootstrap
    cont0 = 1.0 + GAMMA * 1.0 - 1.0
    torch.testing.assert_close(run_gae("none"), t(cont0 + GAMMA * LAM * delta1, delta1))
    torch.testing.assert_close(run_gae("terminated"), t(1.0 - 1.0, delta1))       # no bootstrap, no flow back
    torch.testing.assert_close(run_gae("truncated"), t(cont0, delta1))            # bootstrap, no flow back


def test_return_ends_adds_time_limits_only_when_they_do_not_bootstrap():
    terminated, time_limit = torch.tensor([True, False, False]), torch.tensor([False, True, False])
    assert targets.return_ends(terminated, time_limit, True).tolist() == [True, False, False]
    assert targets.return_ends(terminated, time_limit, False).tolist() == [True, True, False]


def test_a_time_limit_that_ends_the_return_gives_a_failed_episode_its_zero_return():
    # one episode of two steps, no reward, cut by the time limit; the critic says 0.9 everywhere
    rewards, values, final = torch.zeros(2), torch.full((2,), 0.9), torch.full((2,), 0.9)
    ended = torch.tensor([False, True])
    next_values = targets.low_level_next_values(values[:, None, None], final[:, None, None], ended[:, None],
                                                torch.zeros(1, 1))[:, 0, 0]
    breaks = targets.chain_breaks_at_barrier(ended)
    for bootstrap, expected_return in ((True, [GAMMA**2 * 0.9, GAMMA * 0.9]), (False, [0.0, 0.0])):
        ends = targets.return_ends(torch.zeros(2, dtype=torch.bool), ended, bootstrap)
        _, returns = targets.gae(rewards, values, next_values, ends, breaks, GAMMA, 1.0)
        torch.testing.assert_close(returns, t(*expected_return))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_gae_equals_the_discounted_sum_of_deltas_within_a_chain(length, seed):
    rng = np.random.default_rng(seed)
    rewards, values, next_values = (torch.from_numpy(rng.normal(size=length).astype(np.float32)) for _ in range(3))
    breaks = torch.zeros(length, dtype=torch.bool)
    breaks[-1] = True
    advantages, _ = targets.gae(rewards, values, next_values, torch.zeros(length, dtype=torch.bool), breaks,
                                GAMMA, LAM)
    deltas = (rewards + GAMMA * next_values - values).double()
    for i in range(length):
        expected = sum((GAMMA * LAM) ** (j - i) * deltas[j] for j in range(i, length))
        assert float(advantages[i]) == pytest.approx(float(expected), rel=1e-4, abs=1e-4)


# ---- the PPO update -----------------------------------------------------------------------------
def huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.where(x.abs() <= delta, 0.5 * x**2, delta * (x.abs() - 0.5 * delta))


def reference_loss(logp, old_logp, adv, entropy, values, old_values, returns, s: PPOSettings, entropy_coef):
    """Eq. 5 written out on its own: the clipped surrogate, the clipped Huber value loss, the entropy bonus."""
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - s.clip, 1 + s.clip) * adv)
    clipped_values = old_values + torch.clamp(values - old_values, -s.value_clip, s.value_clip)
    v_loss = torch.maximum(huber(values - returns, s.huber_delta), huber(clipped_values - returns, s.huber_delta))
    return -surrogate.mean() + s.value_coef * v_loss.mean() - entropy_coef * entropy.mean()


class TinyPolicy(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.pi, self.v = torch.nn.Linear(3, 4), torch.nn.Linear(3, 1)

    def evaluate(self, obs, actions):
        dist = torch.distributions.Categorical(logits=self.pi(obs))
        return dist.log_prob(actions), dist.entropy(), self.v(obs).squeeze(-1)


@pytest.mark.parametrize("learners", [1, 3])
def test_ppo_update_gradients_equal_the_reference_loss(learners):
    settings_ = PPOSettings(epochs=1, clip=0.2, value_clip=0.2, huber_delta=0.5, value_coef=0.7, max_grad_norm=1e9)
    rng = torch.Generator().manual_seed(0)
    nets = [TinyPolicy(seed) for seed in range(learners)]
    batches = []
    for net in nets:
        obs, actions = torch.randn(16, 3, generator=rng), torch.randint(0, 4, (16,), generator=rng)
        with torch.no_grad():
            logp, _, values = net.evaluate(obs, actions)
        # old log-probs and values away from the current ones, so that both clips are active on some rows
        old_logp = logp + 0.4 * torch.randn(16, generator=rng)
        batches.append(dict(obs=obs, actions=actions, old_logp=old_logp, adv=torch.randn(16, generator=rng),
                            old_values=values + 0.5 * torch.randn(16, generator=rng),
                            returns=torch.randn(16, generator=rng)))
    expected = []
    for net, b in zip(nets, batches):
        logp, entropy, values = net.evaluate(b["obs"], b["actions"])
        loss = reference_loss(logp, b["old_logp"], b["adv"], entropy, values, b["old_values"], b["returns"],
                              settings_, 0.05)
        expected.append(torch.autograd.grad(loss, list(net.parameters())))
    ppo_learners = [PPOLearner(evaluate=lambda net=net, b=b: net.evaluate(b["obs"], b["actions"]),
                               old_logp=b["old_logp"], advantages=b["adv"], old_values=b["old_values"],
                               returns=b["returns"], entropy_coef=0.05) for net, b in zip(nets, batches)]
    # lr 0: the step leaves the weights, and the gradients it used stay in .grad
    networks = [(torch.optim.Adam(net.parameters(), lr=0.0), net) for net in nets]
    stats = ppo_update(ppo_learners, networks, settings_)
    for net, grads in zip(nets, expected):
        for param, grad in zip(net.parameters(), grads):
            torch.testing.assert_close(param.grad, grad)  # each learner's gradient is its own loss's only
    assert 0.0 < float(stats["clipfrac"]) < 1.0


def test_ppo_update_moves_the_policy_towards_positive_advantages():
    net = TinyPolicy(0)
    obs, actions = torch.randn(64, 3), torch.zeros(64, dtype=torch.long)
    with torch.no_grad():
        old_logp, _, values = net.evaluate(obs, actions)
    learner = PPOLearner(evaluate=lambda: net.evaluate(obs, actions), old_logp=old_logp,
                         advantages=torch.ones(64), old_values=values, returns=values, entropy_coef=0.0)
    ppo_update([learner], [(torch.optim.Adam(net.parameters(), lr=1e-2), net)],
               PPOSettings(epochs=5, clip=0.2, value_clip=0.2, huber_delta=10.0, value_coef=1.0, max_grad_norm=10.0))
    with torch.no_grad():
        assert (net.evaluate(obs, actions)[0] > old_logp).float().mean() > 0.9


# ---- the evaluation's skill clock is the engine's -----------------------------------------------
@pytest.mark.parametrize("clock, horizon, k, max_steps", [("episode", 10, 4, 7), ("episode", 12, 3, 5),
                                                          ("global", 12, 4, 7), ("global", 9, 3, 4)])
def test_skill_clock_decides_exactly_when_the_engine_does(clock, horizon, k, max_steps):
    env = hmasd.envs.make("stag_hunt", num_envs=5, seed=3, max_steps=max_steps)
    env.reset()
    engine = RolloutEngine(env, horizon, k, 2, 2, clock=clock)
    skill_clock = SkillClock(clock, k, horizon, env.num_envs)
    rng = np.random.default_rng(0)
    n = env.num_agents
    decisions = 0
    for _ in range(3 * horizon):
        if engine.ready:
            engine.resume()
        ids = engine.decision_env_ids()
        np.testing.assert_array_equal(skill_clock.decision_env_ids(), ids)
        if len(ids):
            d = len(ids)
            engine.decide(ids, np.zeros(d, np.int32), np.zeros((d, n), np.int32), np.zeros((d, n + 1), np.float32),
                          np.zeros((d, n + 1), np.float32))
            skill_clock.decided(ids)
            decisions += d
        engine.step(random_actions(env, rng), np.zeros((5, n), np.float32), np.zeros((5, n), np.float32))
        skill_clock.stepped(env.terminated | env.truncated)
    assert decisions > 3 * env.num_envs  # windows closed inside batches too, not only at the barriers


def approx_kl_to(net: TinyPolicy, obs, actions, old_logp) -> float:
    with torch.no_grad():
        log_ratio = net.evaluate(obs, actions)[0] - old_logp
    return float(((log_ratio.exp() - 1) - log_ratio).mean())


def test_target_kl_stops_the_update_at_the_first_epoch_beyond_it():
    obs, actions = torch.randn(64, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(64, dtype=torch.long)
    with torch.no_grad():
        old_logp, _, values = TinyPolicy(0).evaluate(obs, actions)

    def trained(epochs: int, target_kl: float | None) -> tuple[TinyPolicy, int]:
        net = TinyPolicy(0)
        learner = PPOLearner(evaluate=lambda: net.evaluate(obs, actions), old_logp=old_logp,
                             advantages=torch.ones(64), old_values=values, returns=values, entropy_coef=0.0)
        stats = ppo_update([learner], [(torch.optim.Adam(net.parameters(), lr=3e-2), net)],
                           PPOSettings(epochs, 0.2, 0.2, 10.0, 1.0, 10.0, target_kl=target_kl))
        assert ("epochs" in stats) == (target_kl is not None)
        return net, int(stats.get("epochs", epochs))

    target = 0.01
    stopped, steps = trained(30, target)
    assert 1 < steps < 30
    # it is the plain update of that many epochs, beyond the target, and one epoch fewer was within it
    plain, _ = trained(steps, None)
    for a, b in zip(stopped.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert approx_kl_to(stopped, obs, actions, old_logp) > target
    assert approx_kl_to(trained(steps - 1, None)[0], obs, actions, old_logp) <= target
    assert trained(30, 10.0)[1] == 30  # a target never reached: every epoch
