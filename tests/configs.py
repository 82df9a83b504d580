"""Configs for the unit tests, built from their own fixture params (``tests/fixture_params.yaml``).

``train_config(embedding_size=8)`` is the fixture's ``train.names`` with that key changed, validated
as a stage validates it, so a test states only what it changes. The fixture is not params.yaml:
retuning the pipeline changes no unit test. It is validated here, section by section, with the
stages' own schema (``rnnlm.schema``), which has no defaults: a key the schema gains or loses fails
here as it fails in params.yaml. Tests whose point is the pipeline's own settings (tests/test_docs.py,
tests/test_pipeline.py, tests/test_seed_parity.py, the shrunken pipelines that copy the project)
read params.yaml themselves.
"""

from pathlib import Path

import yaml

from rnnlm.new_corpus import SECTIONS  # section -> (its schema, one entry per corpus or one for all)
from rnnlm.schema.generate import GenerateConfig
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.mixture import MixtureConfig
from rnnlm.schema.ngram import NgramConfig
from rnnlm.schema.pipeline import Pipeline
from rnnlm.schema.split import SplitConfig
from rnnlm.schema.tokenization import TokenizationConfig
from rnnlm.schema.train import TrainConfig
from rnnlm.schema.vocab import VocabConfig

FIXTURE_PARAMS = Path(__file__).resolve().with_name("fixture_params.yaml")


def validated(params):
    """``params`` (a parsed params file) if every section passes the stages' schema, as the stages apply it."""
    corpora = Pipeline.of(params).corpora
    if set(params) != {"corpora", "kinds", *SECTIONS}:
        raise ValueError(f"{FIXTURE_PARAMS}: sections {sorted(params)}, expected corpora, kinds, {', '.join(SECTIONS)}")
    for name, (cls, per_corpus) in SECTIONS.items():
        if per_corpus:
            if set(params[name]) != set(corpora):
                raise ValueError(f"{FIXTURE_PARAMS}: {name} needs one entry per corpus ({', '.join(corpora)})")
            for corpus in corpora:
                cls.from_params(params[name][corpus], f"{name}.{corpus}")
        else:
            cls.from_params(params[name], name)
    return params


PARAMS = validated(yaml.safe_load(FIXTURE_PARAMS.read_text(encoding="utf-8")))


def params_section(name, corpus="names"):
    """The fixture's ``name.corpus`` (or ``name`` for a section shared by the corpora) as a new dict."""
    data = PARAMS[name]
    return dict(data[corpus] if SECTIONS[name][1] else data)


def _config(cls, name):
    def build(corpus="names", **changes):
        return cls.from_params(params_section(name, corpus) | changes, f"{name}.{corpus}")
    build.__doc__ = f"The fixture's ``{name}.<corpus>`` as a {cls.__name__}, with ``changes`` applied."
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
