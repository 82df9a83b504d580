"""A long text read as one stream: reading it, its units, and its contiguous train/dev/test cut.

karpathy's char-rnn, pytorch/examples' word_language_model, AWD-LSTM and nanoGPT's shakespeare_char model ONE
long text: there are no items, a newline is a token like any other, and a model reads the text from its first
token to its last with its state carried along. This module is the data side of that corpus shape
(``ingest.<corpus>.format: text``); batching is ``rnnlm.streams`` and scoring ``rnnlm.stream_scoring``.

**Reading** (``rnnlm.ingest.ingest_stream``, with ``decode_stream_lines`` below). The raw file is read line
by line (memory holds one line), and every kept line becomes a row ``{"line": n, "text": "...\\n"}`` whose
text keeps its newline, so the rows joined give the file's text back: CRLF becomes LF and a leading byte-order
mark is dropped, nothing else changes, and a blank line is part of the stream. A line that is not valid UTF-8
is the one thing rejected (reason ``invalid_utf8``, with its line number), as for items.

**Predefined splits.** A raw path that is a folder of split files is split as given: each of its rows also
names its ``split``. The folder holds one of these namings (``NAMINGS``): ``train.txt``, ``dev.txt`` (or
``valid.txt``) and ``test.txt``; WikiText's ``wiki.train.tokens``, ``wiki.valid.tokens``, ``wiki.test.tokens``
(or the raw release's ``wiki.*.raw``); PTB's ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``. A folder
with files of two namings, or of none, is a user error naming them.

**The cut.** Otherwise the text is cut in three contiguous pieces, never shuffled, as nanoGPT cuts
shakespeare_char::

    a = int(train * n),   b = int((train + dev) * n)
    train = units[:a],    dev = units[a:b],    test = units[b:]

where ``n`` counts the stream's units at the vocabulary's level, units that need no training, so the cut
never depends on a fitted vocabulary: characters (char); words and newlines (word: the word-level
pre-tokenizer's pieces of each line, as ``vocab.<corpus>.pretokenize`` says (``resolve_pretokenize``), and
each newline); the byte-level pre-tokenizer's pieces (bpe: BPE
merges only inside a piece, so no token spans a cut). At char level with ``train: 0.9``, dev ∪ test is
exactly nanoGPT's val, ``text[int(0.9 * len(text)):]``. Each split file holds its exact piece of the text,
so train + dev + test is the text byte for byte; whatever lies between two units (spaces) goes with the
piece before the cut.
"""

import io
import itertools
import json
from pathlib import Path

import numpy as np
from tokenizers import pre_tokenizers

from .errors import UserError
from .io import require_file
from .text import DEFAULT_PRETOKENIZE, NEWLINE, word_pre_tokenizer

SPLITS = ("train", "dev", "test")
# The namings of a folder of predefined split files: {split: file names}, the first one found is read.
NAMINGS = {
    "plain": {"train": ("train.txt",), "dev": ("dev.txt", "valid.txt"), "test": ("test.txt",)},
    "wikitext": {"train": ("wiki.train.tokens",), "dev": ("wiki.valid.tokens",), "test": ("wiki.test.tokens",)},
    "wikitext-raw": {"train": ("wiki.train.raw",), "dev": ("wiki.valid.raw",), "test": ("wiki.test.raw",)},
    "ptb": {"train": ("ptb.train.txt",), "dev": ("ptb.valid.txt",), "test": ("ptb.test.txt",)},
}
PREDEFINED = NAMINGS["plain"]  # today's naming, kept under its old name
BOM = b"\xef\xbb\xbf"
BLOCK_CHARS = 1 << 20  # about the characters of text a stream stage holds at once (``line_blocks``)
# The byte-level pre-tokenizer of a stream's BPE (rnnlm.bpe, no prefix space): its pieces are the bpe units.
BYTE_PIECES = pre_tokenizers.ByteLevel(add_prefix_space=False)


# --- reading ----------------------------------------------------------------------------------

def decode_stream_lines(binary):
    """Yield ``(line_number, text_or_None, raw_bytes)`` of a binary file object, every line's text with its
    newline ("\\r\\n" read as "\\n"; the last line has none when the file does not end with one); text is None
    when the line is not valid UTF-8. A byte-order mark at the start of the file is dropped."""
    for number, raw in enumerate(binary, start=1):
        body, end = (raw[:-1], NEWLINE) if raw.endswith(b"\n") else (raw, "")
        if end and body.endswith(b"\r"):
            body = body[:-1]
        if number == 1 and body.startswith(BOM):
            body = body[len(BOM):]
        try:
            yield number, body.decode("utf-8") + end, body
        except UnicodeDecodeError:
            yield number, None, body


def _patterns(naming):
    return ", ".join(" or ".join(names) for names in naming.values())


