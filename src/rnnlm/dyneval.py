"""Dynamic evaluation for streams: Krause et al. (2018), "Dynamic evaluation of neural sequence models", with
their SGD update, over a recurrent model read with its state carried.

The stream is read in consecutive segments of ``segment`` targets. Each segment is scored first, with the
weights as they are, and only then does one SGD step on that segment's mean loss move the weights, pulled
back towards the trained ones θ_0 by a decay:

    θ ← θ − η ∇L(segment) + λ (θ_0 − θ)

So the probability of a target depends only on the text before it (earlier segments through the weights,
everything before it through the carried state): test-time adaptation never reads a target before scoring it.
With η = λ = 0 this is the plain stream evaluation (``rnnlm.stream_scoring``). η and λ are fit on dev by a
grid (``fit_dyneval``: the lowest dev loss); the test split never chooses anything. The model passed in is
never changed: a copy of it adapts, and every split starts again from the trained weights.

Dropout is off while adapting (the model is in eval mode), as in the paper. Only the recurrent kinds carry a
state from segment to segment; the mlp and the Transformer are refused (``rnnlm.cache.check_cacheable``).
The cost is a backward pass per segment at batch 1: about six times a plain evaluation per grid point
(Shakespeare's dev: 15.5 s against 2.6 s).
"""

import copy

import numpy as np
import torch

from .cache import check_cacheable, stream_model_of
from .errors import UserError
from .models import state_losses
from .results import Tally

LRS = (0.01, 0.03, 0.1, 0.3)               # η, the grid fit on dev (on the mean loss of a segment)
DECAYS = (0.0, 0.01)                       # λ, the pull back towards the trained weights per segment
DEFAULT_SEGMENT = 50                       # targets per segment
# `rnnlm score --dyneval` without --dyneval-lr / --dyneval-decay: what Shakespeare's dev chose (docs/streams.md)
DEFAULT_LR, DEFAULT_DECAY = 0.1, 0.0


def check_settings(lr, decay, segment):
    if not lr >= 0:
        raise UserError(f"the dynamic evaluation's learning rate must be >= 0, got {lr}")
    if not 0 <= decay < 1:
        raise UserError(f"the dynamic evaluation's decay must be in [0, 1), got {decay}")
    if segment < 1:
        raise UserError(f"the dynamic evaluation's segment must be >= 1 target, got {segment}")


def dyneval_stream(model, split, lr, decay, segment=DEFAULT_SEGMENT, with_logits=True):
    """Every segment of a stream split, in order, scored before the step that learns from it: yields
    ``(targets (S,), nll (S,) float64, logits (S, V) or None)`` on the CPU."""
    check_cacheable(model, what="dynamic evaluation")
    check_settings(lr, decay, segment)
    learner = copy.deepcopy(model).eval()   # the caller's model keeps its trained weights
    params = [p for p in learner.parameters() if p.requires_grad]
    adapts = lr > 0   # with η = 0 no step moves a weight (λ pulls back to where they all still are)
    trained = [p.detach().clone() for p in params] if adapts and decay > 0 else [None] * len(params)
    device = next(learner.parameters()).device
    tokens = torch.from_numpy(np.asarray(split.item(0), dtype=np.int64))
    inputs, targets = tokens[:-1], tokens[1:]             # input p predicts target p
    hidden = None
    for start in range(0, len(targets), segment):
        x = inputs[start:start + segment][None].to(device)
        y = targets[start:start + segment].to(device)
        with torch.set_grad_enabled(adapts):
            states, after = learner.features(x, hidden)
            nll, logits = state_losses(learner, states[0], y, with_logits=with_logits)
        yield (y.cpu(), nll.detach().double().cpu(), None if logits is None else logits.detach().cpu())
        if adapts:  # only now, after its scores are out, does the segment move the weights
            grads = torch.autograd.grad(nll.mean(), params, allow_unused=True)
            with torch.no_grad():
                for p, g, p0 in zip(params, grads, trained):
                    if g is not None:
                        p.sub_(lr * g)
                    if decay > 0:
                        p.add_(decay * (p0 - p))
        hidden = learner.carry(after)


def dyneval_sums(model, split, lr, decay, segment=DEFAULT_SEGMENT, unk_id=None, accuracy=True):
    """The metrics of ``split`` under dynamic evaluation with η = ``lr`` and λ = ``decay``, in
    ``rnnlm.results.summarize``'s schema (the plain evaluation's keys)."""
    tally = Tally(unk_id, accuracy)
    for y, nll, logits in dyneval_stream(model, split, lr, decay, segment, with_logits=accuracy):
        tally.add(y, nll.sum().item(), logits.argmax(dim=-1) if accuracy else None)
    return tally.summary(int(split.chars.sum()))


def fit_dyneval(model, dev, segment=DEFAULT_SEGMENT, lrs=LRS, decays=DECAYS, unk_id=None, log=None):
    """``(lr, decay, dev metrics)``: the grid point with the lowest loss on ``dev`` (ties: the first in grid
    order). Only dev is read: the choice never sees a test split."""
    best = None
    for lr in lrs:
        for decay in decays:
            result = dyneval_sums(model, dev, lr, decay, segment, unk_id)
            if log:
                log(f"dynamic evaluation on dev: lr {lr:g}, decay {decay:g}: loss {result['loss']:.4f}")
            if best is None or result["loss"] < best[2]["loss"]:
                best = (lr, decay, result)
    return best


def dyneval_metrics(model, splits, segment=DEFAULT_SEGMENT, unk_id=None, lrs=LRS, decays=DECAYS, log=None):
    """The evaluate stage's record of the model under dynamic evaluation: η and λ fit on ``splits["dev"]``
    alone, then test (and dev_test, one stream, without ``unk_id`` as the plain model scores it) from the
    trained weights with them: ``{"dev", "test", ["dev_test"], lr, decay, segment}``."""
    lr, decay, dev = fit_dyneval(model, splits["dev"], segment, lrs, decays, unk_id, log)
    result = {"dev": dev, "test": dyneval_sums(model, splits["test"], lr, decay, segment, unk_id)}
    if "dev_test" in splits:
        result["dev_test"] = dyneval_sums(model, splits["dev_test"], lr, decay, segment)
    return result | {"lr": lr, "decay": decay, "segment": segment}


def dyneval_target_log_probs(model, split, lr, decay, segment=DEFAULT_SEGMENT):
    """log p(target) (nats) of every target of a stream split under dynamic evaluation, in order: (N,) float64."""
    parts = [-nll for _, nll, _ in dyneval_stream(model, split, lr, decay, segment, with_logits=False)]
    return torch.cat(parts).numpy() if parts else np.empty(0)


class DynevalLM:
    """A stream ``NeuralLM`` (``rnnlm.lm``) read with dynamic evaluation: what ``rnnlm score --dyneval`` scores
    with."""

    def __init__(self, lm, lr=DEFAULT_LR, decay=DEFAULT_DECAY, segment=DEFAULT_SEGMENT):
        stream_model_of(lm, "--dyneval", what="dynamic evaluation")
        check_settings(lr, decay, segment)
        self.lm, self.vocab, self.lr, self.decay, self.segment = lm, lm.vocab, lr, decay, segment

    def target_losses(self, split):
        return -dyneval_target_log_probs(self.lm.model, split, self.lr, self.decay, self.segment)
