"""How far a reproduced metric may move, and how wide a gap a claim must clear: the one place for both.

``rnnlm check-metrics`` (the CI gate) compares each reproduced value with the committed one by
:func:`within` (one rule, here). A rerun on the same machine reproduces every metric bit for bit;
another CPU's vector units round the last bits differently, and what that does depends on the model:

- **Reproducible models** (every n-gram and mixture weight; the names LSTM, hand-written RNN and
  Transformer; the news LSTM and GRU): under other CPUs' kernels (emulated SSE4, AVX2) their metrics
  moved by <= 1e-5 relative (docs/reproducibility.md, "How far metrics move between CPUs"). They keep
  the tight relative table ``RTOL`` (a loss 1e-3, an accuracy 2e-3, ...): ``|new - old| <= atol + rtol
  * |old|``.
- **Chaotic models** (``CHAOTIC``): those whose training another CPU's rounding measurably moved, as
  another seed would: Shakespeare's LSTM (2,400 steps at a learning rate peaking at 8e-3; its test
  loss moved 7e-3 relative), its mixture, their training progress and samples; the names GRU and the
  news RNN (losses 1e-4, accuracy up to 7e-3 relative under SSE4 kernels). Their losses get an
  ABSOLUTE band in nats per split, ``LOSS_SPREAD_FACTOR`` (1.5) times that model's seed spread on
  that split (``rnnlm.seed_spread``); their other values follow the model: a perplexity through its
  log (the loss band), bits/char the loss band / ln 2 (char level: one token per character;
  word level: a bound, as a word is several characters), and accuracy, mixture weights, chosen
  epoch and training losses 1.5 x their own seed spread (``CHAOTIC_BANDS``).

A value is judged by its name (the last key; for ``mean``/``min``/``max`` of a spread over seeds,
the metric they summarize, without its split: ``seeds.test_loss.mean`` -> ``loss``; for an entry of a
mapping such as ``weights`` or ``dev_loss_by_order``, that mapping's name) and its split (``dev``,
``test``, ``dev_test``: a key's part, or the prefix of ``test_loss``). A perplexity = exp(loss) is
judged through its logarithm, the loss: ``|ln new - ln old| <= band of the loss``.

A README claim rests on a gap no change the gate passes can close, nor a seed: per split,
:func:`claim_margin` = max(2 x the larger seed spread of the two models, the sum of their gate
bands :func:`gate_band`), in nats.
"""

import fnmatch
import math
from typing import NamedTuple

from .seed_spread import OTHER_SPREAD, seed_spread

# Measured drift between CPUs of the reproducible models, with a margin (docs/reproducibility.md).
RTOL = {
    # losses in nats per token, and bits per character (the same total in other units)
    "loss": 1e-3, "train_loss": 1e-3, "dev_loss": 1e-3, "bits_per_char": 1e-3, "dev_loss_by_order": 1e-3,
    # next-token accuracy: a flipped argmax moves it by 1 / tokens
    "accuracy": 2e-3, "accuracy_without_unk": 2e-3,
    # the mixture's weights, fit by EM on dev losses
    "weights": 5e-3,
    # counts from the data alone, and the n-gram's discounts from counts of counts: float64, exact up to rounding
    "oov_rate": 1e-9, "oov_char_share": 1e-9, "discounts": 1e-9,
}
LOG_RULE = ("perplexity",)         # judged through ln(value), with the loss's band
DEFAULT_RTOL = 1e-3
SPLITS = ("dev_test", "dev", "test")
SPLIT_PREFIXES = ("dev_test_", "dev_", "test_")   # seeds.dev_loss -> loss
SUMMARY_LEAVES = ("mean", "std", "min", "max")


class Band(NamedTuple):
    """``|new - old| <= atol + rtol * |old|``, in the value's own units."""
    atol: float = 0.0
    rtol: float = 0.0


# Chaotic models: the metrics file -> (corpus, model) whose seed spread sets its losses' band.
CHAOTIC = {
    "metrics/names/neural/gru.json": ("names", "gru"),
    "metrics/news/neural/rnn.json": ("news", "rnn"),
    "metrics/news/samples/rnn.json": ("news", "rnn"),
    "metrics/shakespeare/neural/lstm.json": ("shakespeare", "lstm"),
    "metrics/shakespeare/mixture.json": ("shakespeare", "lstm+ngram"),
    "metrics/shakespeare/training.json": ("shakespeare", "lstm"),
    "metrics/shakespeare/samples/lstm.json": ("shakespeare", "lstm"),
}
LOSS_SPREAD_FACTOR = 1.5       # a chaotic model's loss may move 1.5 x its seed spread on that split
LOSS_FOLLOWERS = ("loss", "perplexity", "bits_per_char")   # judged by the loss band (perplexity: its log)

