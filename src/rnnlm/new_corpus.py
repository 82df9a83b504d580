"""`rnnlm add-corpus`: a new corpus in params.yaml, its sections copied from an existing corpus's.

Every stage runs once per entry of ``corpora`` and reads the corpus's own entry of its section
(``train.<corpus>``, ``vocab.<corpus>``, ...), so a new corpus needs an entry in each of them. They are
copied once from the corpus it is like, rather than inherited at run time through a ``like:`` key:
DVC tracks each stage's params by key (``train.<corpus>``), so an inherited value could change without
DVC seeing it and the stage would not rerun, and `dvc exp run -S train.<corpus>.epochs=...` needs the
key written out. The copy is plain data (the source's comments describe the source, not the copy);
the rest of params.yaml keeps its comments and order, read and written by ruamel.yaml's round-trip
mode, the YAML library DVC itself edits params.yaml with.
"""

import io
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from .errors import UserError
from .io import write_text
from .schema.evaluate import EvaluateConfig
from .schema.generate import GenerateConfig
from .schema.ingest import IngestConfig
from .schema.mixture import MixtureConfig
from .schema.ngram import NgramConfig
from .schema.pipeline import CorpusName, Pipeline
from .schema.split import SplitConfig
from .schema.tokenization import TokenizationConfig
from .schema.train import TrainConfig
from .schema.vocab import VocabConfig

# params.yaml's sections after corpora and kinds: section -> (its schema, whether it has one entry per corpus)
SECTIONS = {"ingest": (IngestConfig, True), "split": (SplitConfig, True), "vocab": (VocabConfig, True),
            "train": (TrainConfig, True), "evaluate": (EvaluateConfig, False),
            "tokenization": (TokenizationConfig, True), "ngram": (NgramConfig, True),
            "mixture": (MixtureConfig, True), "generate": (GenerateConfig, True)}
PER_CORPUS = ["kinds", *(name for name, (_, per_corpus) in SECTIONS.items() if per_corpus)]


def _valid_name(name):
    """Whether ``name`` is a corpus name params.yaml's schema accepts (one line of error instead of two)."""
    try:
        TypeAdapter(CorpusName).validate_python(name)
    except ValidationError:
        return False
    return True


def _plain(node):
    """A ruamel node as plain dicts, lists and scalars (its comments and anchors left behind)."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node  # a scalar: immutable, shared safely


def _flow_lists(node):
    """Plain data for ruamel to write, a list of scalars on one line (``[lstm]``, as params.yaml has them)."""
    if isinstance(node, dict):
        return {key: _flow_lists(value) for key, value in node.items()}
    if isinstance(node, list):
        if all(not isinstance(value, (dict, list)) for value in node):
            flow = CommentedSeq(node)
            flow.fa.set_flow_style()
            return flow
        return [_flow_lists(value) for value in node]
    return node


def parse_setting(text):
    """``section.key[.key...]=value`` (``--set``) -> (section, [keys], value); the value is read as YAML,
    as `dvc exp run -S` reads it (``[2000, 10000]``, ``null``, ``0.2``)."""
    path, sep, value = text.partition("=")
    parts = path.split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise UserError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. train.hidden_size=400")
    if parts[0] not in PER_CORPUS:
        raise UserError(f"--set {text!r}: {parts[0]!r} is not a per-corpus section ({', '.join(PER_CORPUS)})")
    try:
        return parts[0], parts[1:], yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise UserError(f"--set {text!r}: the value is not YAML ({err.problem})") from None


def new_entries(params, name, raw, like, settings=()):
    """{section: the new corpus's entry}: ``like``'s entries, copied, with ``corpora: raw``, no split
    fractions for a folder of split files, and each ``(section, keys, value)`` of ``settings`` set."""
    pipeline = Pipeline.of(params)
    if not _valid_name(name):
        raise UserError(f"corpus name {name!r}: letters, digits, _ and - only (its stages are <stage>@{name})")
    if name in pipeline.corpora:
        raise UserError(f"corpus {name!r} is already in params.yaml's corpora")
    if like not in pipeline.corpora:
        raise UserError(f"--like {like!r}: not a corpus of params.yaml ({', '.join(pipeline.corpora)})")
    entries = {"corpora": str(raw)}
    for section in PER_CORPUS:
        if like not in (params.get(section) or {}):
            raise UserError(f"params.yaml has no {section}.{like} to copy")
        entries[section] = _plain(params[section][like])
    if Path(raw).is_dir():
        entries["split"] = {}   # predefined splits (train/valid/test files): no fractions, seed or stratify
    for section, keys, value in settings:
        target = entries[section]
        for key in keys[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[keys[-1]] = value
    return entries


def validate(params, name, entries):
    """The new corpus's entries as the stages will read them, or a UserError naming the bad key."""
    merged = {**params, "corpora": {**params["corpora"], name: entries["corpora"]},
              "kinds": {**params["kinds"], name: entries["kinds"]}}
    Pipeline.of(merged)
    for section, (schema, per_corpus) in SECTIONS.items():
        if per_corpus:
            schema.from_params(entries[section], f"{section}.{name}")


def add_corpus(params_path, name, raw, like, settings=()):
    """Add corpus ``name`` (raw file or folder ``raw``) to ``params_path``, like ``like``; returns the
    sections written. ``settings``: ``--set`` texts. Nothing is written unless the result validates."""
    params_path = Path(params_path)
    if not params_path.is_file():
        raise UserError(f"{params_path} not found: run rnnlm add-corpus in the repository root (or give --params)")
    if not Path(raw).exists():
        raise UserError(f"{raw} not found: put the corpus's file (or folder of split files) there first")
    parsed = [parse_setting(text) for text in settings]
    yml = YAML()   # round trip: comments, order and quoting of params.yaml stay as they are
    yml.width = 4096
    yml.preserve_quotes = True
    # null as params.yaml writes it (ruamel's round trip would write an empty value)
    yml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    document = yml.load(params_path.read_text(encoding="utf-8"))
    params = _plain(document)
    entries = new_entries(params, name, raw, like, parsed)
    validate(params, name, entries)
    for section, entry in entries.items():
        document[section][name] = _flow_lists(entry)
    out = io.StringIO()
    yml.dump(document, out)
    write_text(params_path, _blank_lines_after(out.getvalue(), name))
    return list(entries)


def _blank_lines_after(text, name):
    """ruamel keeps a section's closing blank line with the key that was last, so an appended entry
    lands after it: move it back to the end of the section, after the new entry."""
    lines, i = text.split("\n"), 0
    while i < len(lines):
        if lines[i].startswith(f"  {name}:"):
            blank = 0
            while i - blank - 1 >= 0 and not lines[i - blank - 1].strip():
                blank += 1
            del lines[i - blank:i]
            i -= blank
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or lines[end].startswith("   ")):
                end += 1
            lines[end:end] = [""] * blank
        i += 1
    return "\n".join(lines)
