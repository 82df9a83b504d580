"""``evaluate``: how the evaluate stage scores the dev and test splits (shared by the corpora)."""

from .base import Device, Positive, Section


class StreamCacheConfig(Section):
    """``evaluate.stream_cache``: a neural cache over a stream's recent states (``rnnlm.cache``), reported as its
    own row ``<kind>+cache`` for each recurrent kind of a stream corpus; θ and λ are fit on dev."""
    enabled: bool
    size: Positive                  # states (and the targets after them) the cache holds


class StreamDynevalConfig(Section):
    """``evaluate.stream_dyneval``: dynamic evaluation (``rnnlm.dyneval``), reported as its own row
    ``<kind>+dyneval`` for each recurrent kind of a stream corpus; the learning rate and decay are fit on dev."""
    enabled: bool
    segment: Positive               # targets scored before each SGD step


class EvaluateConfig(Section):
    batch_size: Positive
    device: Device
    stream_cache: StreamCacheConfig  # off by default (params.yaml): an evaluation without it writes the same files
    stream_dyneval: StreamDynevalConfig  # off by default too
