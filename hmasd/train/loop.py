"""The synchronous HMASD loop: collect T steps through the native engine, update coordinator -> discoverer ->
discriminators, resume. Also the flat MAPPO baseline and the paper's ablations (config.algo)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import hmasd.envs
from hmasd.algo import targets
from hmasd.algo.agent import DiscBatch, EnvDims, HighBatch, HMASDAgent, LowBatch
from hmasd.algo.disc_features import disc_features
from hmasd.algo.draws import EnvRows
from hmasd.algo.ppo import LOCAL, BatchReduce
from hmasd.rollout import DeviceRolloutEngine, RolloutEngine
from hmasd.train.config import TrainConfig
from hmasd.train.distributed import Ranks

log = logging.getLogger("hmasd.train")

# Host syncs the device path makes per batch, by call (see :class:`HostSyncs`); docs/training.md explains each.
SYNC_METRIC = "Sync/host_syncs_per_batch"
UPDATE_THREADS = 2
"""Threads the CPU updates run on side by side (the discoverer, the coordinator and each discriminator are jobs,
submitted longest first)."""


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


def merge_batch_records(records: list[BatchRecord]) -> BatchRecord:
    """The ranks' records of one batch (in rank order, each of its own slice of envs) as the record of the global
    batch: the env axis concatenated, env indices shifted to global ones (so the transitions stay sorted by env)."""
    envs = [record.env_reward.shape[1] for record in records]
    offsets = np.cumsum([0, *envs[:-1]])
    per_step = {key: np.concatenate([getattr(r, key) for r in records], axis=1)
                for key in ("env_reward", "team_component", "indiv_component", "ended")}
    per_window = {key: np.concatenate([getattr(r, key) for r in records])
                  for key in ("high_start", "team_skill", "indiv_skill")}
    high_env = np.concatenate([r.high_env + offset for r, offset in zip(records, offsets)])
    metrics = {(t, e + int(offset)): values for r, offset in zip(records, offsets)
               for (t, e), values in r.episode_metrics.items()}
    return BatchRecord(**per_step, high_env=high_env, **per_window, episode_metrics=metrics)


class HostSyncs:
    """Counts the calls of one batch that make the host wait for the device (device path only).

    Only the calls the loop makes itself are counted (each names itself with :meth:`add`); torch's own kernels
    are launched asynchronously and the updates' minibatch index copies are not counted.
    """

    def __init__(self) -> None:
        self.by_call: dict[str, int] = {}

    def add(self, call: str, count: int = 1) -> None:
        self.by_call[call] = self.by_call.get(call, 0) + count

    @property
    def total(self) -> int:
        return sum(self.by_call.values())

    def reset(self) -> None:
        self.by_call = {}


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
    # device path: the scalar episode-info fields after every step [T, E, F], read on the host once per batch
    episode_info_log: torch.Tensor | None = None
    syncs: HostSyncs = field(default_factory=HostSyncs)
    # CPU runs with parallel_updates: the threads the updates run on side by side (see run_updates)
    update_pool: ThreadPoolExecutor | None = None
    # distributed training (hmasd.train.distributed): this rank's place and groups; None for a single process
    ranks: Ranks | None = None
    # which envs of the global batch this process steps: every draw of the policy is keyed by env through it
    draws: EnvRows | None = None
    # the options the envs were made with (config.env_options_at: they change once, after a curriculum's warm-up)
    env_options: dict[str, Any] | None = None

    @property
    def on_device(self) -> bool:
        """True when env and engine live on a CUDA device (or a stand-in for one): the no-sync collect path."""
        return isinstance(self.engine, DeviceRolloutEngine)

    @property
    def is_main(self) -> bool:
        """The process that logs and writes (rank 0, or the only one)."""
        return self.ranks is None or self.ranks.is_main

    def reduce_for(self, job: str) -> BatchReduce:
        """How update ``job`` takes its batch statistics: over every rank (its own group) or this process."""
        return LOCAL if self.ranks is None else self.ranks.updates[job]


def scalar_info_fields(env: Any) -> list[str]:
    """The env's episode info fields with one value per env (uav_coverage's throughput, coverage, ...)."""
    return [key for key, values in env.episode_info.items() if values.ndim == 1]


def performance_tag(field_name: str) -> str:
    """TensorBoard tag of an env episode metric: system_throughput_mbps -> Performance/Episode_System_Throughput_Mbps."""
    return "Performance/Episode_" + "_".join(word.capitalize() for word in field_name.split("_"))


def resolve_device(name: str) -> torch.device:
    """The torch device of ``config.device``; a CUDA device that torch cannot use is a clear ValueError."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {name!r} ({error})") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build_tag = "a CPU-only torch build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise ValueError(f"device={name!r}: torch {torch.__version__} ({build_tag}) sees no CUDA device on "
                             f"this machine; train with --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def build(config: TrainConfig, env: Any = None, ranks: Ranks | None = None) -> Trainer:
    """Creates the env, the engine and a freshly initialised agent for ``config``.

    On a CUDA ``config.device`` the env is made on that device, so the engine and the learner share it and the
    collect loop never copies observations, actions or rewards through the host. ``env`` replaces the env made
    here (a stand-in for tests; it is reset here). With ``ranks`` (distributed training) the env is this rank's
    slice of the ``config.num_envs`` envs: the same envs, with the same random streams, as in a single process.
    """
    config = effective_config(config)
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device) if ranks is None else ranks.device
    first_env = 0 if ranks is None else ranks.env_slice(config.num_envs)[0]
    env_options = config.env_options_at(0)
    if env is None:
        env = make_env(config, env_options, device, ranks)
    if config.low_log_std_final is not None and env.num_actions > 0:
        raise ValueError(f"low_log_std_final caps the log-std of continuous actions; {config.env} has "
                         f"{env.num_actions} discrete actions")
    env.reset()
    engine = make_engine(config, env)
    dims = EnvDims(env.num_agents, env.obs_dim, env.state_dim, env.num_actions, env.action_dim)
    features = disc_features(config.disc_features, config.env, dict(env.options), env.state_dim, env.obs_dim)
    agent = HMASDAgent(dims, config.algo_config(), features).to(device)
    if ranks is not None:
        ranks.broadcast_parameters(agent)
    generator = torch.Generator().manual_seed(config.seed)
    e, n, h = env.num_envs, env.num_agents, config.hidden
    # on a device the updates queue on one stream anyway: threads would only add host work
    pool = None
    if config.parallel_updates and device.type == "cpu":
        # a new thread starts with torch's default intra-op threads (every core): split the run's threads instead
        per_thread = max(1, torch.get_num_threads() // UPDATE_THREADS)
        pool = ThreadPoolExecutor(UPDATE_THREADS, thread_name_prefix="hmasd-update",
                                  initializer=torch.set_num_threads, initargs=(per_thread,))
    return Trainer(config, env, engine, agent, device, generator, update_pool=pool, ranks=ranks,
                   env_options=env_options, draws=EnvRows.block(first_env, e, config.num_envs, device),
                   actor_hidden=torch.zeros(e, n, h, device=device), critic_hidden=torch.zeros(e, h, device=device),
                   starts=torch.ones(e, dtype=torch.bool, device=device))


def make_env(config: TrainConfig, options: dict[str, Any], device: torch.device, ranks: Ranks | None) -> Any:
    """This process's envs with ``options``: all ``config.num_envs``, or this rank's slice of them. A CUDA run keeps
    env, engine and learner on one device (a CPU run passes no device)."""
    first_env, num_envs = (0, config.num_envs) if ranks is None else ranks.env_slice(config.num_envs)
    placement = {"device": str(device)} if device.type == "cuda" else {}
    slice_of = {"first_env": first_env} if ranks is not None else {}
    return hmasd.envs.make(config.env, num_envs=num_envs, seed=config.seed, num_threads=config.num_threads,
                           **placement, **slice_of, **options)


def make_engine(config: TrainConfig, env: Any) -> RolloutEngine:
    return RolloutEngine(env, config.horizon, config.skill_interval, config.num_team_skills,
                         config.num_indiv_skills, clock=config.clock)


def follow_curriculum(trainer: Trainer, env_steps: int) -> bool:
    """Makes the trainer's envs those of ``env_steps`` (``TrainConfig.warmup_steps``): where that changes their
    options, new envs (fresh episodes, same seed) and a new engine replace the old ones, and the GRU states restart
    with the episodes. The agent, its optimisers and every random stream carry on; the new engine counts its
    policy versions (``Sync/PolicyVersion``) from the switch. Returns whether it switched.

    Called between iterations (the engine has just resumed: nothing of the next batch is collected yet), so the only
    samples lost are the windows open at the switch: the episodes they belong to end there."""
    options = trainer.config.env_options_at(env_steps)
    if options == trainer.env_options:
        return False
    env = make_env(trainer.config, options, trainer.device, trainer.ranks)
    env.reset()
    trainer.env, trainer.engine, trainer.env_options = env, make_engine(trainer.config, env), options
    trainer.starts = torch.ones_like(trainer.starts)
    phase = "warm-up" if env_steps < trainer.config.warmup_steps else "the real env"
    log.info("curriculum: %s from %d env steps, envs remade with options %s", phase, env_steps, options)
    return True


# ---- acting -------------------------------------------------------------------------------------
def env_actions(actions: torch.Tensor) -> np.ndarray:
    """The policy's actions as the native env takes them: int32 indices, or float32 vectors (continuous envs clip
    them to their bounds)."""
    values = actions.cpu().numpy()
    return values.astype(np.float32 if actions.is_floating_point() else np.int32)


def decide(trainer: Trainer, state: torch.Tensor, obs: torch.Tensor, deterministic: bool = False,
           draws: EnvRows | None = None, generator: torch.Generator | None = None):
    """High-level decisions for a batch of envs: skills [D, N+1], log-probs and values, as numpy.

    ``draws`` names the envs of the global batch the rows are: the coordinator's noise, and no_high's random
    skills, are then drawn for all of them and each env's kept (hmasd.algo.draws), so that an env's skills do not
    depend on which envs decide with it, or on which rank. no_high draws from ``generator`` (default: the
    trainer's)."""
    c, agent = trainer.config, trainer.agent
    d, n = state.shape[0], obs.shape[1]
    if c.algo == "mappo":
        zeros = np.zeros((d, n + 1), np.float32)
        return np.zeros((d, n + 1), np.int64), zeros, zeros
    if c.algo == "no_high":
        draws = EnvRows.block(0, d, d) if draws is None else draws
        generator = trainer.generator if generator is None else generator
        team = draws.randint(c.num_team_skills, 1, generator)
        indiv = draws.randint(c.num_indiv_skills, n, generator)
        logp = np.zeros((d, n + 1), np.float32)
        return torch.cat([team, indiv], 1).numpy(), logp, logp
    skills, logp, values = agent.coordinator.act(state.to(trainer.device), obs.to(trainer.device), deterministic,
                                                 draws)
    return skills.cpu().numpy(), logp.cpu().numpy(), values.cpu().numpy()


def as_tensor(x: Any, device: torch.device) -> torch.Tensor:
    """An engine buffer on the learner's device: NumPy (CPU engine) through torch.from_numpy, tensors as they are
    (a device engine's buffers already live there)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device)
    return x.to(device)


def as_numpy(x: Any) -> np.ndarray:
    """A buffer for the run tracker, on the host (one device-to-host copy for a tensor)."""
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def host_floats(trainer: Trainer, values: dict[str, Any], call: str) -> dict[str, float]:
    """Scalar tensors as floats with one device-to-host copy for all of them (one sync instead of one each)."""
    if not values:
        return {}
    if trainer.on_device:
        trainer.syncs.add(call)
    # float64 holds every float32 exactly: the floats are those float(tensor) gives, one by one
    stacked = torch.stack([torch.as_tensor(v).detach().to(torch.float64).reshape(()) for v in values.values()])
    return dict(zip(values, stacked.cpu().tolist()))


class distribution_checks_off:
    """Switches off torch.distributions' argument checks: each check is a ``bool(tensor)``, a host sync per
    distribution on a CUDA device (the samples and log-probs do not change)."""

    def __enter__(self) -> None:
        self.previous = torch.distributions.Distribution._validate_args
        torch.distributions.Distribution.set_default_validate_args(False)

    def __exit__(self, *exc: Any) -> None:
        torch.distributions.Distribution.set_default_validate_args(self.previous)


def decide_on_device(trainer: Trainer, state: torch.Tensor, obs: torch.Tensor, deterministic: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """High-level decisions as tensors on the learner's device (no host copy): skills [D, N+1] int64, log-probs
    and values [D, N+1] float32. ``no_high`` draws its skills from the device's global RNG (the CPU path's
    generator lives on the host)."""
    c, dev = trainer.config, trainer.device
    d, n = state.shape[0], obs.shape[1]
    if c.algo == "mappo":
        zeros = torch.zeros(d, n + 1, device=dev)
        return torch.zeros(d, n + 1, dtype=torch.long, device=dev), zeros, zeros
    if c.algo == "no_high":
        team = trainer.draws.randint(c.num_team_skills, 1, device=dev)
        indiv = trainer.draws.randint(c.num_indiv_skills, n, device=dev)
        zeros = torch.zeros(d, n + 1, device=dev)
        return torch.cat([team, indiv], 1), zeros, zeros
    return trainer.agent.coordinator.act(state.to(dev), obs.to(dev), deterministic, trainer.draws)


def hidden_log_buffers(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Per-step GRU states of one batch (before each step, the critic's after it, episode starts)."""
    c, device, e = trainer.config, trainer.device, trainer.env.num_envs
    return {"actor": torch.zeros(c.horizon, *trainer.actor_hidden.shape, device=device),
            "critic": torch.zeros(c.horizon, *trainer.critic_hidden.shape, device=device),
            "critic_after": torch.zeros(c.horizon, *trainer.critic_hidden.shape, device=device),
            "starts": torch.zeros(c.horizon, e, dtype=torch.bool, device=device)}


