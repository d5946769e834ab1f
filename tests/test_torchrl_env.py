"""The TorchRL env (hmasd/envs/torchrl_env.py): specs, step-by-step agreement with a native twin across episode
ends, partial resets, seeding, pickling, a collector (torchrl 0.14's ``Collector``, formerly ``SyncDataCollector``),
and a PPO loop that learns stag_hunt."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

import hmasd.envs
from conftest import gpu_marks

torch = pytest.importorskip("torch", reason="the TorchRL env needs the torchrl extra; CI installs it")
pytest.importorskip("torchrl", reason="the TorchRL env needs the torchrl extra; CI installs it")
with warnings.catch_warnings():
    # torchrl 0.14 deprecates its own weight updater at import (of torchrl.collectors, which torchrl.envs pulls in)
    warnings.filterwarnings("ignore", "Creating .* which inherits from WeightUpdaterBase", DeprecationWarning)
    from tensordict import TensorDict
    from torchrl.collectors import Collector
    from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type, step_mdp

    from hmasd.envs.torchrl_env import EPISODE, GROUP, HmasdTorchRLEnv

pytestmark = pytest.mark.adapter

# Every registered env, and uav_coverage a second time with discrete moves.
SPEC_CASES = [(name, {}) for name in hmasd.envs.registered_envs()] + [("uav_coverage", {"action_type": "discrete"})]
# Short episodes so that a rollout crosses several ends; alice_and_bob on a 4 x 4 grid terminates often under random
# play, so its envs end at different steps, by termination or by truncation.
TWIN_CASES = {
    "alice_and_bob": {"height": 4, "width": 4, "max_steps": 9},
    "stag_hunt": {"max_steps": 9},
    "uav_coverage": {"max_steps": 9, "num_users": 12},
    "uav_coverage_discrete": {"max_steps": 9, "num_users": 12, "action_type": "discrete"},
}


def replay(actions: list[torch.Tensor]) -> Callable[[TensorDict], TensorDict]:
    """A policy that plays ``actions`` in order: a rollout whose actions are known before it runs."""
    steps = iter(actions)

    def policy(td: TensorDict) -> TensorDict:
        td.set((GROUP, "action"), next(steps).clone())
        return td

    return policy


def drawn_actions(env: HmasdTorchRLEnv, steps: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    spec = env.action_spec[GROUP, "action"]
    if spec.dtype == torch.int64:
        return [torch.randint(0, spec.space.n, spec.shape, generator=generator) for _ in range(steps)]
    return [torch.rand(spec.shape, generator=generator) * 2 - 1 for _ in range(steps)]


def twin_case(case: str) -> tuple[str, dict]:
    return case.removesuffix("_discrete"), TWIN_CASES[case]


# ---- specs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), SPEC_CASES, ids=lambda x: x if isinstance(x, str) else str(x))
def test_specs_match_the_data_of_every_env(name, options):
    env = HmasdTorchRLEnv(name, num_envs=3, seed=2, max_steps=4, **options)
    check_env_specs(env, break_when_any_done="both")
    vec = env.vec_env
    e, n = vec.num_envs, vec.num_agents
    assert env.batch_size == (e,) and env.device == torch.device("cpu")
    assert env.observation_spec[GROUP, "observation"].shape == (e, n, vec.obs_dim)
    assert env.observation_spec["state"].shape == (e, vec.state_dim)
    assert env.reward_spec[GROUP, "reward"].shape == (e, n, 1)
    for key in ("done", "terminated", "truncated"):
        assert env.done_spec[key].shape == (e, 1) and env.done_spec[GROUP, key].shape == (e, n, 1)
    action = env.action_spec[GROUP, "action"]
    if vec.continuous:
        assert action.shape == (e, n, vec.action_dim) and action.dtype == torch.float32
        assert action.space.low.min() == -1 and action.space.high.max() == 1
        assert (GROUP, "action_mask") not in env.observation_spec.keys(True)
    else:
        assert action.shape == (e, n) and action.space.n == vec.num_actions
        assert env.observation_spec[GROUP, "action_mask"].shape == (e, n, vec.num_actions)
    episode = env.observation_spec[EPISODE]
    assert set(episode.keys()) == {"return", "length", *vec.episode_info}
    # check_env_specs compares shapes and dtypes only; the values must lie in the declared bounds too
    data = env.rollout(10, break_when_any_done=False)
    for key in ((GROUP, "observation"), "state"):
        assert env.observation_spec[key].is_in(data[..., 0][key])
        assert all(env.observation_spec[key].is_in(data["next"][..., t][key]) for t in range(10))


def test_the_adapter_refuses_an_autoresetting_vec_env_and_mixed_arguments():
    with pytest.raises(ValueError, match="autoreset='disabled'"):
        HmasdTorchRLEnv(vec_env=hmasd.envs.make("stag_hunt", num_envs=2))
    vec = hmasd.envs.make("stag_hunt", num_envs=2, autoreset="disabled")
    with pytest.raises(TypeError, match="pass nothing else"):
        HmasdTorchRLEnv(vec_env=vec, max_steps=3)
    env = HmasdTorchRLEnv(vec_env=vec)
    assert env.vec_env is vec and env.batch_size == (2,)
    assert env.to("cpu") is env
    with pytest.raises(ValueError, match="cannot move"):
        env.to("meta")


def test_a_pickled_env_is_an_exact_copy_that_steps_on_its_own_buffers():
    import pickle

    env = HmasdTorchRLEnv("stag_hunt", num_envs=3, seed=1, max_steps=50)
    td = step_mdp(env.step(env.rand_action(env.reset())))
    clone = pickle.loads(pickle.dumps(env))
    assert clone._obs.data_ptr() == clone.vec_env.obs.ctypes.data != env.vec_env.obs.ctypes.data
    for a in drawn_actions(env, 5, seed=6):
        mine, theirs = env.step(td.clone().set((GROUP, "action"), a)), clone.step(td.clone().set((GROUP, "action"), a))
        assert (mine["next"] == theirs["next"]).all()
        td = step_mdp(mine)


def test_importing_hmasd_envs_leaves_torchrl_unimported():
    import subprocess
    import sys

    code = "import sys, hmasd.envs; print(sorted(m for m in ('torch', 'torchrl', 'tensordict') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_torchrls_action_mask_transform_draws_only_valid_actions():
    from torchrl.envs import ActionMask, TransformedEnv

    env = TransformedEnv(HmasdTorchRLEnv("stag_hunt", num_envs=16, seed=0, max_steps=9, grid_size=3),
                         ActionMask(action_key=(GROUP, "action"), mask_key=(GROUP, "action_mask")))
    data = env.rollout(20, break_when_any_done=False)
    mask, action = data[GROUP, "action_mask"], data[GROUP, "action"]
    assert not mask.all(), "on a 3 x 3 grid some moves are always invalid"
    assert mask.gather(-1, action.unsqueeze(-1)).all()


# ---- one native twin, step by step -----------------------------------------------------------------------------


def check_step_against_twin(data: TensorDict, twin: hmasd.envs.VecEnv, t: int) -> np.ndarray:
    """Steps ``twin`` with the actions of step ``t`` of ``data`` and holds that step's tensors to it; returns the
    envs whose episode ended."""
    now, after = data[:, t], data["next"][:, t]
    np.testing.assert_array_equal(now[GROUP, "observation"].numpy(), twin.obs)
    np.testing.assert_array_equal(now["state"].numpy(), twin.state)
    if not twin.continuous:
        np.testing.assert_array_equal(now[GROUP, "action_mask"].numpy(), twin.action_mask)
    twin.step(now[GROUP, "action"].numpy())
    np.testing.assert_array_equal(after[GROUP, "observation"].numpy(), twin.obs)  # the last one at an end
    np.testing.assert_array_equal(after["state"].numpy(), twin.state)
    np.testing.assert_array_equal(after[GROUP, "reward"][..., 0].numpy(), twin.rewards)
    ended = twin.terminated | twin.truncated
    for key, expected in (("terminated", twin.terminated), ("truncated", twin.truncated), ("done", ended)):
        np.testing.assert_array_equal(after[key][:, 0].numpy(), expected)
        per_agent = np.repeat(expected[:, None], twin.num_agents, 1)
        np.testing.assert_array_equal(after[GROUP, key][..., 0].numpy(), per_agent)
    episode = after[EPISODE]
    expected_metrics = {"return": twin.episode_return, "length": twin.episode_length, **twin.episode_info}
    for key, values in expected_metrics.items():
        rows = ended.reshape(-1, *([1] * (values.ndim - 1)))
        np.testing.assert_array_equal(episode[key].numpy(), np.where(rows, values, 0), err_msg=key)
    return ended


@pytest.mark.parametrize("case", list(TWIN_CASES))
def test_a_rollout_is_the_native_twin_stepped_with_the_same_actions(case):
    name, options = twin_case(case)
    env = HmasdTorchRLEnv(name, num_envs=5, seed=7, **options)
    twin = hmasd.envs.make(name, num_envs=5, seed=7, autoreset="disabled", **options)
    steps = 25
    data = env.rollout(steps, policy=replay(drawn_actions(env, steps, seed=1)), break_when_any_done=False)
    assert data.batch_size == (5, steps)
    twin.reset()
    ends = []
    for t in range(steps):
        ended = check_step_against_twin(data, twin, t)
        ends.append(ended)
        if ended.any():  # what TorchRL's "_reset" asked of the adapter
            twin.reset_envs(ended)
    ends = np.array(ends)  # [T, E]
    terminated = data["next", "terminated"][..., 0].numpy().T
    truncated = data["next", "truncated"][..., 0].numpy().T
    if name == "alice_and_bob":
        assert terminated.any() and truncated.any(), "the case must cross both kinds of episode end"
        assert (ends.any(1) & ~ends.all(1)).any(), "the case must end some envs while others go on"
    else:  # no termination: every env is truncated at the time limit, steps 9 and 18
        assert not terminated.any()
        np.testing.assert_array_equal(np.flatnonzero(truncated.all(1)), [8, 17])
        np.testing.assert_array_equal(truncated.any(1), truncated.all(1))
    lengths = data["next", EPISODE, "length"].numpy()
    assert (lengths[ends.T] > 0).all() and (lengths[~ends.T] == 0).all()


def test_stepping_an_env_whose_episode_ended_raises_until_it_is_reset():
    env = HmasdTorchRLEnv("stag_hunt", num_envs=2, seed=0, max_steps=2)
    td = env.reset()
    for _ in range(2):
        td = step_mdp(env.step(env.rand_action(td)))
    assert td["done"].all()
    with pytest.raises(RuntimeError, match="finished its episode"):
        env.step(env.rand_action(td))
    td = env.reset(td.set("_reset", td["done"].clone()))
    assert not td["done"].any()
    env.step(env.rand_action(td))


# ---- partial reset ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reset_key", ["_reset", (GROUP, "_reset")])
def test_a_partial_reset_restarts_the_chosen_envs_and_leaves_the_others_untouched(reset_key):
    options = {"max_steps": 50}
    env = HmasdTorchRLEnv("stag_hunt", num_envs=4, seed=5, **options)
    untouched = hmasd.envs.make("stag_hunt", num_envs=4, seed=5, autoreset="disabled", **options)
    actions = drawn_actions(env, 8, seed=3)
    td = env.reset()
    untouched.reset()
    for a in actions[:3]:
        td = step_mdp(env.step(td.set((GROUP, "action"), a)))
        untouched.step(a.numpy())
    before = td.clone()
    chosen = torch.tensor([True, False, True, False])
    flags = chosen[:, None] if reset_key == "_reset" else chosen[:, None, None].expand(4, env.num_agents, 1)
    td = env.reset(td.set(reset_key, flags.clone()))
    vec = env.vec_env
    kept = ~chosen
    assert (td[kept] == before[kept]).all(), "TorchRL's merge must keep the rows that were not reset"
    np.testing.assert_array_equal(vec.obs[kept.numpy()], untouched.obs[kept.numpy()])
    np.testing.assert_array_equal(vec.state[kept.numpy()], untouched.state[kept.numpy()])
    np.testing.assert_array_equal(td[GROUP, "observation"].numpy(), vec.obs)
    time_feature = td[GROUP, "observation"][..., -1]  # t / max_steps
    assert (time_feature[chosen] == 0).all() and (time_feature[kept] == 3 / 50).all()
    assert not torch.equal(td[GROUP, "observation"][chosen], before[GROUP, "observation"][chosen])
    for a in actions[3:]:  # the others go on exactly as if no reset had happened
        td = step_mdp(env.step(td.set((GROUP, "action"), a)))
        untouched.step(a.numpy())
        np.testing.assert_array_equal(vec.obs[kept.numpy()], untouched.obs[kept.numpy()])
        np.testing.assert_array_equal(vec.rewards[kept.numpy()], untouched.rewards[kept.numpy()])


# ---- seeding ---------------------------------------------------------------------------------------------------


def seeded_rollout(env: HmasdTorchRLEnv, seed: int | None = None) -> TensorDict:
    if seed is not None:
        env.set_seed(seed)
    return env.rollout(20, policy=replay(drawn_actions(env, 20, seed=4)), break_when_any_done=False)


def test_seeded_envs_repeat_exactly_and_unseeded_ones_differ():
    options = {"max_steps": 9}
    a, b = (HmasdTorchRLEnv("stag_hunt", num_envs=6, seed=3, **options) for _ in range(2))
    assert (seeded_rollout(a) == seeded_rollout(b)).all()
    first = seeded_rollout(a, seed=11)
    assert (seeded_rollout(a, seed=11) == first).all(), "set_seed must reseed exactly"
    built = HmasdTorchRLEnv("stag_hunt", num_envs=6, seed=11, **options)
    assert (seeded_rollout(built) == first).all(), "set_seed(s) must equal an env built with seed=s"
    assert a.native_seed == 11
    other = seeded_rollout(a, seed=12)
    assert not torch.equal(other["next", GROUP, "observation"], first["next", GROUP, "observation"])
    u, v = HmasdTorchRLEnv("stag_hunt", num_envs=6, **options), HmasdTorchRLEnv("stag_hunt", num_envs=6, **options)
    assert u.native_seed != v.native_seed
    assert not torch.equal(seeded_rollout(u)[GROUP, "observation"], seeded_rollout(v)[GROUP, "observation"])


# ---- collector -------------------------------------------------------------------------------------------------


def test_a_collector_sees_episode_ends_across_batches():
    env = HmasdTorchRLEnv("stag_hunt", num_envs=4, seed=0, max_steps=9)
    collector = Collector(env, None, frames_per_batch=4 * 12, total_frames=4 * 36,
                          auto_register_policy_transforms=False)
    batches = list(collector)
    collector.shutdown()
    assert [batch.batch_size for batch in batches] == [torch.Size([4, 12])] * 3
    data = torch.cat(batches, dim=1)  # [E, 36]: one env's steps in order across the batch boundaries
    done = data["next", "done"][..., 0]
    np.testing.assert_array_equal(done.all(0).nonzero().flatten().numpy(), [8, 17, 26, 35])
    assert torch.equal(done.any(0), done.all(0))
    rewards = data["next", GROUP, "reward"][..., 0]  # [E, 36, N]
    for end in (8, 17, 26, 35):
        episode = data["next", EPISODE][:, end]
        assert (episode["length"] == 9).all()
        torch.testing.assert_close(episode["return"], rewards[:, end - 8:end + 1].sum(1))
    # the step after an end starts a new episode (time feature 0), also across a batch boundary
    np.testing.assert_array_equal(data[GROUP, "observation"][:, [9, 18, 27], :, -1].numpy(), 0)


# ---- learning --------------------------------------------------------------------------------------------------


def uniform_valid_actions(td: TensorDict) -> TensorDict:
    """Random play: each agent's action uniform among its valid ones."""
    mask = td.get((GROUP, "action_mask"))
    td.set((GROUP, "action"), (torch.rand(mask.shape) * mask).argmax(-1))
    return td


