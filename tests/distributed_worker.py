"""One process of the distributed-training tests (tests/test_distributed.py): run alone it trains in a single
process, under torchrun as one rank. It trains a few iterations of a small config through hmasd.train.loop and
writes what the tests compare into OUT/rank<r>.pt: the first batch, every sample's policy version, when each
rank collected and updated, the counters and metrics, the parameters.

    python tests/distributed_worker.py OUT ITERATIONS [--slow-rank R SECONDS] [--save-at N] [--resume PATH]
                                       [--kill-rank R --kill-at N] [--config JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hmasd.train import checkpoint, distributed, loop
from hmasd.train.config import TrainConfig

SMALL = dict(env="stag_hunt", num_envs=4, horizon=14, skill_interval=7, num_team_skills=3, num_indiv_skills=3,
             lambda_env=1.0, hidden=16, n_embd=16, high_epochs=3, low_epochs=3, disc_epochs=3, seed=3,
             torch_threads=1, eval_interval=0)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("iterations", type=int)
    p.add_argument("--slow-rank", nargs=2, default=None, metavar=("RANK", "SECONDS"))
    p.add_argument("--save-at", type=int, default=None, help="save OUT/checkpoint.pt after this many iterations")
    p.add_argument("--resume", default=None, help="restore this checkpoint before training")
    p.add_argument("--kill-rank", type=int, default=None)
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--config", default="{}", help="JSON of TrainConfig fields over SMALL")
    return p.parse_args()


def main() -> int:
    args = parse()
    config = TrainConfig(**{**SMALL, **json.loads(args.config)})
    ranks = distributed.init(config.num_envs, config.device, timeout_s=60)
    rank = 0 if ranks is None else ranks.rank
    trainer = loop.build(config, ranks=ranks)
    if args.resume:
        checkpoint.restore(trainer, checkpoint.load(args.resume), args.resume)
    record: dict = {"events": [], "versions": [], "metrics": [], "first_batch": None}

    def clock(name: str) -> None:
        record["events"].append((name, trainer.iteration, time.time()))

    collect, run_updates, low_level_batch = loop.collect, loop.run_updates, loop.low_level_batch

    def timed_collect(t: loop.Trainer) -> None:
        clock("collect_start")
        collect(t)

    def slowed_updates(t: loop.Trainer, jobs):
        results = run_updates(t, jobs)
        if args.slow_rank is not None and int(args.slow_rank[0]) == rank:
            time.sleep(float(args.slow_rank[1]))  # after its last collective: only the barrier holds the others
        clock("updates_done")
        return results

    def recorded_batch(t: loop.Trainer, high=None):
        low = t.engine.low_level()
        record["versions"].append((int(t.engine.policy_version), np.unique(low["policy_version"]).tolist(),
                                   np.unique(t.engine.high_level()["policy_version"]).tolist()))
        if record["first_batch"] is None:
            record["first_batch"] = {key: torch.as_tensor(low[key]).clone()
                                     for key in ("obs", "state", "actions", "rewards", "team_skill", "indiv_skill",
                                                 "logp", "terminated", "truncated")}
        return low_level_batch(t, high)

    loop.collect, loop.run_updates, loop.low_level_batch = timed_collect, slowed_updates, recorded_batch
    for i in range(args.iterations):
        if args.kill_rank == rank and args.kill_at == i:
            os.kill(os.getpid(), signal.SIGKILL)
        record["metrics"].append(loop.iterate(trainer))
        if args.save_at is not None and trainer.iteration == args.save_at:
            checkpoint.save(trainer, Path(args.out) / "checkpoint.pt")
    record.update(params={k: v.clone() for k, v in trainer.agent.state_dict().items()},
                  counters=trainer.engine.counters(), iteration=trainer.iteration, env_steps=trainer.env_steps,
                  samples_pushed=list(trainer.agent.samples_pushed), world_size=1 if ranks is None else
                  ranks.world_size, first_env=int(trainer.draws.index[0]))
    torch.save(record, Path(args.out) / f"rank{rank}.pt")
    if ranks is not None:
        ranks.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
