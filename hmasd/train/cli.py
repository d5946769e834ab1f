"""hmasd-train: train HMASD (or MAPPO / an ablation) on a native env, with a run folder holding TensorBoard
events, paper_data exports, checkpoints, the resolved config and a log; or evaluate a checkpoint. Under torchrun
(``torchrun --nproc_per_node=R -m hmasd.train.cli ...``) the R processes train one run together."""

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
    p.add_argument("--seed", type=int, default=None,
                   help="a resume keeps the checkpoint's; with --eval-only it picks the evaluation episodes")
    p.add_argument("--num-envs", type=int, default=None, help="a resume keeps the checkpoint's")
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


DICT_FIELDS = ("env_options", "warmup_env_options")
"""TrainConfig fields that --set fills one key at a time (``--set env_options.max_steps=50``)."""


def apply_overrides(config: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        table, _, option = key.partition(".")
        if option and table in DICT_FIELDS:  # env_options.max_steps=50, warmup_env_options.stag_min_hunters=1
            options = dict(changes.get(table, getattr(config, table)))
            options[option] = value
            changes[table] = options
        elif key not in fields:
            raise SystemExit(f"hmasd-train: unknown config field {key!r} in {source}; "
                             f"fields: {', '.join(sorted(fields))}")
        else:
            changes[key] = value
    return config.replace(**changes)


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, set[str]]:
    """preset, then --config file, then explicit flags, then --set, each overriding the previous; and the names of
    the fields that the --config file, a flag or --set gave."""
    config, given = PRESETS[args.preset], set()
    if args.config:
        import tomllib

        try:
            with open(args.config, "rb") as handle:
                table = tomllib.load(handle)
        except OSError as error:
            raise SystemExit(f"hmasd-train: cannot read --config {args.config}: {error.strerror or error}") from None
        except tomllib.TOMLDecodeError as error:
            raise SystemExit(f"hmasd-train: --config {args.config} is not valid TOML: {error}") from None
        config = apply_overrides(config, table, args.config)
        given |= set(table)
    flags = {"env": args.env, "algo": args.algo, "seed": args.seed, "num_envs": args.num_envs,
             "total_steps": args.total_steps, "device": args.device, "eval_interval": args.eval_interval,
             "eval_episodes": args.eval_episodes}
    flags = {k: v for k, v in flags.items() if v is not None}
    config = apply_overrides(config, flags, "flags")
    given |= set(flags)
    try:
        sets = parse_pairs(args.set, "--set")
    except ValueError as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    config = apply_overrides(config, sets, "--set")
    given |= {key.split(".", 1)[0] for key in sets}
    try:
        config.validate()
    except ValueError as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    return config, given


RESUME_FLAGS = ("total_steps", "device", "eval_interval", "eval_episodes")
"""What a resume or evaluation with the checkpoint's own config takes from the flags."""
FIXED_BY_RESUME = {
    "num_envs": ("--num-envs", "an exact resume continues the checkpoint's envs"),
    "seed": ("--seed", "a resume continues the checkpoint's random streams"),
}
"""Fields that an exact resume takes from the checkpoint: their flag and why."""


def checkpoint_run_config(args: argparse.Namespace, config: TrainConfig, given: set[str],
                          data: dict[str, Any]) -> TrainConfig:
    """The config of a run that starts from the checkpoint ``data``.

    Without --preset, --config, --set, --env or --algo it is the checkpoint's own, with RESUME_FLAGS (and --seed,
    which picks the evaluation episodes, for --eval-only) from the flags. A resume takes num_envs and seed from the
    checkpoint; asking for other values there is refused with a message naming the flag, as is --num-envs with
    --eval-only (an evaluation runs one env per episode).
    """
    from hmasd.train import checkpoint

    saved, requested = checkpoint.config_of(data), config
    if not any([args.config, args.set, args.env, args.algo, args.preset != DEFAULT_PRESET]):
        taken = RESUME_FLAGS + (("seed",) if args.eval_only else ())
        config = saved.replace(**{k: getattr(requested, k) for k in taken if k in given})
    if args.eval_only:
        if args.num_envs is not None:
            raise SystemExit("hmasd-train: --num-envs has no effect with --eval-only: the evaluation runs one env "
                             "per episode (--eval-episodes)")
        return config
    for field, (flag, why) in FIXED_BY_RESUME.items():
        want, have = getattr(requested, field), getattr(saved, field)
        if want == have:
            continue
        if field in given:
            how = f"{flag} {want}" if getattr(args, field) is not None else f"{field}={want}"
            raise SystemExit(f"hmasd-train: {how} does not fit the resume from {args.model_path}: {why} "
                             f"({field}={have}); leave it out, or start a new run without --model-path")
        config = config.replace(**{field: have})
    return config


