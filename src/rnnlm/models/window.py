"""The fixed-window neural LM (``mlp``): Bengio et al. 2003, the feed-forward model before RNNs.

    p(w_i | w_{i-k}, ..., w_{i-1}) = softmax(decoder(f([e(w_{i-k}); ...; e(w_{i-1})])))

Each prediction reads the embeddings of exactly the last ``k = context`` tokens, concatenated
(``e`` is the embedding, ``;`` concatenation), through ``layers`` tanh layers ``f``. Nothing
older than the window can reach it: that is the difference recurrence makes, and what this kind
is here to measure. Before an item's start the window is padded with ``<s>``, never with the
previous item. ``hidden`` is the window itself, the last ``k`` token ids (B, k), so sampling and
scoring step through it like any kind.
"""

import torch
import torch.nn as nn

from ..errors import UserError
from .base import LanguageModel


class FixedWindowLM(LanguageModel):
    state_names = ("window",)

    def __init__(self, config):
        super().__init__(config)
        c = config
        if c.context < 1:
            raise UserError(f"the mlp kind needs context >= 1 (tokens in its window), got {c.context}")
        self._build_embedding()
        widths = [c.context * c.embedding_size] + [c.hidden_size] * c.layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self._build_output(c.hidden_size)

    def features(self, x, hidden=None):
        B, T = x.shape
        k = self.config.context
        if hidden is None:  # an item's start: the window before it is all <s>
            hidden = x.new_full((B, k), self.config.bos_id)
        # The k - 1 tokens before x and x itself: window t is tokens t .. t + k - 1 of this sequence,
        # the last k tokens up to and including x[:, t]. Each token is embedded once.
        sequence = torch.cat([hidden[:, 1:], x], dim=1)                       # (B, k - 1 + T)
        embedded = self.embed(sequence)                                        # (B, k - 1 + T, E)
        windows = embedded.unfold(1, k, 1)                                     # (B, T, E, k)
        h = windows.transpose(2, 3).reshape(B, T, k * self.config.embedding_size)  # [e_{t-k+1}; ...; e_t]
        for i, layer in enumerate(self.layers):
            if i > 0:
                h = self.drop(h)
            h = torch.tanh(layer(h))                                           # (B, T, H)
        return self.drop(h), sequence[:, -k:]

    def initial_state(self, batch_size):
        return (torch.full((batch_size, self.config.context), self.config.bos_id, dtype=torch.long,
                           device=self.embedding.weight.device),)

    def state_tensors(self, hidden):
        return (hidden,)

    def state_from_tensors(self, tensors):
        return tensors[0]

    @classmethod
    def macs_per_token(cls, config):
        return config.hidden_size * (config.context * config.embedding_size + (config.layers - 1) * config.hidden_size)
