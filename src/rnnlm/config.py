"""Typed, validated configuration: one pydantic model per ``params.yaml`` section.

``params.yaml`` is the single source of truth, defaults included: these models have none, so a
key missing from the file is an error, not a silent fallback (a key that may be ``null``, "off",
is stated as ``null`` there). A stage turns its section into one of these with ``from_params``
before doing any work; every constraint sits in a field's type (``Literal`` for choices,
``Field(gt=0)`` for ranges, strict types so ``"96"`` is not an int), validators only check rules
that span fields. Each problem becomes one line naming the dotted key and the bad value::

    params: train.names.hidden_size must be > 0, got 0

The library itself never opens ``params.yaml``.
"""

import math
import typing
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from .errors import UserError
from .kinds import MODEL_KINDS

# The kinds rnnlm.models implements (rnnlm.kinds); params.yaml's `kinds` says which the pipeline trains.
ModelKind = Literal[MODEL_KINDS]
VocabLevel = Literal["char", "word", "bpe"]
Device = Literal["auto", "cpu", "cuda", "mps"]  # resolved to a torch device by rnnlm.devices
Precision = Literal["fp32", "bf16"]
VOCAB_LEVELS = typing.get_args(VocabLevel)
DEVICES = typing.get_args(Device)
PRECISIONS = typing.get_args(Precision)

Positive = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]          # strictly between 0 and 1
Share = Annotated[float, Field(ge=0, lt=1)]             # in [0, 1)
BpeSize = Annotated[int, Field(ge=4 + 256)]             # 4 special tokens + 256 bytes
# Sampling settings, shared by the generate stage and `rnnlm sample` (cli.py checks its flags with them).
Temperature = Annotated[float, Field(gt=0)]
TopK = Optional[Annotated[int, Field(ge=1)]]            # null: the whole vocabulary


def _bounds(field):
    """The range constraints of a field, its nested ``Optional[Annotated[...]]`` included."""
    found, todo = {}, [*field.metadata, field.annotation]
    while todo:
        item = todo.pop()
        for name in ("gt", "ge", "lt", "le"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
        # Annotated's metadata holds a pydantic FieldInfo, whose own metadata holds the bounds
        todo += [*getattr(item, "__metadata__", ()), *getattr(item, "metadata", ()), *typing.get_args(item)]
    return found


def _range_text(bounds):
    low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds["ge"]) if "ge" in bounds else None
    high = (")", bounds["lt"]) if "lt" in bounds else ("]", bounds["le"]) if "le" in bounds else None
    if low and high:
        return f"must be in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f"must be {'>' if low[0] == '(' else '>='} {low[1]:g}"
    return f"must be {'<' if high[0] == ')' else '<='} {high[1]:g}"


TYPE_NAMES = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str",
              "list_type": "list", "dict_type": "a mapping"}


def _problem(err, where, cls):
    """One line for one pydantic error: the dotted key, what it must be, the bad value."""
    loc, kind, ctx = [str(p) for p in err["loc"]], err["type"], err.get("ctx", {})
    field = cls.model_fields.get(loc[0]) if loc and cls is not None else None
    key = ".".join([where, *loc]) if where else ".".join(loc)
    if kind == "value_error":       # a validator's rule: its message starts with the key when loc is empty
        return f"{key}{' ' if loc else '.'}{ctx['error']}" if key else str(ctx["error"])
    if kind == "missing":
        return f"{key} is missing (params.yaml states every key; null where it may be off)"
    if kind == "extra_forbidden":
        known = f" (known keys: {', '.join(cls.model_fields)})" if cls is not None and len(loc) == 1 else ""
        return f"unknown key {key}{known}"
    if loc and loc[-1] == "[key]":  # a mapping's key, e.g. a kind under overrides
        key = ".".join([where, *loc[:-2]]) if where else ".".join(loc[:-2])
        if "expected" not in ctx:   # a key of the wrong form, e.g. a corpus name with a space
            return f"{key} has a bad key {err['input']!r}: {err['msg'][0].lower()}{err['msg'][1:]}"
        return f"{key} names an unknown key {err['input']!r} (known: {ctx['expected'].replace(chr(39), '')})"
    if kind == "literal_error":
        text = f"must be one of {ctx['expected'].replace(chr(39), '').replace(' or ', ', ')}"
    elif kind in TYPE_NAMES:
        text = f"must be {TYPE_NAMES[kind]}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        text = _range_text(_bounds(field) if field is not None and len(loc) == 1 else ctx)
    elif kind in ("too_short", "string_too_short"):
        text = "must not be empty"
    else:
        text = err["msg"]
    nullable = field is not None and len(loc) == 1 and type(None) in typing.get_args(field.annotation)
    return f"{key} {text}{' or null' if nullable else ''}, got {err['input']!r}"


