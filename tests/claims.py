"""The spread between training seeds that README's claims must clear (tests/test_claims.py).

For each model, the largest of (highest - lowest) seed's dev loss and (highest - lowest) seed's test
loss over seeds 0, 1 and 2, in nats, rounded up to 1e-4. Measured with the default params and

    dvc exp run --temp -n seeds3 -S 'train.names.seeds=[0,1,2]' -S 'train.news.seeds=[0,1,2]' \\
        -S 'train.shakespeare.seeds=[0,1,2]' evaluate mixture

on the development machine (2-core AMD EPYC, 2026-12-05): the ``seeds`` block of each metrics file
of that experiment (``dvc exp show --json``). docs/experiments.md ("Several seeds") gives the ranges.
A retuned model needs this measured again: its spread is its own.
"""

SEED_SPREAD = {
    "names": {"lstm+transformer+ngram": 0.0037, "lstm": 0.0053, "rnn_scratch": 0.0030, "transformer": 0.0069,
              "mlp": 0.0022, "ngram": 0.0},  # the n-gram is counted, not trained: no seed
    "news": {"lstm+transformer+ngram": 0.0096, "lstm": 0.0216, "transformer": 0.0163, "mlp": 0.0167,
             "ngram": 0.0},
    "shakespeare": {"lstm+ngram": 0.0060, "lstm": 0.0148, "ngram": 0.0},
}