# The other values of a chaotic model's files follow the model: 1.5 x their own spread over the same three
# seeds (rnnlm.seed_spread.OTHER_SPREAD), per split where they have one: accuracy, the mixture's weights,
# the last epoch's training loss (its dev loss is the model's dev loss). The chosen epoch: all three seeds kept
# the last of 3 epochs (one-cycle ends there); one epoch either way. Sample statistics keep the gate's
# sampling rule (k standard errors of n samples), long lines (a count of 3 samples) 10% of the committed count.
def _follow(corpus, model):
    other = OTHER_SPREAD[corpus][model]
    per_split = lambda spreads: {split: Band(atol=LOSS_SPREAD_FACTOR * v) for split, v in spreads.items()}
    bands = {"best_epoch": Band(atol=1), "epochs_done": Band(atol=1), "epoch": Band(atol=1)}
    if "accuracy" in other:
        bands |= {"accuracy": per_split(other["accuracy"]), "accuracy_without_unk": per_split(other["accuracy"])}
    if "weights" in other:
        bands["weights"] = Band(atol=LOSS_SPREAD_FACTOR * other["weights"])
    if "train_loss" in other:
        bands |= {"train_loss": Band(atol=LOSS_SPREAD_FACTOR * other["train_loss"]),
                  "dev_loss": Band(atol=LOSS_SPREAD_FACTOR * seed_spread(corpus, model, "dev"))}
    return bands


CHAOTIC_BANDS = {
    "metrics/names/neural/gru.json": _follow("names", "gru"),
    "metrics/news/neural/rnn.json": _follow("news", "rnn"),
    "metrics/shakespeare/neural/lstm.json": _follow("shakespeare", "lstm"),
    "metrics/shakespeare/mixture.json": _follow("shakespeare", "lstm+ngram"),
    "metrics/shakespeare/training.json": {name: band for name, band in _follow("shakespeare", "lstm").items()
                                          if name in ("train_loss", "dev_loss", "epoch")},
    "metrics/shakespeare/samples/lstm.json": {"long_lines": Band(rtol=0.1)},
}

CLAIM_SPREAD_FACTOR = 2    # a claim's gap: at least twice the larger seed spread of its two models ...
# ... and at least the sum of what the gate lets the two losses move (gate_band)


def metric_name(key):
    """The name a dotted metrics key is judged by (see the module docstring)."""
    parts = str(key).split(".")
    name = parts[-1]
    if len(parts) > 1 and (name in SUMMARY_LEAVES or name not in RTOL and parts[-2] in RTOL):
        name = parts[-2]
    if name not in RTOL and name not in LOG_RULE:
        for prefix in SPLIT_PREFIXES:
            if name.startswith(prefix) and name.removeprefix(prefix) in RTOL.keys() | set(LOG_RULE):
                return name.removeprefix(prefix)
    return name


def split_of(key):
    """The split a dotted key's value is measured on (``test.loss``, ``seeds.test_loss.mean`` -> test),
    None if it names none."""
    for part in str(key).split("."):
        if part in SPLITS:
            return part
        for prefix in SPLIT_PREFIXES:
            if part.startswith(prefix):
                return prefix.removesuffix("_")
    return None


def _matches(path, pattern):
    path = str(path).replace("\\", "/")
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, f"*/{pattern}")


def _by_path(table, path, missing):
    """The entry of ``table`` (metrics-file glob -> value) whose glob matches ``path``, else ``missing``."""
    if path is not None:
        for pattern, value in table.items():
            if _matches(path, pattern):
                return value
    return missing


def chaotic_model(path):
    """``(corpus, model)`` whose seed spread bands the losses of the metrics file at ``path``; None for a
    reproducible model's file."""
    return _by_path(CHAOTIC, path, None)


def _own_bands(path):
    return _by_path(CHAOTIC_BANDS, path, {})


def own_band(key, path):
    """The ``Band`` ``CHAOTIC_BANDS`` gives the value at ``key`` of a chaotic model's file, else None (a band
    per split: the key's split's; a key without one gets the widest)."""
    own = _own_bands(path).get(metric_name(key))
    if isinstance(own, dict):
        split = split_of(key)
        return own[split] if split in own else max(own.values(), key=lambda b: b.atol)
    return own


