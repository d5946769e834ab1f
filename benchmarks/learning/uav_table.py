"""uav_coverage runs scored by uav_vs_baselines.py, side by side: each run's deterministic return and coverage, its
lead over k-means episode by episode with the standard error, as a markdown table and a figure.

    python benchmarks/learning/uav_table.py "HMASD=benchmarks/learning/uav_3m/eval512/seed_123/hmasd_low_noise_seed_*.json" \\
        "MAPPO=benchmarks/learning/uav_3m/eval512/seed_123/mappo_gamma_0.9_seed_*.json" --out <folder>/summary

Each ``LABEL=GLOB`` names one configuration; GLOB matches its seeds' ``uav_vs_baselines.json`` files (copied under
any name ending in ``_seed_<n>.json``). Every file must have been scored on the same episodes (env seed, count and
reference), or the comparison would not be paired, and the script refuses. A run "beats" k-means when both leads, in
return and in coverage, are above zero.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmasd.diagnostics.stats import t_quantile

log = logging.getLogger("uav_table")

ROW = "trained (det.)"  # the deterministic evaluation the issue judges


@dataclass
class RunScore:
    label: str
    seed: int
    env_steps: int
    ret: float
    coverage: float
    lead_return: float
    lead_return_stderr: float
    lead_coverage: float
    lead_coverage_stderr: float

    @property
    def beats(self) -> bool:
        return self.lead_return > 0 and self.lead_coverage > 0


def run_seed(path: Path) -> int:
    match = re.search(r"_seed_(\d+)\.json$", path.name)
    if match is None:
        raise SystemExit(f"uav_table: {path} is not named *_seed_<n>.json")
    return int(match.group(1))


def score(label: str, path: Path, record: dict[str, Any]) -> RunScore:
    summary, lead = record["summary"][ROW], record["paired"][ROW]
    return RunScore(label, run_seed(path), int(record["env_steps"]), float(summary["return"]),
                    float(summary["coverage_ratio"]), lead["return"]["mean"], lead["return"]["stderr"],
                    lead["coverage_ratio"]["mean"], lead["coverage_ratio"]["stderr"])


def load(specs: list[str]) -> tuple[list[RunScore], dict[str, Any]]:
    """The runs of every ``LABEL=GLOB``, and the evaluation they share (episodes, seed, reference and its score)."""
    runs: list[RunScore] = []
    shared: dict[str, Any] | None = None
    for spec in specs:
        label, _, pattern = spec.rpartition("=")  # the last "=": a label may hold one (gamma=0.9)
        paths = sorted((Path(p) for p in glob.glob(pattern)), key=run_seed)
        if not label or not paths:
            raise SystemExit(f"uav_table: expected LABEL=GLOB matching files, got {spec!r}")
        for path in paths:
            record = json.loads(path.read_text())
            if "paired" not in record:
                raise SystemExit(f"uav_table: {path} has no paired comparison (scored before uav_vs_baselines.py "
                                 "had one): score the run again")
            reference = record["reference"]
            evaluation = {"episodes": record["episodes"], "seed": record["seed"], "reference": reference,
                          "reference_return": record["summary"][reference]["return"],
                          "reference_coverage": record["summary"][reference]["coverage_ratio"]}
            if shared is None:
                shared = evaluation
            elif evaluation != shared:
                raise SystemExit(f"uav_table: {path} was scored on other episodes ({evaluation}) than the first "
                                 f"file ({shared}): the leads would not be comparable")
            runs.append(score(label, path, record))
    assert shared is not None
    return runs, shared


def markdown(runs: list[RunScore], shared: dict[str, Any]) -> str:
    reference = shared["reference"]
    lines = [f"Deterministic evaluation (argmax skills, mean actions), {shared['episodes']} episodes of env seed "
             f"{shared['seed']}; {reference}: return {shared['reference_return']:.2f}, coverage "
             f"{shared['reference_coverage']:.4f}. Leads are per-episode differences from {reference}, +- one "
             "standard error.", "",
             "| run | seed | env steps | return | coverage | return lead | coverage lead | beats k-means on both |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        lines.append(f"| {run.label} | {run.seed} | {run.env_steps / 1e6:.2f}M | {run.ret:.2f} | {run.coverage:.4f} | "
                     f"{run.lead_return:+.2f} +- {run.lead_return_stderr:.2f} | "
                     f"{run.lead_coverage:+.4f} +- {run.lead_coverage_stderr:.4f} | {'yes' if run.beats else 'no'} |")
    return "\n".join(lines) + "\n"


def plot(runs: list[RunScore], shared: dict[str, Any], path: Path) -> Path:
    """Two panels, return lead and coverage lead, one row per run with a 95 % interval (Student t, as
    ``hmasd.diagnostics.stats.mean_ci``); k-means is the zero line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(run.label for run in runs))
    colors = {label: plt.get_cmap("tab10")(index % 10) for index, label in enumerate(labels)}
    figure, axes = plt.subplots(1, 2, figsize=(13, 0.4 * len(runs) + 1.6), sharey=True)
    rows = range(len(runs))[::-1]  # first run at the top
    half_width = t_quantile(0.975, shared["episodes"] - 1)  # standard errors either side
    for axis, (mean, stderr, title) in zip(axes, (("lead_return", "lead_return_stderr", "return"),
                                                  ("lead_coverage", "lead_coverage_stderr", "coverage"))):
        for row, run in zip(rows, runs):
            axis.errorbar(getattr(run, mean), row, xerr=half_width * getattr(run, stderr), fmt="o", capsize=3,
                          color=colors[run.label])
        axis.axvline(0.0, color="tab:gray", ls="--", lw=1)
        axis.set_xlabel(f"{title} lead over {shared['reference']}")
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(rows), [f"{run.label}, seed {run.seed}" for run in runs], fontsize=8)
    figure.suptitle(f"uav_coverage, deterministic evaluation: lead over {shared['reference']} on the same "
                    f"{shared['episodes']} episodes (env seed {shared['seed']}), 95 % intervals", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=GLOB of a configuration's per-seed JSON files")
    parser.add_argument("--out", type=Path, required=True, help="writes <out>.md and <out>.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs, shared = load(args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(runs, shared)
    args.out.with_suffix(".md").write_text(table)
    plot(runs, shared, args.out.with_suffix(".png"))
    log.info("wrote %s and %s", args.out.with_suffix(".md"), args.out.with_suffix(".png"))
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
