"""The HMASD agent: its networks and optimisers, how it acts, and its three updates (coordinator, skill discoverer,
discriminators), each a call of the shared PPO or cross-entropy update."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hmasd.algo.config import AlgoConfig
from hmasd.algo.coordinator import SkillCoordinator
from hmasd.algo.disc_features import DiscFeatures, raw_features
from hmasd.algo.draws import EnvRows
from hmasd.algo.networks import Discriminator, LowActor, LowCritic
from hmasd.algo.ppo import (LOCAL, BatchReduce, Networks, PPOLearner, PPOSettings, ValueNorm, global_mean,
                            normalize_advantages, ppo_update, share_of_mean, supervised_update)
from hmasd.algo.targets import expected_barrier_value


@dataclass
class EnvDims:
    num_agents: int
    obs_dim: int
    state_dim: int
    num_actions: int
    action_dim: int = 0  # components of a continuous action; 0 for discrete envs

    @property
    def continuous(self) -> bool:
        return self.action_dim > 0


@dataclass
class HighBatch:
    """High-level transitions: state [M, S], obs [M, N, O], skills/old_logp/old_values/advantages/returns [M, N+1]."""

    state: torch.Tensor
    obs: torch.Tensor
    skills: torch.Tensor
    old_logp: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    rewards: torch.Tensor  # [M] window reward: env rewards summed over the window, averaged over agents


@dataclass
class LowBatch:
    """Time-major: agent rows [T, E*N] for the actor and env rows [T, E] for the critic. ``*_hidden`` hold each
    step's GRU state before the step and ``*_starts`` the episode starts (both unused by the MLP)."""

    obs: torch.Tensor            # [T, E*N, O]
    indiv_skill: torch.Tensor    # [T, E*N]
    action_mask: torch.Tensor    # [T, E*N, A] (A = 0 for continuous envs)
    actions: torch.Tensor        # [T, E*N] int, or [T, E*N, action_dim] float for continuous envs
    old_logp: torch.Tensor       # [T, E*N]
    advantages: torch.Tensor     # [T, E*N]
    state: torch.Tensor          # [T, E, S]
    team_skill: torch.Tensor     # [T, E]
    old_values: torch.Tensor     # [T, E, N] (equal over agents with a shared critic)
    returns: torch.Tensor        # [T, E, N]
    actor_hidden: torch.Tensor | None = None   # [T, E*N, H]
    critic_hidden: torch.Tensor | None = None  # [T, E, H]
    actor_starts: torch.Tensor | None = None   # [T, E*N]
    critic_starts: torch.Tensor | None = None  # [T, E]


def to_chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """[T, B, ...] -> [length, (T / length) * B, ...]: consecutive steps become the sequence axis."""
    t, b = x.shape[:2]
    return x.reshape(t // length, length, b, *x.shape[2:]).transpose(0, 1).reshape(length, (t // length) * b,
                                                                                  *x.shape[2:])


def chunk_starts(hidden: torch.Tensor, length: int) -> torch.Tensor:
    """The stored hidden state at the first step of every chunk: [T, B, H] -> [(T / length) * B, H]."""
    return hidden[::length].reshape(-1, hidden.shape[-1])


@dataclass
class DiscBatch:
    next_state: torch.Tensor   # [B, S]
    team_skill: torch.Tensor   # [B]
    next_obs: torch.Tensor     # [B*N, O]
    row_team: torch.Tensor     # [B*N] Z of each agent row
    indiv_skill: torch.Tensor  # [B*N]


