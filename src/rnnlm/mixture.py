"""Neural models and the Kneser-Ney n-gram model mixed token by token.

At every predicted position the mixture's distribution over the vocabulary is the linear
interpolation of its components' full distributions: one or more trained neural models (any kind)
and the n-gram model::

    P_mix(w | h) = Σ_k λ_k · P_k(w | h),      λ_k ≥ 0,  Σ_k λ_k = 1

so it is itself a language model (each row sums to 1) and is scored with the metrics every model
reports: loss = mean −log P_mix(target), perplexity, accuracy = argmax of the mixed distribution,
bits per character. The components err differently (the n-gram remembers exact local phrases, a
recurrent model generalizes over the whole item, a Transformer attends to it), which is why the
mixture beats each of them.

The weights are fit on the dev split only: they maximize the dev log-likelihood
``Σ_t log Σ_k λ_k p_k(t)`` of the targets' probabilities under every component. That function is
concave in λ on the simplex, so the EM update ``λ_k ← mean_t(λ_k p_k(t) / P_mix(t))`` (the update
SRILM's ``compute-best-mix`` runs) climbs to its maximum from any start; it stops when no weight
moves by more than 1e-12. Test data never enters the choice.

Positions are visited item by item in the split's order, the same targets (every token after an
item's <s>) that :func:`rnnlm.evaluation.evaluate_split` and :meth:`KneserNeyLM.evaluate` score.
Full distributions are (positions, V) float64 arrays, built in chunks of at most ``max_cells``
entries (news: V ≈ 8.4k, so a few hundred positions per chunk), so memory stays small.

A stream split (one long text) is visited in blocks of consecutive targets instead: every neural
model reads it as ``rnnlm.stream_scoring`` does (its state carried, or a sliding window), and the
n-gram's histories are a sliding-window view of the whole item (``KneserNeyLM.histories``), sliced
per block, so its history runs across newlines as the text does.
"""

import math

import numpy as np
import torch

from .batches import make_batch
from .devices import to_device
from .models import state_losses, token_losses
from .ngram import MAX_CELLS, item_chunks
from .results import Tally
from .stream_scoring import StreamReader, block_size, stream_target_losses


@torch.no_grad()
def _neural_outputs(model, split, indices, pad_id, full=True):
    """At every target of the items ``indices``, in item order (row by row, matching
    ``KneserNeyLM.split_distributions``): ``(targets (N,), nll (N,) float64, P (N, V) float64 or None)``.

    The per-target loss comes from :func:`rnnlm.models.token_losses`, the function the evaluate
    stage scores with, so a weight of 1 reproduces the model's own loss. The softmax is taken in
    float64: in float32 its rows sum to 1 only within ~1e-7.
    """
    x, y = to_device(make_batch(split, indices, pad_id), next(model.parameters()).device)
    nll, logits, targets = token_losses(model, x, y, pad_id)
    probs = torch.softmax(logits.double(), dim=-1).cpu().numpy() if full else None
    return targets.cpu().numpy(), nll.double().cpu().numpy(), probs


def neural_target_losses(model, split, pad_id, max_cells=MAX_CELLS):
    """−log P(target | history) (nats) of every target of ``split`` under a neural model, in item
    order: (N,) float64."""
    if split.stream:
        return stream_target_losses(model, split, block_size(model.config.vocab_size, max_cells))
    model.eval()
    nll = [_neural_outputs(model, split, indices, pad_id, full=False)[1]
           for indices in item_chunks(split, model.config.vocab_size, max_cells)]
    return np.concatenate(nll)


def neural_target_probabilities(model, split, pad_id, max_cells=MAX_CELLS):
    """P(target | history) of every target of ``split`` under a neural model, in item order: (N,) float64."""
    return np.exp(-neural_target_losses(model, split, pad_id, max_cells))


