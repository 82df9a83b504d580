"""The recurrent kinds: ``rnn_scratch`` (the hand-written tanh cell below), ``rnn`` (torch.nn.RNN),
``gru`` and ``lstm`` (the fused torch kernels), with the regularizers of AWD-LSTM (Merity et al.
2018) as settings, each off at 0:

- ``weight_drop``: DropConnect on the hidden-to-hidden matrices. One mask per batch is drawn on
  the *weights* ``W_hh`` and used at every time step, so the recurrence itself is regularized
  while the fused kernels still run (the dropped matrix goes in through ``functional_call``);
- ``activation_reg`` (AR, alpha): alpha * mean(h_t^2) of the dropped-out top-layer outputs, which
  keeps activations small;
- ``temporal_reg`` (TAR, beta): beta * mean((h_t - h_{t-1})^2) of the raw top-layer outputs, which
  makes the state change slowly;
- locked dropout and embedding dropout, from ``rnnlm.models.base``.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from .base import LanguageModel, LockedDropout, make_dropout


def drop_weight(weight, p, training):
    """DropConnect: ``weight`` with a share ``p`` of its entries zeroed (and the rest scaled)."""
    return F.dropout(weight, p, training=True) if training and p > 0 else weight


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

    def step(self, projected_x_t, h, recurrent_weight=None):
        """The recurrence given an input already multiplied by ``W_x`` (see ScratchRNN).

        Written as one ``addmm`` (what ``self.W_h(h)`` runs) plus an in-place add: the same
        arithmetic as ``W_h(h) + projected_x_t``, bit for bit, with one allocation and one module
        call fewer per time step, which is most of a step's cost at this size.
        ``recurrent_weight`` replaces ``W_h``'s matrix (weight drop draws it once per sequence).
        """
        weight = self.W_h.weight if recurrent_weight is None else recurrent_weight
        return torch.tanh(torch.addmm(self.W_h.bias, h, weight.t()).add_(projected_x_t))


class ScratchRNN(nn.Module):
    """A stack of ``TanhRNNCell`` layers with the calling convention of torch.nn.RNN (batch_first)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, dropout_mode="standard", weight_drop=0.0):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_drop = weight_drop
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
            recurrent_weight = drop_weight(cell.W_h.weight, self.weight_drop, self.training)
            h = hidden[layer]
            steps = []
            for t in range(T):
                h = cell.step(projected[:, t], h, recurrent_weight)
                steps.append(h)
            x = torch.stack(steps, dim=1)  # (B, T, H)
            finals.append(h)
        return x, torch.stack(finals)


def run_with_weight_drop(rnn, x, state, p):
    """A torch RNN module on ``x`` with DropConnect ``p`` on every ``weight_hh_l*`` (in training)."""
    if not (rnn.training and p > 0):
        return rnn(x, state)
    dropped = {name: F.dropout(w, p, training=True) for name, w in rnn.named_parameters()
               if name.startswith("weight_hh")}
    return functional_call(rnn, dropped, (x, state))


class LayerByLayerRNN(nn.Module):
    """A stack of one-layer torch RNNs with locked dropout between them.

    The fused multi-layer kernels only offer standard dropout between layers; running the layers
    one by one lets the same mask apply at every time step. Calling convention of torch.nn.RNN.
    """

    def __init__(self, rnn_class, input_size, hidden_size, num_layers, dropout, weight_drop=0.0):
        super().__init__()
        self.layers = nn.ModuleList(rnn_class(input_size if i == 0 else hidden_size, hidden_size, batch_first=True)
                                    for i in range(num_layers))
        self.drop = LockedDropout(dropout)
        self.weight_drop = weight_drop

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
            x, final = run_with_weight_drop(layer, x, state, self.weight_drop)
            finals.append(final)
        if lstm:
            return x, tuple(torch.cat(parts) for parts in zip(*finals))
        return x, torch.cat(finals)


_TORCH_RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
# Multiply-adds of one step per unit of hidden x (hidden + input): gates per cell; the hand-written
# cell's Python loop costs a little more than its arithmetic.
_STEP_COST = {"lstm": 4.0, "gru": 3.0, "rnn_scratch": 1.2, "rnn": 1.0}


class RecurrentLM(LanguageModel):
    """Embedding -> a stack of recurrent layers -> output layer. ``hidden`` is the recurrent state:
    (layers, B, H), for an LSTM the pair (h, c)."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        E, H = c.embedding_size, c.hidden_size
        between_layers = c.dropout if c.layers > 1 else 0.0
        self._build_embedding()
        if c.kind == "rnn_scratch":
            self.rnn = ScratchRNN(E, H, c.layers, between_layers, c.dropout_mode, c.weight_drop)
        elif c.dropout_mode == "locked" and c.layers > 1:
            self.rnn = LayerByLayerRNN(_TORCH_RNNS[c.kind], E, H, c.layers, between_layers, c.weight_drop)
        else:
            self.rnn = _TORCH_RNNS[c.kind](E, H, c.layers, dropout=between_layers, batch_first=True)
        self._build_output(H)

    def features(self, x, hidden=None):
        embedded = self.embed(x)
        if isinstance(self.rnn, (ScratchRNN, LayerByLayerRNN)):  # they drop their weights themselves
            raw, hidden = self.rnn(embedded, hidden)                # (B, T, H)
        else:
            raw, hidden = run_with_weight_drop(self.rnn, embedded, hidden, self.config.weight_drop)
        states = self.drop(raw)
        c = self.config
        self.activation_penalty = None
        if self.training and (c.activation_reg > 0 or c.temporal_reg > 0):
            real = x != c.pad_id                                    # (B, T): padding is not penalized
            penalty = c.activation_reg * states[real].pow(2).mean() if c.activation_reg > 0 else 0.0
            if c.temporal_reg > 0:
                both = real[:, 1:] & real[:, :-1]
                penalty = penalty + c.temporal_reg * (raw[:, 1:] - raw[:, :-1])[both].pow(2).mean()
            self.activation_penalty = penalty
        return states, hidden

    @property
    def state_names(self):
        return ("h", "c") if self.config.kind == "lstm" else ("h",)

    def initial_state(self, batch_size):
        zeros = torch.zeros(self.config.layers, batch_size, self.config.hidden_size,
                            device=self.embedding.weight.device)
        return (zeros, zeros.clone()) if self.config.kind == "lstm" else (zeros,)

    def state_tensors(self, hidden):
        return tuple(hidden) if self.config.kind == "lstm" else (hidden,)

    def state_from_tensors(self, tensors):
        return tuple(tensors) if self.config.kind == "lstm" else tensors[0]

    @classmethod
    def macs_per_token(cls, config):
        return _STEP_COST.get(config.kind, 1.0) * config.hidden_size * (config.hidden_size + config.embedding_size)
