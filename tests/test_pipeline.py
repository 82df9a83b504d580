"""The real pipeline, end to end: `dvc repro` in a temporary copy of the repository, shrunk.

The copy gets tiny corpora made here (the user's "bring your own file" path: params point the
ingest stage at them), tiny models and one epoch, so the whole DAG runs in a few minutes.
"""

import hashlib
import json
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from rnnlm import cli, gates
from rnnlm.speed import is_timing

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
MODELS = {corpus: tuple(kinds) for corpus, kinds in PARAMS["kinds"].items()}  # kinds.<corpus>
MIXED = {corpus: [m] if isinstance(m, str) else m for corpus, m in
         ((corpus, section["model"]) for corpus, section in PARAMS["mixture"].items())}
DATA_OUTPUTS = ["data/interim/names.jsonl", "data/interim/news.jsonl", "data/splits/names/train.txt",
                "data/splits/news/test.txt", "data/splits/news/report.json", "data/vocab/names.json",
                "data/vocab/news.json", "data/encoded/names.npz", "data/encoded/news.npz"]


def sh(*args, cwd, check=True):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_corpora(repo):
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    names = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 8))) for _ in range(300)]
    names += ["", "  ", "Zoë", "mary-jane"]  # blank, accented, rejected: exercised on the way
    names += names[:20] + ["ZOE"]  # repeats (one only after normalization): dropped, so held-out names are held out
    (repo / "fixtures").mkdir()
    (repo / "fixtures" / "names.txt").write_text("\r\n".join(names) + "\r\n", encoding="utf-8")
    words = "the a market vote city team film study report people said new year first after".split()
    rows = []
    for i in range(240):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))).capitalize() + "."
        rows.append(json.dumps({"category": ["POLITICS", "SPORTS", "WELLNESS"][i % 3], "headline": "H",
                                "short_description": text, "link": "", "authors": "", "date": ""}))
    rows.insert(5, '{"short_description": null, "category": "POLITICS"}')
    rows.insert(9, "not json")
    (repo / "fixtures" / "news.json").write_text("\n".join(rows) + "\n", encoding="utf-8")
    # a stream: speakers and verse, blank lines between speeches, one line that is not UTF-8
    speeches = [f"{rng.choice(['ROMEO', 'JULIET', 'NURSE'])}:\n" + "\n".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(3, 8))).capitalize() + rng.choice(",.;!?")
        for _ in range(rng.randint(1, 4))) + "\n" for _ in range(120)]
    stream = "\n".join(speeches).encode("utf-8")
    cut = stream.index(b"\n", len(stream) // 3) + 1
    (repo / "fixtures" / "shakespeare.txt").write_bytes(stream[:cut] + b"caf\xe9 latin-1\n" + stream[cut:])


def shrink(repo, adjust=None):
    """Tiny models, one epoch; ``adjust`` (optional) changes the params further before they are written."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["corpora"] = {"names": "fixtures/names.txt", "news": "fixtures/news.json",
                         "shakespeare": "fixtures/shakespeare.txt"}
    for corpus in ("names", "news"):
        # workers 1: tiny runs train in the stage's own process, sparing two torch start-ups per
        # train stage (the pool of workers: test_checkpoint_training, test_interruptions)
        params["train"][corpus].update(embedding_size=8, hidden_size=8, epochs=1, seeds=[0, 1], batch_size=32,
                                       workers=1)
        # the kinds' own settings stay (their code paths run), but not their sizes and epochs
        params["train"][corpus]["overrides"] = {
            kind: {key: value for key, value in settings.items()
                   if key not in ("embedding_size", "hidden_size", "layers", "epochs")}
            for kind, settings in params["train"][corpus].get("overrides", {}).items()}
        params["generate"][corpus].update(num_samples=4, samples_per_prompt=1, max_tokens=8)
    # the stream: tiny models in short chunks, a few long-ish samples
    params["train"]["shakespeare"].update(embedding_size=8, hidden_size=8, epochs=1, seeds=[0, 1], batch_size=4,
                                          bptt=16, workers=1, overrides={"transformer": {"heads": 2}})
    params["generate"]["shakespeare"].update(num_samples=2, samples_per_prompt=1, max_tokens=60)
    params["train"]["news"]["adaptive_cutoffs"] = [8, 16]  # the tiny corpus's vocabulary is far below 1,000
    # the tokenization comparison, on (tiny) news only: names keeps its empty default
    params["tokenization"]["news"].update(levels=["word", "bpe", "char"], epochs=1, bpe_vocab_size=300)
    if adjust is not None:
        adjust(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def shrunken_project(repo, adjust=None):
    """Make ``repo`` a git repository of the project's files (as in the working tree), tiny corpora
    and tiny models (``adjust``: see ``shrink``), with one commit and no pipeline outputs yet."""
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout.split()
    for name in files:
        # outputs are rebuilt, and the real raw data is not needed: the fixtures replace it
        if (ROOT / name).is_file() and not name.startswith(("metrics/", "speed/", "plots/", "live/", "reports/",
                                                             "samples/", "data/raw/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    (repo / "dvc.lock").unlink(missing_ok=True)
    make_corpora(repo)
    shrink(repo, adjust)
    sh("git", "init", "-q", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture", cwd=repo)
    return repo


def wait_for_queue(repo, timeout=600):
    """Wait until `dvc queue` has nothing queued or running; fail on a failed experiment."""
    deadline = time.time() + timeout
    while True:
        status = sh("dvc", "queue", "status", cwd=repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        assert time.time() < deadline, status
        time.sleep(2)
    failed = [line.split()[0] for line in status.splitlines() if "Failed" in line]
    assert not failed, status + sh("dvc", "queue", "logs", failed[0], cwd=repo, check=False).stdout


def experiments_shown(repo):
    """``dvc exp show --json`` as {experiment name: its data (params, metrics)}."""
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    experiments = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                experiments[rev.get("name") or data.get("name")] = data
    return experiments


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository holding the project's files (as in the working tree) and tiny corpora."""
    repo = shrunken_project(tmp_path_factory.mktemp("pipeline") / "rnnlm")
    result = sh("dvc", "repro", cwd=repo)
    assert "Traceback" not in result.stderr
    return repo


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_repro_builds_every_output(repo):
    report = json.loads((repo / "metrics/names/ingest.json").read_text())
    assert report["rows_read"] == 325 == report["rows_kept"] + report["rows_rejected"]
    duplicates = report["rejected_by_reason"].pop("duplicate")
    assert report["rejected_by_reason"] == {"disallowed_characters": 1, "empty": 2} and duplicates >= 21
    news_report = json.loads((repo / "metrics/news/ingest.json").read_text())
    assert news_report["rejected_by_reason"] == {"invalid_json": 1, "null_field": 1}
    split_report = json.loads((repo / "data/splits/news/report.json").read_text())
    assert set(split_report["categories"]["test"]) == {"POLITICS", "SPORTS", "WELLNESS"}
    for corpus in ("names", "news"):
        for model in MODELS[corpus]:
            metrics = json.loads((repo / f"metrics/{corpus}/neural/{model}.json").read_text())
            assert set(metrics["dev"]) >= {"loss", "perplexity", "accuracy", "bits_per_char"}
            assert set(metrics["test"]) >= {"loss", "perplexity", "accuracy", "bits_per_char", "oov_rate"}
            assert metrics["seeds"]["test_loss"]["n"] == 2 and metrics["params"] > 0
            speed = json.loads((repo / f"speed/stages/{corpus}/train.json").read_text())[model]
            assert set(speed) == {"seed0", "seed1"} and speed["seed0"]["tokens_per_s"] > 0
            assert speed["seed1"]["epochs"] == 1 and speed["seed1"]["train_seconds"] > 0
            assert (repo / f"models/{corpus}/neural/{model}.pt").is_file()
            assert (repo / f"samples/{corpus}/{model}.txt").read_text().strip()
            for seed in (0, 1):  # each run's dvclive log: its one epoch, its latest epoch in training.json
                live = repo / f"live/{corpus}/{model}/seed{seed}"
                assert json.loads((live / "metrics.json").read_text())["step"] == 1
                assert (live / "plots/metrics/dev/loss.tsv").read_text().splitlines()[0] == "step\tloss"
                training = json.loads((repo / f"metrics/{corpus}/training.json").read_text())[model][f"seed{seed}"]
                assert training["epoch"] == 1 and training["dev_loss"] > 0
        curves = (repo / f"plots/{corpus}/loss.csv").read_text().splitlines()
        assert curves[0] == "model,curve,epoch,loss" and len(curves) == 1 + 2 * len(MODELS[corpus])
        mixture = json.loads((repo / f"metrics/{corpus}/mixture.json").read_text())
        assert mixture["kinds"] == MIXED[corpus]  # mixture.<corpus>.model
        assert sum(mixture["weights"].values()) == pytest.approx(1.0, abs=1e-5)
        assert mixture["seeds"]["test_loss"]["n"] == 2
    for corpus, kinds in MIXED.items():
        name = re.escape("+".join(kinds) + "+ngram")
        assert re.search(rf"^\| (\*\*)?{name}(\*\*)? ", (repo / "reports/summary.md").read_text(), flags=re.M)
        assert re.search(rf"^\| {name} +\| +0 \|", (repo / "speed/summary.md").read_text(), flags=re.M)  # timings
    timings = [f"{path}: {key}" for path in repo.glob("metrics/**/*.json")
               for key in gates.flatten(json.loads(path.read_text())) if is_timing(key)]
    assert not timings, timings
    tokenization = json.loads((repo / "metrics/news/tokenization.json").read_text())
    assert set(tokenization["levels"]) == {"word", "bpe", "char"}
    assert set(json.loads((repo / "speed/stages/news/tokenization.json").read_text())["levels"]) == {"word", "bpe", "char"}
    assert json.loads((repo / "metrics/names/tokenization.json").read_text())["levels"] == {}
    assert "## news: tokenization" in (repo / "reports/summary.md").read_text()
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=repo).stdout
    shown = sh("dvc", "metrics", "show", "--json", cwd=repo).stdout
    for corpus in ("names", "news"):
        assert all(f"metrics/{corpus}/neural/{model}.json" in shown for model in MODELS[corpus])
        assert f"metrics/{corpus}/mixture.json" in shown and f"metrics/{corpus}/samples/{MODELS[corpus][0]}.json" in shown
    plots = json.loads(sh("dvc", "plots", "show", "--json", cwd=repo).stdout)
    assert sorted(plots["data"]) == ["plots/names/loss.csv", "plots/news/loss.csv",
                                     "plots/shakespeare/loss.csv"]  # one chart per corpus
    stream = json.loads((repo / "metrics/shakespeare/neural/lstm.json").read_text())
    assert stream["dev_test"]["tokens"] == stream["dev"]["tokens"] + stream["test"]["tokens"]
    assert "dev ∪ test loss" in (repo / "reports/summary.md").read_text()
    assert json.loads((repo / "metrics/shakespeare/ingest.json").read_text())["rejected_by_reason"] == {
        "invalid_utf8": 1}


