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

**Predefined splits.** A raw path that is a folder holding ``train.txt``, ``dev.txt`` (or ``valid.txt``, as
WikiText and PTB name it) and ``test.txt`` is split as given: each of its rows also names its ``split``.

**The cut.** Otherwise the text is cut in three contiguous pieces, never shuffled, as nanoGPT cuts
shakespeare_char::

    a = int(train * n),   b = int((train + dev) * n)
    train = units[:a],    dev = units[a:b],    test = units[b:]

where ``n`` counts the stream's units at the vocabulary's level, units that need no training, so the cut
never depends on a fitted vocabulary: characters (char); words and newlines (word: the word-level
pre-tokenizer's pieces of each line, and each newline); the byte-level pre-tokenizer's pieces (bpe: BPE
merges only inside a piece, so no token spans a cut). At char level with ``train: 0.9``, dev ∪ test is
exactly nanoGPT's val, ``text[int(0.9 * len(text)):]``. Each split file holds its exact piece of the text,
so train + dev + test is the text byte for byte; whatever lies between two units (spaces) goes with the
piece before the cut.
"""

import json
from pathlib import Path

import numpy as np
from tokenizers import pre_tokenizers

from .errors import UserError
from .io import require_file
from .text import NEWLINE, WORD_PRE_TOKENIZER

SPLITS = ("train", "dev", "test")
# The files of a folder of predefined splits, by split: the first one found is read.
PREDEFINED = {"train": ("train.txt",), "dev": ("dev.txt", "valid.txt"), "test": ("test.txt",)}
BOM = b"\xef\xbb\xbf"
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


def predefined_files(folder):
    """``{split: file}`` of a folder of predefined split files, or a UserError naming what is missing."""
    found = {}
    for split, names in PREDEFINED.items():
        file = next((Path(folder) / name for name in names if (Path(folder) / name).is_file()), None)
        if file is None:
            raise UserError(f"{folder} is a folder, so it must hold predefined split files, but has no "
                            f"{' or '.join(names)} (a stream corpus is one text file, or a folder of "
                            "train.txt, dev.txt or valid.txt, and test.txt)")
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


def text_blocks(text, size=1 << 20):
    """Consecutive pieces of ``text`` of about ``size`` characters, each ending at a line end (the last
    one at the text's end): for building a vocabulary without one huge string."""
    start = 0
    while start < len(text):
        end = text.find(NEWLINE, start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


# --- tokens and units -------------------------------------------------------------------------

def unit_starts(text, level):
    """The character offset where each unit of ``text`` starts, (n,) int64 (module docstring); None at
    char level, where unit i starts at offset i."""
    if level == "char":
        return None
    if level == "bpe":
        return np.fromiter((start for _, (start, _) in BYTE_PIECES.pre_tokenize_str(text)), dtype=np.int64)
    starts, offset = [], 0
    for line in text.split(NEWLINE):
        starts += [offset + start for _, (start, _) in WORD_PRE_TOKENIZER.pre_tokenize_str(line)]
        offset += len(line)
        if offset < len(text):  # the newline after this line is a unit too
            starts.append(offset)
            offset += 1
    return np.asarray(starts, dtype=np.int64)


def count_units(text, level):
    starts = unit_starts(text, level)
    return len(text) if starts is None else len(starts)


def cut_stream(text, level, cfg):
    """``({split: (first character, end)}, {split: units})`` of the contiguous cut (module docstring);
    ``cfg`` gives the train and dev fractions (a SplitConfig)."""
    starts = unit_starts(text, level)
    n = len(text) if starts is None else len(starts)
    a, b = int(cfg.train * n), int((cfg.train + cfg.dev) * n)

    def offset(unit):  # where unit ``unit`` starts; the text's end after the last one
        return unit if starts is None else int(starts[unit]) if unit < n else len(text)

    return ({"train": (0, offset(a)), "dev": (offset(a), offset(b)), "test": (offset(b), len(text))},
            {"train": a, "dev": b - a, "test": n - b})


def split_stream(rows, level, cfg):
    """``(texts, report)`` of a stream's ingested rows (in file order): each split's exact text, and what
    the split stage reports (units and characters per split, and whether the splits were predefined)."""
    rows = list(rows)
    predefined = bool(rows) and "split" in rows[0]
    if predefined:
        texts = {name: "".join(row["text"] for row in rows if row["split"] == name) for name in SPLITS}
        units = {name: count_units(text, level) for name, text in texts.items()}
    else:
        text = "".join(row["text"] for row in rows)
        ranges, units = cut_stream(text, level, cfg)
        texts = {name: text[start:end] for name, (start, end) in ranges.items()}
    empty = [name for name in SPLITS if not units[name]]
    if empty:
        raise UserError(f"the stream's {' and '.join(empty)} split would be empty ({sum(units.values())} {level} "
                        "units in all): give it a longer text, or other split fractions")
    report = {"stream": True, "predefined": predefined, "unit": level, "units": units,
              "chars": {name: len(text) for name, text in texts.items()}}
    return texts, report
