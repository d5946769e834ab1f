"""Compares a trained ``uav_coverage`` policy with the env's scripted baselines (random moves, k-means placement).

    python benchmarks/learning/uav_vs_baselines.py --run-dir runs/uav_coverage_demo_<stamp> [--episodes 512]

Loads the run's final checkpoint and evaluates the policy (deterministic, stochastic, and argmax skills with sampled
actions) on ``--episodes`` fresh episodes with the run's env options; runs the ``random`` baseline, ``kmeans`` at the
middle and at the minimum of the height range and ``balanced_kmeans`` (clusters no larger than a UAV's connections) at
the minimum, on the same episodes (same env seed, same count: every method starts from the same user and UAV
positions). Writes ``<out>/uav_vs_baselines.json`` and ``<out>/uav_coverage_vs_baselines.png`` (training curves from
the run's episode CSV with the baselines as horizontal lines; bars per metric) and prints markdown tables. All
metrics are episode means of the env's per-step values; "return" is the per-agent episode return. Each trained row is
also compared with k-means at the minimum height episode by episode (``paired``: the mean difference, its standard
error and the share of episodes it wins): the episodes differ far more among themselves than the methods do, and
pairing cancels what they share. 512 episodes by default, because at 16 the standard error of that difference in
return (about 2.3) is larger than the differences being judged.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmasd.envs.uav_baselines import evaluate_baseline
from hmasd.train import checkpoint
from hmasd.train.evaluation import evaluate
from hmasd.train.loop import Trainer, build

log = logging.getLogger("uav_vs_baselines")

# summary key -> (column title, key in the trained policy's evaluate() result, key in evaluate_baseline's result)
METRICS: dict[str, tuple[str, str, str]] = {
    "coverage_ratio": ("coverage", "coverage_ratio", "coverage_ratio"),
    "system_throughput_mbps": ("throughput (Mbps)", "system_throughput_mbps", "system_throughput_mbps"),
    "connectivity_ratio": ("connectivity", "connectivity_ratio", "connectivity_ratio"),
    "avg_hops": ("avg hops", "avg_hops", "avg_hops"),
    "return": ("return / agent", "mean_reward", "return"),
}
BAR_METRICS = ("coverage_ratio", "system_throughput_mbps", "connectivity_ratio", "return")
# summary key -> the episode CSV's column drawn over training ("total_reward": the env's return, per agent)
CURVES = {"return": "total_reward", "coverage_ratio": "coverage_ratio",
          "system_throughput_mbps": "system_throughput_mbps"}
COLORS = ("tab:blue", "tab:cyan", "tab:purple", "tab:gray", "tab:orange", "tab:red", "tab:green")  # in run order


def load_trainer(run_dir: Path, name: str) -> tuple[Trainer, dict[str, Any]]:
    """The run's policy from ``checkpoints/<name>.pt``, built with one env copy and one torch thread; and where it
    came from (path, env steps trained, the run's num_envs)."""
    path = run_dir / "checkpoints" / f"{name}.pt"
    data = checkpoint.load(path)
    config = checkpoint.config_of(data, num_envs=1, num_threads=1, torch_threads=1, eval_interval=0)
    trainer = build(config)
    checkpoint.restore(trainer, data, path, exact=False)
    source = {"checkpoint": str(path), "env_steps": int(data["counters"]["env_steps"]),
              "run_num_envs": int(data["config"]["num_envs"])}
    log.info("loaded %s (%d env steps of training)", path, source["env_steps"])
    return trainer, source


def timed(function: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``function(*args, **kwargs)`` with its wall time added as ``wall_s``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return {**result, "wall_s": time.perf_counter() - start}


POLICY_ROWS = {"trained (det.)": (True, True), "trained (stoch.)": (False, False),
               "trained (det. skills, sampled actions)": (True, False)}
"""Result name -> (argmax skills, mean actions). The third tells whether a gap between the first two is the low
level's: on uav_coverage a policy can do better with its own action noise than with its mean action."""


def evaluate_policy(trainer: Trainer, episodes: int, seed: int, argmax_skills: bool,
                    mean_actions: bool) -> dict[str, Any]:
    """The trained policy on ``episodes`` fresh envs seeded ``seed`` (sampling seeded too), its skills and its
    actions each argmax / mean or sampled."""
    torch.manual_seed(seed)
    result = timed(evaluate, trainer, episodes, seed=seed, deterministic=argmax_skills,
                   low_deterministic=mean_actions)
    log.info("trained (skills %s, actions %s): coverage %.3f, return %.2f, %.1f s",
             "argmax" if argmax_skills else "sampled", "mean" if mean_actions else "sampled",
             result["coverage_ratio"], result["mean_reward"], result["wall_s"])
    return result


def run_baselines(options: dict[str, Any], episodes: int, seed: int) -> dict[str, dict[str, Any]]:
    """random, k-means at mid height, k-means at min height and balanced k-means (clusters capped at a UAV's
    connections) at min height, each on the same episodes as the policy."""
    common = {"episodes": episodes, "num_envs": episodes, "seed": seed, **options}
    low, high = float(options["min_height"]), float(options["max_height"])
    return {"random": timed(evaluate_baseline, "random", **common),
            f"k-means ({(low + high) / 2:.0f} m)": timed(evaluate_baseline, "kmeans", **common),
            f"k-means ({low:.0f} m)": timed(evaluate_baseline, "kmeans", height=low, **common),
            f"balanced k-means ({low:.0f} m)": timed(evaluate_baseline, "balanced_kmeans", height=low, **common)}


PAIRED_METRICS = ("return", "coverage_ratio")


def per_episode(result: dict[str, Any], key: str) -> np.ndarray:
    """``key`` ("return" or an episode-info field) of every episode of one method, in episode order."""
    return np.asarray(result["episode_returns"] if key == "return" else result["episode_info"][key], np.float64)


def paired(results: dict[str, dict[str, Any]], reference: str) -> dict[str, dict[str, dict[str, float]]]:
    """For each trained row and each of ``PAIRED_METRICS``: the mean over episodes of (row - ``reference``) on the
    same episode, the standard error of that mean, and the share of episodes on which the row is higher."""
    base = {key: per_episode(results[reference], key) for key in PAIRED_METRICS}
    if len(base["return"]) < 2:
        raise ValueError(f"a paired standard error needs at least 2 episodes, got {len(base['return'])}")
    comparison: dict[str, dict[str, dict[str, float]]] = {}
    for label, result in results.items():
        if "mean_reward" not in result:
            continue
        comparison[label] = {}
        for key in PAIRED_METRICS:
            difference = per_episode(result, key) - base[key]
            comparison[label][key] = {"mean": float(difference.mean()),
                                      "stderr": float(difference.std(ddof=1) / np.sqrt(len(difference))),
                                      "higher": float((difference > 0).mean())}
    return comparison


def slim(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with only the per-episode fields the comparison uses, rounded, so the JSON stays small."""
    kept = {key: value for key, value in result.items() if key not in ("episode_returns", "episode_info")}
    kept["episode_returns"] = [round(float(v), 4) for v in result["episode_returns"]]
    kept["episode_info"] = {key: [round(float(v), 5) for v in result["episode_info"][key]]
                               for key in PAIRED_METRICS if key != "return"}
    return kept


def compact_json(record: dict[str, Any]) -> str:
    """Indented JSON with every list of plain numbers on one line."""
    text = json.dumps(record, indent=1, default=float)
    # only brackets spanning lines: json.dumps escapes newlines inside strings, so none of these is in a string
    return re.sub(r"\[([-+0-9.eE,\s]*\n[-+0-9.eE,\s]*)\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  text) + "\n"


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method, the table's metrics under common names."""
    summary = {}
    for label, result in results.items():
        trained = "mean_reward" in result
        summary[label] = {key: float(result[source if trained else base])
                          for key, (_, source, base) in METRICS.items()}
    return summary


def training_curve(run_dir: Path) -> dict[str, np.ndarray]:
    """Columns of the run's latest episode CSV, plus ``env_steps``: the cumulative episode length, i.e. the env
    steps of the run when the episode ended (exact when, as here, every env's episodes have the same length)."""
    files = sorted((run_dir / "paper_data").glob("episode_rewards_step_*.csv"),
                   key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if not files:
        raise FileNotFoundError(f"no episode_rewards_step_*.csv under {run_dir / 'paper_data'}")
    with files[-1].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}
    columns["env_steps"] = np.cumsum(columns["episode_length"])
    log.info("training curve: %d episodes from %s", len(rows), files[-1].name)
    return columns


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running mean over ``window`` episodes (``len(values) - window + 1`` points)."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot(curve: dict[str, np.ndarray], summary: dict[str, dict[str, float]], window: int, title: str,
         path: Path) -> Path:
    """Left: the env's return, coverage and throughput during training with the evaluations as lines; right: bars
    per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(14, 8), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=(1.4, 2))
    curve_axes = left.subplots(len(CURVES), 1, sharex=True)
    window = max(1, min(window, len(curve["env_steps"])))
    steps = curve["env_steps"][window - 1:] / 1e3
    for axis, (key, column) in zip(curve_axes, CURVES.items()):
        axis.plot(steps, smooth(curve[column], window), color="tab:blue",
                  label=f"training (mean of {window} episodes)")
        for color, (label, values) in zip(COLORS, summary.items()):
            axis.axhline(values[key], color=color, ls=":" if label.startswith("trained") else "--", lw=1.2,
                         label=label)
        axis.set_ylabel(METRICS[key][0])
        axis.grid(alpha=0.3)
    curve_axes[-1].set_xlabel("env steps of training (thousands)")
    left.suptitle(title, fontsize=10)
    left.legend(*curve_axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=8)
    labels = list(summary)
    for axis, key in zip(right.subplots(2, 2).flat, BAR_METRICS):
        values = [summary[label][key] for label in labels]
        bars = axis.bar(range(len(labels)), values, color=COLORS[:len(labels)])
        axis.bar_label(bars, labels=[f"{v:.0f}" if abs(v) >= 100 else f"{v:.3f}" for v in values], fontsize=7)
        axis.margins(y=0.12)
        axis.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
        axis.set_title(METRICS[key][0], fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """One row per method, one column per metric."""
    header = "| method | " + " | ".join(title for title, _, _ in METRICS.values()) + " |"
    rule = "|---|" + "---:|" * len(METRICS)
    rows = [f"| {label} | " + " | ".join(f"{values[key]:.3f}" for key in METRICS) + " |"
            for label, values in summary.items()]
    return "\n".join([header, rule, *rows]) + "\n"


def paired_table(comparison: dict[str, dict[str, dict[str, float]]], reference: str) -> str:
    """One row per trained method: its lead over ``reference`` in return and coverage, episode by episode."""
    header = (f"| method | return - {reference} | episodes higher | coverage - {reference} | episodes higher |\n"
              "|---|---:|---:|---:|---:|")
    rows = [f"| {label} | {c['return']['mean']:+.2f} +- {c['return']['stderr']:.2f} | {c['return']['higher']:.0%} | "
            f"{c['coverage_ratio']['mean']:+.4f} +- {c['coverage_ratio']['stderr']:.4f} | "
            f"{c['coverage_ratio']['higher']:.0%} |" for label, c in comparison.items()]
    return "\n".join([header, *rows]) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="a hmasd-train run folder (uav_coverage)")
    parser.add_argument("--checkpoint", default="final", help="checkpoints/<name>.pt to evaluate")
    parser.add_argument("--episodes", type=int, default=512, help="fresh episodes per method (at least 2)")
    parser.add_argument("--seed", type=int, default=123, help="env seed of the evaluation episodes")
    parser.add_argument("--window", type=int, default=None, help="smoothing window (default: the run's num_envs)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/learning"))
    args = parser.parse_args(argv)
    if args.episodes < 2:
        parser.error(f"--episodes must be at least 2 (a paired standard error needs two), got {args.episodes}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    trainer, source = load_trainer(args.run_dir, args.checkpoint)
    if trainer.config.env != "uav_coverage":
        raise SystemExit(f"{args.run_dir} is a {trainer.config.env} run, not uav_coverage")
    options = trainer.env.options  # the run's env options with every default filled in
    results = {name: evaluate_policy(trainer, args.episodes, args.seed, skills, actions)
               for name, (skills, actions) in POLICY_ROWS.items()}
    results.update(run_baselines(options, args.episodes, args.seed))
    reference = f"k-means ({float(options['min_height']):.0f} m)"
    comparison = paired(results, reference)
    summary = summarise(results)
    curve = training_curve(args.run_dir)
    window = args.window or source["run_num_envs"]  # one episode per env copy: about one batch of episodes
    args.out.mkdir(parents=True, exist_ok=True)
    figure = plot(curve, summary, window, f"{args.run_dir.name}: training vs baselines",
                  args.out / "uav_coverage_vs_baselines.png")
    record = {"run_dir": str(args.run_dir), **source, "episodes": args.episodes, "seed": args.seed,
              "env_options": options, "summary": summary, "reference": reference, "paired": comparison,
              "results": {label: slim(result) for label, result in results.items()}}
    (args.out / "uav_vs_baselines.json").write_text(compact_json(record))
    log.info("wrote %s and %s", args.out / "uav_vs_baselines.json", figure)
    sys.stdout.write(markdown_table(summary) + "\n" + paired_table(comparison, reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
