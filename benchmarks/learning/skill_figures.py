"""What the learned skills are: skill usage over training and per phase of an episode, and what each team skill
makes the agents do (their paths coloured by individual skill), from the checkpoints of one run.

    python benchmarks/learning/reproduce.py --preset alice_and_bob --seeds 1 --checkpoints --out runs/alice
    python benchmarks/learning/skill_figures.py runs/alice/checkpoints/hmasd_seed_1_*.pt --out skills_alice.png

Every checkpoint acts deterministically (argmax at both levels, the run's skill clock) in the same fresh episodes
(``--seed``); the last checkpoint's episodes give the per-phase usage and the paths. Writes the figure and a JSON
of the numbers next to it. Works for alice_and_bob, stag_hunt and uav_coverage (positions read from the
observation or the global state).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("skill_figures")


@dataclass
class Episodes:
    """One deterministic episode per env, step-major: the skills in force, where decisions happened, and where
    the agents were before each step. Steps after an env's episode ended are masked out (``alive``)."""

    team: np.ndarray  # [T, E] int
    indiv: np.ndarray  # [T, E, N] int
    decided: np.ndarray  # [T, E] bool: a window opened at this step
    window: np.ndarray  # [T, E] int: index of the window within the episode
    positions: np.ndarray  # [T + 1, E, N, 2] float
    alive: np.ndarray  # [T, E] bool
    episode_return: np.ndarray  # [E]
    success: np.ndarray | None  # [E] (alice_and_bob) or None
    states: np.ndarray  # [T + 1, E, S]: the global state before each step (the last: where the episode ended)

    def team_share(self, num_team: int) -> np.ndarray:
        """Fraction of the decisions that picked each team skill."""
        counts = np.bincount(self.team[self.decided], minlength=num_team)
        return counts / max(counts.sum(), 1)

    def indiv_share(self, num_indiv: int) -> np.ndarray:
        """[N, n_z]: fraction of each agent's decisions that gave it each individual skill."""
        picked = self.indiv[self.decided]  # [D, N]
        counts = np.stack([np.bincount(picked[:, i], minlength=num_indiv) for i in range(picked.shape[1])])
        return counts / np.maximum(counts.sum(1, keepdims=True), 1)

    def team_share_by_window(self, num_team: int) -> np.ndarray:
        """[W, n_Z]: the team skills of the w-th window of the episodes."""
        windows = self.window[self.decided]
        team = self.team[self.decided]
        share = np.zeros((windows.max() + 1, num_team))
        for w in range(share.shape[0]):
            counts = np.bincount(team[windows == w], minlength=num_team)
            share[w] = counts / max(counts.sum(), 1)
        return share


def agent_positions(env_name: str, options: dict, obs: np.ndarray, state: np.ndarray) -> np.ndarray:
    """[E, N, 2] plotting coordinates of every agent: (column, row) for the grids, (x, y) in metres for the UAVs."""
    n = obs.shape[1]
    if env_name == "alice_and_bob":  # the observation ends with the agent's (row, col)
        return obs[:, :, -2:][..., ::-1].astype(np.float64)
    if env_name == "stag_hunt":
        from hmasd.envs.stag_hunt_baselines import decode_state

        grid = decode_state(state, options["grid_size"], n, options["num_hares"])
        return grid.agents[..., ::-1].astype(np.float64)
    if env_name == "uav_coverage":  # the state starts with every UAV's (x, y, z) / area
        return state[:, : 3 * n].reshape(-1, n, 3)[..., :2].astype(np.float64) * options["area_size"]
    raise ValueError(f"no position reader for env {env_name!r}")


def load_trainer(path: str | Path):
    """A trainer holding a checkpoint's networks (not its envs or RNG: only acting is needed)."""
    import torch

    from hmasd.train import checkpoint
    from hmasd.train.loop import build

    data = checkpoint.load(path)
    config = checkpoint.config_of(data, torch_threads=1, parallel_updates=False, num_threads=1)
    torch.set_num_threads(1)
    trainer = build(config)
    checkpoint.restore(trainer, data, path, exact=False)
    trainer.env_steps = data["counters"]["env_steps"]
    return trainer


