"""The algorithm's own settings (networks, rewards, PPO), separate from how a run is driven (envs, steps, logging)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlgoConfig:
    """What the agent and the target functions need; built from a run's config by ``TrainConfig.algo_config()``.

    Defaults are the paper's common settings (hmasd-algorithm.md section 7); the field docs are on TrainConfig.
    """

    num_team_skills: int = 2
    num_indiv_skills: int = 4
    lambda_env: float = 0.0
    lambda_team: float = 0.1
    lambda_indi: float = 0.2
    high_entropy_coef: float = 0.1
    low_entropy_coef: float = 0.01
    lr: float = 5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    high_epochs: int = 15
    low_epochs: int = 15
    disc_epochs: int = 15
    clip: float = 0.2
    value_clip: float = 0.2
    huber_delta: float = 10.0
    value_coef: float = 1.0
    max_grad_norm: float = 10.0
    hidden: int = 64
    n_embd: int = 64
    n_head: int = 1
    n_block: int = 1
    skill_last_layer: bool = True
    policy_sharing: str = "shared"
    recurrent: bool = False
    chunk_length: int = 10
    log_std_init: float = -0.5
    agent_pos_embedding: bool = False

    @classmethod
    def from_fields(cls, source: Any) -> AlgoConfig:
        """The algorithm fields of any object that has them (a TrainConfig)."""
        return cls(**{f.name: getattr(source, f.name) for f in dataclasses.fields(cls)})

    @property
    def independent(self) -> bool:
        """One low-level actor and critic per agent (independent learners) instead of one shared by all."""
        return self.policy_sharing == "independent"
