"""The metrics gate, both ways, on metrics that really come from training and evaluating a model.

A second machine rounds the last digit of some float operations differently; over training that
noise grows into small differences in every loss and, above all, in the spread over seeds. The
test recreates such a machine on this one, twice over:

* its kernels: the reproduction runs with torch's vector kernels forced down (``KERNELS``: the
  generic ATen kernels, oneDNN and MKL at SSE4; or AVX2 alone), as on a CPU without AVX-512;
* its rounding, made certain by construction: whether lowered kernels change a given digit
  depends on the CPU the test runs on (on an AVX2-only machine "AVX2" is no change at all), so the
  reproduction also scales every initial weight by (1 + 1e-4). That moves the metrics in their
  5th digits on any CPU, as a different machine's rounding grown over training does, and stays
  well inside the gate's tolerances (rnnlm.tolerances: 1e-3 relative for a loss).
"""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnlm import gates
from rnnlm.tolerances import RTOL
from rnnlm.data import encode_split, save_encoded
from rnnlm.vocab import Vocabulary
from tests.configs import PLAIN_TRAIN, params_section

ROOT = Path(__file__).resolve().parents[1]

# Runs a stage script with every initial weight scaled by (1 + 1e-4): a CPU that rounds differently.
NUDGE = '''
import runpy, sys
import torch
import rnnlm.training as training


build = training.build_model


def nudged(config):
    model = build(config)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 1e-4)
    return model


training.build_model = nudged
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
runpy.run_path(sys.argv[0], run_name="__main__")
'''

# Vector kernels of another CPU (torch, oneDNN and MKL read these at start-up).
KERNELS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
           "sse4": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}}

# 10 epochs of small batches: the nudge grows into differences at 6 digits, including the spreads.
PARAMS = yaml.safe_dump({"corpora": {"toy": "toy.txt"}, "kinds": {"toy": ["gru"]}, "train": {"toy": params_section("train") | PLAIN_TRAIN | dict(
    embedding_size=16, hidden_size=16, batch_size=8, epochs=10, seeds=[0, 1], workers=1, lr=0.02)},
    "evaluate": params_section("evaluate") | {"batch_size": 64}})


def made_up_names(n, seed):
    rng = random.Random(seed)
    syllables = ["an", "el", "ma", "ri", "so", "ka", "li", "ne", "to", "be", "ja", "mi", "or", "us", "ia"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def train_and_evaluate(project, nudge=False, kernels=None):
    """Run the real train and evaluate stages on a toy corpus in ``project``; return the metrics.

    ``kernels``: environment variables that pick other vector kernels (``KERNELS``)."""
    project.mkdir()
    items = {"train": made_up_names(300, 1), "dev": made_up_names(60, 2), "test": made_up_names(60, 3)}
    vocab = Vocabulary.build(items["train"], "char")
    vocab.save(project / "vocab.json")
    save_encoded(project / "encoded.npz", {split: encode_split(vocab, names) for split, names in items.items()})
    (project / "test.txt").write_text("\n".join(items["test"]) + "\n")  # for the OOV character share
    (project / "params.yaml").write_text(PARAMS)
    (project / "nudge.py").write_text(NUDGE)
    prefix = [sys.executable, "nudge.py"] if nudge else [sys.executable]
    common = ["--corpus", "toy", "--vocab", "vocab.json", "--encoded", "encoded.npz",
              "--models-dir", "models"]
    env = dict(os.environ, OMP_NUM_THREADS="1", **(kernels or {}))
    for script, args in (("train.py", ["--live-dir", "live", "--curves", "curves.csv", "--progress", "training.json",
                                       "--speed", "speed.json"]),
                         ("evaluate.py", ["--test-split", "test.txt", "--metrics-dir", "metrics/toy"])):
        done = subprocess.run([*prefix, str(ROOT / "stages" / script), *common, *args], cwd=project, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return {"metrics/toy/gru.json": json.loads((project / "metrics" / "toy" / "gru.json").read_text())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The committed run: this CPU's own kernels. ``(metrics, project folder)``."""
    project = tmp_path_factory.mktemp("runs") / "reference"
    return train_and_evaluate(project), project


@pytest.fixture(scope="module", params=sorted(KERNELS))
def two_runs(request, reference, tmp_path_factory):
    """``(committed, reproduced)``: the reproduction on another CPU's kernels, nudged."""
    project = tmp_path_factory.mktemp("runs") / "reproduced"
    return reference[0], train_and_evaluate(project, nudge=True, kernels=KERNELS[request.param])


def test_last_digit_differences_pass_the_gate(two_runs):
    committed, reproduced = two_runs
    a, b = gates.flatten(committed["metrics/toy/gru.json"]), gates.flatten(reproduced["metrics/toy/gru.json"])
    differing = [key for key in a if a[key] != b[key]]
    # certain by construction (the module docstring): a run that reproduced every digit means the
    # nudge never reached the model, and this test would prove nothing
    assert any(key.startswith(("dev.", "test.")) for key in differing)
    assert any(key.endswith(".std") for key in differing)
    tally = {}
    assert gates.compare_metrics(committed, reproduced, tally=tally) == []
    assert tally["count"] >= 4 and tally["spread"] == 8 and "timing" not in tally  # timings live in speed/


def test_a_loss_worse_than_its_tolerance_and_a_new_nan_fail_naming_file_and_metric(two_runs):
    committed, reproduced = two_runs
    worse = json.loads(json.dumps(reproduced))
    worse["metrics/toy/gru.json"]["test"]["loss"] = committed["metrics/toy/gru.json"]["test"]["loss"] * (
        1 + 1.5 * RTOL["loss"])   # half as much again as the gate lets a loss move
    worse["metrics/toy/gru.json"]["seeds"]["dev_loss"]["mean"] = math.nan
    rows = gates.compare_metrics(committed, worse)
    assert [(row[0], row[1]) for row in rows] == [("metrics/toy/gru.json", "seeds.dev_loss.mean"),
                                                   ("metrics/toy/gru.json", "test.loss")]
    assert rows[0][4] == "became NaN" and rows[1][4].startswith("differs by 0.0015 relative")
    table = gates.format_rows(rows)
    assert "metrics/toy/gru.json  test.loss" in table and "seeds.dev_loss.mean" in table


def test_a_missing_model_fails_the_gate(reference):
    """One seed's checkpoint is gone: evaluate refuses, so `rnnlm check-metrics` finds its file missing."""
    _, project = reference
    for cmd in (["git", "init", "-q"], ["git", "add", "metrics"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "metrics"]):
        subprocess.run(cmd, cwd=project, check=True)
    (project / "models" / "gru.seeds" / "seed1.pt").unlink()
    (project / "metrics" / "toy" / "gru.json").unlink()
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "evaluate.py"), "--corpus", "toy",
                           "--vocab", "vocab.json", "--encoded", "encoded.npz", "--models-dir", "models",
                           "--test-split", "test.txt", "--metrics-dir", "metrics/toy"], cwd=project, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "seed1.pt" in done.stderr
    gate = subprocess.run(["rnnlm", "check-metrics"], cwd=project, capture_output=True, text=True)
    assert gate.returncode == 1
    assert "metrics/toy/gru.json  *" in gate.stdout and "file not reproduced" in gate.stdout
