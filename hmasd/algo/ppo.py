"""PPO as both levels use it (Eq. 5): the clipped losses, value normalisation, and one update function that the
coordinator and the skill discoverer (shared or independent learners) all go through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


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


@dataclass
class PPOLearner:
    """One policy/value pair as PPO sees it: how to re-score the rollout, and the rollout's fixed targets.

    ``evaluate()`` returns the current log-probs and entropies (shaped like ``old_logp``) and values (shaped like
    ``old_values``), with gradients. Advantages and returns come already normalised (returns by the ValueNorm).
    """

    evaluate: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    old_logp: torch.Tensor
    advantages: torch.Tensor
    old_values: torch.Tensor
    returns: torch.Tensor
    entropy_coef: float


@dataclass(frozen=True)
class PPOSettings:
    epochs: int
    clip: float
    value_clip: float
    huber_delta: float
    value_coef: float
    max_grad_norm: float


Networks = list[tuple[torch.optim.Optimizer, nn.Module]]


def optimizer_step(networks: Networks, loss: torch.Tensor, max_grad_norm: float) -> None:
    """One backward for every network in ``networks``, then each clips its own gradient norm and steps.

    The networks share no parameters, so one backward of the summed losses gives each exactly the gradient of
    its own loss: the same update as one backward per network, with fewer, larger autograd passes.
    """
    for optimizer, _ in networks:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer, module in networks:
        nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm, foreach=True)
        optimizer.step()


def ppo_update(learners: list[PPOLearner], networks: Networks, settings: PPOSettings) -> dict[str, torch.Tensor]:
    """``settings.epochs`` full-batch PPO epochs on every learner at once (one backward per epoch for all).

    Per learner (Eq. 5, averaged over its samples as in the official code):
        ratio   = exp(log pi(a|s) - log pi_old(a|s))
        L_pi    = -mean(min(ratio A, clip(ratio, 1 - eps, 1 + eps) A))
        L_V     = mean(max(huber(V - R), huber(V_old + clip(V - V_old, -eps_v, eps_v) - R)))
        loss    = L_pi + c_V L_V - c_H mean(entropy)
    and the losses of all learners are summed (independent learners own disjoint networks, so each is trained on
    its own samples only). Returns the last epoch's statistics averaged over learners, as tensors (no host sync).
    """
    s = settings
    for _ in range(s.epochs):
        loss, scored = 0.0, []
        for learner in learners:
            logp, entropy, values = learner.evaluate()
            ratio = (logp - learner.old_logp).exp()
            advantages = learner.advantages
            policy = -torch.min(ratio * advantages, ratio.clamp(1 - s.clip, 1 + s.clip) * advantages).mean()
            value = value_loss(values, learner.old_values, learner.returns, s.value_clip, s.huber_delta)
            entropy_mean = entropy.mean()
            loss = loss + policy + s.value_coef * value - learner.entropy_coef * entropy_mean
            scored.append((logp.detach(), values.detach(), policy.detach(), value.detach(), entropy_mean.detach()))
        optimizer_step(networks, loss, s.max_grad_norm)
    return last_epoch_stats(learners, scored, s)


def last_epoch_stats(learners: list[PPOLearner], scored: list[tuple[torch.Tensor, ...]],
                     settings: PPOSettings) -> dict[str, torch.Tensor]:
    """The losses of the last epoch (before its step), KL and clip fraction, averaged over learners."""
    def mean(values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values).mean()

    kl, clipfrac = [], []
    for learner, (logp, *_) in zip(learners, scored):
        logratio = logp - learner.old_logp
        ratio = logratio.exp()
        kl.append(((ratio - 1) - logratio).mean())
        clipfrac.append(((ratio - 1).abs() > settings.clip).float().mean())
    policy, value, entropy = (mean([row[i] for row in scored]) for i in (2, 3, 4))
    entropy_coef = sum(learner.entropy_coef for learner in learners) / len(learners)
    values = torch.cat([row[1].reshape(-1) for row in scored])
    returns = torch.cat([learner.returns.reshape(-1) for learner in learners])
    return {"total": policy + settings.value_coef * value - entropy_coef * entropy, "policy": policy,
            "value": value, "entropy": entropy, "approx_kl": mean(kl), "clipfrac": mean(clipfrac),
            "explained_variance": explained_variance(values, returns)}


def supervised_update(losses: list[Callable[[], torch.Tensor]], networks: Networks, epochs: int,
                      max_grad_norm: float) -> None:
    """``epochs`` full-batch steps on the sum of ``losses`` (a discriminator's cross-entropy, Eq. 8)."""
    for _ in range(epochs):
        optimizer_step(networks, sum(loss() for loss in losses), max_grad_norm)
