"""How new and how likely a model's samples are, over a grid of sampling settings.

A name generator should mostly produce names that are not in its training data, yet still
plausible ones. For each (temperature, top-k) this draws ``n`` unprompted samples and reports the
share not in the training split (``novel_share``, as the generate stage counts it) beside the mean
log-likelihood per token of the samples under the model itself at temperature 1 without top-k
(each sample scored as a whole item, </s> included; a sample cut at ``max_tokens`` is scored as if
it ended there). Lower temperatures and smaller k give likelier samples and more copies.
"""

import numpy as np
import torch

from .data import encode_split
from .sampling import join_text, sample_ids, sample_statistics


def novelty_grid(lm, train_items, temperatures, top_ks, n=500, max_tokens=30, seed=0):
    """One dict per (temperature, top_k) (``top_k`` None: no cut): samples, novel_share, distinct_share,
    mean_length, std_length, mean_loglik_per_token (nats) and mean_loglik_per_sample (nats)."""
    vocab, start = lm.vocab, [lm.vocab.bos_id]
    train_items = set(train_items)
    rows = []
    for temperature in temperatures:
        for top_k in top_ks:
            generator = torch.Generator().manual_seed(seed)
            drawn = sample_ids(lm.stepper(), vocab, n, start, temperature, top_k, max_tokens, generator=generator)
            texts = join_text(vocab, start, drawn)
            split = encode_split(vocab, texts)
            nll = lm.target_losses(split)
            per_sample = np.add.reduceat(nll, np.concatenate([[0], np.cumsum(split.lengths - 1)[:-1]]))
            rows.append({"temperature": temperature, "top_k": top_k, **sample_statistics(texts, train_items),
                         "distinct_share": len(set(texts)) / n,
                         "mean_loglik_per_token": -float(nll.sum()) / split.num_targets,
                         "mean_loglik_per_sample": -float(per_sample.mean())})
    return rows
