"""``vocab.<corpus>``: the tokenization level and the vocabulary's limits (the vocab stage)."""

import typing
from typing import Annotated, Literal, Optional

from pydantic import Field

from .base import Positive, Section

VocabLevel = Literal["char", "word", "bpe"]
VOCAB_LEVELS = typing.get_args(VocabLevel)
BpeSize = Annotated[int, Field(ge=4 + 256)]             # 4 special tokens + 256 bytes


class VocabConfig(Section):
    level: VocabLevel               # "char", "word" or "bpe" (byte-level BPE subwords)
    max_size: Optional[Annotated[int, Field(gt=4)]]  # char/word: the 4 special tokens included; null keeps all
    min_freq: Positive              # char/word: rarer training tokens become <unk>; bpe: rarer pairs never merge
    vocab_size: BpeSize             # bpe only: tokens after merging, specials and the 256 bytes included