def collect(trainer: Trainer) -> None:
    """Fills one batch of T steps per env through the engine (the coordinator runs only for envs that need it)."""
    if trainer.on_device:
        collect_on_device(trainer)
        return
    env, engine, device, c = trainer.env, trainer.engine, trainer.device, trainer.config
    team_now = torch.from_numpy(engine.windows["team_skill"])
    indiv_now = torch.from_numpy(engine.windows["indiv_skill"])
    recurrent = c.recurrent
    # a GRU's updates replay the batch from the hidden state before each step; the MLP needs none of it
    log = hidden_log_buffers(trainer) if recurrent else {}
    metric_fields = scalar_info_fields(env)
    trainer.episode_metrics = {}
    for t in range(c.horizon):
        obs, state, mask = (torch.from_numpy(a) for a in (engine.obs, engine.state, engine.action_mask))
        ids = engine.decision_env_ids()
        if len(ids):
            index = torch.from_numpy(ids).long()
            skills, logp, values = decide(trainer, state[index], obs[index], draws=trainer.draws.pick(index))
            engine.decide(ids, skills[:, 0].astype(np.int32), skills[:, 1:].astype(np.int32), logp, values)
        if recurrent:
            log["actor"][t], log["critic"][t], log["starts"][t] = trainer.actor_hidden, trainer.critic_hidden, trainer.starts
        actions, logp, values, h_actor, h_critic = trainer.agent.act_low(
            obs.to(device), indiv_now.to(device), mask.to(device), state.to(device), team_now.to(device),
            actor_hidden=trainer.actor_hidden if recurrent else None,
            critic_hidden=trainer.critic_hidden if recurrent else None,
            starts=trainer.starts if recurrent else None, draws=trainer.draws)
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


