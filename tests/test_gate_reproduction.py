"""The metrics gate, both ways, on metrics that really come from training and evaluating a model.

A second machine rounds the last digit of some float operations differently; over training that
noise grows into small differences in every loss and, above all, in the spread over seeds. The
test recreates it on one machine: the same stages run twice, the second time with every initial
weight moved by one unit in the last place (ulp). (A different torch thread count was tried first:
on this project's small models it gives bit-identical results, so it would prove nothing.)
"""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm import gates
from rnnlm.data import encode_split, save_encoded
from rnnlm.vocab import Vocabulary

ROOT = Path(__file__).resolve().parents[1]

# Runs a stage script with its model's initial weights one ulp up: a CPU that rounds differently.
NUDGE = '''
import runpy, sys
import torch
import rnnlm.training as training

build = training.build_model


def nudged(config):
    model = build(config)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
    return model


training.build_model = nudged
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
runpy.run_path(sys.argv[0], run_name="__main__")
'''

# Long enough (10 epochs of small batches) for one ulp to grow into differences at 6 digits.
PARAMS = """train:
  toy: {embedding_size: 16, hidden_size: 16, batch_size: 8, epochs: 10, seeds: [0, 1], workers: 1, lr: 0.02}
evaluate: {batch_size: 64}
"""


def made_up_names(n, seed):
    rng = random.Random(seed)
    syllables = ["an", "el", "ma", "ri", "so", "ka", "li", "ne", "to", "be", "ja", "mi", "or", "us", "ia"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def train_and_evaluate(project, nudge=False):
    """Run the real train and evaluate stages on a toy corpus in ``project``; return the metrics."""
    project.mkdir()
    items = {"train": made_up_names(300, 1), "dev": made_up_names(60, 2), "test": made_up_names(60, 3)}
    vocab = Vocabulary.build(items["train"], "char")
    vocab.save(project / "vocab.json")
    save_encoded(project / "encoded.npz", {split: encode_split(vocab, names) for split, names in items.items()})
    (project / "test.txt").write_text("\n".join(items["test"]) + "\n")  # for the OOV character share
    (project / "params.yaml").write_text(PARAMS)
    (project / "nudge.py").write_text(NUDGE)
    prefix = [sys.executable, "nudge.py"] if nudge else [sys.executable]
    common = ["--corpus", "toy", "--model", "gru", "--vocab", "vocab.json", "--encoded", "encoded.npz"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for script, args in (("train.py", ["--checkpoint", "gru.pt", "--seeds-dir", "seeds", "--curve", "gru.csv"]),
                         ("evaluate.py", ["--seeds-dir", "seeds", "--test-split", "test.txt",
                                             "--metrics", "metrics/toy/gru.json"])):
        done = subprocess.run([*prefix, str(ROOT / "stages" / script), *common, *args], cwd=project, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return {"metrics/toy/gru.json": json.loads((project / "metrics" / "toy" / "gru.json").read_text())}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return train_and_evaluate(base / "reference"), train_and_evaluate(base / "nudged", nudge=True), base


def test_last_digit_differences_pass_the_gate(two_runs):
    committed, reproduced, _ = two_runs
    timing = ("train_seconds", "train_tokens_per_s")
    a, b = gates.flatten(committed["metrics/toy/gru.json"]), gates.flatten(reproduced["metrics/toy/gru.json"])
    differing = [key for key in a if key not in timing and a[key] != b[key]]
    assert differing, "the nudged run reproduced every digit: this test would prove nothing"
    assert any(key.endswith(".std") for key in differing)
    tally = {}
    assert gates.compare_metrics(committed, reproduced, tally=tally) == []
    assert tally["count"] >= 4 and tally["spread"] == 8 and tally["timing"] == 2


def test_a_loss_one_percent_worse_and_a_new_nan_fail_naming_file_and_metric(two_runs):
    committed, reproduced, _ = two_runs
    worse = json.loads(json.dumps(reproduced))
    worse["metrics/toy/gru.json"]["test"]["loss"] *= 1.011
    worse["metrics/toy/gru.json"]["seeds"]["dev_loss"]["mean"] = math.nan
    rows = gates.compare_metrics(committed, worse)
    assert [(row[0], row[1]) for row in rows] == [("metrics/toy/gru.json", "seeds.dev_loss.mean"),
                                                   ("metrics/toy/gru.json", "test.loss")]
    assert rows[0][4] == "became NaN" and rows[1][4].startswith("differs by 1.10%")
    table = gates.format_rows(rows)
    assert "metrics/toy/gru.json  test.loss" in table and "seeds.dev_loss.mean" in table


def test_a_missing_model_fails_the_gate(two_runs):
    """One seed's checkpoint is gone: evaluate refuses, so `rnnlm check-metrics` finds its file missing."""
    _, _, base = two_runs
    project = base / "reference"
    for cmd in (["git", "init", "-q"], ["git", "add", "metrics"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "metrics"]):
        subprocess.run(cmd, cwd=project, check=True)
    (project / "seeds" / "seed1.pt").unlink()
    (project / "metrics" / "toy" / "gru.json").unlink()
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "evaluate.py"), "--corpus", "toy", "--model", "gru",
                           "--vocab", "vocab.json", "--encoded", "encoded.npz", "--seeds-dir", "seeds",
                           "--test-split", "test.txt", "--metrics", "metrics/toy/gru.json"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 2 and "seed1.pt" in done.stderr
    gate = subprocess.run(["rnnlm", "check-metrics"], cwd=project, capture_output=True, text=True)
    assert gate.returncode == 1
    assert "metrics/toy/gru.json  *" in gate.stdout and "file not reproduced" in gate.stdout
