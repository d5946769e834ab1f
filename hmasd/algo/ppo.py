"""PPO as both levels use it (Eq. 5): the clipped losses, value normalisation, and one update function that the
coordinator and the skill discoverer (shared or independent learners) all go through; every batch statistic goes
through a :class:`BatchReduce`, so that distributed training takes it over every rank's samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class BatchReduce:
    """Where an update's batch lives: here, all of it (this class, :data:`LOCAL`), or spread over the ranks of a
    distributed run (hmasd.train.distributed.GroupReduce, whose methods are collectives). The update's means,
    normalisations and statistics are over the whole batch either way; with ``distributed`` the losses are each
    rank's share of the global mean (a sum over its samples divided by the global count), so that summing the
    ranks' gradients (:meth:`gradients`) gives the gradient of the global loss."""

    distributed = False

    def count(self, n: int) -> int:
        """The number of samples of every rank, given this rank's ``n``."""
        return n

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (a new tensor; no gradient flows through it)."""
        return tensor

    def gradients(self, modules: list[nn.Module]) -> None:
        """Sums the gradients of ``modules``' parameters over the ranks, in place."""


LOCAL = BatchReduce()
"""The whole batch is in this process (single-process training)."""


def global_mean(x: torch.Tensor, reduce: BatchReduce) -> torch.Tensor:
    """The mean of ``x`` over every rank's elements (plain ``x.mean()`` for a local batch), without gradient."""
    if not reduce.distributed:
        return x.mean()
    return reduce.sum(x.detach().sum()) / reduce.count(x.numel())


def share_of_mean(x: torch.Tensor, count: int | None) -> torch.Tensor:
    """This rank's share of the global mean of ``x``: its sum over the ``count`` samples of every rank, or the plain
    mean where ``count`` is None (the batch is all here). Differentiable."""
    return x.mean() if count is None else x.sum() / count


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
    def update(self, targets: torch.Tensor, reduce: BatchReduce = LOCAL) -> None:
        """Moves the statistics towards the mean and mean square of ``targets`` (over every rank's)."""
        if reduce.distributed:
            sums = reduce.sum(torch.stack([targets.sum(), (targets**2).sum()]))
            mean, mean_sq = sums / reduce.count(targets.numel())
        else:
            mean, mean_sq = targets.mean(), (targets**2).mean()
        self.running_mean.mul_(self.beta).add_(mean * (1 - self.beta))
        self.running_mean_sq.mul_(self.beta).add_(mean_sq * (1 - self.beta))
        self.debiasing.mul_(self.beta).add_(1 - self.beta)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return (x - mean) / var.sqrt()

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return x * var.sqrt() + mean


def normalize_advantages(advantages: torch.Tensor, reduce: BatchReduce = LOCAL) -> torch.Tensor:
    """(A - mean) / (std + 1e-8) with the mean and the (unbiased) std of every rank's advantages."""
    if not reduce.distributed:
        return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    count = reduce.count(advantages.numel())
    mean = reduce.sum(advantages.sum()) / count
    var = reduce.sum(((advantages - mean) ** 2).sum()) / max(count - 1, 1)
    return (advantages - mean) / (var.sqrt() + 1e-8)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float,
               huber_delta: float, count: int | None = None) -> torch.Tensor:
    """max of the plain and the clipped Huber losses (value clipping as in MAPPO), averaged (see share_of_mean)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    plain = nn.functional.huber_loss(values, returns, delta=huber_delta, reduction="none")
    clipped_loss = nn.functional.huber_loss(clipped, returns, delta=huber_delta, reduction="none")
    return share_of_mean(torch.max(plain, clipped_loss), count)


def explained_variance(predicted: torch.Tensor, target: torch.Tensor, reduce: BatchReduce = LOCAL) -> torch.Tensor:
    """1 - Var(target - predicted) / Var(target) over every rank's samples (0 where the target is constant)."""
    if reduce.distributed:
        residual = target - predicted
        sums = reduce.sum(torch.stack([target.sum(), (target**2).sum(), residual.sum(), (residual**2).sum()]))
        count = reduce.count(target.numel())
        var, residual_var = ((sums[1] - sums[0] ** 2 / count) / max(count - 1, 1),
                             (sums[3] - sums[2] ** 2 / count) / max(count - 1, 1))
    else:
        var, residual_var = target.var(), (target - predicted).var()
    return torch.where(var > 0, 1 - residual_var / var, torch.zeros_like(var))


@dataclass
class PPOLearner:
    """One policy/value pair as PPO sees it: how to re-score the rollout, and the rollout's fixed targets.

    ``evaluate()`` returns the current log-probs and entropies (shaped like ``old_logp``) and values (shaped like
    ``old_values``), with gradients. Advantages and returns come already normalised (returns by the ValueNorm).
    ``count`` is the number of samples of every rank in distributed training (None: the batch is all here).
    """

    evaluate: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    old_logp: torch.Tensor
    advantages: torch.Tensor
    old_values: torch.Tensor
    returns: torch.Tensor
    entropy_coef: float
    count: int | None = None


@dataclass(frozen=True)
class PPOSettings:
    epochs: int
    clip: float
    value_clip: float
    huber_delta: float
    value_coef: float
    max_grad_norm: float
    target_kl: float | None = None
    """Stop before an epoch's step once the approximate KL to the rollout policy exceeds this (None: never)."""


Networks = list[tuple[torch.optim.Optimizer, nn.Module]]