def model_sample_band(name, path):
    """What a chaotic model's sample statistic ``name`` may move beyond its sampling band: another CPU's
    model samples like another seed's, so 1.5 x that statistic's spread over the seeds' models
    (``OTHER_SPREAD[...]["samples"]``); 0 for a reproducible model's file or a statistic not measured."""
    chaotic = chaotic_model(path)
    if chaotic is None:
        return 0.0
    corpus, model = chaotic
    return LOSS_SPREAD_FACTOR * OTHER_SPREAD.get(corpus, {}).get(model, {}).get("samples", {}).get(name, 0.0)


def is_chaotic(corpus, model):
    return (corpus, model) in CHAOTIC.values()


def gate_band(corpus, model, split, loss):
    """The gap in nats a loss of ``model`` (a kind, ``ngram`` or a mixture's name such as ``lstm+ngram``)
    on ``split`` of ``corpus`` may move under the gate: ``RTOL["loss"] * loss`` for a reproducible model,
    ``LOSS_SPREAD_FACTOR`` x its seed spread on that split for a chaotic one."""
    if is_chaotic(corpus, model):
        return LOSS_SPREAD_FACTOR * seed_spread(corpus, model, split)
    return RTOL["loss"] * abs(loss)


def _loss_band(key, loss, path):
    """What a loss (nats) at ``key`` of the file at ``path`` may move: its table's rtol x loss for a
    reproducible model (a perplexity's and bits/char's: the loss's), :func:`gate_band` for a chaotic one. A
    key without a split (compare's bare ``loss``) gets the larger of the model's dev and test bands."""
    chaotic, name = chaotic_model(path), metric_name(key)
    if chaotic is None:
        return RTOL.get("loss" if name in LOG_RULE else name, DEFAULT_RTOL) * abs(loss)
    split = split_of(key)
    splits = [split] if split is not None else ["dev", "test"]
    return max(gate_band(*chaotic, s, loss) for s in splits)


def band(key, old, path=None, rtol=None):
    """``Band``-like half-width: how far the value at dotted ``key`` of the metrics file at ``path``,
    committed as ``old``, may move (for a perplexity: how far its logarithm may). ``rtol`` overrides
    the tables (``check-metrics --rtol``): ``rtol * |old|`` (a perplexity: ``rtol * |ln old|``)."""
    name = metric_name(key)
    if rtol is not None:
        return rtol * abs(math.log(old) if name in LOG_RULE and old > 0 else old)
    own = own_band(key, path)
    if own is not None:
        return own.atol + own.rtol * abs(old)
    if name == "loss":
        return _loss_band(key, old, path)
    if name in LOG_RULE:
        return _loss_band(key, math.log(old), path) if old > 0 else 0.0
    if name == "bits_per_char":  # loss / ln 2 (char level: one token per character)
        return _loss_band(key, old * math.log(2), path) / math.log(2)
    return RTOL.get(name, DEFAULT_RTOL) * abs(old)


def rtol_of(key, path=None):
    """The relative tolerance of the value at dotted ``key`` of a reproducible model's file (a perplexity:
    its loss's); a chaotic model's losses have an absolute band instead (:func:`band`)."""
    name = metric_name(key)
    own = own_band(key, path)
    if own is not None and not own.atol:
        return own.rtol
    return RTOL["loss"] if name in LOG_RULE else RTOL.get(name, DEFAULT_RTOL)


def within(key, old, new, atol=1e-6, rtol=None, path=None):
    """``(ok, relative change)`` of one value: ``|new - old| <= atol + band(key, old, path)`` (a perplexity:
    ``|ln new - ln old| <= band``); ``rtol`` overrides the tables. The gate's rule, and the only one."""
    limit = band(key, old, path, rtol)
    if metric_name(key) in LOG_RULE and old > 0 and new > 0 and old != 1:
        moved = abs(math.log(new) - math.log(old))
        return moved <= limit, moved / abs(math.log(old))
    change = abs(new - old) / abs(old) if old else (0.0 if new == old else math.inf)
    return abs(new - old) <= atol + limit, change


def claim_margin(corpus, a, b, split, loss_a, loss_b):
    """The smallest gap (nats) between ``a``'s and ``b``'s losses on ``split`` a claim may rest on:
    max(``CLAIM_SPREAD_FACTOR`` x the larger seed spread of the two, the sum of their gate bands), so
    neither a seed nor any change the gate passes can reverse it. A model without a measured spread
    raises ``rnnlm.seed_spread.MissingSpread``."""
    spread = max(seed_spread(corpus, a, split), seed_spread(corpus, b, split))
    return max(CLAIM_SPREAD_FACTOR * spread, gate_band(corpus, a, split, loss_a) + gate_band(corpus, b, split, loss_b))
