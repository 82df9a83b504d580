"""A neural cache for streams: the continuous cache of Grave et al. (2017), "Improving neural language models
with a continuous cache", over a recurrent model read with its state carried (``rnnlm.stream_scoring``).

The cache holds the last ``size`` top-layer states h_i of the stream and the target x_(i+1) that followed
each (the token state i predicted). At target t the model's distribution is mixed with a pointer over them:

    p_cache(w) ∝ Σ_{i in cache, x_(i+1) = w} exp(θ · h_t·h_i),   p(w) = (1 - λ) p_model(w) + λ p_cache(w)

The cache at target t holds only the states and targets of the positions before t, t - size .. t - 1: a
target enters the cache only after it has been scored (test-time adaptation never reads a target before
scoring it). At the stream's first target the cache is empty and p is the model's. θ (the flatness of the
pointer, on the raw dot products as in the paper) and λ are fit on dev by a grid (``fit_cache``: the
lowest dev loss); the test split never chooses anything.

Vectorized in blocks: the states of a block come first (the reader's carried state, the blocks of
``rnnlm.stream_scoring``), then the cache attention of at most ``ROWS`` of its targets at a time over a
sliding window of the ``size`` states before the block and the block's own, masked so that target t sees
only i in [t - size, t). Memory stays bounded: ROWS x (ROWS + size) scores, ROWS x V distributions.
Only the recurrent kinds, which carry a state, have such states; the mlp and the Transformer are refused.
"""

import math

import numpy as np
import torch

from .errors import UserError
from .kinds import STATEFUL_KINDS
from .models import state_losses
from .models.recurrent import RecurrentLM
from .results import Tally
from .stream_scoring import StreamReader, block_size, blocks

THETAS = (0.1, 0.2, 0.3, 0.5, 1.0)        # the grid fit on dev (θ on the raw dot products h_t·h_i)
LAMBDAS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
DEFAULT_SIZE = 1000                       # `rnnlm score --cache` without a size
# `rnnlm score --cache` without --cache-theta / --cache-lambda: the values Shakespeare's dev chose at size 1000
DEFAULT_THETA, DEFAULT_LAMBDA = 0.2, 0.15
ROWS = 512                                # targets whose cache attention is computed at once


def check_cacheable(model, stream=True, what="a neural cache"):
    """A UserError unless ``model`` is a recurrent kind (it carries a state) and the text a stream: what
    ``what`` (the cache, dynamic evaluation) reads."""
    if not stream:
        raise UserError(f"{what} reads a stream corpus (one long text); this model's vocabulary is for items")
    if not isinstance(model, RecurrentLM):
        raise UserError(f"{what} needs a kind that carries its state ({', '.join(STATEFUL_KINDS)}), "
                        f"not {model.config.kind}")


def stream_model_of(lm, option, what="a neural cache"):
    """The network of a loaded model (``rnnlm.lm``) that ``option`` (``--cache``, ``--dyneval``) reads as a
    stream: a UserError for an n-gram or a mixture, a kind without a state, or an item corpus."""
    model = getattr(lm, "model", None)
    if model is None:
        raise UserError(f"{option} needs a neural model file (.pt) of a recurrent kind, not an n-gram or a mixture")
    check_cacheable(model, lm.vocab.stream, what)
    return model


def _log(value):
    return math.log(value) if value > 0 else -math.inf


def _visible(rows, columns, first_row, first_column, size):
    """(R, C) mask: the row of absolute position p sees the column of absolute position i iff p - size <= i < p."""
    p = torch.arange(first_row, first_row + rows)[:, None]
    i = torch.arange(first_column, first_column + columns)[None, :]
    return (i < p) & (i >= p - size)


