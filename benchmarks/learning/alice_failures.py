"""Why a trained alice_and_bob policy fails under argmax: which level's argmax fails, where the agents end up, what
the low-level policy and the intrinsic reward say at the goal cells.

    python benchmarks/learning/alice_failures.py runs/alice/checkpoints/hmasd_seed_1_2560000.pt

Runs the deterministic evaluation's episodes (the run's evaluation seed, or ``--seed``) four ways (argmax or
sampled at each level), then looks at the argmax episodes that failed: an agent whose last 20 steps alternate
between two cells is in a 2-cycle; for each agent whose cycle touches a button or diamond cell, the policy's
probability of stepping off that cell (every action that leaves it, summed) and the intrinsic reward terms
log q_d(z_i | o') and log q_D(Z | s') on the cell and on its partner; an agent on one cell for its last 20 steps
is still (counted apart when it stands on a goal cell, or next to one). Prints a summary and writes it as JSON
(``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("alice_failures")

MOVES = np.array([(0, 1), (0, -1), (-1, 0), (1, 0), (0, 0)])  # the env's actions as (row, col) steps


def goal_cells(height: int, width: int) -> dict[tuple[int, int], str]:
    return {(1, width - 2): "button 0", (1, 1): "button 1", (height - 2, 1): "diamond 0",
            (height - 2, width - 2): "diamond 1"}


def run_argmax(trainer, episodes: int, seed: int) -> dict:
    """The argmax episodes with everything the analysis needs, step-major."""
    import torch

    import hmasd.envs
    from hmasd.train.evaluation import EpisodePolicy
    from hmasd.train.loop import env_actions

    c = trainer.config
    env = hmasd.envs.make(c.env, num_envs=episodes, seed=seed, **c.env_options)
    env.reset()
    policy = EpisodePolicy(trainer, episodes, deterministic=True, seed=seed)
    obs_seq, state_seq, team_seq, indiv_seq = [], [], [], []
    done = np.zeros(episodes, bool)
    success = np.zeros(episodes, bool)
    while not done.all():
        obs, state, mask = (torch.from_numpy(a.copy()) for a in (env.obs, env.state, env.action_mask))
        actions = policy.act(obs, state, mask)
        obs_seq.append(obs.numpy())
        state_seq.append(state.numpy())
        team_seq.append(policy.team.numpy().copy())
        indiv_seq.append(policy.indiv.numpy().copy())
        env.step(env_actions(actions))
        ended = env.terminated | env.truncated
        policy.stepped(ended)
        for e in np.flatnonzero(ended & ~done):
            success[e] = bool(env.episode_info["success"][e])
        done |= ended
    return {"obs": np.array(obs_seq), "state": np.array(state_seq), "team": np.array(team_seq),
            "indiv": np.array(indiv_seq), "success": success}


def two_cycle(cells: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The two cells of a path [T, 2] whose last 20 steps alternate between them, else None."""
    tail = cells[-20:]
    even, odd = tail[0::2], tail[1::2]
    if np.all(even == even[0]) and np.all(odd == odd[0]) and not np.array_equal(even[0], odd[0]):
        return tuple(map(int, even[0])), tuple(map(int, odd[0]))
    return None