def record(trainer, episodes: int, seed: int) -> Episodes:
    """Runs ``episodes`` fresh envs to the end of their first episode under the deterministic policy."""
    import torch

    import hmasd.envs
    from hmasd.train.evaluation import EpisodePolicy
    from hmasd.train.loop import env_actions

    c = trainer.config
    env = hmasd.envs.make(c.env, num_envs=episodes, seed=seed, **c.env_options)
    env.reset()
    options = env.options
    policy = EpisodePolicy(trainer, episodes, deterministic=True, seed=seed)
    team, indiv, decided, window, alive = [], [], [], [], []
    positions = [agent_positions(c.env, options, env.obs, env.state)]
    states = [env.state.copy()]
    windows = np.full(episodes, -1)
    done = np.zeros(episodes, bool)
    returns = np.zeros(episodes)
    success = np.zeros(episodes) if "success" in env.episode_info else None
    while not done.all():
        opened = policy.clock.needs_decision.copy()
        obs, state, mask = (torch.from_numpy(a) for a in (env.obs, env.state, env.action_mask))
        actions = policy.act(obs, state, mask)
        windows += opened
        team.append(policy.team.numpy().copy())
        indiv.append(policy.indiv.numpy().copy())
        decided.append(opened & ~done)
        window.append(windows.copy())
        alive.append(~done)
        env.step(env_actions(actions))
        ended = env.terminated | env.truncated
        policy.stepped(ended)
        # an env whose episode ended already holds the next one's start: its last position is in final_*
        finished = ended & ~done
        now = agent_positions(c.env, options, np.where(ended[:, None, None], env.final_obs, env.obs),
                              np.where(ended[:, None], env.final_state, env.state))
        positions.append(np.where(done[:, None, None], positions[-1], now))
        states.append(np.where(done[:, None], states[-1], np.where(ended[:, None], env.final_state, env.state)))
        for e in np.flatnonzero(finished):
            returns[e] = env.episode_return[e].mean()
            if success is not None:
                success[e] = env.episode_info["success"][e]
        done |= finished
    return Episodes(np.array(team), np.array(indiv), np.array(decided), np.array(window), np.array(positions),
                    np.array(alive), returns, success, np.array(states))


def stag_behaviour(run: Episodes, options: dict, num_team: int, num_indiv: int) -> dict:
    """What each skill does on stag_hunt, from the global state (agents, stag, hares as cells / (size - 1)):
    per individual skill, the agents' mean Manhattan distance to the stag and to their nearest hare; per team
    skill, the share of steps with at least ``stag_min_hunters`` agents within one cell of the stag (a capture
    needs them on it at once). A stag-chasing skill would show a stag distance well below the hare distance."""
    from hmasd.envs.stag_hunt_baselines import decode_state

    # the state each step acted on: [T, E, ...]
    grid = decode_state(run.states[:-1], int(options["grid_size"]), run.indiv.shape[2], int(options["num_hares"]))
    to_stag = np.abs(grid.agents - grid.stag[:, :, None]).sum(-1)  # [T, E, N]
    to_hare = np.abs(grid.agents[:, :, :, None] - grid.hares[:, :, None]).sum(-1).min(-1)
    alive = np.broadcast_to(run.alive[..., None], to_stag.shape)
    per_indiv = {}
    for z in range(num_indiv):
        under = alive & (run.indiv == z)
        per_indiv[f"z={z}"] = {"share_of_agent_steps": float(under.sum() / max(alive.sum(), 1)),
                               "mean_distance_to_stag": float(to_stag[under].mean()) if under.any() else None,
                               "mean_distance_to_nearest_hare": float(to_hare[under].mean()) if under.any() else None}
    close = (to_stag <= 1).sum(-1) >= int(options["stag_min_hunters"])  # [T, E]
    per_team = {}
    for k in range(num_team):
        under = run.alive & (run.team == k)
        per_team[f"Z={k}"] = {"share_of_steps": float(under.sum() / max(run.alive.sum(), 1)),
                              "steps_with_hunters_at_the_stag": float(close[under].mean()) if under.any() else None}
    return {"individual_skills": per_indiv, "team_skills": per_team,
            "steps_with_hunters_at_the_stag": float(close[run.alive].mean())}


