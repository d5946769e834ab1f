"""The HMASD learner: coordinator decoding, masking, intrinsic rewards, GAE, targets, and honest learning checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")

from hmasd.algo.coordinator import SkillCoordinator  # noqa: E402
from hmasd.algo.targets import gae  # noqa: E402
from hmasd.train import preset  # noqa: E402
from hmasd.train.evaluation import EpisodePolicy, evaluate  # noqa: E402
from hmasd.train.loop import build, collect, high_level_batch, iterate, low_level_batch  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)


@pytest.mark.parametrize("n_team, n_indiv, agents", [(2, 4, 2), (5, 2, 3), (3, 3, 1)])
def test_autoregressive_log_probs_equal_teacher_forced_ones(n_team, n_indiv, agents):
    torch.manual_seed(0)
    net = SkillCoordinator(state_dim=7, obs_dim=5, num_agents=agents, num_team_skills=n_team,
                           num_indiv_skills=n_indiv, agent_pos_embedding=True)
    state, obs = torch.randn(64, 7), torch.randn(64, agents, 5)
    skills, logp, values = net.act(state, obs)
    forced_logp, entropy, forced_values = net.evaluate(state, obs, skills)
    torch.testing.assert_close(forced_logp, logp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(forced_values, values)
    assert torch.all(entropy >= 0)
    # a different skill sequence has different log-probs: teacher forcing really conditions on the prefix
    other = skills.clone()
    other[:, 0] = (other[:, 0] + 1) % n_team
    assert not torch.allclose(net.evaluate(state, obs, other)[0][:, 1:], logp[:, 1:])


@pytest.mark.parametrize("n_team, n_indiv", [(2, 6), (6, 2)])
def test_masked_logits_never_produce_an_invalid_skill(n_team, n_indiv):
    torch.manual_seed(1)
    net = SkillCoordinator(state_dim=4, obs_dim=3, num_agents=3, num_team_skills=n_team, num_indiv_skills=n_indiv)
    with torch.no_grad():  # flatten the head so that invalid skills would be drawn often if not masked
        net.policy_head[-1].weight.zero_()
        net.policy_head[-1].bias.zero_()
    skills, logp, _ = net.act(torch.randn(4000, 4), torch.randn(4000, 3, 3))
    assert skills[:, 0].max() == n_team - 1 and skills[:, 0].min() == 0
    assert skills[:, 1:].max() == n_indiv - 1
    torch.testing.assert_close(logp[:, 0], torch.full((4000,), -np.log(n_team), dtype=torch.float32))
    _, entropy, _ = net.evaluate(torch.randn(8, 4), torch.randn(8, 3, 3), skills[:8])
    torch.testing.assert_close(entropy[:, 1], torch.full((8,), float(np.log(n_indiv))), atol=1e-5, rtol=0)


def test_gae_matches_a_hand_computed_example():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([1.0, 0.0, 2.0, 1.0])
    values = torch.tensor([0.5, 1.0, 1.5, 2.0])
    # step 1 truncates (bootstrap from its final state's value 3.0), step 3 terminates, the batch ends after it
    next_values = torch.tensor([1.0, 3.0, 2.0, 7.0])
    terminated = torch.tensor([False, False, False, True])
    breaks = torch.tensor([False, True, False, True])
    adv, ret = gae(rewards, values, next_values, terminated, breaks, gamma, lam)
    d3 = 1.0 - 2.0
    d2 = 2.0 + 0.9 * 2.0 - 1.5
    d1 = 0.0 + 0.9 * 3.0 - 1.0
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    expected = torch.tensor([d0 + 0.45 * d1, d1, d2 + 0.45 * d3, d3])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def small_trainer(algo="hmasd", **overrides):
    settings = {"num_envs": 8, "total_steps": 10_000, "eval_interval": 0, "seed": 3, "env_options": {"max_steps": 12},
                **overrides}
    return build(preset("stag_hunt", algo=algo, **settings))


def test_intrinsic_reward_is_the_discriminators_log_softmax_at_the_next_state():
    trainer = small_trainer(lambda_env=0.0, lambda_team=1.0, lambda_indi=0.0)
    collect(trainer)
    batch, disc, _ = low_level_batch(trainer)
    next_obs, next_state = trainer.engine.next_observations()
    low = trainer.engine.low_level()
    s = torch.from_numpy(next_state.reshape(-1, next_state.shape[-1]))
    team = torch.from_numpy(low["team_skill"].reshape(-1)).long()
    with torch.no_grad():
        expected_team = torch.log_softmax(trainer.agent.team_disc(s), -1)[torch.arange(len(team)), team]
    torch.testing.assert_close(disc.next_state, s)
    # with lambda_e = lambda_d = 0 the low-level reward is exactly lambda_D log q_D(Z | s')
    trainer2 = small_trainer(lambda_env=0.0, lambda_team=0.0, lambda_indi=1.0)
    collect(trainer2)
    o = torch.from_numpy(trainer2.engine.next_observations()[0])
    low2 = trainer2.engine.low_level()
    z_team = torch.from_numpy(low2["team_skill"]).long()
    z_indiv = torch.from_numpy(low2["indiv_skill"]).long()
    onehot = torch.nn.functional.one_hot(z_team, trainer2.config.num_team_skills).float()
    x = torch.cat([o, onehot.unsqueeze(-2).expand(*o.shape[:-1], -1)], -1)
    with torch.no_grad():
        expected_indiv = torch.log_softmax(trainer2.agent.indiv_disc(x), -1).gather(-1, z_indiv.unsqueeze(-1))[..., 0]
    r_team, r_indiv = trainer.agent.intrinsic_rewards(s, torch.zeros(len(s), 2, trainer.env.obs_dim), team,
                                                      torch.zeros(len(s), 2, dtype=torch.long))
    torch.testing.assert_close(r_team, expected_team)
    r_team2, r_indiv2 = trainer2.agent.intrinsic_rewards(torch.from_numpy(trainer2.engine.next_observations()[1]), o,
                                                         z_team, z_indiv)
    torch.testing.assert_close(r_indiv2, expected_indiv)
    assert expected_team.max() <= 0 and expected_indiv.max() <= 0  # log-probabilities, no prior baseline


def test_targets_draw_no_random_numbers_and_bootstrap_the_barrier_with_the_expected_team_skill_value():
    trainer = small_trainer()
    collect(trainer)
    rng_state, generator_state = torch.get_rng_state(), trainer.generator.get_state()
    low_level_batch(trainer)
    high_level_batch(trainer)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.equal(trainer.generator.get_state(), generator_state)
    agent, windows = trainer.agent, trainer.engine.windows
    state, obs = torch.from_numpy(windows["bootstrap_state"]), torch.from_numpy(windows["bootstrap_obs"])
    probs = agent.team_skill_probs(state, obs)
    # the marginal of Z is the coordinator's first token: what act() scores the Z it draws with
    skills, logp, _ = agent.coordinator.act(state, obs)
    torch.testing.assert_close(probs.gather(1, skills[:, :1]).log(), logp[:, :1])
    e = state.shape[0]
    expected = sum(probs[:, z, None] * agent.critic_values(state, torch.full((e,), z))
                   for z in range(trainer.config.num_team_skills))
    torch.testing.assert_close(agent.barrier_values(state, probs), expected)


def test_updates_side_by_side_give_exactly_what_updates_in_turn_give():
    runs = []
    for parallel in (True, False):
        trainer = small_trainer(parallel_updates=parallel, torch_threads=1)  # one thread per update either way
        assert (trainer.update_pool is not None) == parallel
        metrics = [iterate(trainer) for _ in range(2)][-1]
        runs.append(({k: v for k, v in metrics.items() if k.startswith("Losses/")},
                     [p.detach().clone() for p in trainer.agent.parameters()]))
    (losses_a, params_a), (losses_b, params_b) = runs
    assert losses_a == losses_b and len(losses_a) >= 15  # coordinator, discoverer, discriminators
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b))


def test_low_entropy_coef_moves_linearly_to_its_final_value():
    config = preset("stag_hunt", total_steps=1000, low_entropy_coef=0.01, low_entropy_coef_final=0.0)
    assert [config.low_entropy_coef_at(s) for s in (0, 250, 1000, 5000)] == pytest.approx([0.01, 0.0075, 0.0, 0.0])
    assert preset("stag_hunt", low_entropy_coef=0.01).low_entropy_coef_at(10**9) == 0.01  # None: constant
    with pytest.raises(ValueError, match="low_entropy_coef_final"):
        preset("stag_hunt", low_entropy_coef_final=-0.1)


def test_the_discoverer_update_uses_the_scheduled_entropy_coef():
    # total_steps is one iteration, so its update is at the end of the schedule: lambda_l = the final value
    one_iteration = 8 * 35
    def params_after_one_update(**overrides):
        trainer = small_trainer(total_steps=one_iteration, torch_threads=1, **overrides)
        metrics = iterate(trainer)
        return metrics.get("Training/LowEntropyCoef"), [p.detach().clone() for p in trainer.agent.parameters()]

    coef, scheduled = params_after_one_update(low_entropy_coef=0.5, low_entropy_coef_final=0.0)
    assert coef == 0.0
    no_schedule, constant_final = params_after_one_update(low_entropy_coef=0.0)
    assert no_schedule is None  # logged only when lambda_l moves (the recorded runs' metrics stay as they were)
    _, constant_start = params_after_one_update(low_entropy_coef=0.5)
    assert all(torch.equal(a, b) for a, b in zip(scheduled, constant_final))
    assert not all(torch.equal(a, b) for a, b in zip(scheduled, constant_start))


def test_lr_moves_linearly_to_its_final_value():
    config = preset("stag_hunt", total_steps=1000, lr=1e-3, lr_final=0.0)
    assert [config.lr_at(s) for s in (0, 250, 1000, 5000)] == pytest.approx([1e-3, 7.5e-4, 0.0, 0.0])
    assert preset("stag_hunt", lr=1e-3).lr_at(10**9) == 1e-3  # None: constant
    with pytest.raises(ValueError, match="lr_final"):
        preset("stag_hunt", lr_final=-1e-4)


def test_every_update_uses_the_scheduled_learning_rate():
    # total_steps is one iteration, so its update is at the end of the schedule: the rate is lr_final
    one_iteration = 8 * 35
    def params_after_one_update(**overrides):
        trainer = small_trainer(total_steps=one_iteration, torch_threads=1, **overrides)
        metrics = iterate(trainer)
        rates = {opt.param_groups[0]["lr"] for opt in trainer.agent.optimizers.values()}
        return metrics.get("Training/LR"), rates, [p.detach().clone() for p in trainer.agent.parameters()]

    logged, rates, scheduled = params_after_one_update(lr=1e-3, lr_final=2e-4)
    assert logged == pytest.approx(2e-4) and rates == {logged}
    no_schedule, _, constant_final = params_after_one_update(lr=2e-4)
    assert no_schedule is None  # logged only when the rate moves (the recorded runs' metrics stay as they were)
    _, _, constant_start = params_after_one_update(lr=1e-3)
    assert all(torch.equal(a, b) for a, b in zip(scheduled, constant_final))
    assert not all(torch.equal(a, b) for a, b in zip(scheduled, constant_start))


def test_high_level_reward_is_the_sum_of_the_window_env_rewards():
    trainer = small_trainer()
    collect(trainer)
    batch, _ = high_level_batch(trainer)
    high, low = trainer.engine.high_level(), trainer.engine.low_level()
    for j in range(len(high["env"])):
        e, s, length = high["env"][j], high["start"][j], high["length"][j]
        window = low["rewards"][s:s + length, e].astype(np.float64).sum(0).mean()
        assert abs(float(batch.rewards[j]) - window) < 1e-5
    assert batch.skills.shape == (len(high["env"]), trainer.env.num_agents + 1)
    torch.testing.assert_close(batch.returns - batch.advantages,
                               trainer.agent.high_value_norm.denormalize(batch.old_values))


def test_ablations_switch_the_right_parts_off():
    def params(module):
        return [p.detach().clone() for p in module.parameters()]

    for algo, frozen in [("no_high", "coordinator"), ("no_team", "team_disc"), ("no_indi", "indiv_disc"),
                         ("mappo", "team_disc")]:
        trainer = small_trainer(algo)
        module = getattr(trainer.agent, frozen)
        before = params(module)
        actor_before = params(trainer.agent.actor)
        metrics = iterate(trainer)
        assert all(torch.equal(a, b) for a, b in zip(before, params(module))), f"{algo} trained {frozen}"
        assert not all(torch.equal(a, b) for a, b in zip(actor_before, params(trainer.agent.actor)))
        assert metrics["Sync/PolicyVersion"] == 1.0
    assert trainer.config.num_team_skills == 1 and trainer.config.lambda_env == 1.0  # mappo is flat


def test_every_sample_of_a_batch_has_the_current_policy_version():
    trainer = small_trainer()
    for version in range(3):
        collect(trainer)
        assert np.all(trainer.engine.low_level()["policy_version"] == version)
        trainer.engine.resume()


def test_evaluation_lists_every_episode_return_in_env_order():
    trainer = small_trainer()
    four = evaluate(trainer, 4, seed=3)
    assert len(four["episode_returns"]) == 4
    assert np.mean(four["episode_returns"]) == pytest.approx(four["mean_reward"])
    two = evaluate(trainer, 2, seed=3)
    assert two["episode_returns"] == four["episode_returns"][:2]  # copies 0-1: same episodes
    assert four["episode_info"] == {}  # stag_hunt's episode fields are all per agent
    alice = build(preset("alice_and_bob", num_envs=4, total_steps=10_000, eval_interval=0, seed=3,
                         env_options={"max_steps": 12}))
    four, two = evaluate(alice, 4, seed=3), evaluate(alice, 2, seed=3)
    metrics = four["episode_info"]
    assert sorted(metrics) == ["diamonds_collected", "success_rate"]  # under the names of the means
    for key, values in metrics.items():  # every scalar episode-info field, per episode, averaging to its mean
        assert len(values) == 4 and np.mean(values) == pytest.approx(four[key]), key
        assert two["episode_info"][key] == values[:2], key


def test_evaluation_can_take_argmax_skills_with_sampled_actions():
    """low_deterministic=False: the coordinator's argmax skills, the actions drawn from the low-level policy (what
    tells a failing low-level argmax from a failing coordinator)."""
    import hmasd.envs

    trainer = small_trainer()
    env = hmasd.envs.make("stag_hunt", num_envs=32, seed=4, max_steps=12)
    env.reset()
    obs, state, mask = (torch.from_numpy(a) for a in (env.obs, env.state, env.action_mask))
    argmax = EpisodePolicy(trainer, 32, deterministic=True)
    mixed = EpisodePolicy(trainer, 32, deterministic=True, low_deterministic=False, seed=8)
    argmax_actions = argmax.act(obs, state, mask)
    training_rng = torch.get_rng_state()
    mixed_actions = mixed.act(obs, state, mask)
    assert torch.equal(torch.get_rng_state(), training_rng)  # the policy draws from a stream of its own
    assert torch.equal(mixed.team, argmax.team) and torch.equal(mixed.indiv, argmax.indiv)
    torch.manual_seed(8)
    drawn = trainer.agent.act_low(obs, mixed.indiv, mask, state, mixed.team, deterministic=False)[0]
    assert torch.equal(mixed_actions, drawn)
    again = EpisodePolicy(trainer, 32, deterministic=True, low_deterministic=False, seed=8)
    assert torch.equal(again.act(obs, state, mask), mixed_actions)
    assert not torch.equal(mixed_actions, argmax_actions)  # 32 x 4 near-uniform draws never all hit the argmax
    assert torch.equal(argmax.act(obs, state, mask), argmax_actions)  # argmax actions do not move with the RNG
    training_rng = torch.get_rng_state()
    sampled = evaluate(trainer, 16, seed=3, deterministic=False)
    assert torch.equal(torch.get_rng_state(), training_rng)
    assert evaluate(trainer, 16, seed=3, deterministic=False) == sampled


def mean_return(trainer, seed=777) -> float:
    return evaluate(trainer, 64, seed=seed, deterministic=False)["mean_reward"]


@pytest.mark.learning
def test_hmasd_learns_stag_hunt_and_its_discriminators_beat_chance():
    config = preset("stag_hunt", num_envs=32, total_steps=32 * 35 * 45, eval_interval=0, seed=11)
    trainer = build(config)
    before = np.mean([mean_return(trainer, s) for s in (1, 2)])
    metrics = {}
    while trainer.env_steps < config.total_steps:
        metrics = iterate(trainer)
    after = np.mean([mean_return(trainer, s) for s in (1, 2)])
    assert after > before + 0.5, (before, after)
    assert metrics["Losses/Discriminator/team_accuracy"] > 1 / config.num_team_skills + 0.1
    assert metrics["Losses/Discriminator/indiv_accuracy"] > 1 / config.num_indiv_skills + 0.1


@pytest.mark.learning
def test_mappo_learns_stag_hunts_hares():
    config = preset("stag_hunt", algo="mappo", num_envs=32, total_steps=32 * 35 * 30, eval_interval=0, seed=5)
    trainer = build(config)
    before = evaluate(trainer, 64, seed=9, deterministic=False)
    while trainer.env_steps < config.total_steps:
        iterate(trainer)
    after = evaluate(trainer, 64, seed=9, deterministic=False)
    assert np.mean(after["hares"]) > np.mean(before["hares"]) + 0.5, (before["hares"], after["hares"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch on this machine")
def test_one_iteration_on_cuda():
    trainer = small_trainer(device="cuda")
    metrics = iterate(trainer)
    assert next(trainer.agent.parameters()).is_cuda and metrics["Sync/PolicyVersion"] == 1.0


def recurrent_trainer(**overrides):
    return small_trainer(recurrent=True, chunk_length=6, horizon=36, skill_interval=4, **overrides)


def test_recurrent_chunks_replay_the_rollout_exactly():
    from hmasd.algo.agent import to_chunks

    trainer = recurrent_trainer()
    iterate(trainer)  # a second batch starts from carried-over hidden states
    collect(trainer)
    batch, _, _ = low_level_batch(trainer)
    def replay(batch):  # what the PPO update re-scores: log-probs and values of the stored steps
        learner = trainer.agent.low_learner(trainer.agent.learners[0], batch, batch.returns,
                                             trainer.config.low_entropy_coef)
        logp, _, values = learner.evaluate()
        return logp, values

    logp, values = replay(batch)
    torch.testing.assert_close(logp, to_chunks(batch.old_logp, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(values, to_chunks(batch.old_values, 6), atol=1e-5, rtol=0)
    # the replay depends on the stored chunk-start states: zeroing them changes the result
    batch.actor_hidden = torch.zeros_like(batch.actor_hidden)
    assert not torch.allclose(replay(batch)[0], logp, atol=1e-4)


def test_recurrent_state_resets_at_episode_starts_and_not_at_skill_switches():
    trainer = recurrent_trainer()
    collect(trainer)
    low, log = trainer.engine.low_level(), trainer.hidden_log
    ended = torch.from_numpy(low["terminated"] | low["truncated"])
    # a step starts an episode exactly when the previous step ended one (the first batch starts fresh)
    assert log["starts"][0].all()
    assert torch.equal(log["starts"][1:], ended[:-1])
    high = trainer.engine.high_level()
    switches = [(s, e) for s, e in zip(high["start"], high["env"]) if s > 0 and not ended[s - 1, e]]
    assert switches, "no skill switch inside an episode: the test would be vacuous"
    for s, e in switches:  # the carried state is not zeroed when a new skill window opens mid-episode
        assert log["actor"][s, e].abs().sum() > 0 and log["critic"][s, e].abs().sum() > 0
        assert not log["starts"][s, e]


def test_recurrent_resume_is_exact(tmp_path):
    from hmasd.train import checkpoint

    straight = recurrent_trainer()
    for _ in range(4):
        iterate(straight)
    first = recurrent_trainer()
    for _ in range(2):
        iterate(first)
    path = checkpoint.save(first, tmp_path / "gru.pt")
    resumed = recurrent_trainer()
    checkpoint.restore(resumed, checkpoint.load(path))
    for _ in range(2):
        iterate(resumed)
    for (name, a), b in zip(straight.agent.state_dict().items(), resumed.agent.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(straight.actor_hidden, resumed.actor_hidden)


@pytest.mark.parametrize("algo", ["hmasd", "mappo"])
def test_independent_learners_update_each_agent_from_its_own_samples(algo):
    trainer = small_trainer(algo, policy_sharing="independent")
    agent = trainer.agent
    assert len(agent.actors) == trainer.env.num_agents and len(agent.critics) == trainer.env.num_agents
    assert {f"actor_{i}" for i in range(4)} <= agent.optimizers.keys()
    before = [[p.detach().clone() for p in actor.parameters()] for actor in agent.actors]
    collect(trainer)
    batch, _, _ = low_level_batch(trainer)
    batch.advantages = batch.advantages.reshape(batch.advantages.shape[0], -1, 4)
    batch.advantages[..., 1:] = 0.0  # only agent 0 has a learning signal ...
    batch.advantages = batch.advantages.reshape(batch.advantages.shape[0], -1)
    agent.config = dataclasses.replace(agent.config, low_entropy_coef=0.0)
    agent.update_discoverer(batch)
    after = [list(actor.parameters()) for actor in agent.actors]
    changed = [not all(torch.equal(a, b) for a, b in zip(before[i], after[i])) for i in range(4)]
    assert changed[0] and not any(changed[1:])  # ... so only agent 0's actor moves
    assert len(set(agent.updates_applied)) == 1 and len(set(agent.samples_pushed)) == 1
    from hmasd.train.loop import agent_records

    records = agent_records(trainer)["agents"]
    assert all(r["network_config"] == records[0]["network_config"] for r in records)


@pytest.mark.learning
def test_independent_mappo_learns_stag_hunt_in_self_play_with_equal_counters():
    config = preset("stag_hunt", algo="mappo", policy_sharing="independent", num_envs=32,
                    total_steps=32 * 35 * 30, eval_interval=0, seed=6)
    trainer = build(config)
    before = evaluate(trainer, 64, seed=9, deterministic=False)
    while trainer.env_steps < config.total_steps:
        metrics = iterate(trainer)
    after = evaluate(trainer, 64, seed=9, deterministic=False)
    assert np.mean(after["hares"]) > np.mean(before["hares"]) + 0.4, (before["hares"], after["hares"])
    counts = [metrics[f"Agents/{i}/UpdatesApplied"] for i in range(4)]
    samples = [metrics[f"Agents/{i}/SamplesPushed"] for i in range(4)]
    assert len(set(counts)) == 1 and counts[0] == 30 * config.low_epochs
    assert len(set(samples)) == 1 and samples[0] == 30 * 35 * 32


@pytest.mark.parametrize("horizon, k, max_steps", [(12, 4, 100), (12, 5, 100), (12, 4, 6), (14, 4, 5)])
def test_high_level_bootstrap_is_what_each_truncated_window_led_to(horizon, k, max_steps):
    from hmasd.train.loop import high_level_bootstrap

    trainer = small_trainer(horizon=horizon, skill_interval=k, env_options={"max_steps": max_steps})
    collect(trainer)
    engine = trainer.engine
    high, low = engine.high_level(), engine.low_level()
    next_obs, next_state = engine.next_observations()
    state, obs = high_level_bootstrap(engine, high, low)
    truncated = np.flatnonzero(high["truncated"])
    assert len(truncated) >= trainer.config.num_envs  # at least every window at the barrier
    for j in truncated:  # whatever closed it (time limit, clock at the barrier, barrier), s' is the next state
        end, e = high["start"][j] + high["length"][j] - 1, high["env"][j]
        np.testing.assert_array_equal(state[j], next_state[end, e])
        np.testing.assert_array_equal(obs[j], next_obs[end, e])


@pytest.mark.parametrize("bootstrap", [True, False])
def test_time_limits_end_the_return_at_both_levels_only_without_time_limit_bootstrap(bootstrap):
    # episodes of 5 steps in a batch of 13: windows closed by the time limit, and one cut by the barrier per env
    trainer = small_trainer(horizon=13, skill_interval=4, env_options={"max_steps": 5},
                            time_limit_bootstrap=bootstrap)
    collect(trainer)
    high, low = trainer.engine.high_level(), trainer.engine.low_level()
    high_batch, _ = high_level_batch(trainer, high)
    low_batch, _, _ = low_level_batch(trainer, high)
    time_limit = high["truncated"] & ~high["at_barrier"]
    barrier = high["at_barrier"]
    assert time_limit.any() and barrier.any()
    cut_returns = high_batch.returns[:, 0].numpy()
    window_rewards = high_batch.rewards.numpy()
    # a window ended by the time limit returns its own reward exactly when its return ends there
    assert np.allclose(cut_returns[time_limit], window_rewards[time_limit], atol=1e-6) == (not bootstrap)
    # a window cut by the barrier always bootstraps
    assert not np.allclose(cut_returns[barrier], window_rewards[barrier], atol=1e-6)
    steps = np.nonzero(low["truncated"])
    rewards = low_level_reward_of(trainer, low)
    returns = low_batch.returns[steps].numpy()
    assert np.allclose(returns, rewards[steps], atol=1e-5) == (not bootstrap)


def low_level_reward_of(trainer, low) -> np.ndarray:
    """The paper's low-level reward of every step [T, E, N], recomputed from the batch."""
    from hmasd.algo import targets

    c = trainer.config
    next_obs, next_state = (torch.from_numpy(a) for a in trainer.engine.next_observations())
    team, indiv = torch.from_numpy(low["team_skill"]), torch.from_numpy(low["indiv_skill"])
    r_team, r_indiv = trainer.agent.intrinsic_rewards(next_state, next_obs, team, indiv)
    return targets.low_level_reward(torch.from_numpy(low["rewards"]), r_team, r_indiv, c.lambda_env, c.lambda_team,
                                    c.lambda_indi).numpy()


