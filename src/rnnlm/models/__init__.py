"""Every model kind behind one contract (``rnnlm.models.base``), one module per family:

- ``recurrent``: ``rnn_scratch`` (a hand-written tanh cell), ``rnn``, ``gru``, ``lstm``;
- ``window``: ``mlp``, the fixed-window neural LM of Bengio et al. (2003);
- ``transformer``: ``transformer``, a small decoder-only Transformer.

Which class builds which kind is ``rnnlm.kinds.MODEL_CLASSES``, the one registry of kinds.
"""

import importlib

from ..kinds import MODEL_CLASSES, check_model_kind
from .base import (AdaptiveOutput, LanguageModel, LockedDropout, ModelConfig, make_dropout, state_losses,
                   stream_losses, token_losses)
from .recurrent import ScratchRNN, TanhRNNCell

__all__ = ["AdaptiveOutput", "LanguageModel", "LockedDropout", "ModelConfig", "ScratchRNN", "TanhRNNCell",
           "build_model", "make_dropout", "model_class", "state_losses", "stream_losses", "token_losses"]


def model_class(kind):
    """The LanguageModel subclass that builds ``kind``."""
    module, name = MODEL_CLASSES[check_model_kind(kind)].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def build_model(config: ModelConfig):
    return model_class(config.kind)(config)
