"""A small decoder-only Transformer (``transformer``): the architecture that replaced RNNs.

GPT-style, after nanoGPT's ``model.py``: token embeddings plus learned position embeddings, then
``layers`` pre-LayerNorm blocks

    x = x + attention(LN(x));   x = x + feed_forward(LN(x))

with causal self-attention through ``torch.nn.functional.scaled_dot_product_attention``, a final
LayerNorm and the output layer (full, tied, or adaptive softmax like the other kinds). Weights
start at N(0, 0.02), the residual projections at N(0, 0.02 / sqrt(2 * layers)).

``hidden`` is the key/value cache: ``(keys, values)``, each (layers, B, heads, P, width / heads)
for the P tokens seen so far. A call with a cache runs only the new tokens, attending to the cached
ones, so a sampler adds one token at a time without recomputing the prefix.

The model has positions for ``max_len`` tokens. A longer input without a cache (scoring a long
text) is read in overlapping windows of ``max_len`` tokens, ``max_len // 2`` apart: every position
sees at least the last ``max_len // 2`` tokens. Stepping a cache past ``max_len`` is refused (a sampler
restarts from the last ``max_len // 2`` tokens instead: ``rnnlm.sampling.ModelStepper``).

On a stream (``rnnlm.streams``) it carries nothing from one chunk to the next (``carry`` returns None):
each training chunk of ``bptt`` tokens is read from position 0, as nanoGPT reads its blocks, so training
builds it with ``max_len = min(max_len, bptt)`` positions (``rnnlm.training.positions_for``): every
position it has is trained, and a stream is scored (``rnnlm.stream_scoring``) and sampled
(``rnnlm.sampling``) in windows of that many tokens, the context it was trained on.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from .base import LanguageModel


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        if width % heads:
            raise UserError(f"the transformer's width (hidden_size {width}) must be a multiple of heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x, past=None):  # x (B, T, D); past: (keys, values), each (B, heads, P, D / heads)
        B, T, D = x.shape
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in self.qkv(x).split(D, dim=2))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        p = self.dropout if self.training else 0.0
        if past is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:  # new token i (position P + i) sees keys 0 .. P + i
            P = k.shape[2] - T
            mask = torch.arange(T, device=x.device)[:, None] + P >= torch.arange(P + T, device=x.device)[None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.transpose(1, 2).reshape(B, T, D)
        return self.resid_drop(self.proj(out)), (k, v)


class Block(nn.Module):
    def __init__(self, width, heads, ff_size, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.ln_2 = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(nn.Linear(width, ff_size), nn.GELU(), nn.Linear(ff_size, width),
                                          nn.Dropout(dropout))

    def forward(self, x, past=None):
        attended, cache = self.attention(self.ln_1(x), past)
        x = x + attended
        return x + self.feed_forward(self.ln_2(x)), cache


class TransformerLM(LanguageModel):
    state_names = ("keys", "values")

    def __init__(self, config):
        super().__init__(config)
        c = config
        if c.max_len < 1 or c.ff_size < 1:
            raise UserError(f"the transformer needs max_len >= 1 and ff_size >= 1, got {c.max_len} and {c.ff_size}")
        D = c.hidden_size
        self._build_embedding()
        # A narrower embedding (embedding_size < hidden_size) is projected up to the model width.
        self.project_in = nn.Linear(c.embedding_size, D) if c.embedding_size != D else None
        self.position = nn.Embedding(c.max_len, D)
        self.blocks = nn.ModuleList(Block(D, c.heads, c.ff_size, c.dropout) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(D)
        self.apply(self._init_weights)
        with torch.no_grad():
            self.embedding.weight[c.pad_id].zero_()
            for block in self.blocks:  # GPT-2: residual projections scaled down with depth
                for residual in (block.attention.proj, block.feed_forward[2]):
                    nn.init.normal_(residual.weight, std=0.02 / math.sqrt(2 * c.layers))
        self._build_output(D)
        if c.output == "full" and not c.tie_weights:
            self._init_weights(self.decoder)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def features(self, x, hidden=None):
        B, T = x.shape
        limit = self.config.max_len
        past = 0 if hidden is None else hidden[0].shape[3]
        if hidden is None and T > limit:
            return self._windowed_features(x)
        if past + T > limit:
            raise UserError(f"the transformer reads at most {limit} tokens (its max_len); "
                            f"{past} are cached and {T} more were given")
        h = self.embed(x)
        if self.project_in is not None:
            h = self.project_in(h)
        h = h + self.position(torch.arange(past, past + T, device=x.device))  # (B, T, D)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            h, (k, v) = block(h, None if hidden is None else (hidden[0][i], hidden[1][i]))
            keys.append(k)
            values.append(v)
        return self.drop(self.ln_f(h)), (torch.stack(keys), torch.stack(values))

    def _windowed_features(self, x):
        """States for an input longer than max_len: overlapping windows, max_len // 2 apart."""
        limit, T = self.config.max_len, x.shape[1]
        stride = max(1, limit // 2)
        states, hidden = self.features(x[:, :limit])
        parts, done = [states], limit
        while done < T:
            end = min(done + stride, T)
            states, hidden = self.features(x[:, max(0, end - limit):end])
            parts.append(states[:, -(end - done):])
            done = end
        return torch.cat(parts, dim=1), hidden

    @property
    def context_limit(self):
        return self.config.max_len

    def carry(self, hidden):
        return None  # no cache across chunks: every chunk starts at position 0

    def initial_state(self, batch_size):
        c = self.config
        empty = torch.zeros(c.layers, batch_size, c.heads, 0, c.hidden_size // c.heads,
                            device=self.embedding.weight.device)
        return empty, empty.clone()

    def state_tensors(self, hidden):
        return tuple(hidden)

    def state_from_tensors(self, tensors):
        return tuple(tensors)  # a cache of 0 tokens works like no cache

    @classmethod
    def macs_per_token(cls, config):
        D = config.hidden_size
        return config.layers * (4 * D * D + 2 * D * config.ff_size)