def mean_episode_return(env: HmasdTorchRLEnv, policy: Callable[[TensorDict], TensorDict], episodes: int,
                        max_steps: int) -> float:
    """The mean per-agent return of ``episodes`` episodes per env, from the env's own episode metrics."""
    env.set_seed(99)  # both policies meet the same episode starts
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        data = env.rollout(episodes * max_steps, policy=policy, break_when_any_done=False)
    done = data["next", "done"][..., 0]
    assert int(done.sum()) == env.batch_size[0] * episodes
    return float(data["next", EPISODE, "return"][done].mean())


def ppo_modules(env: HmasdTorchRLEnv) -> tuple:
    """A masked categorical policy and a value net, each one MLP shared by all agents (IPPO)."""
    from tensordict.nn import TensorDictModule
    from torch import nn
    from torchrl.modules import MaskedCategorical, ProbabilisticActor

    obs_dim = env.observation_spec[GROUP, "observation"].shape[-1]
    num_actions = env.action_spec[GROUP, "action"].space.n

    def mlp(out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out))

    logits = TensorDictModule(mlp(num_actions), in_keys=[(GROUP, "observation")], out_keys=[(GROUP, "logits")])
    policy = ProbabilisticActor(logits, in_keys={"logits": (GROUP, "logits"), "mask": (GROUP, "action_mask")},
                                out_keys=[(GROUP, "action")], distribution_class=MaskedCategorical,
                                return_log_prob=True, log_prob_key=(GROUP, "log_prob"))
    critic = TensorDictModule(mlp(1), in_keys=[(GROUP, "observation")], out_keys=[(GROUP, "state_value")])
    return policy, critic