def collect_on_device(trainer: Trainer) -> None:
    """:func:`collect` for an env and engine on the device: the host only launches work, never waits for it.

    Per step the coordinator runs for every env (which envs need a decision is known on the device only, and
    asking would be a sync); ``decide_all`` keeps the rows of those that do. Steps are unchecked: a rejected
    call is skipped on the device and raised by the one ``check_errors`` at the end of the batch. The env's
    scalar episode metrics are copied into a [T, E, F] device buffer per step and read once per batch.
    """
    env, engine, device, c = trainer.env, trainer.engine, trainer.device, trainer.config
    trainer.syncs.reset()
    team_now, indiv_now = engine.windows["team_skill"], engine.windows["indiv_skill"]  # rewritten by decide_all
    recurrent = c.recurrent
    log = hidden_log_buffers(trainer) if recurrent else {}
    metric_fields = scalar_info_fields(env)
    info_log = torch.zeros(c.horizon, env.num_envs, len(metric_fields), device=device) if metric_fields else None
    trainer.episode_metrics = {}
    for t in range(c.horizon):
        obs, state, mask = engine.obs, engine.state, engine.action_mask
        skills, high_logp, high_values = decide_on_device(trainer, state, obs)
        engine.decide_all(skills[:, 0].to(torch.int32), skills[:, 1:].to(torch.int32),
                          high_logp.to(torch.float32).contiguous(), high_values.to(torch.float32).contiguous(),
                          check=False)
        if recurrent:
            log["actor"][t], log["critic"][t], log["starts"][t] = trainer.actor_hidden, trainer.critic_hidden, trainer.starts
        actions, logp, values, h_actor, h_critic = trainer.agent.act_low(
            obs, indiv_now, mask, state, team_now,
            actor_hidden=trainer.actor_hidden if recurrent else None,
            critic_hidden=trainer.critic_hidden if recurrent else None,
            starts=trainer.starts if recurrent else None, draws=trainer.draws)
        actions = actions.to(torch.float32 if actions.is_floating_point() else torch.int32)
        engine.step(actions, logp.contiguous(), values.contiguous(), check=False)
        if info_log is not None:  # the finished episodes' info is only in the env's buffers until the next step
            info_log[t] = torch.stack([env.episode_info[key] for key in metric_fields], -1)
        if recurrent:
            trainer.starts = env.terminated | env.truncated
            trainer.actor_hidden, trainer.critic_hidden = h_actor, h_critic
            log["critic_after"][t] = h_critic
    engine.check_errors()  # the deferred device-side rejections of this batch's unchecked calls
    trainer.syncs.add("check_errors")
    trainer.hidden_log = log
    trainer.episode_info_log = info_log
    trainer.env_steps += c.horizon * c.num_envs


