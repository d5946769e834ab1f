"""The skill coordinator pi_h(Z, z_1..z_N | s, o_1..o_N): a MAT-style encoder-decoder transformer (spec section 2.2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical

from hmasd.algo.networks import RELU_GAIN, layer_init

MASKED = -1e10


def small_init(layer: nn.Linear) -> nn.Linear:
    return layer_init(layer, 0.01)


class TokenMLP(nn.Module):
    """Linear -> GELU -> Linear, the transformer blocks' feed-forward part."""

    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.net = nn.Sequential(layer_init(nn.Linear(n_embd, n_embd), RELU_GAIN), nn.GELU(),
                                 small_init(nn.Linear(n_embd, n_embd)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EncoderBlock(nn.Module):
    """Post-LN: x <- LN(x + SelfAttn(x)); x <- LN(x + MLP(x)); attention unmasked."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(n_embd, n_head, batch_first=True)
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.mlp = TokenMLP(n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x, x, x, need_weights=False)[0])
        return self.ln2(x + self.mlp(x))


class DecoderBlock(nn.Module):
    """Causal self-attention over the skill stream, then MAT's cross-attention whose query and residual come
    from the encoder (spec pitfall 8), then the MLP; all post-LN."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(n_embd, n_head, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(n_embd, n_head, batch_first=True)
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.mlp = TokenMLP(n_embd)

    def forward(self, x: torch.Tensor, rep: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.self_attn(x, x, x, attn_mask=causal, need_weights=False)[0])
        x = self.ln2(rep + self.cross_attn(rep, x, x, attn_mask=causal, need_weights=False)[0])
        return self.ln3(x + self.mlp(x))


class SkillCoordinator(nn.Module):
    """Encodes (s, o_1..o_N) into N + 1 tokens with a value each, and decodes Z, z_1..z_N autoregressively.

    One output head of size A = max(n_Z, n_z) serves every position; logits beyond n_Z (position 0) or n_z
    (positions 1..N) are masked. ``agent_pos_embedding`` adds learned position embeddings to the encoder tokens
    (a documented deviation from the paper, off by default).
    """

    def __init__(self, state_dim: int, obs_dim: int, num_agents: int, num_team_skills: int, num_indiv_skills: int,
                 n_embd: int = 64, n_head: int = 1, n_block: int = 1, agent_pos_embedding: bool = False) -> None:
        super().__init__()
        self.num_agents, self.num_team_skills, self.num_indiv_skills = num_agents, num_team_skills, num_indiv_skills
        self.width = max(num_team_skills, num_indiv_skills)
        self.state_embed = nn.Sequential(nn.LayerNorm(state_dim), layer_init(nn.Linear(state_dim, n_embd)), nn.GELU())
        self.obs_embed = nn.Sequential(nn.LayerNorm(obs_dim), layer_init(nn.Linear(obs_dim, n_embd)), nn.GELU())
        self.position = nn.Parameter(torch.zeros(num_agents + 1, n_embd)) if agent_pos_embedding else None
        self.encoder_ln = nn.LayerNorm(n_embd)
        self.encoder = nn.ModuleList(EncoderBlock(n_embd, n_head) for _ in range(n_block))
        self.value_head = nn.Sequential(layer_init(nn.Linear(n_embd, n_embd)), nn.GELU(), nn.LayerNorm(n_embd),
                                        small_init(nn.Linear(n_embd, 1)))
        self.team_embed = nn.Sequential(layer_init(nn.Linear(self.width + 1, n_embd, bias=False)), nn.GELU())
        self.indiv_embed = nn.Sequential(layer_init(nn.Linear(self.width + 1, n_embd, bias=False)), nn.GELU())
        self.decoder_ln = nn.LayerNorm(n_embd)
        self.decoder = nn.ModuleList(DecoderBlock(n_embd, n_head) for _ in range(n_block))
        self.policy_head = nn.Sequential(layer_init(nn.Linear(n_embd, n_embd)), nn.GELU(), nn.LayerNorm(n_embd),
                                         small_init(nn.Linear(n_embd, self.width)))
        tokens = num_agents + 1
        # True = may not attend (strictly upper triangle)
        self.register_buffer("causal", torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), diagonal=1))
        invalid = torch.zeros(tokens, self.width, dtype=torch.bool)
        invalid[0, num_team_skills:] = True
        invalid[1:, num_indiv_skills:] = True
        self.register_buffer("invalid", invalid)

    def encode(self, state: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state [B, S], obs [B, N, O] -> (rep [B, N+1, E], values [B, N+1])."""
        x = torch.cat([self.state_embed(state).unsqueeze(1), self.obs_embed(obs)], dim=1)
        if self.position is not None:
            x = x + self.position
        x = self.encoder_ln(x)
        for block in self.encoder:
            x = block(x)
        return x, self.value_head(x).squeeze(-1)

    def shifted_input(self, skills: torch.Tensor) -> torch.Tensor:
        """[B, N+1] chosen skills -> [B, N+1, A+1] decoder input: start symbol, then each previous choice."""
        batch = skills.shape[0]
        shifted = torch.zeros(batch, self.num_agents + 1, self.width + 1, device=skills.device)
        shifted[:, 0, 0] = 1.0
        shifted[:, 1:, 1:] = nn.functional.one_hot(skills[:, :-1].long(), self.width).float()
        return shifted

    def decode(self, shifted: torch.Tensor, rep: torch.Tensor) -> torch.Tensor:
        """Logits [B, N+1, A] with invalid skills masked."""
        x = torch.cat([self.team_embed(shifted[:, :2]), self.indiv_embed(shifted[:, 2:])], dim=1)
        x = self.decoder_ln(x)
        for block in self.decoder:
            x = block(x, rep, self.causal)
        return self.policy_head(x).masked_fill(self.invalid, MASKED)

    @torch.no_grad()
    def act(self, state: torch.Tensor, obs: torch.Tensor, deterministic: bool = False):
        """Samples Z then z_1..z_N one token at a time; returns skills, log-probs and values, each [B, N+1]."""
        rep, values = self.encode(state, obs)
        batch, tokens = state.shape[0], self.num_agents + 1
        skills = torch.zeros(batch, tokens, dtype=torch.long, device=state.device)
        logp = torch.zeros(batch, tokens, device=state.device)
        for i in range(tokens):
            logits = self.decode(self.shifted_input(skills), rep)[:, i]
            dist = Categorical(logits=logits)
            choice = logits.argmax(-1) if deterministic else dist.sample()
            skills[:, i] = choice
            logp[:, i] = dist.log_prob(choice)
        return skills, logp, values

    def evaluate(self, state: torch.Tensor, obs: torch.Tensor, skills: torch.Tensor):
        """Teacher-forced: log-probs, entropies and values [B, N+1] of the given skills in one pass."""
        rep, values = self.encode(state, obs)
        dist = Categorical(logits=self.decode(self.shifted_input(skills), rep))
        return dist.log_prob(skills), dist.entropy(), values

    @torch.no_grad()
    def value(self, state: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return self.encode(state, obs)[1]