@pytest.mark.parametrize("corpus", ["names", "news", "shakespeare"])
def test_every_model_file_scores_its_test_split_with_its_stage_loss(repo, corpus, capsys, monkeypatch):
    """`rnnlm score` on each file the pipeline wrote (recurrent checkpoints, the ARPA n-gram, the
    mixture) gives the test loss and perplexity its stage recorded in metrics/, to 1e-6. (In this
    process: the console script itself runs in test_cli_gates.)"""
    monkeypatch.chdir(repo)
    files = {f"neural/{model}": f"models/{corpus}/neural/{model}.pt" for model in MODELS[corpus]}
    files |= {"ngram": f"models/{corpus}/ngram.arpa.gz", "mixture": f"models/{corpus}/mixture.json"}
    for model, path in files.items():
        with pytest.raises(SystemExit) as done:
            cli.main(["score", "--model", path, f"data/splits/{corpus}/test.txt"])
        assert done.value.code == 0, capsys.readouterr().err
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        recorded = json.loads((repo / f"metrics/{corpus}/{model}.json").read_text())["test"]
        assert summary["rejected"] == 0, model
        for key in ("loss", "perplexity", "bits_per_char"):
            assert summary[key] == pytest.approx(recorded[key], rel=1e-6, abs=1e-6), (model, key)


