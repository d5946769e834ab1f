"""Where in an episode a trained ``uav_coverage`` policy loses to k-means: reward, coverage, link quality and UAV
speed at every step.

    python benchmarks/learning/uav_episode_profile.py --run-dir runs/a --run-dir runs/b --label a --label b \
        --out benchmarks/learning/uav_3m/profile

Plays each run's final policy (argmax at both levels) and the k-means baseline at the minimum height on the same
``--episodes`` fresh episodes (env seed ``--seed``, the first run's env options), and records per step the team
reward, the coverage, the link quality term and each UAV's distance flown, averaged over episodes and UAVs. A
placement policy should reach its positions and then hover, as k-means does; one that keeps flying (oscillating
round its spot) or drifts away shows here where the episode mean of ``uav_vs_baselines.py`` only shows a lower
number. Writes ``<out>/episode_profile.json``
(per-step means and per-phase summaries) and ``<out>/episode_profile.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hmasd.envs
from hmasd.envs.uav_baselines import kmeans_policy
from hmasd.envs.vec_env import VecEnv
from hmasd.train.evaluation import EpisodePolicy, env_actions
from hmasd.train.loop import Trainer

from uav_vs_baselines import load_trainer  # benchmarks/learning/uav_vs_baselines.py

log = logging.getLogger("uav_episode_profile")

PHASES = ((0, 25), (25, 50), (50, 100), (100, 200), (200, 300), (300, 400), (400, 500))
"""Step ranges summarised in the JSON and the log (clipped to the episode length)."""

Act = Callable[[VecEnv], np.ndarray]


def policy_actor(trainer: Trainer, episodes: int, seed: int, sampled_actions: bool = False
                 ) -> tuple[Act, Callable[[np.ndarray], None]]:
    """A loaded run's policy as ``act(env) -> actions`` and ``stepped(ended)``. Skills are the coordinator's argmax;
    actions the mean, or with ``sampled_actions`` drawn (seeded by ``seed``)."""
    policy = EpisodePolicy(trainer, episodes, deterministic=True, seed=seed, low_deterministic=not sampled_actions)

    def act(env: VecEnv) -> np.ndarray:
        inputs = (torch.from_numpy(a) for a in (env.obs, env.state, env.action_mask))
        return env_actions(policy.act(*inputs))

    return act, policy.stepped


def profile(act: Act, stepped: Callable[[np.ndarray], None], options: dict[str, Any], episodes: int,
            seed: int) -> dict[str, np.ndarray]:
    """Per-step team reward, coverage, link quality and distance flown per UAV (metres), averaged over ``episodes``
    episodes (and the UAVs)."""
    env = hmasd.envs.make("uav_coverage", num_envs=episodes, seed=seed, autoreset="disabled", **options)
    env.reset()
    length = int(env.options["max_steps"])
    reward, coverage, quality, flown = (np.zeros(length) for _ in range(4))
    before = np.stack([env.details(e)["uav_pos"] for e in range(episodes)])
    for t in range(length):
        env.step(act(env))
        stepped(env.terminated | env.truncated)
        details = [env.details(e) for e in range(episodes)]
        after = np.stack([d["uav_pos"] for d in details])
        reward[t] = float(env.rewards[:, 0].mean())  # the team reward (every agent gets it)
        coverage[t] = np.mean([d["metrics"]["coverage_ratio"] for d in details])
        quality[t] = np.mean([d["metrics"]["reward_quality"] for d in details])
        flown[t] = np.linalg.norm(after - before, axis=-1).mean()
        before = after
    return {"reward": reward, "coverage_ratio": coverage, "reward_quality": quality, "metres_per_step": flown}


def episode_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that shape the episodes: all but ``user_grid``, which only changes what the policy is shown."""
    return {key: value for key, value in options.items() if key != "user_grid"}


