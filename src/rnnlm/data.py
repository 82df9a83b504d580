"""Encoded corpora as compact integer arrays, and the batches a model trains on.

Items are tokenized once (in the vocab stage) into one flat int32 array per split plus offsets,
saved as ``.npz``; training then only slices arrays. Encoding goes a chunk of items at a time
straight into int32 arrays, so the only thing that grows with the corpus is the arrays themselves
(4 bytes a token, 16 an item), never Python lists of ids. Batches are padded per batch, not to a
global length, and with ``bucket=True`` sequences of similar length are batched together, so almost
no work is spent on padding.

A **stream** split (one long text, ``rnnlm.textstream``) is ONE item ``<s> t0 t1 ... t(N-1)``
with no ``</s>``: the ``<s>`` is the zero-state start that predicts ``t0``, so all N tokens are
targets; ``chars`` holds the number of characters of the split's text, and ``stream`` is True (saved
in the ``.npz`` as ``<split>_stream``, only for streams). Streams are batched by ``rnnlm.streams``.
"""

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError
from .io import atomic_write, require_file

SPLITS = ("train", "dev", "test")


@dataclass
class EncodedSplit:
    """Token ids of one split: item ``i`` is ``tokens[offsets[i]:offsets[i+1]]`` (with <s> and </s>)."""

    tokens: np.ndarray   # (total_tokens,) int32
    offsets: np.ndarray  # (items + 1,) int64
    chars: np.ndarray    # (items,) int64: characters each item covers, its end counted as one
    stream: bool = False  # one long text: one item <s> t0 ... t(N-1), chars = [its characters]

    def __len__(self):
        return len(self.offsets) - 1

    def item(self, i):
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def num_targets(self):
        """Predicted tokens: every token but each item's leading <s>."""
        return int(self.offsets[-1] - len(self))

    def target_counts(self, vocab_size):
        """How often each id is a target (every token but each item's leading <s>): (vocab_size,) int64."""
        counts = np.bincount(self.tokens, minlength=vocab_size).astype(np.int64)
        counts -= np.bincount(self.tokens[self.offsets[:-1]], minlength=vocab_size)
        return counts


ENCODE_CHUNK = 4096  # items encoded at once: bounds the encoder's temporary lists and objects


def encode_split(vocab, items, chunk_size=None):
    """Encode ``items`` (any iterable, read once) into an EncodedSplit, ``chunk_size`` at a time."""
    items, chunk_size = iter(items), chunk_size or ENCODE_CHUNK
    # Each list starts with an empty array of the right type, so no items gives empty arrays too.
    tokens = [np.empty(0, dtype=np.int32)]
    lengths = [np.empty(0, dtype=np.int64)]
    chars = [np.empty(0, dtype=np.int64)]
    while chunk := list(itertools.islice(items, chunk_size)):
        ids = vocab.encode_many(chunk)
        lengths.append(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)))
        flat = itertools.chain.from_iterable(ids)
        tokens.append(np.fromiter(flat, dtype=np.int32, count=int(lengths[-1].sum())))
        chars.append(np.fromiter((len(item) + 1 for item in chunk), dtype=np.int64, count=len(chunk)))
    lengths = np.concatenate(lengths)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return EncodedSplit(np.concatenate(tokens), offsets, np.concatenate(chars))


def encode_stream(vocab, text):
    """One stream's text (a split's exact piece of it) as an EncodedSplit: the item ``<s> t0 ... t(N-1)``."""
    tokens = np.asarray([vocab.bos_id, *vocab.stream_ids(text)], dtype=np.int32)
    return EncodedSplit(tokens, np.array([0, len(tokens)], dtype=np.int64), np.array([len(text)], dtype=np.int64),
                        stream=True)


def joined_streams(first, second):
    """Two consecutive pieces of a stream (dev, then test) as one, scored from one zero state: the
    second's ``<s>`` dropped, characters added."""
    if not (first.stream and second.stream):
        raise ValueError("only stream splits join into one stream")
    tokens = np.concatenate([first.tokens, second.tokens[1:]])
    return EncodedSplit(tokens, np.array([0, len(tokens)], dtype=np.int64), first.chars + second.chars, stream=True)


def save_encoded(path, splits):
    arrays = {}
    for name, split in splits.items():
        arrays[f"{name}_tokens"] = split.tokens
        arrays[f"{name}_offsets"] = split.offsets
        arrays[f"{name}_chars"] = split.chars
        if split.stream:  # only then: an item corpus's archive stays as it was
            arrays[f"{name}_stream"] = np.array(True)
    # np.savez stamps no times into the archive, so equal arrays give byte-identical files.
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_encoded(path):
    path = require_file(path, what="encoded corpus")
    with np.load(path) as npz:
        try:
            return {
                name: EncodedSplit(npz[f"{name}_tokens"], npz[f"{name}_offsets"], npz[f"{name}_chars"],
                                   stream=f"{name}_stream" in npz.files and bool(npz[f"{name}_stream"]))
                for name in SPLITS
            }
        except KeyError as err:
            raise UserError(f"{path}: missing array {err}; rebuild it with `dvc repro`") from None


def batch_indices(lengths, batch_size, rng=None, bucket=False):
    """Group item indices into batches: shuffled if ``rng`` is given, length-bucketed if asked.

    Bucketing sorts items by length within windows of 50 batches and then shuffles the batch
    order, so batches hold similar lengths (little padding) but still come in random order.
    """
    order = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    if bucket:
        window = batch_size * 50
        chunks = [order[i : i + window] for i in range(0, len(order), window)]
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if bucket and rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def make_batch(split, indices, pad_id, max_len=None):
    """Inputs and targets for the given items, right-padded with ``pad_id``.

    Returns ``x`` (B, T) and ``y`` (B, T) int64 tensors; ``y == pad_id`` marks padding. Padding
    sits after the real tokens, so a causal model's outputs at real positions never see it.
    """
    seqs = [split.item(i) for i in indices]
    if max_len is not None:
        seqs = [s[: max_len + 1] for s in seqs]
    width = max(len(s) for s in seqs) - 1
    x = np.full((len(seqs), width), pad_id, dtype=np.int64)
    y = np.full((len(seqs), width), pad_id, dtype=np.int64)
    for row, s in enumerate(seqs):
        x[row, : len(s) - 1] = s[:-1]
        y[row, : len(s) - 1] = s[1:]
    return torch.from_numpy(x), torch.from_numpy(y)


def epoch_batches(split, batches, pad_id, max_len=None):
    """``make_batch`` for every batch of an epoch, done before training starts.

    Returns ``[(x, y, tokens), ...]`` where ``tokens`` (an int) counts the batch's real targets,
    known from the lengths alone, so the training loop never has to ask a tensor for it.
    """
    lengths = split.lengths
    out = []
    for indices in batches:
        x, y = make_batch(split, indices, pad_id, max_len)
        real = lengths[indices] if max_len is None else np.minimum(lengths[indices], max_len + 1)
        out.append((x, y, int(real.sum() - len(indices))))
    return out
