"""Statistics for the symmetry audit, in plain NumPy (no SciPy).

The data are a matrix ``returns[episodes, agents]``: one row per episode (a *block*), one column per agent. The null
hypothesis of a symmetric game is *exchangeability within episodes*: shuffling the agent columns of any episode
leaves the distribution of the data unchanged. Every test here is built on that hypothesis, so rewards shared inside an
episode (cooperation, zero-sum splits, team rewards) and any distribution of returns are handled exactly; only the
Monte Carlo error of the permutation p-values remains, and it is reported through the number of permutations.

Contents:

- :func:`mean_ci`: per-agent mean with a Student-t confidence interval.
- :func:`advantage_ci`: per-agent mean of ``return - episode mean`` (paired, so much tighter than :func:`mean_ci`).
- :func:`permutation_test`: the main test of equal means (statistic: variance of the agent means), plus the
  probability of the observed agent ordering under exchangeability.
- :func:`friedman_test`: the rank-based Friedman test (chi-square approximation, tie corrected).
- :func:`kendalls_w`: concordance of agent rankings across seeds, with an exact/Monte Carlo and a chi-square p-value.
- :func:`chi2_sf`, :func:`t_quantile`: the distribution functions the above need.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

# ---- distribution functions ---------------------------------------------------------------------------------------


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a).

    Series for x < a + 1, Lentz's continued fraction otherwise (Numerical Recipes 6.2); relative error ~1e-14.
    """
    if x <= 0.0:
        return 1.0
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:  # P(a, x) by its series, Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square with ``dof`` degrees of freedom (exact up to floating point)."""
    if dof <= 0:
        raise ValueError(f"dof must be >= 1, got {dof}")
    if not math.isfinite(x):
        return 0.0 if x > 0 else 1.0
    return _gamma_q(dof / 2.0, x / 2.0)