def predefined_files(folder):
    """``{split: file}`` of a folder of predefined split files (``NAMINGS``), or a UserError: a folder with
    files of two namings (which is meant?), of none, or missing one split of its naming."""
    folder = Path(folder)
    present = {name: [file for names in naming.values() for file in names if (folder / file).is_file()]
               for name, naming in NAMINGS.items()}
    present = {name: files for name, files in present.items() if files}
    if len(present) > 1:
        files = ", ".join(file for files in present.values() for file in files)
        raise UserError(f"{folder} holds split files of {len(present)} namings ({files}): keep the files of one "
                        "naming in the folder")
    if not present:
        accepted = "; ".join(_patterns(naming) for naming in NAMINGS.values())
        raise UserError(f"{folder} is a folder, so it must hold predefined split files, but has none of them "
                        f"(a stream corpus is one text file, or a folder of one of: {accepted})")
    (name, files), = present.items()
    naming, found = NAMINGS[name], {}
    for split, names in naming.items():
        file = next((folder / file for file in names if (folder / file).is_file()), None)
        if file is None:
            raise UserError(f"{folder} holds predefined split files ({', '.join(files)}) but no "
                            f"{' or '.join(names)} (its {split} split; the naming: {_patterns(naming)})")
        found[split] = file
    return found