def make_run_dir(parent: str, name: str) -> Path:
    run_dir = Path(parent) / f"{name}_{datetime.now().strftime('%Y%m%d_%H%M%S')}"
    suffix = 1
    while run_dir.exists():
        run_dir = run_dir.with_name(f"{run_dir.name}_{suffix}")
        suffix += 1
    try:
        (run_dir / "checkpoints").mkdir(parents=True)
    except OSError as error:
        raise SystemExit(f"hmasd-train: cannot create the run folder {run_dir}: {error.strerror or error}") from None
    return run_dir


def setup_logging(run_dir: Path | None, level: str, rank: int | None = None) -> None:
    """stderr, and ``run_dir/train.log``; the other ranks of a distributed run (``run_dir`` None) log warnings
    and errors only, to stderr, prefixed with their rank."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    prefix = "" if rank is None else f"[rank {rank}] "
    handlers[0].setFormatter(logging.Formatter(prefix + "%(message)s"))
    if run_dir is not None:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
        handlers[1].setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s: {prefix}%(message)s"))
    else:
        level = "WARNING" if level in ("DEBUG", "INFO") else level
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
    config, given = resolve_config(args)
    if data is not None:
        config = checkpoint_run_config(args, config, given, data)
    from hmasd.train import distributed
    from hmasd.train.loop import resolve_device

    if distributed.launched_by_torchrun() and args.eval_only:
        raise SystemExit("hmasd-train: --eval-only runs in one process; start it without torchrun")
    try:  # before the run folder exists: --device cuda on a machine without CUDA names the problem and stops
        resolve_device(str(distributed.pick_device(config.device)) if distributed.launched_by_torchrun()
                       else config.device)
        ranks = distributed.init(config.num_envs, config.device, config.dist_timeout_s)
    except (ValueError, distributed.DistributedError) as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    try:
        return run(args, config, data, ranks)
    except (distributed.DistributedError, *torch_distributed_errors()) as error:
        rank = "" if ranks is None else f"rank {ranks.rank}: "
        raise SystemExit(f"hmasd-train: {rank}distributed training stopped: {error} (another rank died, hung past "
                         f"dist_timeout_s={config.dist_timeout_s:g} s, or disagreed; its own error is above or in "
                         f"torchrun's report)") from None
    finally:
        if ranks is not None:
            ranks.close()


def torch_distributed_errors() -> tuple[type[BaseException], ...]:
    """The errors torch.distributed raises when a peer is gone or a collective times out."""
    import torch.distributed as dist

    return tuple(getattr(dist, name) for name in ("DistError", "DistBackendError", "DistNetworkError",
                                                  "DistStoreError") if hasattr(dist, name))


def run(args: argparse.Namespace, config: TrainConfig, data: dict[str, Any] | None, ranks: Any) -> int:
    """Builds the trainer (refusing a checkpoint that does not fit before any folder exists), makes the run folder
    (rank 0 only) and trains or evaluates."""
    from hmasd.train import checkpoint
    from hmasd.train.session import evaluate_checkpoint, prepare, train

    try:  # a checkpoint that does not fit is refused here, before the run folder exists
        trainer = prepare(config, data, args.model_path, exact=not args.eval_only, ranks=ranks)
    except checkpoint.CheckpointError as error:
        raise SystemExit(f"hmasd-train: {error}") from None
    name = args.name or f"{config.env}_{config.algo}" + ("_eval" if args.eval_only else "")
    main = ranks is None or ranks.is_main
    try:
        run_dir = make_run_dir(args.run_dir, name) if main else None
        if ranks is not None:  # the other ranks save through rank 0, into its folder
            run_dir = Path(ranks.broadcast(None if run_dir is None else str(run_dir)))
        setup_logging(run_dir if main else None, args.log_level, None if ranks is None else ranks.rank)
        if main:
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        if args.eval_only:
            evaluate_checkpoint(trainer, args.model_path, run_dir, render=args.render)
        else:
            train(trainer, run_dir, args.model_path, export_interval=args.export_interval,
                  checkpoint_interval=args.checkpoint_interval, detailed=args.detailed_logging,
                  progress=not args.no_progress)
    except OSError as error:  # a full disk, a read-only folder, lost permissions: one line, not a traceback
        raise SystemExit(f"hmasd-train: {describe(error)}") from None
    return 0


def describe(error: OSError) -> str:
    """An I/O failure in one line, naming the file and the cause."""
    from hmasd.train.checkpoint import CheckpointWriteError

    if isinstance(error, CheckpointWriteError) or not error.filename:
        return str(error)
    return f"{error.filename}: {error.strerror or error}"


if __name__ == "__main__":
    sys.exit(main())
