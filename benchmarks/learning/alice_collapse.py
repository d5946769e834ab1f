"""Which level broke when a trained alice_and_bob run collapses, and what its high-level update looked like.

    # which level: each checkpoint's coordinator with the other's low level, evaluated
    python benchmarks/learning/alice_collapse.py swap GOOD.pt BAD.pt
    # the updates from a checkpoint on, resumed exactly; --set changes a field for the resumed run
    python benchmarks/learning/alice_collapse.py updates GOOD.pt --updates 25 [--set time_limit_bootstrap=false]

``updates`` logs, per update, the coordinator's raw (unnormalised) advantages, the KL between its policy before
and after the update on the batch's decisions, its entropy and the batch's training success, then evaluates
deterministically (the run's evaluation episodes). Both write JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("alice_collapse")


def success(trainer, episodes: int) -> dict[str, float]:
    """Success on the run's own evaluation episodes (``evaluate``'s default seed), argmax and sampled."""
    from hmasd.train.evaluation import evaluate

    return {"argmax": evaluate(trainer, episodes, deterministic=True)["success_rate"],
            "sampled": evaluate(trainer, episodes, deterministic=False)["success_rate"]}


def swap(good: Path, bad: Path, episodes: int) -> dict[str, Any]:
    """Success of both checkpoints and of the two hybrids (one's coordinator, the other's actor)."""
    spec = importlib.util.spec_from_file_location("skill_figures", Path(__file__).with_name("skill_figures.py"))
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    paths = {"good": good, "bad": bad}
    trainers = {name: figures.load_trainer(path) for name, path in paths.items()}
    results = {name: success(trainer, episodes) for name, trainer in trainers.items()}
    for coordinator_from, actor_from in (("good", "bad"), ("bad", "good")):
        hybrid = figures.load_trainer(paths[coordinator_from])
        hybrid.agent.actors.load_state_dict(trainers[actor_from].agent.actors.state_dict())
        results[f"{coordinator_from} coordinator, {actor_from} low level"] = success(hybrid, episodes)
    for name, result in results.items():
        log.info("%-34s %s", name, result)
    return results


def updates(path: Path, count: int, overrides: dict[str, Any], episodes: int) -> dict[str, Any]:
    """Resumes ``path`` exactly (with ``overrides``), runs ``count`` iterations, records each coordinator update."""
    from hmasd.train import checkpoint, session

    data = checkpoint.load(path)
    trainer = session.prepare(checkpoint.config_of(data, **overrides), data, str(path), exact=True)
    rows = record_updates(trainer, count)
    final = success(trainer, episodes)
    log.info("evaluation after %d updates: %s", count, final)
    return {"checkpoint": str(path), "overrides": overrides, "updates": rows, "evaluation": final}


def record_updates(trainer, count: int) -> list[dict[str, Any]]:
    """Runs ``count`` training iterations of ``trainer``, recording what each coordinator update did (the
    recording only reads: the run is the one it would be without it)."""
    import torch

    from hmasd.train.loop import iterate

    agent, rows = trainer.agent, []
    update_coordinator = agent.update_coordinator

    def recorded(batch, *args):
        with torch.no_grad():
            before, _, _ = agent.coordinator.evaluate(batch.state, batch.obs, batch.skills)
        losses = update_coordinator(batch, *args)
        with torch.no_grad():
            after, entropy, _ = agent.coordinator.evaluate(batch.state, batch.obs, batch.skills)
        log_ratio = after - before
        rows.append({"decisions": len(batch.advantages), "window_reward_mean": batch.rewards.mean().item(),
                     "raw_advantage_std": batch.advantages.std().item(),
                     "raw_advantage_abs_max": batch.advantages.abs().max().item(),
                     "kl": ((log_ratio.exp() - 1) - log_ratio).mean().item(),
                     "max_abs_log_ratio": log_ratio.abs().max().item(), "entropy": entropy.mean().item(),
                     "epochs": int(losses["epochs"]) if "epochs" in losses else agent.config.high_epochs})
        return losses

    agent.update_coordinator = recorded
    try:
        for _ in range(count):
            metrics = iterate(trainer)
            rows[-1].update(env_steps=trainer.env_steps, train_success=metrics.get("Training/Success"))
            log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()))
    finally:
        del agent.update_coordinator  # the bound method again
    return rows


def main() -> None:
    from hmasd._cli import parse_pairs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p_swap = sub.add_parser("swap", help="which level broke")
    p_swap.add_argument("good", type=Path)
    p_swap.add_argument("bad", type=Path)
    p_updates = sub.add_parser("updates", help="the coordinator's updates after a checkpoint")
    p_updates.add_argument("checkpoint", type=Path)
    p_updates.add_argument("--updates", type=int, default=25)
    p_updates.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    for p in (p_swap, p_updates):
        p.add_argument("--episodes", type=int, default=100)
        p.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.mode == "swap":
        result = swap(args.good, args.bad, args.episodes)
    else:
        result = updates(args.checkpoint, args.updates, parse_pairs(args.set, "--set"), args.episodes)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