def episode_metrics_from_log(trainer: Trainer, ended: np.ndarray) -> dict[tuple[int, int], dict[str, float]]:
    """The device path's per-episode metrics: (step t, env e) -> {field: value} for every episode that ended,
    from the [T, E, F] buffer filled by :func:`collect_on_device` (one host copy)."""
    if trainer.episode_info_log is None:
        return {}
    trainer.syncs.add("episode_info_log")
    values = trainer.episode_info_log.cpu().numpy()
    fields = scalar_info_fields(trainer.env)
    return {(int(t), int(e)): {key: float(values[t, e, f]) for f, key in enumerate(fields)}
            for t, e in zip(*np.nonzero(ended))}


# ---- targets ------------------------------------------------------------------------------------
def low_level_batch(trainer: Trainer, high: dict[str, np.ndarray] | None = None
                    ) -> tuple[LowBatch, DiscBatch, dict[str, float]]:
    """Intrinsic rewards with the pre-update discriminators, then GAE over [T, E, N]. ``high`` is the batch's
    ``engine.high_level()`` when the caller already has it (it sorts and gathers, so it is computed once)."""
    c, agent, engine, dev = trainer.config, trainer.agent, trainer.engine, trainer.device
    low = {k: as_tensor(v, dev) for k, v in engine.low_level().items()}
    next_obs, next_state = (as_tensor(a, dev) for a in engine.next_observations())
    t_len, e, n = low["rewards"].shape
    team, indiv = low["team_skill"], low["indiv_skill"]
    r_team, r_indiv = agent.intrinsic_rewards(next_state, next_obs, team, indiv)
    rewards = targets.low_level_reward(low["rewards"], r_team, r_indiv, c.lambda_env, c.lambda_team, c.lambda_indi)
    norm = agent.low_value_norm
    values = norm.denormalize(low["values"])  # [T, E, N]; equal over agents with a shared critic
    ended = low["terminated"] | low["truncated"]
    final_values, barrier_values = low_level_bootstrap(trainer, next_state, team)
    next_values = targets.low_level_next_values(values, norm.denormalize(final_values), ended,
                                                norm.denormalize(barrier_values))
    expand = lambda x: x.unsqueeze(-1).expand(t_len, e, n)  # noqa: E731
    ends = targets.return_ends(low["terminated"], low["truncated"], c.time_limit_bootstrap)
    advantages, returns = targets.gae(rewards, values, next_values, expand(ends),
                                      expand(targets.chain_breaks_at_barrier(ended)), c.gamma, c.gae_lambda)
    hidden = trainer.hidden_log
    rows = lambda x: x.reshape(t_len, e * n, *x.shape[3:])  # noqa: E731
    batch = LowBatch(
        obs=rows(low["obs"]), indiv_skill=rows(indiv), action_mask=rows(low["action_mask"]),
        actions=rows(low["actions"]), old_logp=rows(low["logp"]), advantages=rows(advantages),
        state=low["state"], team_skill=team, old_values=low["values"], returns=returns)
    if c.recurrent:
        batch.actor_hidden, batch.critic_hidden = rows(hidden["actor"]), hidden["critic"]
        batch.actor_starts = hidden["starts"].unsqueeze(-1).expand(t_len, e, n).reshape(t_len, e * n)
        batch.critic_starts = hidden["starts"]
    disc = DiscBatch(next_state=next_state.reshape(t_len * e, -1), team_skill=team.reshape(-1),
                     next_obs=next_obs.reshape(t_len * e * n, -1),
                     row_team=team.unsqueeze(-1).expand(t_len, e, n).reshape(-1), indiv_skill=indiv.reshape(-1))
    stats = host_floats(trainer, {"Rewards/Env": low["rewards"].mean(), "Rewards/Intrinsic/Team": r_team.mean(),
                                  "Rewards/Intrinsic/Individual": r_indiv.mean(), "Rewards/LowLevel": rewards.mean()},
                        "low_level_stats")
    if trainer.ranks is not None:  # means over batches of one size: the mean of the ranks' means
        stats = dict(zip(stats, trainer.ranks.sum(list(stats.values())) / trainer.ranks.world_size))
    if high is None:
        high = engine.high_level()
        if trainer.on_device:
            trainer.syncs.add("high_level")
    trainer.last_batch = batch_record(trainer, low, r_team, r_indiv, ended, high)
    return batch, disc, stats


