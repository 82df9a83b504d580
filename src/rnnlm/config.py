"""Typed, validated configuration: one dataclass per ``params.yaml`` section.

``params.yaml`` is the single source of truth; a stage turns its section into one of these with
``from_params`` before doing any work, so an unknown key, a wrong type or an impossible value
(hidden size 0, split fractions not summing to 1, top-k < 1, temperature <= 0) stops the stage at
once with a message naming the key. The library itself never opens ``params.yaml``.
"""

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Optional

from .errors import UserError

MODEL_KINDS = ("rnn_scratch", "rnn", "gru", "lstm")
OUTPUTS = ("full", "adaptive")
DEVICES = ("auto", "cpu", "cuda", "mps")  # resolved to a torch device by rnnlm.devices
PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "plateau", "cosine", "onecycle")  # see schedules.py
DROPOUT_MODES = ("standard", "locked")  # see models.LockedDropout


def _type_ok(value, annotation):
    """Check a plain YAML value against a (simple) type annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # Optional[X]
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if annotation is type(None):
        return value is None
    if annotation is float:  # YAML writes 1 for 1.0; accept ints, never bools
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _type_name(annotation):
    if typing.get_origin(annotation) is typing.Union:  # Optional[int] -> "int or null", as YAML spells None
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


class Section:
    """Mixin: build a dataclass from a params mapping, rejecting unknown keys and wrong types."""

    @classmethod
    def from_params(cls, data, where):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UserError(f"params: {where} must be a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise UserError(f"params: unknown key {where}.{unknown[0]} (known keys: {', '.join(names)})")
        for key, value in data.items():
            if not _type_ok(value, hints[key]):
                raise UserError(
                    f"params: {where}.{key} must be {_type_name(hints[key])}, got {value!r}"
                )
        obj = cls(**{k: (float(v) if hints[k] is float else v) for k, v in data.items()})
        for key, problem in obj.problems():
            raise UserError(f"params: {where}.{key} {problem}")
        return obj

    def problems(self):
        """Yield ``(key, message)`` for impossible values; subclasses add their checks."""
        return iter(())


def _positive(obj, *keys):
    for key in keys:
        if getattr(obj, key) <= 0:
            yield key, f"must be > 0, got {getattr(obj, key)}"


def _choice(obj, key, choices):
    if getattr(obj, key) not in choices:
        yield key, f"must be one of {', '.join(choices)}, got {getattr(obj, key)!r}"


@dataclass
class IngestConfig(Section):
    path: str = ""                  # raw file, relative to the repository root
    format: str = "lines"           # "lines": one item per line; "jsonl": one JSON object per line
    normalize: str = "name"         # "name": char-level rules; "news": the seed's word-level rules
    alphabet: str = "abcdefghijklmnopqrstuvwxyz"  # name rows with other characters are rejected
    lowercase: bool = True          # name rule: lowercase before checking the alphabet
    strip_accents: bool = True      # name rule: "zoë" -> "zoe" before checking the alphabet
    text_fields: list[str] = field(default_factory=lambda: ["short_description"])  # jsonl: joined by a space
    category_field: Optional[str] = None  # jsonl: kept for stratified splitting
    bad_rows_fatal: bool = False    # stop at the first rejected row instead of counting it

    def problems(self):
        if not self.path:
            yield "path", "must name the raw file"
        yield from _choice(self, "format", ("lines", "jsonl"))
        yield from _choice(self, "normalize", ("name", "news"))
        if self.normalize == "name" and not self.alphabet:
            yield "alphabet", "must not be empty"
        if self.format == "jsonl" and not self.text_fields:
            yield "text_fields", "must list at least one field"


@dataclass
class SplitConfig(Section):
    seed: int = 123                 # the seed notebook's random.seed(123)
    train: float = 0.8
    dev: float = 0.1
    test: float = 0.1
    stratify: bool = False          # keep the category mix in every split (needs a category field)

    def problems(self):
        for key in ("train", "dev", "test"):
            if not 0 < getattr(self, key) < 1:
                yield key, f"must be between 0 and 1, got {getattr(self, key)}"
        total = self.train + self.dev + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            yield "train", f"+ dev + test must sum to 1, got {total:g}"


VOCAB_LEVELS = ("char", "word", "bpe")


@dataclass
class VocabConfig(Section):
    level: str = "char"             # "char", "word" or "bpe" (byte-level BPE subwords)
    max_size: Optional[int] = None  # char/word: including the 4 special tokens; None keeps every token
    min_freq: int = 1               # char/word: rarer training tokens become <unk>; bpe: rarer pairs never merge
    vocab_size: int = 4000          # bpe only: tokens after merging, specials and the 256 bytes included

    def problems(self):
        yield from _choice(self, "level", VOCAB_LEVELS)
        if self.max_size is not None and self.max_size <= 4:
            yield "max_size", f"must be > 4 (the special tokens), got {self.max_size}"
        yield from _positive(self, "min_freq")
        if self.vocab_size < 4 + 256:
            yield "vocab_size", f"must be >= 260 (4 special tokens + 256 bytes), got {self.vocab_size}"


@dataclass
class TokenizationConfig(Section):
    """The tokenization comparison: one model per level, same settings, compared in bits/char."""

    levels: list[str] = field(default_factory=list)  # e.g. [word, bpe, char]; empty skips the stage's work
    kind: str = "gru"               # model kind trained at every level
    epochs: int = 1                 # overrides train.<corpus>.epochs (the rest of train.<corpus> is kept)
    seed: int = 0
    bpe_vocab_size: int = 4000      # the bpe level's vocab_size (word/char use vocab.<corpus>'s limits)
    train: dict = field(default_factory=dict)  # other train.<corpus> keys that differ for this comparison

    def problems(self):
        for level in self.levels:
            if level not in VOCAB_LEVELS:
                yield "levels", f"must list levels among {', '.join(VOCAB_LEVELS)}, got {level!r}"
        if len(set(self.levels)) != len(self.levels):
            yield "levels", f"must not repeat a level, got {self.levels}"
        yield from _choice(self, "kind", MODEL_KINDS)
        yield from _positive(self, "epochs")
        if self.bpe_vocab_size < 4 + 256:
            yield "bpe_vocab_size", f"must be >= 260 (4 special tokens + 256 bytes), got {self.bpe_vocab_size}"


@dataclass
class TrainConfig(Section):
    embedding_size: int = 96
    hidden_size: int = 96
    layers: int = 1
    dropout: float = 0.0            # on embeddings, between layers and on outputs
    dropout_mode: str = "standard"  # "locked": one dropout mask per sequence, the same at every time step
    tie_weights: bool = False       # share input and output embeddings (needs embedding == hidden)
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    epochs: int = 10
    grad_clip: Optional[float] = 5.0  # max gradient norm; None turns clipping off
    seeds: list[int] = field(default_factory=lambda: [0])  # one model per seed; the first is the headline
    max_len: int = 256              # training sequences are cut to this many tokens
    bucket: bool = False            # batch sequences of similar length (less padding)
    resume: bool = False            # continue from an interrupted run's per-epoch checkpoint
    workers: int = 2                # runs (kinds x seeds) trained in parallel processes (1: in turn)
    scheduler: str = "none"         # learning-rate schedule: none | plateau | cosine | onecycle
    warmup: Optional[float] = None  # cosine/onecycle: fraction of all steps spent rising to lr (null: 0 / 0.3)
    plateau_factor: float = 0.25    # plateau: multiply lr by this when dev loss stalls
    plateau_patience: int = 0       # plateau: epochs without a better dev loss before cutting lr
    early_stopping_patience: Optional[int] = None  # stop after this many epochs without a better dev loss
    nproc: int = 1                  # data-parallel processes per model (rnnlm.distributed); > 1 trains seeds in turn
    output: str = "full"            # full | adaptive: adaptive softmax for large word vocabularies
    adaptive_cutoffs: list[int] = field(default_factory=lambda: [2000, 10000])  # head, then tail clusters
    device: str = "cpu"             # auto | cpu | cuda | mps; auto takes an accelerator when present
    precision: str = "fp32"         # fp32 | bf16 (bf16 autocast, CUDA only)
    # {kind: {key: value}}: settings of one model kind that differ from the section's (for_kind)
    overrides: dict = field(default_factory=dict)

    # Shared by every kind of a corpus: the later stages read the seeds from the section itself.
    SHARED_KEYS = ("seeds", "workers", "nproc", "resume", "overrides")

    @classmethod
    def from_params(cls, data, where):
        cfg = super().from_params(data, where)
        for kind in cfg.overrides:
            cfg.for_kind(kind, where)  # every override is checked before any work, like the section
        return cfg

    def for_kind(self, kind, where="train"):
        """The settings ``kind`` trains with: the section's, with ``overrides[kind]`` applied."""
        return self.updated(self.overrides.get(kind) or {}, f"{where}.overrides.{kind}")

    def updated(self, changes, where):
        """These settings (without overrides) with ``changes`` applied, validated as the section ``where``."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "overrides"}
        return type(self).from_params(settings | changes, where)

    def problems(self):
        for kind, changes in self.overrides.items():
            if kind not in MODEL_KINDS:
                yield "overrides", f"names an unknown model kind {kind!r} (known: {', '.join(MODEL_KINDS)})"
            elif not isinstance(changes, dict):
                yield "overrides", f"of {kind} must be a mapping of keys to values, got {changes!r}"
            elif set(changes) & set(self.SHARED_KEYS):
                shared = sorted(set(changes) & set(self.SHARED_KEYS))[0]
                yield "overrides", f"of {kind} cannot set {shared}: it is shared by every kind of the corpus"
        yield from _positive(self, "embedding_size", "hidden_size", "layers", "lr", "batch_size", "epochs", "max_len", "workers",
                             "nproc")
        if not 0 <= self.dropout < 1:
            yield "dropout", f"must be in [0, 1), got {self.dropout}"
        yield from _choice(self, "dropout_mode", DROPOUT_MODES)
        yield from _choice(self, "scheduler", SCHEDULERS)
        if self.warmup is not None and not 0 <= self.warmup < 1:
            yield "warmup", f"must be in [0, 1) or null, got {self.warmup}"
        if self.scheduler == "onecycle" and self.warmup == 0:
            yield "warmup", "must be > 0 for onecycle (the share of steps rising to the peak), or null for 0.3"
        if not 0 < self.plateau_factor < 1:
            yield "plateau_factor", f"must be between 0 and 1, got {self.plateau_factor}"
        if self.plateau_patience < 0:
            yield "plateau_patience", f"must be >= 0, got {self.plateau_patience}"
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            yield "early_stopping_patience", f"must be >= 1 or null, got {self.early_stopping_patience}"
        if self.weight_decay < 0:
            yield "weight_decay", f"must be >= 0, got {self.weight_decay}"
        yield from _choice(self, "optimizer", OPTIMIZERS)
        if self.grad_clip is not None and self.grad_clip <= 0:
            yield "grad_clip", f"must be > 0 or null, got {self.grad_clip}"
        if not self.seeds:
            yield "seeds", "must list at least one seed"
        elif len(set(self.seeds)) != len(self.seeds):
            yield "seeds", f"must not repeat a seed, got {self.seeds}"
        if self.tie_weights and self.embedding_size != self.hidden_size:
            yield "tie_weights", "needs embedding_size == hidden_size"
        yield from _choice(self, "output", OUTPUTS)
        if self.output == "adaptive":
            if self.tie_weights:
                yield "tie_weights", "needs output: full (the adaptive output has no single weight matrix)"
            cuts = self.adaptive_cutoffs
            if not cuts or cuts[0] < 1 or any(b <= a for a, b in zip(cuts, cuts[1:])):
                yield "adaptive_cutoffs", f"must be increasing positive token counts, got {cuts}"
        yield from _device_problems(self)


def _device_problems(obj):
    yield from _choice(obj, "device", DEVICES)
    if hasattr(obj, "precision"):
        yield from _choice(obj, "precision", PRECISIONS)
        if obj.precision == "bf16" and obj.device in ("cpu", "mps"):
            yield "precision", f"bf16 autocast needs a CUDA device (device is {obj.device}); use fp32"


@dataclass
class EvaluateConfig(Section):
    batch_size: int = 256
    device: str = "cpu"             # auto | cpu | cuda | mps, as train's device

    def problems(self):
        yield from _positive(self, "batch_size")
        yield from _device_problems(self)


@dataclass
class GenerateConfig(Section):
    num_samples: int = 20           # unconditional samples per model
    prompts: list[str] = field(default_factory=list)
    samples_per_prompt: int = 5
    temperature: float = 0.8
    top_k: Optional[int] = 5        # None samples from the whole vocabulary
    max_tokens: int = 30
    seed: int = 0
    device: str = "cpu"             # auto | cpu | cuda | mps; draws stay on the CPU generator either way

    def problems(self):
        yield from _device_problems(self)
        yield from _positive(self, "num_samples", "temperature", "max_tokens")
        if self.samples_per_prompt < 0:
            yield "samples_per_prompt", f"must be >= 0, got {self.samples_per_prompt}"
        if self.top_k is not None and self.top_k < 1:
            yield "top_k", f"must be >= 1 or null, got {self.top_k}"


@dataclass
class NgramConfig(Section):
    order: int = 3                  # n of the n-gram model
    discount: float = 0.75          # absolute discount of interpolated Kneser-Ney

    def problems(self):
        yield from _positive(self, "order")
        if not 0 < self.discount < 1:
            yield "discount", f"must be between 0 and 1, got {self.discount}"


@dataclass
class MixtureConfig(Section):
    model: str = "lstm"             # the recurrent kind mixed with the n-gram model (row "<kind>+ngram")

    def problems(self):
        yield from _choice(self, "model", MODEL_KINDS)


def mixture_name(kind):
    """The report's and metrics file's name of ``kind`` mixed with the n-gram model: ``lstm+ngram``."""
    return f"{kind}+ngram"


def check_model_kind(kind):
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return kind
