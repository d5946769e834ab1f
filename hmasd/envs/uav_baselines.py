"""Scripted baselines for ``uav_coverage`` (random moves; UAVs flying to the k-means centres of the users, plain or
with clusters capped at a UAV's connections), their
evaluation on whole episodes, and the ``hmasd-baseline`` command line. NumPy only (no torch, no scipy)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmasd._cli import parse_pairs
from hmasd.envs.actions import random_actions
from hmasd.envs.registry import make
from hmasd.envs.vec_env import VecEnv

log = logging.getLogger(__name__)

ENV_NAME = "uav_coverage"
BASELINES = ("random", "kmeans", "balanced_kmeans")
# Per-step metrics shown by the CLI table, in this order (all are episode-info fields and details() metrics).
TABLE_METRICS = ("coverage_ratio", "system_throughput_mbps", "connectivity_ratio", "avg_hops", "connected_users",
                 "reward_quality")
Policy = Callable[[VecEnv], np.ndarray]


# ---- k-means and assignment ----------------------------------------------------------------------------------


def kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k initial centres drawn by k-means++ (each next centre with probability proportional to squared distance)."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        # all points already coincide with a centre (k > distinct points): any point will do
        index = rng.integers(len(points)) if total <= 0 else rng.choice(len(points), p=d2 / total)
        centres.append(points[index])
    return np.array(centres, dtype=np.float64)


def lloyd(points: np.ndarray, centres: np.ndarray, iterations: int = 100) -> tuple[np.ndarray, float]:
    """Lloyd's iterations from ``centres``; returns the centres and the inertia (sum of squared distances)."""
    centres = centres.copy()
    for _ in range(iterations):
        d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
        labels = d2.argmin(axis=1)
        new = centres.copy()
        for c in range(len(centres)):
            members = points[labels == c]
            if len(members):
                new[c] = members.mean(axis=0)
            else:  # an empty cluster takes the point worst served so far, instead of idling its UAV
                worst = d2[np.arange(len(points)), labels].argmax()
                new[c] = points[worst]
                labels[worst] = c
        if np.allclose(new, centres, rtol=0.0, atol=1e-9):
            centres = new
            break
        centres = new
    inertia = float(((points[:, None, :] - centres[None]) ** 2).sum(-1).min(axis=1).sum())
    return centres, inertia


def kmeans(points: np.ndarray, k: int, seed: int = 0, restarts: int = 4) -> np.ndarray:
    """The k centres ``float64[k, d]`` of the best of ``restarts`` k-means++ / Lloyd runs (deterministic in
    ``seed``: the same points always give the same centres)."""
    points = np.asarray(points, dtype=np.float64)
    if k < 1 or len(points) == 0:
        raise ValueError(f"kmeans needs k >= 1 and at least one point, got k={k}, {len(points)} points")
    rng = np.random.default_rng(seed)
    best, best_inertia = None, math.inf
    for _ in range(restarts):
        centres, inertia = lloyd(points, kmeans_plus_plus(points, k, rng))
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    assert best is not None
    return best


def capacitated_labels(points: np.ndarray, centres: np.ndarray, capacity: int) -> np.ndarray:
    """Each point's centre, nearest first under a cap of ``capacity`` points per centre: the (point, centre) pairs
    by increasing distance, a pair taken while its point is free and its centre below the cap (the env's own
    association rule, with distance for SINR). Needs ``capacity * len(centres) >= len(points)``."""
    d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
    labels = np.full(len(points), -1, dtype=np.int64)
    load = np.zeros(len(centres), dtype=np.int64)
    for pair in np.argsort(d2, axis=None, kind="stable"):
        point, centre = divmod(int(pair), len(centres))
        if labels[point] < 0 and load[centre] < capacity:
            labels[point], load[centre] = centre, load[centre] + 1
    return labels


