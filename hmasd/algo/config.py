"""The algorithm's own settings (networks, rewards, PPO), separate from how a run is driven (envs, steps, logging)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class AlgoConfig:
    """What the agent and the target functions need (TrainConfig adds the run's settings to these); an agent gets
    its own copy, ``TrainConfig.algo_config()``. Defaults are the paper's common settings (hmasd-algorithm.md
    section 7)."""

    num_team_skills: int = 2
    num_indiv_skills: int = 4
    lambda_env: float = 0.0
    """lambda_e: weight of the env reward in the low-level reward."""
    lambda_team: float = 0.1
    """lambda_D: weight of log q_D(Z | s') in the low-level reward."""
    lambda_indi: float = 0.2
    """lambda_d: weight of log q_d(z_i | o_i', Z) in the low-level reward."""
    time_limit_bootstrap: bool = True
    """Whether an episode cut by the env's time limit bootstraps with V of its last state at both levels (True:
    the limit only cuts the task short) or ends its return there like a termination (False: the limit is part of
    the task, as in MAPPO's code by default; see ``hmasd.algo.targets.return_ends``). Barrier cuts always
    bootstrap."""
    high_entropy_coef: float = 0.1
    """lambda_h."""
    low_entropy_coef: float = 0.01
    """lambda_l."""
    lr: float = 5e-4
    """Learning rate of all optimisers (coordinator, actor, critic, both discriminators)."""
    gamma: float = 0.99
    """Discount per env step (low level) and per decision (high level)."""
    gae_lambda: float = 0.95
    high_epochs: int = 15
    high_target_kl: float | None = None
    """Early stop of the coordinator's update: an epoch whose policy is already more than this approximate KL
    (mean of ``(r - 1) - log r`` over the batch's tokens) from the rollout policy does not step, and the update
    ends there (None: always ``high_epochs`` epochs, as in the paper). The coordinator trains on about a hundred
    decisions per batch, so 15 full-batch epochs can move it far on one batch's noise."""
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
    """Skill one-hot enters just before the action head (True, Alice_and_Bob/Overcooked) or at the input."""
    policy_sharing: str = "shared"
    """shared (one low-level actor and critic for every agent) | independent (one per agent; IPPO with mappo).
    The coordinator stays centralised."""
    recurrent: bool = False
    """A 1-layer GRU after the low-level MLPs, as in the official code (reset at episode starts only)."""
    chunk_length: int = 10
    """Steps per recurrent training chunk (data_chunk_length); horizon must be a multiple of it."""
    log_std_init: float = -0.5
    """Initial log-std of the Gaussian low-level policy (continuous envs; std 0.61 of the [-1, 1] action range)."""
    disc_features: str = "raw"
    """What the skill discriminators see (hmasd.algo.disc_features): ``raw``, the paper's s' and o_i'; or
    ``stag_relative`` (stag_hunt only), every position relative to the stag and o_i' without the agent's own cell,
    so that skills differ in how agents stand to the prey instead of where on the grid they are."""
    agent_pos_embedding: bool = False
    """Learned agent position embeddings in the coordinator (a documented deviation; off as in the paper)."""

    @classmethod
    def from_fields(cls, source: Any) -> AlgoConfig:
        """The algorithm fields of any object that has them (a TrainConfig)."""
        return cls(**{f.name: getattr(source, f.name) for f in dataclasses.fields(cls)})

    @property
    def independent(self) -> bool:
        """One low-level actor and critic per agent (independent learners) instead of one shared by all."""
        return self.policy_sharing == "independent"
