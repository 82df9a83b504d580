"""Bad input to every `rnnlm` subcommand: one line saying what is wrong, a non-zero exit, no traceback.

A line that is not UTF-8 is one rejected record, as the ingest stage rejects it, and the other lines
are scored; "run `dvc repro`" is the hint only for the pipeline's own files (in a DVC project, under
its output folders), never for the user's own."""

import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlm.arpa import write_arpa
from rnnlm.checkpoint import save_checkpoint
from rnnlm.cli import main
from rnnlm.data import encode_split
from rnnlm.ingest import ingest
from rnnlm.lm import mixture_spec
from rnnlm.models import ModelConfig, build_model
from rnnlm.ngram import KneserNeyLM
from rnnlm.schema.ingest import IngestConfig
from rnnlm.text import Normalization
from rnnlm.vocab import Vocabulary

from .conftest import TOY_NAMES

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
GOOD = "emma\nava\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A DVC project's layout with tiny models (models/names/...), and the user's own files in mine/."""
    root = tmp_path_factory.mktemp("project")
    (root / "dvc.yaml").write_text("stages: {}\n")
    folder = root / "models" / "names"
    (folder / "neural").mkdir(parents=True)
    vocab = Vocabulary.build(TOY_NAMES, "char", normalization=Normalization("name", ALPHABET))
    torch.manual_seed(0)
    model = build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, 8))
    save_checkpoint(folder / "neural" / "gru.pt", model, vocab, {"seed": 0})
    ngram = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 3).fit(encode_split(vocab, TOY_NAMES))
    write_arpa(folder / "ngram.arpa.gz", ngram, vocab.tokens, header={"vocabulary": vocab.to_dict()})
    (folder / "mixture.json").write_text(json.dumps(
        mixture_spec([folder / "neural" / "gru.pt", folder / "ngram.arpa.gz"], [0.5, 0.5], folder / "mixture.json")))
    (root / "data" / "splits" / "names").mkdir(parents=True)
    (root / "data" / "splits" / "names" / "train.txt").write_text("\n".join(TOY_NAMES) + "\n")
    mine = root / "mine"
    (mine / "folder").mkdir(parents=True)
    (mine / "good.txt").write_text(GOOD)
    (mine / "empty.txt").write_text("")
    (mine / "latin1.txt").write_bytes("zoë\n".encode("latin-1"))
    (mine / "empty.pt").write_bytes(b"")
    (mine / "rejected.txt").write_text("b0b\n\n")
    checkpoint = (folder / "neural" / "gru.pt").read_bytes()
    (mine / "truncated.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    corrupt = bytearray(checkpoint)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 64] = bytes(64)  # zeros inside the weights
    (mine / "corrupt.pt").write_bytes(corrupt)
    (mine / "text.pt").write_text("not a checkpoint\n")
    arpa = (folder / "ngram.arpa.gz").read_bytes()
    (mine / "truncated.arpa.gz").write_bytes(arpa[: len(arpa) // 2])
    (mine / "plain.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\ta\n\\end\\\n")  # no rnnlm header
    (mine / "broken.json").write_text('{"format": ')
    (mine / "other.json").write_text('{"format": "something else"}')
    (mine / "ngram.json").write_text(json.dumps({"format": "rnnlm-mixture", "format_version": 2, "components": [
        {"file": "missing.pt", "weight": 0.5}, {"file": "missing.arpa.gz", "weight": 0.5}]}))
    return root


def run(args, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    with pytest.raises(SystemExit) as done:
        main(args)
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


PIPELINE_HINT = "run `dvc repro`"
GRU, NGRAM, MIXTURE = "models/names/neural/gru.pt", "models/names/ngram.arpa.gz", "models/names/mixture.json"

# (arguments, what the one line says, whether it says "run `dvc repro`")
MISTAKES = [
    # the user's input file
    (["score", "--model", GRU, "mine/nope.txt"], "input file mine/nope.txt not found", False),
    (["score", "--model", GRU, "mine/folder"], "input file mine/folder is a folder", False),
    (["score", "--model", GRU, "mine/empty.txt"], "input file mine/empty.txt is empty", False),
    (["score", "--model", GRU, "mine/rejected.txt"], "no line of mine/rejected.txt could be scored (2 rejected)", False),
    (["score", "--model", GRU, "data/splits/names/test.txt"], "data/splits/names/test.txt not found: run `dvc repro`",
     True),
    (["tokenize", "--model", GRU, "mine/nope.txt"], "input file mine/nope.txt not found", False),
    (["tokenize", "--model", GRU, "mine/folder"], "is a folder", False),
    (["tokenize", "--model", GRU, "mine/empty.txt"], "is empty", False),
    (["novelty", "--model", GRU, "--train-split", "mine/nope.txt", "-n", "2"], "training split mine/nope.txt not found",
     False),
    (["novelty", "--model", GRU, "--train-split", "data/splits/names/dev.txt", "-n", "2"],
     "data/splits/names/dev.txt not found: run `dvc repro`", True),
    (["novelty", "--model", GRU, "--train-split", "mine/folder", "-n", "2"], "is a folder", False),
    (["novelty", "--model", GRU, "--train-split", "mine/latin1.txt", "-n", "2"], "mine/latin1.txt is not UTF-8 text",
     False),
    (["novelty", "--model", GRU, "--train-split", "data/splits/names/train.txt", "--json", "mine/no/rows.json"],
     "folder mine/no does not exist", False),
    # the model file, for every command that reads one
    *[(args, message, hint) for command in (["score", "mine/good.txt", "--model"],
                                            ["tokenize", "mine/good.txt", "--model"], ["sample", "--model"],
                                            ["info"], ["novelty", "--train-split", "mine/good.txt", "--model"],
                                            ["export", "--onnx", "mine/out.onnx", "--model"])
      for args, message, hint in [
          ([*command, "models/names/neural/lstm.pt"], "checkpoint models/names/neural/lstm.pt not found: run `dvc repro`",
           True),
          ([*command, "mine/nope.pt"], "checkpoint mine/nope.pt not found", False),
          ([*command, "models/names/neural"], "models/names/neural is a folder, not a model file", False),
          ([*command, "mine/empty.pt"], "checkpoint mine/empty.pt is empty", False),
          ([*command, "mine/truncated.pt"], "not a readable checkpoint (not the zip archive torch.save writes, "
                                            "or a truncated one)", False),
          ([*command, "mine/corrupt.pt"], "corrupt checkpoint", False),
          ([*command, "mine/text.pt"], "not a readable checkpoint", False),
      ]],
    *[(args, message, hint) for command in (["score", "mine/good.txt", "--model"],
                                            ["tokenize", "mine/good.txt", "--model"], ["sample", "--model"], ["info"])
      for args, message, hint in [
          ([*command, "mine/good.txt"], "mine/good.txt: not a model file", False),
          ([*command, "models/names/lstm+ngram.json"], "mixture model models/names/lstm+ngram.json not found: "
                                                       "run `dvc repro` to build the pipeline's models", True),
          ([*command, "mine/truncated.arpa.gz"], "not a readable ARPA file", False),
          ([*command, "mine/plain.arpa"], "an ARPA file without rnnlm's vocabulary header", False),
          ([*command, "mine/broken.json"], "mine/broken.json: not valid JSON", False),
          ([*command, "mine/other.json"], "not an rnnlm mixture", False),
          ([*command, "mine/ngram.json"], "component model of mixture mine/ngram.json: mine/missing.pt not found", False),
      ]],
    # export's own
    (["export", "--model", NGRAM, "--onnx", "mine/out.onnx"], "rnnlm export writes a neural checkpoint (.pt)", False),
    (["export", "--model", MIXTURE, "--onnx", "mine/out.onnx"], "rnnlm export writes a neural checkpoint (.pt)", False),
    (["export", "--model", GRU, "--onnx", "mine/no/out.onnx"], "folder mine/no does not exist", False),
    (["export", "--model", GRU, "--onnx", "mine/folder"], "--onnx mine/folder is a folder", False),
    (["export", "--model", GRU, "--onnx", "mine/out.txt"], "name the graph file OUT.onnx", False),
    # flags
    (["sample", "--model", GRU, "--temperature", "0"], "--temperature", False),
    (["sample", "--model", GRU, "-n", "0"], "-n", False),
    (["novelty", "--model", GRU, "--train-split", "mine/good.txt", "--top-k", "-1"], "--top-k", False),
    (["check-metrics", "--rev", "no-such-revision"], "git", False),
]


@pytest.mark.parametrize("args, message, hint", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_a_mistake_is_one_line(project, args, message, hint, capsys, monkeypatch):
    monkeypatch.chdir(project)
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert message in err
    assert (PIPELINE_HINT in err) == hint, err


def test_tokenize_with_every_line_rejected(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    code, out, err = run(["tokenize", "--model", GRU, "mine/rejected.txt"], capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "mine/rejected.txt:1: rejected (disallowed_characters: characters outside params ingest alphabet): 'b0b'",
        "mine/rejected.txt:2: rejected (empty: nothing left after normalization): ''",
        "error: no line of mine/rejected.txt could be tokenized (every line was rejected)"]


def test_no_stdin_is_one_line(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    for command in ("score", "tokenize"):
        code, _, err = run([command, "--model", GRU], capsys, stdin=b"", monkeypatch=monkeypatch)
        assert code == 2 and err == "error: stdin is empty: nothing to read\n"


BAD_UTF8 = b"\xef\xbb\xbfEmma\r\nav\xe9\r\n\xff\xfe\nZo\xc3\xab\n"  # BOM, CRLF, Latin-1 "avé", junk, UTF-8 "Zoë"


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_line_that_is_not_utf8_is_one_rejected_record(project, source, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(project)
    path = tmp_path / "mixed.txt"
    path.write_bytes(BAD_UTF8)
    args = ["score", "--model", GRU] + ([str(path)] if source == "file" else [])
    code, out, err = run(args, capsys, stdin=BAD_UTF8 if source == "stdin" else None, monkeypatch=monkeypatch)
    assert code == 0 and err == ""
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records[:-1]] == [1, 2, 3, 4]
    assert [r.get("rejected") for r in records[:-1]] == [None, "invalid_utf8", "invalid_utf8", None]
    assert records[1]["text"] == "av\ufffd" and records[0]["text"] == "emma" and records[3]["text"] == "zoe"
    assert records[-1]["items"] == 2 and records[-1]["rejected"] == 2
    # the ingest stage keeps and rejects the same lines of the same file, for the same reason
    result = ingest(path, IngestConfig.from_params({"format": "lines", "normalize": "name", "alphabet": ALPHABET,
                                                    "lowercase": True, "strip_accents": True,
                                                    "dedupe": True, "bad_rows_fatal": False}, "ingest.names"))
    assert [(r["line"], r["reason"]) for r in result.rejects] == [(2, "invalid_utf8"), (3, "invalid_utf8")]
    assert [r["text"] for r in result.rows] == ["emma", "zoe"]


def test_tokenize_prints_kept_lines_and_names_rejected_ones(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    code, out, err = run(["tokenize", "--model", NGRAM], capsys, stdin=BAD_UTF8 + b"b0b\n", monkeypatch=monkeypatch)
    assert code == 0
    assert out == "e m m a\nz o e\n"
    assert err.splitlines() == [
        "stdin:2: rejected (invalid_utf8: the line is not valid UTF-8): 'av\ufffd'",
        "stdin:3: rejected (invalid_utf8: the line is not valid UTF-8): '\ufffd\ufffd'",
        "stdin:5: rejected (disallowed_characters: characters outside params ingest alphabet): 'b0b'",
    ]


def console(args, cwd, stdin=b""):
    rnnlm = shutil.which("rnnlm", path=str(Path(sys.executable).parent))
    return subprocess.run(f"{rnnlm} {args}", shell=True, cwd=cwd, input=stdin, capture_output=True)


def test_the_console_script_exits_quietly(project):
    """The installed command: a mistake is one line and exit 2; a reader that stops early (`| head`)
    ends it without a traceback."""
    done = console("score --model mine/text.pt mine/good.txt", project)
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1 and done.stdout == b""
    many = project / "mine" / "many.txt"
    many.write_text("emma\n" * 20_000)  # 160 kB of tokens: more than a pipe holds
    done = console(f"tokenize --model {GRU} {many} | head -1", project)
    assert done.stdout == b"e m m a\n" and b"Traceback" not in done.stderr and done.stderr == b""


def test_a_gzip_arpa_file_that_is_not_gzip(project, capsys, monkeypatch, tmp_path):
    (tmp_path / "x.arpa.gz").write_bytes(gzip.compress(b"")[:5])
    monkeypatch.chdir(project)
    code, _, err = run(["info", str(tmp_path / "x.arpa.gz")], capsys)
    assert code == 2 and "not a readable ARPA file" in err and len(err.splitlines()) == 1
