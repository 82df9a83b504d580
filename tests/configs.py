"""Configs for the tests, built from the repository's params.yaml (the one source of defaults).

``train_config(embedding_size=8)`` is ``train.names`` with that key changed, validated as a stage
validates it, so a test states only what it changes and a key params.yaml drops fails here too.
"""

from pathlib import Path

import yaml

from rnnlm.schema.generate import GenerateConfig
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.mixture import MixtureConfig
from rnnlm.schema.ngram import NgramConfig
from rnnlm.schema.split import SplitConfig
from rnnlm.schema.tokenization import TokenizationConfig
from rnnlm.schema.train import TrainConfig
from rnnlm.schema.vocab import VocabConfig

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text(encoding="utf-8"))


def params_section(name, corpus="names"):
    """``params.yaml``'s ``name.corpus`` (or ``name`` for a section shared by the corpora) as a new dict."""
    data = PARAMS[name]
    return dict(data[corpus] if corpus in data else data)


def _config(cls, name):
    def build(corpus="names", **changes):
        return cls.from_params(params_section(name, corpus) | changes, f"{name}.{corpus}")
    build.__doc__ = f"``{name}.<corpus>`` of params.yaml as a {cls.__name__}, with ``changes`` applied."
    return build


ingest_config = _config(IngestConfig, "ingest")
split_config = _config(SplitConfig, "split")
vocab_config = _config(VocabConfig, "vocab")
tokenization_config = _config(TokenizationConfig, "tokenization")
train_config = _config(TrainConfig, "train")
generate_config = _config(GenerateConfig, "generate")
ngram_config = _config(NgramConfig, "ngram")
mixture_config = _config(MixtureConfig, "mixture")


# The plain recipe the toy runs were written for (no dropout, Adam at a constant 1e-3, no weight decay):
# tests that compare training paths or reproduce numbers state it instead of taking train.names' tuning.
PLAIN_TRAIN = dict(dropout=0.0, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none", max_len=256)


def replaced(cfg, **changes):
    """``cfg`` with ``changes``, validated (``model_copy(update=...)`` would check nothing)."""
    return cfg.updated(changes)