@torch.no_grad()
def cache_stream(model, split, size, thetas, full=False, block=None):
    """The cache's numbers over a stream split, in order, ROWS targets at a time. Yields dicts of:

    - ``targets`` (R,) and ``model_logp`` (R,) float64: log p_model(target) (the evaluate stage's loss);
    - ``has_cache`` (R,) bool: the cache holds at least one state (False only at the stream's first target);
    - ``cache_logp`` (len(thetas), R) float64: log p_cache(target) for each θ (-inf where the cache lacks it);
    - with ``full``: ``logits`` (R, V) and ``cache_probs`` (len(thetas), R, V) float64, p_cache of every token.
    """
    check_cacheable(model)
    if size < 1:
        raise UserError(f"the cache size must be >= 1, got {size}")
    was_training = model.training
    model.eval()
    reader = StreamReader(model, split)
    V = model.config.vocab_size
    keys = torch.empty(0, model.config.hidden_size)       # the last `size` states before the block, on the CPU
    key_targets = torch.empty(0, dtype=torch.long)
    try:
        for start, end in blocks(reader, block or block_size(V)):
            states = reader.states(start, end)
            targets = reader.targets[start:end]
            nll, logits = state_losses(model, states, targets.to(reader.device), with_logits=full)
            states, nll = states.float().cpu(), nll.double().cpu()
            window, window_targets = torch.cat([keys, states]), torch.cat([key_targets, targets])
            before = len(keys)                             # window column j is absolute position start - before + j
            for lo in range(0, end - start, ROWS):
                hi = min(lo + ROWS, end - start)
                c0 = max(0, before + lo - size)            # the first column any of these rows can see
                c1 = before + hi - 1                       # ... and one past the last (row hi - 1 sees up to t - 1)
                mask = _visible(hi - lo, c1 - c0, start + lo, start - before + c0, size)
                dots = (states[lo:hi] @ window[c0:c1].T).double()                        # (R, C)
                cached = window_targets[c0:c1]
                rows_targets = targets[lo:hi]
                match = mask & (cached[None, :] == rows_targets[:, None])
                has = mask.any(dim=1)
                part = {"targets": rows_targets, "model_logp": -nll[lo:hi], "has_cache": has,
                        "cache_logp": [], "cache_probs": [] if full else None,
                        "logits": logits[lo:hi].double().cpu() if full else None}
                for theta in thetas:
                    scores = (theta * dots).masked_fill(~mask, -math.inf)
                    norm = torch.logsumexp(scores, dim=1)                               # -inf on an empty row
                    hit = torch.logsumexp(scores.masked_fill(~match, -math.inf), dim=1)
                    part["cache_logp"].append(torch.where(has, hit - norm, torch.full_like(hit, -math.inf)))
                    if full:
                        weights = torch.exp(scores - norm[:, None]).nan_to_num(0.0) * has[:, None]
                        probs = torch.zeros(hi - lo, V, dtype=torch.float64)
                        probs.scatter_add_(1, cached.expand(hi - lo, -1), weights)
                        part["cache_probs"].append(probs)
                part["cache_logp"] = torch.stack(part["cache_logp"])
                if full:
                    part["cache_probs"] = torch.stack(part["cache_probs"])
                yield part
            keys, key_targets = window[-size:], window_targets[-size:]
    finally:
        model.train(was_training)


def mixed_logp(model_logp, cache_logp, has_cache, lam):
    """log p(target) of the mixture (1 - λ) p_model + λ p_cache; the model's alone where the cache is empty."""
    mixed = torch.logaddexp(model_logp + _log(1 - lam), cache_logp + _log(lam))
    return torch.where(has_cache, mixed, model_logp)


def mixed_probs(logits, cache_probs, has_cache, lam):
    """(R, V) probabilities of the mixture, from the model's logits and p_cache (the model's alone where the
    cache is empty)."""
    model_probs = torch.softmax(logits.double(), dim=-1)
    mixed = (1 - lam) * model_probs + lam * cache_probs
    return torch.where(has_cache[:, None], mixed, model_probs)


