"""How far a model's metrics move between training seeds: one table, read by the gate and the claims.

``SEED_SPREAD[corpus][model][split]``: highest minus lowest loss in nats over seeds 0, 1 and 2 of the
default params, on that split, rounded up to 1e-4. Seed 0 is the committed default run; seeds 1 and 2
were trained with the same params and code (development machine, 2-core AMD EPYC with AVX-512,
2026-12-07), in a copy of the project with ``train.<corpus>.seeds: [1, 2]`` and the kinds to measure,
then ``dvc repro evaluate@<corpus> mixture@<corpus>`` (the ``seeds`` block of each metrics file gives
seeds 1 and 2; docs/experiments.md, "Several seeds", gives the ranges and the command). Entries marked
2026-12-05 were measured in the previous release with the same recipe on the same splits (names and
news train reproducibly: the names LSTM and Transformer measured again here gave the same ranges).

A stream's models (Shakespeare) are also scored on dev ∪ test, measured like the rest. The n-gram is
counted, not trained: no seed, spread 0. A retuned or new model needs its own measurement: a model
missing here is an error (:func:`seed_spread`), never a silent 0.

``OTHER_SPREAD``: the same runs' spread of the other values of the chaotic models' files
(``rnnlm.tolerances.CHAOTIC``): accuracy per split, the mixture's weights (the largest over its
components), the last epoch's training loss. Their gate bands follow the model: 1.5 x these.

Used by ``rnnlm.tolerances`` (the gate's band of a chaotic model's values, and the margin a README
claim must clear) and tests/test_claims.py.
"""

SPLITS = ("dev", "test")
NGRAM = {"dev": 0.0, "test": 0.0}  # counted, not trained


SEED_SPREAD = {
    "names": {
        "lstm+transformer+ngram": {"dev": 0.0037, "test": 0.0015},
        "rnn_scratch": {"dev": 0.0021, "test": 0.0029},   # 2026-12-05
        "gru": {"dev": 0.0080, "test": 0.0031},
        "lstm": {"dev": 0.0053, "test": 0.0019},
        "transformer": {"dev": 0.0069, "test": 0.0029},
        "mlp": {"dev": 0.0013, "test": 0.0022},           # 2026-12-05 (not in the default run)
        "ngram": NGRAM,
    },
    "news": {
        "lstm+gru+ngram": {"dev": 0.0122, "test": 0.0093},
        "rnn": {"dev": 0.0126, "test": 0.0095},
        "gru": {"dev": 0.0138, "test": 0.0126},             # tied (train.news.overrides.gru)
        "lstm": {"dev": 0.0216, "test": 0.0060},
        "transformer": {"dev": 0.0162, "test": 0.0114},   # 2026-12-05 (not in the default run)
        "mlp": {"dev": 0.0167, "test": 0.0046},           # 2026-12-05 (not in the default run)
        "ngram": NGRAM,
    },
    "shakespeare": {
        "lstm": {"dev": 0.0078, "test": 0.0148, "dev_test": 0.0040},
        "lstm+ngram": {"dev": 0.0054, "test": 0.0023, "dev_test": 0.0035},
        "ngram": {"dev": 0.0, "test": 0.0, "dev_test": 0.0},
    },
}

OTHER_SPREAD = {
    "names": {"gru": {"accuracy": {"dev": 0.0038, "test": 0.0014}}},
    # samples: the generate stage's statistics of each seed's model (10 samples each): another CPU's model
    # samples like another seed's, on top of the sampling noise (rnnlm.tolerances.model_sample_band)
    "news": {"rnn": {"accuracy": {"dev": 0.0035, "test": 0.0015},
                     "samples": {"mean_length": 14.8, "std_length": 9.8}}},
    "shakespeare": {
        "lstm": {"accuracy": {"dev": 0.0050, "test": 0.0029, "dev_test": 0.0037}, "train_loss": 0.0097},
        "lstm+ngram": {"accuracy": {"dev": 0.0024, "test": 0.0014, "dev_test": 0.0010}, "weights": 0.0213},
    },
}


class MissingSpread(KeyError):
    """No measured seed spread for a model (or split): measure it and add it to ``SEED_SPREAD``."""

    def __str__(self):
        return self.args[0]


def seed_spread(corpus, model, split):
    """The measured seed spread (nats) of ``model``'s loss on ``split`` of ``corpus``; ``MissingSpread``
    where the table lacks it."""
    entry = SEED_SPREAD.get(corpus, {}).get(model)
    if entry is None:
        raise MissingSpread(f"no seed spread measured for {corpus}/{model}: add it to rnnlm.seed_spread.SEED_SPREAD "
                            "(max - min loss over seeds 0, 1, 2 of the default, per split)")
    if split not in entry:
        raise MissingSpread(f"no seed spread for {corpus}/{model} on {split!r} (it has {sorted(entry)}): "
                            "add it to rnnlm.seed_spread.SEED_SPREAD")
    return entry[split]
