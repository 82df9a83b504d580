"""Where a model runs: the ``device`` and ``precision`` params turned into torch objects.

``device: cpu`` (the default) keeps every number bit-identical to a run without this module.
``auto`` takes CUDA when present, else Apple's MPS, else the CPU. ``precision: bf16`` runs the
forward pass under CUDA autocast (matrix products in bfloat16, losses and weights in float32);
elsewhere it is refused rather than silently ignored, since CPU bf16 autocast is slower than
float32 on most CPUs and would change the numbers. Checkpoints are always written as CPU tensors
(see checkpoint.py), so a model trained on a GPU loads anywhere.
"""

import contextlib

import torch

from .errors import UserError
from .schema.base import DEVICES, PRECISIONS


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name):
    """The torch device for a ``device`` param value; a user error if that device is absent."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda asked for, but torch sees no CUDA GPU here; use device: auto or cpu")
    if name == "mps" and not _mps_available():
        raise UserError("device mps asked for, but this torch has no usable MPS backend; use device: auto or cpu")
    return torch.device(name)


def check_precision(precision, device):
    """Refuse a precision the device cannot honour (bf16 autocast is a CUDA-only option here)."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type != "cuda":
        raise UserError(f"precision bf16 needs a CUDA device, but training runs on {device.type}; "
                        f"set precision: fp32 (or device: cuda on a machine with a GPU)")


def autocast(device, precision):
    """Context for the forward pass: bf16 autocast on CUDA when asked, else nothing at all."""
    if precision == "bf16":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(tensors, device):
    """Move batch tensors to ``device``; on CUDA from pinned memory, so the copy is asynchronous.

    On the CPU the tensors are returned as they are (no copy, nothing changes).
    """
    if device.type == "cpu":
        return tensors
    if device.type == "cuda":
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in tensors)
    return tuple(t.to(device) for t in tensors)
