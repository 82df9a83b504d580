"""The one seeding helper: every random source the pipeline uses, from one integer."""

import random

import numpy as np
import torch


def seed_everything(seed):
    """Seed Python, NumPy and torch, and make torch use deterministic algorithms.

    On CPU this makes training bit-for-bit repeatable for the same seed, data and thread count.
    (Batch order does not use these global generators: it has its own per-epoch generator, see
    ``training.epoch_rng``, so resuming at an epoch boundary reproduces it exactly.)
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
