"""The one seeding helper: every random source the pipeline uses, from one integer.

Determinism on CUDA: with ``torch.use_deterministic_algorithms(True)`` PyTorch refuses (RuntimeError)
any cuBLAS matrix product on CUDA >= 10.2 unless ``CUBLAS_WORKSPACE_CONFIG`` is ``:4096:8`` or
``:16:8``. PyTorch reads the variable with ``getenv`` when it first checks a cuBLAS call (and caches
the answer) and when it sizes the cuBLAS workspace, so setting ``os.environ`` in this process before
the first CUDA matrix product is enough (PyTorch's reproducibility notes). ``deterministic`` does
that, always before turning determinism on, and is the one way the project turns it on.
"""

import os
import random
import warnings

import numpy as np
import torch

CUBLAS_VAR = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")  # the two values PyTorch accepts


def _cuda_in_use(device):
    if device is None:
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def deterministic(device=None):
    """Turn on torch's deterministic algorithms, after making cuBLAS able to honour them.

    Sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless the user set it (their value wins), then calls
    ``torch.use_deterministic_algorithms(True)``: strict everywhere, so CPU runs are unchanged.
    On CUDA (``device``, or any visible GPU when ``device`` is None) it falls back to
    ``warn_only=True``, with a warning, where strict determinism would crash the first matrix product:
    the user's value is not one of ``:4096:8`` / ``:16:8``, or CUDA was already initialized before the
    variable was set here (PyTorch may have read it already). Returns ``"strict"`` or ``"warn_only"``.
    """
    was_set = CUBLAS_VAR in os.environ
    value = os.environ.setdefault(CUBLAS_VAR, CUBLAS_DETERMINISTIC[0])
    warn_only = False
    if _cuda_in_use(device):
        if value not in CUBLAS_DETERMINISTIC:
            warn_only = True
            warnings.warn(f"{CUBLAS_VAR}={value!r} is not one of {', '.join(CUBLAS_DETERMINISTIC)}: "
                          "CUDA runs are not deterministic (torch determinism set to warn_only)", stacklevel=2)
        elif not was_set and torch.cuda.is_initialized():
            warn_only = True
            warnings.warn(f"CUDA was initialized before {CUBLAS_VAR} was set: set it in the environment "
                          "before starting Python for deterministic CUDA runs (torch determinism set to warn_only)",
                          stacklevel=2)
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    return "warn_only" if warn_only else "strict"


def seed_everything(seed, device=None):
    """Seed Python, NumPy and torch, and make torch use deterministic algorithms (``deterministic``).

    On CPU this makes training bit-for-bit repeatable for the same seed, data and thread count.
    (Batch order does not use these global generators: it has its own per-epoch generator, see
    ``training.epoch_rng``, so resuming at an epoch boundary reproduces it exactly.)
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    deterministic(device)
