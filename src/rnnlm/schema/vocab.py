"""``vocab.<corpus>``: the tokenization level and the vocabulary's limits (the vocab stage)."""

import typing
from typing import Annotated, Literal, Optional

from pydantic import Field

from .base import Positive, Section

VocabLevel = Literal["char", "word", "bpe"]
VOCAB_LEVELS = typing.get_args(VocabLevel)
BpeSize = Annotated[int, Field(ge=4 + 256)]             # 4 special tokens + 256 bytes
# How level word splits a line (rnnlm.text.PRETOKENIZERS): "words", the basic_english rule that isolates
# apostrophes (don't -> don ' t); "whitespace", the whitespace-separated tokens as given (WikiText, PTB)
Pretokenize = Literal["words", "whitespace"]


class VocabConfig(Section):
    level: VocabLevel               # "char", "word" or "bpe" (byte-level BPE subwords)
    max_size: Optional[Annotated[int, Field(gt=4)]]  # char/word: the 4 special tokens included; null keeps all
    min_freq: Positive              # char/word: rarer training tokens become <unk>; bpe: rarer pairs never merge
    vocab_size: BpeSize             # bpe only: tokens after merging, specials and the 256 bytes included
    # word only (char and bpe ignore it); left out or null: "whitespace" for a folder of predefined split
    # files (a corpus shipped as tokens), "words" otherwise (rnnlm.textstream.resolve_pretokenize)
    pretokenize: Optional[Pretokenize] = None
