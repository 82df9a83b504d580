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
