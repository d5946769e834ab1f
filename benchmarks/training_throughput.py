"""End-to-end training throughput of a preset (default ``uav_seed_parity``) and where the time goes.

Trains for a wall-clock budget with timers around the env, the engine, policy inference and the updates, steps
the bare env with the same batch size for the env's own share, and writes a JSON report plus a markdown table::

    python benchmarks/training_throughput.py --preset uav_seed_parity --seconds 180
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

log = logging.getLogger("hmasd.benchmarks.training")

OLD_SYSTEM_ENV_STEPS_PER_S = 18.0  # the Python PettingZoo system this project replaces, 32 envs, same machine class


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


def bare_env_seconds_per_step(preset_name: str, num_envs: int, num_threads: int, steps: int = 200) -> float:
    """Seconds per batched step of the bare env (no engine, no policy) with the preset's options."""
    import hmasd.envs
    from hmasd.train.config import preset

    config = preset(preset_name)
    env = hmasd.envs.make(config.env, num_envs=num_envs, seed=1, num_threads=num_threads, **config.env_options)
    env.reset()
    rng = np.random.default_rng(0)
    shape = (num_envs, env.num_agents, env.action_dim) if env.continuous else (num_envs, env.num_agents)
    actions = [rng.uniform(-1, 1, shape).astype(np.float32) if env.continuous
               else rng.integers(0, env.num_actions, shape, dtype=np.int32) for _ in range(16)]
    start = time.perf_counter()
    for t in range(steps):
        env.step(actions[t % 16])
    return (time.perf_counter() - start) / steps


def measure(preset_name: str, seconds: float, overrides: dict[str, Any]) -> dict[str, Any]:
    """Trains ``preset_name`` for about ``seconds`` (after one warm-up iteration) with timers on every part."""
    from hmasd.train import loop
    from hmasd.train.config import preset

    config = preset(preset_name, **overrides)
    trainer = loop.build(config)
    loop.iterate(trainer)  # warm-up: allocations, first-touch of the batch, torch kernel selection
    timers = Timers()
    trainer.engine.step = timers.wrap("engine_step", trainer.engine.step)
    trainer.agent.act_low = timers.wrap("low_level_inference", trainer.agent.act_low)
    original_decide = loop.decide
    loop.decide = timers.wrap("high_level_inference", original_decide)
    collect_s = update_s = 0.0
    steps_before, iterations = trainer.env_steps, 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            metrics = loop.iterate(trainer)
            collect_s += metrics["Sync/CollectionTime"]
            update_s += metrics["Sync/UpdateTime"]
            iterations += 1
    finally:
        loop.decide = original_decide
    wall = time.perf_counter() - start
    env_steps = trainer.env_steps - steps_before
    batched_steps = iterations * config.horizon
    env_alone = bare_env_seconds_per_step(preset_name, config.num_envs, trainer.env.num_threads) * batched_steps
    parts = dict(timers.seconds)
    engine_step = parts.pop("engine_step", 0.0)
    return {
        "preset": preset_name, "overrides": overrides, "iterations": iterations, "env_steps": env_steps,
        "wall_seconds": wall, "env_steps_per_second": env_steps / wall,
        "speedup_vs_old_system": env_steps / wall / OLD_SYSTEM_ENV_STEPS_PER_S,
        "num_envs": config.num_envs, "horizon": config.horizon, "env_threads": trainer.env.num_threads,
        "seconds": {
            "collection": collect_s, "update": update_s,
            "engine.step (env stepping + recording, windows, ring)": engine_step,
            "  of which the bare env (measured alone, same batches)": env_alone,
            "low-level policy inference": parts.get("low_level_inference", 0.0),
            "high-level decisions (incl. the bootstrap decision in the targets)": parts.get("high_level_inference", 0.0),
            "other collection (tensor conversion, episode metrics)": max(
                collect_s - engine_step - parts.get("low_level_inference", 0.0)
                - parts.get("high_level_inference", 0.0), 0.0),
        },
        "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version()},
    }


def table(result: dict[str, Any]) -> str:
    wall = result["wall_seconds"]
    lines = [f"`{result['preset']}`: {result['env_steps']:,} env steps in {wall:.0f} s = "
             f"**{result['env_steps_per_second']:,.0f} env steps/s** end to end "
             f"({result['speedup_vs_old_system']:,.0f}x the old system's {OLD_SYSTEM_ENV_STEPS_PER_S:.0f}/s), "
             f"{result['iterations']} updates of {result['num_envs']} envs x {result['horizon']} steps.", "",
             "| part | seconds | share of wall time |", "|---|---:|---:|"]
    for name, value in result["seconds"].items():
        lines.append(f"| {name} | {value:.1f} | {100 * value / wall:.0f}% |")
    lines += ["", "The engine's own share is engine.step minus the bare env; it is within the noise of the two "
              "separate measurements when it comes out near zero or negative."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="uav_seed_parity")
    parser.add_argument("--seconds", type=float, default=180.0, help="training wall-clock budget")
    parser.add_argument("--json", type=Path, default=Path(".benchmarks/training_throughput.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(args.preset, args.seconds, {"eval_interval": 0})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
