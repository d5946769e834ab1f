"""hmasd-train: train HMASD (or MAPPO / an ablation) on a native env, with a run folder holding TensorBoard
events, paper_data exports, checkpoints, the resolved config and a log; or evaluate a checkpoint."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hmasd._cli import parse_pairs

from hmasd.train.config import ALGOS, PRESETS, TrainConfig

log = logging.getLogger("hmasd.train")
DEFAULT_PRESET = "quickstart"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hmasd-train", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                   help="starting configuration (paper hyperparameters for alice_and_bob)")
    p.add_argument("--env", default=None, help="env name; overrides the preset's")
    p.add_argument("--algo", default=None, choices=ALGOS, help="overrides the preset's algorithm")
    p.add_argument("--config", default=None, metavar="FILE", help="TOML file of TrainConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set lr=1e-4 --set env_options.max_steps=50")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--num-envs", type=int, default=None)
    p.add_argument("--total-steps", type=int, default=None, help="env steps to train for")
    p.add_argument("--device", default=None, help="torch device (cpu, cuda, cuda:1)")
    p.add_argument("--run-dir", default="runs", help="parent folder of run folders")
    p.add_argument("--name", default=None, help="run name (default: <env>_<algo>); the folder adds a timestamp")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--detailed-logging", action="store_true", help="also log every diagnostic to TensorBoard")
    p.add_argument("--export-interval", type=int, default=100_000, help="env steps between paper_data exports")
    p.add_argument("--eval-interval", type=int, default=None, help="updates between evaluations (0 = never)")
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--checkpoint-interval", type=int, default=50, help="updates between periodic checkpoints")
    p.add_argument("--model-path", default=None, help="checkpoint to resume from (or to evaluate)")
    p.add_argument("--eval-only", action="store_true", help="evaluate --model-path and write eval.json")
    p.add_argument("--render", action="store_true", help="with --eval-only: save a GIF of one episode")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def apply_overrides(config: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key.startswith("env_options."):
            options = dict(changes.get("env_options", config.env_options))
            options[key.split(".", 1)[1]] = value
            changes["env_options"] = options
        elif key not in fields:
            raise SystemExit(f"hmasd-train: unknown config field {key!r} in {source}; "
                             f"fields: {', '.join(sorted(fields))}")
        else:
            changes[key] = value
    return config.replace(**changes)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """preset, then --config file, then explicit flags, then --set, each overriding the previous."""
    config = PRESETS[args.preset]
    if args.config:
        import tomllib

        with open(args.config, "rb") as handle:
            config = apply_overrides(config, tomllib.load(handle), args.config)
    flags = {"env": args.env, "algo": args.algo, "seed": args.seed, "num_envs": args.num_envs,
             "total_steps": args.total_steps, "device": args.device, "eval_interval": args.eval_interval,
             "eval_episodes": args.eval_episodes}
    config = apply_overrides(config, {k: v for k, v in flags.items() if v is not None}, "flags")
    try:
        sets = parse_pairs(args.set, "--set")
    except ValueError as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    config = apply_overrides(config, sets, "--set")
    try:
        config.validate()
    except ValueError as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    return config


def make_run_dir(parent: str, name: str) -> Path:
    run_dir = Path(parent) / f"{name}_{datetime.now().strftime('%Y%m%d_%H%M%S')}"
    suffix = 1
    while run_dir.exists():
        run_dir = run_dir.with_name(f"{run_dir.name}_{suffix}")
        suffix += 1
    (run_dir / "checkpoints").mkdir(parents=True)
    return run_dir


def setup_logging(run_dir: Path, level: str) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr),
                                       logging.FileHandler(run_dir / "train.log")]
    handlers[1].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers[0].setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=handlers, force=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.eval_only and not args.model_path:
        raise SystemExit("hmasd-train: --eval-only needs --model-path")
    if args.render and not args.eval_only:
        raise SystemExit("hmasd-train: --render goes with --eval-only")
    from hmasd.train import checkpoint

    data = None
    if args.model_path:
        try:
            data = checkpoint.load(args.model_path)
        except checkpoint.CheckpointError as error:
            raise SystemExit(f"hmasd-train: {error}") from None
    config = resolve_config(args)
    if data is not None and not any([args.config, args.set, args.env, args.algo, args.preset != DEFAULT_PRESET]):
        # resume / evaluate with the checkpoint's own config unless the user asked for another
        config = checkpoint.config_of(data, **{k: v for k, v in {
            "total_steps": args.total_steps, "device": args.device, "eval_interval": args.eval_interval,
            "eval_episodes": args.eval_episodes}.items() if v is not None})
    from hmasd.train.loop import resolve_device

    try:  # before the run folder exists: --device cuda on a machine without CUDA names the problem and stops
        resolve_device(config.device)
    except ValueError as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    name = args.name or f"{config.env}_{config.algo}" + ("_eval" if args.eval_only else "")
    run_dir = make_run_dir(args.run_dir, name)
    setup_logging(run_dir, args.log_level)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    from hmasd.train.session import evaluate_checkpoint, train

    try:
        if args.eval_only:
            evaluate_checkpoint(config, data, args.model_path, run_dir, render=args.render)
        else:
            train(config, run_dir, data, args.model_path, export_interval=args.export_interval,
                  checkpoint_interval=args.checkpoint_interval, detailed=args.detailed_logging,
                  progress=not args.no_progress)
    except checkpoint.CheckpointError as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
