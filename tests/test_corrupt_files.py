"""A corrupt file given to any `rnnlm` command: one line on stderr, exit status 2, no traceback.

Every command (score, tokenize, sample, info, novelty, export, compare, check-metrics) meets each file
it reads (checkpoint, ARPA file, mixture JSON, metrics JSON in the workspace and committed in git,
input text) in each way a file goes bad: garbage bytes, truncated, and well-formed content of the
wrong shape. Each command runs through the console script's own entry point, `rnnlm.cli.main`, in this
process (a process of its own would cost two seconds of imports per case): an exception that escapes
main is what would print a traceback, and it fails the test; a warning is made an error, as any line
besides the error's would break the one line. test_bad_input runs the installed console script itself.
"""

import gzip
import io
import json
import random
import shutil
import subprocess

import pytest
import torch

from rnnlm.arpa import write_arpa
from rnnlm.checkpoint import save_checkpoint
from rnnlm.cli import main
from rnnlm.data import encode_split
from rnnlm.lm import mixture_spec
from rnnlm.models import ModelConfig, build_model
from rnnlm.ngram import KneserNeyLM
from rnnlm.text import Normalization
from rnnlm.vocab import Vocabulary

from .conftest import TOY_NAMES

CHECKPOINT, ARPA, MIXTURE = "models/names/neural/gru.pt", "models/names/ngram.arpa.gz", "models/names/mixture.json"
METRICS, TRAIN = "metrics/names/neural/gru.json", "train.txt"
RECORD = {"dev": {"loss": 2.0, "perplexity": 7.39, "tokens": 40}, "test": {"loss": 2.1, "perplexity": 8.17, "tokens": 41}}
GARBAGE = random.Random(0).randbytes(4000)


def commit(root, message):
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)