def low_level_bootstrap(trainer: Trainer, next_state: torch.Tensor, team: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The critic's normalised values for the low-level bootstrap: V(s', Z) of every step [T, E, N] (from the
    GRU state after the step), and E_{Z'} V(s_T, Z') at the barrier [E, N] under the pre-update coordinator's
    team-skill distribution (uniform where skills are drawn at random)."""
    c, agent, engine, dev = trainer.config, trainer.agent, trainer.engine, trainer.device
    t_len, e = team.shape
    recurrent, hidden = c.recurrent, trainer.hidden_log
    after = hidden["critic_after"].reshape(t_len * e, -1) if recurrent else None
    no_start = torch.zeros(1, t_len * e, dtype=torch.bool, device=dev) if recurrent else None
    final = agent.critic_values(next_state.reshape(1, t_len * e, -1), team.reshape(1, -1), after, no_start)
    boot_state = as_tensor(engine.windows["bootstrap_state"], dev)
    boot_obs = as_tensor(engine.windows["bootstrap_obs"], dev)
    if c.algo in ("mappo", "no_high"):
        team_probs = torch.full((e, c.num_team_skills), 1.0 / c.num_team_skills, device=dev)
    else:
        team_probs = agent.team_skill_probs(boot_state, boot_obs)
    barrier = agent.barrier_values(boot_state, team_probs, trainer.critic_hidden if recurrent else None,
                                   trainer.starts if recurrent else None)
    return final.reshape(t_len, e, -1), barrier


def batch_record(trainer: Trainer, low: dict[str, torch.Tensor], r_team: torch.Tensor, r_indiv: torch.Tensor,
                 ended: torch.Tensor, high: dict[str, Any]) -> BatchRecord:
    """The tracker's view of the batch, on the host: one copy per field, once per batch."""
    c = trainer.config
    host = {"env_reward": low["rewards"].mean(-1), "team_component": c.lambda_team * r_team,
            "indiv_component": (c.lambda_indi * r_indiv).mean(-1), "ended": ended, "high_env": high["env"],
            "high_start": high["start"], "team_skill": high["team_skill"], "indiv_skill": high["indiv_skill"]}
    if trainer.on_device:
        trainer.syncs.add("batch_record", len(host))
    host = {key: as_numpy(value) for key, value in host.items()}
    if trainer.on_device:  # collect() could not read the metrics per step without a sync; they are in the log
        trainer.episode_metrics = episode_metrics_from_log(trainer, host["ended"])
    return BatchRecord(**host, episode_metrics=trainer.episode_metrics)  # collect() starts a new dict per batch


