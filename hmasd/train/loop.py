"""The synchronous HMASD loop: collect T steps through the native engine, update coordinator -> discoverer ->
discriminators, resume. Also the flat MAPPO baseline and the paper's ablations (config.algo)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import hmasd.envs
from hmasd.algo.agent import DiscBatch, EnvDims, HighBatch, HMASDAgent, LowBatch
from hmasd.algo.ppo import compute_gae
from hmasd.rollout import RolloutEngine
from hmasd.train.config import TrainConfig

log = logging.getLogger("hmasd.train")


def effective_config(config: TrainConfig) -> TrainConfig:
    """The config the run actually uses: MAPPO is HMASD with one skill, env reward only, nothing intrinsic."""
    config.validate()
    if config.algo == "mappo":
        return config.replace(num_team_skills=1, num_indiv_skills=1, lambda_env=1.0, lambda_team=0.0,
                              lambda_indi=0.0, skill_interval=config.horizon, clock="episode")
    if config.algo == "no_team":
        return config.replace(lambda_team=0.0)
    if config.algo == "no_indi":
        return config.replace(lambda_indi=0.0)
    return config


@dataclass
class BatchRecord:
    """What the run tracker needs of one batch, as NumPy: per step [T, E] and per high-level transition [M]."""

    env_reward: np.ndarray       # [T, E] env reward, averaged over agents
    team_component: np.ndarray   # [T, E] lambda_D log q_D(Z | s')
    indiv_component: np.ndarray  # [T, E] lambda_d log q_d(z_i | o_i', Z), averaged over agents
    ended: np.ndarray            # [T, E] an episode ended at this step
    high_env: np.ndarray         # [M] env of each transition, sorted by (env, start)
    high_start: np.ndarray       # [M] batch step of the decision
    team_skill: np.ndarray       # [M]
    indiv_skill: np.ndarray      # [M, N]
    # the env's scalar episode metrics of every episode that ended in the batch: (step t, env e) -> {field: value}
    episode_metrics: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)


@dataclass
class Trainer:
    """Everything a run holds: config, env, engine, agent and counters."""

    config: TrainConfig
    env: Any
    engine: RolloutEngine
    agent: HMASDAgent
    device: torch.device
    generator: torch.Generator
    iteration: int = 0
    env_steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    last_batch: BatchRecord | None = None
    best_eval: dict[str, Any] | None = None
    # low-level GRU state carried across batches (zeros and unused for the MLP)
    actor_hidden: torch.Tensor | None = None   # [E, N, H]
    critic_hidden: torch.Tensor | None = None  # [E, H]
    starts: torch.Tensor | None = None         # [E] the next step starts an episode
    # per step of the current batch: hidden states before the step and the critic's state after it
    hidden_log: dict[str, torch.Tensor] = field(default_factory=dict)
    # the env's scalar episode metrics of the episodes that ended in the current batch, by (step, env)
    episode_metrics: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)


def scalar_info_fields(env: Any) -> list[str]:
    """The env's episode info fields with one value per env (uav_coverage's throughput, coverage, ...)."""
    return [key for key, values in env.episode_info.items() if values.ndim == 1]


def performance_tag(field_name: str) -> str:
    """TensorBoard tag of an env episode metric: system_throughput_mbps -> Performance/Episode_System_Throughput_Mbps."""
    return "Performance/Episode_" + "_".join(word.capitalize() for word in field_name.split("_"))


def build(config: TrainConfig) -> Trainer:
    """Creates the env, the engine and a freshly initialised agent for ``config``."""
    config = effective_config(config)
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    env = hmasd.envs.make(config.env, num_envs=config.num_envs, seed=config.seed, num_threads=config.num_threads,
                          **config.env_options)
    env.reset()
    engine = RolloutEngine(env, config.horizon, config.skill_interval, config.num_team_skills,
                           config.num_indiv_skills, clock=config.clock)
    dims = EnvDims(env.num_agents, env.obs_dim, env.state_dim, env.num_actions, env.action_dim)
    agent = HMASDAgent(dims, config).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    e, n, h = env.num_envs, env.num_agents, config.hidden
    return Trainer(config, env, engine, agent, device, generator,
                   actor_hidden=torch.zeros(e, n, h, device=device), critic_hidden=torch.zeros(e, h, device=device),
                   starts=torch.ones(e, dtype=torch.bool, device=device))


# ---- acting -------------------------------------------------------------------------------------
def env_actions(actions: torch.Tensor) -> np.ndarray:
    """The policy's actions as the native env takes them: int32 indices, or float32 vectors (continuous envs clip
    them to their bounds)."""
    values = actions.cpu().numpy()
    return values.astype(np.float32 if actions.is_floating_point() else np.int32)


def decide(trainer: Trainer, state: torch.Tensor, obs: torch.Tensor, deterministic: bool = False):
    """High-level decisions for a batch of envs: skills [D, N+1], log-probs and values, as numpy."""
    c, agent = trainer.config, trainer.agent
    d, n = state.shape[0], obs.shape[1]
    if c.algo == "mappo":
        zeros = np.zeros((d, n + 1), np.float32)
        return np.zeros((d, n + 1), np.int64), zeros, zeros
    if c.algo == "no_high":
        team = torch.randint(c.num_team_skills, (d, 1), generator=trainer.generator)
        indiv = torch.randint(c.num_indiv_skills, (d, n), generator=trainer.generator)
        logp = np.zeros((d, n + 1), np.float32)
        return torch.cat([team, indiv], 1).numpy(), logp, logp
    skills, logp, values = agent.coordinator.act(state.to(trainer.device), obs.to(trainer.device), deterministic)
    return skills.cpu().numpy(), logp.cpu().numpy(), values.cpu().numpy()


def collect(trainer: Trainer) -> None:
    """Fills one batch of T steps per env through the engine (the coordinator runs only for envs that need it)."""
    env, engine, device, c = trainer.env, trainer.engine, trainer.device, trainer.config
    team_now = torch.from_numpy(engine.windows["team_skill"])
    indiv_now = torch.from_numpy(engine.windows["indiv_skill"])
    recurrent = c.recurrent
    # a GRU's updates replay the batch from the hidden state before each step; the MLP needs none of it
    log = {"actor": torch.zeros(c.horizon, *trainer.actor_hidden.shape, device=device),
           "critic": torch.zeros(c.horizon, *trainer.critic_hidden.shape, device=device),
           "critic_after": torch.zeros(c.horizon, *trainer.critic_hidden.shape, device=device),
           "starts": torch.zeros(c.horizon, env.num_envs, dtype=torch.bool, device=device)} if recurrent else {}
    metric_fields = scalar_info_fields(env)
    trainer.episode_metrics = {}
    for t in range(c.horizon):
        obs, state, mask = (torch.from_numpy(a) for a in (engine.obs, engine.state, engine.action_mask))
        ids = engine.decision_env_ids()
        if len(ids):
            index = torch.from_numpy(ids).long()
            skills, logp, values = decide(trainer, state[index], obs[index])
            engine.decide(ids, skills[:, 0].astype(np.int32), skills[:, 1:].astype(np.int32), logp, values)
        if recurrent:
            log["actor"][t], log["critic"][t], log["starts"][t] = trainer.actor_hidden, trainer.critic_hidden, trainer.starts
        actions, logp, values, h_actor, h_critic = trainer.agent.act_low(
            obs.to(device), indiv_now.to(device), mask.to(device), state.to(device), team_now.to(device),
            actor_hidden=trainer.actor_hidden if recurrent else None,
            critic_hidden=trainer.critic_hidden if recurrent else None,
            starts=trainer.starts if recurrent else None)
        engine.step(env_actions(actions), logp.cpu().numpy(),
                    np.ascontiguousarray(values.cpu().numpy()))
        if metric_fields:
            for e in np.flatnonzero(env.terminated | env.truncated):
                trainer.episode_metrics[(t, int(e))] = {key: float(env.episode_info[key][e]) for key in metric_fields}
        if recurrent:
            trainer.starts = torch.from_numpy(env.terminated | env.truncated).to(device)
            trainer.actor_hidden, trainer.critic_hidden = h_actor, h_critic
            log["critic_after"][t] = h_critic
    trainer.hidden_log = log
    trainer.env_steps += c.horizon * c.num_envs


# ---- targets ------------------------------------------------------------------------------------
def low_level_batch(trainer: Trainer, high: dict[str, np.ndarray] | None = None
                    ) -> tuple[LowBatch, DiscBatch, dict[str, float]]:
    """Intrinsic rewards with the pre-update discriminators, then GAE over [T, E, N]. ``high`` is the batch's
    ``engine.high_level()`` when the caller already has it (it sorts and gathers, so it is computed once)."""
    c, agent, engine, dev = trainer.config, trainer.agent, trainer.engine, trainer.device
    low = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in engine.low_level().items()}
    next_obs, next_state = (torch.from_numpy(a).to(dev) for a in engine.next_observations())
    t_len, e, n = low["rewards"].shape
    team, indiv = low["team_skill"], low["indiv_skill"]
    r_team, r_indiv = agent.intrinsic_rewards(next_state, next_obs, team, indiv)
    rewards = c.lambda_env * low["rewards"] + c.lambda_team * r_team.unsqueeze(-1) + c.lambda_indi * r_indiv

    norm = agent.low_value_norm
    values = norm.denormalize(low["values"])  # [T, E, N]; equal over agents with a shared critic
    ended = low["terminated"] | low["truncated"]
    hidden = trainer.hidden_log
    recurrent = c.recurrent
    with torch.no_grad():
        # V(s', Z) from the critic's state after the step: the bootstrap where an episode was truncated
        after = hidden["critic_after"].reshape(t_len * e, -1) if recurrent else None
        no_start = torch.zeros(1, t_len * e, dtype=torch.bool, device=dev) if recurrent else None
        flat_next = agent.critic_values(next_state.reshape(1, t_len * e, -1), team.reshape(1, -1), n, after,
                                        no_start)
        next_values = norm.denormalize(flat_next.reshape(t_len, e, n))
        next_values[:-1] = torch.where(ended[:-1, :, None], next_values[:-1], values[1:])
        # at the barrier the next batch opens with a fresh decision Z' at s_T (as in the official code)
        boot_state = torch.from_numpy(engine.windows["bootstrap_state"]).to(dev)
        boot_obs = torch.from_numpy(engine.windows["bootstrap_obs"]).to(dev)
        fresh = torch.from_numpy(decide(trainer, boot_state.cpu(), boot_obs.cpu())[0][:, 0].copy()).to(dev)
        last = agent.critic_values(boot_state.unsqueeze(0), fresh.unsqueeze(0), n,
                                   trainer.critic_hidden if recurrent else None,
                                   trainer.starts.unsqueeze(0) if recurrent else None)[0]
        next_values[-1] = torch.where(ended[-1, :, None], next_values[-1], norm.denormalize(last))
    chain_breaks = ended.clone()
    chain_breaks[-1] = True
    expand = lambda x: x.unsqueeze(-1).expand(t_len, e, n)  # noqa: E731
    advantages, returns = compute_gae(rewards, values, next_values, expand(low["terminated"]),
                                      expand(chain_breaks), c.gamma, c.gae_lambda)
    rows = lambda x: x.reshape(t_len, e * n, *x.shape[3:])  # noqa: E731
    batch = LowBatch(
        obs=rows(low["obs"]), indiv_skill=rows(indiv), action_mask=rows(low["action_mask"]),
        actions=rows(low["actions"]), old_logp=rows(low["logp"]), advantages=rows(advantages),
        state=low["state"], team_skill=team, old_values=low["values"], returns=returns)
    if recurrent:
        batch.actor_hidden, batch.critic_hidden = rows(hidden["actor"]), hidden["critic"]
        batch.actor_starts = hidden["starts"].unsqueeze(-1).expand(t_len, e, n).reshape(t_len, e * n)
        batch.critic_starts = hidden["starts"]
    disc = DiscBatch(next_state=next_state.reshape(t_len * e, -1), team_skill=team.reshape(-1),
                     next_obs=next_obs.reshape(t_len * e * n, -1),
                     row_team=team.unsqueeze(-1).expand(t_len, e, n).reshape(-1), indiv_skill=indiv.reshape(-1))
    stats = {"Rewards/Env": float(low["rewards"].mean()), "Rewards/Intrinsic/Team": float(r_team.mean()),
             "Rewards/Intrinsic/Individual": float(r_indiv.mean()), "Rewards/LowLevel": float(rewards.mean())}
    high = engine.high_level() if high is None else high
    trainer.last_batch = BatchRecord(
        env_reward=low["rewards"].mean(-1).cpu().numpy(), team_component=(c.lambda_team * r_team).cpu().numpy(),
        indiv_component=(c.lambda_indi * r_indiv).mean(-1).cpu().numpy(), ended=ended.cpu().numpy(),
        high_env=high["env"], high_start=high["start"], team_skill=high["team_skill"], indiv_skill=high["indiv_skill"],
        episode_metrics=trainer.episode_metrics)  # collect() starts a new dict per batch
    return batch, disc, stats


def high_level_bootstrap(engine: RolloutEngine, high: dict[str, np.ndarray],
                         low: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The state and observations each window led to: the final ones where its episode ended on its last step,
    else (the window was cut by the barrier, or closed by the clock) the env's at the barrier. Only truncated
    windows use them; windows closed by the clock mid-batch take the next window's values instead."""
    end_rows, envs = high["start"] + high["length"] - 1, high["env"]
    ended = (low["terminated"][end_rows, envs] | low["truncated"][end_rows, envs])
    state = np.where(ended[:, None], low["final_state"][end_rows, envs], engine.windows["bootstrap_state"][envs])
    obs = np.where(ended[:, None, None], low["final_obs"][end_rows, envs], engine.windows["bootstrap_obs"][envs])
    return state, obs