def read_rows(path, what="ingested rows"):
    """Yield the rows of the ingest stage's JSON-lines file, in order."""
    with open(require_file(path, what=what), encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def read_stream_text(path, what="split"):
    """A split file's text exactly as written (no newline translation): the inverse of the split stage."""
    with open(require_file(path, what=what), encoding="utf-8", newline="") as f:
        return f.read()


def text_blocks(text, level, size=BLOCK_CHARS):
    """``line_blocks`` of a text held in memory (a vocabulary built from a string, in tests and benchmarks):
    the pieces a stage would read from the same text's file."""
    lines = io.StringIO(text, newline="")  # split and kept as file_blocks reads a file
    return (block for _, block in line_blocks(((None, line) for line in lines), level, size))


def ends_cleanly(before, after, level):
    """Whether a stream may be cut into blocks between the line ``before`` (ending with its newline) and the
    line ``after`` so that the blocks' units are the text's: at char and word level any line end does (a
    word never spans one); byte-level BPE pieces join a newline to the spaces around it, so there only a
    newline between two non-space characters does."""
    if not before.endswith(NEWLINE):
        return False
    return level != "bpe" or (len(before) > 1 and not before[-2].isspace() and after[:1].strip() != "")


def line_blocks(lines, level, size=BLOCK_CHARS):
    """Yield ``(key, block)``: consecutive ``(key, line)`` pairs joined into blocks of at least ``size``
    characters (or what is left), cut only where ``ends_cleanly`` allows and where the key (a predefined
    split, or None) changes; no block spans two keys. Memory holds one block."""
    pending, length, current = [], 0, None
    for key, line in lines:
        if pending and (key != current or (length >= size and ends_cleanly(pending[-1], line, level))):
            yield current, "".join(pending)
            pending, length = [], 0
        current = key
        pending.append(line)
        length += len(line)
    if pending:
        yield current, "".join(pending)


def file_blocks(path, level, what="split", size=BLOCK_CHARS):
    """The text of a split file in blocks (``line_blocks``), exactly as written: for a stage that reads a split
    whole without holding it."""
    with open(require_file(path, what=what), encoding="utf-8", newline="") as f:
        yield from (block for _, block in line_blocks(((None, line) for line in f), level, size))


# --- tokens and units -------------------------------------------------------------------------

def resolve_pretokenize(setting, predefined):
    """The word-level pre-tokenizer a stream uses: ``vocab.<corpus>.pretokenize`` when set, else
    "whitespace" for a folder of predefined splits (WikiText and PTB ship tokens: kept as given) and
    "words" (the basic_english rule) for one text file."""
    return setting or ("whitespace" if predefined else DEFAULT_PRETOKENIZE)


def unit_starts(text, level, pretokenize=DEFAULT_PRETOKENIZE):
    """The character offset where each unit of ``text`` starts, (n,) int64 (module docstring); None at
    char level, where unit i starts at offset i. At word level a line's words are ``pretokenize``'s pieces."""
    if level == "char":
        return None
    if level == "bpe":
        return np.fromiter((start for _, (start, _) in BYTE_PIECES.pre_tokenize_str(text)), dtype=np.int64)
    starts, offset, words = [], 0, word_pre_tokenizer(pretokenize)
    for line in text.split(NEWLINE):
        starts += [offset + start for _, (start, _) in words.pre_tokenize_str(line)]
        offset += len(line)
        if offset < len(text):  # the newline after this line is a unit too
            starts.append(offset)
            offset += 1
    return np.asarray(starts, dtype=np.int64)


def count_units(text, level, pretokenize=DEFAULT_PRETOKENIZE):
    starts = unit_starts(text, level, pretokenize)
    return len(text) if starts is None else len(starts)


def cut_stream(text, level, cfg, pretokenize=DEFAULT_PRETOKENIZE):
    """``({split: (first character, end)}, {split: units})`` of the contiguous cut (module docstring);
    ``cfg`` gives the train and dev fractions (a SplitConfig)."""
    starts = unit_starts(text, level, pretokenize)
    n = len(text) if starts is None else len(starts)
    a, b = int(cfg.train * n), int((cfg.train + cfg.dev) * n)

    def offset(unit):  # where unit ``unit`` starts; the text's end after the last one
        return unit if starts is None else int(starts[unit]) if unit < n else len(text)

    return ({"train": (0, offset(a)), "dev": (offset(a), offset(b)), "test": (offset(b), len(text))},
            {"train": a, "dev": b - a, "test": n - b})


class StreamCut:
    """The split of a stream's ingested rows (module docstring), read in two passes with one block in memory
    (``line_blocks``): ``rows`` is a callable that gives the rows afresh, in file order. The first pass counts
    each block's units, so the cut is known before anything is written; ``pieces()`` then yields ``(split,
    text)`` in text order, each split's pieces joined being its exact text, and ``report()`` what the split
    stage reports (units and characters per split, whether the splits were predefined and, at word level,
    the pre-tokenizer the units were counted with: ``resolve_pretokenize`` of ``pretokenize``). ``cfg`` (a
    SplitConfig) gives the fractions a single text is cut by; predefined splits need none."""

    def __init__(self, rows, level, cfg, pretokenize=None, block_size=BLOCK_CHARS):
        self.rows, self.level, self.block_size = rows, level, block_size
        first_pass = iter(rows())
        first = next(first_pass, None)   # it says whether the splits are predefined, which the counts need
        self.predefined = first is not None and "split" in first
        self.words = resolve_pretokenize(pretokenize, self.predefined)
        if not self.predefined and (cfg is None or cfg.train is None):
            raise UserError("a stream that is one text file is cut by the split fractions: state split.<corpus> "
                            "train, dev and test (only a folder of predefined split files leaves them out)")
        self.block_units, units = [], dict.fromkeys(SPLITS, 0)
        for split, block in self._blocks(itertools.chain([] if first is None else [first], first_pass)):
            self.block_units.append(count_units(block, level, self.words))
            units[split or "train"] += self.block_units[-1]
        if not self.predefined:
            n = units["train"]
            self.cuts = [int(cfg.train * n), int((cfg.train + cfg.dev) * n)]   # the first unit of dev, of test
            units = {"train": self.cuts[0], "dev": self.cuts[1] - self.cuts[0], "test": n - self.cuts[1]}
        empty = [name for name in SPLITS if not units[name]]
        if empty:
            raise UserError(f"the stream's {' and '.join(empty)} split would be empty ({sum(units.values())} {level} "
                            "units in all): give it a longer text, or other split fractions")
        self.units, self.chars = units, dict.fromkeys(SPLITS, 0)

    def _blocks(self, rows):
        return line_blocks(((row.get("split"), row["text"]) for row in rows), self.level, self.block_size)

    def pieces(self):
        done = 0   # units before the block
        for (split, block), units in zip(self._blocks(self.rows()), self.block_units):
            if self.predefined:
                yield self._piece(split, block)
                continue
            # a cut at this block's first unit is made inside it: what precedes that unit goes before the cut
            start, split = 0, SPLITS[sum(cut < done for cut in self.cuts)]
            inside = [cut for cut in self.cuts if done <= cut < done + units]
            if inside:
                starts = unit_starts(block, self.level, self.words)
                for cut in inside:   # the unit a cut starts at begins the next split's text
                    end = cut - done if starts is None else int(starts[cut - done])
                    yield self._piece(split, block[start:end])
                    start, split = end, SPLITS[SPLITS.index(split) + 1]
            yield self._piece(split, block[start:])
            done += units

    def _piece(self, split, text):
        self.chars[split] += len(text)
        return split, text

    def report(self):
        report = {"stream": True, "predefined": self.predefined, "unit": self.level, "units": self.units,
                  "chars": self.chars}
        if self.level == "word":  # only then: a char or bpe stream's report stays as it was
            report["pretokenize"] = self.words
        return report


def split_stream(rows, level, cfg, pretokenize=None):
    """``(texts, report)``: ``StreamCut`` of ``rows`` (an iterable, held in memory) with each split's text whole."""
    rows = list(rows)
    cut = StreamCut(lambda: iter(rows), level, cfg, pretokenize)
    texts = dict.fromkeys(SPLITS, "")
    for split, piece in cut.pieces():
        texts[split] += piece
    return texts, cut.report()
