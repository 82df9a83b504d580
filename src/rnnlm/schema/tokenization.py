"""``tokenization.<corpus>``: the comparison of tokenization levels (the tokenization stage)."""

from pydantic import field_validator

from ..kinds import ModelKind
from .base import Positive, Section, rule
from .vocab import BpeSize, VocabLevel


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
        rule(len(set(levels)) == len(levels), "must not repeat a level,", f"got {levels}")
        return levels
