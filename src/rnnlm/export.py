"""A neural checkpoint of any kind as an ONNX graph, for runtimes other than torch (onnxruntime, ...).

The graph is the model contract with its state as plain tensors (``rnnlm.models.base``):

    inputs   ids (batch, time) int64, then the state tensors named by the model's ``state_names``
    outputs  log_probs (batch, time, vocab) float32, then new_<name> for each state tensor

``log_probs[b, t]`` is log P(next token | the item so far, up to ``ids[b, t]``), normalized over the
whole vocabulary, and ``new_*`` is the state after the ids: feeding it back with more ids continues
the same items, so a caller can score a whole item in one call or step token by token (sampling).
An item starts with the initial state (``initial_state(batch)`` of the contract: zeros for the
recurrent kinds, a window of ``<s>`` for ``mlp``, an empty key/value cache for ``transformer``) and
the id of ``<s>``; its tokens follow and ``</s>`` is the last target.

The graph is made by one wrapper around the contract (``forward``, then ``log_softmax``), the same
for every kind; ``torch.onnx.export`` (the dynamo exporter, torch.export underneath) traces it with
dynamic batch and time axes and a dynamic length of any state axis that grows with the tokens read
(the transformer's cache). Two things need care:

* the tanh RNN (``rnn_scratch``'s hand-written cell, ``torch.nn.RNN``) cannot be traced over a
  dynamic time axis as written: the cell's Python loop, and torch.export's decomposition of
  ``torch.nn.RNN``, unroll at the example's length (torch 2.13 gives only the LSTM and GRU a
  while-loop). The export runs an exact equivalent instead, ``LoopedTanhRNN``: the same weights
  (``rnn_scratch``'s ``W_x``/``W_h`` are ``nn.RNN``'s ``weight_ih``/``weight_hh`` with their biases)
  and the same recurrence inside ``torch.while_loop``, which becomes an ONNX ``Loop``;
* the adaptive softmax's output is already the exact full distribution's log-probabilities
  (``rnnlm.models.base.AdaptiveOutput``), which ``log_softmax`` leaves as it is.

Beside ``OUT.onnx`` the export writes ``OUT.json``: the vocabulary with its normalization rules (how
raw text becomes ids), the kind and its config, the inputs and outputs with their shapes, and how to
build each initial state tensor. ``"stream": true`` marks a stream model (one long text): a text is read
as ``<s>`` and then all its tokens, newlines included, feeding the state back chunk after chunk, and no
``</s>`` ends it.
"""

import copy
import logging
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UserError
from .io import write_bytes, write_json
from .models import ScratchRNN

FORMAT = "rnnlm-onnx"
FORMAT_VERSION = 1
IDS, LOG_PROBS = "ids", "log_probs"
BATCH, TIME, PAST = "batch", "time", "past"   # the dynamic axes' names in the graph and the JSON