def agent_rows(x: torch.Tensor, num_agents: int, agents: slice) -> torch.Tensor:
    """[T, E*N, ...] agent rows -> [T, E*n, ...], the rows of the agents in ``agents`` (all of them: a view)."""
    if agents == slice(None):
        return x
    t, rows = x.shape[:2]
    picked = x.reshape(t, rows // num_agents, num_agents, *x.shape[2:])[:, :, agents]
    return picked.reshape(t, picked.shape[1] * picked.shape[2], *x.shape[2:])


def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam as the official code sets it (eps 1e-5), with torch's fused kernel: one pass over every parameter of
    the network instead of a dozen small ops per tensor (4x faster per step on a small network on the CPU)."""
    return torch.optim.Adam(module.parameters(), lr=lr, eps=1e-5, fused=True)


@dataclass
class LowLearner:
    """One low-level actor/critic pair and the agents it acts for: every agent (shared) or one (independent)."""

    actor: LowActor
    critic: LowCritic
    agents: slice
    actor_key: str   # its optimisers' names
    critic_key: str


class HMASDAgent(nn.Module):
    """Coordinator pi_h, discoverer (actor pi_l, critic V_l), discriminators q_D and q_d, each with its optimiser.

    With ``policy_sharing="shared"`` one actor/critic pair serves every agent; with ``"independent"`` each agent
    has its own (IPPO with mappo). Both are lists of :class:`LowLearner`, so acting and updating loop over
    learners and never branch on the sharing mode.
    """

    def __init__(self, dims: EnvDims, config: AlgoConfig, features: DiscFeatures | None = None) -> None:
        super().__init__()
        if not isinstance(config, AlgoConfig):
            raise TypeError(f"config must be an AlgoConfig (TrainConfig.algo_config()), got {type(config).__name__}")
        self.dims, self.config = dims, config
        c, n_z, n_Z = config, config.num_indiv_skills, config.num_team_skills
        self.coordinator = SkillCoordinator(dims.state_dim, dims.obs_dim, dims.num_agents, n_Z, n_z, c.n_embd,
                                            c.n_head, c.n_block, c.agent_pos_embedding)
        copies = dims.num_agents if c.independent else 1
        self.actors = nn.ModuleList(LowActor(dims.obs_dim, n_z, dims.num_actions, c.hidden, c.skill_last_layer,
                                             c.recurrent, dims.action_dim, c.log_std_init) for _ in range(copies))
        self.critics = nn.ModuleList(LowCritic(dims.state_dim, n_Z, c.hidden, c.skill_last_layer, c.recurrent)
                                     for _ in range(copies))
        # what q_D and q_d see (the paper's s' and o_i' unless ``features`` says otherwise)
        self.features = raw_features(dims.state_dim, dims.obs_dim) if features is None else features
        self.team_disc = Discriminator(self.features.team_dim, n_Z, c.hidden)
        self.indiv_disc = Discriminator(self.features.indiv_dim + n_Z, n_z, c.hidden)
        self.high_value_norm = ValueNorm()
        self.low_value_norm = ValueNorm()
        self.optimizers = {"coordinator": adam(self.coordinator, c.lr), "team_disc": adam(self.team_disc, c.lr),
                           "indiv_disc": adam(self.indiv_disc, c.lr)}
        self.learners: list[LowLearner] = []
        for i, (actor, critic) in enumerate(zip(self.actors, self.critics)):
            suffix = f"_{i}" if c.independent else ""
            self.optimizers[f"actor{suffix}"] = adam(actor, c.lr)
            self.optimizers[f"critic{suffix}"] = adam(critic, c.lr)
            agents = slice(i, i + 1) if c.independent else slice(None)
            self.learners.append(LowLearner(actor, critic, agents, f"actor{suffix}", f"critic{suffix}"))
        # per agent: optimiser steps its policy received and samples it contributed (for the symmetry audit)
        self.updates_applied = [0] * dims.num_agents
        self.samples_pushed = [0] * dims.num_agents

    @property
    def actor(self) -> LowActor:
        """The shared actor (agent 0's with independent learners)."""
        return self.actors[0]

    @property
    def critic(self) -> LowCritic:
        return self.critics[0]

    def learner_of(self, agent: int) -> LowLearner:
        return self.learners[agent if self.config.independent else 0]

    def network_config(self, agent: int) -> dict:
        """What agent ``agent``'s low-level networks were built with (identical across agents unless a bug)."""
        c, learner = self.config, self.learner_of(agent)
        return {"lr": self.optimizers[learner.actor_key].param_groups[0]["lr"],
                "hidden": c.hidden, "skill_last_layer": c.skill_last_layer, "recurrent": c.recurrent,
                "obs_dim": self.dims.obs_dim, "num_indiv_skills": c.num_indiv_skills,
                "low_entropy_coef": c.low_entropy_coef, "clip": c.clip, "low_epochs": c.low_epochs,
                "parameters": sum(p.numel() for p in learner.actor.parameters()), "policy_sharing": c.policy_sharing}

    # ---- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act_low(self, obs: torch.Tensor, indiv_skill: torch.Tensor, mask: torch.Tensor, state: torch.Tensor,
                team_skill: torch.Tensor, deterministic: bool = False, actor_hidden: torch.Tensor | None = None,
                critic_hidden: torch.Tensor | None = None, starts: torch.Tensor | None = None,
                draws: EnvRows | None = None):
        """One step for E envs: obs [E, N, O], indiv_skill [E, N], mask [E, N, A], state [E, S], team_skill [E]
        (with a GRU: hidden states [E, N, H] and [E, H], episode starts [E]) -> actions, logp, the critic's
        normalised values, all [E, N], and the next hidden states (None for the MLP; the GRU is shared-only).
        ``draws``: which envs of the global batch these are (hmasd.algo.draws), for noise keyed by env."""
        e = obs.shape[0]
        actions, logps, values = [], [], []
        h_actor = None if actor_hidden is None else actor_hidden.reshape(-1, actor_hidden.shape[-1])
        for learner in self.learners:
            n = len(range(self.dims.num_agents)[learner.agents])
            rows = lambda x: x[:, learner.agents].reshape(1, e * n, *x.shape[2:])  # noqa: E731  one step, E*n rows
            agent_starts = None if starts is None else starts.unsqueeze(-1).expand(e, n).reshape(1, e * n)
            action, logp, _, h_actor = learner.actor.get_action_and_logp(
                rows(obs), rows(indiv_skill), rows(mask), deterministic=deterministic, h=h_actor, starts=agent_starts,
                draws=draws)
            value, critic_hidden = learner.critic(state.unsqueeze(0), team_skill.unsqueeze(0), critic_hidden,
                                                  None if starts is None else starts.unsqueeze(0))
            actions.append(action.view(e, n, *action.shape[2:]))
            logps.append(logp.view(e, n))
            values.append(value[0].unsqueeze(-1).expand(e, n))
        h_actor = None if h_actor is None else h_actor.reshape(actor_hidden.shape)
        return torch.cat(actions, 1), torch.cat(logps, 1), torch.cat(values, 1), h_actor, critic_hidden

    @torch.no_grad()
    def critic_values(self, state: torch.Tensor, team_skill: torch.Tensor, hidden: torch.Tensor | None = None,
                      starts: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised values [..., N] of states [..., S] under team skills [...] (for bootstrapping)."""
        n = self.dims.num_agents
        values = []
        for learner in self.learners:
            value = learner.critic(state, team_skill, hidden, starts)[0]
            values.append(value.unsqueeze(-1).expand(*value.shape, len(range(n)[learner.agents])))
        return torch.cat(values, -1)

    @torch.no_grad()
    def team_skill_probs(self, state: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """pi_h(Z | s, o_1..o_N), [E, n_Z]: the first decoded token, which sees only the start symbol."""
        coordinator = self.coordinator
        rep, _ = coordinator.encode(state, obs)
        start = coordinator.shifted_input(torch.zeros(state.shape[0], self.dims.num_agents + 1, dtype=torch.long,
                                                      device=state.device))
        logits = coordinator.decode(start, rep)[:, 0, :self.config.num_team_skills]
        return torch.softmax(logits, -1)

    @torch.no_grad()
    def barrier_values(self, state: torch.Tensor, team_probs: torch.Tensor, hidden: torch.Tensor | None = None,
                       starts: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised E_{Z'}[V_l(s_T, Z')] [E, N] at the barrier states [E, S] (see targets.expected_barrier_value);
        ``hidden`` [E, H] and ``starts`` [E] are the GRU's state there."""
        e, n_Z = team_probs.shape
        every_team = torch.arange(n_Z, device=state.device).repeat(e)  # env-major: row e * n_Z + Z
        repeat = lambda x: None if x is None else x.repeat_interleave(n_Z, 0)  # noqa: E731
        values = self.critic_values(repeat(state).unsqueeze(0), every_team.unsqueeze(0), repeat(hidden),
                                    None if starts is None else repeat(starts).unsqueeze(0))[0]
        return expected_barrier_value(team_probs, values.reshape(e, n_Z, -1))

    def intrinsic_rewards(self, next_state: torch.Tensor, next_obs: torch.Tensor, team_skill: torch.Tensor,
                          indiv_skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log q_D(Z | s') [..] and log q_d(z_i | o_i', Z) [.., N] with the current (pre-update) discriminators."""
        with torch.no_grad():
            team = self.team_disc.log_prob(self.features.team(next_state), team_skill)
            z_onehot = nn.functional.one_hot(team_skill.long(), self.config.num_team_skills).float()
            z_onehot = z_onehot.unsqueeze(-2).expand(*next_obs.shape[:-1], -1)
            indiv = self.indiv_disc.log_prob(torch.cat([self.features.indiv(next_obs), z_onehot], dim=-1),
                                             indiv_skill)
        return team, indiv

    # ---- updates --------------------------------------------------------------------------------
    def ppo_settings(self, epochs: int, target_kl: float | None = None) -> PPOSettings:
        c = self.config
        return PPOSettings(epochs, c.clip, c.value_clip, c.huber_delta, c.value_coef, c.max_grad_norm, target_kl)

    def networks(self, *names: str) -> Networks:
        modules = {"coordinator": self.coordinator, "team_disc": self.team_disc, "indiv_disc": self.indiv_disc}
        for learner in self.learners:
            modules[learner.actor_key], modules[learner.critic_key] = learner.actor, learner.critic
        return [(self.optimizers[name], modules[name]) for name in names]

    def update_coordinator(self, batch: HighBatch, reduce: BatchReduce = LOCAL) -> dict[str, torch.Tensor]:
        """Eq. 6: PPO on the skill coordinator, every token of every decision at once (averaged as in the code;
        ``reduce``: over every rank's decisions in distributed training)."""
        c = self.config
        self.high_value_norm.update(batch.returns, reduce)
        learner = PPOLearner(evaluate=lambda: self.coordinator.evaluate(batch.state, batch.obs, batch.skills),
                             old_logp=batch.old_logp, advantages=normalize_advantages(batch.advantages, reduce),
                             old_values=batch.old_values, returns=self.high_value_norm.normalize(batch.returns),
                             entropy_coef=c.high_entropy_coef, count=sample_count(batch.old_logp, reduce))
        return ppo_update([learner], self.networks("coordinator"), self.ppo_settings(c.high_epochs, c.high_target_kl),
                          reduce)

    def update_discoverer(self, batch: LowBatch, reduce: BatchReduce = LOCAL, entropy_coef: float | None = None
                          ) -> dict[str, torch.Tensor]:
        """Eq. 7: PPO on the actor(s) and the centralised critic(s). Each learner's advantages are normalised over
        its own samples (every rank's, in distributed training); with independent learners each agent's networks
        see only its own samples. ``entropy_coef`` is lambda_l for this update (default: the config's)."""
        c, n = self.config, self.dims.num_agents
        self.low_value_norm.update(batch.returns, reduce)
        returns = self.low_value_norm.normalize(batch.returns)
        coef = c.low_entropy_coef if entropy_coef is None else entropy_coef
        learners = [self.low_learner(learner, batch, returns, coef, reduce) for learner in self.learners]
        names = [name for learner in self.learners for name in (learner.actor_key, learner.critic_key)]
        stats = ppo_update(learners, self.networks(*names), self.ppo_settings(c.low_epochs), reduce)
        samples = reduce.count(batch.old_logp.numel())
        for i in range(n):
            self.updates_applied[i] += c.low_epochs
            self.samples_pushed[i] += samples // n
        return stats

    def low_learner(self, learner: LowLearner, batch: LowBatch, returns: torch.Tensor, entropy_coef: float,
                    reduce: BatchReduce = LOCAL) -> PPOLearner:
        """What PPO needs of one low-level learner: its agents' rows of the batch, time-major, chunked for a GRU,
        with this update's lambda_l."""
        c, n = self.config, self.dims.num_agents
        rows = lambda x: agent_rows(x, n, learner.agents)  # noqa: E731  [T, E*N, ...] -> [T, E*n, ...]
        chunk = (lambda x: to_chunks(x, c.chunk_length)) if c.recurrent else (lambda x: x)  # noqa: E731
        obs, skill, mask, actions = (chunk(rows(x)) for x in (batch.obs, batch.indiv_skill, batch.action_mask,
                                                                batch.actions))
        actor_h = critic_h = actor_starts = critic_starts = None
        if c.recurrent:  # the stored hidden state at every chunk's first step
            actor_h = chunk_starts(batch.actor_hidden, c.chunk_length)
            critic_h = chunk_starts(batch.critic_hidden, c.chunk_length)
            actor_starts, critic_starts = chunk(batch.actor_starts), chunk(batch.critic_starts)
        state, team = chunk(batch.state), chunk(batch.team_skill)
        agents = len(range(n)[learner.agents])

        def evaluate() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            _, logp, entropy, _ = learner.actor.get_action_and_logp(obs, skill, mask, action=actions, h=actor_h,
                                                                    starts=actor_starts)
            value = learner.critic(state, team, critic_h, critic_starts)[0]
            return logp, entropy, value.unsqueeze(-1).expand(*value.shape, agents)

        old_logp = chunk(rows(batch.old_logp))
        return PPOLearner(evaluate=evaluate, old_logp=old_logp,
                          advantages=chunk(normalize_advantages(rows(batch.advantages), reduce)),
                          old_values=chunk(batch.old_values[..., learner.agents]),
                          returns=chunk(returns[..., learner.agents]), entropy_coef=entropy_coef,
                          count=sample_count(old_logp, reduce))

    def update_discriminator(self, which: str, batch: DiscBatch, train: bool, reduce: BatchReduce = LOCAL
                             ) -> dict[str, torch.Tensor]:
        """Eq. 8: ``disc_epochs`` full-batch cross-entropy steps of q_D (``which="team"``: Z from s') or q_d
        (``"indiv"``: z_i from o_i' and Z) on the current rollout, none unless ``train``; then its loss and
        accuracy (over every rank's samples in distributed training). The two share nothing, so they can run side
        by side."""
        def ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if count is None:
                return nn.functional.cross_entropy(logits, target)
            return share_of_mean(nn.functional.cross_entropy(logits, target, reduction="none"), count)

        if which == "team":
            network, inputs = self.team_disc, self.features.team(batch.next_state)
            skills = batch.team_skill.long()
        elif which == "indiv":
            z_onehot = nn.functional.one_hot(batch.row_team.long(), self.config.num_team_skills).float()
            network, inputs = self.indiv_disc, torch.cat([self.features.indiv(batch.next_obs), z_onehot], dim=-1)
            skills = batch.indiv_skill.long()
        else:
            raise ValueError(f"which must be 'team' or 'indiv', got {which!r}")
        count = sample_count(skills, reduce)
        if train:
            supervised_update([lambda: ce(network(inputs), skills)], self.networks(f"{which}_disc"),
                              self.config.disc_epochs, self.config.max_grad_norm, reduce)
        with torch.no_grad():
            logits = network(inputs)
            return {f"{which}_loss": reduce.sum(ce(logits, skills)),
                    f"{which}_accuracy": global_mean((logits.argmax(-1) == skills).float(), reduce)}


def sample_count(samples: torch.Tensor, reduce: BatchReduce) -> int | None:
    """The number of elements of ``samples`` over every rank (a collective), or None for a local batch."""
    return reduce.count(samples.numel()) if reduce.distributed else None
