"""How far a reproduced metric may move, and how wide a gap a claim must clear: the one place for both.

``rnnlm check-metrics`` (the CI gate) compares each reproduced value with the committed one. A rerun
on the same machine reproduces every metric bit for bit; another CPU's vector units round the last
bits of each float operation differently, and training amplifies that a little. The tolerances
below are that drift, measured (docs/reproducibility.md, "How far metrics move between CPUs":
every stage rerun with another CPU's kernels, each metric's largest relative change over every
model and corpus), with a margin, so the gate passes a rerun on any x86-64 CPU and fails a change
of the code that moves a number by more.

Training can amplify that rounding: a long run at a high learning rate ends, on another CPU, in a
model that scores like another seed's. Files whose values were measured to move more than the table
allows get their own, larger tolerances in ``RTOL_BY_FILE`` (a glob of the metrics file's path), each
with the measurement behind it; every other file keeps ``RTOL``.

A value is judged by its name (the last key; for ``mean``/``min``/``max`` of a spread over seeds,
the metric they summarize, without its split: ``seeds.test_loss.mean`` -> ``loss``; for an entry of
a mapping such as ``weights`` or ``dev_loss_by_order``, that mapping's name):

- ``RTOL[name]``: ``|new - old| <= atol + rtol * |old|``;
- ``perplexity`` = exp(loss) is judged through its logarithm, the loss: ``|ln new - ln old| <=
  RTOL["loss"] * |ln old|``, so a word-level perplexity (loss ~5.3) gets the loss's tolerance and
  not five times it;
- every other number: ``DEFAULT_RTOL``.

A README claim ("A beats B by more than X") rests on a gap the gate protects: at least
``CLAIM_GATE_FACTOR`` times the loss tolerance (so no change the gate lets through can reverse it)
and ``CLAIM_SPREAD_FACTOR`` times the measured spread between training seeds
(:func:`claim_margin`). Tests of the claims take their margins from here.
"""

import fnmatch
import math

# Measured drift between CPUs, with a margin (docs/reproducibility.md gives the figures).
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
# Metrics files whose models another CPU's rounding turns into measurably different ones (docs/reproducibility.md,
# "How far metrics move between CPUs"). Shakespeare's LSTM trains 2,400 steps with a one-cycle peak of 8e-3: under
# generic ATen kernels and oneDNN/MKL at SSE4 (the emulated other CPU) its dev loss moved 8.5e-5 but its test loss
# 6.9e-3 relative (1.5249 -> 1.5355), its accuracy 2.5e-3 and the mixture's n-gram weight 2.5e-3; evaluating one
# set of weights under either kernel set agrees to 1e-8, so the training, not the scoring, moved. Twice those:
CHAOTIC_TRAINING = {"loss": 1.5e-2, "bits_per_char": 1.5e-2, "train_loss": 3e-3, "dev_loss": 3e-3,
                    "accuracy": 5e-3, "weights": 5e-3}
RTOL_BY_FILE = {
    "metrics/shakespeare/neural/*.json": CHAOTIC_TRAINING,
    "metrics/shakespeare/mixture.json": CHAOTIC_TRAINING,
    "metrics/shakespeare/training.json": CHAOTIC_TRAINING,
}
LOG_RULE = ("perplexity",)         # judged through ln(value), with the loss's tolerance
DEFAULT_RTOL = 1e-3
SPLIT_PREFIXES = ("dev_test_", "dev_", "test_")   # seeds.dev_loss -> loss
SUMMARY_LEAVES = ("mean", "std", "min", "max")

CLAIM_GATE_FACTOR = 5      # a claim's gap: at least 5 x what the gate lets a loss move ...
CLAIM_SPREAD_FACTOR = 2    # ... and twice the spread between training seeds


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


def table_of(path=None):
    """The tolerances of the metrics file at ``path`` (its own where ``RTOL_BY_FILE`` names it)."""
    for pattern, own in RTOL_BY_FILE.items():
        if path is not None and fnmatch.fnmatch(str(path), pattern):
            return RTOL | own
    return RTOL


def rtol_of(key, path=None):
    """The relative tolerance of the value at dotted ``key`` of the metrics file at ``path`` (a
    perplexity: its loss's)."""
    name, table = metric_name(key), table_of(path)
    return table["loss"] if name in LOG_RULE else table.get(name, DEFAULT_RTOL)


def within(key, old, new, atol=1e-6, rtol=None, path=None):
    """``(ok, relative change as the rule measures it)`` of one value; ``rtol`` overrides the table."""
    tol = rtol_of(key, path) if rtol is None else rtol
    if metric_name(key) in LOG_RULE and old > 0 and new > 0 and old != 1:
        change = abs(math.log(new) - math.log(old)) / abs(math.log(old))
        return change <= tol, change
    change = abs(new - old) / abs(old) if old else (0.0 if new == old else math.inf)
    return abs(new - old) <= atol + tol * abs(old), change


def claim_margin(value, spread=0.0, rtol=None):
    """The smallest gap (in the units of ``value``, a loss) a claim about ``value`` may rest on: five
    times what the gate lets ``value`` move (``rtol``: its file's loss tolerance, default the table's),
    and twice the measured spread between seeds."""
    rtol = RTOL["loss"] if rtol is None else rtol
    return max(CLAIM_GATE_FACTOR * rtol * abs(value), CLAIM_SPREAD_FACTOR * spread)
