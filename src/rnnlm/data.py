"""Encoded corpora as compact integer arrays, and which items go into which batch (``batch_indices``;
``rnnlm.batches`` makes the tensors, so the stages that only read and write arrays never load torch).

Items are tokenized once (in the vocab stage) into one flat int32 array per split plus offsets,
saved as ``.npz``; training then only slices arrays. Encoding goes a chunk of items at a time
straight into int32 arrays, so the only thing that grows with the corpus is the arrays themselves
(4 bytes a token, 16 an item), never Python lists of ids. Batches are padded per batch, not to a
global length, and with ``bucket=True`` sequences of similar length are batched together, so almost
no work is spent on padding.

A **stream** split (one long text, ``rnnlm.textstream``) is ONE item ``<s> t0 t1 ... t(N-1)``
with no ``</s>``: the ``<s>`` is the zero-state start that predicts ``t0``, so all N tokens are
targets; ``chars`` holds the number of characters of the split's text, and ``stream`` is True. Streams
are batched by ``rnnlm.streams``.

**On disk** the vocab stage writes a folder per corpus (``data/encoded/<corpus>``):

- items: ``items.npz``, each split's ``tokens``, ``offsets`` and ``chars`` arrays;
- a stream: each split's ids as a flat little-endian binary array, ``train.bin``, ``dev.bin``,
  ``test.bin``, as nanoGPT's ``train.bin`` (uint16 while the vocabulary fits, else uint32), and
  ``stream.json`` (the dtype, and each split's tokens and characters). ``load_encoded`` memory-maps the
  arrays (``np.memmap``), so a stream larger than memory trains and evaluates in bounded memory: a step
  reads its chunk's rows (``rnnlm.streams.StreamChunks``), and whole passes (``token_blocks``) read the
  file a block at a time, never mapping all of it in. ``StreamWriter`` writes them a block at a time.

``save_encoded``/``load_encoded`` also read and write one ``.npz`` file of either shape (the tests' fixtures).
"""

import contextlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import UserError
from .io import atomic_write, require_file, write_json

SPLITS = ("train", "dev", "test")
BLOCK_TOKENS = 1 << 22  # tokens a whole pass over a stream holds at once (16 MiB as int32)
ITEMS_FILE, STREAM_FILE = "items.npz", "stream.json"  # in an encoded folder (module docstring)


@dataclass
class EncodedSplit:
    """Token ids of one split: item ``i`` is ``tokens[offsets[i]:offsets[i+1]]`` (with <s> and </s>)."""

    tokens: np.ndarray   # (total_tokens,) int32
    offsets: np.ndarray  # (items + 1,) int64
    chars: np.ndarray    # (items,) int64: characters each item covers, its end counted as one
    stream: bool = False  # one long text: one item <s> t0 ... t(N-1), chars = [its characters]
    source: Optional[Path] = None  # a mapped stream's .bin file: whole passes read it, not the map

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
        counts = np.zeros(vocab_size, dtype=np.int64)
        for block in self.token_blocks():
            counts += np.bincount(block, minlength=vocab_size)
        counts -= np.bincount(self.tokens[self.offsets[:-1]], minlength=vocab_size)
        return counts

    def token_blocks(self, size=BLOCK_TOKENS):
        """``tokens`` in consecutive blocks of ``size``: read from the file of a mapped stream, so a whole pass
        holds one block (a pass over the map would keep every page it read resident)."""
        if self.source is None:
            for start in range(0, len(self.tokens), size):
                yield self.tokens[start:start + size]
            return
        with open(self.source, "rb") as f:
            while (block := np.fromfile(f, dtype=self.tokens.dtype, count=size)).size:
                yield block


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


def stream_dtype(vocab_size):
    """The narrowest unsigned type of a stream's ids: uint16 while the vocabulary fits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32).newbyteorder("<")


class StreamWriter:
    """Writes an encoded stream folder (module docstring) a block of ids at a time: ``with
    StreamWriter(folder, vocab_size) as out: out.start("train"); out.write(ids, chars); ...``. Each split's
    file is written atomically (``atomic_write``); all of them are committed when the writer closes,
    ``stream.json`` last, and none is on an error. Files of an older build are removed."""

    def __init__(self, folder, vocab_size):
        self.folder, self.dtype = Path(folder), stream_dtype(vocab_size)
        self.tokens, self.chars, self._file = {}, {}, None
        self._files = contextlib.ExitStack()

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in (ITEMS_FILE, STREAM_FILE):  # a folder of another build: never read half of each
            (self.folder / stale).unlink(missing_ok=True)
        return self

    def start(self, split):
        self._split = split
        self._file = self._files.enter_context(atomic_write(self.folder / f"{split}.bin", "wb"))
        self.tokens[split], self.chars[split] = 0, 0

    def write(self, ids, chars=0):
        block = np.asarray(ids, dtype=self.dtype)
        block.tofile(self._file)
        self.tokens[self._split] += len(block)
        self.chars[self._split] += chars

    def __exit__(self, kind, error, trace):
        self._files.__exit__(kind, error, trace)  # commits every split's file, or on an error removes them
        if error is None:
            write_json(self.folder / STREAM_FILE, {"dtype": self.dtype.str, "tokens": self.tokens,
                                                   "chars": self.chars})
        return False


def save_encoded(path, splits):
    """Write ``splits``: a ``.npz`` file, or an encoded folder's ``items.npz`` (streams: ``StreamWriter``)."""
    path = Path(path)
    if path.suffix != ".npz":
        path.mkdir(parents=True, exist_ok=True)
        (path / STREAM_FILE).unlink(missing_ok=True)
        path = path / ITEMS_FILE
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


def load_encoded(path, mapped=True):
    """``{split: EncodedSplit}`` of an encoded folder or ``.npz`` file. A stream folder's arrays are memory-mapped
    (unsigned ids), or with ``mapped=False`` read into memory as int32, as an ``.npz`` holds them: for the
    n-gram, whose counts are in memory anyway and whose arithmetic wants signed ids."""
    path = Path(path)
    if path.is_dir():
        if (path / STREAM_FILE).is_file():
            splits = _mapped_stream(path)
            if not mapped:
                splits = {name: EncodedSplit(np.fromfile(split.source, dtype=split.tokens.dtype).astype(np.int32),
                                             split.offsets, split.chars, stream=True)
                          for name, split in splits.items()}
            return splits
        path = path / ITEMS_FILE
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


def _mapped_stream(folder):
    try:
        meta = json.loads((folder / STREAM_FILE).read_text(encoding="utf-8"))
        dtype, splits = np.dtype(meta["dtype"]), {}
        for name in SPLITS:
            source, count = require_file(folder / f"{name}.bin", what=f"encoded {name} stream"), meta["tokens"][name]
            size = source.stat().st_size
            if size != count * dtype.itemsize:
                raise UserError(f"{source}: {size} bytes, but {folder / STREAM_FILE} says {count} "
                                f"{dtype} ids; rebuild it with `dvc repro`")
            tokens = np.memmap(source, dtype=dtype, mode="r", shape=(count,)) if count else np.empty(0, dtype)
            splits[name] = EncodedSplit(tokens, np.array([0, count], dtype=np.int64),
                                        np.array([meta["chars"][name]], dtype=np.int64), stream=True, source=source)
        return splits
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{folder / STREAM_FILE}: not an encoded stream ({err}); rebuild it with `dvc repro`") from None


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
