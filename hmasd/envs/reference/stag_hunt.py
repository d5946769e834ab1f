"""Plain NumPy reference of one stag_hunt env copy, written from docs/envs.md for the native-vs-reference tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hmasd.envs.reference._options import check_at_least, check_choice, parse_options
from hmasd.envs.reference.philox import EnvRng, bernoulli, uniform_int

DEFAULTS: dict[str, Any] = {
    "grid_size": 8,
    "num_agents": 4,
    "num_hares": 4,
    "max_steps": 35,
    "stag_move_prob": 0.5,
    "stag_min_hunters": 2,
    "stag_reward": 10.0,
    "hare_reward": 1.0,
    "lone_stag_penalty": 0.0,
    "reward_mode": "individual",
    "agent_id_in_obs": False,
    "tie_break": "random",
}

# The names of each choice option, in the order of the native option table (tests/test_env_options.py holds this
# module's DEFAULTS and CHOICES equal to that table).
CHOICES: dict[str, tuple[str, ...]] = {"reward_mode": ("individual", "team"), "tie_break": ("random", "index")}

PURPOSE_RESET, PURPOSE_STAG_MOVE, PURPOSE_HARE_TIE, PURPOSE_RESPAWN = 1, 2, 3, 4

# Action -> (row delta, col delta): 0 up, 1 down, 2 left, 3 right, 4 stay. The stag's neighbours use the same order.
MOVES: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))


class StagHuntRef:
    """One copy of the Markov stag hunt: N agents, one stag, H hares on an S x S grid without walls.

    Tests may assign the state attributes `agent_pos` (int64[N, 2]), `stag_pos` (int64[2]), `hare_pos`
    (int64[H, 2]), all as (row, col), the per-episode counts `stags`, `hares` (int64[N]) and `t`.
    """

    num_actions = 5

    def __init__(self, seed: int, env_index: int, **options: Any) -> None:
        opts = parse_options("stag_hunt", DEFAULTS, options)
        self.grid_size: int = opts["grid_size"]
        self.num_agents: int = opts["num_agents"]
        self.num_hares: int = opts["num_hares"]
        self.max_steps: int = opts["max_steps"]
        self.stag_move_prob: float = opts["stag_move_prob"]
        self.stag_min_hunters: int = opts["stag_min_hunters"]
        self.stag_reward = np.float32(opts["stag_reward"])
        self.hare_reward = np.float32(opts["hare_reward"])
        self.lone_stag_penalty = np.float32(opts["lone_stag_penalty"])
        self.reward_mode: str = opts["reward_mode"]
        self.agent_id_in_obs: bool = opts["agent_id_in_obs"]
        self.tie_break: str = opts["tie_break"]
        name = "stag_hunt"
        check_at_least(name, "grid_size", self.grid_size, 2)
        check_at_least(name, "num_agents", self.num_agents, 1)
        check_at_least(name, "num_hares", self.num_hares, 0)
        check_at_least(name, "max_steps", self.max_steps, 1)
        check_at_least(name, "stag_min_hunters", self.stag_min_hunters, 1)
        for option, choices in CHOICES.items():
            check_choice(name, option, opts[option], choices)
        if not 0.0 <= self.stag_move_prob <= 1.0:
            raise ValueError(f"stag_hunt: option 'stag_move_prob' must be in [0, 1], got {self.stag_move_prob}")
        # Worst case every agent on its own cell: the prey still need a free cell each.
        if self.grid_size**2 < self.num_agents + 1 + self.num_hares:
            raise ValueError(
                f"stag_hunt: a {self.grid_size} x {self.grid_size} grid cannot hold {self.num_agents} agents, "
                f"1 stag and {self.num_hares} hares"
            )

        n, h = self.num_agents, self.num_hares
        self.obs_dim = 2 + 2 * (n - 1) + 2 + 2 * h + 1 + (n if self.agent_id_in_obs else 0)
        self.state_dim = 2 * n + 2 + 2 * h + 1
        self.rng = EnvRng(seed, env_index)
        self.episode = 0
        self.t = 0
        self.agent_pos = np.zeros((n, 2), dtype=np.int64)
        self.stag_pos = np.zeros(2, dtype=np.int64)
        self.hare_pos = np.zeros((h, 2), dtype=np.int64)
        self.stags = np.zeros(n, dtype=np.int64)
        self.hares = np.zeros(n, dtype=np.int64)
        self.done = False

    # --- helpers -----------------------------------------------------------------------------------

    def _kth_free_cell(self, k: int, occupied: set[tuple[int, int]]) -> np.ndarray:
        seen = 0
        for r in range(self.grid_size):
            for c in range(self.grid_size):
                if (r, c) in occupied:
                    continue
                if seen == k:
                    return np.array([r, c], dtype=np.int64)
                seen += 1
        raise AssertionError(f"free cell {k} requested but only {seen} are free")

    def _free_count(self, occupied: set[tuple[int, int]]) -> int:
        return self.grid_size * self.grid_size - len(occupied)

    def _agent_cells(self) -> set[tuple[int, int]]:
        return {(int(r), int(c)) for r, c in self.agent_pos}

    def _agents_on(self, pos: np.ndarray) -> list[int]:
        return [i for i in range(self.num_agents) if (self.agent_pos[i] == pos).all()]

    def _place(self, episode_t: int, purpose: int, index: int, occupied: set[tuple[int, int]]) -> np.ndarray:
        """Draw the k-th free cell for one prey and mark it occupied."""
        word = self.rng.word(self.episode, episode_t, purpose, index)
        cell = self._kth_free_cell(uniform_int(word, self._free_count(occupied)), occupied)
        occupied.add((int(cell[0]), int(cell[1])))
        return cell

    # --- reset / step ------------------------------------------------------------------------------

    def reset(self, episode: int) -> None:
        self.episode = int(episode)
        self.t = 0
        self.done = False
        self.stags[:] = 0
        self.hares[:] = 0
        cells = self.grid_size * self.grid_size
        for i in range(self.num_agents):
            cell = uniform_int(self.rng.word(self.episode, 0, PURPOSE_RESET, i), cells)
            self.agent_pos[i] = (cell // self.grid_size, cell % self.grid_size)
        occupied = self._agent_cells()
        self.stag_pos = self._place(0, PURPOSE_RESET, self.num_agents, occupied)
        for h in range(self.num_hares):
            self.hare_pos[h] = self._place(0, PURPOSE_RESET, self.num_agents + 1 + h, occupied)

    def step(self, actions: Sequence[int]) -> tuple[np.ndarray, bool, bool]:
        if self.done:
            raise RuntimeError("stag_hunt: step() on a finished episode; call reset() first")
        n, s, t = self.num_agents, self.grid_size, self.t
        if len(actions) != n:
            raise ValueError(f"stag_hunt: expected {n} actions, got {len(actions)}")
        for i, action in enumerate(actions):
            if not 0 <= int(action) < self.num_actions:
                raise ValueError(f"stag_hunt: action {int(action)} of agent {i} is not in [0, 5)")

        # 1. Agents move simultaneously; a move off the grid is a stay.
        for i, action in enumerate(actions):
            dr, dc = MOVES[int(action)]
            r, c = int(self.agent_pos[i, 0]) + dr, int(self.agent_pos[i, 1]) + dc
            if 0 <= r < s and 0 <= c < s:
                self.agent_pos[i] = (r, c)

        # 2. The stag flees to a neighbour without agent or hare, or stays.
        if bernoulli(self.rng.word(self.episode, t, PURPOSE_STAG_MOVE, 0), self.stag_move_prob):
            blocked = self._agent_cells() | {(int(r), int(c)) for r, c in self.hare_pos}
            candidates = []
            for dr, dc in MOVES[:4]:
                r, c = int(self.stag_pos[0]) + dr, int(self.stag_pos[1]) + dc
                if 0 <= r < s and 0 <= c < s and (r, c) not in blocked:
                    candidates.append((r, c))
            if candidates:
                pick = uniform_int(self.rng.word(self.episode, t, PURPOSE_STAG_MOVE, 1), len(candidates))
                self.stag_pos = np.array(candidates[pick], dtype=np.int64)

        # 3. Capture. An agent stands on at most one prey cell, so each agent gets at most one reward term.
        rewards = np.zeros(n, dtype=np.float32)
        stag_caught = False
        hunters = self._agents_on(self.stag_pos)
        if len(hunters) >= self.stag_min_hunters:
            stag_caught = True
            for i in hunters:
                rewards[i] += self.stag_reward
                self.stags[i] += 1
        else:
            for i in hunters:
                rewards[i] -= self.lone_stag_penalty
        hares_caught = []
        for h in range(self.num_hares):
            on_hare = self._agents_on(self.hare_pos[h])
            if not on_hare:
                continue
            if self.tie_break == "random":
                winner = on_hare[uniform_int(self.rng.word(self.episode, t, PURPOSE_HARE_TIE, h), len(on_hare))]
            else:
                winner = on_hare[0]
            rewards[winner] += self.hare_reward
            self.hares[winner] += 1
            hares_caught.append(h)

        # 4. Respawn: every caught prey is off the grid before the first is put back, so the order of placement
        #    (stag, then hares by index) alone decides who gets which cell.
        occupied = self._agent_cells()
        if not stag_caught:
            occupied.add((int(self.stag_pos[0]), int(self.stag_pos[1])))
        for h in range(self.num_hares):
            if h not in hares_caught:
                occupied.add((int(self.hare_pos[h, 0]), int(self.hare_pos[h, 1])))
        if stag_caught:
            self.stag_pos = self._place(t, PURPOSE_RESPAWN, 0, occupied)
        for h in hares_caught:
            self.hare_pos[h] = self._place(t, PURPOSE_RESPAWN, 1 + h, occupied)

        # 5. Team mode: the float32 sum in agent index order, as the C++ loop accumulates it.
        if self.reward_mode == "team":
            total = np.float32(0.0)
            for i in range(n):
                total = np.float32(total + rewards[i])
            rewards[:] = total

        self.t += 1
        truncated = self.t >= self.max_steps
        self.done = truncated
        return rewards, False, truncated

    # --- views -------------------------------------------------------------------------------------

    def _scaled(self, value: int) -> np.float32:
        return np.float32(value) / np.float32(self.grid_size - 1)

    def _time_feature(self) -> np.float32:
        return np.float32(self.t) / np.float32(self.max_steps)

    def observe(self) -> np.ndarray:
        n = self.num_agents
        obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        for i in range(n):
            r, c = int(self.agent_pos[i, 0]), int(self.agent_pos[i, 1])
            features = [self._scaled(r), self._scaled(c)]
            others = [self.agent_pos[(i + j) % n] for j in range(1, n)]
            # Integer difference first, then one float32 division, exactly as the C++ code computes it.
            for pos in [*others, self.stag_pos, *self.hare_pos]:
                features += [self._scaled(int(pos[0]) - r), self._scaled(int(pos[1]) - c)]
            features.append(self._time_feature())
            if self.agent_id_in_obs:
                features += [np.float32(1.0 if j == i else 0.0) for j in range(n)]
            obs[i] = np.array(features, dtype=np.float32)
        return obs

    def global_state(self) -> np.ndarray:
        features: list[np.float32] = []
        for pos in [*self.agent_pos, self.stag_pos, *self.hare_pos]:
            features += [self._scaled(int(pos[0])), self._scaled(int(pos[1]))]
        features.append(self._time_feature())
        return np.array(features, dtype=np.float32)

    def action_mask(self) -> np.ndarray:
        last = self.grid_size - 1
        mask = np.ones((self.num_agents, self.num_actions), dtype=bool)
        for i in range(self.num_agents):
            r, c = int(self.agent_pos[i, 0]), int(self.agent_pos[i, 1])
            mask[i, :4] = (r > 0, r < last, c > 0, c < last)
        return mask

    def episode_info(self) -> dict[str, np.ndarray]:
        return {"stags": self.stags.astype(np.float32), "hares": self.hares.astype(np.float32)}
