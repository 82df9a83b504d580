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
    assert [(r[0], r[1]) for r in rows] == [("m.json", "test.loss")] and "2.50%" in rows[0][4]
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


LOCK = {"stages": {"train@names": {
    "cmd": "python stages/train.py --corpus names",
    "deps": [{"path": "stages/train.py", "md5": "aaa"}, {"path": "data/vocab/names.json", "md5": "bbb"}],
    "params": {"params.yaml": {"kinds": ["gru"], "train.names": {"lr": 0.1}}},
    "outs": [{"path": "models/names/neural", "md5": "ccc.dir"}]}}}
STAGES = {"train@names": {"cmd": "python stages/train.py --corpus names",
                          "deps": ["stages/train.py", "data/vocab/names.json"],
                          "params": {"params.yaml": {"kinds": ["gru"], "train.names": {"lr": 0.1}}},
                          "outs": ["models/names/neural"]}}


def stage(**changes):
    return {"train@names": STAGES["train@names"] | changes}


def test_stale_lock_judges_command_code_params_and_outputs_but_not_data():
    code = {"stages/train.py": "aaa"}
    assert gates.stale_lock(LOCK, STAGES, code) == {}
    # the vocabulary is another stage's data: its hash is not judged here (it changes with the machine for models)
    assert gates.stale_lock(LOCK, STAGES, code | {"stages/train.py": "zzz"}) == {
        "train@names": ["stages/train.py modified"]}
    params = {"params.yaml": {"kinds": ["gru", "lstm"], "train.names": {"lr": 0.1}, "evaluate": {}}}
    changed = stage(cmd="python stages/train.py --corpus names --speed s.json", params=params,
                    deps=["stages/train.py", "src/rnnlm/speed.py"], outs=["models/names/neural", "speed/names.json"])
    assert gates.stale_lock(LOCK, changed, code) == {"train@names": [
        "command changed", "src/rnnlm/speed.py new", "data/vocab/names.json deleted", "param evaluate new",
        "param kinds modified", "output speed/names.json new"]}
    assert gates.stale_lock(LOCK, STAGES | {"report": STAGES["train@names"]}, code) == {
        "report": ["not in dvc.lock (never run)"]}


@pytest.fixture
def dvc_project(tmp_path, monkeypatch):
    """A git + DVC project with one foreach stage, run and committed: code, params, dvc.lock."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "step.py").write_text("import sys\nprint('step', sys.argv[1])\n")
    (tmp_path / "params.yaml").write_text("step: {n: 1}\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  step:\n    foreach: [a, b]\n    do:\n      cmd: python step.py ${item} > out-${item}.txt\n"
        "      deps: [step.py]\n      params: [step]\n      outs:\n        - out-${item}.txt\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def check_lock(capsys):
    with pytest.raises(SystemExit) as done:
        main(["check-lock"])
    return done.value.code, capsys.readouterr().out


def test_check_lock_fails_on_a_stale_committed_lock_even_after_dvc_repro(dvc_project, capsys):
    code, out = check_lock(capsys)
    assert code == 0 and "dvc.lock at HEAD matches" in out and "(2 stages)" in out
    (dvc_project / "step.py").write_text("import sys\nprint('changed', sys.argv[1])\n")
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam"]
    subprocess.run([*commit, "code, but no dvc repro"], cwd=dvc_project, check=True)
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: step.py modified" in out and "step@b: step.py modified" in out
    # CI runs the gates after README's `dvc repro`, which rewrites the workspace's dvc.lock: the
    # committed one is still stale, and the verdict stays
    subprocess.run(["dvc", "repro", "-q"], cwd=dvc_project, check=True, capture_output=True)
    assert subprocess.run(["dvc", "status", "-q"], cwd=dvc_project).returncode == 0
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: step.py modified" in out
    subprocess.run([*commit, "dvc repro"], cwd=dvc_project, check=True)
    assert check_lock(capsys)[0] == 0
    (dvc_project / "params.yaml").write_text("step: {n: 2}\n")
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: param step modified" in out


def test_check_lock_without_a_committed_lock_or_revision_is_one_line(dvc_project, capsys):
    for rev, message in (("nosuch", "unknown revision 'nosuch'"), ("HEAD", "no dvc.lock at HEAD")):
        if rev == "HEAD":
            subprocess.run(["git", "rm", "-q", "--cached", "dvc.lock"], cwd=dvc_project, check=True)
            subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "no lock"],
                           cwd=dvc_project, check=True)
        result = run(["rnnlm", "check-lock", "--rev", rev], dvc_project)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


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
    assert "metrics/names/gru.json" in bad.stdout and "test.loss" in bad.stdout and "5.00%" in bad.stdout
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
                  "--live-dir", "l", "--curves", "c.csv", "--progress", "p.json", "--speed", "s.json"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: params: train.names.hidden_size must be > 0, got 0"