def high_level_batch(trainer: Trainer, high: dict[str, np.ndarray] | None = None
                     ) -> tuple[HighBatch, dict[str, float]]:
    """Per-token GAE over each env's windows (discount per decision), bootstrapped at truncation."""
    c, agent, engine, dev = trainer.config, trainer.agent, trainer.engine, trainer.device
    high = engine.high_level() if high is None else high
    low = engine.low_level()
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
    norm = agent.high_value_norm
    values = norm.denormalize(tensor(high["values"]))  # [M, N+1]
    rewards = tensor(high["reward_sum"].mean(-1)).unsqueeze(-1).expand_as(values)
    terminated, truncated = tensor(high["terminated"]), tensor(high["truncated"])
    boot_state, boot_obs = high_level_bootstrap(engine, high, low)
    with torch.no_grad():
        next_values = norm.denormalize(agent.coordinator.value(tensor(boot_state), tensor(boot_obs)))
    # windows closed by the skill clock continue into the env's next window (the next row: rows are sorted)
    continues = ~(terminated | truncated)
    next_values[:-1] = torch.where(continues[:-1, None], values[1:], next_values[:-1])
    advantages, returns = compute_gae(rewards, values, next_values, terminated.unsqueeze(-1).expand_as(values),
                                      (~continues).unsqueeze(-1).expand_as(values), c.gamma, c.gae_lambda)
    skills = np.concatenate([high["team_skill"][:, None], high["indiv_skill"]], axis=1)
    batch = HighBatch(state=tensor(high["state"]), obs=tensor(high["obs"]), skills=tensor(skills).long(),
                      old_logp=tensor(high["logp"]), old_values=tensor(high["values"]), advantages=advantages,
                      returns=returns, rewards=rewards[:, 0])
    stats = {"Rewards/HighLevel/K_Step_Accumulated_Mean": float(rewards[:, 0].mean()),
             "Buffer/high_level_samples": float(len(skills)),
             "Buffer/mean_window_length": float(high["length"].mean())}
    return batch, stats


