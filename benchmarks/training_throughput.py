"""End-to-end training throughput of each preset and where the time goes, with the updates' achieved FLOP rate.

Trains for a wall-clock budget with timers around the env, the engine, policy inference, the targets and every
update; steps the bare env with the same batch size for the env's own share; counts the updates' matmul FLOPs
and compares their rate with a plain ``torch.mm`` of comparable size timed in the same run. Writes a JSON report
and prints a markdown table per preset::

    python benchmarks/training_throughput.py --preset alice_and_bob --preset uav_seed_parity --seconds 60
    python benchmarks/training_throughput.py --preset all --seconds 30
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import cpu_model

log = logging.getLogger("hmasd.benchmarks.training")

OLD_SYSTEM_ENV_STEPS_PER_S = 18.4  # the Python PettingZoo system this project replaces, 32 envs, same machine class
UPDATES = ("Discoverer", "Coordinator", "Discriminator.indiv", "Discriminator.team")


class Timers:
    """Accumulated seconds per named part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return timed


def bare_env_seconds_per_step(config: Any, num_threads: int, steps: int = 200) -> float:
    """Seconds per batched step of the bare env (no engine, no policy) with the run's options."""
    import hmasd.envs

    env = hmasd.envs.make(config.env, num_envs=config.num_envs, seed=1, num_threads=num_threads,
                          **config.env_options)
    env.reset()
    rng = np.random.default_rng(0)
    shape = (config.num_envs, env.num_agents, env.action_dim) if env.continuous else (config.num_envs, env.num_agents)
    actions = [rng.uniform(-1, 1, shape).astype(np.float32) if env.continuous
               else rng.integers(0, env.num_actions, shape, dtype=np.int32) for _ in range(16)]
    start = time.perf_counter()
    for t in range(steps):
        env.step(actions[t % 16])
    return (time.perf_counter() - start) / steps


def update_flops(trainer: Any) -> dict[str, int]:
    """Matmul FLOPs (forward and backward, as torch's FlopCounterMode counts them) of one update of each kind on
    a fresh batch. Run after the timing: it trains the agent one more time."""
    from torch.utils.flop_counter import FlopCounterMode

    from hmasd.train import loop

    # iterate() left the engine resumed: a fresh batch can start
    with loop.distribution_checks_off():
        loop.collect(trainer)
        high = trainer.engine.high_level()
        low_batch, disc_batch, _ = loop.low_level_batch(trainer, high)
        jobs, _ = loop.update_jobs(trainer, high, low_batch, disc_batch)
        flops = {}
        for name, job in jobs.items():
            with FlopCounterMode(display=False) as counter:
                job()
            flops[name] = int(counter.get_total_flops())
    trainer.engine.resume()
    return flops


