"""Run tracking: TensorBoard scalars by family, and the paper_data/ exports (CSV, JSON, a progress figure)
written every export interval and at the end of a run."""

from __future__ import annotations

import csv
import json
import logging
import math
import numbers
import pathlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from hmasd._cli import json_default
from hmasd.train.config import TrainConfig

if TYPE_CHECKING:
    from hmasd.train.loop import BatchRecord, Trainer

log = logging.getLogger("hmasd.train.tracking")

FAMILIES = ("Training/", "Sync/", "Buffer/", "Losses/", "Rewards/", "Agents/", "Eval/", "Performance/")
EPISODE_COLUMNS = ("episode", "env_id", "total_reward", "episode_length", "timestamp", "env_component",
                   "team_disc_component", "ind_disc_component")
SYNC_COLUMNS = ("policy_version", "samples_collected", "collection_time", "update_time", "sync_efficiency")
REWARD_COLUMNS = ("env_steps", "env", "team_intrinsic", "indiv_intrinsic", "low_level", "high_level")
# metrics key -> column, for the per-iteration rows
SYNC_SOURCES = {"policy_version": "Sync/PolicyVersion", "samples_collected": "Buffer/SamplesCollected",
                "collection_time": "Sync/CollectionTime", "update_time": "Sync/UpdateTime",
                "sync_efficiency": "Sync/Efficiency"}
REWARD_SOURCES = {"env": "Rewards/Env", "team_intrinsic": "Rewards/Intrinsic/Team",
                  "indiv_intrinsic": "Rewards/Intrinsic/Individual", "low_level": "Rewards/LowLevel",
                  "high_level": "Rewards/HighLevel/K_Step_Accumulated_Mean"}
# env episode stats that iterate() reports under Training/, also written under Performance/
PERFORMANCE_ALIASES = {"Training/Success": "Performance/Episode_Success_Rate"}


def normalised_entropy(counts: np.ndarray) -> float:
    """Entropy of the distribution ``counts / counts.sum()`` divided by log(len(counts)), in [0, 1]."""
    total = counts.sum()
    if total <= 0 or len(counts) < 2:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(len(counts)))


