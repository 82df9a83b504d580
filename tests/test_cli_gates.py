import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnlm import gates
from rnnlm.checkpoint import save_checkpoint
from rnnlm.cli import main
from rnnlm.models import ModelConfig, build_model
from tests.configs import PARAMS, params_section

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True)


def test_compare_metrics_tolerances_and_timings():
    old = {"m.json": {"test": {"loss": 2.0, "accuracy": 0.3}, "train_seconds": 10.0}}
    same = {"m.json": {"test": {"loss": 2.0199, "accuracy": 0.3}, "train_seconds": 99.0}}
    assert gates.compare_metrics(old, same, rtol=0.01) == []
    worse = {"m.json": {"test": {"loss": 2.05, "accuracy": 0.3}, "train_seconds": 10.0}}
    rows = gates.compare_metrics(old, worse, rtol=0.01)
    assert [(r[0], r[1]) for r in rows] == [("m.json", "test.loss")] and "0.025 relative" in rows[0][4]
    assert gates.compare_metrics(old, worse, rtol=0.0, atol=0.1) == []
    assert gates.compare_metrics(old, {}, rtol=0.01)[0][4] == "file not reproduced"


def test_compare_metrics_reads_one_seed_and_several_seed_files():
    one = {"m.json": {"dev": {"loss": 2.0}, "test": {"loss": 2.1}, "seed": 0, "best_epoch": 3}}
    spread = {"mean": 2.05, "std": 0.01, "n": 2, "min": 2.04, "max": 2.06}
    two = {"m.json": one["m.json"] | {"seeds": {"dev_loss": spread}}}
    nudged = {"m.json": two["m.json"] | {"dev": {"loss": 2.001}, "seeds": {"dev_loss": spread | {"std": 0.0105}}}}
    assert gates.compare_metrics(one, json.loads(json.dumps(one))) == []
    assert gates.compare_metrics(two, nudged) == []
    # a one-seed run against a committed several-seed file: the spread is missing, and that fails
    assert {row[1] for row in gates.compare_metrics(two, one)} == {f"seeds.dev_loss.{k}" for k in spread}


@pytest.fixture
def metrics_repo(tmp_path):
    """A git repository with committed metrics, as CI sees the project after `dvc repro`."""
    (tmp_path / "metrics" / "names").mkdir(parents=True)
    metrics = tmp_path / "metrics" / "names" / "gru.json"
    metrics.write_text(json.dumps({"test": {"loss": 2.0, "perplexity": 7.389}, "train_seconds": 12.0}))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "metrics"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    return tmp_path, metrics


def test_check_metrics_passes_then_fails_on_a_deliberately_changed_metric(metrics_repo):
    repo, metrics = metrics_repo
    ok = run(["rnnlm", "check-metrics"], repo)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "metrics match HEAD" in ok.stdout
    metrics.write_text(json.dumps({"test": {"loss": 2.1, "perplexity": 7.389}, "train_seconds": 99.0}))
    bad = run(["rnnlm", "check-metrics", "--rtol", "0.01"], repo)
    assert bad.returncode == 1
    assert "metrics/names/gru.json" in bad.stdout and "test.loss" in bad.stdout and "0.05 relative" in bad.stdout
    assert "train_seconds" not in bad.stdout
    assert run(["rnnlm", "check-metrics", "--rtol", "0.06"], repo).returncode == 0


def test_sample_command(tmp_path, toy_vocab, capsys):
    model = build_model(ModelConfig("gru", len(toy_vocab), toy_vocab.pad_id, 8, 8))
    save_checkpoint(tmp_path / "m.pt", model, toy_vocab, {})
    with pytest.raises(SystemExit) as done:
        main(["sample", "--checkpoint", str(tmp_path / "m.pt"), "-n", "4", "--prompt", "s", "--top-k", "3",
              "--temperature", "0.8"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.startswith("s") for line in lines)


@pytest.mark.parametrize("args, message", [
    (["sample", "--checkpoint", "nope.pt"], "checkpoint nope.pt not found"),
    (["sample", "--checkpoint", "x.pt", "--temperature", "0"], "--temperature must be > 0, got 0.0"),
    (["sample", "--checkpoint", "x.pt", "-n", "0"], "-n must be > 0, got 0"),
    (["sample", "--checkpoint", "x.pt", "--top-k", "0"], "--top-k must be >= 1, got 0"),
])
def test_user_mistakes_give_one_line_and_exit_2(tmp_path, args, message):
    result = run(["rnnlm", *args], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}" or message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_stage_with_missing_raw_file_names_the_fetch_command(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    result = run([sys.executable, str(ROOT / "stages" / "ingest.py"), "--corpus", "names", "--raw", "data/raw/names.txt",
                  "--rows", "r.jsonl", "--rejects", "x.jsonl", "--report", "r.json"], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "dvc pull data/raw/names.txt.dvc" in result.stderr


def test_stage_rejects_bad_params_before_work(tmp_path):
    params = PARAMS | {"train": PARAMS["train"] | {"names": params_section("train") | {"hidden_size": 0}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run([sys.executable, str(ROOT / "stages" / "train.py"), "--corpus", "names",
                  "--vocab", "missing.json", "--encoded", "missing.npz", "--models-dir", "m",
                  "--live-dir", "l", "--curves", "c.csv", "--progress", "p.json", "--speed", "s.json",
                  "--resume-dir", "r"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: params: train.names.hidden_size must be > 0, got 0"
