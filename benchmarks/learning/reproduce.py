"""Reproduces a paper figure on CPU: trains a preset for several seeds and records evaluation curves and timing.

    python benchmarks/learning/reproduce.py --preset alice_and_bob --seeds 1 2 --out runs/alice_3m

Each seed runs in its own process (one torch thread each, ``--jobs`` at a time); results go to
<out>/<algo>_seed_<s>.json and <out>/<algo>_summary.json, curves to <out>/<algo>_curves.png. Every evaluation is
deterministic (argmax at both levels); a second one with argmax skills and sampled actions is recorded next to it
(``low_sampled``), which tells a failing low-level argmax from a failing coordinator, and so are the last update's
discriminator accuracies and policy entropies (``train``). ``--checkpoints`` keeps the
trainer at every evaluation (for ``skill_figures.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import time
from pathlib import Path

log = logging.getLogger("reproduce")

# what the last update said, kept at every evaluation: are the skills told apart, how random is the low level
TRAIN_METRICS = ("Losses/Discriminator/team_accuracy", "Losses/Discriminator/indiv_accuracy",
                 "Losses/Discoverer/entropy", "Losses/Coordinator/entropy", "Training/LowEntropyCoef")


def run_config(preset_name: str, seed: int, algo: str, total_steps: int | None, parallel_updates: bool,
               sets: dict | None = None):
    """The preset with --set applied by the CLI's own rules (so env_options.<name> works as in hmasd-train), then
    the fields this script owns (seed, algo, no in-training evaluation, the thread layout), which --set cannot
    change."""
    from hmasd.train import preset
    from hmasd.train.cli import apply_overrides

    owned = {"seed": seed, "algo": algo, "eval_interval": 0, "parallel_updates": parallel_updates,
             **({} if parallel_updates else {"torch_threads": 1}),
             **({"total_steps": total_steps} if total_steps else {})}
    config = apply_overrides(preset(preset_name), sets or {}, "--set").replace(**owned)
    config.validate()
    return config


def train_one(preset_name: str, seed: int, algo: str, total_steps: int | None, out: str,
              parallel_updates: bool, sets: dict | None = None, keep_checkpoints: bool = False) -> dict:
    from hmasd.train import checkpoint
    from hmasd.train.evaluation import evaluate
    from hmasd.train.loop import build, iterate

    config = run_config(preset_name, seed, algo, total_steps, parallel_updates, sets)
    trainer = build(config)
    curve, collect_s, update_s, start = [], 0.0, 0.0, time.perf_counter()
    path = Path(out) / f"{algo}_seed_{seed}.json"
    while trainer.env_steps < config.total_steps:
        metrics = iterate(trainer)
        collect_s += metrics["Sync/CollectionTime"]
        update_s += metrics["Sync/UpdateTime"]
        if trainer.iteration % 25 == 0 or trainer.env_steps >= config.total_steps:
            result = evaluate(trainer, config.eval_episodes)
            sampled = evaluate(trainer, config.eval_episodes, low_deterministic=False)
            low_sampled = {k: sampled[k] for k in ("mean_reward", "success_rate") if k in sampled}
            curve.append({"env_steps": trainer.env_steps, "wall_s": time.perf_counter() - start, **result,
                          "low_sampled": low_sampled, "train_success": metrics.get("Training/Success"),
                          "train": {k: metrics[k] for k in TRAIN_METRICS if k in metrics}})
            if keep_checkpoints:
                checkpoint.save(trainer, Path(out) / "checkpoints" / f"{algo}_seed_{seed}_{trainer.env_steps}.pt")
            record = {"preset": preset_name, "algo": algo, "seed": seed, "set": sets or {}, "curve": curve,
                      "collection_s": collect_s, "update_s": update_s, "wall_s": time.perf_counter() - start,
                      "env_steps": trainer.env_steps}
            path.write_text(json.dumps(record, indent=1))
    return record


def plot(out: Path, algo: str, records: list[dict]) -> Path:
    """Deterministic evaluation (success rate, else mean return) against env steps, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    key = "success_rate" if "success_rate" in records[0]["curve"][0] else "mean_reward"
    for record in records:
        steps = [point["env_steps"] / 1e6 for point in record["curve"]]
        line, = axis.plot(steps, [point[key] for point in record["curve"]], label=f"seed {record['seed']}")
        sampled = [point.get("low_sampled", {}).get(key) for point in record["curve"]]
        if all(v is not None for v in sampled):
            axis.plot(steps, sampled, color=line.get_color(), linestyle=":", linewidth=1)
    axis.set_xlabel("env steps (millions)")
    axis.set_ylabel(f"deterministic eval {key.replace('_', ' ')}")
    axis.set_title(f"{records[0]['preset']} / {algo}" + (" (dotted: argmax skills, sampled actions)"
                                                         if "low_sampled" in records[0]["curve"][0] else ""),
                   fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()
    path = out / f"{algo}_curves.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def load_records(out: Path, algo: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"{algo}_seed_*.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="alice_and_bob")
    parser.add_argument("--algo", default="hmasd")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--total-steps", type=int, default=None)
    parser.add_argument("--out", default="runs/reproduce")
    parser.add_argument("--jobs", type=int, default=None,
                        help="seeds trained at once (default: one per core); with more than one, each runs on one core "
                             "(one torch thread, its updates in turn: the results are the same)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset field, as hmasd-train --set (e.g. --set lambda_env=1, "
                             "--set env_options.reward_mode=team)")
    parser.add_argument("--checkpoints", action="store_true",
                        help="save the trainer at every evaluation under <out>/checkpoints")
    parser.add_argument("--plot-only", action="store_true", help="redraw the curves of finished runs")
    args = parser.parse_args()
    from hmasd._cli import parse_pairs

    sets = parse_pairs(args.set, "--set")
    if args.plot_only:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        log.info("wrote %s", plot(Path(args.out), args.algo, load_records(Path(args.out), args.algo)))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    jobs = args.jobs or min(len(args.seeds), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else os.cpu_count() or 1)
    with mp.get_context("spawn").Pool(jobs) as pool:
        records = pool.starmap(train_one, [(args.preset, s, args.algo, args.total_steps, args.out, jobs == 1, sets,
                                            args.checkpoints) for s in args.seeds])
    summary = {
        "preset": args.preset, "algo": args.algo, "seeds": args.seeds, "set": sets,
        "final_success_rate": [r["curve"][-1].get("success_rate") for r in records],
        "final_mean_reward": [r["curve"][-1]["mean_reward"] for r in records],
        "wall_s": [r["wall_s"] for r in records],
        "env_steps_per_s": [r["env_steps"] / r["wall_s"] for r in records],
        "collection_s": [r["collection_s"] for r in records], "update_s": [r["update_s"] for r in records],
    }
    (Path(args.out) / f"{args.algo}_summary.json").write_text(json.dumps(summary, indent=1))
    plot(Path(args.out), args.algo, records)
    log.info(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
