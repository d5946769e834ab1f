"""Random draws keyed by env, so that an env's actions and skills do not depend on how the envs are split across
processes: every process draws the noise of the whole set of envs and keeps the rows of its own."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EnvRows:
    """Which envs of a set of ``total`` a batch holds: ``index`` [B] (int64), the batch's row b is env index[b].

    A draw for the batch takes, from the global RNG, the noise of all ``total`` envs (``per_env`` rows each, env
    major) and keeps the batch's rows. A process that holds every env in order (``index = arange(total)``) thus
    draws exactly what a plain draw of its batch would, and a process holding a slice draws the same numbers for
    its envs as the process holding all of them.
    """

    index: torch.Tensor
    total: int

    @staticmethod
    def block(first: int, count: int, total: int, device: torch.device | str = "cpu") -> EnvRows:
        """Envs first .. first + count - 1 of ``total`` (a rank's slice of the global batch)."""
        return EnvRows(torch.arange(first, first + count, device=device), total)

    def pick(self, index: torch.Tensor) -> EnvRows:
        """The rows of the batch's ``index`` envs (local indices) in the same set."""
        return EnvRows(self.index[index.to(self.index.device)], self.total)

    def _rows(self, noise: torch.Tensor, per_env: int) -> torch.Tensor:
        return noise.view(self.total, per_env, *noise.shape[1:])[self.index].reshape(-1, *noise.shape[1:])

    def exponential(self, per_env: int, width: int, device: torch.device | str) -> torch.Tensor:
        """Exp(1) noise [B * per_env, width]: what ``torch.multinomial(p, 1)`` divides its rows by."""
        return self._rows(torch.empty(self.total * per_env, width, device=device).exponential_(), per_env)

    def normal(self, per_env: int, width: int, device: torch.device | str) -> torch.Tensor:
        """Standard normal noise [B * per_env, width] (what ``torch.normal(mean, std)`` scales)."""
        return self._rows(torch.randn(self.total * per_env, width, device=device), per_env)

    def randint(self, high: int, width: int, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
        """Integers in [0, high) [B, width] from ``generator`` (the global RNG of ``device`` where None)."""
        drawn = torch.randint(high, (self.total, width), generator=generator,
                              device=device if generator is None else generator.device)
        return drawn[self.index.to(drawn.device)]


def sample_rows(probs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One draw [B] from each row of ``probs`` [B, A]: argmax_k p_k / q_k with q ~ Exp(1), ``torch.multinomial(probs,
    1)``'s own algorithm (the same draws from the same RNG state) without its row validation. ``noise`` is q
    (from :meth:`EnvRows.exponential`), drawn here for the batch when None."""
    if noise is None:
        noise = torch.empty_like(probs).exponential_()
    return probs.div(noise).argmax(-1)