# ---- evaluation ---------------------------------------------------------------------------------
class EpisodePolicy:
    """The trained policy acting in ``num_envs`` envs whose episodes start together: a decision at every k-th step
    of the episode (the per-episode skill clock), argmax or sampled at both levels, the GRU state carried along."""

    def __init__(self, trainer: Trainer, num_envs: int, deterministic: bool = True) -> None:
        c, dev = trainer.config, trainer.device
        self.trainer, self.deterministic, self.t = trainer, deterministic, 0
        self.team = torch.zeros(num_envs, dtype=torch.long)
        self.indiv = torch.zeros(num_envs, trainer.env.num_agents, dtype=torch.long)
        recurrent = c.recurrent
        self.h_actor = torch.zeros(num_envs, trainer.env.num_agents, c.hidden, device=dev) if recurrent else None
        self.h_critic = torch.zeros(num_envs, c.hidden, device=dev) if recurrent else None
        self.no_starts = torch.zeros(num_envs, dtype=torch.bool, device=dev) if recurrent else None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Actions [E, N] (on the CPU) for the current step; the skills in force are ``team`` and ``indiv``."""
        trainer, dev = self.trainer, self.trainer.device
        if self.t % trainer.config.skill_interval == 0:
            skills, _, _ = decide(trainer, state.clone(), obs.clone(), deterministic=self.deterministic)
            self.team, self.indiv = torch.from_numpy(skills[:, 0].copy()), torch.from_numpy(skills[:, 1:].copy())
        actions, _, _, self.h_actor, self.h_critic = trainer.agent.act_low(
            obs.to(dev), self.indiv.to(dev), mask.to(dev), state.to(dev), self.team.to(dev), self.deterministic,
            self.h_actor, self.h_critic, self.no_starts)
        self.t += 1
        return actions.cpu()


def episode_returns(trainer: Trainer, episodes: int, seed: int, deterministic: bool = False,
                    permutations: np.ndarray | None = None) -> np.ndarray:
    """Per-agent returns [episodes, N] of the trained policy, one episode per fresh env.

    ``permutations`` [episodes, N] shuffles agent ids: the policy's agent i acts in env slot permutations[e, i]
    (its observation, skill and action), so returns can be attributed to the id or to the physical slot. The
    result is indexed by slot.
    """
    return evaluate(trainer, episodes, seed=seed, deterministic=deterministic, permutations=permutations,
                    raw=True)["slot_returns"]


@torch.no_grad()
def evaluate(trainer: Trainer, episodes: int, seed: int | None = None, deterministic: bool = True,
             permutations: np.ndarray | None = None, raw: bool = False) -> dict[str, Any]:
    """One episode in each of ``episodes`` fresh envs: argmax at both levels, a per-episode skill clock."""
    c = trainer.config
    env = hmasd.envs.make(c.env, num_envs=episodes, seed=c.seed + 100_003 if seed is None else seed,
                          **c.env_options)
    env.reset()
    obs, state, mask = (torch.from_numpy(a) for a in (env.obs, env.state, env.action_mask))
    n = env.num_agents
    done = np.zeros(episodes, bool)
    returns = np.zeros((episodes, n), np.float32)
    lengths = np.zeros(episodes, np.int32)
    infos: dict[str, list] = {key: [None] * episodes for key in env.episode_info}
    policy = EpisodePolicy(trainer, episodes, deterministic)
    perm = None if permutations is None else torch.from_numpy(np.asarray(permutations)).long()
    rows = torch.arange(episodes).unsqueeze(-1)
    while not done.all():
        if perm is None:
            actions = policy.act(obs, state, mask)
        else:  # the policy's agent i acts in slot perm[e, i]: its inputs gathered, its actions scattered back
            acted = policy.act(obs[rows, perm], state, mask[rows, perm])
            actions = torch.empty_like(acted)
            actions[rows, perm] = acted
        env.step(env_actions(actions))
        finished = (env.terminated | env.truncated) & ~done
        for e in np.flatnonzero(finished):
            returns[e], lengths[e] = env.episode_return[e], env.episode_length[e]
            for key, values in env.episode_info.items():
                infos[key][e] = np.array(values[e])
        done |= finished
    if raw:
        return {"slot_returns": returns}
    team_return = returns.mean(axis=1)
    result: dict[str, Any] = {"episodes": episodes, "mean_reward": float(team_return.mean()),
                              "std_reward": float(team_return.std()), "mean_return": float(returns.mean()),
                              "std_return": float(returns.std()), "mean_length": float(lengths.mean()),
                              "per_agent_return": returns.mean(axis=0).tolist()}
    for key, values in infos.items():
        result[key] = np.mean(np.stack(values), axis=0).tolist()
    if "success" in result:
        result["success_rate"] = result.pop("success")
    return result


# ---- the loop -----------------------------------------------------------------------------------
def iterate(trainer: Trainer) -> dict[str, float]:
    """One synchronous iteration: collect, targets, update high -> low -> discriminators, resume."""
    c, agent, engine = trainer.config, trainer.agent, trainer.engine
    start = time.perf_counter()
    collect(trainer)
    collected = time.perf_counter()
    version = engine.policy_version
    high = engine.high_level()
    if not (np.all(engine.low_level()["policy_version"] == version) and np.all(high["policy_version"] == version)):
        raise RuntimeError("a sample of this batch was not produced by the current policy version")
    low_batch, disc_batch, stats = low_level_batch(trainer, high)
    metrics: dict[str, float] = dict(stats)
    if c.algo not in ("mappo", "no_high"):
        high_batch, high_stats = high_level_batch(trainer, high)
        metrics.update(high_stats)
        metrics.update({f"Losses/Coordinator/{k}": float(v) for k, v in agent.update_coordinator(high_batch).items()})
    metrics.update({f"Losses/Discoverer/{k}": float(v) for k, v in agent.update_discoverer(low_batch).items()})
    if c.algo != "mappo":
        disc = agent.update_discriminators(disc_batch, train_team=c.lambda_team > 0, train_indiv=c.lambda_indi > 0)
        metrics.update({f"Losses/Discriminator/{k}": float(v) for k, v in disc.items()})
    updated = time.perf_counter()
    engine.resume()
    trainer.iteration += 1
    counters = engine.counters()
    metrics.update({
        "Sync/PolicyVersion": float(counters["policy_version"]),
        "Sync/CollectionTime": collected - start,
        "Sync/UpdateTime": updated - collected,
        "Sync/Efficiency": (collected - start) / max(updated - start, 1e-9),
        "Buffer/SamplesCollected": float(counters["low_level_samples"]),
        "Buffer/high_level_samples_total": float(counters["high_level_transitions"]),
        "Buffer/ForceClosedWindows": float(counters["force_closed_windows"]),
        "Training/EnvSteps": float(trainer.env_steps),
        "Training/SPS": c.horizon * c.num_envs / max(updated - start, 1e-9),
    })
    for i in range(trainer.env.num_agents):
        metrics[f"Agents/{i}/SamplesPushed"] = float(agent.samples_pushed[i])
        metrics[f"Agents/{i}/UpdatesApplied"] = float(agent.updates_applied[i])
    episodes = trainer.env.episode_stats()
    if episodes["episodes"]:
        metrics["Training/Episodes_Completed"] = float(episodes["episodes"])
        metrics["Training/Episode_Reward"] = float(np.mean(episodes["return"]))
        metrics["Training/Episode_Length"] = float(episodes["length"])
        for i, value in enumerate(episodes["return"]):
            metrics[f"Agents/{i}/Return"] = float(value)
        if "success" in episodes:
            metrics["Training/Success"] = float(episodes["success"])
        for key in scalar_info_fields(trainer.env):
            metrics[performance_tag(key)] = float(episodes[key])
    trainer.history.append(metrics)
    return metrics


def agent_records(trainer: Trainer) -> dict[str, Any]:
    """Per agent: samples pushed, updates applied and the config its networks were built with (agents.json)."""
    agent = trainer.agent
    return {"policy_sharing": trainer.config.policy_sharing,
            "agents": [{"agent": i, "samples_pushed": agent.samples_pushed[i],
                        "updates_applied": agent.updates_applied[i], "network_config": agent.network_config(i)}
                       for i in range(trainer.env.num_agents)]}


def run(config: TrainConfig, on_iteration: Callable[[Trainer, dict[str, float]], None] | None = None,
        trainer: Trainer | None = None) -> Trainer:
    """Trains until ``config.total_steps`` env steps; evaluates every ``eval_interval`` updates and at the end."""
    trainer = trainer or build(config)
    c = trainer.config
    while trainer.env_steps < c.total_steps:
        metrics = iterate(trainer)
        if c.eval_interval and trainer.iteration % c.eval_interval == 0:
            result = evaluate(trainer, c.eval_episodes)
            metrics.update({"Eval/MeanReward": result["mean_reward"], "Eval/StdReward": result["std_reward"]})
            if "success_rate" in result:
                metrics["Eval/SuccessRate"] = result["success_rate"]
        if on_iteration is not None:
            on_iteration(trainer, metrics)
        log.debug("iteration %d: %s", trainer.iteration, metrics)
    return trainer