def torch_bytes(payload):
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A DVC project's layout (models/, metrics/ committed in git), and the bad versions of each file:
    ``{file: {"garbage" | "truncated" | "wrong shape": bytes}}``. The branch ``corrupt-<way>`` commits the
    metrics file gone bad that way; the workspace keeps the good one."""
    root = tmp_path_factory.mktemp("project")
    (root / "dvc.yaml").write_text("stages: {}\n")
    folder = root / "models" / "names"
    (folder / "neural").mkdir(parents=True)
    vocab = Vocabulary.build(TOY_NAMES, "char", normalization=Normalization("name", "abcdefghijklmnopqrstuvwxyz"))
    torch.manual_seed(0)
    model = build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, 8))
    save_checkpoint(root / CHECKPOINT, model, vocab, {"seed": 0})
    ngram = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 3).fit(encode_split(vocab, TOY_NAMES))
    write_arpa(root / ARPA, ngram, vocab.tokens, header={"vocabulary": vocab.to_dict()})
    (root / MIXTURE).write_text(json.dumps(mixture_spec([root / CHECKPOINT, root / ARPA], [0.5, 0.5], root / MIXTURE)))
    (root / METRICS).parent.mkdir(parents=True)
    (root / METRICS).write_text(json.dumps(RECORD))
    (root / TRAIN).write_text("\n".join(TOY_NAMES) + "\n")
    (root / "good.txt").write_text("emma\nava\n")

    good = {name: (root / name).read_bytes() for name in (CHECKPOINT, ARPA, MIXTURE, METRICS, TRAIN)}
    payload = torch.load(root / CHECKPOINT, weights_only=True)
    arpa_text = gzip.decompress(good[ARPA]).decode()
    header = arpa_text.splitlines()[0]
    wrong = {
        # a whole archive, but its weights are lists of numbers, not tensors
        CHECKPOINT: torch_bytes(payload | {"model": {k: v.tolist() for k, v in payload["model"].items()}}),
        # the header's vocabulary is a list of tokens, not the vocabulary object
        ARPA: gzip.compress(arpa_text.replace(header, "# rnnlm-model " + json.dumps({"vocabulary": vocab.tokens}))
                            .encode()),
        # one component as an object, not a list of them
        MIXTURE: json.dumps({"format": "rnnlm-mixture", "format_version": 2,
                             "components": {"file": "neural/gru.pt", "weight": 1.0}}).encode(),
        # a loss that is a string
        METRICS: json.dumps(RECORD | {"test": RECORD["test"] | {"loss": "2.1"}}).encode(),
        # a training split that is no text at all: the checkpoint's bytes
        TRAIN: good[CHECKPOINT],
    }
    bad = {name: {"garbage": GARBAGE, "truncated": data[: len(data) // 2], "wrong shape": wrong[name]}
           for name, data in good.items()}
    bad[TRAIN]["truncated"] = "zoë\n".encode()[:3]  # cut inside a character

    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    commit(root, "good files")
    for way, data in bad[METRICS].items():
        subprocess.run(["git", "checkout", "-q", "-b", f"corrupt-{way.replace(' ', '-')}"], cwd=root, check=True,
                       capture_output=True)
        (root / METRICS).write_bytes(data)
        commit(root, f"metrics: {way}")
        subprocess.run(["git", "checkout", "-q", "-"], cwd=root, check=True, capture_output=True)  # back to the good files
    return root, bad


NOVELTY = ["--temperatures", "1.0", "--top-k", "0", "-n", "2", "--max-tokens", "3"]
MODEL_COMMANDS = [
    ["score", "--model", "{model}", "good.txt"],
    ["tokenize", "--model", "{model}", "good.txt"],
    ["sample", "--model", "{model}", "-n", "2", "--max-tokens", "3"],
    ["info", "{model}"],
    ["novelty", "--model", "{model}", "--train-split", TRAIN, *NOVELTY],
]
# (the file gone bad, the command that reads it), every command on every file it reads
CASES = [
    *[(CHECKPOINT, command) for command in MODEL_COMMANDS + [["export", "--model", "{model}", "--onnx", "out.onnx"]]],
    *[(ARPA, command) for command in MODEL_COMMANDS],
    *[(MIXTURE, command) for command in MODEL_COMMANDS],
    (METRICS, ["info", CHECKPOINT]),
    (METRICS, ["compare"]),
    (METRICS, ["check-metrics"]),
    ("committed " + METRICS, ["compare", "{rev}"]),
    ("committed " + METRICS, ["check-metrics", "--rev", "{rev}"]),
    (TRAIN, ["novelty", "--model", CHECKPOINT, "--train-split", TRAIN, *NOVELTY]),
    (TRAIN, ["score", "--model", CHECKPOINT, TRAIN]),
    (TRAIN, ["tokenize", "--model", CHECKPOINT, TRAIN]),
]
WAYS = ("garbage", "truncated", "wrong shape")
PARAMS = [(file, command, way) for file, command in CASES for way in WAYS
          if not (file == TRAIN and way == "wrong shape" and command[0] != "novelty")]


@pytest.mark.parametrize("file, command, way", PARAMS,
                         ids=[f"{command[0]}-{file}-{way}".replace(" ", "_") for file, command, way in PARAMS])
@pytest.mark.filterwarnings("error")
def test_a_corrupt_file_is_one_line_and_exit_2(project, tmp_path, monkeypatch, capsys, file, command, way):
    source, bad = project
    root = tmp_path / "project"
    shutil.copytree(source, root)
    rev = f"corrupt-{way.replace(' ', '-')}"
    if not file.startswith("committed "):
        (root / file).write_bytes(bad[file][way])
    args = [part.format(model=file, rev=rev) for part in command]
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as done:
        main(args)
    out, err = capsys.readouterr()
    assert done.value.code == 2, (done.value.code, out, err)
    lines = err.splitlines()
    if file == TRAIN and command[0] in ("score", "tokenize"):
        lines = [line for line in lines if ": rejected (" not in line]  # tokenize names each rejected line first
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    named = file.removeprefix("committed ")
    assert named in lines[0] or (named == TRAIN and "could be" in lines[0]), lines[0]


# More shapes of wrong content, each met by the loader that reads it.
def _checkpoint(payload_change):
    def make(root):
        payload = torch.load(root / CHECKPOINT, weights_only=True)
        (root / CHECKPOINT).write_bytes(torch_bytes(payload | payload_change(payload)))
    return make


def _write(name, data):
    def make(root):
        (root / name).write_text(json.dumps(data))
    return make


SHAPES = {
    "training record a list": (_checkpoint(lambda p: {"training": [1, 2]}), ["info", CHECKPOINT],
                               "'training' is a list, not a mapping"),
    "training record holds a tensor": (_checkpoint(lambda p: {"training": {"seed": torch.tensor(0)}}),
                                       ["info", CHECKPOINT], "'training' must be plain data"),
    "hidden size a string": (_checkpoint(lambda p: {"model_config": p["model_config"] | {"hidden_size": "8"}}),
                             ["sample", "--model", CHECKPOINT], "bad model config (hidden_size is '8')"),
    "cutoffs not ints": (_checkpoint(lambda p: {"model_config": p["model_config"] | {"adaptive_cutoffs": ["a"]}}),
                         ["info", CHECKPOINT], "bad model config (adaptive_cutoffs is ['a'])"),
    "alphabet a number": (_checkpoint(lambda p: {"vocab": p["vocab"] | {"normalization": p["vocab"]["normalization"]
                                                                         | {"alphabet": 5}}}),
                          ["tokenize", "--model", CHECKPOINT, "good.txt"], "bad normalization rules (alphabet is 5)"),
    "mixture of itself": (_write(MIXTURE, {"format": "rnnlm-mixture", "format_version": 2,
                                           "components": [{"file": "mixture.json", "weight": 1.0}]}),
                          ["score", "--model", MIXTURE, "good.txt"], "not mixtures"),
    "metrics a list": (_write(METRICS, [RECORD]), ["check-metrics"], "a JSON object expected, got a list"),
    "metrics without test": (_write(METRICS, {"dev": RECORD["dev"]}), ["info", CHECKPOINT],
                             "'test' must be an object with a numeric loss"),
    "perplexity a string": (_write(METRICS, RECORD | {"dev": RECORD["dev"] | {"perplexity": "7"}}), ["compare"],
                            "dev.perplexity must be a number, got '7'"),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_more_wrong_shapes_are_one_line(project, tmp_path, monkeypatch, capsys, name):
    make, args, message = SHAPES[name]
    root = tmp_path / "project"
    shutil.copytree(project[0], root)
    make(root)
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as done:
        main(args)
    err = capsys.readouterr().err
    assert done.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert message in err
