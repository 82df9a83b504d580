"""``train.<corpus>``: how every model kind of a corpus trains (the train stage), with per-kind overrides."""

import typing
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ..kinds import ModelKind
from .base import Device, Fraction, Positive, Precision, Section, Share, rule


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
    # Streams (one long text, ingest format: text; items ignore both): chunks of bptt tokens per row,
    # the state carried from chunk to chunk (rnnlm.streams); variable_bptt draws each chunk's length
    # around bptt and scales its learning rate by length / bptt (AWD-LSTM)
    bptt: Positive
    variable_bptt: bool
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
        rule(len(set(seeds)) == len(seeds), "must not repeat a seed,", f"got {seeds}")
        return seeds

    @field_validator("overrides")
    @classmethod
    def _no_shared_keys(cls, overrides):
        for kind, changes in overrides.items():
            shared = sorted(set(changes) & set(cls.SHARED_KEYS))
            rule(not shared, f"of {kind} cannot set", f"{shared[0] if shared else ''}: it is shared by every kind")
        return overrides

    @model_validator(mode="after")
    def _rules_across_keys(self):
        rule(self.scheduler != "onecycle" or self.warmup != 0, "warmup",
              "must be > 0 for onecycle (the share of steps rising to the peak), or null for 0.3, got 0")
        if self.output == "adaptive":
            cuts = self.adaptive_cutoffs
            rule(cuts and cuts[0] >= 1 and all(b > a for a, b in zip(cuts, cuts[1:])), "adaptive_cutoffs",
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

    def shadowed(self, kind):
        """``{key: (section's value, override's value)}``: the keys of the section that ``overrides[kind]``
        sets to another value, so a change of the section's key (``-S train.<corpus>.<key>=...``) does not
        reach ``kind``. An override equal to the section's value shadows nothing yet, but it will the
        moment the section's key changes: it is listed too, as ``(value, value)``."""
        return {key: (getattr(self, key), value) for key, value in (self.overrides.get(kind) or {}).items()}

    def describe_overrides(self, kind):
        """One line of what ``kind`` trains with apart from the section (None without overrides), for
        the train stage: ``lstm: epochs=14 (override), dropout_mode=locked (override), ...``."""
        shadowed = self.shadowed(kind)
        if not shadowed:
            return None
        return f"{kind}: " + ", ".join(f"{key}={_text(value)} (override)" for key, (_, value) in shadowed.items())

    def shadow_warning(self, kind, where="train"):
        """One line naming the section keys that ``overrides[kind]`` sets to another value (None if none):
        ``train.news.epochs=8, train.news.weight_drop=0.0 do not apply to lstm: train.news.overrides.lstm
        sets epochs=14, weight_drop=0.25``. The stage cannot see a ``-S`` on dvc's command line, so it names
        every shadowed key: a user who changed one sees it here."""
        keys = {key: pair for key, pair in self.shadowed(kind).items() if pair[0] != pair[1]}
        if not keys:
            return None
        section = ", ".join(f"{where}.{key}={_text(old)}" for key, (old, _) in keys.items())
        override = ", ".join(f"{key}={_text(new)}" for key, (_, new) in keys.items())
        return (f"{section} {'does' if len(keys) == 1 else 'do'} not apply to {kind}: "
                f"{where}.overrides.{kind} sets {override}")


def _text(value):
    """A params value as params.yaml writes it: locked, 14, null, [500, 4000]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _device_rule(cfg):
    rule(not (cfg.precision == "bf16" and cfg.device in ("cpu", "mps")), "precision",
         f"bf16 autocast needs a CUDA device (device is {cfg.device}); use fp32")