def phases(series: dict[str, np.ndarray]) -> list[dict[str, float]]:
    length = len(series["coverage_ratio"])
    out = []
    for start, stop in PHASES:
        stop = min(stop, length)
        if start < stop:
            out.append({"steps": f"{start}-{stop}", **{k: float(v[start:stop].mean()) for k, v in series.items()}})
    return out


def plot(results: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = {"reward": "team reward per step", "coverage_ratio": "coverage (mean of episodes)",
            "reward_quality": "link quality term", "metres_per_step": "distance flown per UAV, m/step"}
    figure, axes = plt.subplots(len(keys), 1, figsize=(9, 11), sharex=True)
    for label, series in results.items():
        style = "--" if label.startswith("k-means") else (":" if label.endswith("sampled actions") else "-")
        for axis, key in zip(axes, keys):
            values = np.convolve(series[key], np.ones(5) / 5, mode="valid")  # 5-step running mean
            axis.plot(np.arange(len(values)) + 5, values, style, label=label)
    for axis, label in zip(axes, keys.values()):
        axis.set_ylabel(label)
    axes[-1].set_xlabel("step of the episode")
    axes[0].legend(fontsize=8)
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle("uav_coverage through an episode (argmax skills; mean actions unless marked sampled)",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, action="append", required=True, help="a uav_coverage run folder "
                        "(repeat for several; every run must use the same env options)")
    parser.add_argument("--label", action="append", default=None, help="a name per --run-dir (default: folder)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=123, help="env seed of the episodes (uav_vs_baselines' default)")
    parser.add_argument("--sampled-actions", action="store_true", help="also play each run with its argmax skills "
                        "and sampled actions (does the policy do better with its noise than with its mean?)")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    labels = args.label or [run.name for run in args.run_dir]
    if len(labels) != len(args.run_dir):
        raise SystemExit(f"{len(labels)} --label for {len(args.run_dir)} --run-dir")
    results: dict[str, dict[str, np.ndarray]] = {}
    options: dict[str, Any] | None = None
    for label, run in zip(labels, args.run_dir):
        trainer, _ = load_trainer(run, "final")
        run_options = dict(trainer.config.env_options)
        if options is None:
            options = run_options
        elif episode_options(run_options) != episode_options(options):
            raise SystemExit(f"{run} has env options {run_options}, unlike the first run's {options}")
        for sampled in (False, True) if args.sampled_actions else (False,):
            act, stepped = policy_actor(trainer, args.episodes, args.seed, sampled)
            name = f"{label}, sampled actions" if sampled else label
            results[name] = profile(act, stepped, run_options, args.episodes, args.seed)
    probe = hmasd.envs.make("uav_coverage", num_envs=args.episodes, seed=args.seed, **options)
    height = float(probe.options["min_height"])
    kmeans = kmeans_policy(probe, seed=args.seed, height=height)  # k-means' own seed as uav_vs_baselines sets it
    results[f"k-means ({height:.0f} m)"] = profile(kmeans, lambda ended: None, options, args.episodes, args.seed)
    summary = {label: phases(series) for label, series in results.items()}
    for label, rows in summary.items():
        log.info("%s: return %.1f; %s", label, results[label]["reward"].sum(), "; ".join(
            f"{r['steps']}: reward {r['reward']:.4f}, coverage {r['coverage_ratio']:.3f}, quality "
            f"{r['reward_quality']:.3f}, {r['metres_per_step']:.1f} m" for r in rows))
    args.out.mkdir(parents=True, exist_ok=True)
    figure = plot(results, args.out / "episode_profile.png")
    record = {"runs": {label: str(run) for label, run in zip(labels, args.run_dir)}, "episodes": args.episodes,
              "sampled_actions": args.sampled_actions,
              "seed": args.seed, "phases": summary,
              "per_step": {label: {k: np.round(v, 5).tolist() for k, v in series.items()}
                           for label, series in results.items()}}
    (args.out / "episode_profile.json").write_text(json.dumps(record, indent=1) + "\n")
    log.info("wrote %s and %s", args.out / "episode_profile.json", figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