class NextTokenLogProbs(nn.Module):
    """The model contract as a graph: ``(ids, *state) -> (log_probs, *new_state)``, every kind alike."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, *state):
        logits, hidden = self.model(ids, self.model.state_from_tensors(state))
        return (F.log_softmax(logits, dim=-1), *self.model.state_tensors(hidden))


class LoopedTanhRNN(nn.Module):
    """A stack of tanh RNN layers, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), whose time loop
    is a ``torch.while_loop``: the same arithmetic as ``torch.nn.RNN`` (batch_first), which
    torch.export can trace over a dynamic number of steps. Inference only (weights are buffers)."""

    def __init__(self, layers):  # layers: [(weight_ih, bias_ih, weight_hh, bias_hh)], one per layer
        super().__init__()
        self.num_layers = len(layers)
        for i, weights in enumerate(layers):
            for name, weight in zip(("weight_ih", "bias_ih", "weight_hh", "bias_hh"), weights):
                self.register_buffer(f"{name}_l{i}", weight.detach().clone())

    @classmethod
    def of(cls, module):
        """The equivalent of a ``ScratchRNN`` or of a unidirectional tanh ``torch.nn.RNN``."""
        if isinstance(module, ScratchRNN):
            return cls([(c.W_x.weight, c.W_x.bias, c.W_h.weight, c.W_h.bias) for c in module.cells])
        return cls([tuple(getattr(module, f"{name}_l{i}") for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
                    for i in range(module.num_layers)])

    def forward(self, x, hidden):  # x (B, T, I), hidden (L, B, H) -> (B, T, H), (L, B, H)
        finals = []
        for i in range(self.num_layers):
            weight_hh, bias_hh = getattr(self, f"weight_hh_l{i}"), getattr(self, f"bias_hh_l{i}")
            # As in the cell: the input projection of every step at once, only the recurrence in the loop.
            projected = F.linear(x, getattr(self, f"weight_ih_l{i}"), getattr(self, f"bias_ih_l{i}"))
            projected = projected.transpose(0, 1).contiguous()                   # (T, B, H)
            steps = projected.new_zeros(projected.shape)  # the loop's carried values keep one layout

            def more(t, steps, h, projected=projected):
                return t < projected.shape[0]

            def step(t, steps, h, projected=projected, weight_hh=weight_hh, bias_hh=bias_hh):
                at = t.view(1)
                h = torch.tanh(projected.index_select(0, at).squeeze(0) + F.linear(h, weight_hh, bias_hh))
                return t + 1, steps.index_copy(0, at, h.unsqueeze(0)), h

            _, steps, h = torch.while_loop(more, step, (torch.zeros((), dtype=torch.long), steps, hidden[i]))
            x = steps.transpose(0, 1)
            finals.append(h)
        return x, torch.stack(finals)


def _is_tanh_rnn(module):
    return isinstance(module, ScratchRNN) or (isinstance(module, nn.RNN) and module.mode == "RNN_TANH"
                                              and not module.bidirectional and module.batch_first)


def exportable(model):
    """A copy of ``model`` in eval mode that torch.export traces over dynamic axes: every tanh RNN
    module replaced by its ``LoopedTanhRNN`` (see the module docstring); the rest is the model itself."""
    model = copy.deepcopy(model).eval()
    for name, module in list(model.named_modules()):
        if name and _is_tanh_rnn(module):
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, LoopedTanhRNN.of(module))
    return model


def state_axes(model):
    """For each state tensor: ``(batch axis, axes that grow with the tokens read)``, found through the
    contract alone: ``initial_state`` at two batch sizes, and the state after two tokens."""
    one, two = model.initial_state(1), model.initial_state(2)
    with torch.no_grad():
        _, hidden = model(torch.full((1, 2), model.config.bos_id, dtype=torch.long), model.state_from_tensors(one))
    after = model.state_tensors(hidden)
    axes = []
    for a, b, c in zip(one, two, after):
        batch = [i for i, (m, n) in enumerate(zip(a.shape, b.shape)) if m != n]
        if len(batch) != 1:
            raise ValueError(f"a state tensor of {model.config.kind} has no single batch axis: {a.shape} vs {b.shape}")
        axes.append((batch[0], [i for i, (m, n) in enumerate(zip(a.shape, c.shape)) if m != n]))
    return axes


def initial_state_spec(model, axes):
    """How to build each initial state tensor without torch: its shape (with ``batch``), dtype and
    fill value (the contract's initial states are constant: zeros, <s> ids, an empty cache)."""
    specs = []
    for tensor, (batch, _) in zip(model.initial_state(1), axes):
        values = tensor.unique()
        if values.numel() > 1:
            raise ValueError(f"{model.config.kind}'s initial state is not constant: describe it another way")
        fill = values.item() if values.numel() else 0
        specs.append({"shape": [BATCH if i == batch else int(n) for i, n in enumerate(tensor.shape)],
                      "dtype": str(tensor.dtype).removeprefix("torch."), "fill": fill})
    return specs


def _example_inputs(model, vocab_size):
    """ids (2, 3) and the state after 2 other tokens: no axis of size 0 or 1, which torch.export would
    take for a constant, and a non-empty cache."""
    ids = torch.arange(3, 9).remainder(vocab_size).view(2, 3)
    with torch.no_grad():
        _, hidden = model(ids[:, :2].flip(1), model.state_from_tensors(model.initial_state(2)))
    return ids, model.state_tensors(hidden)


def _declare_dynamic_outputs(proto):
    """Name the dynamic axes of the outputs: log_probs is (batch, time, vocab), a new state tensor has
    its input's shape except on the growing axes; and drop the shapes recorded for intermediate values.

    Why: the exporter's shape inference through a while loop (the recurrent kinds) pins the time axis
    to the example's length in the shapes it records after the loop, and onnxruntime then warns at
    every call with another length. The graph itself runs any length; the runtime infers the rest.
    """
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        del graph.value_info[:]
        graphs += [attribute.g for node in graph.node for attribute in node.attribute if attribute.HasField("g")]
    declared = {value.name: value for value in proto.graph.input}
    for output in proto.graph.output:
        source = IDS if output.name == LOG_PROBS else output.name.removeprefix("new_")
        dims = output.type.tensor_type.shape.dim
        for dim, like in zip(dims, declared[source].type.tensor_type.shape.dim):
            if like.dim_param != PAST:
                dim.CopyFrom(like)


def _onnx():
    """The ``onnx`` module, and a user error naming the extra to install where it or ``onnxscript`` (which
    torch.onnx's dynamo exporter runs on) is missing."""
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise UserError(f"rnnlm export needs the onnx and onnxscript packages ({err.name} is missing): "
                        "pip install -e '.[export]'") from None
    return onnx


def export_onnx(model, vocab, onnx_path, source=None):
    """Write ``model`` (any kind; its ``vocab``) as ``onnx_path`` and its description as the ``.json``
    beside it. Returns the description (the JSON's content)."""
    onnx = _onnx()
    onnx_path = Path(onnx_path)
    graph_model = exportable(model)
    names = list(model.state_names)
    axes = state_axes(model)
    batch, time, past = torch.export.Dim(BATCH), torch.export.Dim(TIME), torch.export.Dim(PAST)
    dynamic = ({0: batch, 1: time},
               tuple({b: batch, **{g: past for g in growing}} for b, growing in axes))
    ids, state = _example_inputs(model, len(vocab))
    outputs = [f"new_{name}" for name in names]
    # The exporter's progress lines, its torch-internal deprecation warnings and the notes on optional
    # torchvision ops are not the user's to act on: the command prints its own summary.
    # torch.onnx gives aten.lstm and aten.gru while-loop decompositions (a dynamic time axis) for the
    # length of an export, but leaves the ops' dispatch caches as the previous export filled them, with
    # the unrolled decomposition: a second LSTM or GRU export in one process would pin the time axis to
    # the example's length (torch 2.13; tests/test_export.py exports twice). Start from empty caches.
    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        op._dispatch_cache.clear()
    with warnings.catch_warnings(), _quiet("torch.onnx", "torch.export", "torch._dynamo"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(NextTokenLogProbs(graph_model), (ids, *state), dynamo=True, verbose=False,
                                    input_names=[IDS, *names], output_names=[LOG_PROBS, *outputs],
                                    dynamic_shapes=dynamic, external_data=False)
    proto = program.model_proto
    _declare_dynamic_outputs(proto)
    onnx.checker.check_model(proto)
    write_bytes(onnx_path, proto.SerializeToString())

    def shapes(values):
        return [{"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                 "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]} for v in values]

    description = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "onnx": onnx_path.name,
        "source": None if source is None else str(source), "kind": model.config.kind, "stream": vocab.stream,
        "model_config": model.config.to_dict(),
        "opset": next(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")),
        "inputs": shapes(proto.graph.input), "outputs": shapes(proto.graph.output),
        "state": [{"input": name, "output": out, "initial": spec}
                  for name, out, spec in zip(names, outputs, initial_state_spec(model, axes))],
        "special_ids": {"pad": vocab.pad_id, "unk": vocab.unk_id, "bos": vocab.bos_id, "eos": vocab.eos_id},
        "vocabulary": vocab.to_dict(),
    }
    write_json(onnx_path.with_suffix(".json"), description)
    return description


class _quiet:
    """Raise the level of some loggers to ERROR for a while."""

    def __init__(self, *names):
        self.loggers = [logging.getLogger(name) for name in names]

    def __enter__(self):
        self.levels = [logger.level for logger in self.loggers]
        for logger in self.loggers:
            logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for logger, level in zip(self.loggers, self.levels):
            logger.setLevel(level)
