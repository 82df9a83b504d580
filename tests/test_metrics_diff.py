"""`dvc metrics diff` shows what changed, and only that, on the real pipeline (shrunk, in a copy).

Names with two kinds and one seed (the default's shape), set on a copy of the shared shrunken build
(tests/shrunken.py) and rebuilt (only the names model stages and the report run again), committed; then
every stage that writes metrics reruns on an emulated other CPU (no timing row, last digits at
most, within the gate; the speed comparison shows the new timings), and a one-key experiment
changes one model (only that model's rows, though every kind retrained: the others reproduce
exactly on this machine; `dvc exp show --only-changed` shows it, readable at 200 columns with the
command docs/experiments.md gives). The same machine's rerun of every kind and seed lists no row
at all: tests/test_pipeline.py.
"""

import fcntl
import json
import os
import pty
import re
import shlex
import struct
import subprocess
import termios
from pathlib import Path

import pytest
import yaml

from rnnlm import gates
from rnnlm.speed import is_timing
from tests.shrunken import commit, copy_project, metrics_diff, sh

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# Another CPU's vector kernels (docs/reproducibility.md): generic ATen kernels, oneDNN and MKL at SSE4.
OTHER_CPU = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
ONE_KEY = "+train.names.overrides.gru.hidden_size=12"   # one setting of one model (docs/experiments.md)


def names_two_kinds_one_seed(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["kinds"]["names"] = ["gru", "lstm"]          # the mixture mixes the lstm alone: the transformer is not trained
    params["train"]["names"]["seeds"] = [0]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_metrics_diff_shows_what_changed_and_only_that(shrunken_pipeline, tmp_path):
    """One test, in order, on its own copy of the shared build."""
    repo = copy_project(shrunken_pipeline, tmp_path / "rnnlm")
    names_two_kinds_one_seed(repo)
    commit(repo, "names: two kinds, one seed")
    built = sh("dvc", "repro", cwd=repo)
    assert "mixture names: transformer not in kinds.names, mixing lstm with the n-gram" in built.stdout
    assert json.loads((repo / "metrics/names/mixture.json").read_text())["kinds"] == ["lstm"]
    commit(repo, "the pipeline's outputs")
    committed_files_hold_no_timing_and_no_spread_of_one_seed(repo)
    a_rerun_on_another_cpu_lists_no_timing_and_stays_within_the_gate(repo)
    a_one_key_change_of_one_model_shows_only_that_model(repo)


def committed_files_hold_no_timing_and_no_spread_of_one_seed(repo):
    for path in repo.glob("metrics/**/*.json"):
        keys = gates.flatten(json.loads(path.read_text()))
        assert not [key for key in keys if is_timing(key)], path
        # one seed, no spread (the other corpora keep the shared build's two seeds, and their spread)
        one_seed = path.is_relative_to(repo / "metrics/names")
        assert not (one_seed and [key for key in keys if key.startswith("seeds.")]), path
    train = json.loads((repo / "speed/stages/names/train.json").read_text())
    assert set(train) == {"gru", "lstm"} and train["gru"]["seed0"]["train_seconds"] > 0


def a_rerun_on_another_cpu_lists_no_timing_and_stays_within_the_gate(repo):
    """Every stage that writes metrics, rerun with another CPU's kernels: last digits at most."""
    stages = [f"{stage}@names" for stage in ("train", "evaluate", "generate", "ngram", "tokenization", "mixture")]
    sh("env", *(f"{k}={v}" for k, v in OTHER_CPU.items()), "dvc", "repro", "--force", "--single-item", *stages,
       cwd=repo)
    rows = metrics_diff(repo)
    assert not [key for _, key in rows if is_timing(key)], rows
    assert all(path.startswith("metrics/names/") for path, _ in rows)
    sh("rnnlm", "check-metrics", "--rev", "HEAD", cwd=repo)   # within the gate's tolerances
    speed = metrics_diff(repo, "--targets", "speed/stages", "-R")   # the timings, on request (docs)
    changed = {key for path, key in speed if path == "speed/stages/names/train.json"}
    assert {"gru.seed0.train_seconds", "lstm.seed0.tokens_per_s"} <= changed, speed
    assert all(is_timing(key) for _, key in speed)
    # back to the committed outputs, for the experiment
    sh("git", "reset", "-q", "--hard", cwd=repo)
    sh("dvc", "checkout", "-q", cwd=repo)


def a_one_key_change_of_one_model_shows_only_that_model(repo):
    # as far as the evaluation: the stages after it (samples, mixture, report) add nothing to check here
    sh("dvc", "exp", "run", "-n", "wider-gru", "-S", ONE_KEY, "evaluate@names", cwd=repo)
    rows = metrics_diff(repo)
    files = {path for path, _ in rows}
    assert "metrics/names/neural/gru.json" in files and len(rows) < 50, rows
    assert files <= {"metrics/names/neural/gru.json", "metrics/names/training.json"}, rows
    assert all(key.startswith("gru.") for path, key in rows if path.endswith("training.json"))
    assert rows[("metrics/names/neural/gru.json", "params")][1] > rows[("metrics/names/neural/gru.json", "params")][0]

    header = sh("dvc", "exp", "show", "--only-changed", "--csv", cwd=repo).stdout.splitlines()[0].split(",")
    assert "train.names.overrides.gru.hidden_size" in header and "metrics/names/neural/gru.json:dev.loss" in header
    assert not [column for column in header if "lstm" in column or "mixture" in column], header

    shown = terminal_output([*readable_exp_show(), "--no-pager"], repo, columns=200)
    lines = [line for line in shown.splitlines() if line.strip()]
    assert "…" not in shown and max(map(len, lines)) <= 200, shown
    assert "wider-gru" in shown and "gru.json:dev.loss" in shown and "hidden_size" in shown


def readable_exp_show():
    """The `dvc exp show --only-changed --drop ...` command of docs/experiments.md, as arguments."""
    text = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    line = re.search(r"^dvc exp show --only-changed --drop .*$", text, flags=re.M).group(0)
    return shlex.split(line, comments=True)


def terminal_output(args, cwd, columns):
    """What a command prints in a terminal ``columns`` wide (a pseudo-terminal; colours stripped)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # the command ended and closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert process.wait() == 0, b"".join(chunks).decode(errors="replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace")).replace("\r", "")
