"""The skill coordinator pi_h(Z, z_1..z_N | s, o_1..o_N): a MAT-style encoder-decoder transformer (spec section 2.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical

from hmasd.algo.draws import EnvRows, sample_rows
from hmasd.algo.networks import RELU_GAIN, layer_init

MASKED = -1e10


def small_init(layer: nn.Linear) -> nn.Linear:
    return layer_init(layer, 0.01)


def layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` without the module call, whose overhead is about the op's own cost at a few rows."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` without the module call."""
    return F.linear(x, layer.weight, layer.bias)


def gelu(module: nn.GELU, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` without the module call."""
    return F.gelu(x, approximate=module.approximate)


class Affine:
    """``layer(x)`` for the per-token loop: ``addmm(bias, x, weight.T)`` with the transpose and the module's
    attribute look-ups done once per ``act`` call, optionally written into ``out`` (a cache row)."""

    __slots__ = ("bias", "weight_t")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight_t, self.bias = weight.t(), bias

    def __call__(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight_t, out=out)


class Norm:
    """``norm(x)`` for the per-token loop, its arguments looked up once per ``act`` call."""

    __slots__ = ("args",)

    def __init__(self, norm: nn.LayerNorm) -> None:
        self.args = (norm.normalized_shape, norm.weight, norm.bias, norm.eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.layer_norm(x, *self.args)


def sample(probs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One draw [B, 1] from each row of probs [B, A] (hmasd.algo.draws.sample_rows: torch.multinomial(probs, 1)'s
    own algorithm, so the same draws from the same RNG state, without its validation of the rows: a row with NaN
    is not rejected here). ``noise`` [B, A] is the Exp(1) noise to use (drawn here when None)."""
    return sample_rows(probs, noise).unsqueeze(-1)


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """[B, L, E] -> [B, H, L, E/H], a view: the layout scaled_dot_product_attention takes heads in."""
    batch, length, width = x.shape
    return x.view(batch, length, n_head, width // n_head).transpose(1, 2)


def self_attention(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """``attn(x, x, x)[0]`` unmasked, from the module's own parameters (packed in_proj: q | k | v) and with the
    kernel it calls itself: the module's per-call argument checks cost more than its maths at these sizes."""
    n_head = attn.num_heads
    query, key, value = (split_heads(part, n_head)
                         for part in F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))
    mixed = F.scaled_dot_product_attention(query, key, value).transpose(1, 2).reshape(x.shape)
    return F.linear(mixed, attn.out_proj.weight, attn.out_proj.bias)


class TokenMLP(nn.Module):
    """Linear -> GELU -> Linear, the transformer blocks' feed-forward part."""

    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.net = nn.Sequential(layer_init(nn.Linear(n_embd, n_embd), RELU_GAIN), nn.GELU(),
                                 small_init(nn.Linear(n_embd, n_embd)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` without the module calls (no-grad decisions)."""
        hidden, act, out = self.net
        return linear(out, gelu(act, linear(hidden, x)))


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

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` without the module calls (no-grad decisions; training keeps them)."""
        x = layer_norm(self.ln1, x + self_attention(self.attn, x))
        return layer_norm(self.ln2, x + self.mlp.infer(x))


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


def cached_heads(kv: torch.Tensor, n_head: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A key | value cache [T, B, 2E] -> its keys and values [B, H, T, E/H], views that see every later write."""
    tokens, batch, width = kv.shape
    return tuple(part.view(tokens, batch, n_head, width // (2 * n_head)).permute(1, 2, 0, 3)
                 for part in kv.split(width // 2, dim=2))


class DecoderBlockCache:
    """One decoder block in one ``act`` call, run one position at a time.

    In ``DecoderBlock.forward`` position i's self-attention sees the block's inputs at positions <= i, and its
    cross-attention asks with rep_i (query and residual) over the ln1 outputs at positions <= i; the rest is per
    position. So once the keys and values of the earlier positions are kept, position i needs only its own input.
    The caches hold every position (zeros until written, so that a masked score stays finite) and each position
    attends through its row of the causal mask, as decode does. The attention is computed from the modules' own
    parameters, split as nn.MultiheadAttention splits them (packed in_proj: q | k | v), with the kernel it calls.
    """

    def __init__(self, block: DecoderBlock, rep: torch.Tensor, masks: tuple[torch.Tensor, ...]) -> None:
        batch, tokens, e = rep.shape
        self.batch, self.width, self.n_head, self.masks = batch, e, block.self_attn.num_heads, masks
        self_attn, cross_attn = block.self_attn, block.cross_attn
        self.qkv = Affine(self_attn.in_proj_weight, self_attn.in_proj_bias)
        self.out_bias, self.out_weight_t = self_attn.out_proj.bias, self_attn.out_proj.weight.t()
        self.cross_kv = Affine(cross_attn.in_proj_weight[e:], cross_attn.in_proj_bias[e:])
        self.cross_out = Affine(cross_attn.out_proj.weight, cross_attn.out_proj.bias)
        self.ln1, self.ln2, self.ln3 = Norm(block.ln1), Norm(block.ln2), Norm(block.ln3)
        hidden, self.act, out = block.mlp.net
        self.hidden, self.out = Affine(hidden.weight, hidden.bias), Affine(out.weight, out.bias)
        # the cross-attention's queries and residuals come from rep alone: every position's at once
        queries = F.linear(rep, cross_attn.in_proj_weight[:e], cross_attn.in_proj_bias[:e])
        self.cross_queries = split_heads(queries, self.n_head).split(1, dim=2)
        self.cross_residuals = (rep + cross_attn.out_proj.bias).unbind(1)
        # per position, contiguous rows that the projections write into: the self-attention's residual | query |
        # key | value (one lookup fills it in the first block) and the cross-attention's key | value
        self_cache, cross_cache = rep.new_zeros(tokens, batch, 4 * e), rep.new_zeros(tokens, batch, 2 * e)
        self.self_rows, self.cross_rows = self_cache.unbind(0), cross_cache.unbind(0)
        self.self_keys, self.self_values = cached_heads(self_cache[..., 2 * e:], self.n_head)
        self.cross_keys, self.cross_values = cached_heads(cross_cache, self.n_head)

    def project(self, x: torch.Tensor, row: torch.Tensor) -> None:
        """Writes what the self-attention takes from inputs x [R, E] into ``row`` [R, 4E]: the residual (with
        out_proj's bias folded in, an op less per position) | q | k | v."""
        torch.add(x, self.out_bias, out=row[:, :self.width])
        self.qkv(x, out=row[:, self.width:])

    def start(self, row: torch.Tensor, rep: torch.Tensor) -> torch.Tensor:
        """The block's output [B, E] at position 0 from ``project`` of an input row [1, E] that the whole batch
        shares (the start symbol, in the first block). Position 0 attends to itself alone, with weight 1: its
        attention outputs are its projected values, and its ln1 output is one row too."""
        e = self.width
        self.self_rows[0].copy_(row.expand(self.batch, -1))
        x = self.ln1(torch.addmm(row[:, :e], row[:, 3 * e:], self.out_weight_t))
        kv = self.cross_kv(x)
        self.cross_rows[0].copy_(kv.expand(self.batch, -1))
        return self.finish(self.ln2(rep[:, 0] + self.cross_out(kv[:, e:])))

    def step(self, i: int) -> torch.Tensor:
        """The block's output [B, E] at position i, its ``project``ed input already in ``self_rows[i]``."""
        batch, e, row = self.batch, self.width, self.self_rows[i]
        query = row[:, e:2 * e].view(batch, self.n_head, 1, e // self.n_head)
        mixed = F.scaled_dot_product_attention(query, self.self_keys, self.self_values, attn_mask=self.masks[i])
        x = self.ln1(torch.addmm(row[:, :e], mixed.reshape(batch, e), self.out_weight_t))
        self.cross_kv(x, out=self.cross_rows[i])
        mixed = F.scaled_dot_product_attention(self.cross_queries[i], self.cross_keys, self.cross_values,
                                               attn_mask=self.masks[i])
        x = torch.addmm(self.cross_residuals[i], mixed.reshape(batch, e), self.cross_out.weight_t)
        return self.finish(self.ln2(x))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """ln3(x + MLP(x)), the block's last part."""
        return self.ln3(self.out(gelu(self.act, self.hidden(x))).add_(x))


class IncrementalDecoder:
    """``SkillCoordinator.decode`` in one ``act`` call, one position at a time: each position goes through every
    block once (keys and values kept, see DecoderBlockCache) instead of the whole sequence once per token.

    decode's input at a position is the embedding of a one-hot (the start symbol at 0, the previous choice after):
    team_embed's at positions 0 and 1, indiv_embed's from 2 on, and a Linear of a one-hot is its weight's column.
    So every possible input row is embedded, normalised and projected for the first block once per call, and a
    position only looks its row up.
    """

    def __init__(self, net: SkillCoordinator, rep: torch.Tensor) -> None:
        tokens = rep.shape[1]
        masks = rep.new_zeros(tokens, tokens).masked_fill_(net.causal, float("-inf")).split(1)
        self.blocks = [DecoderBlockCache(block, rep, masks) for block in net.decoder]
        first, choices = self.blocks[0], net.width
        one_hot = torch.eye(net.width + 1, dtype=rep.dtype, device=rep.device)
        inputs = torch.cat([net.team_embed(one_hot), net.indiv_embed(one_hot)])
        table = inputs.new_empty(len(inputs), 4 * first.width)
        first.project(layer_norm(net.decoder_ln, inputs), table)
        self.first_output = first.start(table[:1], rep)
        # rows by the previous choice: Z at position 1 (still team_embed), z_{i-1} at positions i >= 2
        self.follows = table[1:choices + 1], table[choices + 2:]
        hidden, self.act, norm, out = net.policy_head
        self.hidden, self.norm, self.out_weight_t = Affine(hidden.weight, hidden.bias), Norm(norm), out.weight.t()
        # the mask as the last layer's bias, an op less per token: -1e10 + a logit rounds to -1e10, decode's value
        self.head_biases = out.bias.masked_fill(net.invalid, MASKED).unbind(0)

    def logits(self, i: int, previous: torch.Tensor | None) -> torch.Tensor:
        """Masked logits [B, A] at position i given the choices [B, 1] at position i - 1 (None at 0)."""
        if i == 0:
            x = self.first_output
        else:
            first = self.blocks[0]
            torch.index_select(self.follows[int(i > 1)], 0, previous.view(-1), out=first.self_rows[i])
            x = first.step(i)
        for block in self.blocks[1:]:
            block.project(x, block.self_rows[i])
            x = block.step(i)
        x = self.norm(gelu(self.act, self.hidden(x)))
        return torch.addmm(self.head_biases[i], x, self.out_weight_t)


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

    def encode_inference(self, state: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode`` without the module calls (no-grad decisions; training keeps them)."""
        state_norm, state_linear, state_act = self.state_embed
        obs_norm, obs_linear, obs_act = self.obs_embed
        x = torch.cat([gelu(state_act, linear(state_linear, layer_norm(state_norm, state))).unsqueeze(1),
                       gelu(obs_act, linear(obs_linear, layer_norm(obs_norm, obs)))], dim=1)
        if self.position is not None:
            x = x + self.position
        x = layer_norm(self.encoder_ln, x)
        for block in self.encoder:
            x = block.infer(x)
        hidden, act, norm, out = self.value_head
        return x, linear(out, layer_norm(norm, gelu(act, linear(hidden, x)))).squeeze(-1)

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
    def act(self, state: torch.Tensor, obs: torch.Tensor, deterministic: bool = False,
            draws: EnvRows | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Samples Z then z_1..z_N one token at a time; returns skills (int64), log-probs and values, each [B, N+1].

        ``act_reference``'s distribution and draws (per token, torch.multinomial's algorithm on the softmax of the
        same logits, so the global RNG advances alike), but each position goes through the decoder once
        (IncrementalDecoder) instead of the whole sequence once per token. ``draws`` names the envs of the global
        batch the rows are (hmasd.algo.draws): each token's noise is then drawn for every env of that batch and
        the rows' own kept, so a decision does not depend on which other envs decide with it or where they run.
        """
        rep, values = self.encode_inference(state, obs)
        decoder = IncrementalDecoder(self, rep)
        choice, choices, logits_seq = None, [], []
        for i in range(self.num_agents + 1):
            logits = decoder.logits(i, choice)
            if deterministic:
                choice = logits.argmax(-1, keepdim=True)
            else:
                noise = None if draws is None else draws.exponential(1, logits.shape[-1], logits.device)
                choice = sample(logits.softmax(-1), noise)
            choices.append(choice)
            logits_seq.append(logits)
        skills = torch.cat(choices, dim=1)
        logp = torch.stack(logits_seq, dim=1).log_softmax(-1).gather(2, skills.unsqueeze(2)).squeeze(2)
        return skills, logp, values

    @torch.no_grad()
    def act_reference(self, state: torch.Tensor, obs: torch.Tensor,
                      deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``act`` by the definition: the whole shifted sequence decoded again for every token (N+1 full decoder
        passes, with the modules as training calls them); what ``act`` is tested and timed against."""
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
