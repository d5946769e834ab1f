"""stag_hunt runs of reproduce.py side by side: every seed's final deterministic evaluation (per-agent return,
stags, hares) as a markdown table with the mean over seeds, and the curves of return and stags in one figure.

    python benchmarks/learning/stag_hunt_table.py HMASD=runs/stag3:hmasd MAPPO=runs/stag3:mappo \\
        IPPO=runs/stag3_ippo:mappo --baselines --out benchmarks/learning/stag_hunt_3m/summary

``--baselines`` adds the scripted policies of ``hmasd.envs.stag_hunt_baselines`` (random, greedy hare hunters, a
greedy pair on the stag, everyone on the stag), each on every seed's own evaluation episodes: what each
equilibrium pays where the learners were measured.

"stags" is the env's per-agent count summed over the agents: one per hunter on a caught stag, so one capture
counts at least ``stag_min_hunters`` (2).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("stag_hunt_table")


@dataclass
class SeedResult:
    label: str
    seed: int
    env_steps: int
    per_agent_return: float
    stags: float
    """per episode, summed over the agents (a capture counts once per hunter)"""
    hares: float
    most_stags: float | None
    """the largest ``stags`` of any evaluation during training (None for a scripted baseline)"""


def seed_result(label: str, record: dict) -> SeedResult:
    last = record["curve"][-1]
    return SeedResult(label, record["seed"], record["env_steps"], float(last["mean_return"]), float(sum(last["stags"])),
                      float(sum(last["hares"])), float(max(sum(point["stags"]) for point in record["curve"])))


def load(spec: str) -> tuple[str, list[dict]]:
    """``LABEL=DIR[:ALGO]`` -> the label and the records of DIR/<ALGO>_seed_*.json (ALGO defaults to the label)."""
    label, _, where = spec.partition("=")
    if not where:
        raise SystemExit(f"stag_hunt_table: expected LABEL=DIR[:ALGO], got {spec!r}")
    folder, _, algo = where.partition(":")
    paths = sorted(Path(folder).glob(f"{algo or label}_seed_*.json"))
    if not paths:
        raise SystemExit(f"stag_hunt_table: no {algo or label}_seed_*.json in {folder}")
    return label, [json.loads(path.read_text()) for path in paths]


def baseline_results(records: list[dict]) -> list[SeedResult]:
    """Every scripted baseline on the evaluation episodes of each run seed (the env seed and count of the runs'
    final evaluation, with their env options)."""
    from hmasd.envs.stag_hunt_baselines import BASELINES, evaluate_baseline
    from hmasd.train import preset
    from hmasd.train.cli import apply_overrides
    from hmasd.train.evaluation import evaluation_seed

    runs = {record["seed"]: record for record in records}
    results = []
    for name in BASELINES:
        for seed, record in sorted(runs.items()):
            options = apply_overrides(preset(record["preset"]), record["set"], "the run's --set").env_options
            episodes = int(record["curve"][-1]["episodes"])
            got = evaluate_baseline(name, episodes, seed=evaluation_seed(seed), **options)
            results.append(SeedResult(f"scripted {name}", seed, 0, got["per_agent_return"], got["stags"],
                                      got["hares"], None))
    return results


def table(results: list[SeedResult]) -> str:
    lines = ["| algo | seed | env steps | per-agent return | stags per episode (all agents) | "
             "hares per episode (all agents) | most stags in any eval |", "|---|---:|---:|---:|---:|---:|---:|"]
    labels = list(dict.fromkeys(r.label for r in results))
    for label in labels:
        rows = [r for r in results if r.label == label]
        for r in rows:
            steps = f"{r.env_steps / 1e6:.2f}M" if r.env_steps else "-"
            most = "-" if r.most_stags is None else f"{r.most_stags:.3f}"
            lines.append(f"| {label} | {r.seed} | {steps} | {r.per_agent_return:.2f} | {r.stags:.3f} | "
                         f"{r.hares:.1f} | {most} |")
        mean = {k: np.mean([getattr(r, k) for r in rows]) for k in ("per_agent_return", "stags", "hares")}
        spread = np.std([r.per_agent_return for r in rows])
        most = "-" if rows[0].most_stags is None else f"{np.mean([r.most_stags for r in rows]):.3f}"
        lines.append(f"| **{label}** | mean of {len(rows)} | | **{mean['per_agent_return']:.2f}** ± {spread:.2f} | "
                     f"**{mean['stags']:.3f}** | **{mean['hares']:.1f}** | {most} |")
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], baselines: list[SeedResult], path: Path) -> None:
    """Per-agent return and stags per episode against env steps: a colour per algorithm, a line per seed; each
    scripted baseline's mean over seeds as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for colour, (label, records) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], runs.items()):
        for i, record in enumerate(records):
            steps = [point["env_steps"] / 1e6 for point in record["curve"]]
            name = label if i == 0 else None
            left.plot(steps, [point["mean_return"] for point in record["curve"]], color=colour, lw=1, label=name)
            right.plot(steps, [sum(point["stags"]) for point in record["curve"]], color=colour, lw=1, label=name)
    styles = ((":", "0.6"), ("--", "0.4"), ("-.", "0.4"), ("--", "0.0"))
    for (style, grey), label in zip(styles, dict.fromkeys(r.label for r in baselines)):
        rows = [r for r in baselines if r.label == label]
        for axis, key in ((left, "per_agent_return"), (right, "stags")):
            axis.axhline(np.mean([getattr(r, key) for r in rows]), color=grey, ls=style, lw=1, label=label)
    right.set_yscale("symlog", linthresh=0.1)
    left.set_ylabel("per-agent return (deterministic eval)")
    right.set_ylabel("stags per episode, all agents")
    for axis in (left, right):
        axis.set_xlabel("env steps (millions)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("stag_hunt: one line per seed (issue 17's bar, 2 captures per episode, is >= 4 stags)",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR[:ALGO]")
    parser.add_argument("--baselines", action="store_true",
                        help="add the scripted baselines, on the evaluation episodes of every run seed")
    parser.add_argument("--out", required=True, help="writes <out>.json, <out>.md and <out>.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = dict(load(spec) for spec in args.runs)
    results = [seed_result(label, record) for label, records in runs.items() for record in records]
    baselines = baseline_results([r for records in runs.values() for r in records]) if args.baselines else []
    results += baselines
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    markdown = table(results)
    out.with_suffix(".md").write_text(markdown + "\n")
    out.with_suffix(".json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    plot(runs, baselines, out.with_suffix(".png"))
    log.info("%s\nwrote %s.{md,json,png}", markdown, out)


if __name__ == "__main__":
    main()