def cache_sums(model, split, size, thetas, lambdas, unk_id=None, accuracy=True):
    """{(θ, λ): the metrics of the cache model with θ, λ on ``split``}, in ``rnnlm.results.summarize``'s
    schema, from one pass over the stream (every θ shares the states and the dot products)."""
    tallies = {(t, lam): Tally(unk_id, accuracy) for t in thetas for lam in lambdas}
    for part in cache_stream(model, split, size, thetas, full=accuracy):
        targets, has = part["targets"], part["has_cache"]
        for a, theta in enumerate(thetas):
            for lam in lambdas:
                guess = None
                if accuracy:
                    guess = (part["logits"].argmax(dim=-1) if lam == 0
                             else mixed_probs(part["logits"], part["cache_probs"][a], has, lam).argmax(dim=-1))
                nll = -mixed_logp(part["model_logp"], part["cache_logp"][a], has, lam).sum().item()
                tallies[(theta, lam)].add(targets, nll, guess)
    return {key: tally.summary(int(split.chars.sum())) for key, tally in tallies.items()}


def fit_cache(model, dev, size, thetas=THETAS, lambdas=LAMBDAS, unk_id=None):
    """``(theta, lambda, dev metrics)``: the grid point with the lowest loss on ``dev`` (ties: the first in
    grid order). Only dev is read: the choice never sees a test split."""
    results = cache_sums(model, dev, size, thetas, lambdas, unk_id)
    (theta, lam), best = min(results.items(), key=lambda item: item[1]["loss"])
    return theta, lam, best


def evaluate_cache(model, split, size, theta, lam, unk_id=None, accuracy=True):
    """The cache model's metrics on a stream split, θ and λ given (``summarize``'s schema)."""
    return cache_sums(model, split, size, [theta], [lam], unk_id, accuracy)[(theta, lam)]


def cache_target_log_probs(model, split, size, theta, lam):
    """log p(target) (nats) of every target of a stream split under the cache model, in order: (N,) float64."""
    parts = [mixed_logp(p["model_logp"], p["cache_logp"][0], p["has_cache"], lam)
             for p in cache_stream(model, split, size, [theta])]
    return torch.cat(parts).numpy() if parts else np.empty(0)


def cache_distributions(model, split, size, theta, lam):
    """``(mixture, cache)``: (N, V) float64 distributions at every target of a stream split (small streams:
    the tests)."""
    parts = list(cache_stream(model, split, size, [theta], full=True))
    mixture = torch.cat([mixed_probs(p["logits"], p["cache_probs"][0], p["has_cache"], lam) for p in parts])
    return mixture, torch.cat([p["cache_probs"][0] for p in parts])


def cache_metrics(model, splits, size, unk_id=None, thetas=THETAS, lambdas=LAMBDAS):
    """The evaluate stage's record of the cache model: θ, λ fit on ``splits["dev"]`` alone, then every other
    split (test, and dev_test where present) scored with them: ``{"dev", "test", ["dev_test"], theta,
    lambda, size}``. dev_test is one stream (nanoGPT's val), scored as the plain model scores it, without
    ``unk_id``."""
    theta, lam, dev = fit_cache(model, splits["dev"], size, thetas, lambdas, unk_id)
    result = {"dev": dev, "test": evaluate_cache(model, splits["test"], size, theta, lam, unk_id)}
    if "dev_test" in splits:
        result["dev_test"] = evaluate_cache(model, splits["dev_test"], size, theta, lam)
    return result | {"theta": theta, "lambda": lam, "size": size}


class CachedLM:
    """A stream ``NeuralLM`` (``rnnlm.lm``) with the cache: what ``rnnlm score --cache`` scores with."""

    def __init__(self, lm, size=DEFAULT_SIZE, theta=DEFAULT_THETA, lam=DEFAULT_LAMBDA):
        stream_model_of(lm, "--cache")
        if not 0 <= lam < 1:
            raise UserError(f"--cache-lambda must be in [0, 1), got {lam}")
        if not theta >= 0:
            raise UserError(f"--cache-theta must be >= 0, got {theta}")
        self.lm, self.vocab, self.size, self.theta, self.lam = lm, lm.vocab, size, theta, lam

    def target_losses(self, split):
        return -cache_target_log_probs(self.lm.model, split, self.size, self.theta, self.lam)
