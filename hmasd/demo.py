"""hmasd-demo: a random-policy rollout on a native env that reports throughput and episode statistics."""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

import hmasd.envs

log = logging.getLogger("hmasd.demo")


def run(env_name: str, num_envs: int, steps: int, num_threads: int, seed: int) -> dict[str, float]:
    """Steps ``num_envs`` envs ``steps`` times with random actions; returns throughput and episode stats."""
    env = hmasd.envs.make(env_name, num_envs=num_envs, seed=seed, num_threads=num_threads)
    env.reset()
    rng = np.random.default_rng(seed)
    actions = [hmasd.envs.random_actions(env, rng) for _ in range(16)]
    env_time = 0.0
    report_every = max(1, steps // 5)
    for t in range(steps):
        start = time.perf_counter()
        env.step(actions[t % len(actions)])
        env_time += time.perf_counter() - start
        if (t + 1) % report_every == 0:
            log.info("step %d/%d  %.0f agent-steps/s", t + 1, steps,
                     (t + 1) * num_envs * env.num_agents / env_time)
    stats = env.episode_stats()
    summary = {
        "env_steps_per_s": steps * num_envs / env_time,
        "agent_steps_per_s": steps * num_envs * env.num_agents / env_time,
        "episodes": stats["episodes"],
    }
    if stats["episodes"]:
        summary["mean_return_per_agent"] = [round(float(r), 3) for r in stats["return"]]
        summary["mean_length"] = stats["length"]
        for key, value in stats.items():
            if key not in ("episodes", "return", "length"):
                summary[key] = np.round(value, 3).tolist()
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="alice_and_bob", choices=hmasd.envs.registered_envs())
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=2000, help="steps per env")
    parser.add_argument("--num-threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = run(args.env, args.num_envs, args.steps, args.num_threads, args.seed)
    log.info("random policy on %s, %d envs x %d steps:", args.env, args.num_envs, args.steps)
    for key, value in summary.items():
        log.info("  %-24s %s", key, f"{value:,.0f}" if key.endswith("_per_s") else value)


if __name__ == "__main__":
    main()
