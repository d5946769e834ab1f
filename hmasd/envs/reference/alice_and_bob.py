"""Plain NumPy reference of one alice_and_bob env copy, written from docs/envs.md for the native-vs-reference tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hmasd.envs.reference._options import check_at_least, parse_options
from hmasd.envs.reference.philox import EnvRng, uniform_int

DEFAULTS: dict[str, Any] = {"height": 10, "width": 10, "max_steps": 100}

PURPOSE_RESET = 1

WALL, BUTTON_CODE, DIAMOND_CODE, AGENT_CODE = 1, 4, 6, 2

# Action -> (row delta, col delta): 0 col+1, 1 col-1, 2 row-1, 3 row+1, 4 stay.
MOVES: tuple[tuple[int, int], ...] = ((0, 1), (0, -1), (-1, 0), (1, 0), (0, 0))


class AliceAndBobRef:
    """One copy of alice_and_bob: two agents, two buttons, two diamonds, sparse team reward.

    Tests may assign the state attributes `agent_pos` (int64[2, 2], rows (row, col)), `collected` (bool[2]) and `t`.
    """

    num_agents = 2
    num_actions = 5
    obs_dim = 11

    def __init__(self, seed: int, env_index: int, **options: Any) -> None:
        opts = parse_options("alice_and_bob", DEFAULTS, options)
        self.height: int = opts["height"]
        self.width: int = opts["width"]
        self.max_steps: int = opts["max_steps"]
        check_at_least("alice_and_bob", "height", self.height, 3)
        check_at_least("alice_and_bob", "width", self.width, 3)
        check_at_least("alice_and_bob", "max_steps", self.max_steps, 1)
        if (self.height - 2) * (self.width - 2) < 2:
            raise ValueError(f"alice_and_bob: the interior of {self.height} x {self.width} cannot hold two agents")
        self.state_dim = self.height * self.width
        self.rng = EnvRng(seed, env_index)
        h, w = self.height, self.width
        self.buttons = np.array([[1, w - 2], [1, 1]], dtype=np.int64)
        self.diamonds = np.array([[h - 2, 1], [h - 2, w - 2]], dtype=np.int64)
        self.episode = 0
        self.t = 0
        self.agent_pos = np.zeros((2, 2), dtype=np.int64)
        self.collected = np.zeros(2, dtype=bool)
        self.done = False

    def reset(self, episode: int) -> None:
        self.episode = int(episode)
        self.t = 0
        self.done = False
        self.collected[:] = False
        interior_w = self.width - 2
        cells = (self.height - 2) * interior_w
        a = uniform_int(self.rng.word(self.episode, 0, PURPOSE_RESET, 0), cells)
        b = uniform_int(self.rng.word(self.episode, 0, PURPOSE_RESET, 1), cells - 1)
        # Drawing b from M-1 cells and skipping a gives two distinct cells without rejection.
        if b >= a:
            b += 1
        for agent, cell in enumerate((a, b)):
            self.agent_pos[agent] = (1 + cell // interior_w, 1 + cell % interior_w)

    def _on(self, pos: np.ndarray) -> bool:
        return any(self.agent_pos[i, 0] == pos[0] and self.agent_pos[i, 1] == pos[1] for i in range(2))

    def step(self, actions: Sequence[int]) -> tuple[np.ndarray, bool, bool]:
        if self.done:
            raise RuntimeError("alice_and_bob: step() on a finished episode; call reset() first")
        if len(actions) != 2:
            raise ValueError(f"alice_and_bob: expected 2 actions, got {len(actions)}")
        for i, action in enumerate(actions):
            if not 0 <= int(action) < self.num_actions:
                raise ValueError(f"alice_and_bob: action {int(action)} of agent {i} is not in [0, 5)")
        for i, action in enumerate(actions):
            dr, dc = MOVES[int(action)]
            r, c = int(self.agent_pos[i, 0]) + dr, int(self.agent_pos[i, 1]) + dc
            if 1 <= r <= self.height - 2 and 1 <= c <= self.width - 2:
                self.agent_pos[i] = (r, c)
        for i in range(2):
            if self._on(self.buttons[i]) and self._on(self.diamonds[i]):
                self.collected[i] = True
        terminated = bool(self.collected.all())
        rewards = np.full(2, 1.0 if terminated else 0.0, dtype=np.float32)
        self.t += 1
        truncated = not terminated and self.t >= self.max_steps
        self.done = terminated or truncated
        return rewards, terminated, truncated

    def grid(self) -> np.ndarray:
        """The occupancy codes [H, W], drawn in the spec's order so later layers overwrite earlier ones."""
        grid = np.zeros((self.height, self.width), dtype=np.int64)
        grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = WALL
        for i in range(2):
            grid[self.buttons[i, 0], self.buttons[i, 1]] = BUTTON_CODE + i
        for i in range(2):
            if not self.collected[i]:
                grid[self.diamonds[i, 0], self.diamonds[i, 1]] = DIAMOND_CODE + i
        for i in range(2):
            grid[self.agent_pos[i, 0], self.agent_pos[i, 1]] = AGENT_CODE + i
        return grid

    def observe(self) -> np.ndarray:
        grid = self.grid()
        obs = np.zeros((2, self.obs_dim), dtype=np.float32)
        for i in range(2):
            r, c = int(self.agent_pos[i, 0]), int(self.agent_pos[i, 1])
            obs[i, :9] = grid[r - 1 : r + 2, c - 1 : c + 2].reshape(9)
            obs[i, 9:] = (r, c)
        return obs

    def global_state(self) -> np.ndarray:
        return self.grid().reshape(-1).astype(np.float32)

    def action_mask(self) -> np.ndarray:
        return np.ones((2, self.num_actions), dtype=bool)

    def episode_info(self) -> dict[str, np.ndarray]:
        collected = int(self.collected.sum())
        return {
            "success": np.array(1.0 if collected == 2 else 0.0, dtype=np.float32),
            "diamonds_collected": np.array(collected, dtype=np.float32),
        }
