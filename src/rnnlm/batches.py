"""Item batches as tensors: the padded (B, T) inputs and targets a model reads, from an encoded split
(``rnnlm.data``) and the item indices of each batch (``rnnlm.data.batch_indices``). Apart from
``rnnlm.data`` so that the stages that only read and write arrays (split, vocab, ngram) never load torch."""

import numpy as np
import torch


def make_batch(split, indices, pad_id, max_len=None):
    """Inputs and targets for the given items, right-padded with ``pad_id``.

    Returns ``x`` (B, T) and ``y`` (B, T) int64 tensors; ``y == pad_id`` marks padding. Padding
    sits after the real tokens, so a causal model's outputs at real positions never see it.
    """
    seqs = [split.item(i) for i in indices]
    if max_len is not None:
        seqs = [s[: max_len + 1] for s in seqs]
    width = max(len(s) for s in seqs) - 1
    x = np.full((len(seqs), width), pad_id, dtype=np.int64)
    y = np.full((len(seqs), width), pad_id, dtype=np.int64)
    for row, s in enumerate(seqs):
        x[row, : len(s) - 1] = s[:-1]
        y[row, : len(s) - 1] = s[1:]
    return torch.from_numpy(x), torch.from_numpy(y)


def epoch_batches(split, batches, pad_id, max_len=None):
    """``make_batch`` for every batch of an epoch, done before training starts.

    Returns ``[(x, y, tokens), ...]`` where ``tokens`` (an int) counts the batch's real targets,
    known from the lengths alone, so the training loop never has to ask a tensor for it.
    """
    lengths = split.lengths
    out = []
    for indices in batches:
        x, y = make_batch(split, indices, pad_id, max_len)
        real = lengths[indices] if max_len is None else np.minimum(lengths[indices], max_len + 1)
        out.append((x, y, int(real.sum() - len(indices))))
    return out