def high_level_bootstrap(engine: RolloutEngine, high: dict[str, Any], low: dict[str, Any],
                         device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The state and observations each window led to: the final ones where its episode ended on its last step,
    else (the window was cut by the barrier, or closed by the clock) the env's at the barrier. Only truncated
    windows use them; windows closed by the clock mid-batch take the next window's values instead.

    Takes NumPy (CPU engine) or tensors (device engine); returns tensors on ``device`` (default: where the
    buffers are), gathered there without a host copy."""
    def get(x: Any) -> torch.Tensor:
        return as_tensor(x, device) if device is not None else (torch.from_numpy(x) if isinstance(x, np.ndarray) else x)

    end_rows, envs = (get(high["start"]) + get(high["length"]) - 1).long(), get(high["env"]).long()
    ended = get(low["terminated"])[end_rows, envs] | get(low["truncated"])[end_rows, envs]
    state = torch.where(ended[:, None], get(low["final_state"])[end_rows, envs],
                        get(engine.windows["bootstrap_state"])[envs])
    obs = torch.where(ended[:, None, None], get(low["final_obs"])[end_rows, envs],
                      get(engine.windows["bootstrap_obs"])[envs])
    return state, obs


def high_level_batch(trainer: Trainer, high: dict[str, np.ndarray] | None = None
                     ) -> tuple[HighBatch, dict[str, float]]:
    """Per-token GAE over each env's windows (discount per decision), bootstrapped at truncation."""
    c, agent, engine, dev = trainer.config, trainer.agent, trainer.engine, trainer.device
    if high is None:
        high = engine.high_level()
        if trainer.on_device:
            trainer.syncs.add("high_level")
    low = engine.low_level()
    tensor = lambda a: as_tensor(a, dev)  # noqa: E731
    norm = agent.high_value_norm
    values = norm.denormalize(tensor(high["values"]))  # [M, N+1]
    rewards = targets.high_level_reward(tensor(high["reward_sum"]))
    truncated = tensor(high["truncated"])  # the time limit or the barrier; at_barrier: the barrier alone
    terminated = targets.return_ends(tensor(high["terminated"]), truncated & ~tensor(high["at_barrier"]),
                                     c.time_limit_bootstrap)
    boot_state, boot_obs = high_level_bootstrap(engine, high, low, dev)
    with torch.no_grad():
        boot_values = norm.denormalize(agent.coordinator.value(boot_state, boot_obs))
    next_values = targets.high_level_next_values(values, boot_values, terminated, truncated)
    tokens = lambda x: x.unsqueeze(-1).expand_as(values)  # noqa: E731
    advantages, returns = targets.gae(rewards, values, next_values, tokens(terminated),
                                      tokens(terminated | truncated), c.gamma, c.gae_lambda)
    skills = torch.cat([tensor(high["team_skill"])[:, None], tensor(high["indiv_skill"])], 1)
    batch = HighBatch(state=tensor(high["state"]), obs=tensor(high["obs"]), skills=skills.long(),
                      old_logp=tensor(high["logp"]), old_values=tensor(high["values"]), advantages=advantages,
                      returns=returns, rewards=rewards[:, 0])
    stats = host_floats(trainer, {"Rewards/HighLevel/K_Step_Accumulated_Mean": rewards[:, 0].mean(),
                                  "Buffer/mean_window_length": tensor(high["length"]).to(torch.float64).mean()},
                        "high_level_stats")
    stats = {"Rewards/HighLevel/K_Step_Accumulated_Mean": stats["Rewards/HighLevel/K_Step_Accumulated_Mean"],
             "Buffer/high_level_samples": float(len(skills)),  # the row count is on the host after high_level()
             "Buffer/mean_window_length": stats["Buffer/mean_window_length"]}
    if trainer.ranks is not None:  # each rank has its own number of windows: means weighted by it
        count = stats["Buffer/high_level_samples"]
        reward, length, total = trainer.ranks.sum([stats["Rewards/HighLevel/K_Step_Accumulated_Mean"] * count,
                                                   stats["Buffer/mean_window_length"] * count, count])
        stats = {"Rewards/HighLevel/K_Step_Accumulated_Mean": reward / max(total, 1.0),
                 "Buffer/high_level_samples": float(total), "Buffer/mean_window_length": length / max(total, 1.0)}
    return batch, stats


# ---- the loop -----------------------------------------------------------------------------------
def update_jobs(trainer: Trainer, high: dict[str, Any], low_batch: LowBatch, disc_batch: DiscBatch
                ) -> tuple[dict[str, Callable[[], dict[str, torch.Tensor]]], dict[str, float]]:
    """The iteration's updates by name, longest first (the first free update thread takes the next job), and the
    high-level batch's stats (computed here: only the algorithms with a trained coordinator build that batch)."""
    c, agent, reduce = trainer.config, trainer.agent, trainer.reduce_for
    jobs: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
        "Discoverer": lambda: agent.update_discoverer(low_batch, reduce("Discoverer"),
                                                      c.low_entropy_coef_at(trainer.env_steps))}
    high_stats: dict[str, float] = {}
    if c.algo not in ("mappo", "no_high"):
        high_batch, high_stats = high_level_batch(trainer, high)
        jobs["Coordinator"] = lambda: agent.update_coordinator(high_batch, reduce("Coordinator"))
    if c.algo != "mappo":
        jobs["Discriminator.indiv"] = lambda: agent.update_discriminator("indiv", disc_batch, c.lambda_indi > 0,
                                                                         reduce("Discriminator.indiv"))
        jobs["Discriminator.team"] = lambda: agent.update_discriminator("team", disc_batch, c.lambda_team > 0,
                                                                        reduce("Discriminator.team"))
    return jobs, high_stats


