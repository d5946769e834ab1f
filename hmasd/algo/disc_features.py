"""What the skill discriminators q_D and q_d see: the paper's s' and o_i' (``raw``) or, on stag_hunt, only where the
agents and hares are relative to the stag (``stag_relative``, a deviation from the paper made for the stag hunt)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

DISC_FEATURES = {"raw": None, "stag_relative": "stag_hunt"}
"""Each kind of features and the one env it is for (None: every env)."""


def check_disc_features(kind: str, env_name: str) -> None:
    """ValueError unless ``kind`` is a kind of features that applies to ``env_name``."""
    if kind not in DISC_FEATURES:
        raise ValueError(f"disc_features must be one of {', '.join(DISC_FEATURES)}, got {kind!r}")
    if DISC_FEATURES[kind] not in (None, env_name):
        raise ValueError(f"disc_features={kind!r} is for {DISC_FEATURES[kind]}, not {env_name!r}")


@dataclass(frozen=True)
class DiscFeatures:
    """The inputs of the team discriminator (from global states [..., S]) and of the individual one (from
    observations [..., O]), and their widths."""

    team: Callable[[torch.Tensor], torch.Tensor]
    indiv: Callable[[torch.Tensor], torch.Tensor]
    team_dim: int
    indiv_dim: int


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def raw_features(state_dim: int, obs_dim: int) -> DiscFeatures:
    """The paper's: q_D(Z | s') and q_d(z_i | o_i', Z) on the whole state and observation."""
    return DiscFeatures(identity, identity, state_dim, obs_dim)


def stag_relative_features(num_agents: int, num_hares: int, state_dim: int, obs_dim: int) -> DiscFeatures:
    """stag_hunt's discriminators without absolute positions.

    With the raw inputs the easiest skills to tell apart are places on the grid (own row and column are in o_i,
    every cell in s), and on seeds 1-3 no skill went toward the stag (benchmarks/learning/README.md). Here q_D sees
    every agent's and hare's offset from the stag and the time (s minus the stag's own cell), and q_d sees o_i
    without the agent's own cell: the offsets to the other agents, the stag and the hares, and the time. So skills
    can only differ in how the agents stand to the prey and to each other, such as "all on the stag".
    """
    n, h = num_agents, num_hares
    if state_dim != 2 * n + 2 + 2 * h + 1:
        raise ValueError(f"stag_relative features need stag_hunt's global state (2N + 2 + 2H + 1 = "
                         f"{2 * n + 2 + 2 * h + 1} values for N={n}, H={h}), got {state_dim}")
    stag = slice(2 * n, 2 * n + 2)

    def team(state: torch.Tensor) -> torch.Tensor:
        lead = state.shape[:-1]
        stag_cell = state[..., stag].unsqueeze(-2)
        agents = state[..., :2 * n].reshape(*lead, n, 2) - stag_cell
        hares = state[..., 2 * n + 2:2 * n + 2 + 2 * h].reshape(*lead, h, 2) - stag_cell
        return torch.cat([agents.flatten(-2), hares.flatten(-2), state[..., -1:]], dim=-1)

    def indiv(obs: torch.Tensor) -> torch.Tensor:
        return obs[..., 2:]

    return DiscFeatures(team, indiv, 2 * n + 2 * h + 1, obs_dim - 2)


def disc_features(kind: str, env_name: str, env_options: dict[str, Any], state_dim: int,
                  obs_dim: int) -> DiscFeatures:
    """The features named ``kind`` (one of DISC_FEATURES) for this env; ValueError where they do not apply."""
    check_disc_features(kind, env_name)
    if kind == "raw":
        return raw_features(state_dim, obs_dim)
    return stag_relative_features(int(env_options["num_agents"]), int(env_options["num_hares"]), state_dim, obs_dim)