def optimizer_step(networks: Networks, loss: torch.Tensor, max_grad_norm: float, reduce: BatchReduce = LOCAL
                   ) -> None:
    """One backward for every network in ``networks``, the gradients summed over the ranks (distributed
    training), then each network clips its own gradient norm and steps.

    The networks share no parameters, so one backward of the summed losses gives each exactly the gradient of
    its own loss: the same update as one backward per network, with fewer, larger autograd passes.
    """
    for optimizer, _ in networks:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    reduce.gradients([module for _, module in networks])
    for optimizer, module in networks:
        nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm, foreach=True)
        optimizer.step()


def ppo_update(learners: list[PPOLearner], networks: Networks, settings: PPOSettings,
               reduce: BatchReduce = LOCAL) -> dict[str, torch.Tensor]:
    """``settings.epochs`` full-batch PPO epochs on every learner at once (one backward per epoch for all).

    Per learner (Eq. 5, averaged over its samples as in the official code):
        ratio   = exp(log pi(a|s) - log pi_old(a|s))
        L_pi    = -mean(min(ratio A, clip(ratio, 1 - eps, 1 + eps) A))
        L_V     = mean(max(huber(V - R), huber(V_old + clip(V - V_old, -eps_v, eps_v) - R)))
        loss    = L_pi + c_V L_V - c_H mean(entropy)
    and the losses of all learners are summed (independent learners own disjoint networks, so each is trained on
    its own samples only). In distributed training each mean is this rank's share of the global one (see
    :class:`BatchReduce`). With ``settings.target_kl`` an epoch whose scored policy is already further than that
    (approximate KL, averaged over learners and ranks, so every rank stops at the same epoch) from the rollout
    policy ends the update without stepping; this costs one host sync per epoch. Returns the statistics of the
    last epoch scored (before its step) averaged over learners, as tensors (no host sync without a target), and,
    with a target, ``epochs``: the number of steps taken.
    """
    s = settings
    steps = 0
    for _ in range(s.epochs):
        loss, scored = 0.0, []
        for learner in learners:
            logp, entropy, values = learner.evaluate()
            ratio = (logp - learner.old_logp).exp()
            advantages = learner.advantages
            surrogate = torch.min(ratio * advantages, ratio.clamp(1 - s.clip, 1 + s.clip) * advantages)
            policy = -share_of_mean(surrogate, learner.count)
            value = value_loss(values, learner.old_values, learner.returns, s.value_clip, s.huber_delta,
                               learner.count)
            entropy_mean = share_of_mean(entropy, learner.count)
            loss = loss + policy + s.value_coef * value - learner.entropy_coef * entropy_mean
            scored.append((logp.detach(), values.detach(), policy.detach(), value.detach(), entropy_mean.detach()))
        if s.target_kl is not None and steps > 0 and mean_approx_kl(learners, scored, reduce).item() > s.target_kl:
            break
        optimizer_step(networks, loss, s.max_grad_norm, reduce)
        steps += 1
    stats = last_epoch_stats(learners, scored, s, reduce)
    if s.target_kl is not None:  # without a target the count is always s.epochs (and the logged keys stay)
        stats["epochs"] = torch.tensor(float(steps))
    return stats


def approx_kl(logp: torch.Tensor, learner: PPOLearner) -> torch.Tensor:
    """``mean((r - 1) - log r)``, r the ratio of ``logp`` to the rollout's: an estimate of KL(old || new) that is
    never negative (this rank's share of the mean, see share_of_mean)."""
    log_ratio = logp - learner.old_logp
    return share_of_mean((log_ratio.exp() - 1) - log_ratio, learner.count)


def mean_approx_kl(learners: list[PPOLearner], scored: list[tuple[torch.Tensor, ...]],
                   reduce: BatchReduce = LOCAL) -> torch.Tensor:
    """:func:`approx_kl` of the scored log-probs, averaged over learners (each over every rank's samples)."""
    kls = [approx_kl(logp, learner) for learner, (logp, *_) in zip(learners, scored)]
    return reduce.sum(torch.stack(kls)).mean()


def last_epoch_stats(learners: list[PPOLearner], scored: list[tuple[torch.Tensor, ...]],
                     settings: PPOSettings, reduce: BatchReduce = LOCAL) -> dict[str, torch.Tensor]:
    """The losses of the last epoch (before its step), KL and clip fraction, averaged over learners (and, in
    distributed training, over every rank's samples: one collective for all of them)."""
    per_learner = []  # rows: policy, value, entropy, approx_kl, clipfrac (each this rank's share of the mean)
    for learner, (logp, _, policy, value, entropy) in zip(learners, scored):
        kl = approx_kl(logp, learner)
        clipfrac = share_of_mean(((logp - learner.old_logp).exp() - 1).abs().gt(settings.clip).float(), learner.count)
        per_learner.append(torch.stack([policy, value, entropy, kl, clipfrac]))
    policy, value, entropy, kl, clipfrac = reduce.sum(torch.stack(per_learner)).mean(0)
    entropy_coef = sum(learner.entropy_coef for learner in learners) / len(learners)
    values = torch.cat([row[1].reshape(-1) for row in scored])
    returns = torch.cat([learner.returns.reshape(-1) for learner in learners])
    return {"total": policy + settings.value_coef * value - entropy_coef * entropy, "policy": policy,
            "value": value, "entropy": entropy, "approx_kl": kl, "clipfrac": clipfrac,
            "explained_variance": explained_variance(values, returns, reduce)}


def supervised_update(losses: list[Callable[[], torch.Tensor]], networks: Networks, epochs: int,
                      max_grad_norm: float, reduce: BatchReduce = LOCAL) -> None:
    """``epochs`` full-batch steps on the sum of ``losses`` (a discriminator's cross-entropy, Eq. 8; in distributed
    training each loss is this rank's share of the global mean)."""
    for _ in range(epochs):
        optimizer_step(networks, sum(loss() for loss in losses), max_grad_norm, reduce)