def balanced_kmeans(points: np.ndarray, k: int, capacity: int, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """k centres ``float64[k, d]`` whose clusters hold at most ``capacity`` points each: from the k-means centres,
    Lloyd's iterations with the capacitated assignment, until the labels stop changing. With a connection cap,
    plain k-means leaves the users of a crowded cluster unserved while a sparse one has room."""
    points = np.asarray(points, dtype=np.float64)
    if capacity * k < len(points):
        raise ValueError(f"{k} clusters of at most {capacity} cannot hold {len(points)} points")
    centres = kmeans(points, k, seed=seed)
    labels = None
    for _ in range(iterations):
        new = capacitated_labels(points, centres, capacity)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centres = np.stack([points[labels == c].mean(axis=0) if (labels == c).any() else centres[c]
                            for c in range(k)])
    return centres


def hungarian(cost: np.ndarray) -> np.ndarray:
    """The assignment of a square cost matrix with the least total: ``column[row]`` (Kuhn-Munkres with potentials,
    O(n^3))."""
    cost = np.asarray(cost, dtype=np.float64)
    n = cost.shape[0]
    if cost.shape != (n, n):
        raise ValueError(f"hungarian needs a square cost matrix, got shape {cost.shape}")
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    owner = np.zeros(n + 1, dtype=np.int64)  # owner[j]: 1-based row matched to column j (0: none)
    for row in range(1, n + 1):
        owner[0], column = row, 0
        slack, via, used = np.full(n + 1, np.inf), np.zeros(n + 1, dtype=np.int64), np.zeros(n + 1, dtype=bool)
        while owner[column]:  # grow an alternating tree until it reaches a free column
            used[column] = True
            i0, free = owner[column], ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < slack[1:])
            slack[1:][better], via[1:][better] = reduced[better], column
            candidates = np.where(free, slack[1:], np.inf)
            nxt = int(candidates.argmin()) + 1
            delta = candidates[nxt - 1]
            u[owner[used]] += delta
            v[used] -= delta
            slack[1:][free] -= delta
            column = nxt
        while column:  # flip the augmenting path
            previous = via[column]
            owner[column] = owner[previous]
            column = previous
    result = np.empty(n, dtype=np.int64)
    result[owner[1:] - 1] = np.arange(n)
    return result