def plain_mm_flop_rate(rows: int, width: int, threads: int, repeats: int = 30) -> float:
    """FLOP/s of ``torch.mm`` of [rows, width] x [width, width] on this machine now (best of ``repeats``)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(rows, width), torch.randn(width, width)
        for _ in range(3):
            torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * rows * width * width / best


def measure(preset_name: str, seconds: float, overrides: dict[str, Any]) -> dict[str, Any]:
    """Trains ``preset_name`` for about ``seconds`` (after one warm-up iteration) with timers on every part."""
    import torch

    from hmasd.train import loop
    from hmasd.train.config import preset

    config = preset(preset_name, **overrides)
    trainer = loop.build(config)
    loop.iterate(trainer)  # warm-up: allocations, first-touch of the batch, torch kernel selection
    timers = Timers()
    patched = {"decide": loop.decide, "low_level_batch": loop.low_level_batch,
               "high_level_batch": loop.high_level_batch}
    trainer.engine.step = timers.wrap("engine_step", trainer.engine.step)
    trainer.agent.act_low = timers.wrap("low_level_inference", trainer.agent.act_low)
    loop.decide = timers.wrap("high_level_inference", patched["decide"])
    loop.low_level_batch = timers.wrap("targets", patched["low_level_batch"])
    loop.high_level_batch = timers.wrap("targets", patched["high_level_batch"])
    collect_s = update_s = 0.0
    per_update = dict.fromkeys(UPDATES, 0.0)
    steps_before, iterations = trainer.env_steps, 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds or iterations == 0:
            metrics = loop.iterate(trainer)
            collect_s += metrics["Sync/CollectionTime"]
            update_s += metrics["Sync/UpdateTime"]
            for name in UPDATES:
                per_update[name] += metrics.get(f"Time/Update/{name}", 0.0)
            iterations += 1
    finally:
        for name, fn in patched.items():
            setattr(loop, name, fn)
    wall = time.perf_counter() - start
    env_steps = trainer.env_steps - steps_before
    env_alone = bare_env_seconds_per_step(config, trainer.env.num_threads) * iterations * config.horizon
    parts = dict(timers.seconds)
    engine_step = parts.pop("engine_step", 0.0)
    targets_s = parts.get("targets", 0.0)
    low_s, high_s = parts.get("low_level_inference", 0.0), parts.get("high_level_inference", 0.0)
    flops = update_flops(trainer)
    threads = torch.get_num_threads()
    rows = config.horizon * config.num_envs * trainer.env.num_agents
    mm_rate = plain_mm_flop_rate(rows, config.hidden, threads)
    updates_only = max(update_s - targets_s, 1e-9)  # UpdateTime includes the targets
    achieved = sum(flops.values()) * iterations / updates_only
    return {
        "preset": preset_name, "overrides": overrides, "iterations": iterations, "env_steps": env_steps,
        "wall_seconds": wall, "env_steps_per_second": env_steps / wall,
        "speedup_vs_old_system": env_steps / wall / OLD_SYSTEM_ENV_STEPS_PER_S,
        "num_envs": config.num_envs, "horizon": config.horizon, "env_threads": trainer.env.num_threads,
        "torch_threads": threads, "parallel_updates": trainer.update_pool is not None,
        "seconds": {
            "collection": collect_s,
            "  env (the bare env, measured alone on the same batches)": env_alone,
            "  engine (engine.step minus the bare env)": engine_step - env_alone,
            "  low-level policy inference": low_s,
            "  high-level decisions": high_s,
            "  other collection (tensor conversion, episode metrics)": max(collect_s - engine_step - low_s - high_s,
                                                                          0.0),
            "targets (intrinsic rewards, bootstrap values, GAE)": targets_s,
            "updates (wall)": updates_only,
            **{f"  {name} update (its own time; they run side by side)": per_update[name] for name in UPDATES
               if per_update[name] > 0},
        },
        "update_flops": flops,
        "update_gflops_per_second": achieved / 1e9,
        "plain_mm_gflops_per_second": mm_rate / 1e9,
        "plain_mm_shape": [rows, config.hidden, config.hidden],
        "machine": {"cpu": cpu_model(), "python": platform.python_version(), "torch": torch.__version__},
    }


def table(result: dict[str, Any]) -> str:
    wall = result["wall_seconds"]
    rows, width, _ = result["plain_mm_shape"]
    lines = [f"`{result['preset']}`: {result['env_steps']:,} env steps in {wall:.0f} s = "
             f"**{result['env_steps_per_second']:,.0f} env steps/s** end to end "
             f"({result['speedup_vs_old_system']:,.0f}x the old system's {OLD_SYSTEM_ENV_STEPS_PER_S}/s), "
             f"{result['iterations']} updates of {result['num_envs']} envs x {result['horizon']} steps; "
             f"{result['torch_threads']} torch threads, updates side by side: {result['parallel_updates']}.", "",
             "| part | seconds | share of wall time |", "|---|---:|---:|"]
    for name, value in result["seconds"].items():
        lines.append(f"| {name.replace('  ', '&nbsp;&nbsp;')} | {value:.1f} | {100 * value / wall:.0f}% |")
    flops = ", ".join(f"{name} {value / 1e9:.2f}" for name, value in result["update_flops"].items())
    lines += ["", f"Updates: {flops} GFLOP (matmuls, forward and backward) per iteration; achieved "
              f"**{result['update_gflops_per_second']:.1f} GFLOP/s** against {result['plain_mm_gflops_per_second']:.1f} "
              f"GFLOP/s of a plain torch.mm [{rows}, {width}] x [{width}, {width}] in the same run "
              f"({100 * result['update_gflops_per_second'] / result['plain_mm_gflops_per_second']:.0f}%). "
              f"CPU: {result['machine']['cpu']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from hmasd.train.config import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="a preset name, repeatable, or 'all' (default: "
                        "alice_and_bob and uav_seed_parity)")
    parser.add_argument("--seconds", type=float, default=60.0, help="training wall-clock budget per preset")
    parser.add_argument("--json", type=Path, default=Path(".benchmarks/training_throughput.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = args.preset or ["alice_and_bob", "uav_seed_parity"]
    if "all" in names:
        names = sorted(PRESETS)
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; presets: {', '.join(sorted(PRESETS))}")
    results = []
    for name in names:
        log.info("training %s for %.0f s ...", name, args.seconds)
        results.append(measure(name, args.seconds, {"eval_interval": 0}))
        print(table(results[-1]) + "\n", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
