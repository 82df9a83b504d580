"""A recurrent model and the Kneser-Ney n-gram model mixed token by token.

At every predicted position the mixture's distribution over the vocabulary is the linear
interpolation of the two models' full distributions::

    P_mix(w | h) = λ · P_rnn(w | h) + (1 − λ) · P_kn(w | h),      0 ≤ λ ≤ 1

so it is itself a language model (each row sums to 1) and is scored with the metrics every model
reports: loss = mean −log P_mix(target), perplexity, accuracy = argmax of the mixed distribution,
bits per character. The two models err differently (the n-gram remembers exact local phrases, the
recurrent model generalizes over longer contexts), which is why the mixture beats both.

λ is fit on the dev split only: it maximizes the dev log-likelihood ``Σ log(λ·p_rnn + (1 − λ)·p_kn)``
of the targets' probabilities under both models. That function is concave in λ (a sum of logs of
affine functions), so its maximum on [0, 1] is an end point or the one root of its derivative
``Σ (p_rnn − p_kn) / P_mix``, which decreases in λ; Brent's method finds that root to 1e-12. This is
the same maximum the classic EM update ``λ ← mean(λ·p_rnn / P_mix)`` converges to, found exactly and
in a few dozen steps. Test data never enters the choice.

Positions are visited item by item in the split's order, the same targets (every token after an
item's <s>) that :func:`rnnlm.evaluation.evaluate_split` and :meth:`KneserNeyLM.evaluate` score.
Full distributions are (positions, V) float64 arrays, built in chunks of at most ``max_cells``
entries (news: V ≈ 8.4k, so a few hundred positions per chunk), so memory stays small.
"""

import math

import numpy as np
import torch
from scipy.optimize import brentq

from .data import make_batch
from .devices import to_device
from .evaluation import summarize
from .models import token_losses
from .ngram import MAX_CELLS, item_chunks


@torch.no_grad()
def _rnn_outputs(model, split, indices, pad_id, full=True):
    """At every target of the items ``indices``, in item order (row by row, matching
    ``KneserNeyLM.split_distributions``): ``(targets (N,), nll (N,) float64, P_rnn (N, V) float64 or None)``.

    The per-target loss comes from :func:`rnnlm.models.token_losses`, the function the evaluate
    stage scores with, so λ = 1 reproduces the model's own loss. The softmax is taken in float64:
    in float32 its rows sum to 1 only within ~1e-7.
    """
    x, y = to_device(make_batch(split, indices, pad_id), next(model.parameters()).device)
    nll, logits, targets = token_losses(model, x, y, pad_id)
    probs = torch.softmax(logits.double(), dim=-1).cpu().numpy() if full else None
    return targets.cpu().numpy(), nll.double().cpu().numpy(), probs


def rnn_target_losses(model, split, pad_id, max_cells=MAX_CELLS):
    """−log P_rnn(target | history) (nats) of every target of ``split``, in item order: (N,) float64."""
    model.eval()
    nll = [_rnn_outputs(model, split, indices, pad_id, full=False)[1]
           for indices in item_chunks(split, model.config.vocab_size, max_cells)]
    return np.concatenate(nll)


def rnn_target_probabilities(model, split, pad_id, max_cells=MAX_CELLS):
    """P_rnn(target | history) of every target of ``split``, in item order: (N,) float64."""
    return np.exp(-rnn_target_losses(model, split, pad_id, max_cells))


def mixed_losses(rnn_nll, log_p_ngram, lam):
    """−log(λ·p_rnn + (1 − λ)·p_kn) per target, from the recurrent model's own loss ``rnn_nll`` and
    the n-gram's log-probability, summed in log space (a float32-tiny p_rnn never becomes log 0)."""
    with np.errstate(divide="ignore"):  # log 0 = -inf for λ = 0 or 1: logaddexp(x, -inf) = x exactly
        log_lam, log_rest = np.log(lam), np.log1p(-lam)
    return -np.logaddexp(log_lam - rnn_nll, log_rest + log_p_ngram)