def train_ppo(env: HmasdTorchRLEnv, iterations: int, horizon: int) -> Callable[[TensorDict], TensorDict]:
    """TorchRL's ClipPPOLoss with GAE on batches of ``horizon`` steps of every env; returns the policy."""
    from torch import nn
    from torchrl.objectives import ClipPPOLoss, ValueEstimators

    policy, critic = ppo_modules(env)
    loss = ClipPPOLoss(policy, critic, clip_epsilon=0.2, entropy_coeff=0.01, normalize_advantage=False)
    loss.set_keys(reward=(GROUP, "reward"), action=(GROUP, "action"), value=(GROUP, "state_value"),
                  sample_log_prob=(GROUP, "log_prob"), done=(GROUP, "done"), terminated=(GROUP, "terminated"),
                  advantage=(GROUP, "advantage"), value_target=(GROUP, "value_target"))
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.99, lmbda=0.95)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3)
    frames = env.batch_size[0] * horizon
    collector = Collector(env, policy, frames_per_batch=frames, total_frames=frames * iterations,
                          auto_register_policy_transforms=False)
    for batch in collector:
        with torch.no_grad():
            loss.value_estimator(batch, params=loss.critic_network_params,
                                 target_params=loss.target_critic_network_params)
        flat = batch.reshape(-1)
        for _ in range(4):
            for rows in torch.randperm(flat.shape[0]).chunk(4):
                terms = loss(flat[rows])
                total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
                optimizer.zero_grad()
                total.backward()
                nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
                optimizer.step()
        collector.update_policy_weights_()
    collector.shutdown()
    return policy