def write_csv(path: pathlib.Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> pathlib.Path:
    """Writes ``rows`` (dicts with at least ``columns``) as a CSV with exactly that header."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


class EpisodeAccumulator:
    """Per-env running sums over batches; emits one row per finished episode (episodes may span batches).

    ``total_reward`` is the env reward summed over the episode (averaged over agents); the three components are the
    terms of the low-level reward: lambda_e * env reward, lambda_D log q_D and lambda_d log q_d.
    """

    def __init__(self, num_envs: int, lambda_env: float) -> None:
        self.lambda_env = lambda_env
        self.sums = np.zeros((4, num_envs), np.float64)  # env reward, team, individual, length
        self.rows: list[dict[str, Any]] = []
        self.metric_columns: list[str] = []  # the env's own episode metrics, appended to the CSV columns

    def add(self, batch: BatchRecord) -> int:
        """Consumes a batch [T, E]; returns the number of episodes it finished."""
        before = len(self.rows)
        for t in range(batch.ended.shape[0]):
            self.sums += np.stack([batch.env_reward[t], batch.team_component[t], batch.indiv_component[t],
                                   np.ones(batch.ended.shape[1])])
            for e in np.flatnonzero(batch.ended[t]):
                self._emit(int(e), batch.episode_metrics.get((t, int(e)), {}))
        return len(self.rows) - before

    def _emit(self, e: int, env_metrics: dict[str, float]) -> None:
        reward, team, indiv, length = (float(x) for x in self.sums[:, e])
        self.rows.append({"episode": len(self.rows), "env_id": e, "total_reward": reward,
                          "episode_length": int(round(length)), "timestamp": time.time(),
                          "env_component": self.lambda_env * reward,
                          "team_disc_component": team, "ind_disc_component": indiv, **env_metrics})
        self.metric_columns += [key for key in env_metrics if key not in self.metric_columns]
        self.sums[:, e] = 0.0

    def recent_mean(self, count: int = 10) -> float | None:
        """Mean total reward of the last ``count`` finished episodes (None before the first)."""
        if not self.rows:
            return None
        return float(np.mean([row["total_reward"] for row in self.rows[-count:]]))


class SkillUsage:
    """Team and individual skill counts over the run, and team-skill switches per env."""

    def __init__(self, num_envs: int, num_agents: int, num_team: int, num_indiv: int) -> None:
        self.team = np.zeros(num_team, np.int64)
        self.indiv = np.zeros((num_agents, num_indiv), np.int64)
        self.previous = np.full(num_envs, -1, np.int64)  # last team skill decided per env (-1: none yet)
        self.switches = 0
        self.transitions = 0

    def add(self, batch: BatchRecord) -> float:
        """Counts a batch's high-level transitions; returns the normalised entropy of its team skills."""
        team = np.asarray(batch.team_skill, np.int64)
        recent = np.bincount(team, minlength=len(self.team))
        self.team += recent
        for agent, skills in enumerate(np.asarray(batch.indiv_skill, np.int64).T):
            self.indiv[agent] += np.bincount(skills, minlength=self.indiv.shape[1])
        for env, skill in zip(np.asarray(batch.high_env, np.int64), team):  # sorted by (env, start)
            if self.previous[env] >= 0 and self.previous[env] != skill:
                self.switches += 1
            self.previous[env] = skill
        self.transitions += len(team)
        return normalised_entropy(recent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "team_skill_counts": {str(k): int(v) for k, v in enumerate(self.team)},
            "individual_skill_counts": {f"agent_{i}": {str(k): int(v) for k, v in enumerate(row)}
                                        for i, row in enumerate(self.indiv)},
            "skill_switches": int(self.switches),
            "high_level_transitions": int(self.transitions),
            "skill_diversity": normalised_entropy(self.team),
        }


class RunTracker:
    """Writes a run's TensorBoard scalars (events file in ``run_dir``) and its ``run_dir/paper_data`` exports."""

    def __init__(self, run_dir: pathlib.Path, config: TrainConfig, num_envs: int, num_agents: int,
                 detailed: bool = False) -> None:
        self.run_dir = pathlib.Path(run_dir)
        self.paper_dir = self.run_dir / "paper_data"
        self.paper_dir.mkdir(parents=True, exist_ok=True)
        self.config, self.num_envs, self.num_agents, self.detailed = config, num_envs, num_agents, detailed
        self.writer = SummaryWriter(log_dir=str(self.run_dir))
        self.episodes = EpisodeAccumulator(num_envs, config.lambda_env)
        self.skills = SkillUsage(num_envs, num_agents, config.num_team_skills, config.num_indiv_skills)
        self.sync_rows: list[dict[str, Any]] = []
        self.reward_rows: list[dict[str, Any]] = []
        self.history: list[dict[str, float]] = []  # per iteration: step + every scalar written
        self.evals: list[dict[str, Any]] = []
        self.last_step = 0
        self.iterations = 0
        self.started = time.time()
        self.closed = False

    # ---- per iteration --------------------------------------------------------------------------
    def log_iteration(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """Writes the iteration's scalars at step ``trainer.env_steps`` and accumulates the paper_data rows."""
        step = int(trainer.env_steps)
        self.last_step, self.iterations = step, int(trainer.iteration)
        scalars = self._family_scalars(metrics)
        scalars.update(self._derived_scalars(trainer))
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.history.append({"step": float(step), **scalars})
        sync = {column: metrics.get(key, math.nan) for column, key in SYNC_SOURCES.items()}
        for column in ("policy_version", "samples_collected"):  # counters, stored as floats in metrics
            sync[column] = int(sync[column]) if math.isfinite(sync[column]) else sync[column]
        self.sync_rows.append(sync)
        self.reward_rows.append({"env_steps": step,
                                 **{column: metrics.get(key, math.nan) for column, key in REWARD_SOURCES.items()}})

    def _family_scalars(self, metrics: dict[str, float]) -> dict[str, float]:
        """The metrics that already have a family prefix, the Performance/ aliases, and (detailed) the rest."""
        scalars: dict[str, float] = {}
        for key, value in metrics.items():
            if not isinstance(value, numbers.Real):
                continue
            if key.startswith(FAMILIES):
                scalars[key] = float(value)
            elif self.detailed:
                scalars[f"Detailed/{key}"] = float(value)
            if key in PERFORMANCE_ALIASES:
                scalars[PERFORMANCE_ALIASES[key]] = float(value)
        return scalars

    def _derived_scalars(self, trainer: Trainer) -> dict[str, float]:
        """The scalars iterate() does not produce: update count, batch size, episode and skill statistics."""
        c = trainer.config
        scalars = {"Sync/Total_Updates": float(trainer.iteration),
                   "Buffer/low_level_samples": float(c.horizon * self.num_envs * self.num_agents)}
        batch = trainer.last_batch
        if batch is None:
            log.warning("iteration %d has no batch record; episode and skill data skipped", trainer.iteration)
            return scalars
        self.episodes.add(batch)
        scalars["Training/Skill_Diversity_Recent"] = self.skills.add(batch)
        scalars["Training/Skill_Switches_Total"] = float(self.skills.switches)
        recent = self.episodes.recent_mean(10)
        if recent is not None:
            scalars["Training/Avg_Reward_10ep"] = recent
        return scalars

    # ---- evaluation -----------------------------------------------------------------------------
    def log_eval(self, step: int, result: dict[str, Any]) -> None:
        """Writes an evaluate() result as Eval/MeanReward, Eval/StdReward and (if present) Eval/SuccessRate."""
        self.last_step = max(self.last_step, int(step))
        names = {"mean_reward": "Eval/MeanReward", "std_reward": "Eval/StdReward", "success_rate": "Eval/SuccessRate"}
        for key, tag in names.items():
            if key in result:
                self.writer.add_scalar(tag, float(result[key]), int(step))
        self.evals.append({"step": int(step), **result})

    def best_eval(self) -> dict[str, Any] | None:
        """The evaluation with the highest mean reward so far."""
        return max(self.evals, key=lambda r: r.get("mean_reward", -math.inf), default=None)

    # ---- paper_data -----------------------------------------------------------------------------
    def export(self, step: int) -> list[pathlib.Path]:
        """Writes the step's episode, sync and reward CSVs, the skill-usage JSON and the progress figure."""
        d = self.paper_dir
        episode_columns = EPISODE_COLUMNS + tuple(self.episodes.metric_columns)
        paths = [write_csv(d / f"episode_rewards_step_{step}.csv", episode_columns, self.episodes.rows),
                 write_csv(d / f"sync_metrics_step_{step}.csv", SYNC_COLUMNS, self.sync_rows),
                 write_csv(d / f"reward_components_step_{step}.csv", REWARD_COLUMNS, self.reward_rows)]
        usage = d / f"skill_usage_step_{step}.json"
        usage.write_text(json.dumps(self.skill_usage(step), indent=2, default=json_default))
        paths.append(usage)
        paths.append(self.plot(d / f"training_progress_step_{step}.png"))
        log.info("exported paper_data at step %d to %s", step, d)
        return paths

    def skill_usage(self, step: int) -> dict[str, Any]:
        """Skill counts and switches over the run, with the step, env steps and sync updates so far."""
        return {"step": int(step), **self.skills.to_dict(), "total_steps": int(self.last_step),
                "sync_updates": int(self.iterations)}

    def series(self, tag: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one scalar over the iterations that wrote it."""
        points = [(row["step"], row[tag]) for row in self.history if tag in row]
        return [p[0] for p in points], [p[1] for p in points]

    def plot(self, path: pathlib.Path) -> pathlib.Path:
        """One figure: episode reward, success, losses and sync timing against env steps (Agg, no pyplot)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(12, 8), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 2)
        self._plot_reward(axes[0, 0])
        self._plot_success(axes[0, 1])
        self._plot_lines(axes[1, 0], "Losses", [t for t in self._tags("Losses/")
                                                if t.endswith(("/total", "_loss"))])
        self._plot_lines(axes[1, 1], "Sync timing (s)", ["Sync/CollectionTime", "Sync/UpdateTime"])
        fig.suptitle(f"{self.config.env} / {self.config.algo}: step {self.last_step}")
        fig.savefig(path, dpi=80)
        return path

    def _tags(self, prefix: str) -> list[str]:
        return sorted({tag for row in self.history for tag in row if tag.startswith(prefix)})

    def _plot_lines(self, ax: Any, title: str, tags: list[str]) -> None:
        for tag in tags:
            steps, values = self.series(tag)
            if steps:
                ax.plot(steps, values, label=tag.split("/", 1)[1])
        ax.set_title(title)
        ax.set_xlabel("env steps")
        if ax.lines:
            ax.legend(fontsize="small")

    def _plot_reward(self, ax: Any) -> None:
        self._plot_lines(ax, "Episode reward", ["Training/Episode_Reward", "Training/Avg_Reward_10ep"])
        evals = [r for r in self.evals if "mean_reward" in r]
        if evals:
            ax.errorbar([r["step"] for r in evals], [r["mean_reward"] for r in evals],
                        yerr=[r.get("std_reward", 0.0) for r in evals], fmt="o", label="eval")
            ax.legend(fontsize="small")

    def _plot_success(self, ax: Any) -> None:
        self._plot_lines(ax, "Success rate", ["Performance/Episode_Success_Rate"])
        evals = [r for r in self.evals if "success_rate" in r]
        if evals:
            ax.plot([r["step"] for r in evals], [r["success_rate"] for r in evals], "o", label="eval")
            ax.legend(fontsize="small")
        if not ax.lines:
            ax.text(0.5, 0.5, f"no success metric for {self.config.env}", ha="center", va="center",
                    transform=ax.transAxes)

    # ---- end of run -----------------------------------------------------------------------------
    def close(self, summary: dict[str, Any]) -> pathlib.Path:
        """Final export at the last step, then paper_data/training_summary.json; flushes and closes the writer."""
        self.export(self.last_step)
        best = self.best_eval()
        merged = {**summary, "total_episodes": len(self.episodes.rows),
                  "final_avg_reward_10ep": self.episodes.recent_mean(10),
                  "best_eval": best, "skill_usage": self.skill_usage(self.last_step),
                  "wall_time_seconds": time.time() - self.started}
        path = self.paper_dir / "training_summary.json"
        path.write_text(json.dumps(merged, indent=2, default=json_default))
        if not self.closed:
            self.writer.flush()
            self.writer.close()
            self.closed = True
        return path