def fit_lambda(p_rnn, p_ngram):
    """The λ in [0, 1] that maximizes ``Σ log(λ·p_rnn + (1 − λ)·p_ngram)`` (see the module docstring).

    ``p_rnn``, ``p_ngram``: each model's probability of the same targets (use the dev split).
    """
    p_rnn, p_ngram = np.asarray(p_rnn, dtype=np.float64), np.asarray(p_ngram, dtype=np.float64)
    if p_rnn.shape != p_ngram.shape or p_rnn.size == 0:
        raise ValueError("need the two models' probabilities of the same, non-empty list of targets")
    diff = p_rnn - p_ngram

    def slope(lam):  # d/dλ of the log-likelihood: decreasing in λ (the function is concave)
        with np.errstate(divide="ignore"):
            return float(np.sum(diff / (p_ngram + lam * diff)))

    if slope(0.0) <= 0:
        return 0.0  # the n-gram alone is best: adding the recurrent model only loses likelihood
    if slope(1.0) >= 0:
        return 1.0
    return float(brentq(slope, 0.0, 1.0, xtol=1e-12))


def _check_lambdas(models, lambdas):
    if len(models) != len(lambdas):
        raise ValueError("need one λ per model")
    for lam in lambdas:
        if not 0 <= lam <= 1:
            raise ValueError(f"λ must be in [0, 1], got {lam}")


def mixed_distributions(models, lambdas, ngram, split, pad_id, max_cells=MAX_CELLS):
    """The one mixing routine: chunk by chunk over ``split``'s targets, yield ``targets (N,)``,
    ``log P_kn(target) (N,)`` and per model ``(−log P_rnn(target) (N,), P_mix (N, V))``.

    ``models[i]`` is mixed with the n-gram at weight ``lambdas[i]``; the n-gram's distributions (the
    costly part) are computed once per chunk and shared by all models, and each P_rnn array becomes
    its P_mix in place (no further (N, V) array). λ = 1 and λ = 0 give each component's distribution
    exactly (x·1 + 0 = x).
    """
    _check_lambdas(models, lambdas)
    for model in models:
        model.eval()
    for indices, targets, p_ngram in ngram.split_distributions(split, max_cells):
        mixed = []
        for model, lam in zip(models, lambdas):
            _, nll, probs = _rnn_outputs(model, split, indices, pad_id)
            probs *= lam
            probs += (1.0 - lam) * p_ngram
            mixed.append((nll, probs))
        yield targets, np.log(p_ngram[np.arange(len(targets)), targets]), mixed


def evaluate_mixtures(models, lambdas, ngram, split, pad_id, unk_id=None, max_cells=MAX_CELLS):
    """Metrics (the shared schema of :func:`rnnlm.evaluation.summarize`) of each mixture on ``split``.

    Loss: ``−log(λ·p_rnn + (1 − λ)·p_kn)`` of each target, summed in log space from the recurrent
    model's own per-token loss (so a probability too small for float32 cannot turn into log 0).
    Accuracy: the argmax of the mixed (N, V) distribution.
    """
    nll, correct = [0.0] * len(models), [0] * len(models)
    tokens, unknown = 0, 0
    for targets, log_ngram, mixed in mixed_distributions(models, lambdas, ngram, split, pad_id, max_cells):
        for m, (rnn_nll, dist) in enumerate(mixed):
            nll[m] += float(mixed_losses(rnn_nll, log_ngram, lambdas[m]).sum())
            correct[m] += int((dist.argmax(axis=1) == targets).sum())
        tokens += len(targets)
        if unk_id is not None:
            unknown += int((targets == unk_id).sum())
    if not all(math.isfinite(v) for v in nll):
        raise ValueError("a target has probability 0 under the mixture (<pad> or <s> inside an item?)")
    chars = int(split.chars.sum())
    return [summarize(nll[m], correct[m], tokens, chars, unknown if unk_id is not None else None)
            for m in range(len(models))]
