"""``evaluate``: how the evaluate stage scores the dev and test splits (shared by the corpora)."""

from .base import Device, Positive, Section


class EvaluateConfig(Section):
    batch_size: Positive
    device: Device