def test_high_target_kl_stops_the_coordinator_update_early_and_only_it():
    def one_update(**overrides):
        trainer = small_trainer(torch_threads=1, **overrides)
        metrics = iterate(trainer)
        return metrics, [p.detach().clone() for p in trainer.agent.actors.parameters()]

    plain, actors_plain = one_update()
    assert "Losses/Coordinator/epochs" not in plain
    stopped, actors_stopped = one_update(high_target_kl=1e-6)
    assert 1 <= stopped["Losses/Coordinator/epochs"] < preset("stag_hunt").high_epochs
    assert stopped["Losses/Coordinator/approx_kl"] > 1e-6  # the epoch it stopped at was beyond the target
    assert all(torch.equal(a, b) for a, b in zip(actors_plain, actors_stopped))  # the discoverer's update is as it was
    with pytest.raises(ValueError, match="high_target_kl"):
        preset("stag_hunt", high_target_kl=0.0)


def test_alice_and_bob_stable_is_the_preset_of_the_recorded_five_seed_runs():
    runs = Path(__file__).parents[1] / "benchmarks/learning/alice_lambda_env/alice_le1_gru_decay_kl"
    summary = json.loads((runs / "hmasd_summary.json").read_text())
    assert summary["seeds"] == [1, 2, 3, 4, 5]
    assert preset(summary["preset"], **summary["set"]) == preset("alice_and_bob_stable")
