"""PPO building blocks shared by both levels: GAE, running value normalisation, and the clipped losses."""

from __future__ import annotations

import torch
from torch import nn


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
                chain_breaks: torch.Tensor, gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the leading (time) axis.

    Args:
        rewards, values: [T, ...] reward and value of each step.
        next_values: [T, ...] value of the state each step led to (the bootstrap; ignored where terminated).
        terminated: [T, ...] the episode terminated at this step: no bootstrap.
        chain_breaks: [T, ...] the next row does not continue this trajectory (episode end or batch end), so the
            advantage does not flow back across it.
    Returns:
        (advantages, returns) with returns = advantages + values.
    """
    nextnonterminal = 1.0 - terminated.float()
    continues = 1.0 - chain_breaks.float()
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * next_values[t] * nextnonterminal[t] - values[t]
        lastgaelam = delta + gamma * gae_lambda * continues[t] * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values


class ValueNorm(nn.Module):
    """Running mean and variance of the value targets (debiased EMA, as in MAPPO's ValueNorm)."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.beta, self.epsilon = beta, epsilon
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_mean_sq", torch.zeros(()))
        self.register_buffer("debiasing", torch.zeros(()))

    def _mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debiasing.clamp(min=self.epsilon)
        mean, mean_sq = self.running_mean / debias, self.running_mean_sq / debias
        return mean, (mean_sq - mean**2).clamp(min=1e-2)

    @torch.no_grad()
    def update(self, targets: torch.Tensor) -> None:
        self.running_mean.mul_(self.beta).add_(targets.mean() * (1 - self.beta))
        self.running_mean_sq.mul_(self.beta).add_((targets**2).mean() * (1 - self.beta))
        self.debiasing.mul_(self.beta).add_(1 - self.beta)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return (x - mean) / var.sqrt()

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return x * var.sqrt() + mean


def normalize_advantages(advantages: torch.Tensor) -> torch.Tensor:
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def policy_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                clip: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate (Eq. 5); also returns approx_kl and clip fraction (kept as tensors: no host sync)."""
    logratio = new_logp - old_logp
    ratio = logratio.exp()
    loss = -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1).abs() > clip).float().mean()
    return loss, approx_kl, clipfrac


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float,
               huber_delta: float) -> torch.Tensor:
    """max of the plain and the clipped Huber losses (value clipping as in MAPPO)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    plain = nn.functional.huber_loss(values, returns, delta=huber_delta, reduction="none")
    clipped_loss = nn.functional.huber_loss(clipped, returns, delta=huber_delta, reduction="none")
    return torch.max(plain, clipped_loss).mean()


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    var = target.var()
    return torch.where(var > 0, 1 - (target - predicted).var() / var, torch.zeros_like(var))