@pytest.mark.learning
@pytest.mark.trainer
def test_ppo_through_the_adapter_beats_random_play_on_stag_hunt(one_torch_thread):
    torch.manual_seed(0)
    max_steps = 35
    evaluation = HmasdTorchRLEnv("stag_hunt", num_envs=32, seed=1, max_steps=max_steps)
    random_return = mean_episode_return(evaluation, uniform_valid_actions, 2, max_steps)
    policy = train_ppo(HmasdTorchRLEnv("stag_hunt", num_envs=32, seed=0, max_steps=max_steps), 50, max_steps)
    trained_return = mean_episode_return(evaluation, policy, 2, max_steps)
    # random play catches about one hare per agent and episode; chasing hares is worth over twice that
    assert trained_return > 1.8 * random_return and trained_return > random_return + 1.0, (
        f"PPO reached a mean return of {trained_return:.2f} per agent, random play {random_return:.2f}")


# ---- CUDA --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [pytest.param(name, marks=gpu_marks()) for name in ("stag_hunt", "uav_coverage")])
def test_a_cuda_env_keeps_every_tensor_on_the_device_and_matches_the_cpu_env(name):
    env = HmasdTorchRLEnv(name, num_envs=6, seed=4, device="cuda", max_steps=9)
    cpu = HmasdTorchRLEnv(name, num_envs=6, seed=4, max_steps=9)
    assert env.device == torch.device("cuda:0")
    check_env_specs(env)
    actions = drawn_actions(cpu, 20, seed=2)
    on_device = env.rollout(20, policy=replay([a.to(env.device) for a in actions]), break_when_any_done=False)
    assert all(value.device == env.device for value in on_device.values(True, True))
    on_host = cpu.rollout(20, policy=replay(actions), break_when_any_done=False)
    assert (on_device.cpu() == on_host).all()