def stacked(axis, x, shares: np.ndarray, labels: list[str], colours, kind: str = "area") -> None:
    if kind == "bar" or len(x) == 1:
        bottom = np.zeros(len(x))
        for k in range(shares.shape[1]):
            axis.bar(x, shares[:, k], bottom=bottom, color=colours[k], label=labels[k], width=0.8 if kind == "bar"
                     else max(x[0] * 0.05, 1e-3))
            bottom += shares[:, k]
    else:
        axis.stackplot(x, shares.T, colors=colours[: shares.shape[1]], labels=labels)
    axis.set_ylim(0, 1)


def draw_paths(axis, run: Episodes, team_skill: int, env_name: str, options: dict, colours, paths: int) -> None:
    """Each agent's path while ``team_skill`` is in force, in the first ``paths`` episodes, coloured by its
    individual skill; a dot where a window opens."""
    t_max, e_count, n = run.indiv.shape
    rng = np.random.default_rng(0)
    grid = env_name in ("alice_and_bob", "stag_hunt")
    jitter_scale = 0.18 if grid else 0.0
    for e in range(min(paths, e_count)):
        for i in range(n):
            jitter = rng.uniform(-jitter_scale, jitter_scale, 2)
            for t in range(t_max):
                if not run.alive[t, e] or run.team[t, e] != team_skill:
                    continue
                start, end = run.positions[t, e, i] + jitter, run.positions[t + 1, e, i] + jitter
                colour = colours[run.indiv[t, e, i]]
                axis.plot([start[0], end[0]], [start[1], end[1]], color=colour, linewidth=1.2, alpha=0.7)
                if run.decided[t, e]:
                    axis.plot(*start, "o", color=colour, markersize=3.5)
    if env_name == "alice_and_bob":
        height, width = options["height"], options["width"]
        marks = {"button 0": (width - 2, 1), "button 1": (1, 1), "diamond 0": (1, height - 2),
                 "diamond 1": (width - 2, height - 2)}
        for name, (x, y) in marks.items():
            axis.plot(x, y, "s", markersize=11, markerfacecolor="none", color="0.35" if "button" in name else "k")
            axis.annotate(name, (x, y), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=6)
        axis.set_xlim(0.3, width - 1.7)
        axis.set_ylim(height - 1.7, 0.3)
    elif env_name == "stag_hunt":
        size = options["grid_size"]
        axis.set_xlim(-0.5, size - 0.5)
        axis.set_ylim(size - 0.5, -0.5)
    else:
        axis.set_xlim(0, options["area_size"])
        axis.set_ylim(0, options["area_size"])
    axis.set_aspect("equal")
    axis.set_xticks([])
    axis.set_yticks([])