def _raise_problems(err, where, cls=None, prefix="params: "):
    raise UserError("\n".join(prefix + _problem(e, where, cls) for e in err.errors())) from None


def check_value(annotation, value, name):
    """``value`` checked against a schema type (e.g. :data:`Temperature`) outside params.yaml: a
    command-line option called ``name``. Returns the validated value; a bad one is a ``UserError``."""
    try:
        return TypeAdapter(annotation, config=ConfigDict(strict=True)).validate_python(value)
    except ValidationError as err:
        _raise_problems(err, name, prefix="")


class Section(BaseModel):
    """A params section: unknown keys, wrong types and impossible values are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def from_params(cls, data, where):
        if not isinstance(data, dict):
            raise UserError(f"params: {where} must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            _raise_problems(err, where, cls)

    def updated(self, changes, where=None):
        """These settings with ``changes`` applied, validated as the section ``where``."""
        return type(self).from_params(self.model_dump() | dict(changes), where or type(self).__name__)


def _rule(ok, key, text):
    """A rule spanning fields (a model validator): the message names ``key`` first."""
    if not ok:
        raise ValueError(f"{key} {text}")


class Pipeline(Section):
    """params.yaml's top-level lists: what the pipeline builds (dvc.yaml's foreach reads ``corpora``)."""

    corpora: Annotated[dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")], Annotated[str, Field(min_length=1)]],
                       Field(min_length=1)]    # corpus name -> its raw file, relative to the repository root
    kinds: Annotated[list[ModelKind], Field(min_length=1)]   # the model kinds trained for every corpus

    @model_validator(mode="after")
    def _distinct_kinds(self):
        _rule(len(set(self.kinds)) == len(self.kinds), "kinds", f"lists a kind twice: {self.kinds}")
        return self


class IngestConfig(Section):
    format: Literal["lines", "jsonl"]  # "lines": one item per line; "jsonl": one JSON object per line
    normalize: Literal["name", "news"]  # "name": char-level rules; "news": the seed's word-level rules
    # The name rules (normalize: name; the news rules take no settings, so news leaves them out):
    alphabet: Optional[Annotated[str, Field(min_length=1)]] = None  # name rows with other characters are rejected
    lowercase: Optional[bool] = None        # lowercase before checking the alphabet
    strip_accents: Optional[bool] = None    # "zoë" -> "zoe" before checking the alphabet
    # The jsonl fields (a lines file leaves them out):
    text_fields: Optional[Annotated[list[str], Field(min_length=1)]] = None  # joined by a space
    category_field: Optional[str] = None    # kept for stratified splitting; None: no category
    bad_rows_fatal: bool                    # stop at the first rejected row instead of counting it

    @model_validator(mode="after")
    def _rules_of_the_mode(self):
        if self.normalize == "name":
            for key in ("alphabet", "lowercase", "strip_accents"):
                _rule(getattr(self, key) is not None, key, "must be set for normalize: name")
        _rule(self.format != "jsonl" or self.text_fields is not None, "text_fields", "must be set for format: jsonl")
        return self


class SplitConfig(Section):
    seed: int                       # the seed notebook's random.seed(123)
    train: Fraction
    dev: Fraction
    test: Fraction
    stratify: bool                  # keep the category mix in every split (needs a category field)

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = self.train + self.dev + self.test
        _rule(math.isclose(total, 1.0, abs_tol=1e-9), "train", f"+ dev + test must sum to 1, got {total:g}")
        return self


class VocabConfig(Section):
    level: VocabLevel               # "char", "word" or "bpe" (byte-level BPE subwords)
    max_size: Optional[Annotated[int, Field(gt=4)]]  # char/word: the 4 special tokens included; null keeps all
    min_freq: Positive              # char/word: rarer training tokens become <unk>; bpe: rarer pairs never merge
    vocab_size: BpeSize             # bpe only: tokens after merging, specials and the 256 bytes included


class TokenizationConfig(Section):
    """The tokenization comparison: one model per level, same settings, compared in bits/char."""

    levels: list[VocabLevel]        # e.g. [word, bpe, char]; empty skips the stage's work
    kind: ModelKind                 # model kind trained at every level
    epochs: Positive                # overrides train.<corpus>.epochs (the rest of train.<corpus> is kept)
    seed: int
    bpe_vocab_size: BpeSize         # the bpe level's vocab_size (word/char use vocab.<corpus>'s limits)
    train: dict                     # other train.<corpus> keys that differ for this comparison

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels):
        _rule(len(set(levels)) == len(levels), "must not repeat a level,", f"got {levels}")
        return levels


class TrainConfig(Section):
    embedding_size: Positive
    hidden_size: Positive           # recurrent state; mlp hidden layers; transformer model width
    layers: Positive
    context: Positive               # mlp: tokens in its window
    heads: Positive                 # transformer: attention heads (hidden_size must be a multiple)
    ff_size: Positive               # transformer: feed-forward width
    dropout: Share                  # on embeddings, between layers and on outputs
    dropout_mode: Literal["standard", "locked"]  # locked: one mask per sequence, the same at every step
    embedding_dropout: Share        # share of word types dropped from a batch's embeddings
    weight_drop: Share              # recurrent kinds: DropConnect on the hidden-to-hidden weights
    activation_reg: Annotated[float, Field(ge=0)]  # recurrent kinds: AR, alpha * mean squared output
    temporal_reg: Annotated[float, Field(ge=0)]    # recurrent kinds: TAR, beta * mean squared step change
    average_start: Optional[Share]  # share of training steps after which the weights are averaged (null: off)
    tie_weights: bool               # one matrix for input and output embeddings (adaptive: the head's words)
    optimizer: Literal["adam", "adamw", "sgd"]
    lr: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    batch_size: Positive
    epochs: Positive
    grad_clip: Optional[Annotated[float, Field(gt=0)]]  # max gradient norm; null turns clipping off
    seeds: Annotated[list[int], Field(min_length=1)]    # one model per seed; the first is the headline
    max_len: Positive               # training sequences are cut to this many tokens
    bucket: bool                    # batch sequences of similar length (less padding)
    resume: bool                    # continue from an interrupted run's per-epoch checkpoint
    workers: Positive               # runs (kinds x seeds) trained in parallel processes (1: in turn)
    scheduler: Literal["none", "plateau", "cosine", "onecycle"]  # see schedules.py
    warmup: Optional[Share]         # cosine/onecycle: share of all steps rising to lr (null: 0 / 0.3)
    plateau_factor: Fraction        # plateau: multiply lr by this when dev loss stalls
    plateau_patience: Annotated[int, Field(ge=0)]  # plateau: epochs without a better dev loss before cutting lr
    early_stopping_patience: Optional[Annotated[int, Field(ge=1)]]  # null: never stop early
    nproc: Positive                 # data-parallel processes per model (rnnlm.distributed); > 1 trains seeds in turn
    output: Literal["full", "adaptive"]  # adaptive softmax for large word vocabularies
    adaptive_cutoffs: list[int]     # output: adaptive: head, then tail clusters
    device: Device                  # auto takes an accelerator when present
    precision: Precision            # bf16: bf16 autocast, CUDA only
    # {kind: {key: value}}: settings of one model kind that differ from the section's (for_kind)
    overrides: dict[ModelKind, dict]

    # Shared by every kind of a corpus: the later stages read the seeds from the section itself.
    SHARED_KEYS: typing.ClassVar = ("seeds", "workers", "nproc", "resume", "overrides")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds):
        _rule(len(set(seeds)) == len(seeds), "must not repeat a seed,", f"got {seeds}")
        return seeds

    @field_validator("overrides")
    @classmethod
    def _no_shared_keys(cls, overrides):
        for kind, changes in overrides.items():
            shared = sorted(set(changes) & set(cls.SHARED_KEYS))
            _rule(not shared, f"of {kind} cannot set", f"{shared[0] if shared else ''}: it is shared by every kind")
        return overrides

    @model_validator(mode="after")
    def _rules_across_keys(self):
        _rule(self.scheduler != "onecycle" or self.warmup != 0, "warmup",
              "must be > 0 for onecycle (the share of steps rising to the peak), or null for 0.3, got 0")
        if self.output == "adaptive":
            cuts = self.adaptive_cutoffs
            _rule(cuts and cuts[0] >= 1 and all(b > a for a, b in zip(cuts, cuts[1:])), "adaptive_cutoffs",
                  f"must be increasing positive token counts, got {cuts}")
        _device_rule(self)
        return self

    @classmethod
    def from_params(cls, data, where):
        cfg = super().from_params(data, where)
        for kind in cfg.overrides:
            cfg.for_kind(kind, where)  # every override is checked before any work, like the section
        return cfg

    def for_kind(self, kind, where="train"):
        """The settings ``kind`` trains with: the section's, with ``overrides[kind]`` applied."""
        return self.updated(self.overrides.get(kind) or {}, f"{where}.overrides.{kind}")

    def updated(self, changes, where=None):
        """These settings (without overrides) with ``changes`` applied, validated as the section ``where``."""
        return super().updated({"overrides": {}} | dict(changes), where)


