"""The HMASD agent: networks, optimisers, and the updates of coordinator, discoverer and discriminators."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hmasd.algo.coordinator import SkillCoordinator
from hmasd.algo.networks import Discriminator, LowActor, LowCritic
from hmasd.algo.ppo import ValueNorm, explained_variance, normalize_advantages, policy_loss, value_loss


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


def _adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, eps=1e-5)


class HMASDAgent(nn.Module):
    """Coordinator pi_h, discoverer (actor pi_l, critic V_l), discriminators q_D and q_d, each with its optimiser."""

    def __init__(self, dims: EnvDims, config) -> None:
        super().__init__()
        self.dims, self.config = dims, config
        n_z, n_Z = config.num_indiv_skills, config.num_team_skills
        self.coordinator = SkillCoordinator(dims.state_dim, dims.obs_dim, dims.num_agents, n_Z, n_z, config.n_embd,
                                            config.n_head, config.n_block, config.agent_pos_embedding)
        # one actor and critic shared by every agent, or one per agent (independent learners, IPPO for mappo)
        self.independent = config.policy_sharing == "independent"
        copies = dims.num_agents if self.independent else 1
        self.actors = nn.ModuleList(LowActor(dims.obs_dim, n_z, dims.num_actions, config.hidden,
                                             config.skill_last_layer, config.recurrent, dims.action_dim,
                                             config.log_std_init) for _ in range(copies))
        self.critics = nn.ModuleList(LowCritic(dims.state_dim, n_Z, config.hidden, config.skill_last_layer,
                                               config.recurrent) for _ in range(copies))
        self.team_disc = Discriminator(dims.state_dim, n_Z, config.hidden)
        self.indiv_disc = Discriminator(dims.obs_dim + n_Z, n_z, config.hidden)
        self.high_value_norm = ValueNorm()
        self.low_value_norm = ValueNorm()
        self.optimizers = {
            "coordinator": _adam(self.coordinator, config.lr),
            "team_disc": _adam(self.team_disc, config.lr),
            "indiv_disc": _adam(self.indiv_disc, config.lr),
        }
        for i, (actor, critic) in enumerate(zip(self.actors, self.critics)):
            suffix = f"_{i}" if self.independent else ""
            self.optimizers[f"actor{suffix}"] = _adam(actor, config.lr)
            self.optimizers[f"critic{suffix}"] = _adam(critic, config.lr)
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

    def network_config(self, agent: int) -> dict:
        """What agent ``agent``'s low-level networks were built with (identical across agents unless a bug)."""
        c = self.config
        actor = self.actors[agent if self.independent else 0]
        return {"lr": self.optimizers[f"actor_{agent}" if self.independent else "actor"].param_groups[0]["lr"],
                "hidden": c.hidden, "skill_last_layer": c.skill_last_layer, "recurrent": c.recurrent,
                "obs_dim": self.dims.obs_dim, "num_indiv_skills": c.num_indiv_skills,
                "low_entropy_coef": c.low_entropy_coef, "clip": c.clip, "low_epochs": c.low_epochs,
                "parameters": sum(p.numel() for p in actor.parameters()), "policy_sharing": c.policy_sharing}

    # ---- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act_low(self, obs: torch.Tensor, indiv_skill: torch.Tensor, mask: torch.Tensor, state: torch.Tensor,
                team_skill: torch.Tensor, deterministic: bool = False, actor_hidden: torch.Tensor | None = None,
                critic_hidden: torch.Tensor | None = None, starts: torch.Tensor | None = None):
        """One step for E envs: obs [E, N, O], indiv_skill [E, N], mask [E, N, A], state [E, S], team_skill [E]
        (with a GRU: hidden states [E, N, H] and [E, H], episode starts [E]) -> actions, logp, the critic's
        normalised values, all [E, N], and the next hidden states (None for the MLP)."""
        e, n = obs.shape[:2]
        if self.independent:
            steps = [self.actors[i].get_action_and_logp(obs[None, :, i], indiv_skill[None, :, i], mask[None, :, i],
                                                        deterministic=deterministic) for i in range(n)]
            values = torch.stack([critic(state[None], team_skill[None])[0][0] for critic in self.critics], -1)
            return (torch.stack([a[0] for a, *_ in steps], -1), torch.stack([lp[0] for _, lp, *_ in steps], -1),
                    values, None, None)
        rows = lambda x: x.reshape(1, e * n, *x.shape[2:])  # noqa: E731  one step of E*N agent rows
        agent_starts = None if starts is None else starts.unsqueeze(-1).expand(e, n).reshape(1, e * n)
        h_actor = None if actor_hidden is None else actor_hidden.reshape(e * n, -1)
        actions, logp, _, h_actor = self.actor.get_action_and_logp(
            rows(obs), rows(indiv_skill), rows(mask), deterministic=deterministic, h=h_actor, starts=agent_starts)
        values, h_critic = self.critic(state.unsqueeze(0), team_skill.unsqueeze(0), critic_hidden,
                                       None if starts is None else starts.unsqueeze(0))
        h_actor = None if h_actor is None else h_actor.reshape(e, n, -1)
        return actions.view(e, n, *actions.shape[2:]), logp.view(e, n), values[0].unsqueeze(-1).expand(e, n), h_actor, h_critic

    @torch.no_grad()
    def critic_values(self, state: torch.Tensor, team_skill: torch.Tensor, num_agents: int,
                      hidden: torch.Tensor | None = None, starts: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised values [..., N] of states [..., S] under team skills [...] (for bootstrapping)."""
        if self.independent:
            return torch.stack([critic(state, team_skill)[0] for critic in self.critics], -1)
        return self.critic(state, team_skill, hidden, starts)[0].unsqueeze(-1).expand(*team_skill.shape, num_agents)

    def intrinsic_rewards(self, next_state: torch.Tensor, next_obs: torch.Tensor, team_skill: torch.Tensor,
                          indiv_skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log q_D(Z | s') [..] and log q_d(z_i | o_i', Z) [.., N] with the current (pre-update) discriminators."""
        with torch.no_grad():
            team = self.team_disc.log_prob(next_state, team_skill)
            z_onehot = nn.functional.one_hot(team_skill.long(), self.config.num_team_skills).float()
            z_onehot = z_onehot.unsqueeze(-2).expand(*next_obs.shape[:-1], -1)
            indiv = self.indiv_disc.log_prob(torch.cat([next_obs, z_onehot], dim=-1), indiv_skill)
        return team, indiv

    # ---- updates --------------------------------------------------------------------------------
    def _step(self, name: str, module: nn.Module, loss: torch.Tensor) -> None:
        self._step_many([(name, module)], loss)

    def _step_many(self, parts: list[tuple[str, nn.Module]], loss: torch.Tensor) -> None:
        """One optimiser step of each part on ``loss``; gradients are clipped per network."""
        for name, _ in parts:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name, module in parts:
            nn.utils.clip_grad_norm_(module.parameters(), self.config.max_grad_norm)
            self.optimizers[name].step()

    def update_coordinator(self, batch: HighBatch) -> dict[str, torch.Tensor]:
        """PPO on the skill coordinator, every token of every decision at once (Eq. 6, averaged as in the code)."""
        c = self.config
        self.high_value_norm.update(batch.returns)
        returns = self.high_value_norm.normalize(batch.returns)
        advantages = normalize_advantages(batch.advantages)
        for _ in range(c.high_epochs):
            logp, entropy, values = self.coordinator.evaluate(batch.state, batch.obs, batch.skills)
            pg_loss, approx_kl, clipfrac = policy_loss(logp, batch.old_logp, advantages, c.clip)
            v_loss = value_loss(values, batch.old_values, returns, c.value_clip, c.huber_delta)
            entropy_mean = entropy.mean()
            loss = pg_loss + c.value_coef * v_loss - c.high_entropy_coef * entropy_mean
            self._step("coordinator", self.coordinator, loss)
        return {"total": loss.detach(), "policy": pg_loss.detach(), "value": v_loss.detach(),
                "entropy": entropy_mean.detach(), "approx_kl": approx_kl, "clipfrac": clipfrac,
                "explained_variance": explained_variance(values.detach(), returns)}

    def _actor_eval(self, batch: LowBatch):
        """log-probs and entropies [T, E*N] of the stored actions; a GRU replays chunks of ``chunk_length`` steps."""
        if self.independent:
            t, rows = batch.actions.shape
            n = self.dims.num_agents
            per_agent = lambda x, i: x.reshape(t, rows // n, n, *x.shape[2:])[:, :, i]  # noqa: E731
            outs = [self.actors[i].get_action_and_logp(per_agent(batch.obs, i), per_agent(batch.indiv_skill, i),
                                                       per_agent(batch.action_mask, i),
                                                       action=per_agent(batch.actions, i)) for i in range(n)]
            return (torch.stack([o[1] for o in outs], -1).reshape(t, rows),
                    torch.stack([o[2] for o in outs], -1).reshape(t, rows))
        if not self.config.recurrent:
            _, logp, entropy, _ = self.actor.get_action_and_logp(batch.obs, batch.indiv_skill, batch.action_mask,
                                                                 action=batch.actions)
            return logp, entropy
        length = self.config.chunk_length
        _, logp, entropy, _ = self.actor.get_action_and_logp(
            to_chunks(batch.obs, length), to_chunks(batch.indiv_skill, length), to_chunks(batch.action_mask, length),
            action=to_chunks(batch.actions, length), h=chunk_starts(batch.actor_hidden, length),
            starts=to_chunks(batch.actor_starts, length))
        return logp, entropy

    def _critic_eval(self, batch: LowBatch) -> torch.Tensor:
        """Values [T, E, N] (chunked for a GRU) of the stored states, with gradients."""
        n = self.dims.num_agents
        if self.independent:
            return torch.stack([critic(batch.state, batch.team_skill)[0] for critic in self.critics], -1)
        if not self.config.recurrent:
            return self.critic(batch.state, batch.team_skill)[0].unsqueeze(-1).expand(*batch.team_skill.shape, n)
        length = self.config.chunk_length
        values = self.critic(to_chunks(batch.state, length), to_chunks(batch.team_skill, length),
                             chunk_starts(batch.critic_hidden, length), to_chunks(batch.critic_starts, length))[0]
        return values.unsqueeze(-1).expand(*values.shape, n)

    def _agent_means(self, x: torch.Tensor) -> torch.Tensor:
        """Per-agent means of [T, E*N] rows: [N] with independent learners, else the overall mean [1]."""
        if not self.independent:
            return x.mean().unsqueeze(0)
        return x.reshape(x.shape[0], -1, self.dims.num_agents).mean(dim=(0, 1))

    def update_discoverer(self, batch: LowBatch) -> dict[str, torch.Tensor]:
        """PPO on the actor(s) and the centralised critic(s) (Eq. 7); with independent learners every agent's loss
        is its own mean, so the summed loss updates each agent's networks from its own samples only."""
        c = self.config
        chunk = (lambda x: to_chunks(x, c.chunk_length)) if c.recurrent else (lambda x: x)  # noqa: E731
        self.low_value_norm.update(batch.returns)
        returns = chunk(self.low_value_norm.normalize(batch.returns))
        advantages = batch.advantages
        if self.independent:  # normalise each agent's advantages over its own samples
            per_agent = advantages.reshape(advantages.shape[0], -1, self.dims.num_agents)
            advantages = ((per_agent - per_agent.mean((0, 1))) / (per_agent.std((0, 1)) + 1e-8)).reshape_as(advantages)
        else:
            advantages = normalize_advantages(advantages)
        advantages, old_logp, old_values = chunk(advantages), chunk(batch.old_logp), chunk(batch.old_values)
        actor_parts = [(f"actor_{i}" if self.independent else "actor", a) for i, a in enumerate(self.actors)]
        critic_parts = [(f"critic_{i}" if self.independent else "critic", m) for i, m in enumerate(self.critics)]
        for _ in range(c.low_epochs):
            logp, entropy = self._actor_eval(batch)
            ratio = (logp - old_logp).exp()
            surrogate = torch.min(ratio * advantages, ratio.clamp(1 - c.clip, 1 + c.clip) * advantages)
            pg_losses = -self._agent_means(surrogate)
            entropies = self._agent_means(entropy)
            self._step_many(actor_parts, (pg_losses - c.low_entropy_coef * entropies).sum())
            values = self._critic_eval(batch)
            v_losses = torch.stack([value_loss(values[..., i], old_values[..., i], returns[..., i], c.value_clip,
                                               c.huber_delta) for i in range(len(self.critics))]) \
                if self.independent else value_loss(values, old_values, returns, c.value_clip, c.huber_delta)
            self._step_many(critic_parts, c.value_coef * v_losses.sum())
        for i in range(self.dims.num_agents):
            self.updates_applied[i] += c.low_epochs
            self.samples_pushed[i] += batch.old_logp.numel() // self.dims.num_agents
        with torch.no_grad():
            _, approx_kl, clipfrac = policy_loss(logp, old_logp, advantages, c.clip)
        pg_loss, v_loss, entropy_mean = pg_losses.mean(), v_losses.mean(), entropies.mean()
        return {"total": (pg_loss + c.value_coef * v_loss - c.low_entropy_coef * entropy_mean).detach(),
                "policy": pg_loss.detach(), "value": v_loss.detach(), "entropy": entropy_mean.detach(),
                "approx_kl": approx_kl, "clipfrac": clipfrac,
                "explained_variance": explained_variance(values.detach(), returns)}

    def update_discriminators(self, batch: DiscBatch, train_team: bool, train_indiv: bool) -> dict[str, torch.Tensor]:
        """Cross-entropy on the current rollout (Eq. 8), each discriminator with its own optimiser."""
        ce = nn.functional.cross_entropy
        z_onehot = nn.functional.one_hot(batch.row_team.long(), self.config.num_team_skills).float()
        indiv_input = torch.cat([batch.next_obs, z_onehot], dim=-1)
        for _ in range(self.config.disc_epochs):
            if train_team:
                self._step("team_disc", self.team_disc, ce(self.team_disc(batch.next_state), batch.team_skill.long()))
            if train_indiv:
                self._step("indiv_disc", self.indiv_disc, ce(self.indiv_disc(indiv_input), batch.indiv_skill.long()))
        with torch.no_grad():
            team_logits, indiv_logits = self.team_disc(batch.next_state), self.indiv_disc(indiv_input)
            return {
                "team_loss": ce(team_logits, batch.team_skill.long()),
                "indiv_loss": ce(indiv_logits, batch.indiv_skill.long()),
                "team_accuracy": (team_logits.argmax(-1) == batch.team_skill).float().mean(),
                "indiv_accuracy": (indiv_logits.argmax(-1) == batch.indiv_skill).float().mean(),
            }
