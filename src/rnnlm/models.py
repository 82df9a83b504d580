"""Recurrent language models behind one contract.

Every kind is a ``LanguageModel``: ``forward(x, hidden=None) -> (logits, hidden)`` with ``x`` (B, T)
token ids and ``logits`` (B, T, V). Training and evaluation call ``features`` and project only the
real (non-padding) positions with ``decoder``: the output layer is the costly part of a
word-level model, and logits for padding would be thrown away anyway.

Kinds: ``rnn_scratch`` (the hand-written tanh cell below), ``rnn`` (torch.nn.RNN), ``gru`` and
``lstm`` (the fused torch kernels).

Dropout (on embeddings, between layers, on outputs) comes in two modes: ``standard`` draws a new
mask for every position, ``locked`` (variational dropout, as in AWD-LSTM) draws one mask per
sequence and applies it at every time step, so a unit that is dropped stays dropped for the whole
sequence instead of flickering.

Output layers: ``full`` (one linear layer, logits over the whole vocabulary) or ``adaptive``
(adaptive softmax, Grave et al. 2017, for large word vocabularies). The adaptive layer's "logits"
are already normalized log-probabilities; since softmax(log p) = p, every caller that treats the
output as logits (cross-entropy, argmax, sampling, log_softmax) gets the same exact
full-distribution answer without a branch. Only training asks the adaptive layer for the
target's log-probability alone, which skips the tail clusters a batch's targets do not fall in.
"""

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import check_model_kind
from .errors import UserError


@dataclass
class ModelConfig:
    kind: str              # rnn_scratch | rnn | gru | lstm
    vocab_size: int
    pad_id: int            # its embedding stays zero and gets no gradient
    embedding_size: int = 96
    hidden_size: int = 96
    layers: int = 1
    dropout: float = 0.0
    tie_weights: bool = False
    dropout_mode: str = "standard"  # standard | locked (one mask per sequence, see LockedDropout)
    output: str = "full"   # full | adaptive (adaptive softmax; word-level vocabularies)
    adaptive_cutoffs: Optional[list] = field(default=None)  # ids where the head and each tail cluster end

    def to_dict(self):
        return asdict(self)


class LockedDropout(nn.Module):
    """Dropout whose mask is drawn once per sequence and shared by all its time steps.

    Input (B, T, H): the mask is (B, 1, H), broadcast over T, and scaled by 1 / (1 - p) like
    nn.Dropout so that evaluation (no dropout) sees activations of the same size.
    """

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):  # (B, T, H)
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


def make_dropout(p, mode):
    return LockedDropout(p) if mode == "locked" else nn.Dropout(p)


class TanhRNNCell(nn.Module):
    """A cell's job: fold one input into the running state. Here h_t = tanh(W_h h_{t-1} + W_x x_t + b).

    ``W_x`` and ``W_h`` each carry a bias (as in the seed notebook and in torch.nn.RNN, whose
    ``bias_ih`` and ``bias_hh`` they correspond to); their sum is the ``b`` of the formula.
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.W_x = nn.Linear(input_size, hidden_size)
        self.W_h = nn.Linear(hidden_size, hidden_size)

    def forward(self, x_t, h):  # (B, I), (B, H) -> (B, H)
        return self.step(self.W_x(x_t), h)

    def step(self, projected_x_t, h):
        """The recurrence given an input already multiplied by ``W_x`` (see ScratchRNN).

        Written as one ``addmm`` (what ``self.W_h(h)`` runs) plus an in-place add: the same
        arithmetic as ``W_h(h) + projected_x_t``, bit for bit, with one allocation and one module
        call fewer per time step, which is most of a step's cost at this size.
        """
        return torch.tanh(torch.addmm(self.W_h.bias, h, self.W_h.weight.t()).add_(projected_x_t))


class ScratchRNN(nn.Module):
    """A stack of ``TanhRNNCell`` layers with the calling convention of torch.nn.RNN (batch_first)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, dropout_mode="standard"):
        super().__init__()
        self.hidden_size = hidden_size
        self.cells = nn.ModuleList(
            TanhRNNCell(input_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers)
        )
        self.drop = make_dropout(dropout, dropout_mode)

    def forward(self, x, hidden=None):  # x: (B, T, I); hidden: (L, B, H)
        B, T, _ = x.shape
        if hidden is None:
            hidden = x.new_zeros(len(self.cells), B, self.hidden_size)
        finals = []
        for layer, cell in enumerate(self.cells):
            if layer > 0:
                x = self.drop(x)
            # The input projection does not depend on the state: do it for all steps in one
            # matrix multiply and leave only the recurrence in the Python loop.
            projected = cell.W_x(x)  # (B, T, H)
            h = hidden[layer]
            steps = []
            for t in range(T):
                h = cell.step(projected[:, t], h)
                steps.append(h)
            x = torch.stack(steps, dim=1)  # (B, T, H)
            finals.append(h)
        return x, torch.stack(finals)