def assign_targets(uav_xy: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The centres reordered so that UAV u flies to row u, with the least total horizontal distance."""
    distance = np.linalg.norm(np.asarray(uav_xy, np.float64)[:, None, :2] - centres[None, :, :2], axis=-1)
    return centres[hungarian(distance)]


# ---- actions -------------------------------------------------------------------------------------------------


def continuous_action(position: np.ndarray, target: np.ndarray, step: float) -> np.ndarray:
    """``float32[..., 3]`` moves toward ``target``: the offset in units of one step's travel, clipped to [-1, 1]."""
    if step <= 0:
        return np.zeros(np.shape(position), dtype=np.float32)
    offset = np.asarray(target, np.float64) - np.asarray(position, np.float64)
    return np.clip(offset / step, -1.0, 1.0).astype(np.float32)


def discrete_action(position: np.ndarray, target: np.ndarray, step: float) -> np.ndarray:
    """``int32[...]`` moves (0 hover, 1 +x, 2 -x, 3 +y, 4 -y, 5 +z, 6 -z): along the axis with the largest
    offset; hover once every offset is within half a step, since a full step would then overshoot by more than the
    UAV is off now (and hovering there stops it oscillating around the target)."""
    offset = np.asarray(target, np.float64) - np.asarray(position, np.float64)
    axis = np.abs(offset).argmax(axis=-1)
    largest = np.take_along_axis(offset, axis[..., None], axis=-1)[..., 0]
    moves = 1 + 2 * axis + (largest < 0)
    return np.where(np.abs(largest) > step / 2, moves, 0).astype(np.int32)


# ---- policies ------------------------------------------------------------------------------------------------


def _step_length(env: VecEnv) -> float:
    """Metres one full action moves a UAV per step, as the env computes it (float32 product)."""
    options = env.options
    return float(np.float32(options["max_speed"]) * np.float32(options["dt"]))


def random_policy(env: VecEnv, seed: int = 0) -> Policy:
    """Uniform random moves: ``float32[E, U, 3]`` in [-1, 1], or uniform valid move indices ``int32[E, U]``."""
    rng = np.random.default_rng(seed)

    def act(env: VecEnv) -> np.ndarray:
        return random_actions(env, rng)

    return act


class KMeansPolicy:
    """Each UAV flies to one k-means centre of the users (k = U, matched to the UAVs by least total distance) at a
    fixed height, then hovers there. Centres are recomputed whenever an env copy's users change (a new episode),
    so the policy works with any autoreset mode. ``balanced`` caps every cluster at ``max(ceil(N / U),
    max_connections)`` users (:func:`balanced_kmeans`), so that no UAV is sent where it would turn users away."""

    def __init__(self, env: VecEnv, height: float | None = None, seed: int = 0, balanced: bool = False) -> None:
        options = env.options
        low, high = float(options["min_height"]), float(options["max_height"])
        # The middle of the range by default: higher raises the line-of-sight probability and widens the
        # footprint, but also lengthens every link and gives each UAV line of sight to its neighbours' users
        # (interference). Which wins depends on the channel model, the density and the backhaul, so the default
        # is the neutral choice rather than one tuned to one setting. (With the default options, min_height
        # serves more users: the interference term dominates; pass height= for a tuned baseline.)
        self.height = (low + high) / 2 if height is None else float(height)
        if not low <= self.height <= high:
            raise ValueError(f"height must be in [min_height, max_height] = [{low}, {high}], got {height!r}")
        self.seed = seed
        users, uavs = int(options["num_users"]), env.num_agents
        self.capacity = min(users, max(-(-users // uavs), int(options["max_connections"]))) if balanced else None
        self.step = _step_length(env)
        self._users: list[np.ndarray | None] = [None] * env.num_envs
        self._targets: list[np.ndarray] = [np.zeros((env.num_agents, 3))] * env.num_envs

    def targets(self, env: VecEnv, env_index: int) -> np.ndarray:
        """``float64[U, 3]``: where each UAV of env copy ``env_index`` is headed."""
        details = env.details(env_index)
        users = details["user_pos"]
        if self._users[env_index] is None or not np.array_equal(users, self._users[env_index]):
            if self.capacity is None:
                centres = kmeans(users, env.num_agents, seed=self.seed)
            else:
                centres = balanced_kmeans(users, env.num_agents, self.capacity, seed=self.seed)
            xy = assign_targets(details["uav_pos"][:, :2], centres)
            self._targets[env_index] = np.column_stack([xy, np.full(len(xy), self.height)])
            self._users[env_index] = users.copy()
            log.debug("env %d: new k-means targets %s", env_index, np.round(xy, 1).tolist())
        return self._targets[env_index]

    def __call__(self, env: VecEnv) -> np.ndarray:
        actions = []
        for e in range(env.num_envs):
            target = self.targets(env, e)
            position = env.details(e)["uav_pos"]
            move = continuous_action if env.continuous else discrete_action
            actions.append(move(position, target, self.step))
        return np.stack(actions)


def kmeans_policy(env: VecEnv, seed: int = 0, height: float | None = None) -> KMeansPolicy:
    """UAVs fly to the k-means centres of the users at ``height`` (default: the middle of the height range)."""
    return KMeansPolicy(env, height=height, seed=seed)


def make_policy(name: str, env: VecEnv, seed: int = 0, height: float | None = None) -> Policy:
    """The baseline ``name`` (one of :data:`BASELINES`) for ``env``."""
    if name == "random":
        return random_policy(env, seed=seed)
    if name == "kmeans":
        return kmeans_policy(env, seed=seed, height=height)
    if name == "balanced_kmeans":
        return KMeansPolicy(env, height=height, seed=seed, balanced=True)
    raise ValueError(f"unknown baseline {name!r}; baselines: {', '.join(BASELINES)}")


# ---- evaluation ----------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as Python floats and lists (for JSON)."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def evaluate_baseline(name: str, episodes: int = 10, num_envs: int = 8, seed: int = 0, *,
                      height: float | None = None, steady_fraction: float = 0.1, **env_options: Any) -> dict[str, Any]:
    """Runs baseline ``name`` for whole episodes of ``make("uav_coverage", **env_options)``.

    ``min(num_envs, episodes)`` copies run in lock step for as many rounds as ``episodes`` needs, so the count
    is rounded up to whole rounds (the result's ``episodes`` says how many ran). ``height`` is the k-means
    flight height.

    Returns the env's episode statistics, averaged over the episodes: every episode-info field (per-step means,
    per-UAV fields as lists), ``length`` and ``return`` (the per-agent return averaged over agents: every agent
    gets the team reward, divided by U with ``reward_split``) and ``episode_returns`` (that return per episode, in
    the order the episodes ran: round by round, env copy by copy) and ``episode_info`` (each scalar field of the env's
    ``episode_info``, per episode, in that order); plus ``steady_state``, the means of the
    ``details()`` metrics and of the per-agent ``reward`` over the last ``steady_fraction`` of each episode's steps
    (at least one), i.e. after the UAVs have had time to reach their places.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    if not 0 < steady_fraction <= 1:
        raise ValueError(f"steady_fraction must be in (0, 1], got {steady_fraction!r}")
    copies = min(num_envs, episodes)
    env = make(ENV_NAME, num_envs=copies, seed=seed, autoreset="disabled", **env_options)
    policy = make_policy(name, env, seed=seed, height=height)
    max_steps = int(env.options["max_steps"])
    tail = max(1, math.ceil(steady_fraction * max_steps))
    sums: dict[str, float] = {}
    samples = 0
    episode_returns: list[float] = []
    scalar_info: dict[str, list[float]] = {}  # the env's episode_info fields that are one value per episode
    for round_index in range(math.ceil(episodes / copies)):
        env.reset(seed if round_index == 0 else None)  # later rounds continue the stream: new episodes
        for t in range(1, max_steps + 1):
            _, rewards, terminated, truncated, _ = env.step(policy(env))
            if t > max_steps - tail:
                for e in range(copies):
                    for key, value in env.details(e)["metrics"].items():
                        if np.ndim(value) == 0:  # per-UAV entries (served_users, role) are not averaged here
                            sums[key] = sums.get(key, 0.0) + float(value)
                    sums["reward"] = sums.get("reward", 0.0) + float(rewards[e].mean())
                samples += copies
        if not (terminated | truncated).all():  # the env never terminates early, so every copy ends here
            raise RuntimeError(f"{ENV_NAME} episodes did not all end after max_steps={max_steps}")
        episode_returns += env.episode_return.mean(axis=1).tolist()
        for key, values in env.episode_info.items():
            if values.ndim == 1:  # per-UAV fields are [copies, U]
                scalar_info.setdefault(key, []).extend(values.tolist())
    stats = env.episode_stats()
    result: dict[str, Any] = {"baseline": name, "episodes": stats.pop("episodes"), "num_envs": copies,
                              "seed": seed, "options": env.options}
    if name in ("kmeans", "balanced_kmeans"):
        result["height"] = policy.height  # type: ignore[attr-defined]
    result["return"] = float(np.mean(stats.pop("return")))
    result["episode_returns"] = episode_returns
    result["episode_info"] = scalar_info
    result.update({key: _plain(value) for key, value in stats.items()})
    result["steady_state"] = {key: total / samples for key, total in sums.items()}
    result["steady_state"]["steps"] = tail
    log.info("%s: %d episodes, coverage %.3f, return %.2f", name, result["episodes"], result["coverage_ratio"],
             result["return"])
    return result


# ---- command line --------------------------------------------------------------------------------------------


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """A text table: one row per metric, an episode-mean and a steady-state column per baseline."""
    header = ["metric"] + [f"{r['baseline']}{suffix}" for r in results for suffix in ("", " (last)")]
    rows = [["return", *[v for r in results for v in (r["return"], None)]],
            ["reward/step", *[v for r in results for v in (r["return"] / r["length"], r["steady_state"]["reward"])]]]
    rows += [[key, *[v for r in results for v in (r[key], r["steady_state"][key])]] for key in TABLE_METRICS]
    cells = [header] + [[row[0]] + ["-" if v is None else f"{v:.3f}" for v in row[1:]] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in cells]
    first = results[0]
    note = (f"{ENV_NAME}: {first['episodes']} episodes of {first['length']:.0f} steps per baseline (seed "
            f"{first['seed']}); '(last)' = mean over the last {first['steady_state']['steps']} steps")
    return "\n".join([note, *lines]) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hmasd-baseline", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--baseline", nargs="+", choices=BASELINES, default=list(BASELINES), help="baselines to run")
    p.add_argument("--episodes", type=int, default=10, help="episodes per baseline (rounded up to whole batches)")
    p.add_argument("--num-envs", type=int, default=8, help="env copies stepped together")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=float, default=None, help="k-means flight height (default: mid range)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="env option, e.g. --option max_steps=200 --option user_distribution=cluster")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hmasd-baseline``: prints the table; returns 0, or 2 on bad options."""
    args = parser().parse_args(argv)
    try:
        options = parse_pairs(args.option, "--option")
        results = [evaluate_baseline(name, episodes=args.episodes, num_envs=args.num_envs, seed=args.seed,
                                     height=args.height, **options) for name in args.baseline]
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    except (ValueError, TypeError, OSError) as error:
        sys.stderr.write(f"hmasd-baseline: error: {error}\n")
        return 2
    sys.stdout.write(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
