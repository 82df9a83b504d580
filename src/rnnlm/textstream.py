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


def split_stream(rows, level, cfg, pretokenize=None):
    """``(texts, report)`` of a stream's ingested rows (in file order): each split's exact text, and what
    the split stage reports (units and characters per split, whether the splits were predefined and, at word
    level, the pre-tokenizer the units were counted with: ``resolve_pretokenize`` of ``pretokenize``).
    ``cfg`` (a SplitConfig) gives the fractions a single text is cut by; predefined splits need none."""
    rows = list(rows)
    predefined = bool(rows) and "split" in rows[0]
    words = resolve_pretokenize(pretokenize, predefined)
    if predefined:
        texts = {name: "".join(row["text"] for row in rows if row["split"] == name) for name in SPLITS}
        units = {name: count_units(text, level, words) for name, text in texts.items()}
    else:
        if cfg is None or cfg.train is None:
            raise UserError("a stream that is one text file is cut by the split fractions: state split.<corpus> "
                            "train, dev and test (only a folder of predefined split files leaves them out)")
        text = "".join(row["text"] for row in rows)
        ranges, units = cut_stream(text, level, cfg, words)
        texts = {name: text[start:end] for name, (start, end) in ranges.items()}
    empty = [name for name in SPLITS if not units[name]]
    if empty:
        raise UserError(f"the stream's {' and '.join(empty)} split would be empty ({sum(units.values())} {level} "
                        "units in all): give it a longer text, or other split fractions")
    report = {"stream": True, "predefined": predefined, "unit": level, "units": units,
              "chars": {name: len(text) for name, text in texts.items()}}
    if level == "word":  # only then: a char or bpe stream's report stays as it was
        report["pretokenize"] = words
    return texts, report