def _device_rule(cfg):
    _rule(not (cfg.precision == "bf16" and cfg.device in ("cpu", "mps")), "precision",
          f"bf16 autocast needs a CUDA device (device is {cfg.device}); use fp32")


class EvaluateConfig(Section):
    batch_size: Positive
    device: Device


class GenerateConfig(Section):
    num_samples: Positive           # unconditional samples per model
    prompts: list[str]
    samples_per_prompt: Annotated[int, Field(ge=0)]
    temperature: Temperature
    top_k: TopK                     # null samples from the whole vocabulary
    max_tokens: Positive
    seed: int
    device: Device                  # draws stay on the CPU generator either way


class NgramConfig(Section):
    """The modified Kneser-Ney baseline of one corpus: the orders among which dev chooses (rnnlm.ngram)."""

    min_order: Positive             # the smallest n tried
    max_order: Positive             # the largest n tried: the counts are fit once for it

    @model_validator(mode="after")
    def _range(self):
        _rule(self.min_order <= self.max_order, "min_order",
              f"must be <= max_order, got {self.min_order} > {self.max_order}")
        return self


class MixtureConfig(Section):
    # the trained kind, or list of kinds, mixed with the n-gram model (row "lstm+transformer+ngram")
    model: Annotated[list[ModelKind], Field(min_length=1)]

    @field_validator("model", mode="before")
    @classmethod
    def _one_kind_is_a_list_of_one(cls, model):
        return [model] if isinstance(model, str) else model

    @field_validator("model")
    @classmethod
    def _distinct(cls, model):
        _rule(len(set(model)) == len(model), "must not repeat a kind,", f"got {model}")
        return model

    @property
    def kinds(self):
        """The mixed kinds, in the order given."""
        return list(self.model)


def mixture_name(kinds):
    """The report's and metrics file's name of ``kinds`` mixed with the n-gram model: ``lstm+ngram``,
    ``lstm+transformer+ngram``."""
    return "+".join([kinds] if isinstance(kinds, str) else kinds) + "+ngram"


def check_model_kind(kind):
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return kind