def analyse(trainer, episodes: int, seed: int) -> dict:
    import torch

    from hmasd.train.evaluation import evaluate

    c = trainer.config
    options = trainer.env.options
    goals = goal_cells(options["height"], options["width"])
    modes = {"argmax skills, argmax actions": (True, True), "argmax skills, sampled actions": (True, False),
             "sampled skills, argmax actions": (False, True), "sampled skills, sampled actions": (False, False)}
    success = {name: evaluate(trainer, episodes, seed=seed, deterministic=high, low_deterministic=low)["success_rate"]
               for name, (high, low) in modes.items()}
    run = run_argmax(trainer, episodes, seed)
    actor = trainer.agent.learners[0].actor
    failed = np.flatnonzero(~run["success"])
    agents = run["obs"].shape[2]
    still, still_on_goal, still_next_to_goal = 0, 0, 0
    cycles, on_goal, leave, log_qd, log_qd_partner, log_qD, log_qD_partner = 0, 0, [], [], [], [], []
    for e in failed:
        for i in range(agents):
            cells = run["obs"][:, e, i, -2:].astype(int)
            cycle = two_cycle(cells)
            if cycle is None:
                if np.all(cells[-20:] == cells[-1]):
                    still += 1
                    still_on_goal += tuple(cells[-1]) in goals
                    still_next_to_goal += any(abs(cells[-1][0] - g[0]) + abs(cells[-1][1] - g[1]) == 1 for g in goals)
                continue
            cycles += 1
            goal = next((cell for cell in cycle if cell in goals), None)
            if goal is None:
                continue
            on_goal += 1
            partner = cycle[1] if goal == cycle[0] else cycle[0]
            t_goal = len(cells) - 1 - next(k for k, cell in enumerate(cells[::-1]) if tuple(cell) == goal)
            t_partner = len(cells) - 1 - next(k for k, cell in enumerate(cells[::-1]) if tuple(cell) == partner)
            with torch.no_grad():
                obs = torch.from_numpy(run["obs"][t_goal, e, i])
                skill = torch.tensor(run["indiv"][t_goal, e, i])
                probs = actor.net(obs[None], skill[None])[0][0].softmax(-1).numpy()
                stays = [a for a, move in enumerate(MOVES) if not 1 <= goal[0] + move[0] <= options["height"] - 2
                         or not 1 <= goal[1] + move[1] <= options["width"] - 2 or not move.any()]
                leave.append(float(1 - probs[stays].sum()))
                for t, qd, qD in ((t_goal, log_qd, log_qD), (t_partner, log_qd_partner, log_qD_partner)):
                    state = torch.from_numpy(run["state"][t, e])[None]
                    obs_all = torch.from_numpy(run["obs"][t, e])[None]
                    team, indiv = trainer.agent.intrinsic_rewards(
                        state, obs_all, torch.from_numpy(run["team"][t, e:e + 1]),
                        torch.from_numpy(run["indiv"][t, e:e + 1]))
                    qd.append(float(indiv[0, i]))
                    qD.append(float(team[0]))
    agent_count = max(len(failed) * agents, 1)
    mean = (lambda xs: float(np.mean(xs)) if xs else None)  # noqa: E731
    return {"checkpoint_env_steps": int(trainer.env_steps), "episodes": episodes, "seed": seed,
            "success": success, "argmax_failures": int(len(failed)),
            "failed_agents_in_2_cycle": cycles / agent_count,
            "failed_agents_in_2_cycle_on_a_goal_cell": on_goal / agent_count,
            "failed_agents_still": still / agent_count,
            "failed_agents_still_on_a_goal_cell": still_on_goal / agent_count,
            "failed_agents_still_next_to_a_goal_cell": still_next_to_goal / agent_count,
            "p_step_off_goal_cell": mean(leave),
            "log_qd_on_goal_cell": mean(log_qd), "log_qd_on_partner_cell": mean(log_qd_partner),
            "log_qD_on_goal_cell": mean(log_qD), "log_qD_on_partner_cell": mean(log_qD_partner),
            "lambda": {"env": c.lambda_env, "team": c.lambda_team, "indiv": c.lambda_indi}}


def main() -> None:
    import importlib.util

    from hmasd.train.evaluation import evaluation_seed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="env seed (default: the run's evaluation seed)")
    parser.add_argument("--out", type=Path, default=None, help="JSON of the results (a list, one per checkpoint)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = importlib.util.spec_from_file_location("skill_figures", Path(__file__).with_name("skill_figures.py"))
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    results = []
    for path in args.checkpoints:
        trainer = figures.load_trainer(path)
        if trainer.config.env != "alice_and_bob":
            raise SystemExit(f"{path} is a {trainer.config.env} run; this script reads alice_and_bob runs")
        seed = evaluation_seed(trainer.config.seed) if args.seed is None else args.seed
        results.append({"checkpoint": str(path), **analyse(trainer, args.episodes, seed)})
        log.info(json.dumps(results[-1], indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
