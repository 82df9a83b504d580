"""`rnnlm compare REV`: the Markdown comparison of the metrics at a revision with the workspace's."""

import json
import subprocess

import pytest

from rnnlm.cli import main


def result(dev_loss, test_loss, **extra):
    """A model's metrics file: dev and test loss and perplexity (2.0 nats -> 7.39)."""
    import math

    return {"dev": {"loss": dev_loss, "perplexity": math.exp(dev_loss), "tokens": 100},
            "test": {"loss": test_loss, "perplexity": math.exp(test_loss), "tokens": 100}, **extra}


BASE = {
    "metrics/names/neural/gru.json": result(2.0, 2.1, seed=0),
    "metrics/names/neural/lstm.json": result(1.9, 1.95, seed=0),
    "metrics/names/neural/rnn.json": result(2.2, 2.25, seed=0),
    "metrics/names/ngram.json": result(2.5, 2.6, order=3),
    "metrics/names/samples/gru.json": {"novel_share": 0.5, "samples": 10},   # not a model: no dev/test
    "metrics/names/training.json": {"gru": {"seed0": {"epoch": 3, "dev_loss": 2.0}}},
    "metrics/news/neural/gru.json": result(5.5, 5.6, seed=0),
}
CHANGED = {path: data for path, data in BASE.items() if "rnn.json" not in path} | {
    "metrics/names/neural/gru.json": result(2.0001, 2.1, seed=0),      # within 1%
    "metrics/names/neural/lstm.json": result(1.8, 1.95, seed=0),       # dev 5.26% better: beyond
    "metrics/names/mixture.json": result(1.7, 1.8, kinds=["lstm"], seed=0, weights={"lstm": 0.6, "ngram": 0.4}),
}


def write_tree(root, files):
    for path in root.glob("metrics/**/*.json"):
        path.unlink()
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(data), encoding="utf-8")


def git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """Two commits: a README alone, then the base metrics; the workspace holds the changed ones."""
    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q")
    (tmp_path / "README.md").write_text("a project\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "no metrics yet")
    write_tree(tmp_path, BASE)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base metrics")
    write_tree(tmp_path, CHANGED)
    return tmp_path


def compare(capsys, *args):
    with pytest.raises(SystemExit) as done:
        main(["compare", *args])
    out, err = capsys.readouterr()
    return done.value.code, out, err


def table(markdown, corpus):
    """{(model, split): cells} of ``corpus``'s table."""
    section = markdown.split(f"## {corpus}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {(row[0], row[1]): row[2:] for row in cells}


def test_compare_shows_values_changes_marks_and_the_best_model(repo, capsys):
    code, md, _ = compare(capsys, "HEAD")
    assert code == 0
    assert md.startswith("# Metrics: the workspace against HEAD\n")
    assert "2 value(s) changed beyond the tolerance, marked ⚠" in md  # lstm's dev loss and perplexity
    names = table(md, "names")
    # columns: loss at REV, loss now, change, perplexity at REV, perplexity now, change
    assert names[("gru", "dev")][:3] == ["2.0000", "2.0001", "+0.0001 (+0.01%)"]
    assert names[("gru", "test")][2] == "=" and "⚠" not in "".join(names[("gru", "dev")])
    assert names[("lstm", "dev")][:3] == ["1.9000", "1.8000", "-0.1000 (-5.26%) ⚠"]
    assert names[("lstm", "dev")][3:5] == ["6.69", "6.05"] and names[("lstm", "dev")][5].endswith("⚠")
    assert names[("lstm", "test")][2] == "="
    assert names[("rnn", "dev")] == ["2.2000", "—", "removed", "9.03", "—", "removed"]
    assert names[("lstm+ngram", "test")] == ["—", "1.8000", "added", "—", "6.05", "added"]
    assert names[("ngram", "dev")][2] == "=" and len(names) == 2 * 5   # samples, training.json: not models
    assert "Best model (lowest dev loss): at HEAD lstm (1.9000), now lstm+ngram (1.7000)." in md
    assert set(table(md, "news")) == {("gru", "dev"), ("gru", "test")}
    assert md.index("## names") < md.index("## news") and "`dvc plots diff HEAD`" in md


def test_compare_with_the_same_metrics_and_a_wider_tolerance(repo, capsys):
    write_tree(repo, BASE)
    code, md, _ = compare(capsys)          # REV defaults to HEAD
    assert code == 0 and "No value changed beyond the tolerance" in md and "⚠" not in md
    write_tree(repo, CHANGED)
    assert "No value changed beyond" in compare(capsys, "--rtol", "0.1")[1]


@pytest.mark.parametrize("rev, message", [("nosuch", "unknown revision 'nosuch'"),
                                          ("HEAD~1", "no model metrics under metrics/ at revision HEAD~1")])
def test_compare_errors_are_one_line(repo, capsys, rev, message):
    code, out, err = compare(capsys, rev)
    assert code == 2 and out == "" and err == f"error: {message}" + err.split(message, 1)[1]
    assert len(err.strip().splitlines()) == 1


def test_compare_runs_as_a_command_without_a_traceback(repo):
    done = subprocess.run(["rnnlm", "compare", "nosuch"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "unknown revision" in done.stderr
    done = subprocess.run(["rnnlm", "compare", "HEAD"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0 and "| lstm+ngram" in done.stdout
