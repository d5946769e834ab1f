"""Distributed training throughput: env steps per second of a preset with 1 process and with R ranks under torchrun
on this machine, the same total envs, and the share of each rank's time spent in collectives (waiting for the
others included). Writes a JSON report and prints a markdown table::

    python benchmarks/distributed_scaling.py --preset uav_seed_parity --preset alice_and_bob --ranks 2 --seconds 30

Each measurement is its own launch (plain python for 1 process, ``torchrun --standalone`` for R), which trains one
warm-up iteration, then times whole iterations for about ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_model


def worker(preset: str, seconds: float, out: str, overrides: dict[str, Any]) -> None:
    """One rank (or the single process): times iterations of ``preset`` and writes its figures to ``out``."""
    from hmasd.train import distributed, loop
    from hmasd.train.config import preset as make_preset

    config = make_preset(preset, eval_interval=0, **overrides)
    ranks = distributed.init(config.num_envs, config.device, config.dist_timeout_s)
    trainer = loop.build(config, ranks=ranks)
    loop.iterate(trainer)  # warm-up: allocations, first-call costs
    if ranks is not None:
        ranks.collective_seconds()
    start = time.perf_counter()
    first = loop.iterate(trainer)
    per_iteration = time.perf_counter() - start
    iterations = max(1, int(seconds / per_iteration))
    if ranks is not None:  # every rank runs the same number of iterations
        iterations = ranks.broadcast(iterations)
    collectives = {key: value for key, value in first.items() if key.startswith("Time/Collectives/")}
    start = time.perf_counter()
    for _ in range(iterations):
        metrics = loop.iterate(trainer)
        for key in collectives:
            collectives[key] += metrics[key]
    elapsed = time.perf_counter() - start + per_iteration
    iterations += 1
    result = {"rank": 0 if ranks is None else ranks.rank, "world_size": 1 if ranks is None else ranks.world_size,
              "iterations": iterations, "seconds": elapsed,
              "env_steps_per_s": iterations * config.horizon * config.num_envs / elapsed,
              "collective_seconds": {key.rsplit("/", 1)[1]: value for key, value in collectives.items()},
              "torch_threads": __import__("torch").get_num_threads()}
    Path(out).with_suffix(f".rank{result['rank']}.json").write_text(json.dumps(result))
    if ranks is not None:
        ranks.close()


def measure(preset: str, world_size: int, seconds: float, sets: list[str]) -> dict[str, Any]:
    """Launches the workers of one measurement and combines their figures."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "result")
        args = [__file__, "--worker", "--preset", preset, "--seconds", str(seconds), "--json", out,
                *(f"--set={pair}" for pair in sets)]
        if world_size == 1:
            command = [sys.executable, *args]
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={world_size}", *args]
        subprocess.run(command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ranks = [json.loads(Path(out).with_suffix(f".rank{r}.json").read_text()) for r in range(world_size)]
    seconds_in = [sum(r["collective_seconds"].values()) / r["seconds"] for r in ranks]
    return {"preset": preset, "world_size": world_size, "set": sets, "env_steps_per_s": ranks[0]["env_steps_per_s"],
            "iterations": ranks[0]["iterations"], "torch_threads_per_rank": ranks[0]["torch_threads"],
            "collective_share": sum(seconds_in) / len(seconds_in),
            "collective_seconds_rank0": ranks[0]["collective_seconds"]}


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| preset | ranks | overrides | torch threads / rank | env steps/s | vs 1 process | time in collectives |",
             "|---|---:|---|---:|---:|---:|---:|"]
    base = {r["preset"]: r["env_steps_per_s"] for r in results if r["world_size"] == 1}
    for r in results:
        ratio = r["env_steps_per_s"] / base[r["preset"]] if r["preset"] in base else float("nan")
        overrides = " ".join(r["set"]) or "-"
        lines.append(f"| {r['preset']} | {r['world_size']} | {overrides} | {r['torch_threads_per_rank']} | "
                     f"{r['env_steps_per_s']:,.0f} | {ratio:.2f}x | {100 * r['collective_share']:.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", action="append", default=None, help="preset to measure (repeatable)")
    p.add_argument("--ranks", type=int, default=2, help="ranks of the distributed measurement")
    p.add_argument("--seconds", type=float, default=30.0, help="timed seconds per measurement")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="TrainConfig override for the distributed measurement, e.g. parallel_updates=false")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    presets = args.preset or ["uav_seed_parity", "alice_and_bob"]
    if args.worker:
        from hmasd._cli import parse_pairs

        worker(presets[0], args.seconds, args.json, parse_pairs(args.set, "--set"))
        return 0
    results = [measure(preset, world, args.seconds, [] if world == 1 else args.set)
               for preset in presets for world in (1, args.ranks)]
    report = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"CPU: {report['cpu']} ({report['cores']} cores)\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
