"""Acting with a trained agent outside the rollout engine (evaluation, rendering, the symmetry audit), under the
engine's own skill-clock rule, so that a run evaluates with the clock it trained with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import hmasd.envs
from hmasd.train.loop import Trainer, decide, env_actions


@dataclass
class SkillClock:
    """When each env's skill window closes, by the rule of the native engine (csrc/rollout/skill_window.h).

    A window closes after a step when, with ``clock="episode"``, it has lasted ``skill_interval`` steps or its
    episode ended, or, with ``clock="global"``, the batch step is a multiple of ``skill_interval``; and every
    window closes at the barrier (every ``horizon`` steps), after which each env decides afresh.
    """

    clock: str
    skill_interval: int
    horizon: int
    num_envs: int
    needs_decision: np.ndarray = field(init=False)
    length: np.ndarray = field(init=False)  # steps taken under each env's open window
    batch_step: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.clock not in ("episode", "global"):
            raise ValueError(f"clock must be 'episode' or 'global', got {self.clock!r}")
        self.needs_decision = np.ones(self.num_envs, bool)
        self.length = np.zeros(self.num_envs, np.int64)

    def decision_env_ids(self) -> np.ndarray:
        return np.flatnonzero(self.needs_decision)

    def decided(self, env_ids: np.ndarray) -> None:
        self.needs_decision[env_ids] = False
        self.length[env_ids] = 0

    def stepped(self, episode_ended: np.ndarray) -> None:
        """After every env stepped; ``episode_ended`` [E] flags the envs whose episode ended at this step."""
        self.length += 1
        self.batch_step += 1
        if self.clock == "episode":
            natural = (self.length >= self.skill_interval) | episode_ended
        else:
            natural = np.full(self.num_envs, self.batch_step % self.skill_interval == 0)
        barrier = self.batch_step == self.horizon
        self.needs_decision |= natural | barrier
        if barrier:
            self.batch_step = 0


class EpisodePolicy:
    """The trained policy acting in ``num_envs`` envs: high-level decisions where the skill clock (the run's
    ``clock``, ``skill_interval`` and ``horizon``) says a window closed, argmax or sampled at each level
    (``deterministic`` for the coordinator, ``low_deterministic`` for the actions, by default the same), the GRU
    state carried along and reset at episode starts. Every draw (sampled skills and actions, no_high's random
    skills) comes from a random stream of its own, seeded by ``seed``, so that acting here never moves the
    training run's random streams and a sampled evaluation repeats exactly."""

    def __init__(self, trainer: Trainer, num_envs: int, deterministic: bool = True, seed: int = 0,
                 low_deterministic: bool | None = None) -> None:
        c, dev = trainer.config, trainer.device
        self.trainer, self.deterministic = trainer, deterministic
        self.low_deterministic = deterministic if low_deterministic is None else low_deterministic
        self.generator = torch.Generator().manual_seed(seed)
        # the networks draw from torch's global RNG: acting swaps in this policy's own state and back out
        self.rng_devices = [dev] if torch.device(dev).type == "cuda" else []
        self.rng_state = self._seeded_states(seed)
        self.clock = SkillClock(c.clock, c.skill_interval, c.horizon, num_envs)
        self.team = torch.zeros(num_envs, dtype=torch.long)
        self.indiv = torch.zeros(num_envs, trainer.env.num_agents, dtype=torch.long)
        recurrent = c.recurrent
        self.h_actor = torch.zeros(num_envs, trainer.env.num_agents, c.hidden, device=dev) if recurrent else None
        self.h_critic = torch.zeros(num_envs, c.hidden, device=dev) if recurrent else None
        self.starts = torch.zeros(num_envs, dtype=torch.bool, device=dev) if recurrent else None

    def _seeded_states(self, seed: int) -> list[torch.Tensor]:
        with torch.random.fork_rng(devices=self.rng_devices):
            torch.manual_seed(seed)
            return self._states()

    def _states(self) -> list[torch.Tensor]:
        return [torch.get_rng_state(), *(torch.cuda.get_rng_state(d) for d in self.rng_devices)]

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Actions [E, N] (on the CPU) for the current step; the skills in force are ``team`` and ``indiv``."""
        with torch.random.fork_rng(devices=self.rng_devices):
            torch.set_rng_state(self.rng_state[0])
            for device, saved in zip(self.rng_devices, self.rng_state[1:]):
                torch.cuda.set_rng_state(saved, device)
            actions = self._act(obs, state, mask)
            self.rng_state = self._states()
        return actions

    def _act(self, obs: torch.Tensor, state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        trainer, dev = self.trainer, self.trainer.device
        ids = self.clock.decision_env_ids()
        if len(ids):
            index = torch.from_numpy(ids)
            skills, _, _ = decide(trainer, state[index], obs[index], deterministic=self.deterministic,
                                  generator=self.generator)
            self.team[index], self.indiv[index] = torch.from_numpy(skills[:, 0]), torch.from_numpy(skills[:, 1:])
            self.clock.decided(ids)
        actions, _, _, self.h_actor, self.h_critic = trainer.agent.act_low(
            obs.to(dev), self.indiv.to(dev), mask.to(dev), state.to(dev), self.team.to(dev), self.low_deterministic,
            self.h_actor, self.h_critic, self.starts)
        return actions.cpu()

    def stepped(self, episode_ended: np.ndarray) -> None:
        """Tells the policy which envs' episodes ended at the step just taken (closes their windows, and the GRU
        state restarts with the next episode)."""
        self.clock.stepped(episode_ended)
        if self.starts is not None:
            self.starts = torch.from_numpy(np.asarray(episode_ended, bool).copy()).to(self.starts.device)


def evaluation_seed(run_seed: int) -> int:
    """The env seed of a run's evaluation episodes: apart from its training envs' seed, and the same for every
    algorithm and baseline evaluated for that run seed."""
    return run_seed + 100_003


def episode_returns(trainer: Trainer, episodes: int, seed: int, deterministic: bool = False,
                    permutations: np.ndarray | None = None) -> np.ndarray:
    """Per-agent returns [episodes, N] of the trained policy, one episode per fresh env.

    ``permutations`` [episodes, N] shuffles agent ids: the policy's agent i acts in env slot permutations[e, i]
    (its observation, skill and action), so returns can be attributed to the id or to the physical slot. The
    result is indexed by slot.
    """
    return evaluate(trainer, episodes, seed=seed, deterministic=deterministic, permutations=permutations,
                    raw=True)["slot_returns"]


@torch.no_grad()
def evaluate(trainer: Trainer, episodes: int, seed: int | None = None, deterministic: bool = True,
             permutations: np.ndarray | None = None, raw: bool = False,
             low_deterministic: bool | None = None) -> dict[str, Any]:
    """One episode in each of ``episodes`` fresh envs, argmax at both levels by default, under the run's clock.

    ``low_deterministic`` (default: ``deterministic``) sets the low level apart: argmax skills with sampled actions
    (or the reverse) tell which level's argmax a failing deterministic policy fails at. ``episode_returns`` lists
    each episode's team return in env order (episode e is env copy e of the seeded batch, as for the baselines), and
    ``episode_info`` each scalar field of the env's ``episode_info`` per episode, in the same order and under the
    names of the means (``success_rate``): paired comparisons need them."""
    c = trainer.config
    seed = evaluation_seed(c.seed) if seed is None else seed
    env = hmasd.envs.make(c.env, num_envs=episodes, seed=seed, **c.env_options)
    env.reset()
    obs, state, mask = (torch.from_numpy(a) for a in (env.obs, env.state, env.action_mask))
    n = env.num_agents
    done = np.zeros(episodes, bool)
    returns = np.zeros((episodes, n), np.float32)
    lengths = np.zeros(episodes, np.int32)
    infos: dict[str, list] = {key: [None] * episodes for key in env.episode_info}
    policy = EpisodePolicy(trainer, episodes, deterministic, seed=seed, low_deterministic=low_deterministic)
    perm = None if permutations is None else torch.from_numpy(np.asarray(permutations)).long()
    rows = torch.arange(episodes).unsqueeze(-1)
    while not done.all():
        if perm is None:
            actions = policy.act(obs, state, mask)
        else:  # the policy's agent i acts in slot perm[e, i]: its inputs gathered, its actions scattered back
            acted = policy.act(obs[rows, perm], state, mask[rows, perm])
            actions = torch.empty_like(acted)
            actions[rows, perm] = acted
        env.step(env_actions(actions))
        ended = env.terminated | env.truncated
        policy.stepped(ended)
        finished = ended & ~done
        for e in np.flatnonzero(finished):
            returns[e], lengths[e] = env.episode_return[e], env.episode_length[e]
            for key, values in env.episode_info.items():
                infos[key][e] = np.array(values[e])
        done |= finished
    if raw:
        return {"slot_returns": returns}
    team_return = returns.mean(axis=1)
    result: dict[str, Any] = {"episodes": episodes, "mean_reward": float(team_return.mean()),
                              "std_reward": float(team_return.std()), "mean_return": float(returns.mean()),
                              "std_return": float(returns.std()), "mean_length": float(lengths.mean()),
                              "per_agent_return": returns.mean(axis=0).tolist(),
                              "episode_returns": team_return.tolist()}
    result["episode_info"] = {}
    for key, values in infos.items():
        name = "success_rate" if key == "success" else key  # a mean of 0/1 flags: a rate
        result[name] = np.mean(np.stack(values), axis=0).tolist()
        if np.ndim(values[0]) == 0:
            result["episode_info"][name] = [float(v) for v in values]
    return result
