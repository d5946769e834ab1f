"""The learning targets of both levels as pure functions, in the paper's order: rewards, bootstrap values, GAE.

Equation numbers are the paper's (NeurIPS 2023); section numbers refer to ../shared/hmasd-algorithm.md. Shapes:
T steps, E envs, N agents, M high-level transitions (decisions), N + 1 tokens per decision (Z, z_1..z_N).
"""

from __future__ import annotations

import torch


# ---- rewards ------------------------------------------------------------------------------------
def low_level_reward(env_reward: torch.Tensor, log_q_team: torch.Tensor, log_q_indiv: torch.Tensor,
                     lambda_env: float, lambda_team: float, lambda_indi: float) -> torch.Tensor:
    """Eq. 4: r^i_t = lambda_e r_t + lambda_D log q_D(Z | s_{t+1}) + lambda_d log q_d(z_i | o^i_{t+1}, Z).

    env_reward [T, E, N], log_q_team [T, E] (the same for every agent), log_q_indiv [T, E, N] -> [T, E, N].
    Both intrinsic terms are <= 0: there is no -log p(z) baseline (section 3.2).
    """
    return lambda_env * env_reward + lambda_team * log_q_team.unsqueeze(-1) + lambda_indi * log_q_indiv


def high_level_reward(window_reward_sum: torch.Tensor) -> torch.Tensor:
    """Section 2.3: r^h = the env reward summed over the skill window (lambda_e is not applied), averaged over
    agents and given to every token. window_reward_sum [M, N] -> [M, N + 1]."""
    m, n = window_reward_sum.shape
    return window_reward_sum.mean(-1, keepdim=True).expand(m, n + 1)


# ---- bootstrap values ---------------------------------------------------------------------------
def expected_barrier_value(team_probs: torch.Tensor, values_by_team: torch.Tensor) -> torch.Tensor:
    """The low-level bootstrap at the sync barrier: every batch opens with a fresh decision Z' at s_T, so the value
    of s_T is E_{Z' ~ pi_h(. | s_T, o_T)} V_l(s_T, Z') (section 3.3).

    The official code draws one Z' and takes V_l(s_T, Z'); the expectation is the same target without the
    sampling noise, and it consumes no random numbers. team_probs [E, n_Z], values_by_team [E, n_Z, N] -> [E, N].
    """
    return (team_probs.unsqueeze(-1) * values_by_team).sum(1)


def low_level_next_values(values: torch.Tensor, final_values: torch.Tensor, ended: torch.Tensor,
                          barrier_values: torch.Tensor) -> torch.Tensor:
    """V of the state each step led to, [T, E, N].

    Inside an episode it is the next step's stored value. Where an episode ended at the step it is V(s'_final)
    (``final_values``, the critic on the true last state; only truncation uses it, a terminated step does not
    bootstrap). At the barrier (the batch's last step) of an episode that goes on, it is ``barrier_values`` [E, N].
    values, final_values [T, E, N], ended [T, E].
    """
    next_values = torch.empty_like(values)
    next_values[:-1] = torch.where(ended[:-1, :, None], final_values[:-1], values[1:])
    next_values[-1] = torch.where(ended[-1, :, None], final_values[-1], barrier_values)
    return next_values


def return_ends(terminated: torch.Tensor, time_limit: torch.Tensor, bootstrap_time_limits: bool) -> torch.Tensor:
    """Where the return stops (no bootstrap): every termination, and the env's time-limit truncations too unless
    they bootstrap. [T, ...] or [M] bool.

    Bootstrapping a time limit is right when the limit only cuts a longer task short. Where the limit is part of
    the task and the state does not show the time left (alice_and_bob), V(s_final) is the value of a state seen
    earlier in successful episodes, so a failed episode is credited like a success; ending the return there
    (what MAPPO's code does by default, use_proper_time_limits=False) gives failures their zero return.
    """
    return terminated if bootstrap_time_limits else terminated | time_limit


def high_level_next_values(values: torch.Tensor, bootstrap_values: torch.Tensor, terminated: torch.Tensor,
                           truncated: torch.Tensor) -> torch.Tensor:
    """V_h of what each high-level transition led to, [M, N + 1]; rows sorted by (env, decision step).

    A window closed by the skill clock continues into the env's next window, the next row: its stored values.
    A truncated window (the episode's time limit, or cut by the barrier) bootstraps with V_h at the state it led
    to (``bootstrap_values``). A terminated one does not bootstrap (GAE ignores its next value).
    values, bootstrap_values [M, N + 1]; terminated, truncated [M].
    """
    continues = ~(terminated | truncated)
    next_values = bootstrap_values.clone()
    next_values[:-1] = torch.where(continues[:-1, None], values[1:], bootstrap_values[:-1])
    return next_values


def chain_breaks_at_barrier(ended: torch.Tensor) -> torch.Tensor:
    """Where advantages must not flow back: episode ends, and the batch's last step (the next batch is not in
    this one). ended [T, ...] -> [T, ...]."""
    breaks = ended.clone()
    breaks[-1] = True
    return breaks


# ---- advantages ---------------------------------------------------------------------------------
def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        chain_breaks: torch.Tensor, gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the leading (time or decision) axis; returns R = A + V (Eq. 5).

    delta_t = r_t + gamma V(s_{t+1}) (1 - terminated_t) - V(s_t);  A_t = delta_t + gamma lambda (1 - break_t) A_{t+1}.
    ``terminated`` [T, ...] drops the bootstrap; ``chain_breaks`` [T, ...] stops the recursion (episode end or
    batch end: the next row is not this trajectory's next step). The high level discounts per decision.
    """
    nextnonterminal = 1.0 - terminated.float()
    continues = 1.0 - chain_breaks.float()
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * next_values[t] * nextnonterminal[t] - values[t]
        lastgaelam = delta + gamma * gae_lambda * continues[t] * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values
