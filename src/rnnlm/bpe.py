"""Byte-pair encoding with the ``tokenizers`` library: train on items, save and load its own JSON.

BPE starts from single symbols and repeatedly merges the most frequent adjacent pair in the
training items into a new symbol, until the vocabulary has ``vocab_size`` entries; common words end
up as one token, rare words as a few pieces. Here the symbols are bytes (GPT-2's byte-level BPE):

- normalizer ``NFC``: a composed and a decomposed "é" become the same bytes, so the same tokens;
- pre-tokenizer ``ByteLevel(add_prefix_space=True)``: splits words (GPT-2's pattern) and maps each
  byte to a printable stand-in, a space becoming ``Ġ``; the prefix space gives an item's first word
  the same tokens as the same word mid-sentence;
- model ``BPE`` whose initial alphabet holds all 256 bytes: any text can be encoded, so no test
  token is ever ``<unk>`` (OOV rate 0), and merges are learnt from the training items only;
- decoder ``ByteLevel`` then ``Strip`` of the one prefix space: decoding gives the (normalized)
  text back, with no ``Ġ`` left.

The special tokens are the trainer's first entries, so they keep ids 0, 1, 2, ... in the order given.

A stream (``rnnlm.textstream``) gets no prefix space (``prefix_space=False``): it is one text, cut into
splits at pre-tokenizer pieces, and without a space added at each split's start, the splits encoded one by
one give the tokens of the whole text.
"""

import json

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from .errors import UserError


def train_bpe(items, vocab_size, specials, min_freq=1, prefix_space=True):
    """A byte-level BPE tokenizer trained on ``items`` (iterable of strings), specials first;
    ``prefix_space=False`` for a stream (module docstring)."""
    unk = specials[1] if len(specials) > 1 else None
    tokenizer = Tokenizer(models.BPE(unk_token=unk))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tokenizer.decoder = (decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)]) if prefix_space
                         else decoders.ByteLevel())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_freq,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(items, trainer=trainer)
    return tokenizer


def tokenizer_to_dict(tokenizer):
    """The library's own JSON, as plain data (a checkpoint stores it inside the vocabulary)."""
    return json.loads(tokenizer.to_str())


def tokenizer_from_dict(data, source="tokenizer"):
    try:
        return Tokenizer.from_str(json.dumps(data))
    except Exception as err:  # the library raises plain Exception on malformed JSON
        raise UserError(f"{source}: not a tokenizers JSON ({str(err).splitlines()[0]})") from None


def vocab_tokens(tokenizer):
    """Every token string in id order (ids 0..n-1)."""
    return [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
