"""Full-pass evaluation: token-weighted loss, perplexity, next-token accuracy, bits per character.

Accuracy counts every target, ``<unk>`` included; where ``<unk>`` is a target (word level: an
out-of-vocabulary word is one ``<unk>``, the commonest news target), predicting it is cheap and
flatters the accuracy, so ``accuracy_without_unk`` beside it is the accuracy over the other targets.
It is reported wherever ``<unk>`` occurs among a split's targets, at any level: news (word level)
has it; names (char level) has none, since ingest keeps only the alphabet, which the training split
covers; a BPE vocabulary never produces ``<unk>``. A stream split counts it the same way
(``rnnlm.stream_scoring.evaluate_stream``): a word-level stream has it, shakespeare's char stream none.

A stream split (one long text) is scored as one stream from a zero state by ``rnnlm.stream_scoring``.
"""

import torch

from .batches import make_batch
from .data import batch_indices
from .devices import to_device
from .errors import UserError
from .models import token_losses
from .results import EMPTY_SPLIT, Tally, summarize
from .stream_scoring import evaluate_stream


@torch.no_grad()
def evaluate_split(model, split, pad_id, batch_size=256, unk_id=None, accuracy=True):
    """Evaluate every item of ``split`` (no sampling of batches).

    loss is the mean negative log-likelihood per predicted token in nats; perplexity = exp(loss);
    bits_per_char divides the total in bits by the characters the items cover (each item's end
    counted as one character, like a newline), so char- and word-level models are comparable.
    ``accuracy=False`` (training's dev loss) skips the full (N, V) distributions accuracy needs:
    an adaptive softmax then scores the targets alone, several times cheaper on a word vocabulary
    (the loss's last digits may differ from the full distribution's); the result has no accuracy.
    """
    if len(split) == 0:
        raise UserError(f"the split {EMPTY_SPLIT}")
    if split.stream:  # one long text: every target once, with the text before it (rnnlm.stream_scoring)
        return summarize(*evaluate_stream(model, split, unk_id, accuracy))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device  # batches go where the model is
    tally = Tally(unk_id, accuracy)
    # Sorting by length (no shuffling) keeps padding low; the sums do not depend on batching.
    for indices in batch_indices(split.lengths, batch_size, rng=None, bucket=True):
        x, y = to_device(make_batch(split, indices, pad_id), device)
        nll, logits, targets = token_losses(model, x, y, pad_id, with_logits=accuracy)
        tally.add(targets, nll.double().sum().item(), logits.argmax(dim=-1) if accuracy else None)
    model.train(was_training)
    return tally.summary(int(split.chars.sum()))
