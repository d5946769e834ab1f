"""Training configuration: one dataclass with a docstring per field, and presets with the paper's hyperparameters."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hmasd.algo.config import AlgoConfig
from hmasd.algo.disc_features import check_disc_features

ALGOS = ("hmasd", "mappo", "no_team", "no_indi", "no_high")


@dataclass
class TrainConfig(AlgoConfig):
    """Everything a run needs: the algorithm's settings (AlgoConfig's fields) and the run's. Defaults are the
    paper's common settings (hmasd-algorithm.md section 7)."""

    env: str = "alice_and_bob"
    """Registered env name."""
    env_options: dict[str, Any] = field(default_factory=dict)
    """Options passed to hmasd.envs.make."""
    algo: str = "hmasd"
    """hmasd | mappo (flat, no skills, env reward only) | no_team (lambda_D = 0) | no_indi (lambda_d = 0) |
    no_high (skills drawn uniformly, coordinator not trained)."""
    seed: int = 1
    num_envs: int = 32
    """Parallel env copies E."""
    horizon: int = 100
    """Env steps per env per update T (the rollout chunk, episode_length in the official code)."""
    total_steps: int = 3_000_000
    """Env steps (summed over envs) to train for."""
    skill_interval: int = 50
    """k: env steps per skill window."""
    clock: str = "episode"
    """episode (clean: windows never straddle episodes) | global (the official chunk-relative clock)."""
    eval_interval: int = 25
    """Updates between deterministic evaluations (0 = never)."""
    eval_episodes: int = 100
    device: str = "cpu"
    """torch device: cpu, cuda, cuda:1 ..."""
    num_threads: int = 1
    """Native env threads."""
    torch_threads: int = 0
    """torch intra-op threads (0 = torch's default, one per core). With ``parallel_updates`` the update threads
    split them."""
    parallel_updates: bool = True
    """On the CPU, run the updates of discoverer, coordinator and discriminators side by side on two threads
    (they share nothing, so the results are those of running them in turn)."""
    low_entropy_coef_final: float | None = None
    """lambda_l at the end of the run: it moves linearly from ``low_entropy_coef`` at step 0 to this value at
    ``total_steps`` (None: constant, as in the paper). On alice_and_bob (lambda_e = 1) it removes the argmax 2-cycles
    on goal cells; with the GRU (``recurrent``) and ``high_target_kl`` too (the ``alice_and_bob_stable`` preset) seeds
    1-9 end at 96-100% (benchmarks/learning/README.md)."""
    warmup_steps: int = 0
    """A curriculum's first phase: for the first ``warmup_steps`` env steps the envs are made with
    ``warmup_env_options`` over ``env_options``, then with ``env_options`` alone (0: no warm-up). Evaluations
    always play the real env (``env_options``)."""
    warmup_env_options: dict[str, Any] = field(default_factory=dict)
    """The env options that differ during the warm-up, e.g. ``{"stag_min_hunters": 1}`` on stag_hunt."""
    lr_final: float | None = None
    """Learning rate at the end of the run: every optimiser's rate moves linearly from ``lr`` at step 0 to this
    value at ``total_steps`` (None: constant ``lr``, as in the paper). PPO's usual annealing (CleanRL's
    ``anneal_lr``, MAPPO's ``use_linear_lr_decay``): late updates refine instead of moving the policy as far as
    early ones."""
    low_log_std_final: float | None = None
    """A ceiling on the low-level actors' action log-std (continuous actions) that moves linearly from
    ``log_std_init`` at step 0 to this value at ``total_steps``; after every update each log-std above it is set to
    it (None: the log-std is learned freely, as in the paper). Without it PPO keeps whatever noise raises the
    return, and the mean action that a deterministic evaluation plays is never trained on its own. Measured on
    uav_coverage (benchmarks/learning/README.md): at -2.5 the policies still do better with their last 2.5 m of
    noise than with their mean actions, so it does not close that gap there."""
    dist_timeout_s: float = 300.0
    """Distributed training (torchrun): seconds a collective waits for the other ranks before the job ends with an
    error (a rank that hangs; one that dies ends the job at once). Rank 0's evaluations and checkpoint writes
    happen while the others wait, so keep it above their duration."""

    def validate(self) -> None:
        """Raises ValueError naming the first inconsistent field."""
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.clock not in ("episode", "global"):
            raise ValueError(f"clock must be 'episode' or 'global', got {self.clock!r}")
        for name in ("num_envs", "horizon", "total_steps", "skill_interval", "num_team_skills", "num_indiv_skills",
                     "high_epochs", "low_epochs", "disc_epochs", "hidden", "n_embd", "n_head", "n_block",
                     "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.clock == "global" and self.horizon % self.skill_interval:
            raise ValueError(f"clock='global' needs horizon ({self.horizon}) to be a multiple of skill_interval "
                             f"({self.skill_interval}), as in the official code")
        if self.policy_sharing not in ("shared", "independent"):
            raise ValueError(f"policy_sharing must be 'shared' or 'independent', got {self.policy_sharing!r}")
        if self.recurrent and self.policy_sharing == "independent":
            raise ValueError("recurrent=True is implemented for policy_sharing='shared' only")
        if self.recurrent and (self.chunk_length < 1 or self.horizon % self.chunk_length):
            raise ValueError(f"recurrent=True needs horizon ({self.horizon}) to be a multiple of chunk_length "
                             f"({self.chunk_length})")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for name in ("low_entropy_coef_final", "lr_final"):  # schedule ends
            if getattr(self, name) is not None and not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_steps > 0 and not self.warmup_env_options:
            raise ValueError("warmup_steps > 0 needs warmup_env_options (the options that differ during it)")
        check_disc_features(self.disc_features, self.env)
        if self.low_log_std_final is not None and not math.isfinite(self.low_log_std_final):
            raise ValueError(f"low_log_std_final must be finite or None, got {self.low_log_std_final}")
        if self.high_target_kl is not None and not self.high_target_kl > 0:
            raise ValueError(f"high_target_kl must be > 0 or None, got {self.high_target_kl}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError("gamma and gae_lambda must be in [0, 1]")
        if not self.dist_timeout_s > 0:
            raise ValueError(f"dist_timeout_s must be > 0, got {self.dist_timeout_s}")

    def linear_schedule(self, start: float, final: float | None, env_steps: int) -> float:
        """``start`` at step 0 moving linearly to ``final`` at ``total_steps`` and staying there (None: ``start``
        throughout); the rule of ``low_entropy_coef_final`` and ``lr_final``."""
        if final is None:
            return start
        progress = min(max(env_steps / self.total_steps, 0.0), 1.0)
        return start + progress * (final - start)

    def low_entropy_coef_at(self, env_steps: int) -> float:
        """lambda_l for an update after ``env_steps`` env steps (see ``low_entropy_coef_final``)."""
        return self.linear_schedule(self.low_entropy_coef, self.low_entropy_coef_final, env_steps)

    def env_options_at(self, env_steps: int) -> dict[str, Any]:
        """The options of the envs that collect after ``env_steps`` env steps (see ``warmup_steps``)."""
        if env_steps < self.warmup_steps:
            return {**self.env_options, **self.warmup_env_options}
        return dict(self.env_options)

    def low_log_std_ceiling_at(self, env_steps: int) -> float | None:
        """The ceiling on the actors' log-std after ``env_steps`` env steps (None without ``low_log_std_final``)."""
        if self.low_log_std_final is None:
            return None
        return self.linear_schedule(self.log_std_init, self.low_log_std_final, env_steps)

    def lr_at(self, env_steps: int) -> float:
        """The learning rate of an update after ``env_steps`` env steps (see ``lr_final``)."""
        return self.linear_schedule(self.lr, self.lr_final, env_steps)

    def algo_config(self) -> AlgoConfig:
        """The algorithm's settings (what the agent and the targets use), without the run's."""
        return AlgoConfig.from_fields(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, TrainConfig] = {
    # Paper Tables 1-3 and the official Alice_and_Bob script.
    "alice_and_bob": TrainConfig(),
    # alice_and_bob made steadier (96-100% at 3M on seeds 1-9, one long late drop; benchmarks/learning/README.md):
    # the env reward at the low level, the GRU, lambda_l decaying to 0 (no argmax 2-cycles on goal cells), and a KL
    # early stop on the coordinator's update (its time-limit-bootstrapped advantages are near-constant noise that
    # 15 normalised epochs overfit).
    "alice_and_bob_stable": TrainConfig(lambda_env=1.0, recurrent=True, low_entropy_coef_final=0.0,
                                        high_target_kl=0.02),
    # Sensible settings for the 4-agent stag hunt (35-step episodes): short windows so that skills can change
    # within an episode, the env reward at the low level (lambda_e = 1; rewards are dense and individual).
    "stag_hunt": TrainConfig(env="stag_hunt", horizon=35, skill_interval=7, num_team_skills=3, num_indiv_skills=3,
                             lambda_env=1.0, lambda_team=0.1, lambda_indi=0.1, high_entropy_coef=0.01,
                             disc_epochs=5, total_steps=1_000_000, eval_episodes=64),
    # stag_hunt with a curriculum: for the first 1M steps one hunter is enough to catch the stag, so every agent
    # learns to chase it; then the real rule (2 hunters), under which agents that all chase it catch it together.
    # Without it no learner leaves the hare equilibrium within 3M steps (benchmarks/learning/README.md).
    "stag_hunt_curriculum": TrainConfig(env="stag_hunt", horizon=35, skill_interval=7, num_team_skills=3,
                                        num_indiv_skills=3, lambda_env=1.0, lambda_team=0.1, lambda_indi=0.1,
                                        high_entropy_coef=0.01, disc_epochs=5, total_steps=3_000_000,
                                        eval_episodes=200, warmup_steps=1_000_000,
                                        warmup_env_options={"stag_min_hunters": 1}),
    # What `hmasd-train` runs with no arguments: the stag hunt for a few minutes on a laptop CPU, where learning is
    # visible (random play earns ~1 per agent and episode, trained ~2.5 and more).
    "quickstart": TrainConfig(env="stag_hunt", horizon=35, skill_interval=7, num_team_skills=3, num_indiv_skills=3,
                              lambda_env=1.0, lambda_team=0.1, lambda_indi=0.1, high_entropy_coef=0.01,
                              disc_epochs=5, num_envs=64, total_steps=250_000, eval_interval=10, eval_episodes=64),
    # The UAV network (docs/envs.md, 500-step episodes, continuous moves, a dense team reward in [~-0.1, 1]):
    # the env reward drives the low level (lambda_e = 1) with small diversity bonuses; k = 10 steps (~300 m of
    # flight) per skill; 5 PPO epochs (MAPPO's choice for dense rewards: a batch already holds 16k agent samples);
    # both cores for the env and for torch, since collection and updates alternate.
    "uav_coverage": TrainConfig(env="uav_coverage", horizon=100, skill_interval=10, num_team_skills=3,
                                num_indiv_skills=3, lambda_env=1.0, lambda_team=0.05, lambda_indi=0.05,
                                high_entropy_coef=0.01, low_entropy_coef=0.0, high_epochs=5, low_epochs=5,
                                disc_epochs=5, num_envs=32, total_steps=500_000, eval_interval=25,
                                eval_episodes=8, num_threads=0, torch_threads=0),
    # The old system's settings (5 UAVs, 50 users, 3gpp-36777, k = 10, n_Z = n_z = 3, 32 envs, 5000-step
    # episodes, backhaul at 0 dB SNR with a 30 dBm GBS), for end-to-end comparisons with it.
    "uav_seed_parity": TrainConfig(env="uav_coverage",
                                   env_options={"num_uavs": 5, "num_users": 50, "channel_model": "3gpp-36777",
                                                "max_steps": 5000, "backhaul_min_snr_db": 0.0,
                                                "gbs_tx_power_dbm": 30.0},
                                   horizon=100, skill_interval=10, num_team_skills=3, num_indiv_skills=3,
                                   lambda_env=1.0, lambda_team=0.05, lambda_indi=0.05, high_entropy_coef=0.01,
                                   low_entropy_coef=0.0, high_epochs=5, low_epochs=5, disc_epochs=5, num_envs=32,
                                   total_steps=4_000_000, eval_interval=0, eval_episodes=4, num_threads=0,
                                   torch_threads=0),
}

# uav_coverage with the users as a 10 x 10 grid of user fractions (env option user_grid) rather than a list in
# arbitrary order: at 500k steps far ahead of the list, at 3M the same plateau (benchmarks/learning/README.md).
PRESETS["uav_coverage_grid"] = PRESETS["uav_coverage"].replace(env_options={"user_grid": 10})
# The best uav_coverage recipe measured (issue 17): the grid, plus every UAV's load and the offset of its users
# (env option uav_load: a full UAV sees whom it turns away, so the team learns to balance the connection cap), and a
# learning rate decaying to 0 over 3M steps (the grid plateaus by 1M; the decay refines the placement after it).
PRESETS["uav_coverage_load"] = PRESETS["uav_coverage_grid"].replace(
    env_options={"user_grid": 10, "uav_load": True}, lr_final=0.0, total_steps=3_000_000)
# uav_coverage_load with less noise in the low-level signal: 10 skill decisions per episode rather than 50, a
# 10-step horizon (a placement pays off within steps, and the shorter horizon cuts the return's variance) and a fifth
# of the diversity rewards (at 0.05 they swing by more per step than k-means' lead in link quality is worth). At 3M
# steps seeds 1-3 beat k-means at 50 m on return (by 1.6-2.1) and coverage (by 0.02) on 512 evaluation episodes
# (benchmarks/learning/README.md).
PRESETS["uav_coverage_low_noise"] = PRESETS["uav_coverage_load"].replace(
    skill_interval=50, gamma=0.9, lambda_team=0.01, lambda_indi=0.01)


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A copy of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    config = PRESETS[name].replace(**overrides)
    config.validate()
    return config
