"""A training session as the CLI runs it (progress, evaluation, checkpoints, exports, summary) and the evaluation
of a saved checkpoint (eval.json, a table, optionally a GIF of one episode)."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmasd.train import checkpoint
from hmasd.train.config import TrainConfig
from hmasd.train.distributed import Ranks
from hmasd.train.evaluation import EpisodePolicy, evaluate
from hmasd.train.loop import SYNC_METRIC, Trainer, agent_records, build, env_actions, iterate

log = logging.getLogger("hmasd.train")


def eval_score(result: dict[str, Any]) -> float:
    """What "best" means: the success rate where the env defines success, else the mean return."""
    return float(result["success_rate"]) if "success_rate" in result else float(result["mean_return"])


def progress_bar(config: TrainConfig, start: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=config.total_steps, initial=start, unit="step", unit_scale=True, dynamic_ncols=True,
                desc=f"{config.env}/{config.algo}")


def prepare(config: TrainConfig, data: dict | None = None, model_path: str | None = None,
            exact: bool = True, ranks: Ranks | None = None) -> Trainer:
    """The trainer of a run: built from ``config`` and, with a checkpoint ``data``, restored from it (exactly for a
    resume, networks only for an evaluation). A checkpoint that does not fit raises CheckpointError here, before
    anything is written, so that a refused resume leaves no run folder behind. ``ranks``: this process's place in
    a distributed run (hmasd.train.distributed.init)."""
    trainer = build(config, ranks=ranks)
    trainer.best_eval = None
    if data is not None:
        checkpoint.restore(trainer, data, model_path or "checkpoint", exact=exact)
    return trainer


def train(trainer: Trainer, run_dir: Path, model_path: str | None, export_interval: int, checkpoint_interval: int,
          detailed: bool, progress: bool) -> dict[str, Any]:
    """Trains ``trainer`` (from :func:`prepare`) until config.total_steps, writing everything under ``run_dir``;
    returns the summary. A checkpoint that cannot be written raises CheckpointWriteError.

    In a distributed run every rank calls this: rank 0 alone writes (TensorBoard, paper_data, checkpoints, the
    summary) and evaluates; the others train alongside and wait for it at the collectives."""
    ckpt_dir = run_dir / "checkpoints"
    main = trainer.is_main
    if main:
        for folder in {ckpt_dir, *([Path(model_path).parent] if model_path else [])}:
            for stale in checkpoint.remove_stale_temps(folder):
                log.info("removed %s, left by an interrupted checkpoint write", stale)
    if model_path is not None:
        log.info("resumed %s at %d env steps (update %d)", model_path, trainer.env_steps, trainer.iteration)
    config = trainer.config
    tracker = None
    if main:
        from hmasd.train.tracking import RunTracker

        tracker = RunTracker(run_dir, config, config.num_envs, trainer.env.num_agents, detailed=detailed)
    bar = progress_bar(config, trainer.env_steps, progress and main)
    next_export = (trainer.env_steps // export_interval + 1) * export_interval
    start, last_eval, start_steps = time.perf_counter(), None, trainer.env_steps
    while trainer.env_steps < config.total_steps:
        before = trainer.env_steps
        metrics = iterate(trainer)
        if SYNC_METRIC in metrics and before == start_steps:  # the count is the same every batch: log it once
            log.info("device run on %s: %d host syncs per batch (%s)", trainer.env.device, metrics[SYNC_METRIC],
                     ", ".join(f"{call} {n}" for call, n in trainer.syncs.by_call.items()))
        if config.eval_interval and trainer.iteration % config.eval_interval == 0:
            last_eval = evaluate_and_keep_best(trainer, tracker, ckpt_dir)
            metrics.update({"Eval/MeanReward": last_eval["mean_reward"], "Eval/StdReward": last_eval["std_reward"]})
        if tracker is not None:
            tracker.log_iteration(trainer, metrics)
        if checkpoint_interval and trainer.iteration % checkpoint_interval == 0:
            checkpoint.save(trainer, ckpt_dir / f"step_{trainer.env_steps}.pt")
        if trainer.env_steps >= next_export:
            if tracker is not None:
                tracker.export(trainer.env_steps)
                write_agent_records(trainer, run_dir)
            next_export += export_interval
        if bar is not None:
            bar.update(trainer.env_steps - before)
            bar.set_postfix(sps=f"{metrics['Training/SPS']:.0f}", version=trainer.engine.policy_version,
                            ret=f"{metrics.get('Training/Episode_Reward', float('nan')):.3f}")
    if bar is not None:
        bar.close()
    final_eval = evaluate_and_keep_best(trainer, tracker, ckpt_dir)
    checkpoint.save(trainer, ckpt_dir / "final.pt")
    summary = {"env": config.env, "algo": config.algo, "seed": config.seed, "env_steps": trainer.env_steps,
               "updates": trainer.iteration, "wall_time_s": time.perf_counter() - start,
               "final_eval": final_eval, "best_eval": trainer.best_eval, "run_dir": str(run_dir)}
    if trainer.on_device:
        summary["host_syncs_per_batch"] = trainer.syncs.total
    if trainer.ranks is not None:
        summary["world_size"] = trainer.ranks.world_size
    if tracker is not None:
        write_agent_records(trainer, run_dir)
        tracker.close(summary)
        log_summary(summary)
    return summary


def write_agent_records(trainer: Trainer, run_dir: Path) -> None:
    """agents.json: what the symmetry audit's `pipeline` check compares across agents."""
    (run_dir / "agents.json").write_text(json.dumps(agent_records(trainer), indent=2))


