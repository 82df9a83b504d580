"""The model kinds: every name ``params.yaml``'s ``kinds`` may list, and the class that builds it.

This is the one registry of kinds. It imports no torch, so the params schema (``rnnlm.schema``)
takes its names from here, and ``rnnlm.models.build_model`` imports the class a name points to
only when a model is built. A new kind is a class in a module of ``rnnlm.models`` and one line
below. The data stages (ingest, split, vocab) never import this module, so adding a kind leaves
them up to date.
"""

from typing import Literal

from .errors import UserError

# kind -> "module:Class" inside rnnlm.models
MODEL_CLASSES = {
    "rnn_scratch": "recurrent:RecurrentLM",   # the hand-written tanh cell
    "rnn": "recurrent:RecurrentLM",           # torch.nn.RNN
    "gru": "recurrent:RecurrentLM",
    "lstm": "recurrent:RecurrentLM",
    "mlp": "window:FixedWindowLM",            # Bengio et al. 2003: a fixed window of embeddings
    "transformer": "transformer:TransformerLM",  # decoder-only, causal self-attention
}
MODEL_KINDS = tuple(MODEL_CLASSES)
ModelKind = Literal[MODEL_KINDS]  # the type of a kind in the params schema


# the kinds that carry a state from one chunk of a stream into the next (a neural cache reads those states)
STATEFUL_KINDS = tuple(kind for kind, where in MODEL_CLASSES.items() if where.startswith("recurrent:"))


def check_model_kind(kind):
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return kind