def test_no_held_out_item_occurs_in_train(repo):
    """ingest drops repeated items before the split (dedupe), so dev and test hold no training item."""
    for corpus in ("names", "news"):
        splits = {name: (repo / f"data/splits/{corpus}/{name}.txt").read_text().splitlines()
                  for name in ("train", "dev", "test")}
        assert not set(splits["train"]) & (set(splits["dev"]) | set(splits["test"])), corpus
        assert len(set(splits["train"])) == len(splits["train"]), corpus
    rejects = [json.loads(line) for line in (repo / "data/interim/names.rejects.jsonl").read_text().splitlines()]
    assert {"line": 325, "reason": "duplicate", "detail": "the same item as line 303"} == {
        key: rejects[-1][key] for key in ("line", "reason", "detail")}  # "ZOE" repeats "Zoë" (line 303)


def test_data_stages_are_byte_identical_on_rerun(repo):
    before = {name: digest(repo / name) for name in DATA_OUTPUTS}
    sh("dvc", "repro", "--force", "--single-item", *[f"{stage}@{corpus}" for stage in ("ingest", "split", "vocab")
                                                  for corpus in ("names", "news")], cwd=repo)
    assert {name: digest(repo / name) for name in DATA_OUTPUTS} == before


def output_digests(repo):
    """{path: sha256} of every file the stages wrote, but the timings under speed/."""
    roots = ("data/interim", "data/splits", "data/vocab", "data/encoded", "models", "live", "samples", "metrics",
             "plots", "reports")
    return {str(path.relative_to(repo)): digest(path) for root in roots for path in sorted((repo / root).rglob("*"))
            if path.is_file() and path.name != ".gitignore"}


