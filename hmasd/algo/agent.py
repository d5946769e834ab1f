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
    """Agent rows [B*N] for the actor and env rows [B] for the critic (B = T * E)."""

    obs: torch.Tensor          # [B*N, O]
    indiv_skill: torch.Tensor  # [B*N]
    action_mask: torch.Tensor  # [B*N, A]
    actions: torch.Tensor      # [B*N]
    old_logp: torch.Tensor     # [B*N]
    advantages: torch.Tensor   # [B*N]
    state: torch.Tensor        # [B, S]
    team_skill: torch.Tensor   # [B]
    old_values: torch.Tensor   # [B]
    returns: torch.Tensor      # [B, N]


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
        self.actor = LowActor(dims.obs_dim, n_z, dims.num_actions, config.hidden, config.skill_last_layer)
        self.critic = LowCritic(dims.state_dim, n_Z, config.hidden, config.skill_last_layer)
        self.team_disc = Discriminator(dims.state_dim, n_Z, config.hidden)
        self.indiv_disc = Discriminator(dims.obs_dim + n_Z, n_z, config.hidden)
        self.high_value_norm = ValueNorm()
        self.low_value_norm = ValueNorm()
        self.optimizers = {
            "coordinator": _adam(self.coordinator, config.lr),
            "actor": _adam(self.actor, config.lr),
            "critic": _adam(self.critic, config.lr),
            "team_disc": _adam(self.team_disc, config.lr),
            "indiv_disc": _adam(self.indiv_disc, config.lr),
        }

    # ---- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act_low(self, obs: torch.Tensor, indiv_skill: torch.Tensor, mask: torch.Tensor, state: torch.Tensor,
                team_skill: torch.Tensor, deterministic: bool = False):
        """obs [E, N, O], indiv_skill [E, N], mask [E, N, A], state [E, S], team_skill [E] ->
        actions, logp [E, N] and the critic's (normalised) value [E]."""
        e, n = obs.shape[:2]
        actions, logp, _ = self.actor.get_action_and_logp(obs.reshape(e * n, -1), indiv_skill.reshape(-1),
                                                          mask.reshape(e * n, -1), deterministic=deterministic)
        values = self.critic(state, team_skill)
        return actions.view(e, n), logp.view(e, n), values

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
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), self.config.max_grad_norm)
        optimizer.step()

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

    def update_discoverer(self, batch: LowBatch) -> dict[str, torch.Tensor]:
        """PPO on the shared actor and the centralised critic (Eq. 7), separate optimisers."""
        c = self.config
        self.low_value_norm.update(batch.returns)
        returns = self.low_value_norm.normalize(batch.returns)
        advantages = normalize_advantages(batch.advantages)
        for _ in range(c.low_epochs):
            _, logp, entropy = self.actor.get_action_and_logp(batch.obs, batch.indiv_skill, batch.action_mask,
                                                              action=batch.actions)
            pg_loss, approx_kl, clipfrac = policy_loss(logp, batch.old_logp, advantages, c.clip)
            entropy_mean = entropy.mean()
            self._step("actor", self.actor, pg_loss - c.low_entropy_coef * entropy_mean)
            values = self.critic(batch.state, batch.team_skill)
            v_loss = value_loss(values.unsqueeze(-1).expand_as(returns), batch.old_values.unsqueeze(-1).expand_as(returns),
                                returns, c.value_clip, c.huber_delta)
            self._step("critic", self.critic, c.value_coef * v_loss)
        return {"total": (pg_loss + c.value_coef * v_loss - c.low_entropy_coef * entropy_mean).detach(),
                "policy": pg_loss.detach(), "value": v_loss.detach(), "entropy": entropy_mean.detach(),
                "approx_kl": approx_kl, "clipfrac": clipfrac,
                "explained_variance": explained_variance(values.detach().unsqueeze(-1).expand_as(returns), returns)}

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