def evaluate_and_keep_best(trainer: Trainer, tracker, ckpt_dir: Path) -> dict[str, Any]:
    """Evaluates (rank 0 alone in a distributed run, which hands the result to the others: every rank's networks
    are the same) and saves best.pt when the score is the best so far."""
    result = evaluate(trainer, trainer.config.eval_episodes) if trainer.is_main else None
    if trainer.ranks is not None:
        result = trainer.ranks.broadcast(result)
    if tracker is not None:
        tracker.log_eval(trainer.env_steps, result)
    if trainer.best_eval is None or eval_score(result) > eval_score(trainer.best_eval):
        trainer.best_eval = {**result, "env_steps": trainer.env_steps}
        checkpoint.save(trainer, ckpt_dir / "best.pt")
    return result


def log_summary(summary: dict[str, Any]) -> None:
    final = summary["final_eval"]
    log.info("done: %s/%s, %d env steps in %.0f s (%d updates) -> %s", summary["env"], summary["algo"],
             summary["env_steps"], summary["wall_time_s"], summary["updates"], summary["run_dir"])
    log.info("  final evaluation over %d episodes: mean return %.3f +- %.3f%s", final["episodes"],
             final["mean_return"], final["std_return"],
             f", success rate {final['success_rate']:.2%}" if "success_rate" in final else "")


def eval_table(result: dict[str, Any]) -> str:
    rows = [(key, value) for key, value in result.items() if key != "episode_returns"]  # one per episode: eval.json
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {np.round(value, 4).tolist() if isinstance(value, (list, float)) else value}"
             for key, value in rows]
    return "\n".join(lines) + "\n"


def evaluate_checkpoint(trainer: Trainer, model_path: str, run_dir: Path, render: bool = False) -> dict[str, Any]:
    """Deterministic evaluation of a checkpoint (``trainer`` from :func:`prepare` with ``exact=False``): eval.json and a
    table on stdout; a GIF with ``render``."""
    result = evaluate(trainer, trainer.config.eval_episodes)
    result["checkpoint"] = str(model_path)
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    sys.stdout.write(eval_table(result))
    if render:
        path = render_episode(trainer, run_dir / "episode.gif")
        log.info("saved %s", path)
    return result


@torch.no_grad()
def render_episode(trainer: Trainer, path: Path, seed: int = 0) -> Path:
    """A GIF of one deterministic episode: the env's frames, titled with the skills in force."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import ArtistAnimation, PillowWriter

    import hmasd.envs

    c = trainer.config
    env = hmasd.envs.make(c.env, num_envs=1, seed=seed, autoreset="disabled", **c.env_options)
    env.reset()
    obs, state, mask = (torch.from_numpy(a) for a in (env.obs, env.state, env.action_mask))
    policy = EpisodePolicy(trainer, 1, deterministic=True)
    figure, axis = plt.subplots(figsize=(4, 4.4))
    axis.axis("off")
    frames = []

    def frame(t: int) -> list:
        title = axis.text(0.5, 1.02, f"t={t}  Z={int(policy.team[0])}  z={policy.indiv[0].tolist()}",
                          ha="center", transform=axis.transAxes)
        return [axis.imshow(env.render(0), animated=True), title]

    t = 0
    while not (env.terminated[0] or env.truncated[0] or t >= 1000):
        actions = policy.act(obs, state, mask)  # decides the skills shown in this frame
        frames.append(frame(t))
        env.step(env_actions(actions))
        policy.stepped(env.terminated | env.truncated)
        t += 1
    frames.append(frame(t))
    ArtistAnimation(figure, frames, interval=150, blit=True).save(path, writer=PillowWriter(fps=6))
    plt.close(figure)
    return path