def set_learning_rate(trainer: Trainer, lr: float) -> float:
    """Sets every optimiser's learning rate to ``lr`` (the schedule of ``TrainConfig.lr_final``); returns it."""
    for optimizer in trainer.agent.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = lr
    return lr


def cap_action_log_std(trainer: Trainer, ceiling: float) -> float:
    """Sets every low-level actor's action log-std above ``ceiling`` to it (``TrainConfig.low_log_std_final``);
    returns the ceiling."""
    with torch.no_grad():
        for actor in trainer.agent.actors:
            actor.log_std.clamp_(max=ceiling)
    return ceiling


def run_updates(trainer: Trainer, jobs: dict[str, Callable[[], dict[str, torch.Tensor]]]
                ) -> dict[str, tuple[dict[str, torch.Tensor], float]]:
    """Runs the iteration's updates: each name -> (its losses, its seconds).

    The updates share no parameters, optimiser or input that another writes (every target was computed before),
    so their order does not matter. On the CPU they run side by side on the trainer's update threads: torch
    releases the GIL inside its kernels, and a few small networks keep two cores busy where intra-op threads
    cannot split their small kernels. The results are those of running them one after the other.
    """
    def timed(job: Callable[[], dict[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], float]:
        start = time.perf_counter()
        losses = job()
        return losses, time.perf_counter() - start

    if trainer.update_pool is None:
        return {name: timed(job) for name, job in jobs.items()}
    futures = {name: trainer.update_pool.submit(timed, job) for name, job in jobs.items()}
    return {name: future.result() for name, future in futures.items()}


def iterate(trainer: Trainer) -> dict[str, float]:
    """One synchronous iteration: collect, targets, the updates of discoverer, coordinator and both
    discriminators (side by side on the CPU, see :func:`run_updates`), resume.

    On the device the metrics add ``Sync/host_syncs_per_batch``: the host syncs this iteration made (see
    :class:`HostSyncs`; ``trainer.syncs.by_call`` has them by call)."""
    c, agent, engine = trainer.config, trainer.agent, trainer.engine
    on_device = trainer.on_device
    start = time.perf_counter()
    with distribution_checks_off():
        collect(trainer)
        collected = time.perf_counter()
        version = engine.policy_version
        high = engine.high_level()
        low_versions = engine.low_level()["policy_version"]
        if on_device:
            trainer.syncs.add("high_level")
            trainer.syncs.add("policy_version_check")
            current = bool((low_versions == version).all() & (high["policy_version"] == version).all())
        else:
            current = np.all(low_versions == version) and np.all(high["policy_version"] == version)
        if not current:
            raise RuntimeError("a sample of this batch was not produced by the current policy version")
        low_batch, disc_batch, stats = low_level_batch(trainer, high)
        if trainer.ranks is not None:  # the run tracker on rank 0 sees every rank's envs
            records = trainer.ranks.gather(trainer.last_batch)
            trainer.last_batch = None if records is None else merge_batch_records(records)
        metrics: dict[str, float] = dict(stats)
        if c.lr_final is not None:
            metrics["Training/LR"] = set_learning_rate(trainer, c.lr_at(trainer.env_steps))
        jobs, high_stats = update_jobs(trainer, high, low_batch, disc_batch)
        metrics.update(high_stats)
        losses_by_update: dict[str, dict[str, torch.Tensor]] = {}
        for job, (losses, seconds) in run_updates(trainer, jobs).items():
            losses_by_update.setdefault(job.split(".")[0], {}).update(losses)
            metrics[f"Time/Update/{job}"] = seconds
        ceiling = c.low_log_std_ceiling_at(trainer.env_steps)
        if ceiling is not None:  # the next batch is collected under the capped noise
            metrics["Training/LowLogStdCeiling"] = cap_action_log_std(trainer, ceiling)
        for name, losses in losses_by_update.items():
            # each update's losses come back in one host copy (the learner itself never waits for the host)
            metrics.update(host_floats(trainer, {f"Losses/{name}/{k}": v for k, v in losses.items()},
                                       f"{name.lower()}_losses"))
    ranks = trainer.ranks
    if ranks is not None:  # no rank collects batch v + 1 before every rank has finished update v
        ranks.sync_barrier(version, trainer.iteration)
    updated = time.perf_counter()
    engine.resume()
    trainer.iteration += 1
    counters = engine.counters()
    if on_device:
        trainer.syncs.add("counters", 3)  # transitions emitted / in batch, windows force-closed
    if ranks is not None:
        summed = ranks.sum([counters[key] for key in SUMMED_COUNTERS])
        counters = {**counters, **{key: int(value) for key, value in zip(SUMMED_COUNTERS, summed)}}
        metrics.update({f"Time/Collectives/{name}": seconds for name, seconds in ranks.collective_seconds().items()})
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
    if c.low_entropy_coef_final is not None:
        metrics["Training/LowEntropyCoef"] = c.low_entropy_coef_at(trainer.env_steps)
    for i in range(trainer.env.num_agents):
        metrics[f"Agents/{i}/SamplesPushed"] = float(agent.samples_pushed[i])
        metrics[f"Agents/{i}/UpdatesApplied"] = float(agent.updates_applied[i])
    episodes = trainer.env.episode_stats(None if ranks is None else ranks.sum)
    if on_device:
        trainer.syncs.add("episode_stats")
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
    if on_device:
        metrics[SYNC_METRIC] = float(trainer.syncs.total)
        log.debug("host syncs of batch %d: %s", trainer.iteration, trainer.syncs.by_call)
    follow_curriculum(trainer, trainer.env_steps)
    return metrics


SUMMED_COUNTERS = ("low_level_samples", "high_level_transitions", "force_closed_windows")
"""The engine counters that distributed training sums over the ranks (the policy version is every rank's)."""


def agent_records(trainer: Trainer) -> dict[str, Any]:
    """Per agent: samples pushed, updates applied and the config its networks were built with (agents.json)."""
    agent = trainer.agent
    return {"policy_sharing": trainer.config.policy_sharing,
            "agents": [{"agent": i, "samples_pushed": agent.samples_pushed[i],
                        "updates_applied": agent.updates_applied[i], "network_config": agent.network_config(i)}
                       for i in range(trainer.env.num_agents)]}