def test_a_forced_rerun_writes_the_same_bytes_but_timings(repo):
    """`dvc repro --force` of every names stage on the same machine gives every output byte for byte
    (checkpoints, dvclive logs, samples, the ARPA file, metrics, the report): no wall-clock figure
    outside speed/, whose timings change. `dvc metrics diff` lists no row. (Another CPU, and a one-key
    experiment: tests/test_metrics_diff.py.)"""
    commit(repo, "the pipeline's outputs")
    before, timings = output_digests(repo), (repo / "speed/stages/names/train.json").read_text()
    # the data stages' own rerun: test_data_stages_are_byte_identical_on_rerun
    sh("dvc", "repro", "--force", "--single-item", *[f"{stage}@names" for stage in ("train", "evaluate", "generate",
                                                                                    "ngram", "mixture")], "report",
       cwd=repo)
    after = output_digests(repo)
    assert {path for path in before | after if before.get(path) != after.get(path)} == set()
    assert metrics_diff(repo) == {}
    assert (repo / "speed/stages/names/train.json").read_text() != timings  # the seconds are new


def test_a_parameter_set_run_before_comes_back_from_the_run_cache(repo):
    """An experiment with another training setting, then the default again: DVC restores every stage
    of the default from its run-cache (no training: no epoch is logged) with the very same outputs.
    Every stage that costs time can be restored; only the report (uncached outputs) runs again."""
    commit(repo, "the pipeline's outputs")
    before = output_digests(repo)
    sh("dvc", "exp", "run", "-S", "train.names.epochs=2", cwd=repo)
    back = sh("dvc", "exp", "run", "-S", "train.names.epochs=1", cwd=repo)
    restored = set(re.findall(r"Stage '([\w@]+)' is cached - skipping run, checking out outputs", back.stdout))
    assert {f"{stage}@names" for stage in ("train", "evaluate", "generate", "mixture")} <= restored, back.stdout
    assert "epoch 1:" not in back.stdout + back.stderr  # nothing trained
    assert output_digests(repo) == before
    sh("git", "reset", "-q", "--hard", cwd=repo)


def commit(repo, message):
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=repo)


def metrics_diff(repo, *args):
    """``dvc metrics diff --json``'s rows: {(file, metric): (old, new)}."""
    shown = json.loads(sh("dvc", "metrics", "diff", "--json", *args, cwd=repo).stdout or "{}")
    return {(path, key): (row.get("old"), row.get("new")) for path, rows in shown.items() for key, row in rows.items()}


def test_experiments_set_queue_and_show(repo):
    """A sweep of `dvc exp run --queue -S` run by `dvc queue start -j 2`, and `dvc exp show` (run last:
    experiments leave their results in the workspace). A direct `dvc exp run -S` runs in
    test_shared_experiments."""
    # two experiments, two at a time: one with two settings, one with another list of kinds
    sweep = (("wider", ("train.names.hidden_size=12", "train.names.lr=0.02")), ("two-kinds", ("kinds.names=[gru,lstm]",)))
    for name, settings in sweep:
        # one seed each (the fixture trains two): the sweep's machinery is the point, not the spread
        overrides = [arg for setting in settings for arg in ("-S", setting)]
        sh("dvc", "exp", "run", "--queue", "-n", name, *overrides, "-S", "train.names.seeds=[0]", "evaluate@names",
           cwd=repo)
    sh("dvc", "queue", "start", "-j", "2", cwd=repo)
    wait_for_queue(repo)
    experiments = experiments_shown(repo)
    assert {"wider", "two-kinds"} <= set(experiments), list(experiments)
    params = experiments["wider"]["params"]["params.yaml"]["data"]
    assert params["train"]["names"]["lr"] == 0.02 and params["train"]["names"]["hidden_size"] == 12
    metrics = experiments["wider"]["metrics"]["metrics/names/neural/lstm.json"]["data"]
    assert metrics["params"] > 0 and metrics["test"]["loss"] > 0
    # the kinds list is the one place that says what trains: dropping two drops their files
    two_kinds = {path for path in experiments["two-kinds"]["metrics"] if path.startswith("metrics/names/neural/")}
    assert two_kinds == {"metrics/names/neural/gru.json", "metrics/names/neural/lstm.json"}, two_kinds
    table = sh("dvc", "exp", "show", "--csv", cwd=repo).stdout  # the human table, untruncated
    assert "wider" in table and "two-kinds" in table