class AdaptiveOutput(nn.Module):
    """Adaptive softmax as an output layer: states (N, H) -> log-probabilities (N, V), normalized.

    Token ids below the first cut-off (the most frequent words: the vocabulary is ranked by
    count) are scored in the head together with one entry per tail cluster; a rarer word's
    probability is its cluster's head probability times its share inside the cluster, computed
    through a smaller projection (each cluster 4x narrower than the one before).
    """

    def __init__(self, hidden_size, vocab_size, cutoffs):
        super().__init__()
        cutoffs = list(cutoffs or [])
        if not cutoffs or any(b <= a for a, b in zip(cutoffs, cutoffs[1:])) or cutoffs[0] < 1 \
                or cutoffs[-1] >= vocab_size - 1:
            raise UserError(f"adaptive_cutoffs {cutoffs} must increase and stay between 1 and the vocabulary "
                            f"size - 2 ({vocab_size - 2}); adaptive softmax is meant for large word vocabularies")
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, cutoffs, div_value=4.0)

    def forward(self, states):  # (..., H) -> (..., V)
        flat = states.reshape(-1, states.size(-1))
        return self.adaptive.log_prob(flat).reshape(*states.shape[:-1], -1)

    def target_log_probs(self, states, targets):  # (N, H), (N,) -> (N,)
        """log p(target) alone: the full distribution's value, without the clusters no target needs.

        The same arithmetic as ``nn.AdaptiveLogSoftmaxWithLoss.forward``, written out because
        that method fails on CUDA when exactly one target falls in a cluster (its ``squeeze()``
        turns the one row index into a 0-d tensor) and under bf16 autocast (it copies float32
        into a tensor of the input's dtype). Here every log-softmax runs in float32.
        """
        adaptive = self.adaptive
        head = F.log_softmax(adaptive.head(states).float(), dim=-1)       # (N, shortlist + clusters)
        cutoffs = [0] + adaptive.cutoffs                                  # cutoffs[-1] == vocab size
        in_head = targets < adaptive.shortlist_size
        # the head entry to read: the word itself, or the cluster holding it
        cluster = torch.bucketize(targets, targets.new_tensor(adaptive.cutoffs[:-1]), right=True)
        head_entry = torch.where(in_head, targets, adaptive.shortlist_size + cluster - 1)
        out = head.gather(1, head_entry.unsqueeze(1)).squeeze(1)          # (N,)
        for i, tail in enumerate(adaptive.tail, start=1):
            rows = (cluster == i).nonzero().view(-1)                      # never 0-d
            if rows.numel() == 0:
                continue
            inside = F.log_softmax(tail(states.index_select(0, rows)).float(), dim=-1)
            local = inside.gather(1, (targets.index_select(0, rows) - cutoffs[i]).unsqueeze(1)).squeeze(1)
            out = out.index_add(0, rows, local)
        return out


_TORCH_RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class LayerByLayerRNN(nn.Module):
    """A stack of one-layer torch RNNs with locked dropout between them.

    The fused multi-layer kernels only offer standard dropout between layers; running the layers
    one by one lets the same mask apply at every time step. Calling convention of torch.nn.RNN.
    """

    def __init__(self, rnn_class, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.layers = nn.ModuleList(rnn_class(input_size if i == 0 else hidden_size, hidden_size, batch_first=True)
                                    for i in range(num_layers))
        self.drop = LockedDropout(dropout)

    def forward(self, x, hidden=None):  # x: (B, T, I); hidden: (L, B, H), for an LSTM a pair of them
        lstm = isinstance(self.layers[0], nn.LSTM)
        finals = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.drop(x)
            if hidden is None:
                state = None
            else:
                state = tuple(h[i : i + 1] for h in hidden) if lstm else hidden[i : i + 1]
            x, final = layer(x, state)
            finals.append(final)
        if lstm:
            return x, tuple(torch.cat(parts) for parts in zip(*finals))
        return x, torch.cat(finals)


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        check_model_kind(config.kind)
        self.config = config
        E, H = config.embedding_size, config.hidden_size
        between_layers = config.dropout if config.layers > 1 else 0.0
        self.embedding = nn.Embedding(config.vocab_size, E, padding_idx=config.pad_id)
        if config.kind == "rnn_scratch":
            self.rnn = ScratchRNN(E, H, config.layers, between_layers, config.dropout_mode)
        elif config.dropout_mode == "locked" and config.layers > 1:
            self.rnn = LayerByLayerRNN(_TORCH_RNNS[config.kind], E, H, config.layers, between_layers)
        else:
            self.rnn = _TORCH_RNNS[config.kind](E, H, config.layers, dropout=between_layers, batch_first=True)
        self.drop = make_dropout(config.dropout, config.dropout_mode)
        if config.output == "adaptive":
            self.decoder = AdaptiveOutput(H, config.vocab_size, config.adaptive_cutoffs)
        else:
            self.decoder = nn.Linear(H, config.vocab_size)
        if config.tie_weights:
            if config.output != "full":
                raise UserError("tie_weights needs output: full (the adaptive output has no single weight matrix)")
            self.decoder.weight = self.embedding.weight

    def features(self, x, hidden=None):
        """Top-layer states (B, T, H) for input ids (B, T), and the final hidden state."""
        states, hidden = self.rnn(self.drop(self.embedding(x)), hidden)
        return self.drop(states), hidden

    def forward(self, x, hidden=None):
        states, hidden = self.features(x, hidden)
        return self.decoder(states), hidden  # (B, T, V)

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once


def build_model(config: ModelConfig):
    return LanguageModel(config)


def token_losses(model, x, y, pad_id, with_logits=True):
    """Per-token negative log-likelihood (nats) and logits at the real positions only.

    Padding never enters the loss: its positions are dropped before the output layer, which also
    saves computing logits for them. Returns ``(nll (N,), logits (N, V), targets (N,))``; with
    ``with_logits=False`` (training) logits may be None, which lets the adaptive output score the
    targets alone.
    """
    states, _ = model.features(x)           # (B, T, H)
    mask = y != pad_id                      # (B, T)
    targets = y[mask]                       # (N,)
    if not with_logits and isinstance(model.decoder, AdaptiveOutput):
        return -model.decoder.target_log_probs(states[mask], targets), None, targets
    logits = model.decoder(states[mask])    # (N, V)
    return F.cross_entropy(logits, targets, reduction="none"), logits, targets
