"""The low-level networks of HMASD: the shared actor pi(a | o_i, z_i), the critic V(s, Z), and both discriminators."""

from __future__ import annotations

import math

import torch
from torch import nn

from hmasd.algo.draws import EnvRows, sample_rows

RELU_GAIN = math.sqrt(2.0)


def layer_init(layer: nn.Linear, gain: float = RELU_GAIN) -> nn.Linear:
    """Orthogonal weights with the given gain and zero bias (MAPPO/HMASD initialisation)."""
    nn.init.orthogonal_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class MLPBase(nn.Module):
    """Input LayerNorm, then [Linear -> ReLU -> LayerNorm] x 2 (MAPPO's base with layer_N = 1)."""

    def __init__(self, in_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            layer_init(nn.Linear(in_dim, hidden)), nn.ReLU(), nn.LayerNorm(hidden),
            layer_init(nn.Linear(hidden, hidden)), nn.ReLU(), nn.LayerNorm(hidden),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RecurrentCore(nn.Module):
    """A 1-layer GRU over the base features (MAPPO's RNNLayer): the hidden state is zeroed where an episode starts,
    never at a skill switch. Works step by step (rollout) and over chunks of steps (training)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(hidden, hidden)
        for name, param in self.gru.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(param)
            else:
                nn.init.zeros_(param)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [L, B, H] (L steps), h [B, H] before the first step, starts [L, B] episode starts -> (out, last h)."""
        outputs = []
        for t in range(x.shape[0]):
            h = h * (~starts[t]).unsqueeze(-1).to(h.dtype)
            out, h_next = self.gru(x[t].unsqueeze(0), h.unsqueeze(0))
            outputs.append(out[0])
            h = h_next[0]
        return self.norm(torch.stack(outputs)), h


class SkillConditioned(nn.Module):
    """An MLP (optionally followed by a GRU) whose skill one-hot enters at the input (``skill_last_layer=False``)
    or just before the head."""

    def __init__(self, in_dim: int, num_skills: int, out_dim: int, hidden: int, skill_last_layer: bool,
                 head_gain: float, recurrent: bool = False) -> None:
        super().__init__()
        self.num_skills = num_skills
        self.skill_last_layer = skill_last_layer
        self.base = MLPBase(in_dim if skill_last_layer else in_dim + num_skills, hidden)
        self.rnn = RecurrentCore(hidden) if recurrent else None
        self.head = layer_init(nn.Linear(hidden + num_skills if skill_last_layer else hidden, out_dim), head_gain)

    def forward(self, x: torch.Tensor, skill: torch.Tensor, h: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [..., in] (MLP) or [L, B, in] with h [B, H] and starts [L, B] (GRU) -> (output, last hidden)."""
        onehot = nn.functional.one_hot(skill.long(), self.num_skills).to(x.dtype)
        features = self.base(x if self.skill_last_layer else torch.cat([x, onehot], dim=-1))
        if self.rnn is not None:
            features, h = self.rnn(features, h, starts)
        if self.skill_last_layer:
            features = torch.cat([features, onehot], dim=-1)
        return self.head(features), h


class LowActor(nn.Module):
    """The skill discoverer's shared policy pi(a | o_i, z_i).

    Discrete envs: a categorical over ``num_actions`` with invalid actions masked out. Continuous envs
    (``action_dim > 0``): a Gaussian with state-independent log-std; the sampled, unclipped action is stored and
    scored, and the env clips it to its bounds. MLP: inputs [..., O]. GRU (``recurrent``): inputs [L, B, O] with the
    hidden state h [B, H] and episode starts [L, B]; ``h`` in and out is None for the MLP.
    """

    def __init__(self, obs_dim: int, num_indiv_skills: int, num_actions: int, hidden: int = 64,
                 skill_last_layer: bool = True, recurrent: bool = False, action_dim: int = 0,
                 log_std_init: float = -0.5) -> None:
        super().__init__()
        self.continuous = action_dim > 0
        out_dim = action_dim if self.continuous else num_actions
        self.net = SkillConditioned(obs_dim, num_indiv_skills, out_dim, hidden, skill_last_layer, 0.01, recurrent)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init))) if self.continuous else None

    def get_action_and_logp(self, obs: torch.Tensor, skill: torch.Tensor, mask: torch.Tensor | None = None,
                            action: torch.Tensor | None = None, deterministic: bool = False,
                            h: torch.Tensor | None = None, starts: torch.Tensor | None = None,
                            draws: EnvRows | None = None):
        """Samples (or re-scores ``action``); returns action, log-prob, entropy and the next hidden state.

        ``draws`` says which envs of the global batch the rows belong to (env major, the same number of rows per
        env), so that a sampled action's noise is that env's whatever the batch holds (see hmasd.algo.draws);
        None draws the noise for these rows alone."""
        out, h = self.net(obs, skill, h, starts)
        noise = None
        if action is None and not deterministic and draws is not None:
            per_env = out[..., 0].numel() // len(draws.index)
            noise = (draws.normal if self.continuous else draws.exponential)(per_env, out.shape[-1], out.device)
        if self.continuous:
            return (*gaussian(out, self.log_std.exp().expand_as(out), action, deterministic, noise), h)
        if mask is not None:
            out = out.masked_fill(~mask, -1e10)
        return (*categorical(out, action, deterministic, noise), h)


LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def gaussian(mean: torch.Tensor, std: torch.Tensor, action: torch.Tensor | None, deterministic: bool,
             noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A diagonal Gaussian's action (drawn unless given; the mean if deterministic), log-prob and entropy, summed
    over the action's components: torch.distributions.Normal's formulas and its draw (``torch.normal`` on the same
    arguments, so the same numbers from the same RNG state) without building the distribution object, whose
    set-up costs more than the maths at a few hundred rows per step. ``noise`` (standard normal, as many values as
    ``mean``) replaces the draw: ``noise * std + mean`` is what torch.normal computes from its own draw."""
    if action is None:
        with torch.no_grad():
            if deterministic:
                action = mean
            elif noise is None:
                action = torch.normal(mean, std)
            else:
                action = noise.view(mean.shape).mul(std).add(mean)
    log_prob = -((action - mean) ** 2) / (2 * std**2) - std.log() - LOG_SQRT_2PI
    entropy = 0.5 + 0.5 * math.log(2 * math.pi) + std.log()
    return action, log_prob.sum(-1), entropy.sum(-1)


def categorical(logits: torch.Tensor, action: torch.Tensor | None, deterministic: bool,
                noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A categorical's action (drawn unless given; the argmax if deterministic), log-prob and entropy, with
    torch.distributions.Categorical's formulas and draw (``torch.multinomial`` with replacement on the same
    probabilities, hmasd.algo.draws.sample_rows), without building the distribution object. ``noise`` (Exp(1), one
    row per row of logits) replaces the draw's own."""
    log_probs = logits - logits.logsumexp(-1, keepdim=True)
    probs = log_probs.softmax(-1)
    if action is None:
        if deterministic:
            action = probs.argmax(-1)
        else:
            action = sample_rows(probs.reshape(-1, probs.shape[-1]), noise).reshape(probs.shape[:-1])
    log_prob = log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.clamp(min=torch.finfo(log_probs.dtype).min) * probs).sum(-1)
    return action, log_prob, entropy


class LowCritic(nn.Module):
    """The centralised critic V(s, Z) of the low level (same MLP/GRU conventions as the actor)."""

    def __init__(self, state_dim: int, num_team_skills: int, hidden: int = 64, skill_last_layer: bool = True,
                 recurrent: bool = False) -> None:
        super().__init__()
        self.net = SkillConditioned(state_dim, num_team_skills, 1, hidden, skill_last_layer, 1.0, recurrent)

    def forward(self, state: torch.Tensor, team_skill: torch.Tensor, h: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        value, h = self.net(state, team_skill, h, starts)
        return value.squeeze(-1), h


class Discriminator(nn.Module):
    """q(skill | x): input LayerNorm, the MLP base, and a small-gain linear head giving logits."""

    def __init__(self, in_dim: int, num_skills: int, hidden: int = 64) -> None:
        super().__init__()
        self.base = MLPBase(in_dim, hidden)
        self.head = layer_init(nn.Linear(hidden, num_skills), 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.base(x))

    def log_prob(self, x: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        """log q(skill | x), the intrinsic reward term."""
        return torch.log_softmax(self(x), dim=-1).gather(-1, skill.long().unsqueeze(-1)).squeeze(-1)
