"""Reading raw corpora row by row: every row is either kept or rejected with its line number.

Nothing is lost silently and nothing crashes on a bad row: ``rows_read == rows_kept +
rows_rejected`` always, the rejects (line, reason, a snippet of the raw row) go to a file, and the
report counts them per reason. A bad row stops the stage only when ``bad_rows_fatal`` is set, and
an input with no usable row at all is an error.

With ``dedupe`` an item whose normalized text an earlier kept row already had is rejected too
(reason ``duplicate``, naming the line it repeats): held-out items then never occur in train,
whatever the split. Only a 16-byte digest per distinct item is kept in memory.

``ingest_lines`` yields the rows one at a time, so the stage writes them as they come and holds
only the counts (memory does not grow with the file); ``ingest`` collects them for small inputs.
``ingest_stream`` reads a stream corpus (format ``text``, ``rnnlm.textstream``) the same way.
"""

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .text import EMPTY, Normalization
from .textstream import decode_stream_lines, predefined_files

INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
NULL_FIELD = "null_field"
WRONG_TYPE = "wrong_type"
DUPLICATE = "duplicate"
SNIPPET = 200  # characters of a rejected row kept in the rejects file
NOT_UTF8 = (INVALID_UTF8, "the line is not valid UTF-8")  # (reason, detail) of such a line


@dataclass
class IngestTally:
    """What a report needs: counts, not the rows themselves."""

    rows_read: int = 0
    rows_kept: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)

    def count(self, row, reject):
        self.rows_read += 1
        if row is not None:
            self.rows_kept += 1
        else:
            self.rejected_by_reason[reject["reason"]] += 1

    @property
    def rows_rejected(self):
        return sum(self.rejected_by_reason.values())

    def report(self, source):
        return {
            "source": str(source),
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
        }


@dataclass
class IngestResult(IngestTally):
    rows: list = field(default_factory=list)     # {"line": n, "text": str, ["category": str]}
    rejects: list = field(default_factory=list)  # {"line": n, "reason": str, "detail": str, "raw": str}


def raw_file_hint(path):
    return (f"run `dvc pull {path}.dvc` to fetch it, or put your own file there "
            f"and `dvc add {path}` (see README, 'Your own data')")


def read_raw_lines(path):
    """Yield ``(line_number, text_or_None, raw_bytes)`` of a raw file (see ``decode_lines``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"raw file {path} not found: {raw_file_hint(path)}")
    with open(path, "rb") as f:
        yield from decode_lines(f)


def decode_lines(binary):
    """Yield ``(line_number, text_or_None, raw_bytes)`` of a binary file object; text is None when the
    line is not valid UTF-8 (a rejected row, reason ``invalid_utf8``), so one bad line costs only itself.

    Lines end at "\n"; handles CRLF endings and a UTF-8 byte-order mark; a last line without newline
    is read too. ``rnnlm score`` and ``rnnlm tokenize`` read their input (a file or stdin) through this
    too, so a line is split and decoded exactly as the ingest stage would.
    """
    for number, raw in enumerate(binary, start=1):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8"), raw
        except UnicodeDecodeError:
            yield number, None, raw


def _snippet(raw):
    return raw[:SNIPPET].decode("utf-8", errors="replace")


def _parse_record(text, cfg):
    """One JSON line -> (fields, None) or (None, (reason, detail))."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return None, (INVALID_JSON, err.msg)
    if not isinstance(obj, dict):
        return None, (NOT_AN_OBJECT, f"got a JSON {type(obj).__name__}")
    wanted = list(cfg.text_fields) + ([cfg.category_field] if cfg.category_field else [])
    for name in wanted:
        if name not in obj:
            return None, (MISSING_FIELD, f"no field {name!r}")
        if obj[name] is None:
            return None, (NULL_FIELD, f"field {name!r} is null")
        if not isinstance(obj[name], str):
            return None, (WRONG_TYPE, f"field {name!r} is {type(obj[name]).__name__}, not a string")
    return obj, None


def ingest_lines(path, cfg):
    """Read and normalize the raw file at ``path`` as ``cfg`` (an IngestConfig) says, lazily.

    Yields ``(row, None)`` for a kept line and ``(None, reject)`` for a rejected one, in file order.
    """
    rules = Normalization.from_config(cfg)
    first_seen = {}  # digest of a kept item's text -> its line number (dedupe)
    for number, text, raw in read_raw_lines(path):
        row, problem = {"line": number}, None
        if text is None:
            problem = NOT_UTF8
        elif cfg.format == "jsonl":
            if not text.strip():
                problem = (EMPTY, "blank line")
            else:
                obj, problem = _parse_record(text, cfg)
                if obj is not None:
                    text = " ".join(obj[name] for name in cfg.text_fields)
                    if cfg.category_field:
                        row["category"] = obj[cfg.category_field]
        if problem is None:
            row["text"], problem = rules.apply(text)
        if problem is None and cfg.dedupe:
            digest = hashlib.blake2b(row["text"].encode("utf-8"), digest_size=16).digest()
            if digest in first_seen:
                problem = (DUPLICATE, f"the same item as line {first_seen[digest]}")
            else:
                first_seen[digest] = number
        if problem is None:
            yield row, None
            continue
        if cfg.bad_rows_fatal and problem[0] != DUPLICATE:  # a repeat is not a bad row
            raise UserError(f"{path}:{number}: {problem[0]}: {problem[1]} (bad_rows_fatal is set)")
        yield None, {"line": number, "reason": problem[0], "detail": problem[1], "raw": _snippet(raw)}


def ingest_stream(path, cfg):
    """Read a stream corpus (``cfg.format`` text: ``rnnlm.textstream``) as ``ingest_lines`` reads items: yields
    ``(row, None)`` for every line, its text with its newline, and ``(None, reject)`` for a line that is not
    UTF-8. ``path`` is a file, or a folder of predefined split files (then every row names its ``split``)."""
    path = Path(path)
    if path.is_dir():
        sources = list(predefined_files(path).items())
    elif path.is_file():
        sources = [(None, path)]
    else:
        raise UserError(f"raw file {path} not found: {raw_file_hint(path)}")
    for split, file in sources:
        with open(file, "rb") as f:
            for number, text, raw in decode_stream_lines(f):
                where = {"line": number} | ({"split": split} if split else {})
                if text is not None:
                    yield where | {"text": text}, None
                elif cfg.bad_rows_fatal:
                    raise UserError(f"{file}:{number}: {NOT_UTF8[0]}: {NOT_UTF8[1]} (bad_rows_fatal is set)")
                else:
                    yield None, where | {"reason": NOT_UTF8[0], "detail": NOT_UTF8[1], "raw": _snippet(raw)}


def ingest(path, cfg):
    """All of ``ingest_lines`` in memory: an IngestResult with the rows, the rejects and the counts.

    Returns it even when every row was rejected: see ``require_rows``.
    """
    result = IngestResult()
    for row, reject in ingest_lines(path, cfg):
        result.count(row, reject)
        if row is not None:
            result.rows.append(row)
        else:
            result.rejects.append(reject)
    return result


def require_rows(result, path, rejects_path):
    """Fail when nothing usable is left (``result``: an IngestTally); called after the rejects file is written."""
    if not result.rows_kept:
        raise UserError(f"{path}: no usable rows ({result.rows_read} read, {result.rows_rejected} rejected; "
                        f"line numbers and reasons are in {rejects_path})")
