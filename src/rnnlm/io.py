"""File helpers: atomic writes, JSON with stable formatting, and required inputs.

Every output of the pipeline is written through ``atomic_write`` so that a stage killed at any
moment (SIGINT, SIGKILL, power loss) leaves either the old file or the new one, never half of one.
"""

import array
import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import UserError

REPRO_HINT = "run `dvc repro` to build it"
# The folders of a DVC project that its pipeline writes (dvc.yaml's outs): files there come from `dvc repro`.
PIPELINE_OUTPUTS = ("models", "metrics", "plots", "reports", "samples", "live", "data/interim", "data/splits",
                    "data/vocab", "data/encoded")


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; outputs get the usual permissions instead.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    The rename is atomic on POSIX filesystems, so readers never see a truncated file. On any
    exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        binary = "b" in mode
        with os.fdopen(fd, mode, **({} if binary else {"encoding": encoding, "newline": "\n"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text):
    with atomic_write(path) as f:
        f.write(text)


def remove_stale_temporaries(directory):
    """Delete temporary files that a killed ``atomic_write`` (SIGKILL, power loss) left behind."""
    for leftover in Path(directory).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def write_bytes(path, data):
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_lines(path, lines):
    with atomic_write(path) as f:
        for line in lines:
            f.write(line)
            f.write("\n")


def write_json(path, obj):
    """Write JSON with sorted keys and a trailing newline, so equal data gives equal bytes."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path, what="file", hint=REPRO_HINT):
    path = require_file(path, what=what, hint=hint, empty_ok=False)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def read_lines(path, what="file", hint=REPRO_HINT):
    """Read a UTF-8 text file written by an earlier stage, one item per line."""
    return list(iter_lines(path, what=what, hint=hint))


def iter_lines(path, what="file", block_chars=1 << 20, hint=REPRO_HINT):
    """Yield the lines of a UTF-8 text file one by one, holding one block in memory.

    The lines are exactly those of ``str.splitlines`` on the whole text (every line boundary it
    knows, not only "\n"), so streaming a file never changes what a stage reads.
    """
    path = require_file(path, what=what, hint=hint)
    with open(path, encoding="utf-8", newline="") as f:
        pending = ""
        while block := _read_text(f, block_chars, path, what):
            pieces = (pending + block).splitlines(keepends=True)
            # The last piece may be cut mid-line, or be "...\r" with its "\n" in the next block.
            pending = pieces.pop()
            for piece in pieces:
                yield piece.splitlines()[0]
        if pending:
            yield pending.splitlines()[0]


def _read_text(f, chars, path, what):
    try:
        return f.read(chars)
    except UnicodeDecodeError as err:
        raise UserError(f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start} of a block)") from None


def require_file(path, what="file", hint=REPRO_HINT, empty_ok=True):
    """Return ``path`` as a Path if it is a file (a non-empty one unless ``empty_ok``), else raise a
    UserError saying which of those it is not, and ``hint`` (how to get it; None: no hint) if it is missing.

    The default hint suits the pipeline's own files, which stages read; a command reading a file the
    user names passes ``pipeline_hint(path)`` instead, so the user's own file never gets "run `dvc repro`".
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise UserError(f"{what} {path} not found" + (f": {hint}" if hint else ""))
    if not empty_ok and path.stat().st_size == 0:
        raise UserError(f"{what} {path} is empty")
    return path


def pipeline_hint(path, hint=REPRO_HINT):
    """``hint`` if ``path`` lies in one of the pipeline's output folders of the DVC project around it
    (the nearest folder above it holding a ``dvc.yaml``), else None: the file is the user's own."""
    path = Path(path).resolve()
    for root in path.parents:
        if (root / "dvc.yaml").is_file():
            inside = path.relative_to(root).as_posix()
            return hint if inside.startswith(tuple(f"{folder}/" for folder in PIPELINE_OUTPUTS)) else None
    return None


def require_output_path(path, what="output"):
    """``path`` as a Path where a new file can be written: its folder exists and it is not a folder itself."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder: name a file in it")
    if not path.parent.is_dir():
        raise UserError(f"{what} {path}: folder {path.parent} does not exist")
    return path


def scan_jsonl(path, key, what="file"):
    """One pass over a JSON-lines file, keeping only where each line starts and one field.

    Returns ``(offsets, values)``: each line's byte offset (int64 array, for ``read_jsonl_at``)
    and its value for ``key`` (None where absent). Equal values share one string object, so a
    label column costs a pointer per line, not a string.
    """
    path = require_file(path, what=what)
    offsets, values, shared = array.array("q"), [], {}
    position = 0
    with open(path, "rb") as f:
        for line in f:
            offsets.append(position)
            position += len(line)
            value = json.loads(line).get(key)
            values.append(shared.setdefault(value, value) if isinstance(value, str) else value)
    return np.frombuffer(offsets, dtype=np.int64), values


def read_jsonl_at(path, offsets, lines):
    """Yield the records of the given line numbers of a JSON-lines file, in the order given.

    Seeks to each line (``offsets`` from ``scan_jsonl``), so memory holds one record at a time.
    """
    with open(path, "rb") as f:
        for i in lines:
            f.seek(offsets[i])
            yield json.loads(f.readline())