def t_quantile(p: float, dof: float) -> float:
    """Quantile of Student's t with ``dof`` degrees of freedom.

    Cornish-Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5, four terms). At the 97.5% point
    the relative error is below 0.15% for dof = 3, 2e-4 for dof >= 5 and 1e-5 for dof >= 10 (checked against SciPy);
    dof = 1 and 2 use the closed forms.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if dof <= 0:
        raise ValueError(f"dof must be > 0, got {dof}")
    if dof == 1:
        return math.tan(math.pi * (p - 0.5))
    if dof == 2:
        q = 2.0 * p - 1.0
        return q * math.sqrt(2.0 / (1.0 - q * q))
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


# ---- descriptive ---------------------------------------------------------------------------------------------------


def _as_matrix(returns: Any) -> np.ndarray:
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"need a [blocks >= 2, agents >= 2] matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("returns contain NaN or inf")
    return x


def mean_ci(values: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means of ``values[n, k]`` and their two-sided Student-t confidence interval (low, high)."""
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    mean = x.mean(axis=0)
    if n < 2:
        return mean, np.full_like(mean, -np.inf), np.full_like(mean, np.inf)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * x.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def advantage_ci(returns: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each agent's mean advantage over its episode's average, ``mean_e(R[e, i] - mean_j R[e, j])``, with a t CI.

    Differencing inside an episode removes the episode-to-episode variation all agents share, so this interval is
    the one to read when asking "does agent i earn more than the others".
    """
    x = _as_matrix(returns)
    return mean_ci(x - x.mean(axis=1, keepdims=True), confidence)


# ---- permutation test of equal means, episodes as blocks -------------------------------------------------------------


def _within_row_permuted_means(x: np.ndarray, n_perm: int, rng: np.random.Generator,
                               chunk_elements: int = 4_000_000):
    """Yields [b, k] column means of ``x`` after independently permuting the columns of every row, n_perm in all."""
    n, k = x.shape
    table = np.array(list(itertools.permutations(range(k))), dtype=np.intp) if k <= 7 else None
    rows = np.arange(n)[None, :, None]
    batch = max(1, chunk_elements // (n * k))
    done = 0
    while done < n_perm:
        b = min(batch, n_perm - done)
        if table is not None:
            cols = table[rng.integers(len(table), size=(b, n))]
        else:
            cols = np.argsort(rng.random((b, n, k)), axis=2)
        yield x[rows, cols].mean(axis=1)
        done += b


def _ordering(means: np.ndarray) -> np.ndarray:
    """Agents from the highest to the lowest mean (stable: ties keep index order), along the last axis."""
    return np.argsort(-means, axis=-1, kind="stable")


def _min_gap(means: np.ndarray) -> np.ndarray:
    """Smallest gap between neighbours of the sorted means, along the last axis."""
    return np.min(-np.diff(np.sort(means, axis=-1)[..., ::-1], axis=-1), axis=-1)


@dataclass
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    Attributes:
        statistic: variance (ddof=0) of the agent means.
        p_value: (1 + #{permuted statistic >= observed}) / (1 + n_perm).
        n_perm: Monte Carlo permutations drawn.
        ordering: agents from the highest to the lowest mean.
        p_ordering_naive: 1 / N!, the chance that a *pre-specified* ordering (say agent 0 > 1 > ... ) comes out
            under exchangeability.
        p_same_ordering: fraction of permuted datasets ranking the agents exactly as observed. By the symmetry of the
            null this is ~1/N! whatever the data, so it only sanity-checks the machinery.
        p_ordering_as_clear: fraction of permuted datasets whose agent means, in *some* order, are all separated by
            at least the observed smallest gap between neighbours: the chance of a complete ordering this clear
            under exchangeability, correcting for the ordering having been picked after seeing the data.
        p_this_ordering_as_clear: the same, restricted to the observed ordering (~ p_ordering_as_clear / N!); the
            number to quote when the ordering was named in advance (e.g. R_0 > R_1 > ... in a self-play report).

    The two "as clear" probabilities are Monte Carlo p-values like ``p_value``: ``(1 + count) / (1 + n_perm)``.
    """

    statistic: float
    p_value: float
    n_perm: int
    ordering: list[int]
    p_ordering_naive: float
    p_same_ordering: float
    p_ordering_as_clear: float
    p_this_ordering_as_clear: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def permutation_test(returns: Any, n_perm: int = 2000, seed: int = 0) -> PermutationResult:
    """Test of equal agent means with episodes as blocks.

    Under exchangeability within episodes every row's columns may be shuffled; the test draws ``n_perm`` such
    datasets (each row shuffled independently, uniformly over the N! orders) and compares the variance of the agent
    means with the observed one. The p-value ``(1 + #{>=}) / (1 + n_perm)`` is valid (never anti-conservative) at any
    sample size. The same draws give the probabilities of the observed ordering, see :class:`PermutationResult`.
    """
    x = _as_matrix(returns)
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    k = x.shape[1]
    observed = x.mean(axis=0)
    stat = float(observed.var())
    order = _ordering(observed)
    gap = float(_min_gap(observed))
    # a relative tolerance so that permuted datasets equal to the observed one up to rounding count as ">="
    tol = 1e-12 * max(1.0, float(np.abs(x).max()))
    ge = same = clear_any = clear_this = 0
    for means in _within_row_permuted_means(x, n_perm, np.random.default_rng(seed)):
        ge += int(np.sum(means.var(axis=1) >= stat - tol))
        same_order = np.all(_ordering(means) == order, axis=1)
        clear = _min_gap(means) >= gap - tol
        same += int(same_order.sum())
        clear_any += int(clear.sum())
        clear_this += int(np.sum(clear & same_order))
    return PermutationResult(
        statistic=stat,
        p_value=(1 + ge) / (1 + n_perm),
        n_perm=n_perm,
        ordering=[int(i) for i in order],
        p_ordering_naive=1.0 / math.factorial(k),
        p_same_ordering=same / n_perm,
        p_ordering_as_clear=(1 + clear_any) / (1 + n_perm),
        p_this_ordering_as_clear=(1 + clear_this) / (1 + n_perm),
    )


# ---- rank tests ----------------------------------------------------------------------------------------------------


def rank_rows(values: Any) -> np.ndarray:
    """Ranks 1..k within each row (1 = smallest), ties getting their average rank."""
    x = np.asarray(values, dtype=np.float64)
    less = (x[..., None, :] < x[..., :, None]).sum(axis=-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(axis=-1)
    return less + (equal + 1) / 2.0


def friedman_test(returns: Any) -> dict[str, float]:
    """Friedman's test of equal agent distributions with episodes as blocks (tie-corrected).

    Statistic ``Q = (k - 1) sum_j (R_j - n (k + 1) / 2)^2 / sum_ij (r_ij - (k + 1) / 2)^2`` on within-episode ranks
    r_ij with rank sums R_j (Conover's form: it handles ties and is the textbook statistic without them),
    p-value from the chi-square approximation with k - 1 degrees of freedom (good for n >= ~15 blocks).
    Episodes where every agent got the same return carry no rank information and contribute nothing.
    """
    x = _as_matrix(returns)
    n, k = x.shape
    ranks = rank_rows(x)
    centre = (k + 1) / 2.0
    between = n * n * float(np.sum((ranks.mean(axis=0) - centre) ** 2))  # sum_j (R_j - n (k+1)/2)^2, R_j rank sums
    total = float(np.sum((ranks - centre) ** 2))  # = n k (k^2 - 1) / 12 without ties
    if total == 0.0:
        return {"statistic": 0.0, "dof": k - 1, "p_value": 1.0}
    q = (k - 1) * between / total
    return {"statistic": q, "dof": k - 1, "p_value": chi2_sf(q, k - 1)}


def _tie_sum(row: np.ndarray) -> float:
    _, counts = np.unique(row, return_counts=True)
    return float(np.sum(counts.astype(np.float64) ** 3 - counts))


def _w_of_ranks(ranks: np.ndarray, correction: float) -> np.ndarray:
    """Kendall's W of rank matrices ``ranks[..., m, n]``."""
    m, n = ranks.shape[-2:]
    totals = ranks.sum(axis=-2)
    s = np.sum((totals - totals.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    denominator = m * m * (n**3 - n) - m * correction
    return 12.0 * s / denominator if denominator > 0 else np.zeros_like(s)


def kendalls_w(scores: Any, n_perm: int = 10_000, seed: int = 0, max_exact: int = 50_000) -> dict[str, Any]:
    """Kendall's coefficient of concordance of the agent rankings over ``scores[seeds m, agents n]``.

    ``W = 12 S / (m^2 (n^3 - n) - m sum T)``: 1 when every seed ranks the agents the same way, ~0 when the rankings are
    unrelated; ``T = sum(t^3 - t)`` over tie groups corrects for ties. Two p-values for "no concordance":
    ``p_value`` by permuting every seed's ranks (exactly, over all (n!)^(m-1) combinations when there are at most
    ``max_exact``, else Monte Carlo with ``n_perm`` draws), and ``p_value_chi2`` from ``m (n - 1) W ~ chi2(n - 1)``
    (only trustworthy for m >= ~7). ``min_attainable_p`` = (1/n!)^(m-1) tells whether a few seeds *can* reject.
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"need a [seeds >= 2, agents >= 2] matrix, got shape {x.shape}")
    m, n = x.shape
    ranks = rank_rows(x)
    correction = sum(_tie_sum(row) for row in ranks)
    w = float(_w_of_ranks(ranks, correction))
    perms = list(itertools.permutations(range(n))) if math.factorial(n) ** (m - 1) <= max_exact else None
    tol = 1e-12
    if perms is not None:  # W is invariant under relabelling all seeds at once: keep seed 0 fixed
        combos = np.array(list(itertools.product(range(len(perms)), repeat=m - 1)), dtype=np.intp).reshape(-1, m - 1)
        table = np.array(perms, dtype=np.intp)
        shuffled = np.empty((len(combos), m, n))
        shuffled[:, 0] = ranks[0]
        for j in range(1, m):
            shuffled[:, j] = ranks[j][table[combos[:, j - 1]]]
        null = _w_of_ranks(shuffled, correction)
        p_value, method = float(np.mean(null >= w - tol)), "exact"
    else:
        rng = np.random.default_rng(seed)
        shuffled = np.take_along_axis(np.broadcast_to(ranks, (n_perm, m, n)),
                                      np.argsort(rng.random((n_perm, m, n)), axis=2), axis=2)
        null = _w_of_ranks(shuffled, correction)
        p_value, method = float((1 + np.sum(null >= w - tol)) / (1 + n_perm)), "monte_carlo"
    return {
        "W": w,
        "seeds": m,
        "agents": n,
        "mean_ranks": ranks.mean(axis=0).tolist(),
        "p_value": p_value,
        "p_method": method,
        "p_value_chi2": chi2_sf(m * (n - 1) * w, n - 1),
        "min_attainable_p": (1.0 / math.factorial(n)) ** (m - 1),
    }