def figure(checkpoints: list[Path], runs: list[Episodes], steps: list[int], trainer, out: Path, paths: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = trainer.config
    n_team, n_indiv = c.num_team_skills, c.num_indiv_skills
    options = trainer.env.options
    team_colours = plt.get_cmap("Set2").colors
    indiv_colours = plt.get_cmap("tab10").colors
    last = runs[-1]
    team_over = np.array([run.team_share(n_team) for run in runs])
    indiv_over = np.array([run.indiv_share(n_indiv).mean(0) for run in runs])
    by_window = last.team_share_by_window(n_team)
    columns = max(3, n_team)
    fig, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 8.2))
    x = np.array(steps) / 1e6
    stacked(axes[0, 0], x, team_over, [f"Z={k}" for k in range(n_team)], team_colours)
    axes[0, 0].set_title("team skills over training (share of decisions)", fontsize=9)
    axes[0, 0].set_xlabel("env steps (millions)")
    score = [run.success.mean() if run.success is not None else None for run in runs]
    if score[0] is not None:
        twin = axes[0, 0].twinx()
        twin.plot(x, score, "k.-", linewidth=1, label="success")
        twin.set_ylim(0, 1.02)
        twin.set_ylabel("deterministic success", fontsize=8)
    axes[0, 0].legend(loc="lower left", fontsize=7)
    stacked(axes[0, 1], x, indiv_over, [f"z={k}" for k in range(n_indiv)], indiv_colours)
    axes[0, 1].set_title("individual skills over training (all agents)", fontsize=9)
    axes[0, 1].set_xlabel("env steps (millions)")
    axes[0, 1].legend(loc="lower left", fontsize=7)
    windows = np.arange(by_window.shape[0])
    stacked(axes[0, 2], windows, by_window, [f"Z={k}" for k in range(n_team)], team_colours, kind="bar")
    axes[0, 2].set_title(f"team skill per window of the episode (k = {c.skill_interval})", fontsize=9)
    axes[0, 2].set_xlabel("window within the episode (last checkpoint)")
    ticks = windows if len(windows) <= 12 else windows[:: int(np.ceil(len(windows) / 10))]
    axes[0, 2].set_xticks(ticks, [str(w + 1) for w in ticks])
    for column in range(3, columns):
        axes[0, column].axis("off")
    share = last.team_share(n_team)
    for z in range(columns):
        axis = axes[1, z]
        if z >= n_team:
            axis.axis("off")
            continue
        draw_paths(axis, last, z, c.env, options, indiv_colours, paths)
        axis.set_title(f"team skill Z={z} ({share[z]:.0%} of decisions): paths by individual skill", fontsize=9)
    handles = [plt.Line2D([], [], color=indiv_colours[k], label=f"z={k}") for k in range(n_indiv)]
    axes[1, 0].legend(handles=handles, loc="upper right", fontsize=7)
    fig.suptitle(f"{c.env} / {c.algo}, seed {c.seed}: {checkpoints[-1].name} "
                 f"({len(last.episode_return)} deterministic episodes, return {last.episode_return.mean():.2f}"
                 + (f", success {last.success.mean():.0%}" if last.success is not None else "") + ")", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"env": c.env, "algo": c.algo, "seed": c.seed, "checkpoints": [str(p) for p in checkpoints],
            "env_steps": steps, "team_share": team_over.tolist(), "indiv_share": indiv_over.tolist(),
            "indiv_share_per_agent_last": last.indiv_share(n_indiv).tolist(),
            "team_share_by_window_last": by_window.tolist(),
            "mean_return": [float(run.episode_return.mean()) for run in runs],
            "success": [None if s is None else float(s) for s in score],
            **({"stag_behaviour_last": stag_behaviour(last, options, n_team, n_indiv)} if c.env == "stag_hunt" else {})}


def env_steps_of(path: Path) -> int:
    found = re.findall(r"(\d+)", path.stem)
    return int(found[-1]) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoints of one run (sorted by env steps)")
    parser.add_argument("--out", type=Path, default=Path("skills.png"))
    parser.add_argument("--episodes", type=int, default=64, help="deterministic episodes per checkpoint")
    parser.add_argument("--seed", type=int, default=12345, help="env seed of the episodes (the same for each)")
    parser.add_argument("--paths", type=int, default=6, help="episodes whose paths are drawn")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    checkpoints = sorted(args.checkpoints, key=env_steps_of)
    runs, steps, trainer = [], [], None
    for path in checkpoints:
        trainer = load_trainer(path)
        runs.append(record(trainer, args.episodes, args.seed))
        steps.append(int(trainer.env_steps))
        log.info("%s: %d env steps, return %.3f", path.name, steps[-1], runs[-1].episode_return.mean())
    summary = figure(checkpoints, runs, steps, trainer, args.out, args.paths)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    log.info("wrote %s and %s", args.out, args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