def mixed_losses(component_nll, weights):
    """−log Σ_k λ_k p_k per target, from each component's own loss ``component_nll`` (K, N),
    summed in log space (a float32-tiny probability never becomes log 0)."""
    component_nll, weights = np.asarray(component_nll, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore"):  # log 0 = -inf for a weight of 0: logaddexp(x, -inf) = x exactly
        log_weights = np.log(weights)
    return -np.logaddexp.reduce(log_weights[:, None] - component_nll, axis=0)


def fit_weights(probabilities, tol=1e-12, max_iterations=100_000):
    """The weights λ (K,) on the simplex that maximize ``Σ_t log Σ_k λ_k p_k(t)`` (module docstring).

    ``probabilities`` (K, N): each component's probability of the same targets (use the dev
    split). EM from equal weights; a component that never helps goes to 0.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] == 0:
        raise ValueError("need each component's probabilities of the same, non-empty list of targets")
    weights = np.full(p.shape[0], 1.0 / p.shape[0])
    for _ in range(max_iterations):
        responsibility = weights[:, None] * p / (weights @ p)   # (K, N): each component's share of P_mix
        updated = responsibility.mean(axis=1)
        done = np.max(np.abs(updated - weights)) <= tol
        weights = updated
        if done:
            break
    return weights / weights.sum()


def _check_weights(mixtures):
    for models, weights in mixtures:
        if len(weights) != len(models) + 1:
            raise ValueError("need one weight per neural model and one for the n-gram model")
        if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-9):
            raise ValueError(f"weights must be >= 0 and sum to 1, got {list(weights)}")


def _item_chunks(models, ngram, split, pad_id, max_cells):
    """``(targets (N,), P_ngram (N, V), {id(model): (nll (N,), P (N, V))})`` chunk by chunk over the items.

    An item longer than the budget comes from the n-gram in consecutive pieces (``indices == [i]``
    each time): that item's neural outputs are computed once, at its first piece, and sliced.
    """
    current, cached, start = None, {}, 0
    for indices, targets, p_ngram in ngram.split_distributions(split, max_cells):
        if len(targets) == int(split.lengths[indices].sum()) - len(indices):  # whole items
            yield targets, p_ngram, {id(model): _neural_outputs(model, split, indices, pad_id)[1:] for model in models}
            continue
        if current != indices[0]:
            current, start = indices[0], 0
            cached = {id(model): _neural_outputs(model, split, indices, pad_id)[1:] for model in models}
        yield targets, p_ngram, {key: tuple(a[start:start + len(targets)] for a in outputs)
                                 for key, outputs in cached.items()}
        start += len(targets)


@torch.no_grad()
def _stream_chunks(models, ngram, split, max_cells):
    """The same over a stream, block by block of consecutive targets (module docstring)."""
    readers = {id(model): StreamReader(model, split) for model in models}
    item = np.asarray(split.item(0), dtype=np.int64)
    histories = ngram.histories(item)  # a sliding-window view: only a block's rows are ever copied
    block = block_size(ngram.vocab_size, max_cells)
    for start in range(0, len(item) - 1, block):
        end = min(start + block, len(item) - 1)
        outputs = {}
        for model in models:
            reader = readers[id(model)]
            nll, logits = state_losses(model, reader.states(start, end), reader.targets[start:end].to(reader.device))
            outputs[id(model)] = (nll.double().cpu().numpy(), torch.softmax(logits.double(), dim=-1).cpu().numpy())
        yield item[start + 1:end + 1], ngram.distributions(histories[start:end]), outputs


def mixed_distributions(mixtures, ngram, split, pad_id, max_cells=MAX_CELLS):
    """The one mixing routine: chunk by chunk over ``split``'s targets, yield ``targets (N,)`` and
    per mixture ``(component losses (K + 1, N), P_mix (N, V))``.

    ``mixtures``: ``[(neural models, weights)]`` with one weight per neural model, then the
    n-gram's (each seed's mixture is one entry). The n-gram's distributions (the costly part) are
    computed once per chunk and shared by every mixture. A weight of 1 gives that component's
    distribution exactly (x·1 + 0 = x).
    """
    _check_weights(mixtures)
    distinct = list({id(model): model for models, _ in mixtures for model in models}.values())
    for model in distinct:
        model.eval()
    chunks = (_stream_chunks(distinct, ngram, split, max_cells) if split.stream
              else _item_chunks(distinct, ngram, split, pad_id, max_cells))
    for targets, p_ngram, outputs in chunks:
        ngram_nll = -np.log(p_ngram[np.arange(len(targets)), targets])
        mixed = []
        for models, weights in mixtures:
            losses, dist = [], weights[-1] * p_ngram
            for model, weight in zip(models, weights):
                nll, probs = outputs[id(model)]
                probs = probs * weight
                dist += probs
                losses.append(nll)
            mixed.append((np.stack(losses + [ngram_nll]), dist))
        yield targets, mixed


def evaluate_mixtures(mixtures, ngram, split, pad_id, unk_id=None, max_cells=MAX_CELLS):
    """Metrics (the shared schema of :func:`rnnlm.results.summarize`) of each mixture on ``split``.

    Loss: ``−log Σ_k λ_k p_k`` of each target, summed in log space from each neural model's own
    per-token loss (so a probability too small for float32 cannot turn into log 0). Accuracy: the
    argmax of the mixed (N, V) distribution; with ``unk_id``, also over the targets that are not
    ``<unk>`` (``accuracy_without_unk``, where ``<unk>`` is a target).
    """
    tallies = [Tally(unk_id) for _ in mixtures]
    for targets, mixed in mixed_distributions(mixtures, ngram, split, pad_id, max_cells):
        for tally, (component_nll, dist), (_, weights) in zip(tallies, mixed, mixtures):
            tally.add(targets, float(mixed_losses(component_nll, weights).sum()), dist.argmax(axis=1))
    if not all(math.isfinite(tally.total_nll) for tally in tallies):
        raise ValueError("a target has probability 0 under the mixture (<pad> or <s> inside an item?)")
    return [tally.summary(int(split.chars.sum())) for tally in tallies]
