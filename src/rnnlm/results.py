"""The results every model reports, neural or n-gram, in one schema: loss (nats per token), perplexity,
accuracy, bits per character, the OOV rate where ``<unk>`` is a target (``rnnlm.evaluation``'s docstring),
and the metrics file that holds dev's and test's. Plain arithmetic on sums, without torch, so the stages
that score no network (ngram) never load it."""

import math

from .errors import UserError

EMPTY_SPLIT = ("has no items to score: the split stage makes every split non-empty, so rebuild the "
               "splits (`dvc repro`) from at least the number of rows it names")


def summarize(total_nll, correct, tokens, chars, unknown=None, correct_known=None):
    """Turn sums over a split into the metrics schema shared by every model (neural or n-gram).

    ``correct_known``: the correct predictions of targets other than ``<unk>`` (``unknown`` counts the
    ``<unk>`` targets); with both, and ``<unk>`` among the targets, the result has ``accuracy_without_unk``
    (module docstring).
    """
    if tokens == 0:
        raise UserError(f"the split {EMPTY_SPLIT}")
    loss = total_nll / tokens
    result = {"loss": loss, "perplexity": math.exp(loss) if loss < 700 else math.inf}  # exp overflows past ~709
    if correct is not None:  # None: a loss-only pass (training's dev loss)
        result["accuracy"] = correct / tokens
    result |= {"bits_per_char": total_nll / math.log(2) / chars, "tokens": tokens}
    if unknown is not None:
        result["oov_rate"] = unknown / tokens
        if correct_known is not None and 0 < unknown < tokens:
            result["accuracy_without_unk"] = correct_known / (tokens - unknown)
    return result


class Tally:
    """The running sums :func:`summarize` turns into metrics, chunk by chunk of scored targets: the one
    tally of every scorer (items, streams, the n-gram, mixtures, the cache, dynamic evaluation).

    ``add`` takes a chunk's targets, the sum of their losses in nats, and the predicted ids (the argmax)
    where accuracy is counted, as numpy arrays or torch tensors alike. ``unk_id`` None counts no ``<unk>``
    targets (no ``oov_rate``); ``accuracy`` False, no predictions (no ``accuracy``)."""

    def __init__(self, unk_id=None, accuracy=True):
        self.unk_id, self.accuracy = unk_id, accuracy
        self.total_nll, self.correct, self.tokens, self.unknown, self.correct_known = 0.0, 0, 0, 0, 0

    def add(self, targets, nll_sum, predictions=None):
        self.total_nll += nll_sum
        self.tokens += len(targets)
        if self.unk_id is not None:
            unk = targets == self.unk_id
            self.unknown += int(unk.sum())
        if self.accuracy:
            hits = predictions == targets
            self.correct += int(hits.sum())
            if self.unk_id is not None:
                self.correct_known += int((hits & ~unk).sum())

    def sums(self, chars):
        """``(total_nll, correct, tokens, chars, unknown, correct_known)``, None for what is not counted."""
        counts_unk = self.unk_id is not None
        return (self.total_nll, self.correct if self.accuracy else None, self.tokens, chars,
                self.unknown if counts_unk else None, self.correct_known if self.accuracy and counts_unk else None)

    def summary(self, chars):
        """The metrics (:func:`summarize`) of what was added; ``chars``: the characters the targets cover."""
        total_nll, correct, tokens, chars, unknown, correct_known = self.sums(chars)
        return summarize(total_nll, correct, tokens, chars, unknown, correct_known=correct_known)


def metrics_record(dev, test, **extra):
    """The metrics file schema shared by every model: dev and test results plus ``extra`` fields.

    The OOV rate is a property of the test split alone, so it is reported there only.
    """
    return {"dev": {k: v for k, v in dev.items() if k != "oov_rate"}, "test": test, **extra}


def describe(result):
    """One line for people: the headline numbers of one split's result."""
    return (f"loss {result['loss']:.4f}, perplexity {result['perplexity']:.2f}, "
            f"accuracy {result['accuracy']:.3f}, {result['bits_per_char']:.3f} bits/char")


def rounded(metrics, digits=6):
    """Round floats for small, readable metrics files (ints pass through)."""
    if isinstance(metrics, dict):
        return {k: rounded(v, digits) for k, v in metrics.items()}
    if isinstance(metrics, float):
        return round(metrics, digits)
    return metrics
