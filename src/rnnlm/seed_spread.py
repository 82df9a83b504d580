"""How far a model's losses move between training seeds: one table, read by the gate and the claims.

``SEED_SPREAD[corpus][model][split]``: highest minus lowest loss in nats over seeds 0, 1 and 2 of the
default params, on that split. Measured with

    dvc exp run --temp -n seeds3 -S 'train.names.seeds=[0,1,2]' -S 'train.news.seeds=[0,1,2]' \\
        -S 'train.shakespeare.seeds=[0,1,2]' evaluate mixture

(the ``seeds`` block of each metrics file of that experiment, ``dvc exp show --json``;
docs/experiments.md, "Several seeds", gives the ranges). A stream's models (Shakespeare) are also
scored on dev ∪ test; its ``dev_test`` entry is max(dev, test), not measured (a loss over the union
is a token-weighted mean of the two, so it cannot spread more than the larger). The n-gram is
counted, not trained: no seed, spread 0. A retuned or new model needs its own measurement: a model
missing here is an error (:func:`seed_spread`), never a silent 0.

Used by ``rnnlm.tolerances`` (the gate's band of a chaotic model's losses, and the margin a README
claim must clear) and tests/test_claims.py.
"""

SPLITS = ("dev", "test")
NGRAM = {"dev": 0.0, "test": 0.0}  # counted, not trained


def _stream(dev, test):
    """A stream model's spreads: dev ∪ test's is max(dev, test) (see the module docstring)."""
    return {"dev": dev, "test": test, "dev_test": max(dev, test)}


SEED_SPREAD = {
    "names": {
        "lstm+transformer+ngram": {"dev": 0.0037, "test": 0.0016},
        "lstm": {"dev": 0.0052, "test": 0.0018},
        "rnn_scratch": {"dev": 0.0021, "test": 0.0029},
        "transformer": {"dev": 0.0068, "test": 0.0029},
        "mlp": {"dev": 0.0013, "test": 0.0022},
        "ngram": NGRAM,
    },
    "news": {
        "lstm": {"dev": 0.0216, "test": 0.0059},
        "transformer": {"dev": 0.0162, "test": 0.0114},
        "mlp": {"dev": 0.0167, "test": 0.0046},
        "ngram": NGRAM,
    },
    "shakespeare": {
        "lstm": _stream(0.0078, 0.0147),
        "lstm+ngram": _stream(0.0059, 0.0019),
        "ngram": _stream(0.0, 0.0),
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
